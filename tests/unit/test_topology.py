"""topo_mi.topology and topo_mi.pipelines.betti_profile: API, errors, save/load, plots."""
import importlib.util
import json
import re
import subprocess
import sys

import numpy as np
import pytest

from topo_mi import topology as T
from topo_mi._results import load_result
from topo_mi.errors import DependencyError, InvalidParameterError, NonFiniteError, ResourceError, UnknownNameError
from topo_mi.pipelines import BettiProfile, betti_profile
from topo_mi.topology import PersistenceResult, persistence

SQUARE = np.array([[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]])


@pytest.fixture(scope="module")
def circle():
    rng = np.random.default_rng(0)
    t = rng.uniform(0, 2 * np.pi, 120)
    return np.column_stack([np.cos(t), np.sin(t)]) + 0.05 * rng.normal(size=(120, 2))


@pytest.fixture(scope="module")
def circle_result(circle):
    return persistence(circle, max_dim=1)


# -- import cost ---------------------------------------------------------------------------------
def test_importing_topology_does_not_import_heavy_backends():
    code = ("import sys, topo_mi, topo_mi.topology, topo_mi.pipelines.topology; "
            "print(sorted(m for m in ('gudhi', 'ripser', 'sklearn', 'matplotlib', 'torch') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


# -- the result ----------------------------------------------------------------------------------
def test_canonical_diagrams(circle_result):
    r = circle_result
    assert isinstance(r, PersistenceResult)
    assert len(r.diagrams) == 2 and r.max_dim == 1
    for d in r.diagrams:
        assert d.dtype == np.float64 and d.ndim == 2 and d.shape[1] == 2
        assert (d[:, 1] > d[:, 0]).all()
        pers = d[:, 1] - d[:, 0]
        assert (np.diff(pers) <= 0).all()  # longest first
    assert np.isinf(r.diagrams[0][0, 1]) and np.isfinite(r.diagrams[0][1:, 1]).all()
    assert len(r.diagrams[0]) == 120 and (r.diagrams[0][:, 0] == 0).all()
    assert r.backend == "gudhi" and r.coeff == 2 and r.metric == "euclidean"
    assert r.landmark_indices is None and r.cover_radius == 0 and r.bottleneck_bound == 0
    assert r.n_landmarks == r.n_points == 120 and np.isinf(r.threshold)


def test_betti_numbers_use_half_open_intervals():
    r = persistence(SQUARE)
    assert r.betti_numbers(0.999).tolist() == [4, 0]
    assert r.betti_numbers(1.0).tolist() == [1, 1]        # born at 1: alive at 1
    assert r.betti_numbers(np.sqrt(2)).tolist() == [1, 0]  # dead at sqrt 2: gone at sqrt 2
    curve = r.betti_curve([0, 1, 1.2, np.sqrt(2), 5])
    assert curve.shape == (2, 5) and curve.dtype == np.int64
    np.testing.assert_array_equal(curve, [[4, 1, 1, 1, 1], [0, 1, 1, 0, 0]])
    np.testing.assert_array_equal(T.betti_curve(r, [1.2]), [[1], [1]])
    np.testing.assert_array_equal(T.betti_curve(r.diagrams, [1.2]), [[1], [1]])
    np.testing.assert_array_equal(T.betti_numbers(r.to_gudhi(), 1.2), [1, 1])


def test_threshold_essential_classes_and_refused_scales():
    r = persistence(SQUARE, threshold=1.2)
    np.testing.assert_array_equal(r.diagrams[1], [[1.0, np.inf]])  # still alive at the threshold
    assert r.threshold == 1.2
    assert r.betti_numbers(1.1).tolist() == [1, 1]
    with pytest.raises(InvalidParameterError, match="threshold"):
        r.betti_numbers(1.3)
    with pytest.raises(InvalidParameterError, match="grid"):
        r.betti_curve([0, 2.0])
    below = persistence(SQUARE, threshold=0.5, max_dim=0)
    assert np.isinf(below.diagrams[0][:, 1]).all() and len(below.diagrams[0]) == 4


def test_summaries(circle_result):
    r = circle_result
    s = r.summary()
    assert s["n_bars_H1"] == len(r.diagrams[1]) and s["n_essential_H0"] == 1
    d1 = r.diagrams[1]
    assert r.total_persistence(1) == pytest.approx(np.sum(d1[:, 1] - d1[:, 0]))
    assert r.total_persistence(1, p=2) == pytest.approx(np.sum((d1[:, 1] - d1[:, 0]) ** 2))
    assert r.total_persistence().shape == (2,)
    lengths = d1[:, 1] - d1[:, 0]
    q = lengths / lengths.sum()
    assert r.persistence_entropy(1) == pytest.approx(-(q * np.log(q)).sum())
    assert 0 <= r.persistence_entropy(1, normalize=True) <= 1
    assert T.persistence_entropy(np.array([[0, 1.0], [0, 1.0]]), normalize=True) == pytest.approx(1.0)
    top = r.longest_bars(3, dim=1)
    np.testing.assert_array_equal(top, d1[:3])
    assert np.isinf(r.longest_bars(1, dim=0)[0, 1])
    assert np.isfinite(r.longest_bars(1, dim=0, include_essential=False)).all()
    assert r.n_bars_longer_than(0.5, dim=1) == 1
    assert r.n_bars_longer_than(0.5).tolist() == [1, 1]
    assert "PersistenceResult(" in repr(r)


def test_exports(circle_result):
    r = circle_result
    g = r.to_gudhi()
    assert g[0][0] == 1 and all(isinstance(b, float) for _, (b, _) in g)
    assert len(g) == sum(len(d) for d in r.diagrams)
    rp = r.to_ripser()
    assert np.isinf(rp["dgms"][0][-1, 1]) and np.isfinite(rp["dgms"][0][:-1, 1]).all()  # ripser: last
    assert (np.diff(rp["dgms"][0][:-1, 1]) >= 0).all()
    np.testing.assert_array_equal(rp["idx_perm"], np.arange(120))
    # round trip through gudhi's own bottleneck distance
    import gudhi

    d1 = np.array([p for dim, p in g if dim == 1])
    assert gudhi.bottleneck_distance(d1, r.diagrams[1]) < 1e-300


def test_save_load_roundtrip(tmp_path, circle):
    r = persistence(circle, max_dim=1, n_landmarks=50, seed=3)
    r.save(tmp_path / "res")
    back = PersistenceResult.load(tmp_path / "res")
    assert isinstance(back, PersistenceResult)
    for a, b in zip(r.diagrams, back.diagrams):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(back.landmark_indices, r.landmark_indices)
    assert back.bottleneck_bound == r.bottleneck_bound and back.seed == 3
    assert back.summary() == r.summary()
    d = r.to_dict()
    json.dumps(d)  # plain data (inf as Infinity)
    assert d["type"] == "PersistenceResult" and d["diagrams"][0][0][1] == float("inf")
    assert isinstance(load_result(tmp_path / "res"), PersistenceResult)


# -- inputs ----------------------------------------------------------------------------------------
def test_accepts_tensor_activations_layer_and_float32(circle):
    torch = pytest.importorskip("torch")
    ref = persistence(circle)
    t = persistence(torch.tensor(circle))
    np.testing.assert_array_equal(ref.diagrams[1], t.diagrams[1])
    from topo_mi.activations import Activations

    acts = Activations({"fc1": circle})
    a = persistence(acts["fc1"])  # float32 layer
    assert T.bottleneck(ref, a).max() < 1e-6
    single = persistence(acts)  # one-layer container
    np.testing.assert_array_equal(single.diagrams[1], a.diagrams[1])
    with pytest.raises(InvalidParameterError, match="single layer"):
        persistence(Activations({"a": circle, "b": circle}))


def test_precomputed_matches_euclidean(circle):
    from scipy.spatial.distance import cdist

    a = persistence(circle)
    b = persistence(cdist(circle, circle), metric="precomputed")
    assert T.bottleneck(a, b).max() < 1e-12


def test_cosine_and_correlation(circle):
    X = circle + np.array([3.0, 0.5])
    U = X / np.linalg.norm(X, axis=1, keepdims=True)
    from scipy.spatial.distance import cdist

    ref = persistence(cdist(U, U, "sqeuclidean") / 2, metric="precomputed", max_dim=0)
    cos = persistence(X, metric="cosine", max_dim=0)
    assert T.bottleneck(ref, cos).max() < 1e-12
    Z = np.random.default_rng(1).normal(size=(40, 6))
    corr = persistence(Z, metric="correlation", max_dim=1)
    ref = persistence(1 - np.corrcoef(Z), metric="precomputed", max_dim=1)
    assert T.bottleneck(corr, ref).max() < 1e-9


def test_knn_geodesic_integer_scales():
    X = np.column_stack([np.arange(10.0), np.zeros(10)])  # a path: hop distance = index gap
    D = T.knn_geodesic_distances(X, 2)
    np.testing.assert_array_equal(D, np.abs(np.subtract.outer(np.arange(10), np.arange(10))))
    sparse = T.knn_geodesic_distances(X, 2, max_hops=2).toarray()
    assert sparse.max() == 2 and (sparse[np.triu_indices(10, 1)] > 0).sum() == 9 + 8
    r = persistence(X, metric="knn_geodesic", k=2, max_dim=0)
    assert r.betti_numbers(0).tolist() == [10] and r.betti_numbers(1).tolist() == [1]
    # two far clusters: the kNN graph is disconnected, hop distance inf between them
    Y = np.vstack([X, X + 100])
    r = persistence(Y, metric="knn_geodesic", k=3, max_dim=1)
    assert np.isinf(r.diagrams[0][:, 1]).sum() == 2


def test_coefficients_and_backend_choice(circle):
    r = persistence(circle, coeff=7)
    assert r.coeff == 7
    assert persistence(circle, max_dim=0).backend == "mst"
    assert persistence(circle, max_dim=1).backend == "gudhi"
    assert persistence(circle, max_dim=0, backend="gudhi").backend == "gudhi"


def test_landmarks_are_recorded_and_deterministic(circle):
    a = persistence(circle, n_landmarks=30, seed=5)
    b = persistence(circle, n_landmarks=30, seed=5)
    np.testing.assert_array_equal(a.landmark_indices, b.landmark_indices)
    assert a.landmark_method == "maxmin" and a.n_landmarks == 30 and a.n_points == 120
    assert a.cover_radius > 0 and a.bottleneck_bound == 2 * a.cover_radius
    assert len(a.diagrams[0]) == 30
    c = persistence(circle, n_landmarks=30, landmarks="random", seed=5)
    assert c.landmark_method == "random" and not np.array_equal(np.sort(c.landmark_indices),
                                                                np.sort(a.landmark_indices))
    none_seed = persistence(circle, n_landmarks=30)
    assert none_seed.landmark_indices[0] == 0 and none_seed.seed is None
    full = persistence(circle, n_landmarks=120)  # all points: nothing left out
    assert full.landmark_indices is None and full.bottleneck_bound == 0
    g = persistence(circle, n_landmarks=30, seed=np.random.default_rng(0))
    assert isinstance(g.seed, int)


# -- errors ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("kwargs, exc, match", [
    ({"backend": "ripserr"}, UnknownNameError, "ripser"),
    ({"metric": "euclid"}, UnknownNameError, "euclidean"),
    ({"coeff": 4}, InvalidParameterError, "prime"),
    ({"coeff": 1}, InvalidParameterError, "coeff"),
    ({"max_dim": -1}, InvalidParameterError, "max_dim"),
    ({"threshold": -1.0}, InvalidParameterError, "threshold"),
    ({"n_landmarks": 10_000}, InvalidParameterError, "n_landmarks"),
    ({"landmarks": "kmeans"}, UnknownNameError, "maxmin"),
    ({"metric": "knn_geodesic"}, InvalidParameterError, "k: "),
    ({"k": 5}, InvalidParameterError, "knn_geodesic"),
    ({"backend": "mst", "max_dim": 1}, InvalidParameterError, "mst"),
    ({"seed": "x"}, InvalidParameterError, "seed"),
])
def test_parameter_errors(circle, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        persistence(circle, **kwargs)


def test_input_errors():
    with pytest.raises(NonFiniteError, match="1 of 4 rows"):
        persistence(np.array([[0, 0], [1, np.nan], [2, 2], [3, 3.0]]))
    with pytest.raises(InvalidParameterError, match="at least 2 points"):
        persistence(np.zeros((1, 3)))
    with pytest.raises(InvalidParameterError, match="2-D"):
        persistence(np.zeros(5))
    with pytest.raises(InvalidParameterError, match="square"):
        persistence(np.zeros((3, 4)), metric="precomputed")
    D = np.array([[0, 1, 2], [1, 0, 1], [2.5, 1, 0]])
    with pytest.raises(InvalidParameterError, match="symmetric"):
        persistence(D, metric="precomputed")
    with pytest.raises(InvalidParameterError, match="non-zero rows"):
        persistence(np.array([[0, 0], [1, 1], [2, 1.0]]), metric="cosine")
    with pytest.raises(InvalidParameterError, match="non-constant rows"):
        persistence(np.array([[1, 1], [1, 2], [2, 1.0]]), metric="correlation")


def test_refuses_complexes_that_do_not_fit():
    big = np.zeros((200_000, 2))  # the distance matrix alone would take 320 GB
    with pytest.raises(ResourceError, match="n_landmarks") as err:
        persistence(big)
    assert "GiB" in str(err.value)
    X = np.random.default_rng(0).normal(size=(400, 3))
    with pytest.raises(ResourceError, match="threshold"):
        persistence(X, max_dim=2, memory_limit=5_000_000)  # the matrix fits, the triangles do not
    r = persistence(X, max_dim=2, memory_limit=5_000_000, threshold=0.3)  # a threshold makes it fit
    assert r.threshold == 0.3
    assert isinstance(ResourceError("x"), MemoryError)


def test_giotto_ph_is_optional(circle):
    if importlib.util.find_spec("gph") is not None:
        r = persistence(circle, backend="giotto-ph")
        assert T.bottleneck(r, persistence(circle)).max() <= 1e-5
    else:
        with pytest.raises(DependencyError, match="giotto-ph"):
            persistence(circle, backend="giotto-ph")


# -- vectorisations and distances --------------------------------------------------------------------
def test_landscape_and_image():
    dgm = np.array([[0.0, 2.0], [1.0, 3.0], [0.5, np.inf]])
    grid = np.linspace(0, 3, 7)
    L = T.persistence_landscape(dgm, grid, n_layers=3)
    assert L.shape == (3, 7)
    np.testing.assert_allclose(L[0], [0, 0.5, 1, 0.5, 1, 0.5, 0])  # tents of [0, 2) and [1, 3)
    np.testing.assert_allclose(L[1], [0, 0, 0, 0.5, 0, 0, 0])
    np.testing.assert_allclose(L[2], 0)
    L2 = T.persistence_landscape(dgm, grid, n_layers=1, inf_death=3.0)
    assert L2[0, 3] == pytest.approx(1.0)
    img = T.persistence_image(dgm, resolution=(10, 8), bandwidth=0.2)
    assert img.shape == (8, 10) and (img >= 0).all()
    wide = T.persistence_image(dgm, resolution=(50, 50), bandwidth=0.05, birth_range=(-2, 3),
                               persistence_range=(-1, 4), weight="constant")
    assert wide.sum() == pytest.approx(2.0, rel=1e-3)  # two unit masses, all inside
    r = persistence(SQUARE)
    np.testing.assert_allclose(T.persistence_landscape(r, [1.2], dim=1, n_layers=1), [[0.2]])
    with pytest.raises(InvalidParameterError, match="dim"):
        T.persistence_landscape(r, [1.0])


def test_bottleneck_and_wasserstein():
    a = np.array([[0.0, 1.0], [0.0, np.inf]])
    b = np.array([[0.0, 1.2], [0.1, np.inf]])
    assert T.bottleneck(a, b) == pytest.approx(0.2)
    assert T.bottleneck(a, a) == 0.0
    assert T.wasserstein(a, b, p=1) == pytest.approx(0.3)
    assert T.wasserstein(a, b, p=2) == pytest.approx(np.sqrt(0.2**2 + 0.1**2))
    assert T.bottleneck(a, np.array([[0.0, 1.0]])) == np.inf  # different essential counts
    c = np.array([[0.0, 0.4]])
    assert T.wasserstein(c, np.zeros((0, 2)), p=1) == pytest.approx(0.2)  # to the diagonal
    assert T.bottleneck([a, c], [b, c]).tolist() == pytest.approx([0.2, 0.0])
    assert T.bottleneck([a, c], [b, c], dim=1) == 0.0
    # exact assignment agrees with hera on a larger pair
    rng = np.random.default_rng(0)
    x = np.sort(rng.uniform(0, 1, (60, 2)), axis=1)
    y = np.sort(rng.uniform(0, 1, (70, 2)), axis=1)
    from gudhi.hera import wasserstein_distance

    assert T.wasserstein(x, y, p=2) == pytest.approx(wasserstein_distance(x, y, order=2, internal_p=np.inf,
                                                                          delta=1e-6), rel=1e-4)
    with pytest.raises(InvalidParameterError, match="p"):
        T.wasserstein(a, b, p=0.5)


def test_distance_matrix(circle, circle_result):
    r2 = persistence(circle * 2)
    r3 = persistence(SQUARE)
    M = T.distance_matrix([circle_result, r2, r3])
    assert M.shape == (3, 3) and (np.diag(M) == 0).all() and np.array_equal(M, M.T)
    assert M[0, 1] == pytest.approx(T.bottleneck(circle_result, r2).max())
    W = T.distance_matrix([circle_result, r2], metric="wasserstein", p=2)
    per_dim = T.wasserstein(circle_result, r2, p=2)
    assert W[0, 1] == pytest.approx(np.sqrt(np.sum(per_dim**2)))
    H1 = T.distance_matrix([circle_result, r2], dim=1)
    assert H1[0, 1] == pytest.approx(T.bottleneck(circle_result, r2, dim=1))


# -- betti_profile --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def layers(circle):
    rng = np.random.default_rng(1)
    W = rng.normal(size=(2, 12))
    return {"input": circle, "hidden": np.maximum(circle @ W, 0), "squash": np.tanh(5 * circle[:, :1]) * [1, 0]}


def test_betti_profile(layers):
    prof = betti_profile(layers, max_dim=1, scale_rule="first_layer", seed=0)
    assert isinstance(prof, BettiProfile)
    assert prof.layers == ["input", "hidden", "squash"]
    assert prof.betti_curves.shape == (3, 2, len(prof.grid)) and prof.grid[0] == 0
    assert prof.betti_numbers.shape == (3, 2)
    assert prof.betti_numbers[0].tolist() == [1, 1]  # the scale sits inside the circle's bar
    assert prof.betti_numbers[2, 1] == 0             # collapsed onto a segment: no loop
    np.testing.assert_array_equal(prof.complexity, prof.betti_numbers.sum(axis=1))
    assert "H>=1" in prof.params["scale_rule"]
    np.testing.assert_array_equal(prof["input"].diagrams[1], persistence(layers["input"], seed=0).diagrams[1])
    with pytest.raises(UnknownNameError, match="input"):
        prof["inputs"]
    assert "betti[input]" in prof.summary()
    M = prof.distance_matrix()
    assert M.shape == (3, 3)


def test_betti_scale_rules_follow_each_layer(circle):
    from topo_mi.errors import TopoMIWarning

    # the same circle at two distance scales, like two layers of a network
    two = {"small": circle, "big": 50.0 * circle}
    with pytest.warns(TopoMIWarning, match=r"most points are isolated.*big \(β0 = 1\d\d of 120"):
        first = betti_profile(two, scale_rule="first_layer", seed=0)
    assert first.betti_numbers[1, 0] > 60 and first.scale == first.scales[1]
    prof = betti_profile(two, seed=0)  # default: each layer at a quantile of its own distances
    assert "0.2 quantile" in prof.params["scale_rule"] and np.isnan(prof.scale)
    np.testing.assert_allclose(prof.scales[1], 50.0 * prof.scales[0], rtol=1e-12)
    assert prof.betti_numbers.tolist() == [[1, 1], [1, 1]]
    from scipy.spatial.distance import pdist

    assert prof.scales[0] == pytest.approx(np.quantile(pdist(circle), 0.2))
    per = betti_profile(two, scale_rule="per_layer", seed=0)
    assert per.betti_numbers.tolist() == [[1, 1], [1, 1]]
    np.testing.assert_allclose(per.scales[1], 50.0 * per.scales[0], rtol=1e-9)
    assert prof.summary()["scale_rule"] == prof.params["scale_rule"]
    with pytest.raises(InvalidParameterError, match="scale_rule"):
        betti_profile(two, scale_rule="hops")
    with pytest.raises(UnknownNameError, match="scale_rule"):
        betti_profile(two, scale_rule="median")


def test_betti_profile_grid_scale_and_class(layers):
    labels = np.arange(120) % 2
    prof = betti_profile(layers, layers=["input", "hidden"], grid=[0, 0.5, 1.0], scale=0.5,
                         class_label=1, labels=labels, n_landmarks=30, seed=0)
    assert prof.layers == ["input", "hidden"] and prof.scale == 0.5
    np.testing.assert_array_equal(prof.grid, [0, 0.5, 1.0])
    assert prof.params["class_label"] == 1 and prof.params["n_samples"] == 60
    assert prof.results[0].n_points == 60 and prof.results[0].n_landmarks == 30
    with pytest.raises(InvalidParameterError, match="labels"):
        betti_profile(layers, class_label=1)
    with pytest.raises(InvalidParameterError, match="class_label"):
        betti_profile(layers, class_label=7, labels=labels)
    with pytest.raises(UnknownNameError, match="hidden"):
        betti_profile(layers, layers=["hiden"])
    with pytest.raises(InvalidParameterError, match="acts"):
        betti_profile({})


def test_betti_profile_bootstrap_and_save(tmp_path, layers):
    prof = betti_profile(layers, n_boot=3, n_landmarks=40, seed=1)
    assert prof.boot_betti_numbers.shape == (3, 3, 2)
    assert (prof.betti_numbers_lo <= prof.betti_numbers_hi).all()
    assert prof.complexity_lo.shape == (3,) and prof.betti_curves_lo.shape == prof.betti_curves.shape
    again = betti_profile(layers, n_boot=3, n_landmarks=40, seed=1)
    np.testing.assert_array_equal(again.boot_betti_numbers, prof.boot_betti_numbers)
    prof.save(tmp_path / "prof")
    back = load_result(tmp_path / "prof")
    assert isinstance(back, BettiProfile) and isinstance(back.results[0], PersistenceResult)
    np.testing.assert_array_equal(back.betti_curves, prof.betti_curves)
    np.testing.assert_array_equal(back.betti_numbers_hi, prof.betti_numbers_hi)
    assert back.params == prof.params


def test_betti_profile_process_executor_gives_identical_results(layers):
    a = betti_profile(layers, n_landmarks=40, seed=2, n_boot=1)
    b = betti_profile(layers, n_landmarks=40, seed=2, n_boot=1, executor="process")
    np.testing.assert_array_equal(a.betti_curves, b.betti_curves)
    np.testing.assert_array_equal(a.boot_betti_numbers, b.boot_betti_numbers)


def test_betti_profile_costliest_first_keeps_the_layer_order():
    # layers of unequal cost (the dense one has most pairs below the threshold): a pool runs the
    # costliest first, and every result still lands at its layer (bootstrap resamples included)
    from topo_mi.pipelines.topology import _cost_hint

    rng = np.random.default_rng(0)
    layers = {"spread": 3.0 * rng.normal(size=(60, 3)), "dense": 0.3 * rng.normal(size=(60, 3)),
              "mid": rng.normal(size=(60, 3))}
    kw = dict(max_dim=1, metric="euclidean", threshold=1.0, max_error=None, max_relative_error=None,
              n_landmarks=None)
    hints = {k: _cost_hint(v, None, **kw) for k, v in layers.items()}
    assert hints["dense"] > hints["mid"] > hints["spread"]
    rows = np.arange(0, 60, 2)
    assert _cost_hint(layers["dense"], rows, **kw) < hints["dense"]  # fewer rows: cheaper
    a = betti_profile(layers, threshold=1.0, seed=3, n_boot=1)
    b = betti_profile(layers, threshold=1.0, seed=3, n_boot=1, executor="process")
    np.testing.assert_array_equal(a.betti_curves, b.betti_curves)
    np.testing.assert_array_equal(a.boot_betti_numbers, b.boot_betti_numbers)
    for ra, rb in zip(a.results, b.results):
        for da, db in zip(ra.diagrams, rb.diagrams):
            np.testing.assert_array_equal(da, db)


def test_betti_profile_accepts_activations(layers):
    from topo_mi.activations import Activations

    acts = Activations({k: v for k, v in layers.items()}, labels=np.arange(120) % 3)
    prof = betti_profile(acts, metric="knn_geodesic", k=5, max_dim=1, threshold=3, class_label=0)
    assert prof.scale == 2.0 and prof.params["n_samples"] == 40
    np.testing.assert_array_equal(prof.grid, [0, 1, 2, 3])


# -- plots --------------------------------------------------------------------------------------------
def test_plots_write_files(tmp_path, circle, layers):
    from topo_mi.plotting import save_figure
    from topo_mi.plotting import topology as tp

    r = persistence(circle, n_landmarks=60, threshold=1.5)
    for kind in ("diagram", "barcode", "betti"):
        ax = r.plot(kind=kind)
        save_figure(ax, tmp_path / f"{kind}.png")
        assert (tmp_path / f"{kind}.png").stat().st_size > 1000
    ax = tp.plot_diagram(r.diagrams, dims=[1])
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert labels[-1] == "∞"
    save_figure(ax, tmp_path / "d1.svg")
    prof = betti_profile(layers, n_boot=2, n_landmarks=40, seed=0)
    for kind in ("depth", "curves", "distances"):
        save_figure(prof.plot(kind=kind), tmp_path / f"profile-{kind}.png")
        assert (tmp_path / f"profile-{kind}.png").stat().st_size > 1000
    save_figure(tp.plot_distance_heatmap(np.array([[0, 1], [1, 0.0]]), labels=["a", "b"]), tmp_path / "h.png")


def test_float32_backends_are_mapped_back_to_exact_distances():
    from topo_mi.topology import _backends as bk
    from topo_mi.topology._metrics import euclidean_distances

    X = np.random.default_rng(3).normal(size=(60, 3))
    D = euclidean_distances(X)
    exact = bk.canonical_diagrams(bk.run_backend("gudhi", D, n=60, max_dim=1, threshold=np.inf, coeff=2), 1)
    raw = bk.canonical_diagrams(bk.run_backend("ripser", D, n=60, max_dim=1, threshold=np.inf, coeff=2), 1)
    assert 0 < T.bottleneck(exact, raw).max() <= 1e-5  # float32 rounding
    snapped = bk.canonical_diagrams(bk.snap_to_distances(raw, D), 1)
    for a, b in zip(exact, snapped):
        np.testing.assert_array_equal(a, b)


# -- cost warnings and progress -------------------------------------------------------------------------
def test_expensive_persistence_warns_before_running_with_the_cheaper_options():
    import warnings

    from topo_mi.errors import CostWarning
    from topo_mi.topology import _resources as rs

    X = np.random.default_rng(0).normal(size=(3000, 10))
    with warnings.catch_warnings():
        warnings.simplefilter("error", CostWarning)  # raised before the reduction starts: cheap
        # (H0-H1 of 3,000 points runs through the certified cut: the first prefix is warned about)
        with pytest.raises(CostWarning, match=r"persistence of layer 'x': 3000 points.*estimated .* to .* (s|min)"
                                              r".*n_landmarks=500.*threshold=.*max_dim=0"):
            persistence(X, max_dim=1, label="layer 'x'")
    # the estimate is the coface count times the measured cost range
    D = np.sqrt(((X[:300, None] - X[None, :300]) ** 2).sum(-1))
    fast, slow, cof = rs.estimate_seconds(D, 1, np.inf)
    assert cof == rs.estimate_simplices(D, 2, np.inf)[0][2] and fast < slow
    assert rs.estimate_seconds(D, 0, np.inf) == (0.0, 0.0, 0.0)
    with warnings.catch_warnings():  # a small cloud, and H0 by single linkage, do not warn
        warnings.simplefilter("error", CostWarning)
        persistence(X[:200], max_dim=1)
        persistence(X, max_dim=0)


def test_betti_profile_progress_lines_name_the_layer_with_elapsed_time(layers, capsys):
    betti_profile(layers, n_landmarks=30, n_boot=1, seed=0, progress=True)
    err = capsys.readouterr().err
    assert re.search(r"betti_profile: layer 'input' \(1/3\) done in \d+\.\d s \(\d+\.\d s elapsed\)", err)
    assert "layer 'squash' (3/3)" in err and "resample 1/1" in err
    betti_profile(layers, n_landmarks=30, seed=0, progress=False)
    assert capsys.readouterr().err == ""
    with pytest.raises(InvalidParameterError, match="progress"):
        betti_profile(layers, progress="yes")


def test_profile_plots_reach_diagrams_and_barcodes_and_the_table(layers):
    import matplotlib.axes

    from topo_mi._results import Result

    prof = betti_profile(layers, n_landmarks=30, seed=0, progress=False)
    for kind in ("depth", "curves", "distances", "diagram", "barcode"):
        assert isinstance(prof.plot(kind=kind), matplotlib.axes.Axes), kind
    ax = prof.plot(kind="barcode", layer="hidden")
    assert isinstance(ax, matplotlib.axes.Axes)
    with pytest.raises(InvalidParameterError, match="layer"):
        prof.plot(kind="depth", layer="hidden")
    frame = prof.to_frame()
    assert list(frame.index) == prof.layers
    assert frame.loc["input", "β0"] == prof.betti_numbers[0, 0] and frame.loc["hidden", "β1"] == prof.betti_numbers[1, 1]
    np.testing.assert_allclose(frame["scale ε"], prof.scales)
    # the default section from summary(): metric[layer] keys become layers x metrics
    sec = Result.report_section(prof)
    assert sec["table"]["index"] == prof.layers and "complexity" in sec["table"]["columns"]
    row = sec["table"]["rows"][0]
    assert row[sec["table"]["columns"].index("betti")] == ", ".join(str(v) for v in prof.betti_numbers[0])


def test_betti_profile_with_a_certified_target(monkeypatch):
    """``max_error`` reaches every layer's persistence: each layer is certified within it against
    its exact diagrams, H0 exact, and the report says which route certified them."""
    from topo_mi.topology import _certified

    rng = np.random.default_rng(3)
    acts = {"wide": rng.normal(size=(180, 30)), "narrow": rng.normal(size=(180, 4))}
    cheap = betti_profile(acts, max_error=0.4)  # small clouds: the whole filtration, bound 0
    assert all(r.error_bounds[1] == 0.0 for r in cheap.results)
    assert "no approximation error" in cheap.report_section()["caption"]
    monkeypatch.setattr(_certified, "EXACT_IF_UNDER_S", 0.0)  # as if they were large
    prof = betti_profile(acts, max_error=0.4)
    for name, r in zip(prof.layers, prof.results):
        exact = persistence(acts[name], max_dim=1)
        assert r.error_bounds[0] == 0.0 and 0.0 < r.error_bounds[1] <= 0.4 + 1e-12
        assert T.bottleneck(r, exact, dim=1) <= r.error_bounds[1] + 1e-12
        np.testing.assert_array_equal(r.diagrams[0], exact.diagrams[0])
    routes = sorted({r.route for r in prof.results})
    assert f"certified routes: {', '.join(routes)}" in prof.report_section()["caption"]
    with pytest.raises(InvalidParameterError, match="n_landmarks: expected None with max_error"):
        betti_profile(acts, max_error=0.4, n_landmarks=50)


@pytest.mark.parametrize("block", [1 << 20, 700])
def test_self_distances_blocked_match_brute_force(monkeypatch, block):
    """The blocked upper-triangle distance matrix (features above pdist's range) equals the
    brute-force distances, is exactly symmetric with a zero diagonal, also when the blocks are
    small enough that a block's rows end inside the matrix at odd places."""
    from topo_mi.topology import _metrics as mt

    monkeypatch.setattr(mt, "_DIST_BLOCK_ELEMENTS", block)
    X = np.random.default_rng(3).normal(size=(203, mt._PDIST_MAX_FEATURES + 7)).astype(np.float32)
    D = mt.euclidean_distances(X)
    X64 = X.astype(np.float64)
    ref = np.sqrt(((X64[:, None, :] - X64[None, :, :]) ** 2).sum(-1))
    assert D.dtype == np.float64 and D.shape == (203, 203)
    np.testing.assert_allclose(D, ref, rtol=0, atol=1e-11)
    assert np.array_equal(D, D.T) and not np.diag(D).any()


@pytest.mark.parametrize("block", [1 << 20, 50])
def test_upper_edges_equal_the_triangle_mask(monkeypatch, block):
    from topo_mi.topology import _metrics as mt

    monkeypatch.setattr(mt, "_DIST_BLOCK_ELEMENTS", block)
    for n in (1, 2, 3, 41):
        D = mt.euclidean_distances(np.random.default_rng(n).normal(size=(n, 3)))
        t = float(np.median(D)) if n > 1 else 0.0
        i, j, w = mt.upper_edges(D, t)
        i0, j0 = np.nonzero(np.triu(D <= t, 1))
        assert i.dtype == np.int32 and j.dtype == np.int32 and w.dtype == np.float64
        assert np.array_equal(i, i0) and np.array_equal(j, j0) and np.array_equal(w, D[i0, j0])



def test_sparse_degree_order_keeps_the_diagrams():
    """Relabelling the vertices by degree changes only how ties are broken: the same diagrams."""
    from topo_mi.topology import _backends as bk
    from topo_mi.topology import _metrics as mt

    rng = np.random.default_rng(3)
    X = np.vstack([rng.normal(size=(150, 5)), 0.2 * rng.normal(size=(150, 5))])
    D = mt.distance_matrix_of(X, "euclidean")
    t = float(np.quantile(D, 0.3))
    i, j, w = mt.upper_edges(D, t)
    a, b = bk.sparse_degree_order(i, j, len(D))
    assert a.dtype == np.int32 and (a < b).all()
    deg = np.bincount(a, minlength=len(D)) + np.bincount(b, minlength=len(D))
    assert (np.diff(deg) >= 0).all()  # labels by increasing degree
    from gudhi._ripser_ext import _sparse

    plain = _sparse(i.astype(np.int32), j.astype(np.int32), np.ascontiguousarray(w, dtype=np.float64), len(D),
                    max_dimension=1, max_edge_length=t, homology_coeff_field=2)
    ours = bk.run_backend("gudhi", D, n=len(D), max_dim=1, threshold=t, coeff=2)
    for k in (0, 1):
        p = np.asarray(plain[k]).reshape(-1, 2)
        q = np.asarray(ours[k]).reshape(-1, 2)
        assert len(p) > 0 and np.array_equal(p[np.lexsort(p.T[::-1])], q[np.lexsort(q.T[::-1])])
