"""Reference behaviour of topo_mi.compare: the properties the papers state, checked numerically.

Kornblith et al. 2019 (CKA, CCA, sanity check), Song et al. 2012 (unbiased HSIC), Nguyen et al.
2021 (minibatch CKA), Barannikov et al. 2022 (RTD).
"""
import numpy as np
import pytest
from scipy import stats

import topo_mi.compare as C
from topo_mi.pipelines.comparison import compare, compare_many


@pytest.fixture(autouse=True, scope="module")
def _one_blas_thread():
    # Several test processes share two cores: multi-threaded BLAS then spins instead of working.
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
        yield


def _rng(seed=0):
    return np.random.default_rng(seed)


def _orthogonal(d, rng):
    q, r = np.linalg.qr(rng.normal(size=(d, d)))
    return q * np.sign(np.diag(r))


@pytest.fixture(scope="module")
def pair():
    rng = _rng(0)
    Z = rng.normal(size=(120, 6))
    X = np.tanh(Z @ rng.normal(size=(6, 15))) + 0.1 * rng.normal(size=(120, 15))
    Y = Z @ rng.normal(size=(6, 9)) + 0.5 * rng.normal(size=(120, 9))
    return X, Y


# ---- CKA ------------------------------------------------------------------------------------
@pytest.mark.parametrize("kw", [{}, {"debiased": True}, {"kernel": "rbf"}, {"kernel": "rbf", "debiased": True},
                                {"form": "gram"}, {"form": "features"}])
def test_cka_of_x_with_itself_is_one(pair, kw):
    X, _ = pair
    assert C.cka(X, X, **kw) == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize("kernel", ["linear", "rbf"])
@pytest.mark.parametrize("debiased", [False, True])
def test_cka_invariant_to_orthogonal_maps_and_isotropic_scaling(pair, kernel, debiased):
    X, Y = pair
    rng = _rng(1)
    ref = C.cka(X, Y, kernel=kernel, debiased=debiased)
    Xt = 3.7 * X @ _orthogonal(X.shape[1], rng) + 5.0  # rotation, scale and translation
    Yt = 0.02 * Y @ _orthogonal(Y.shape[1], rng)
    assert C.cka(Xt, Yt, kernel=kernel, debiased=debiased) == pytest.approx(ref, abs=1e-10)


def test_linear_cka_not_invariant_to_general_invertible_maps(pair):
    X, Y = pair
    rng = _rng(2)
    A = rng.normal(size=(X.shape[1], X.shape[1])) @ np.diag(np.logspace(-1.5, 1.5, X.shape[1]))
    assert abs(np.linalg.det(A)) > 1e-6  # invertible
    ref = C.cka(X, Y)
    moved = C.cka(X @ A, Y)
    assert abs(moved - ref) > 0.05
    assert C.cka(X, X @ A) < 0.95  # not even similar to itself after the map


@pytest.mark.parametrize("statistic", ["mean_rho", "r2"])
def test_cca_invariant_to_invertible_linear_maps(pair, statistic):
    X, Y = pair
    rng = _rng(3)
    A = rng.normal(size=(X.shape[1], X.shape[1])) @ np.diag(np.logspace(-1, 1, X.shape[1]))
    B = rng.normal(size=(Y.shape[1], Y.shape[1]))
    ref = C.cca(X, Y, statistic=statistic)
    assert C.cca(X @ A + 1.0, Y @ B - 2.0, statistic=statistic) == pytest.approx(ref, abs=1e-9)
    np.testing.assert_allclose(C.canonical_correlations(X @ A, Y @ B), C.canonical_correlations(X, Y), atol=1e-9)


def _song_unbiased_hsic(K, L):
    """Song et al. (2012), eq. (5), written out term by term with zero-diagonal Gram matrices."""
    n = K.shape[0]
    Kt, Lt = K.copy(), L.copy()
    np.fill_diagonal(Kt, 0.0)
    np.fill_diagonal(Lt, 0.0)
    one = np.ones(n)
    term1 = np.trace(Kt @ Lt)
    term2 = (one @ Kt @ one) * (one @ Lt @ one) / ((n - 1) * (n - 2))
    term3 = 2.0 / (n - 2) * (one @ Kt @ Lt @ one)
    return (term1 + term2 - term3) / (n * (n - 3))


@pytest.mark.parametrize("kernel", ["linear", "rbf"])
def test_debiased_cka_equals_song_unbiased_hsic(pair, kernel):
    X, Y = pair
    if kernel == "linear":
        K, L = X @ X.T, Y @ Y.T  # uncentred: the unbiased estimator needs no centring
    else:
        K, L = C.gram_rbf(X, sigma=0.8), C.gram_rbf(Y, sigma=0.8)
    expected = _song_unbiased_hsic(K, L) / np.sqrt(_song_unbiased_hsic(K, K) * _song_unbiased_hsic(L, L))
    got = C.cka(X, Y, kernel=kernel, debiased=True)
    assert got == pytest.approx(expected, rel=1e-10)
    assert C.hsic(K, L, unbiased=True) == pytest.approx(_song_unbiased_hsic(K, L), rel=1e-10)
    if kernel == "linear":  # the feature form reaches the same number without any n x n matrix
        assert C.cka(X, Y, debiased=True, form="features") == pytest.approx(expected, rel=1e-10)


def test_biased_cka_matches_kornblith_formula(pair):
    X, Y = pair
    Xc, Yc = X - X.mean(0), Y - Y.mean(0)
    expected = np.linalg.norm(Yc.T @ Xc) ** 2 / (np.linalg.norm(Xc.T @ Xc) * np.linalg.norm(Yc.T @ Yc))
    assert C.cka(X, Y) == pytest.approx(expected, rel=1e-12)
    n = X.shape[0]
    H = np.eye(n) - 1.0 / n
    K, L = C.gram_linear(X), C.gram_linear(Y)
    assert C.hsic(K, L) == pytest.approx(np.trace(K @ H @ L @ H) / (n - 1) ** 2, rel=1e-10)


def test_rbf_bandwidth_is_fraction_of_median_distance(pair):
    X, _ = pair
    D2 = ((X[:, None, :] - X[None, :, :]) ** 2).sum(-1)
    K = C.gram_rbf(X, sigma=0.4)
    np.testing.assert_allclose(K, np.exp(-D2 / (2 * 0.4**2 * np.median(D2))), atol=1e-12)


def test_minibatch_cka_converges_to_full_value():
    rng = _rng(4)
    n = 12_000
    Z = rng.normal(size=(n, 5))
    X = np.tanh(Z @ rng.normal(size=(5, 20))) + 0.3 * rng.normal(size=(n, 20))
    Y = Z @ rng.normal(size=(5, 12)) + 1.0 * rng.normal(size=(n, 12))
    full = C.cka(X, Y, debiased=True)
    # One batch holding every row is exactly debiased CKA.
    assert C.minibatch_cka(X, Y, batch_size=n) == pytest.approx(full, rel=1e-10)
    errs = {b: abs(C.minibatch_cka(X, Y, batch_size=b, n_epochs=3, seed=0) - full) for b in (50, 400, 3000)}
    print("minibatch CKA |error| by batch size:", errs, "full:", full)
    assert errs[3000] < 2e-3 and errs[400] < 5e-3 and errs[50] < 2e-2
    # The biased estimator on small batches is biased upwards; the unbiased average is not.
    assert abs(C.minibatch_cka(X, Y, batch_size=50, n_epochs=3, seed=1) - full) < 2e-2


# ---- RTD ------------------------------------------------------------------------------------
def _clusters(k_merged, *, K=5, m=24, seed=0):
    rng = _rng(seed)
    ang = 2 * np.pi * np.arange(K) / K
    centres = np.c_[np.cos(ang), np.sin(ang)] * 10
    lab = np.repeat(np.arange(K), m)
    off = rng.normal(size=(K * m, 2))
    merged = centres.copy()
    merged[1:k_merged + 1] = merged[0]
    return centres[lab] + off, merged[lab] + off


def test_rtd_of_p_with_itself_is_zero():
    P, _ = _clusters(0)
    assert C.rtd(P, P) == 0.0
    rng = _rng(5)
    X = rng.normal(size=(150, 7))
    assert C.rtd(X, X, trials=2, batch=80, seed=0) == 0.0
    assert len(C.rtd_barcode(X, 2.0 * X)) == 0  # scale-free: the 0.9-quantile normalisation


def test_rtd_is_symmetric():
    rng = _rng(6)
    X = rng.normal(size=(90, 4))
    Y = np.tanh(X @ rng.normal(size=(4, 6))) + 0.2 * rng.normal(size=(90, 6))
    a, b = C.rtd(X, Y, trials=2, batch=60, seed=3), C.rtd(Y, X, trials=2, batch=60, seed=3)
    assert a == b and a > 0


def test_rtd_grows_as_clusters_are_merged():
    values = []
    for k in range(4):
        P, Q = _clusters(k)
        values.append(C.rtd(P, Q))
    print("RTD(P, P with k clusters merged), k = 0..3:", np.round(values, 4).tolist())
    assert values[0] == 0.0
    assert all(b > a for a, b in zip(values, values[1:])), values


def test_rtd_barcode_matches_an_independent_ripser_computation():
    from ripser import ripser
    from scipy.spatial.distance import cdist

    rng = _rng(7)
    P = rng.normal(size=(60, 3))
    Q = P + 0.4 * rng.normal(size=(60, 3))
    r1, r2 = cdist(P, P), cdist(Q, Q)
    r1 /= np.quantile(r1, 0.9)
    r2 /= np.quantile(r2, 0.9)
    n = len(P)
    d = np.zeros((2 * n, 2 * n))
    d[n:, :n] = r1
    d[:n, n:] = r1.T
    d[n:, n:] = np.minimum(r1, r2)
    d[d < r1.mean() * 1e-6] = 0
    bars = ripser(d, distance_matrix=True, maxdim=1)["dgms"][1]
    ours = C.rtd_barcode(P, Q)
    assert np.sum(ours[:, 1] - ours[:, 0]) == pytest.approx(np.sum(bars[:, 1] - bars[:, 0]), rel=1e-6)
    rtd1 = 0.5 * (np.sum(ours[:, 1] - ours[:, 0]) + np.sum(np.diff(C.rtd_barcode(Q, P), axis=1)))
    assert C.rtd(P, Q) == pytest.approx(rtd1, rel=1e-12)


def test_diagram_distance_sees_a_loop():
    rng = _rng(8)
    t = rng.uniform(0, 2 * np.pi, 80)
    circle = np.c_[np.cos(t), np.sin(t)] + 0.02 * rng.normal(size=(80, 2))
    blob = rng.normal(size=(80, 2))
    rotated = circle @ _orthogonal(2, rng) * 3.0
    assert C.diagram_distance(circle, rotated) == pytest.approx(0.0, abs=1e-9)
    assert C.diagram_distance(circle, blob) > 0.3
    assert C.diagram_distance(circle, blob, metric="wasserstein") >= C.diagram_distance(circle, blob)


# ---- statistics -----------------------------------------------------------------------------
def test_permutation_pvalues_are_uniform_under_the_null():
    rng = _rng(9)
    pvals = {"cka": [], "rsa": []}
    for rep in range(150):
        X = rng.normal(size=(30, 4))
        Y = rng.normal(size=(30, 3))  # independent of X
        res = compare({"x": X}, {"y": Y}, methods=("cka", "rsa"), n_perm=99, seed=rep)
        for m in pvals:
            pvals[m].append(float(res.p_values[m][0, 0]))
    for m, p in pvals.items():
        ks = stats.kstest(p, "uniform")
        print(f"{m}: KS statistic {ks.statistic:.3f}, p = {ks.pvalue:.3f}, mean p = {np.mean(p):.3f}")
        assert ks.pvalue > 0.01, (m, ks)
        assert 0.4 < np.mean(p) < 0.6


def test_permutation_pvalues_small_for_related_representations():
    rng = _rng(10)
    Z = rng.normal(size=(80, 3))
    A = {"l1": np.tanh(Z @ rng.normal(size=(3, 10))), "l2": Z @ rng.normal(size=(3, 5))}
    B = {"l1": Z @ rng.normal(size=(3, 8)) + 0.5 * rng.normal(size=(80, 8)), "l2": rng.normal(size=(80, 6))}
    res = compare(A, B, methods=("cka", "cca", "rsa", "knn", "procrustes"), n_perm=199, seed=0)
    for m in res.methods:
        p = res.p_values[m]
        assert p[0, 0] == pytest.approx(1 / 200) and p[1, 0] == pytest.approx(1 / 200), (m, p)
        assert p[0, 1] > 0.01 and p[1, 1] > 0.01, (m, p)  # layer l2 of B is noise
        assert res.significant[m][0, 0] and not res.significant[m][0, 1]
        assert res.effect_size[m][0, 0] > 3


# ---- Kornblith et al. sanity check ----------------------------------------------------------
@pytest.fixture(scope="module")
def digits_models():
    import torch

    from topo_mi.activations import collect
    from topo_mi.models import MLP, train_classifier

    try:
        from topo_mi.datasets import make

        ds = make("digits")
        X, y = np.asarray(ds.X, dtype=np.float32), np.asarray(ds.y)
    except ImportError:  # the dataset registry is optional here
        from sklearn.datasets import load_digits

        d = load_digits()
        X, y = (d.data / 16.0).astype(np.float32), d.target
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        acts = []
        for seed in range(5):
            model = MLP(64, [128, 128, 128, 128], 10, activation="tanh", seed=seed)
            report = train_classifier(model, X, y, epochs=20, lr=1e-3, batch_size=64, seed=seed)
            assert report.final_accuracy > 0.95
            acts.append(collect(model, X, layers=model.hidden_names))
    finally:
        torch.set_num_threads(threads)
    return acts


def test_kornblith_sanity_check_linear_cka_finds_corresponding_layers(digits_models, record_property):
    res = compare_many(digits_models, methods=("cka", "cca"), n_perm=0, seed=0)
    off = ~np.eye(5, dtype=bool)
    rates = {m: float(res.matching[m][off].mean()) for m in res.methods}
    print("share of (layer, ordered model pair) whose best match is the corresponding layer:", rates)
    record_property("kornblith_matching", rates)
    assert rates["cka"] >= 0.9
    assert 0.0 <= rates["cca"] <= 1.0  # reported, not asserted: CCA's figure depends on the setting
