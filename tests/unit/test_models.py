"""topo_mi.models: architectures, deterministic training, safetensors I/O and the model zoo."""
import json
import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from topo_mi import models  # noqa: E402
from topo_mi.errors import InvalidParameterError, NonFiniteError, UnknownNameError  # noqa: E402
from topo_mi.models import (  # noqa: E402
    MLP, AttentionOnlyTransformer, ResidualMLP, TanhRNN, ToySuperposition, TrainingReport,
    load_checkpoint, load_model, save_model, train_classifier, train_max_of_k, train_superposition,
)


def _blobs(n=120, seed=0):
    """Two Gaussian blobs in R^3 (labels 0/1): a separable toy classification set."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    X = rng.normal(size=(n, 3)) * 0.5 + np.where(y[:, None] == 1, 1.5, -1.5)
    return X, y


def _close(actual, expected, rtol=1.3e-6, atol=1e-5):
    # numpy's check: torch.testing's first call imports far more than these tests need
    np.testing.assert_allclose(actual.detach().numpy(), expected.detach().numpy(), rtol=rtol, atol=atol)


def _same_state(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def _all_models(seed=0):
    return [MLP(3, [5, 4], 2, activation="tanh", seed=seed),
            ResidualMLP(3, 6, 2, 2, seed=seed),
            AttentionOnlyTransformer(d_vocab=10, d_model=8, n_ctx=3, d_head=4, n_heads=2, seed=seed),
            TanhRNN(2, 7, 3, gain=1.5, seed=seed),
            ToySuperposition(5, 2, seed=seed)]


# -- architectures -------------------------------------------------------------------------------

def test_mlp_module_names_and_shapes():
    net = MLP(3, [5, 4, 6], 2, activation="leaky_relu", negative_slope=0.1)
    names = [n for n, _ in net.named_children()]
    assert names == ["fc1", "act1", "fc2", "act2", "fc3", "act3", "out"]
    assert net.hidden_names == ["act1", "act2", "act3"]
    assert net.linear_names == ["fc1", "fc2", "fc3", "out"]
    assert isinstance(net, torch.nn.Sequential) and isinstance(net.act2, torch.nn.LeakyReLU)
    assert net.act1.negative_slope == 0.1
    assert net(torch.zeros(7, 3)).shape == (7, 2)
    head = net[:-1]  # slicing gives a plain Sequential sharing the layers
    assert type(head) is torch.nn.Sequential and head.fc1 is net.fc1 and net[0] is net.fc1
    assert [net.fc2.in_features, net.fc2.out_features] == [5, 4]
    lin = MLP(4, [], 3, bias=False)
    assert [n for n, _ in lin.named_children()] == ["out"] and lin.out.bias is None
    assert lin.hidden_names == [] and lin.linear_names == ["out"]
    assert isinstance(MLP(2, [3], 2, activation="tanh").act1, torch.nn.Tanh)


def test_mlp_rejects_bad_arguments():
    with pytest.raises(UnknownNameError, match="activation.*'relu'"):
        MLP(2, [3], 2, activation="sigmoid")
    with pytest.raises(InvalidParameterError, match="widths"):
        MLP(2, "15", 2)
    with pytest.raises(InvalidParameterError, match=r"widths\[1\]"):
        MLP(2, [3, 0], 2)
    with pytest.raises(InvalidParameterError, match="in_dim"):
        MLP(0, [3], 2)
    with pytest.raises(InvalidParameterError, match="seed"):
        MLP(2, [3], 2, seed=-1)


def test_residual_mlp_names_and_forward():
    net = ResidualMLP(3, 6, 2, 4, activation="tanh", dt=0.5, seed=1)
    names = [n for n, _ in net.named_modules()]
    for want in ("embed", "blocks", "blocks.0", "blocks.0.linear", "blocks.0.act", "blocks.1", "out"):
        assert want in names
    assert net.block_names == ["blocks.0", "blocks.1"] and net.blocks[0].dt == 0.5
    x = torch.randn(5, 3, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        h = net.embed(x)
        for blk in net.blocks:
            h = h + 0.5 * torch.tanh(blk.linear(h))
        _close(net(x), net.out(h), rtol=0, atol=0)
    assert len(ResidualMLP(2, 3, 0, 1).blocks) == 0
    with pytest.raises(InvalidParameterError, match="dt"):
        ResidualMLP(2, 3, 1, 1, dt=0)


def test_init_is_deterministic_and_leaves_global_rng_alone():
    state = torch.get_rng_state()
    first, second, other = _all_models(0), _all_models(0), _all_models(1)
    assert torch.equal(state, torch.get_rng_state())
    for a, b, c in zip(first, second, other):
        assert _same_state(a, b), type(a).__name__
        assert not _same_state(a, c), type(a).__name__


def _reference_attention(model, tokens):
    """The documented formula, written out independently of the module."""
    W_E, W_pos, W_Q, W_K, W_V, W_O, W_U = (getattr(model, n).detach() for n in
                                           ("W_E", "W_pos", "W_Q", "W_K", "W_V", "W_O", "W_U"))
    T = tokens.shape[1]
    resid = W_E[tokens] + W_pos[:T][None]
    q = torch.einsum("bpd,hde->bhpe", resid, W_Q)
    k = torch.einsum("bpd,hde->bhpe", resid, W_K)
    v = torch.einsum("bpd,hde->bhpe", resid, W_V)
    scores = torch.einsum("bhpe,bhse->bhps", q, k) / math.sqrt(W_Q.shape[-1])
    future = torch.arange(T)[None, :] > torch.arange(T)[:, None]
    scores = scores.masked_fill(future, -torch.inf)
    pattern = scores.softmax(-1)
    z = torch.einsum("bhps,bhse->bhpe", pattern, v)
    out = resid + torch.einsum("bhpe,hed->bpd", z, W_O)
    return torch.einsum("bpd,dv->bpv", out, W_U), pattern


def test_attention_only_transformer_matches_einsum_reference():
    model = AttentionOnlyTransformer(d_vocab=11, d_model=8, n_ctx=5, d_head=6, n_heads=2, seed=3)
    assert tuple(model.W_E.shape) == (11, 8) and tuple(model.W_pos.shape) == (5, 8)
    assert tuple(model.W_Q.shape) == (2, 8, 6) and tuple(model.W_O.shape) == (2, 6, 8)
    assert tuple(model.W_U.shape) == (8, 11)
    assert not any("b_" in n or "bias" in n for n, _ in model.named_parameters())
    names = {n for n, _ in model.named_modules()}
    assert {"hook_embed", "hook_pos", "hook_resid_pre", "hook_pattern", "hook_attn_out",
            "hook_resid_post", "hook_attn_scores"} <= names
    g = torch.Generator().manual_seed(0)
    tokens = torch.randint(0, 11, (16, 5), generator=g)
    seen = {}

    def keep_first(module, args, output):
        seen.setdefault("pattern", output)

    handle = model.hook_pattern.register_forward_hook(keep_first)
    with torch.no_grad():
        logits = model(tokens)
        short = model(tokens[:, :3])
    handle.remove()
    ref, pattern = _reference_attention(model, tokens)
    assert logits.shape == (16, 5, 11)
    _close(logits, ref, rtol=1e-5, atol=1e-6)
    _close(seen["pattern"], pattern, rtol=1e-5, atol=1e-6)
    # causal: a prefix gives the same logits as the full sequence at its positions
    _close(short, logits[:, :3], rtol=1e-5, atol=1e-6)
    assert torch.all(seen["pattern"][..., 0, 1:] == 0)


def test_attention_only_transformer_rejects_bad_tokens():
    model = AttentionOnlyTransformer()
    assert model(torch.zeros(2, 4, dtype=torch.long)).shape == (2, 4, 64)
    with pytest.raises(InvalidParameterError, match=r"tokens: expected token ids in \[0, 64\)"):
        model(torch.full((2, 4), 64))
    with pytest.raises(InvalidParameterError, match="n_ctx = 4"):
        model(torch.zeros(2, 5, dtype=torch.long))
    with pytest.raises(InvalidParameterError, match="integer"):
        model(torch.zeros(2, 4))


def test_tanh_rnn_step_and_forward():
    rnn = TanhRNN(3, 400, 2, gain=2.0, seed=0)
    W = rnn.cell.W_hh.detach()
    assert W.shape == (400, 400) and abs(W.std().item() - 2.0 / 20.0) < 0.002
    assert {"cell", "readout"} <= {n for n, _ in rnn.named_children()}
    small = TanhRNN(3, 5, 2, seed=1)
    x = torch.randn(4, 6, 3, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        out, h_final = small(x)
        h = torch.zeros(4, 5)
        hs = []
        for t in range(6):
            h = torch.tanh(h @ small.cell.W_hh.T + x[:, t] @ small.cell.W_ih.T + small.cell.b)
            hs.append(h)
            _close(small.step(hs[t - 1] if t else torch.zeros(4, 5), x[:, t]), h)
    assert out.shape == (4, 6, 2) and h_final.shape == (4, 5)
    _close(h_final, hs[-1])
    _close(out, small.readout(torch.stack(hs, 1)))
    with pytest.raises(InvalidParameterError, match="x: expected"):
        small(torch.zeros(4, 3))


def test_superposition_forward_and_feature_geometry():
    model = ToySuperposition(5, 2, seed=0)
    assert tuple(model.W.shape) == (2, 5) and tuple(model.b.shape) == (5,)
    x = torch.rand(8, 5, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        _close(model(x), torch.relu(x @ model.W.T @ model.W + model.b))
        angles = 2 * np.pi * np.arange(5) / 5
        model.W.copy_(torch.tensor(np.stack([np.cos(angles), np.sin(angles)]), dtype=torch.float32))
    np.testing.assert_allclose(model.feature_dimensionality(), 0.4, atol=1e-6)
    assert model.dimensions_per_feature() == pytest.approx(2 / 5, abs=1e-6)
    with torch.no_grad():  # two orthogonal features, the rest unrepresented
        model.W.copy_(torch.tensor([[1.0, 0, 0, 0, 0], [0, 1.0, 0, 0, 0]]))
    np.testing.assert_allclose(model.feature_dimensionality(), [1, 1, 0, 0, 0], atol=1e-12)
    assert model.dimensions_per_feature() == pytest.approx(1.0)


# -- training ------------------------------------------------------------------------------------

def test_train_classifier_is_deterministic_and_reports():
    X, y = _blobs()
    state = torch.get_rng_state()
    runs = []
    for _ in range(2):
        net = MLP(3, [8, 8], 2, seed=0)
        runs.append((net, train_classifier(net, X, y, epochs=5, lr=1e-2, batch_size=32, seed=4)))
    assert torch.equal(state, torch.get_rng_state())
    (a, ra), (b, rb) = runs
    assert _same_state(a, b)
    np.testing.assert_array_equal(ra.losses, rb.losses)
    assert isinstance(ra, TrainingReport) and ra.unit == "epoch" and ra.epochs_run == 5
    assert ra.losses.shape == (5,) and ra.accuracies.shape == (5,) and ra.seconds >= 0
    assert ra.final_accuracy == ra.accuracies[-1] and ra.target_reached is None
    assert a.training  # the mode is restored
    c = MLP(3, [8, 8], 2, seed=0)
    train_classifier(c, X, y, epochs=5, lr=1e-2, batch_size=32, seed=5)
    assert not _same_state(a, c)  # the shuffling seed matters


def test_train_classifier_stops_at_target_accuracy(tmp_path):
    X, y = _blobs()
    net = MLP(3, [8], 2, seed=0)
    rep = train_classifier(torch.nn.Sequential(net), torch.as_tensor(X), y, epochs=200, lr=1e-2,
                           batch_size=16, target_accuracy=1.0)
    assert rep.target_reached is True and rep.final_accuracy == 1.0 and rep.epochs_run < 200
    assert rep.summary()["final_accuracy"] == 1.0
    rep.save(tmp_path / "rep")
    back = TrainingReport.load(tmp_path / "rep")
    np.testing.assert_array_equal(back.losses, rep.losses)
    assert back.params["target_accuracy"] == 1.0


def test_train_classifier_validates_inputs():
    X, y = _blobs()
    net = MLP(3, [4], 2)
    with pytest.raises(InvalidParameterError, match="y: expected a 1-D array of 120"):
        train_classifier(net, X, y[:-1])
    with pytest.raises(InvalidParameterError, match="y: expected integer class labels"):
        train_classifier(net, X, y + 0.5)
    bad = X.copy()
    bad[0, 0] = np.nan
    with pytest.raises(InvalidParameterError, match="X: expected finite"):
        train_classifier(net, bad, y)
    with pytest.raises(InvalidParameterError, match="target_accuracy"):
        train_classifier(net, X, y, target_accuracy=1.5)
    with pytest.raises(InvalidParameterError, match="model"):
        train_classifier("net", X, y)
    from topo_mi.errors import DivergenceError

    with pytest.raises(NonFiniteError, match="float32"):
        train_classifier(net, np.full((8, 3), 1e300), np.arange(8) % 2)
    nan_net = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.Hardtanh(float("nan"), float("nan")))
    with pytest.raises(DivergenceError, match="the loss became nan at epoch 1"):
        train_classifier(nan_net, X, y, epochs=3)


def test_train_max_of_k_is_deterministic():
    models_ = []
    for _ in range(2):
        m = AttentionOnlyTransformer(d_vocab=8, d_model=8, n_ctx=3, d_head=8, seed=0)
        rep = train_max_of_k(m, steps=40, batch_size=32, seed=2)
        models_.append((m, rep))
    (a, ra), (b, rb) = models_
    assert _same_state(a, b) and np.array_equal(ra.losses, rb.losses)
    assert ra.unit == "step" and ra.epochs_run == 40 and 0.0 <= ra.final_accuracy <= 1.0
    assert ra.losses[-5:].mean() < ra.losses[:5].mean()
    with pytest.raises(InvalidParameterError, match="d_vocab and n_ctx"):
        train_max_of_k(MLP(2, [2], 2), steps=1)


def test_superposition_dense_gives_two_orthogonal_features():
    # Dense features (S = 0): the two most important features get one dimension each, the rest
    # none. (The reference protocol, 10,000 steps at lr 1e-3, ends the same; lr 1e-2 gets there
    # in 2,000 steps.)
    model = ToySuperposition(5, 2, seed=0)
    threads = torch.get_num_threads()
    rep = train_superposition(model, sparsity=0.0, steps=2000, lr=1e-2, seed=0)
    assert torch.get_num_threads() == threads
    assert rep.unit == "step" and rep.losses.shape == (2000,) and math.isnan(rep.final_accuracy)
    W = model.W.detach().numpy().astype(float)
    norms = np.linalg.norm(W, axis=0)
    assert np.all(norms[:2] > 0.9) and np.all(norms[2:] < 0.1), norms
    cos = W[:, 0] @ W[:, 1] / (norms[0] * norms[1])
    assert abs(cos) < 0.05
    np.testing.assert_allclose(model.feature_dimensionality()[:2], 1.0, atol=0.02)
    with pytest.raises(InvalidParameterError, match="sparsity"):
        train_superposition(model, sparsity=1.0)
    with pytest.raises(InvalidParameterError, match="num_threads"):
        train_superposition(model, sparsity=0.5, num_threads=0)


def _pentagon_check(model):
    W = model.W.detach().numpy().astype(float)
    norms = np.linalg.norm(W, axis=0)
    assert np.all(norms > 0.5), norms
    np.testing.assert_allclose(model.feature_dimensionality(), 0.4, atol=0.05)
    angles = np.sort(np.mod(np.arctan2(W[1], W[0]), 2 * np.pi))
    gaps = np.diff(np.append(angles, angles[0] + 2 * np.pi))
    np.testing.assert_allclose(gaps, 2 * np.pi / 5, atol=0.15)
    assert np.all(model.b.detach().numpy() < 0)


def test_superposition_sparse_gives_a_pentagon_fast():
    # S = 0.95: five features in two dimensions, a regular pentagon, D_i = 2/5 (Elhage et al.);
    # lr 1e-2 for 3,000 steps instead of the reference 1e-3 for 10,000 (slow test below).
    model = ToySuperposition(5, 2, seed=0)
    train_superposition(model, sparsity=0.95, steps=3000, lr=1e-2, seed=0)
    _pentagon_check(model)


@pytest.mark.slow
def test_superposition_sparse_gives_a_pentagon_reference_protocol():
    model = ToySuperposition(5, 2, seed=1)
    train_superposition(model, sparsity=0.95, steps=10000, lr=1e-3, batch_size=1024, seed=1)
    _pentagon_check(model)


# -- files ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("index", range(5))
def test_save_load_round_trip_is_exact(tmp_path, index):
    model = _all_models(7)[index]
    path = save_model(model, tmp_path / "m.safetensors", metadata={"note": "x"})
    back = load_model(path)
    assert type(back) is type(model) and back.config == model.config
    assert _same_state(model, back) and not back.training
    assert models.read_metadata(path)["info"] == {"note": "x"}
    assert not list(tmp_path.glob(".*tmp*"))  # no temporary file left behind


def test_save_load_keeps_float64(tmp_path):
    model = ResidualMLP(3, 4, 2, 2, seed=0).double()
    X, y = _blobs(20)
    train_classifier(model, X, y, epochs=1)  # float64 inputs stay float64 for a float64 model
    back = load_model(save_model(model, tmp_path / "d.safetensors"))
    assert back.embed.weight.dtype == torch.float64 and _same_state(model, back)


def test_load_model_refuses_unknown_classes(tmp_path):
    from safetensors.torch import save_file

    with pytest.raises(InvalidParameterError, match="model: expected an instance of one of"):
        save_model(torch.nn.Linear(2, 2), tmp_path / "lin.safetensors")

    class MyMLP(MLP):
        pass

    with pytest.raises(InvalidParameterError, match="MyMLP"):
        save_model(MyMLP(2, [2], 2), tmp_path / "sub.safetensors")
    # a file that names a class outside topo_mi.models
    meta = {"format": "topo_mi.model/1", "class": "Linear", "config": json.dumps({"in_features": 2}),
            "info": "{}"}
    save_file({"weight": torch.zeros(2, 2)}, str(tmp_path / "evil.safetensors"), metadata=meta)
    with pytest.raises(InvalidParameterError, match="class 'Linear'"):
        load_model(tmp_path / "evil.safetensors")
    # a plain state dict (no metadata) points to load_checkpoint
    save_file({"weight": torch.zeros(2, 2)}, str(tmp_path / "plain.safetensors"))
    with pytest.raises(InvalidParameterError, match="load_checkpoint"):
        load_model(tmp_path / "plain.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(InvalidParameterError, match="safetensors"):
        load_model(tmp_path / "junk.safetensors")
    with pytest.raises(InvalidParameterError, match="existing"):
        load_model(tmp_path / "missing.safetensors")


class _Payload:
    pass


def test_load_checkpoint_pt_and_safetensors(tmp_path):
    from safetensors.torch import save_file

    src = MLP(3, [4], 2, seed=1)
    torch.save(src.state_dict(), tmp_path / "w.pt")
    torch.save({"state_dict": src.state_dict(), "epoch": 3}, tmp_path / "wrapped.pth")
    save_file(dict(src.state_dict()), str(tmp_path / "w.safetensors"))
    for name in ("w.pt", "wrapped.pth", "w.safetensors"):
        dst = MLP(3, [4], 2, seed=2)
        assert load_checkpoint(tmp_path / name, dst) is dst
        assert _same_state(src, dst), name
    torch.save({"state_dict": src.state_dict(), "payload": _Payload()}, tmp_path / "pickled.pt")
    with pytest.raises(InvalidParameterError, match="weights_only=True"):
        load_checkpoint(tmp_path / "pickled.pt", MLP(3, [4], 2))
    with pytest.raises(InvalidParameterError, match="weights matching MLP"):
        load_checkpoint(tmp_path / "w.pt", MLP(3, [5], 2))
    (tmp_path / "w.npz").write_bytes(b"")
    with pytest.raises(InvalidParameterError, match=r"\.safetensors, \.pt"):
        load_checkpoint(tmp_path / "w.npz", MLP(3, [4], 2))


# -- zoo -----------------------------------------------------------------------------------------

def test_zoo_names_and_unknown_names(tmp_path, monkeypatch):
    monkeypatch.setenv("TOPO_MI_DATA_HOME", str(tmp_path))
    names = models.zoo_names()
    assert {"mlp-naitzat-d1-relu", "mlp-naitzat-d1-tanh", "mlp-digits", "attn-max-of-4",
            "superposition-5-2"} <= set(names)
    with pytest.raises(UnknownNameError, match="closest valid names: 'mlp-digits'"):
        models.pretrained("mlp-digit")
    with pytest.raises(UnknownNameError):
        models.zoo_info("nope")
    info = models.zoo_info("mlp-naitzat-d1-relu")
    assert info["architecture"] == "MLP" and info["dataset"] == "naitzat_d1"
    assert info["config"]["widths"] == [15] * 10 and info["cached"] is False
    assert info["training_accuracy"] is None


def test_pretrained_digits_is_trained_once_then_cached(tmp_path, monkeypatch):
    from topo_mi.models import zoo

    monkeypatch.setenv("TOPO_MI_DATA_HOME", str(tmp_path))
    model = models.pretrained("mlp-digits")
    path = models.cache_path("mlp-digits")
    assert path.is_file() and path.parent == tmp_path / "models"
    info = models.zoo_info("mlp-digits")
    assert info["cached"] and info["training_accuracy"] == 1.0
    assert info["dataset"] == "digits" and info["training_report"]["epochs"] >= 1

    def no_training(*a, **k):
        raise AssertionError("the cached model should have been loaded")

    monkeypatch.setattr(zoo, "_train", no_training)
    again = models.pretrained("mlp-digits")
    assert _same_state(model, again) and not again.training
    from topo_mi import datasets

    ds = datasets.make("digits")
    with torch.no_grad():
        pred = again(torch.as_tensor(ds.X, dtype=torch.float32)).argmax(1).numpy()
    assert (pred == ds.y).mean() == 1.0


def test_zoo_acceptance_criteria_and_retries(tmp_path, monkeypatch):
    from types import SimpleNamespace

    from topo_mi.models import zoo

    monkeypatch.setenv("TOPO_MI_DATA_HOME", str(tmp_path))
    X, y = _blobs(60)
    noisy = np.random.default_rng(0).integers(0, 2, size=60)  # random labels: 100 % is out of reach
    data = {"blobs": SimpleNamespace(X=X, y=y), "noise": SimpleNamespace(X=X, y=noisy)}
    monkeypatch.setattr(zoo, "_load_dataset", lambda name, params: data[name])

    def entry(dataset, attempts):
        return {"description": "test", "dataset": {"name": dataset, "params": {}},
                "architecture": {"class": "MLP", "config": {"in_dim": 3, "widths": [6, 6], "out_dim": 2,
                                                            "activation": "relu", "seed": 3}},
                "training": {"task": "classifier", "schedule": [[30, 1e-2], [5, 1e-3]], "batch_size": 16,
                             "seed": 0, "target_accuracy": 1.0, "attempts": attempts,
                             "single_component": {"label": 0, "k": 5}}}

    monkeypatch.setitem(zoo._ZOO, "test-blobs", entry("blobs", 3))
    monkeypatch.setitem(zoo._ZOO, "test-noise", entry("noise", 2))
    models.pretrained("test-blobs")
    report = models.zoo_info("test-blobs")["training_report"]
    assert len(report["attempts"]) == 1 and report["components"] == {"act2": 1, "out": 1}
    assert models.zoo_info("test-blobs")["seed"] == 3
    with pytest.warns(RuntimeWarning, match="no seed of 2"):
        models.pretrained("test-noise")
    info = models.zoo_info("test-noise")
    assert [a["seed"] for a in info["training_report"]["attempts"]] == [3, 4] and info["seed"] == 4
    assert info["training_report"]["attempts"][0]["epochs_per_phase"] == [30, 5]
    assert info["training_accuracy"] < 1.0


# -- slow: the published protocols ---------------------------------------------------------------

def _components(points, k=14):
    """beta_0 of the symmetrised k-nearest-neighbour graph (the point itself among its k)."""
    from scipy.sparse.csgraph import connected_components
    from sklearn.neighbors import kneighbors_graph

    A = kneighbors_graph(points, k, include_self=True)
    return connected_components(A + A.T, directed=False)[0]


@pytest.mark.slow
@pytest.mark.parametrize("name", ["mlp-naitzat-d1-relu", "mlp-naitzat-d1-tanh"])
def test_pretrained_naitzat_reaches_full_training_accuracy(tmp_path, monkeypatch, name):
    from topo_mi import datasets

    monkeypatch.setenv("TOPO_MI_DATA_HOME", str(tmp_path))
    model = models.pretrained(name)
    assert models.zoo_info(name)["training_accuracy"] == 1.0
    ds = datasets.make("naitzat_d1")
    X = torch.as_tensor(ds.X, dtype=torch.float32)
    with torch.no_grad():
        assert (model(X).argmax(1).numpy() == ds.y).all()
        hidden = model[:-1](X).numpy()  # the last hidden layer (the output of its activation)
        out = model(X).numpy()
    a = ds.y == 0
    assert _components(ds.X[a]) == 9
    assert _components(hidden[a]) == 1 and _components(out[a]) == 1


@pytest.mark.slow
def test_pretrained_max_of_4_accuracy(tmp_path, monkeypatch):
    from topo_mi.models import max_of_k_accuracy

    monkeypatch.setenv("TOPO_MI_DATA_HOME", str(tmp_path))
    model = models.pretrained("attn-max-of-4")
    assert models.zoo_info("attn-max-of-4")["training_accuracy"] >= 0.95
    assert max_of_k_accuracy(model, n_samples=50_000, seed=123) >= 0.95


@pytest.mark.slow
def test_pretrained_superposition_is_a_pentagon(tmp_path, monkeypatch):
    monkeypatch.setenv("TOPO_MI_DATA_HOME", str(tmp_path))
    _pentagon_check(models.pretrained("superposition-5-2"))


def test_direct_fused_adamw_step_is_bit_identical_to_the_optimizer(monkeypatch):
    import topo_mi.models.training as training
    from topo_mi.models import ToySuperposition, train_superposition

    direct_step = training._direct_step
    fast = ToySuperposition(5, 2, seed=1)
    rep_fast = train_superposition(fast, sparsity=0.9, steps=300, seed=1)
    monkeypatch.setattr(training, "_direct_step", lambda opt: opt.step)
    plain = ToySuperposition(5, 2, seed=1)
    rep_plain = train_superposition(plain, sparsity=0.9, steps=300, seed=1)
    assert torch.equal(fast.W, plain.W) and torch.equal(fast.b, plain.b)
    assert np.array_equal(rep_fast.losses, rep_plain.losses)
    opt = torch.optim.SGD(plain.parameters(), lr=0.1)
    assert direct_step(opt) == opt.step   # anything but a fused AdamW goes through step()
