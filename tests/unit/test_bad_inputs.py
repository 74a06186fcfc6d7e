"""Bad input across the public API: each case raises a topo_mi error that names the parameter.

One row per case: (id, call, error type, text the message must contain). A property-based test
then throws random dtypes, shapes and non-finite values at the array-taking functions: each
returns finite results or raises a ``topo_mi.errors`` error, never another exception type.
"""
import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from topo_mi import compare, datasets, geometry, models, topology
from topo_mi.errors import (InvalidParameterError, NonFiniteError, ResourceError, TopoMIError,
                            UnknownNameError)

RNG = np.random.default_rng(0)
X = RNG.normal(size=(30, 3))


def _graph():
    import networkx as nx

    g = nx.DiGraph()
    g.add_edge(("input", 0), ("out", 0), weight=2.0, attribution=1.0)
    return g


def _top_paths(**kw):
    from topo_mi.circuits import top_paths

    return top_paths(_graph(), "input", "out", **kw)


def _flow(**kw):
    from topo_mi.dynamics import FlowStep, flow_step

    return (flow_step if kw.pop("factory", False) else FlowStep)(lambda x: -x, **kw)


def _kaplan_yorke(v):
    from topo_mi.dynamics import kaplan_yorke

    return kaplan_yorke(v)


def _find_circuit(**kw):
    from topo_mi.circuits import find_circuit

    m = models.MLP(3, [4], 2, seed=0)
    return find_circuit(m, torch.randn(16, 3), **kw)


def _compare_perm():
    from topo_mi.activations import Activations
    from topo_mi.pipelines import compare as cmp

    a = Activations.from_mapping({"l": RNG.normal(size=(50, 4)).astype(np.float32)})
    return cmp(a, a, methods=("cka",), n_perm=10**8)


def _betti_boot():
    from topo_mi.activations import Activations
    from topo_mi.pipelines import betti_profile

    a = Activations.from_mapping({"l": RNG.normal(size=(50, 2)).astype(np.float32)})
    return betti_profile(a, n_boot=10**8, max_dim=0)


def _collect(x, **kw):
    import topo_mi as tm

    return tm.collect(models.MLP(3, [4], 2, seed=0), x, layers=["act1"], progress=False, **kw)


CASES = [
    # collect: dtypes, widths, devices, labels
    ("collect-complex", lambda: _collect(torch.randn(8, 3, dtype=torch.complex64)), InvalidParameterError,
     "inputs: expected real-valued"),
    ("collect-int64", lambda: _collect(torch.ones(8, 3, dtype=torch.int64)), InvalidParameterError,
     "inputs: expected rows of width 3 and dtype torch.float32"),
    ("collect-bool", lambda: _collect(torch.ones(8, 3, dtype=torch.bool)), InvalidParameterError,
     "got shape (8, 3) and dtype torch.bool"),
    ("collect-wrong-width", lambda: _collect(torch.randn(8, 5)), InvalidParameterError, "rows of width 3"),
    ("collect-object", lambda: _collect(np.zeros((8, 3), dtype=object)), InvalidParameterError, "inputs:"),
    ("collect-list-of-rows", lambda: _collect([[1.0, 2.0, 3.0]] * 4), InvalidParameterError, "np.asarray"),
    ("collect-bad-device", lambda: _collect(torch.randn(8, 3), device="tpu9"), InvalidParameterError,
     "device: expected a torch device"),
    ("collect-labels-length", lambda: _collect(torch.randn(8, 3), labels=np.arange(5)), InvalidParameterError,
     "labels"),
    ("collect-nan-rows", lambda: _collect(torch.tensor([[0.0] * 3, [float("nan")] * 3, [1.0] * 3])),
     NonFiniteError, "row(s): 1"),
    # dtypes
    ("persistence-complex", lambda: topology.persistence(X.astype(np.complex128), max_dim=0),
     InvalidParameterError, "complex"),
    ("spectrum-complex-tensor", lambda: geometry.spectrum(torch.randn(10, 3, dtype=torch.complex64)),
     InvalidParameterError, "complex"),
    ("persistence-object", lambda: topology.persistence(np.array([[1, "a"], [2, "b"]], dtype=object)),
     InvalidParameterError, "X: expected a real numeric array"),
    ("spectrum-ragged-list", lambda: geometry.spectrum([[1.0, 2.0], [3.0]]),
     InvalidParameterError, "X: expected an array-like of numbers"),
    ("spectrum-sparse", lambda: geometry.spectrum(__import__("scipy.sparse").sparse.random(10, 4, density=0.5)),
     InvalidParameterError, "toarray()"),
    ("precomputed-complex", lambda: topology.persistence(np.eye(3, dtype=complex), metric="precomputed"),
     InvalidParameterError, "complex"),
    # values accepted silently before
    ("bottleneck-death-below-birth", lambda: topology.bottleneck(np.array([[1.0, 0.5]]), np.array([[0.0, 1.0]])),
     InvalidParameterError, "death < birth"),
    ("spectrum-n_components-0", lambda: geometry.spectrum(X, n_components=0), InvalidParameterError,
     "n_components"),
    ("flowstep-negative-dt", lambda: _flow(dt=-0.1), InvalidParameterError, "dt"),
    ("flowstep-unknown-method", lambda: _flow(dt=0.1, method="rk45"), UnknownNameError, "method"),
    ("flow_step-unknown-method", lambda: _flow(dt=0.1, method="eulr", factory=True), UnknownNameError,
     "did you mean 'euler'"),
    ("kaplan-yorke-nan", lambda: _kaplan_yorke([0.1, np.nan]), NonFiniteError, "exponents"),
    ("kaplan-yorke-empty", lambda: _kaplan_yorke([]), InvalidParameterError, "exponents"),
    ("find-circuit-steps-0", lambda: _find_circuit(steps=0), InvalidParameterError, "steps"),
    ("cka-2-samples", lambda: compare.cka(X[:2], X[:2]), InvalidParameterError, "at least 4 samples"),
    ("seed-negative", lambda: geometry.intrinsic_dimension(X, n_boot=2, seed=-1), InvalidParameterError, "seed"),
    ("model-seed-negative", lambda: models.MLP(2, [3], 2, seed=-1), InvalidParameterError, "seed"),
    ("top-paths-misspelt-weight", lambda: _top_paths(weight="wieght"), UnknownNameError, "'weight'"),
    # sizes checked before allocating
    ("dataset-huge-n", lambda: datasets.make("circle", n=10**12), ResourceError, "n:"),
    ("dataset-tiny-resolution", lambda: datasets.make("naitzat_d1", resolution=1e-6), ResourceError,
     "resolution"),
    ("model-huge-widths", lambda: models.MLP(10, [100000, 100000], 2), ResourceError, "widths"),
    ("compare-huge-n_perm", _compare_perm, ResourceError, "n_perm"),
    ("betti-huge-n_boot", _betti_boot, ResourceError, "n_boot"),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input_raises_a_named_error(case):
    _, call, cls, needle = case
    with pytest.raises(cls) as info:
        call()
    assert isinstance(info.value, TopoMIError)
    assert needle in str(info.value), str(info.value)


def test_nonfinite_error_names_the_rows():
    bad = X.copy()
    bad[[3, 17], 1] = np.nan
    with pytest.raises(NonFiniteError, match=r"rows 3, 17"):
        geometry.spectrum(bad)


def test_half_precision_tensors_are_widened_not_refused():
    t = torch.randn(40, 3).to(torch.bfloat16)
    np.testing.assert_array_equal(_collect(t)["act1"], _collect(t.float())["act1"])
    s = geometry.spectrum(t)
    ref = geometry.spectrum(t.float().numpy())
    np.testing.assert_allclose(s.singular_values, ref.singular_values, rtol=1e-12)
    r = topology.persistence(t, max_dim=0)
    assert len(r.diagrams[0]) == 40 and np.isinf(r.diagrams[0][:, 1]).sum() == 1


class Pickled:
    """An arbitrary object: torch.load(weights_only=True) must refuse it."""


def test_checkpoint_refusal_gives_no_unsafe_advice(tmp_path):
    p = tmp_path / "bad.pt"
    torch.save({"fc1.weight": Pickled()}, p)
    with pytest.raises(InvalidParameterError) as info:
        models.load_checkpoint(p, models.MLP(2, [3], 2))
    msg = str(info.value)
    assert "weights_only=False" not in msg and "pickled object" in msg and "path:" in msg


def test_strict_json_round_trip(tmp_path):
    import json

    from topo_mi._io import read_json, write_json

    write_json(tmp_path / "a.json", {"x": float("nan"), "y": [np.float64("inf"), -np.inf, 1.5],
                                     "z": np.array([1.0, np.nan])})
    text = (tmp_path / "a.json").read_text()
    json.loads(text, parse_constant=lambda c: pytest.fail(f"non-standard JSON constant {c}"))
    back = read_json(tmp_path / "a.json")
    assert np.isnan(back["x"]) and back["y"][:2] == [np.inf, -np.inf] and back["y"][2] == 1.5
    assert back["z"][0] == 1.0 and np.isnan(back["z"][1])


def test_results_with_nonfinite_values_save_and_load(tmp_path):
    import json

    r = topology.persistence(X, max_dim=1)
    r.save(tmp_path / "r")
    json.loads((tmp_path / "r" / "result.json").read_text(),
               parse_constant=lambda c: pytest.fail(f"non-standard JSON constant {c}"))
    back = type(r).load(tmp_path / "r")
    assert np.array_equal(back.diagrams[0], r.diagrams[0])


def _dead_worker(i):
    import os

    if i == 1 and not os.path.exists(os.environ["TOPO_MI_TEST_FLAG"]):
        open(os.environ["TOPO_MI_TEST_FLAG"], "w").close()
        os._exit(1)  # the worker dies once: the retry must rerun its task
    return i * i


def _always_dies(i):
    import os

    if i == 1:
        os._exit(1)
    return i


def test_process_pool_retries_a_dead_worker_once(tmp_path, monkeypatch):
    from topo_mi.errors import WorkerError
    from topo_mi.parallel import ProcessExecutor

    monkeypatch.setenv("TOPO_MI_TEST_FLAG", str(tmp_path / "died"))
    ex = ProcessExecutor(2, mp_context="fork")
    assert ex.map(_dead_worker, range(4), progress=False) == [0, 1, 4, 9]
    with pytest.raises(WorkerError, match=r"task\(s\) 1"):
        ex.map(_always_dies, range(3), desc="demo", progress=False)
    with pytest.raises(InvalidParameterError, match="n_workers"):
        ProcessExecutor(0)


# ---------------------------------------------------------------------------------------------
# property-based: random dtypes, shapes and non-finite values
# ---------------------------------------------------------------------------------------------
DTYPES = ["float64", "float32", "float16", "int64", "int8", "bool", "complex64", "object", "U3"]


@st.composite
def arrays(draw):
    dtype = draw(st.sampled_from(DTYPES))
    ndim = draw(st.integers(0, 3))
    shape = tuple(draw(st.lists(st.integers(0, 7), min_size=ndim, max_size=ndim)))
    a = np.random.default_rng(draw(st.integers(0, 2**16))).normal(size=shape)
    if draw(st.booleans()) and a.size:
        a.flat[draw(st.integers(0, a.size - 1))] = draw(st.sampled_from([np.nan, np.inf, -np.inf]))
    if dtype == "object":
        return a.astype(object)
    if dtype == "U3":
        return a.astype(str).astype("U3")
    with np.errstate(invalid="ignore", over="ignore"):
        return a.astype(dtype) if dtype not in ("int64", "int8", "bool") else np.nan_to_num(a).astype(dtype)


FUNCTIONS = {
    "persistence": lambda A: np.nan_to_num(topology.persistence(A, max_dim=1).diagrams[0], posinf=0.0),
    "spectrum": lambda A: geometry.spectrum(A).singular_values,
    "rank_at": lambda A: np.array([geometry.rank_at(A, 0.1).rank]),
    "intrinsic_dimension_mle": lambda A: np.array([geometry.intrinsic_dimension(A, method="mle").value]),
    "cka": lambda A: np.array([compare.cka(A, A)]),
    "bottleneck": lambda A: np.atleast_1d(topology.bottleneck(A, A)),
}


@pytest.mark.parametrize("fn", sorted(FUNCTIONS))
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(A=arrays())
def test_random_arrays_give_finite_results_or_topo_mi_errors(fn, A):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            out = FUNCTIONS[fn](A)
        except TopoMIError:
            return
    out = np.asarray(out, dtype=np.float64)
    assert np.isfinite(out).all() or fn in ("rank_at", "intrinsic_dimension_mle"), (fn, A, out)
