"""Known answers for topo_mi.circuits.

- Deep linear networks: the contributions of all paths sum to the output; edge weights are
  d_jᵀ W d_i in any feature basis, and rotating hidden layers by orthonormal bases leaves the
  end-to-end map unchanged.
- ReLU networks with their activation pattern fixed decompose exactly as well.
- A planted circuit (a few edges carrying the task among small noise and large-weight distractor
  edges that carry nothing on the data) is recovered by the L0 mask, which beats magnitude pruning.
- Max-of-K (Gross et al., "Compact proofs of model performance via mechanistic interpretability",
  2024): the trained one-layer attention-only transformer is accurate, its OV circuit EVOU copies
  (diagonal dominance) and its QK circuit EQKE attends to bigger tokens; brute-force accuracy over
  every input.
"""
import itertools

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import topo_mi.circuits as C


def _seq(dims, act=None, seed=0, bias=True):
    g = torch.Generator().manual_seed(seed)
    mods = []
    for i in range(len(dims) - 1):
        lin = nn.Linear(dims[i], dims[i + 1], bias=bias)
        with torch.no_grad():
            lin.weight.copy_(torch.randn(lin.weight.shape, generator=g) / np.sqrt(dims[i]))
            if bias:
                lin.bias.copy_(0.3 * torch.randn(lin.bias.shape, generator=g))
        mods.append(lin)
        if act is not None and i < len(dims) - 2:
            mods.append(act())
    return nn.Sequential(*mods).double()


def _orthonormal(d, rng):
    q, r = np.linalg.qr(rng.normal(size=(d, d)))
    return q * np.sign(np.diag(r))


# -- deep linear networks ------------------------------------------------------------------------------

@pytest.mark.parametrize("bias", [False, True])
def test_deep_linear_paths_sum_to_output(bias):
    net = _seq((4, 5, 3, 2), bias=bias, seed=1)
    x = np.random.default_rng(0).normal(size=(25, 4))
    pc = C.path_contributions(net, x)
    with torch.no_grad():
        out = net(torch.tensor(x)).numpy()
    n_input_paths = 4 * 5 * 3 * 2
    assert int((~pc.bias_start).sum()) == n_input_paths
    if not bias:
        assert pc.paths.shape[0] == n_input_paths
    np.testing.assert_allclose(pc.total(), out, atol=1e-6, rtol=0)
    np.testing.assert_allclose(pc.output, out, atol=1e-12)
    # each input path is x_i · W1[j,i] · W2[k,j] · W3[o,k]
    W = [net[i].weight.detach().numpy() for i in range(3)]
    for p in np.flatnonzero(~pc.bias_start)[:: 17]:
        i, j, k, o = pc.paths[p]
        np.testing.assert_allclose(pc.contributions[:, p], x[:, i] * W[0][j, i] * W[1][k, j] * W[2][o, k],
                                   rtol=1e-12)


@settings(max_examples=12, deadline=None)
@given(seed=st.integers(0, 10_000), widths=st.lists(st.integers(2, 6), min_size=1, max_size=3))
def test_edge_weights_are_dT_W_d_in_random_orthonormal_bases(seed, widths):
    rng = np.random.default_rng(seed)
    dims = [3, *widths, 2]
    net = _seq(dims, seed=seed, bias=False)
    names = ["input"] + [str(i) for i in range(len(dims) - 1)]
    bases = [_orthonormal(d, rng) for d in dims]
    G = C.build_graph(net, features={name: B for name, B in zip(names, bases)})
    Ws = [m.weight.detach().numpy() for m in net]
    for l, W in enumerate(Ws):
        for i, di in enumerate(bases[l]):
            for j, dj in enumerate(bases[l + 1]):
                assert G.edges[(names[l], i), (names[l + 1], j)]["weight"] == pytest.approx(
                    float(dj @ W @ di), rel=1e-9, abs=1e-12)
    # Orthonormal rotations of the hidden layers cancel: the feature-graph matrices compose to
    # the end-to-end map, expressed in the input and output bases.
    hidden_only = {name: B for name, B in zip(names[1:-1], bases[1:-1])}
    H = C.build_graph(net, features=hidden_only)
    prod = np.eye(dims[0])
    for l in range(len(Ws)):
        M = np.zeros((dims[l + 1], dims[l]))
        for (u, v, d) in H.edges(data=True):
            if u[0] == names[l]:
                M[v[1], u[1]] = d["weight"]
        prod = M @ prod
    end_to_end = np.linalg.multi_dot(Ws[::-1]) if len(Ws) > 1 else Ws[0]
    np.testing.assert_allclose(prod, end_to_end, atol=1e-10)


@pytest.mark.parametrize("act", [nn.ReLU, nn.LeakyReLU, nn.Tanh])
def test_nonlinear_networks_decompose_exactly_with_gates_fixed(act):
    net = _seq((3, 5, 4, 2), act=act, seed=2)
    x = np.random.default_rng(1).normal(size=(30, 3))
    pc = C.path_contributions(net, x)
    with torch.no_grad():
        out = net(torch.tensor(x)).numpy()
    np.testing.assert_allclose(pc.total(), out, atol=1e-6, rtol=0)
    if act is nn.ReLU:  # ReLU: the gates are the activation pattern
        with torch.no_grad():
            pattern1 = (net[0](torch.tensor(x)) > 0).numpy()
        W = [net[i].weight.detach().numpy() for i in (0, 2, 4)]
        with torch.no_grad():
            pattern2 = (net[2](net[1](net[0](torch.tensor(x)))) > 0).numpy()
        for p in np.flatnonzero(~pc.bias_start)[::11]:
            i, j, k, o = pc.paths[p]
            want = x[:, i] * W[0][j, i] * pattern1[:, j] * W[1][k, j] * pattern2[:, k] * W[2][o, k]
            np.testing.assert_allclose(pc.contributions[:, p], want, rtol=1e-12, atol=1e-15)


def test_residual_stack_decomposes_exactly():
    try:
        from topo_mi.models import ResidualMLP
    except ImportError:  # pragma: no cover
        pytest.skip("topo_mi.models.ResidualMLP not available")
    net = ResidualMLP(3, 4, 2, 2, activation="tanh", dt=0.5, seed=0).double()
    x = np.random.default_rng(0).normal(size=(12, 3))
    pc = C.path_contributions(net, x)
    with torch.no_grad():
        out = net(torch.tensor(x)).numpy()
    np.testing.assert_allclose(pc.total(), out, atol=1e-6, rtol=0)
    assert (pc.paths == -1).any()  # some paths take the skip connections


# -- planted circuit -------------------------------------------------------------------------------------

def planted_network(n=1024):
    from topo_mi.circuits._planted import planted_network as build

    return build(seed=0, n_samples=n)


@pytest.fixture(scope="module")
def planted_result():
    net, x, truth = planted_network()
    return C.find_circuit(net, x, l0=1.0, steps=300, lr=0.05, seed=0), truth


def test_planted_circuit_is_recovered(planted_result):
    res, truth = planted_result
    kept = set(res.kept_edges)
    tp = len(kept & truth)
    precision, recall = tp / max(len(kept), 1), tp / len(truth)
    assert precision >= 0.9 and recall >= 0.9, (precision, recall, sorted(kept - truth), sorted(truth - kept))
    assert res.alpha >= 0.95
    assert res.full_score == pytest.approx(1.0)


def test_planted_circuit_beats_magnitude_pruning(planted_result):
    res, truth = planted_result
    # Magnitude pruning at the same size keeps the large distractors, which carry nothing.
    assert res.circuit_score > res.magnitude_score + 0.5
    at = int(np.searchsorted(res.curve_sizes, res.n_kept))
    assert res.curve_scores["magnitude"][at] == pytest.approx(res.magnitude_score)
    mag = np.abs(res.edge_weight)
    top = np.argsort(-mag, kind="stable")[:res.n_kept]
    assert mag[top].min() >= 3.0  # by construction: only distractors


def test_planted_circuit_default_settings_other_seed():
    from topo_mi.circuits._planted import planted_network as build, precision_recall

    net, x, truth = build(seed=3, n_samples=512)
    res = C.find_circuit(net, x, steps=300, seed=3)  # default l0, lr, zero ablation
    precision, recall = precision_recall(res.kept_edges, truth)
    assert precision >= 0.9 and recall >= 0.9 and res.alpha >= 0.95
    assert res.circuit_score > res.magnitude_score


def test_planted_circuit_nodes():
    net, x, truth = planted_network(n=512)
    res = C.find_circuit(net, x, granularity="nodes", l0=1.0, steps=300, seed=0)
    want = {u for u, _ in truth} | {v for _, v in truth if v[0] != "4"}
    got = {n for n in res.kept_nodes if n[0] != "4"}
    assert got == want
    assert res.alpha >= 0.95 and res.circuit_score > res.magnitude_score


def _attention_only(**kw):
    from topo_mi.models import AttentionOnlyTransformer

    return AttentionOnlyTransformer(**kw)


# -- max-of-K -----------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def max_of_4():
    """The trained max-of-4 model (Gross et al. recipe): from the model zoo cache, or trained."""
    try:
        from topo_mi.models.zoo import pretrained
    except ImportError:  # no model zoo: train with the recipe here
        model = _attention_only(d_vocab=64, d_model=32, n_ctx=4, d_head=32, n_heads=1, seed=0)
        _train_max_of_k(model, seed=0)
        return model.eval()
    return pretrained("attn-max-of-4")


def _train_max_of_k(model, *, steps=3000, seed=0):
    """Gross et al.'s recipe: AdamW lr 1e-3, 3,000 steps of 128 uniform sequences, last position."""
    from topo_mi.circuits._threads import intra_op_threads

    with intra_op_threads(1):  # tiny matrices: one thread is several times faster on a busy machine
        _train(model, steps, seed)


def _train(model, steps, seed):
    try:
        from topo_mi.models import train_max_of_k
    except ImportError:
        g = torch.Generator().manual_seed(seed)
        opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
        for _ in range(steps):
            tokens = torch.randint(0, 64, (128, 4), generator=g)
            loss = nn.functional.cross_entropy(model(tokens)[:, -1], tokens.max(1).values)
            opt.zero_grad()
            loss.backward()
            opt.step()
        return
    train_max_of_k(model, steps=steps, batch_size=128, lr=1e-3, seed=seed)


def test_max_of_4_is_accurate(max_of_4):
    acc = C.sampled_accuracy(max_of_4, n_samples=100_000, seed=1)
    assert acc >= 0.95


def test_max_of_4_evou_copies(max_of_4):
    ac = C.attention_circuits(max_of_4)
    assert ac.evou_diagonal_dominance >= 0.85
    # Every token that is ever the maximum of a typical sequence is copied by the OV circuit.
    copies = np.argmax(ac.evou, axis=1) == np.arange(64)
    assert copies[8:].all(), np.flatnonzero(~copies)
    assert np.median(ac.evou_diagonal_margin) > 0


def test_max_of_4_eqke_increases_with_key(max_of_4):
    from scipy.stats import spearmanr

    ac = C.attention_circuits(max_of_4)
    rhos = np.array([spearmanr(row, np.arange(64)).statistic for row in ac.eqke])
    assert rhos.min() >= 0.95 and ac.eqke_monotonicity >= 0.99
    assert np.all(ac.eqke[:, -1] > ac.eqke[:, 0])


def test_table_logits_equal_forward(max_of_4):
    from topo_mi.circuits.transformer import last_position_logits

    tokens = torch.randint(0, 64, (1024, 4), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ref = max_of_4(tokens)[:, -1].double()
        ours = last_position_logits(max_of_4, tokens)
    np.testing.assert_allclose(ours.numpy(), ref.numpy(), atol=1e-4, rtol=1e-4)


def test_brute_force_small_vocabulary_exact():
    m = _attention_only(d_vocab=6, d_model=8, n_ctx=4, d_head=8, seed=3)
    with torch.no_grad():  # give the OV circuit a copying bias so accuracy is not trivial
        m.W_U.copy_(m.W_E.T.detach() * 3.0)
    tokens = torch.tensor(list(itertools.product(range(6), repeat=4)))
    with torch.no_grad():
        want = float((m(tokens)[:, -1].argmax(-1) == tokens.max(1).values).double().mean())
    assert C.brute_force_accuracy(m, method="forward") == want
    assert C.brute_force_accuracy(m, method="tables", batch_size=100) == pytest.approx(want, abs=2 / 6 ** 4)
    assert 0.0 < want < 1.0


def test_max_of_4_brute_force_over_all_inputs(max_of_4):
    acc = C.brute_force_accuracy(max_of_4)          # all 64**4 = 16,777,216 sequences (seconds)
    assert acc >= 0.95
    assert acc == pytest.approx(C.sampled_accuracy(max_of_4, n_samples=100_000, seed=2), abs=0.005)


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_max_of_4_trains_from_scratch():
    model = _attention_only(d_vocab=64, d_model=32, n_ctx=4, d_head=32, n_heads=1, seed=1)
    _train_max_of_k(model, seed=1)
    assert C.sampled_accuracy(model.eval(), n_samples=100_000, seed=0) >= 0.95
    ac = C.attention_circuits(model)
    assert ac.eqke_monotonicity >= 0.95 and ac.evou_diagonal_dominance >= 0.8
