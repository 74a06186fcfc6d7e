"""Activation collection: exactness against manual forwards, the store, resume, adapters, errors."""
import json

import numpy as np
import pytest
import torch
from torch import nn

import topo_mi as tm
from topo_mi.activations import Activations, collect
from topo_mi.errors import InvalidParameterError, NonFiniteError, StoreMismatchError, UnknownNameError


def _mlp(seed=0):
    g = torch.Generator().manual_seed(seed)
    m = nn.Sequential()
    m.add_module("fc1", nn.Linear(5, 16))
    m.add_module("act1", nn.ReLU())
    m.add_module("fc2", nn.Linear(16, 8))
    m.add_module("act2", nn.Tanh())
    m.add_module("out", nn.Linear(8, 3))
    with torch.no_grad():
        for p in m.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.5)
    return m


class ConvNet(nn.Module):
    def __init__(self):
        super().__init__()
        g = torch.Generator().manual_seed(1)
        self.conv1 = nn.Conv2d(1, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.relu = nn.ReLU()
        self.pool = nn.AdaptiveAvgPool2d(2)
        self.head = nn.Linear(16, 2)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=g))

    def forward(self, x):
        h = self.relu(self.bn(self.conv1(x)))
        return self.head(self.pool(h).flatten(1))


def test_mlp_equals_manual_forward_exactly():
    m = _mlp()
    X = torch.randn(700, 5, generator=torch.Generator().manual_seed(0))
    acts = tm.collect(m, X, layers=["fc1", "act1", "act2"], batch_size=128, progress=False)
    with torch.no_grad():
        h1 = m.fc1(X)
        a1 = m.act1(h1)
        a2 = m.act2(m.fc2(a1))
    np.testing.assert_array_equal(acts["fc1"], h1.numpy())
    np.testing.assert_array_equal(acts["act1"], a1.numpy())
    np.testing.assert_array_equal(acts["act2"], a2.numpy())
    assert acts.layers == ["fc1", "act1", "act2"] and acts.n_samples == 700
    np.testing.assert_array_equal(acts.sample_ids, np.arange(700))
    assert acts["act1"].dtype == np.float32
    assert "Activations(n_samples=700" in repr(acts)
    # no hooks left behind, no model reference kept
    assert all(not mod._forward_hooks for mod in m.modules())
    assert not any(isinstance(v, nn.Module) for v in vars(acts).values())


def test_large_results_in_premapped_pages_equal_the_forward(monkeypatch):
    """Results of 64 MiB and more live in an anonymous mapping populated up front (huge pages where
    the kernel allows, else MAP_POPULATE): zero-filled, writable, and the collected rows exact.
    The threshold is lowered so that a small model takes that route too."""
    import mmap

    from topo_mi.activations import _collect as C

    big = C._empty_prefaulted(((64 << 20) // 4 // 256, 256))
    assert big.shape == (65536, 256) and big.dtype == np.float32 and big.flags.writeable
    assert not big[::4096].any()  # anonymous pages are zero
    big[-1, -1] = 1.0
    m = _mlp()
    X = torch.randn(3000, 5, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        ref = m.act1(m.fc1(X)).numpy()
    for threshold in (64 << 20, 1):  # the plain allocation, then the mapped one for any size
        monkeypatch.setattr(C, "_PREFAULT_MIN_BYTES", threshold)
        acts = tm.collect(m, X, layers=["act1"], batch_size=256, progress=False)
        root = acts["act1"]
        while isinstance(root.base, np.ndarray):
            root = root.base
        mapped = isinstance(root.base, memoryview) and isinstance(root.base.obj, mmap.mmap)
        assert mapped is (threshold == 1)
        np.testing.assert_array_equal(acts["act1"], ref)


def test_convnet_reductions_and_training_flag_restored():
    net = ConvNet()
    net.train()
    net.bn.eval()  # a submodule with its own flag
    X = torch.randn(40, 1, 6, 6, generator=torch.Generator().manual_seed(2))
    acts = collect(net, X, layers=["conv1", "relu"], reduce="flatten", batch_size=16, progress=False)
    mean = collect(net, X, layers=["relu"], reduce="mean", batch_size=16, progress=False)
    net.eval()
    with torch.no_grad():
        c = net.conv1(X)
        r = net.relu(net.bn(c))
    np.testing.assert_array_equal(acts["conv1"], c.flatten(1).numpy())
    np.testing.assert_array_equal(acts["relu"], r.flatten(1).numpy())
    np.testing.assert_allclose(mean["relu"], r.mean(dim=(2, 3)).numpy(), rtol=1e-6, atol=1e-7)
    net.train()
    net.bn.eval()
    collect(net, X, layers=["relu"], reduce="mean", progress=False)
    assert net.training and net.conv1.training and not net.bn.training
    with pytest.raises(InvalidParameterError, match="'last' applies to \\(batch, tokens, d\\)"):
        collect(net, X, layers=["relu"], reduce="last", progress=False)


class TokenModel(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(10, 4)
        self.block = nn.Linear(4, 4)

    def forward(self, input_ids, attention_mask=None):
        return (self.block(self.emb(input_ids)), "extra")


def test_token_reductions_attention_mask_and_tuple_outputs():
    torch.manual_seed(0)
    m = TokenModel()
    ids = torch.randint(0, 10, (6, 5))
    mask = torch.ones(6, 5, dtype=torch.long)
    mask[:3, 3:] = 0  # right padding on three rows
    batch = {"input_ids": ids, "attention_mask": mask}
    last = collect(m, batch, layers=["block"], reduce="last", progress=False)
    mean = collect(m, batch, layers=["block"], reduce="mean", progress=False)
    pos0 = collect(m, batch, layers=["block"], reduce=0, progress=False)
    with torch.no_grad():
        h = m.block(m.emb(ids))
    expected_last = torch.stack([h[i, 2] if i < 3 else h[i, 4] for i in range(6)])
    np.testing.assert_array_equal(last["block"], expected_last.numpy())
    exp_mean = torch.stack([h[i, :3].mean(0) if i < 3 else h[i].mean(0) for i in range(6)])
    np.testing.assert_allclose(mean["block"], exp_mean.numpy(), rtol=1e-6)
    np.testing.assert_array_equal(pos0["block"], h[:, 0].numpy())
    # the whole model returns a tuple: first tensor by default, or a selector
    whole = collect(nn.Sequential(m), batch["input_ids"], layers=["0"], reduce="flatten", progress=False)
    np.testing.assert_array_equal(whole["0"], h.flatten(1).numpy())
    sel = collect(nn.Sequential(m), batch["input_ids"], layers=["0"], reduce="flatten",
                  select=lambda out: out[0] * 2, progress=False)
    np.testing.assert_array_equal(sel["0"], 2 * h.flatten(1).numpy())


def test_layer_patterns_predicates_and_unknown_names():
    m = nn.Sequential()
    for i in range(3):
        blk = nn.Sequential()
        blk.add_module("mlp", nn.Linear(3, 3))
        blk.add_module("act", nn.ReLU())
        m.add_module(f"blocks{i}", blk)
    wrapper = nn.Module()
    wrapper.blocks = nn.ModuleList([nn.Sequential(nn.Linear(3, 3)) for _ in range(3)])
    wrapper.forward = lambda x: [b(x) for b in wrapper.blocks][-1]
    X = torch.randn(8, 3)
    a = collect(m, X, layers="blocks*.mlp", progress=False)
    assert a.layers == ["blocks0.mlp", "blocks1.mlp", "blocks2.mlp"]
    b = collect(m, X, layers=lambda name, mod: isinstance(mod, nn.ReLU), progress=False)
    assert b.layers == ["blocks0.act", "blocks1.act", "blocks2.act"]
    c = collect(wrapper, X, layers="blocks.*.0", progress=False)
    assert c.layers == ["blocks.0.0", "blocks.1.0", "blocks.2.0"]
    with pytest.raises(UnknownNameError, match="closest valid names: 'blocks1.mlp'"):
        collect(m, X, layers=["blocks1.mpl"], progress=False)
    with pytest.raises(UnknownNameError, match="matches no module"):
        collect(m, X, layers=["decoder.*"], progress=False)


def test_inputs_forms_agree_and_labels():
    m = _mlp()
    X = torch.randn(50, 5)
    y = torch.arange(50) % 3
    ref = collect(m, X, layers=["act2"], batch_size=50, progress=False)
    dl = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(X, y), batch_size=7)
    from_dl = collect(m, dl, layers=["act2"], progress=False)
    from_list = collect(m, [X[:20], X[20:]], layers=["act2"], progress=False)
    from_np = collect(m, X.numpy().astype(np.float64), layers=["act2"], batch_size=9, progress=False)
    # different batch splits change BLAS blocking, so agreement is to float32 rounding
    for other in (from_dl, from_list):
        np.testing.assert_allclose(other["act2"], ref["act2"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(from_np["act2"], ref["act2"], rtol=1e-6)
    np.testing.assert_array_equal(from_dl.labels, y.numpy())


def test_bad_inputs_raise_clearly():
    m = _mlp()
    with pytest.raises(InvalidParameterError, match="inputs: expected at least one sample"):
        collect(m, torch.zeros(0, 5), layers=["fc1"], progress=False)
    with pytest.raises(InvalidParameterError, match="batch_size"):
        collect(m, torch.zeros(3, 5), layers=["fc1"], batch_size=0, progress=False)
    with pytest.raises(InvalidParameterError, match="model: expected a torch.nn.Module"):
        collect(lambda x: x, torch.zeros(3, 5), layers=["fc1"], progress=False)
    bad = _mlp()
    with torch.no_grad():
        bad.fc2.weight[0, 0] = float("nan")
    with pytest.raises(NonFiniteError, match=r"layer 'act2': \d+ non-finite"):
        collect(bad, torch.randn(10, 5), layers=["fc1", "act2"], progress=False)
    # infinities of either sign (their sum is NaN), named with their batch and rows; large finite
    # values whose float32 sum overflows are kept, not refused
    ident = nn.Sequential(nn.Identity())
    X = torch.randn(40, 3)
    X[25, 1], X[27, 0] = float("inf"), -float("inf")
    with pytest.raises(NonFiniteError, match=r"layer '0': 2 non-finite .* batch 2, in 2 row\(s\): 25, 27"):
        collect(ident, X, layers=["0"], batch_size=10, progress=False)
    big = torch.full((8, 4), 3e38)
    acts = collect(ident, big, layers=["0"], batch_size=8, progress=False)
    np.testing.assert_array_equal(acts["0"], big.numpy())

    class Squeeze(nn.Module):
        def forward(self, x):
            return x.sum(dim=1)

    seq = nn.Sequential(Squeeze())
    with pytest.raises(InvalidParameterError, match="pass reduce=callable"):
        collect(seq, torch.randn(4, 3), layers=["0"], progress=False)
    ok = collect(seq, torch.randn(4, 3), layers=["0"], reduce=lambda t: t[:, None], progress=False)
    assert ok["0"].shape == (4, 1)


class Flaky(nn.Module):
    """A model that raises on a chosen call, to interrupt a collection."""

    def __init__(self, inner, fail_at):
        super().__init__()
        self.inner = inner
        self.fail_at = fail_at
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        if self.calls == self.fail_at:
            raise RuntimeError("interrupted")
        return self.inner(x)


def test_store_roundtrip_resume_and_mismatch(tmp_path):
    X = torch.randn(530, 5, generator=torch.Generator().manual_seed(3))
    ids = np.array([f"s{i}" for i in range(530)])
    ref = collect(Flaky(_mlp(), 0), X, layers=["inner.fc1", "inner.act2"], batch_size=64, progress=False,
                  sample_ids=ids)
    flaky = Flaky(_mlp(), fail_at=5)
    with pytest.raises(RuntimeError, match="interrupted"):
        collect(flaky, X, layers=["inner.fc1", "inner.act2"], batch_size=64, store=tmp_path / "s",
                progress=False, sample_ids=ids)
    assert all(not mod._forward_hooks for mod in flaky.modules())
    log = (tmp_path / "s" / "journal" / "batches.jsonl").read_text().splitlines()
    assert [json.loads(line)["k"] for line in log] == list(range(4))
    flaky.calls = 0
    flaky.fail_at = 0
    resumed = collect(flaky, X, layers=["inner.fc1", "inner.act2"], batch_size=64, store=tmp_path / "s",
                      progress=False, sample_ids=ids)
    assert flaky.calls == 9 - 4  # only the missing batches ran
    assert isinstance(resumed["inner.fc1"], np.memmap)
    for name in ref.layers:
        np.testing.assert_array_equal(resumed[name], ref[name])
    np.testing.assert_array_equal(resumed.sample_ids, ids)
    # a finished store is a cache for the same arguments, and refuses different ones
    again = collect(flaky, X, layers=["inner.fc1", "inner.act2"], batch_size=64, store=tmp_path / "s",
                    progress=False, sample_ids=ids)
    assert flaky.calls == 5
    np.testing.assert_array_equal(again["inner.act2"], ref["inner.act2"])
    with pytest.raises(StoreMismatchError, match="different arguments"):
        collect(flaky, X, layers=["inner.fc1"], batch_size=64, store=tmp_path / "s", progress=False)
    # an interrupted store with other arguments also refuses
    f2 = Flaky(_mlp(seed=1), fail_at=2)
    with pytest.raises(RuntimeError):
        collect(f2, X, layers=["inner.fc1"], batch_size=64, store=tmp_path / "t", progress=False)
    with pytest.raises(StoreMismatchError):
        collect(Flaky(_mlp(seed=2), 0), X, layers=["inner.fc1"], batch_size=64, store=tmp_path / "t",
                progress=False)
    # changed inputs cannot resume
    f2.fail_at = 0
    with pytest.raises(StoreMismatchError, match="input batch 0 differs"):
        collect(f2, X + 1, layers=["inner.fc1"], batch_size=64, store=tmp_path / "t", progress=False)


def test_save_load_subsample_select_align(tmp_path):
    rng = np.random.default_rng(0)
    acts = Activations({"a": rng.normal(size=(100, 4)), "b": rng.normal(size=(100, 2))},
                       labels=np.arange(100) % 2, meta={"model": "x"})
    acts.save(tmp_path / "st")
    back = Activations.load(tmp_path / "st")
    for k in acts:
        np.testing.assert_array_equal(back[k], acts[k])
    np.testing.assert_array_equal(back.labels, acts.labels)
    assert back.meta["model"] == "x"
    with pytest.raises(InvalidParameterError, match="not empty"):
        acts.save(tmp_path / "st")
    sub = acts.subsample(10, method="random", seed=1)
    assert sub.n_samples == 10 and np.all(np.diff(sub.sample_ids) > 0)
    np.testing.assert_array_equal(sub["a"], acts["a"][sub.sample_ids])
    np.testing.assert_array_equal(acts.subsample(10, seed=1).sample_ids, sub.sample_ids)
    mm = acts.subsample(10, method="maxmin", seed=0)
    assert mm.meta["subsample"]["cover_radius"] > 0
    assert acts.select(["b"]).layers == ["b"]
    other = acts.take(np.arange(50, 100)[::-1])
    a2, b2, rep = acts.align(other)
    np.testing.assert_array_equal(a2.sample_ids, b2.sample_ids)
    assert rep == {"n_common": 50, "dropped_from_first": 50, "dropped_from_second": 0}
    with pytest.raises(UnknownNameError, match="closest valid names: 'a'"):
        acts["aa"]
    with pytest.raises(NonFiniteError, match="layer 'x'"):
        Activations({"x": np.array([[np.nan], [1.0]])})
    with pytest.raises(InvalidParameterError, match="rows like the other layers"):
        Activations({"x": np.zeros((3, 1)), "y": np.zeros((2, 1))})


def test_from_mapping_drops_aliases_and_reduces():
    base = torch.randn(4, 3, 2)
    cache = type("Cache", (), {})()
    cache.cache_dict = {"blocks.0.hook_resid_post": base, "blocks.1.hook_resid_pre": base,
                        "ln_final.hook_normalized": base + 1}
    acts = Activations.from_mapping(cache, reduce="last")
    assert acts.layers == ["blocks.0.hook_resid_post", "ln_final.hook_normalized"]
    assert acts.meta["aliases"] == {"blocks.1.hook_resid_pre": "blocks.0.hook_resid_post"}
    np.testing.assert_array_equal(acts["blocks.0.hook_resid_post"], base[:, -1].numpy())
    hs = Activations.from_mapping((base, base * 2), reduce="mean", attention_mask=False)
    assert hs.layers == ["embeddings", "encoder.layer.0"]  # as collect names BERT-style modules
    np.testing.assert_allclose(hs["encoder.layer.0"], (base * 2).mean(1).numpy(), rtol=1e-6)
    assert Activations.from_mapping((base,), prefix="h.", attention_mask=False).layers == ["h.0"]


def test_in_place_op_after_a_recorded_layer_does_not_alter_it():
    # ReLU(inplace=True) overwrites the Linear's output after its hook fired; the rows were copied
    # out at hook time. 4,200 x 4,096 floats (69 MB) also takes the pre-faulted allocation.
    g = torch.Generator().manual_seed(0)
    m = nn.Sequential(nn.Linear(8, 4096), nn.ReLU(inplace=True))
    X = torch.randn(4200, 8, generator=g)
    acts = collect(m, X, layers=["0", "1"], batch_size=1000, progress=False)
    with torch.no_grad():
        h = m[0](X)
    np.testing.assert_array_equal(acts["0"], h.numpy())
    assert (acts["0"] < 0).any()
    np.testing.assert_array_equal(acts["1"], torch.relu(h).numpy())


def test_in_place_op_after_a_recorded_layer_does_not_alter_the_store(tmp_path):
    # to a store the hook writes the Linear's output out before ReLU(inplace=True) overwrites it
    g = torch.Generator().manual_seed(0)
    m = nn.Sequential(nn.Linear(8, 64), nn.ReLU(inplace=True))
    X = torch.randn(300, 8, generator=g)
    acts = collect(m, X, layers=["0", "1"], batch_size=64, progress=False, store=tmp_path / "s")
    with torch.no_grad():
        h = m[0](X)
    np.testing.assert_array_equal(np.asarray(acts["0"]), h.numpy())
    assert (np.asarray(acts["0"]) < 0).any()
    np.testing.assert_array_equal(np.asarray(acts["1"]), torch.relu(h).numpy())
    assert Activations.load(tmp_path / "s", verify=True).n_samples == 300


@pytest.mark.parametrize("ids, ok", [
    (np.arange(6), True),                       # the default: sorted and distinct, no sort needed
    (np.array([5, 3, 9, 0, 1, 2]), True),       # distinct but unsorted: checked by np.unique
    (np.array(list("abcdef")), True),           # string ids
    (np.array([0, 1, 2, 2, 3, 4]), False),      # sorted with a repeat
    (np.array([4, 1, 4, 0, 2, 3]), False),      # unsorted with a repeat
    (np.array(list("abcdea")), False),
])
def test_sample_ids_must_be_unique(ids, ok):
    X = {"a": np.zeros((6, 2), dtype=np.float32)}
    if ok:
        assert list(Activations(X, sample_ids=ids).sample_ids) == list(ids)
    else:
        with pytest.raises(InvalidParameterError, match="sample_ids.*1 duplicates"):
            Activations(X, sample_ids=ids)


def test_large_results_get_populated_pages_and_small_ones_np_empty():
    # the in-memory sink takes torch's threaded copy only into pages mapped up front
    from topo_mi.activations._collect import _PREFAULT_MIN_BYTES, _empty_prefaulted, _populated

    big = _empty_prefaulted((_PREFAULT_MIN_BYTES // 4 // 512, 512))
    small = _empty_prefaulted((1000, 512))
    assert big.dtype == small.dtype == np.float32 and big.flags.writeable and big.flags.c_contiguous
    assert _populated(big) and not _populated(small)
    assert not _populated(np.empty((10, 3), dtype=np.float32))
