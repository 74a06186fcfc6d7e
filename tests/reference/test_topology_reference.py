"""Known answers for Vietoris–Rips persistence (topo_mi.topology).

Exact mathematics (a square, a regular polygon), manifolds with known Betti numbers (circle,
sphere, torus, Klein bottle over two fields), independent backends agreeing, invariances, the
landmark guarantee, and Naitzat, Zhitnikov & Lim's D-I (JMLR 2020) with their kNN-hop metric.
"""
import importlib.util

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from topo_mi import datasets
from topo_mi.topology import bottleneck, persistence

HAS_GPH = importlib.util.find_spec("gph") is not None
BACKENDS = ["gudhi", "ripser"] + (["giotto-ph"] if HAS_GPH else [])


def _significant(d, tol=1e-9):
    return d[(d[:, 1] - d[:, 0]) > tol]


# -- exact answers -----------------------------------------------------------------------------
@pytest.mark.parametrize("backend", BACKENDS)
def test_unit_square_has_one_h1_bar_exactly_one_to_sqrt2(backend):
    X = np.array([[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]])
    res = persistence(X, max_dim=1, backend=backend)
    # the four sides close a cycle at 1; the diagonals (sqrt 2) fill it with two triangles
    assert res.diagrams[1].shape == (1, 2)
    assert res.diagrams[1][0, 0] == 1.0
    assert res.diagrams[1][0, 1] == np.sqrt(2.0)  # exact in float64, float32 backends included
    np.testing.assert_array_equal(res.diagrams[0], [[0, np.inf], [0, 1], [0, 1], [0, 1]])
    np.testing.assert_array_equal(res.betti_numbers(1.0), [1, 1])
    np.testing.assert_array_equal(res.betti_numbers(np.sqrt(2.0)), [1, 0])


@pytest.mark.parametrize("backend", BACKENDS)
def test_regular_100gon_h1_bar(backend):
    """The H1 bar of the regular n-gon inscribed in the unit circle, derived by hand.

    Let x_i = (cos 2πi/n, sin 2πi/n). Two vertices k steps apart (k <= n/2) are at chord distance
    c_k = 2 sin(πk/n), increasing in k, so the Rips complex at scale c_k is the clique complex of
    C_n^k, the cycle graph with every pair at most k steps apart joined.
    - Birth: the cycle x_0 x_1 ... x_{n-1} appears when the sides do, at c_1 = 2 sin(π/n); no
      triangle exists before c_2, so it is a class.
    - Death: a triangle (i, i+a, i+a+b) with arcs a, b, n-a-b winds once around the circle iff
      all three arcs are <= k, which is possible iff 3k >= n. While 3k < n every triangle lies
      on one side of the circle, the winding number is a cocycle, and the class survives
      (Adamaszek & Adams, Pacific J. Math. 2017: VR(C_n^k) ~ S^1 for k/n < 1/3). At the first k
      with 3k >= n the boundary of a winding triangle is homologous to the cycle: it dies.
    For n = 100 that is k = 34: the bar is [2 sin(π/100), 2 sin(34π/100)), and it is the only one.
    """
    n = 100
    t = 2 * np.pi * np.arange(n) / n
    X = np.column_stack([np.cos(t), np.sin(t)])
    res = persistence(X, max_dim=1, backend=backend)
    h1 = _significant(res.diagrams[1])
    assert h1.shape == (1, 2)
    k_death = int(np.ceil(n / 3))
    assert k_death == 34
    assert h1[0, 0] == pytest.approx(2 * np.sin(np.pi / n), abs=1e-12)
    assert h1[0, 1] == pytest.approx(2 * np.sin(k_death * np.pi / n), abs=1e-12)
    # the next chord down (k = 33) is not the death
    assert abs(h1[0, 1] - 2 * np.sin(33 * np.pi / n)) > 1e-3


# -- manifolds -----------------------------------------------------------------------------------
def test_noisy_circle_has_one_dominant_h1_bar():
    X = datasets.make("circle", n=200, noise=0.05, seed=0).X
    res = persistence(X, max_dim=1, seed=0)
    lengths = np.sort(res.diagrams[1][:, 1] - res.diagrams[1][:, 0])[::-1]
    assert lengths[0] > 1.0          # radius 1: the class lives from ~0.1 to ~sqrt(3)
    assert lengths[0] > 8 * lengths[1]
    assert res.n_bars_longer_than(0.5, dim=1) == 1


def test_sphere_has_one_dominant_h2_bar():
    X = datasets.make("sphere", n=150, seed=0).X
    # every class of the unit sphere dies before sqrt(8/3) ~ 1.63 (the regular tetrahedron);
    # 1.8 leaves the whole diagram and saves most of the work
    res = persistence(X, max_dim=2, threshold=1.8)
    h2 = res.diagrams[2]
    lengths = h2[:, 1] - h2[:, 0]
    assert np.isfinite(lengths).all()
    assert lengths[0] > 0.5
    assert lengths[0] > 5 * (lengths[1] if len(lengths) > 1 else 0.0)
    assert h2[0, 1] == pytest.approx(np.sqrt(8 / 3), abs=0.1)


@pytest.fixture(scope="module")
def torus_result():
    X = datasets.make("torus", n=500, seed=1).X  # R = 2, r = 1 in R^3
    return persistence(X, max_dim=2, threshold=1.95)


def test_torus_betti_numbers_mid_scale(torus_result):
    # noise loops are gone after ~1.2; the tube and the hole die near sqrt(3) r ~ 1.73 and above
    for s in (1.4, 1.5, 1.6):
        np.testing.assert_array_equal(torus_result.betti_numbers(s), [1, 2, 1])


@pytest.fixture(scope="module")
def klein_points():
    return datasets.make("klein_bottle", n=500, seed=1).X  # in R^4


@pytest.mark.parametrize("coeff, expected", [(2, [1, 2, 1]), (3, [1, 1, 0]), (5, [1, 1, 0])])
def test_klein_bottle_betti_numbers_depend_on_the_field(klein_points, coeff, expected):
    # H1 = Z + Z/2: over Z/2 the torsion class shows in H1 and H2; over odd primes it does not
    res = persistence(klein_points, max_dim=2, coeff=coeff, threshold=1.95)
    assert res.coeff == coeff
    for s in (1.4, 1.5, 1.6):
        np.testing.assert_array_equal(res.betti_numbers(s), expected)


# -- backends agree ------------------------------------------------------------------------------
@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("shape", ["gauss", "circle"])
def test_ripser_and_gudhi_agree_on_random_clouds(seed, shape):
    rng = np.random.default_rng(seed)
    if shape == "gauss":
        X = rng.normal(size=(80, 5))
    else:
        X = datasets.make("circle", n=80, noise=0.1, ambient_dim=8, seed=seed).X
    ref = persistence(X, max_dim=2, backend="gudhi")
    for backend in BACKENDS[1:]:
        other = persistence(X, max_dim=2, backend=backend)
        d = bottleneck(ref, other)
        assert d.shape == (3,)
        assert (d <= 1e-5).all(), (backend, d)
        # after mapping float32 values back to the exact distances they agree exactly
        for a, b in zip(ref.diagrams, other.diagrams):
            np.testing.assert_array_equal(a, b)
    h0 = persistence(X, max_dim=0, backend="mst")
    np.testing.assert_array_equal(h0.diagrams[0], ref.diagrams[0])


def test_backends_agree_with_a_threshold_and_odd_field():
    X = np.random.default_rng(5).normal(size=(150, 3))
    ref = persistence(X, max_dim=1, threshold=0.9, coeff=3, backend="gudhi")
    for backend in BACKENDS[1:]:
        other = persistence(X, max_dim=1, threshold=0.9, coeff=3, backend=backend)
        assert (bottleneck(ref, other) <= 1e-5).all()
    assert np.isinf(ref.diagrams[0][:, 1]).sum() > 1  # components still apart at the threshold


# -- invariances -----------------------------------------------------------------------------------
_clouds = st.integers(min_value=0, max_value=10_000).flatmap(
    lambda s: st.tuples(st.just(s), st.integers(min_value=8, max_value=40), st.integers(min_value=2, max_value=4)))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_clouds)
def test_diagrams_are_invariant_under_point_permutation(params):
    seed, n, dim = params
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, dim))
    perm = rng.permutation(n)
    a = persistence(X, max_dim=2)
    b = persistence(X[perm], max_dim=2)
    for da, db in zip(a.diagrams, b.diagrams):
        np.testing.assert_array_equal(da, db)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_clouds, st.floats(min_value=-100, max_value=100))
def test_diagrams_are_invariant_under_rigid_motion(params, shift):
    seed, n, dim = params
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, dim))
    Q, R = np.linalg.qr(rng.normal(size=(dim, dim)))
    Q = Q * np.sign(np.diag(R))  # a uniformly random orthogonal matrix
    Y = X @ Q.T + shift * rng.normal(size=dim)
    a = persistence(X, max_dim=2)
    b = persistence(Y, max_dim=2)
    assert (bottleneck(a, b) <= 1e-9 * (1 + abs(shift))).all()


# -- the landmark guarantee ---------------------------------------------------------------------------
def _cloud(kind, seed):
    rng = np.random.default_rng(seed)
    if kind == "gauss":
        return rng.normal(size=(200, 6))
    if kind == "circle":
        return datasets.make("circle", n=200, noise=0.05, ambient_dim=5, seed=seed).X
    if kind == "clusters":
        centres = rng.normal(scale=5.0, size=(4, 3))
        return np.repeat(centres, 50, axis=0) + rng.normal(scale=0.3, size=(200, 3))
    return datasets.make("torus", n=200, seed=seed).X


@pytest.mark.parametrize("kind", ["gauss", "circle", "clusters", "torus"])
@pytest.mark.parametrize("method", ["maxmin", "random"])
def test_landmark_bottleneck_bound_holds(kind, method):
    X = _cloud(kind, 3)
    full = persistence(X, max_dim=1)
    for n_landmarks, seed in ((40, 0), (100, 1)):
        lm = persistence(X, max_dim=1, n_landmarks=n_landmarks, landmarks=method, seed=seed)
        assert lm.n_landmarks == n_landmarks and lm.landmark_method == method
        assert len(np.unique(lm.landmark_indices)) == n_landmarks
        assert lm.bottleneck_bound == pytest.approx(2 * lm.cover_radius)
        # the cover radius is what it says
        from scipy.spatial.distance import cdist

        assert lm.cover_radius == pytest.approx(cdist(X, X[lm.landmark_indices]).min(axis=1).max(), rel=1e-9)
        d = bottleneck(full, lm)
        assert (d <= lm.bottleneck_bound + 1e-9).all(), (d, lm.bottleneck_bound)


@pytest.mark.parametrize("metric", ["cosine", "correlation", "precomputed", "knn_geodesic"])
def test_landmark_bound_holds_for_other_metrics(metric):
    rng = np.random.default_rng(7)
    X = datasets.make("circle", n=200, noise=0.05, ambient_dim=6, seed=7).X + rng.normal(size=6)
    kw = {"k": 6} if metric == "knn_geodesic" else {}
    data = X
    if metric == "precomputed":
        from scipy.spatial.distance import cdist

        data = cdist(X, X, "cityblock")
    full = persistence(data, max_dim=1, metric=metric, **kw)
    for method in ("maxmin", "random"):
        lm = persistence(data, max_dim=1, metric=metric, n_landmarks=60, landmarks=method, seed=2, **kw)
        d = bottleneck(full, lm)
        assert (d <= lm.bottleneck_bound + 1e-9).all(), (metric, method, d, lm.bottleneck_bound)
        assert 0 < lm.bottleneck_bound < np.inf


# -- Naitzat, Zhitnikov & Lim, D-I --------------------------------------------------------------------
@pytest.fixture(scope="module")
def d1():
    return datasets.make("naitzat_d1", resolution=0.19)


@pytest.mark.parametrize("label, expected", [(0, [9, 0]), (1, [1, 9])])
def test_naitzat_d1_knn_hop_betti_numbers(d1, label, expected):
    """k = 14 nearest neighbours (the point itself among them), symmetrised; simplices whose
    vertices are pairwise <= 2 hops apart. Class a: nine disks; class b: a square with nine holes."""
    X = d1.X[d1.y == label]
    res = persistence(X, metric="knn_geodesic", k=14, threshold=2, max_dim=1)
    np.testing.assert_array_equal(res.betti_numbers(2), expected)
    assert res.metric == "knn_geodesic" and res.k == 14


def _naitzat_relu_activations(d1):
    torch = pytest.importorskip("torch")
    from topo_mi import models

    net = models.pretrained("mlp-naitzat-d1-relu")  # trained on first use, then cached
    X = torch.tensor(d1.X, dtype=torch.float32)
    with torch.no_grad():
        acc = float((net(X).argmax(1).numpy() == d1.y).mean())
    names = list(net.hidden_names) + ["out"]  # act1..act8, then the output layer
    try:
        from topo_mi import collect

        acts = collect(net, X, layers=names)
        layers = {name: np.asarray(acts[name]) for name in names}
    except (ImportError, AttributeError):  # by hand: run the nn.Sequential prefix
        layers, h = {}, X
        with torch.no_grad():
            for name, module in net.named_children():
                h = module(h)
                if name in names:
                    layers[name] = h.numpy().copy()
    return acc, {"input": d1.X, **layers}


@pytest.mark.slow
def test_trained_relu_mlp_merges_the_nine_disks(d1):
    """The ReLU MLP trained on D-I to 100 % training accuracy: β0 of class a falls from 9 at the
    input to 1 at the last layer (the output), with kNN hops (k = 14) and the scale (2 hops)
    fixed for every layer, as in Naitzat et al."""
    from topo_mi.pipelines import betti_profile

    acc, acts = _naitzat_relu_activations(d1)
    assert acc == 1.0
    prof = betti_profile(acts, metric="knn_geodesic", k=14, threshold=2, max_dim=0, class_label=0, labels=d1.y)
    b0 = prof.betti_numbers[:, 0]
    assert prof.scale == 2.0 and prof.layers[0] == "input" and prof.layers[-1] == "out"
    assert b0[0] == 9
    assert b0[-1] == 1
    assert (b0 <= 9).all()
