"""Unit tests of topo_mi.geometry and topo_mi.pipelines.geometry: API, errors, exactness
against straightforward implementations, results, plots."""
import sys
import types
import warnings

import numpy as np
import pytest
from scipy.spatial.distance import cdist, pdist

from topo_mi import geometry as g
from topo_mi.errors import InvalidParameterError, NonFiniteError, ResourceError, UnknownNameError
from topo_mi.geometry import _neighbors as nb


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """Small problems: BLAS/OpenMP threads only add spin-waiting on a busy 2-core machine."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
        yield


def _cloud(n=300, d=8, seed=0):
    return np.random.default_rng(seed).normal(size=(n, d))


# -- spectrum / rank_at ----------------------------------------------------------------------------

def test_spectrum_matches_numpy_svd():
    X = _cloud(200, 12) * np.arange(1, 13)
    spec = g.spectrum(X)
    s = np.linalg.svd(X - X.mean(0), compute_uv=False)
    np.testing.assert_allclose(spec.singular_values, s, rtol=1e-12)
    np.testing.assert_allclose(spec.explained_variance, s ** 2 / 199, rtol=1e-12)
    assert spec.explained_variance_ratio.sum() == pytest.approx(1.0, abs=1e-12)
    lam = s ** 2
    assert spec.participation_ratio == pytest.approx(lam.sum() ** 2 / (lam ** 2).sum(), rel=1e-12)
    p = s / s.sum()
    assert spec.effective_rank == pytest.approx(np.exp(-(p * np.log(p)).sum()), rel=1e-12)
    assert spec.complete and spec.method == "exact" and spec.center
    raw = g.spectrum(X, center=False)
    np.testing.assert_allclose(raw.singular_values, np.linalg.svd(X, compute_uv=False), rtol=1e-12)
    np.testing.assert_allclose(raw.explained_variance, raw.singular_values ** 2 / 200, rtol=1e-12)


def test_spectrum_randomized_agrees_with_exact_on_the_top():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(400, 5)) @ rng.normal(size=(5, 300)) * 10 + 0.01 * rng.normal(size=(400, 300))
    ex = g.spectrum(X, method="exact")
    rd = g.spectrum(X, method="randomized", n_components=20, seed=0)
    assert not rd.complete and rd.singular_values.size == 20
    np.testing.assert_allclose(rd.singular_values[:5], ex.singular_values[:5], rtol=1e-6)
    assert rd.squared_norm == pytest.approx(ex.squared_norm, rel=1e-12)
    # the unseen tail is known exactly, so rank_at and the ratio stay right
    assert rd.rank_at(0.01).rank == ex.rank_at(0.01).rank == 5
    # completed tail spread evenly: participation ratio is an upper estimate, and close here
    assert rd.participation_ratio >= ex.participation_ratio * (1 - 1e-9)
    assert rd.participation_ratio == pytest.approx(ex.participation_ratio, rel=1e-3)
    same = g.spectrum(X, method="randomized", n_components=20, seed=0)
    np.testing.assert_array_equal(same.singular_values, rd.singular_values)


def test_randomized_rank_budget_out_of_reach_is_an_error():
    X = _cloud(300, 100)
    rd = g.spectrum(X, method="randomized", n_components=5, seed=0)
    with pytest.raises(InvalidParameterError, match="method='exact'"):
        rd.rank_at(1e-6)


def test_rank_at_achieved_error_is_the_truncation_error():
    X = _cloud(150, 10) * np.linspace(0.1, 3, 10)
    for center in (True, False):
        res = g.rank_at(X, 0.05, center=center)
        A = X - X.mean(0) if center else X
        U, s, Vt = np.linalg.svd(A, full_matrices=False)
        r = res.rank
        Ar = (U[:, :r] * s[:r]) @ Vt[:r]
        err = ((A - Ar) ** 2).sum()
        assert res.error == pytest.approx(err, rel=1e-9)
        assert res.relative_error == pytest.approx(err / (A ** 2).sum(), rel=1e-9)
        assert res.relative_error <= 0.05
        if r > 0:  # minimal: one component fewer breaks the budget
            assert (s[r - 1:] ** 2).sum() > 0.05 * (A ** 2).sum()
        assert res.center is center and res.max_rank == 10
    # absolute budget
    a = g.rank_at(X, 10.0, relative=False)
    assert a.error <= 10.0 and not a.relative
    assert g.rank_at(X, 1.0).rank == 0
    assert g.rank_at(np.ones((5, 3)), 0.0).rank == 0  # zero matrix after centring


def test_rank_at_and_spectrum_errors():
    X = _cloud(20, 3)
    with pytest.raises(InvalidParameterError, match="eps"):
        g.rank_at(X, 1.5)
    with pytest.raises(InvalidParameterError, match="eps"):
        g.rank_at(X, -0.1, relative=False)
    with pytest.raises(UnknownNameError, match="exact"):
        g.spectrum(X, method="exakt")
    bad = X.copy()
    bad[3] = np.nan
    with pytest.raises(NonFiniteError, match="1 of 20 rows"):
        g.spectrum(bad)
    with pytest.raises(InvalidParameterError, match="at least 2 points"):
        g.spectrum(X[:1])
    with pytest.raises(InvalidParameterError, match="2-D"):
        g.rank_at(X[:, 0], 0.1)


# -- quality ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("k", [1, 5, 12])
def test_trustworthiness_and_continuity_equal_sklearn_without_ties(k):
    from sklearn.manifold import trustworthiness as sk_trust

    rng = np.random.default_rng(k)
    X = rng.normal(size=(120, 6))
    E = X[:, :2] + 0.3 * rng.normal(size=(120, 2))
    assert g.trustworthiness(X, E, k) == pytest.approx(sk_trust(X, E, n_neighbors=k), abs=1e-12)
    # continuity is trustworthiness with the spaces swapped
    assert g.continuity(X, E, k) == pytest.approx(sk_trust(E, X, n_neighbors=k), abs=1e-12)
    D = cdist(X, X)
    assert g.trustworthiness(D, E, k, metric="precomputed") == pytest.approx(g.trustworthiness(X, E, k), abs=1e-12)
    assert g.trustworthiness(X, E, k, metric="cityblock") == pytest.approx(
        sk_trust(X, E, n_neighbors=k, metric="cityblock"), abs=1e-12)


def test_knn_preservation_is_the_shared_fraction():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(80, 5))
    E = X[:, :2]
    k = 4
    nx = np.argsort(cdist(X, X) + np.diag(np.full(80, np.inf)), axis=1)[:, :k]
    ne = np.argsort(cdist(E, E) + np.diag(np.full(80, np.inf)), axis=1)[:, :k]
    want = np.mean([len(set(a) & set(b)) / k for a, b in zip(nx, ne)])
    assert g.knn_preservation(X, E, k) == pytest.approx(want, abs=1e-12)
    assert g.knn_preservation(X, X, k) == 1.0
    assert g.trustworthiness(X, X, k) == 1.0 and g.continuity(X, X, k) == 1.0


def test_stress_raw_and_kruskal():
    rng = np.random.default_rng(4)
    X = rng.normal(size=(60, 4))
    E = rng.normal(size=(60, 2))
    dx, de = pdist(X), pdist(E)
    assert g.stress(X, E, normalized=False) == pytest.approx(2 * ((dx - de) ** 2).sum(), rel=1e-10)
    assert g.stress(X, E, rescale=False) == pytest.approx(np.sqrt(((dx - de) ** 2).sum() / (de ** 2).sum()),
                                                           rel=1e-10)
    s = (dx @ de) / (de @ de)
    want = np.sqrt(((dx - s * de) ** 2).sum() / ((s * de) ** 2).sum())
    assert g.stress(X, E) == pytest.approx(want, rel=1e-10)
    assert g.stress(X, 7.5 * E) == pytest.approx(want, rel=1e-10)  # scale-free
    assert g.stress(X, X) == 0.0 and g.stress(X, 3 * X) < 1e-12
    assert g.stress(cdist(X, X), E, metric="precomputed") == pytest.approx(want, rel=1e-10)


def test_quality_errors():
    X = _cloud(20, 3)
    with pytest.raises(InvalidParameterError, match="n_samples / 2"):
        g.trustworthiness(X, X[:, :2], 10)
    with pytest.raises(InvalidParameterError, match="20 rows like X"):
        g.stress(X, X[:10, :2])
    bad = X[:, :2].copy()
    bad[0, 0] = np.nan
    with pytest.raises(NonFiniteError):
        g.continuity(X, bad, 3)
    with pytest.raises(InvalidParameterError, match="symmetric"):
        g.stress(np.triu(cdist(X, X)), X[:, :2], metric="precomputed")


# -- neighbours ------------------------------------------------------------------------------------

def test_knn_exact_distances_and_first_kept_equals_a_fresh_search():
    rng = np.random.default_rng(5)
    X = rng.normal(size=(500, 7))
    dist, ind = nb.knn(X, 8)
    D = cdist(X, X)
    np.fill_diagonal(D, np.inf)
    np.testing.assert_allclose(dist, np.sort(D, axis=1)[:, :8], rtol=1e-12)
    keep = rng.random(500) < 0.6  # drops many neighbours: exercises the exact fallback too
    sub = nb.first_kept(X, dist, ind, keep, 3)
    Ds = D[np.ix_(keep, keep)]
    np.testing.assert_allclose(sub, np.sort(Ds, axis=1)[:, :3], rtol=1e-12)


def test_find_duplicates_keeps_one_of_each_group():
    X = np.array([[0.0, 0], [1, 0], [0, 0], [2, 2], [1, 0], [0, 0], [5, 1]])
    dist, _ = nb.knn(X, 3)
    keep = nb.find_duplicates(X, dist)
    assert keep.sum() == 4
    assert {tuple(r) for r in X[keep]} == {tuple(r) for r in X}


# -- intrinsic dimension ---------------------------------------------------------------------------

def _twonn_reference(X, fraction=0.9):
    """Straightforward TwoNN with the full distance matrix (Facco et al.; Ansuini et al.'s fit)."""
    D = np.sort(cdist(X, X), axis=1)
    r1, r2 = D[:, 1], D[:, 2]
    good = (r1 > 0) & (r1 != r2)
    mu = np.sort(r2[good] / r1[good])
    N = mu.size
    F = np.arange(1, N + 1) / N
    x, y = np.log(mu[:-2]), -np.log(1 - F[:-2])
    m = int(np.floor(N * fraction))
    x, y = x[:m], y[:m]
    return (x @ y) / (x @ x)


def _mle_reference(X, k1, k2):
    D = np.sort(cdist(X, X), axis=1)[:, 1:]
    per_k = []
    for k in range(k1, k2 + 1):
        m = [1.0 / (np.sum(np.log(D[i, k - 1] / D[i, :k - 1])) / (k - 1)) for i in range(X.shape[0])]
        per_k.append(np.mean(m))
    return np.mean(per_k)


def test_twonn_equals_the_full_matrix_reference():
    for seed, d in [(0, 2), (1, 5), (2, 9)]:
        X = np.random.default_rng(seed).normal(size=(400, d))
        res = g.intrinsic_dimension(X)
        assert res.value == pytest.approx(_twonn_reference(X), rel=1e-12)
        assert res.method == "twonn" and res.n_used == 400 and res.n_duplicates == 0
        assert np.isnan(res.error) and res.resamples.size == 0


def test_twonn_resamples_equal_estimates_on_the_subsets():
    X = np.random.default_rng(6).normal(size=(300, 4))
    res = g.intrinsic_dimension(X, n_boot=5, seed=11)
    rng = np.random.default_rng(11)  # the same draws as inside
    for b in range(5):
        sub = np.sort(rng.choice(np.arange(300), size=270, replace=False))
        assert res.resamples[b] == pytest.approx(_twonn_reference(X[sub]), rel=1e-12)
    assert res.error == pytest.approx(np.std(res.resamples, ddof=1))
    again = g.intrinsic_dimension(X, n_boot=5, seed=11)
    np.testing.assert_array_equal(again.resamples, res.resamples)


def test_mle_equals_the_reference_and_pca_counts_components():
    X = np.random.default_rng(7).normal(size=(250, 3))
    res = g.intrinsic_dimension(X, method="mle", k=(5, 9))
    assert res.value == pytest.approx(_mle_reference(X, 5, 9), rel=1e-12)
    assert g.intrinsic_dimension(X, method="mle", k=6).value == pytest.approx(_mle_reference(X, 6, 6), rel=1e-12)
    Y = np.random.default_rng(8).normal(size=(500, 6)) * np.array([10, 5, 3, 1, 0.1, 0.1])
    p = g.intrinsic_dimension(Y, method="pca", n_boot=3, seed=0)
    ratio = np.cumsum(g.spectrum(Y).explained_variance_ratio)
    assert p.value == float(np.argmax(ratio >= 0.9) + 1)
    assert p.resamples.size == 3 and p.n_duplicates == 0


def test_duplicates_are_reported_and_dropped():
    X = np.random.default_rng(9).normal(size=(300, 3))
    Xd = np.vstack([X, X[:40], X[:5]])  # 45 extra copies
    with pytest.warns(g.DuplicatePointsWarning, match="45 duplicate rows"):
        res = g.intrinsic_dimension(Xd, n_boot=3, seed=0)
    assert res.n_duplicates == 45 and res.n_samples == 345 and res.n_used == 300
    assert res.value == pytest.approx(g.intrinsic_dimension(X).value, rel=1e-12)
    with pytest.warns(g.DuplicatePointsWarning):
        mle = g.intrinsic_dimension(Xd, method="mle")
    assert mle.value == pytest.approx(g.intrinsic_dimension(X, method="mle").value, rel=1e-12)
    with pytest.raises(InvalidParameterError, match="45 duplicate rows"):
        g.intrinsic_dimension(Xd, duplicates="raise")
    with pytest.raises(InvalidParameterError, match="distinct points"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        g.intrinsic_dimension(np.vstack([X[:2]] * 10))


def test_intrinsic_dimension_errors():
    X = _cloud(30, 3)
    with pytest.raises(UnknownNameError, match="twonn"):
        g.intrinsic_dimension(X, method="two_nn")
    with pytest.raises(InvalidParameterError, match="at least 3 points"):
        g.intrinsic_dimension(X[:2])
    with pytest.raises(InvalidParameterError, match="at least 21 points"):
        g.intrinsic_dimension(X[:20], method="mle")  # n <= k
    with pytest.raises(InvalidParameterError, match="k"):
        g.intrinsic_dimension(X, method="mle", k=(8, 4))
    bad = X.copy()
    bad[[2, 5]] = np.nan
    with pytest.raises(NonFiniteError, match="2 of 30 rows"):
        g.intrinsic_dimension(bad)
    with pytest.raises(InvalidParameterError, match="n_boot"):
        g.intrinsic_dimension(X, n_boot=-1)
    with pytest.raises(InvalidParameterError, match="resample_fraction"):
        g.intrinsic_dimension(X, resample_fraction=1.5)
    with pytest.raises(UnknownNameError, match="duplicates"):
        g.intrinsic_dimension(X, duplicates="keep")


# -- embed -----------------------------------------------------------------------------------------

# t-SNE's Barnes-Hut gradient (OpenMP) slows down badly on an oversubscribed machine: slow tier.
@pytest.mark.parametrize("method", ["pca", "isomap", "mds", "spectral",
                                    pytest.param("tsne", marks=pytest.mark.slow)])
def test_embed_methods_run_and_report_quality(method):
    X = _cloud(70, 6, seed=1)
    kw = {"max_iter": 250} if method == "tsne" else {}
    res = g.embed(X, method=method, seed=0, **kw)
    assert res.embedding.shape == (70, 2) and res.method == method
    assert 0 <= res.trustworthiness <= 1 and 0 <= res.continuity <= 1 and 0 <= res.knn_preservation <= 1
    assert res.stress >= 0 and res.raw_stress >= 0 and res.quality_n == 70 and res.quality_k == 5
    assert res.stress == pytest.approx(g.stress(X, res.embedding), rel=1e-9)
    assert res.trustworthiness == pytest.approx(g.trustworthiness(X, res.embedding, 5), abs=1e-12)
    again = g.embed(X, method=method, seed=0, **kw)
    np.testing.assert_allclose(again.embedding, res.embedding, atol=1e-10)


class _FakeUMAP:
    calls: list = []

    def __init__(self, **kw):
        type(self).calls.append(kw)
        self.kw = kw

    def fit_transform(self, X):
        return np.random.default_rng(0).normal(size=(X.shape[0], self.kw["n_components"]))


def test_umap_gets_random_state_only_with_a_seed(monkeypatch):
    import topo_mi.geometry._embed as emb

    fake = types.ModuleType("umap")
    fake.UMAP = _FakeUMAP
    monkeypatch.setattr(emb, "import_umap", lambda: fake)
    _FakeUMAP.calls.clear()
    X = _cloud(50, 4)
    g.embed(X, method="umap")
    g.embed(X, method="umap", seed=3, min_dist=0.3)
    assert "random_state" not in _FakeUMAP.calls[0] and "n_jobs" not in _FakeUMAP.calls[0]
    assert _FakeUMAP.calls[1]["random_state"] == 3 and _FakeUMAP.calls[1]["min_dist"] == 0.3
    with pytest.raises(InvalidParameterError, match="n_neighbors"):
        g.embed(X[:14], method="umap")


def test_umap_is_imported_lazily():
    import subprocess

    code = "import sys, topo_mi.geometry, topo_mi.pipelines.geometry; print('umap' in sys.modules, 'sklearn' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_embed_quality_points_subsample_estimates():
    X = _cloud(400, 5, seed=2)
    full = g.embed(X, method="pca", seed=0)
    part = g.embed(X, method="pca", seed=0, quality_points=150)
    assert part.quality_n == 150 and full.quality_n == 400
    assert part.trustworthiness == pytest.approx(full.trustworthiness, abs=0.02)
    assert part.stress == pytest.approx(full.stress, rel=0.1)
    assert part.raw_stress == pytest.approx(full.raw_stress, rel=0.2)


def test_embed_errors():
    X = _cloud(30, 4)
    with pytest.raises(UnknownNameError, match="did you mean 'umap'"):
        g.embed(X, method="uamp")
    with pytest.raises(InvalidParameterError, match="Isomap"):
        g.embed(X, method="isomap", not_a_keyword=1)
    with pytest.raises(InvalidParameterError, match="n_neighbors"):
        g.embed(X, method="isomap", n_neighbors=40)
    with pytest.raises(InvalidParameterError, match="metric"):
        g.embed(cdist(X, X), method="pca", metric="precomputed")
    with pytest.raises(InvalidParameterError, match="n_components"):
        g.embed(X, method="pca", n_components=30)
    with pytest.raises(InvalidParameterError, match="quality_k"):
        g.embed(X, method="pca", quality_k=15)
    bad = X.copy()
    bad[1, 1] = np.inf
    with pytest.raises(NonFiniteError):
        g.embed(bad, method="pca")
    with pytest.raises(InvalidParameterError, match="at least 3 points"):
        g.embed(X[:2], method="pca")
    import topo_mi.geometry._embed as emb

    old = emb.MDS_MAX_POINTS
    emb.MDS_MAX_POINTS = 10
    try:
        with pytest.raises(ResourceError, match="subsample"):
            g.embed(X, method="mds")
    finally:
        emb.MDS_MAX_POINTS = old


def test_embed_precomputed_distances():
    X = _cloud(40, 3)
    D = cdist(X, X)
    a = g.embed(D, method="mds", metric="precomputed", seed=0)
    b = g.embed(X, method="mds", seed=0)
    np.testing.assert_allclose(np.abs(a.embedding), np.abs(b.embedding), atol=1e-8)
    assert a.trustworthiness == pytest.approx(b.trustworthiness, abs=1e-12)


# -- results, plots --------------------------------------------------------------------------------

def test_results_save_load_roundtrip(tmp_path):
    from topo_mi._results import load_result

    X = _cloud(120, 5)
    objs = [g.spectrum(X), g.rank_at(X, 0.1), g.intrinsic_dimension(X, n_boot=3, seed=0),
            g.embed(X, method="pca", seed=0)]
    for i, obj in enumerate(objs):
        back = load_result(obj.save(tmp_path / str(i)))
        assert type(back) is type(obj)
        assert back.summary() == pytest.approx(obj.summary()) if all(
            isinstance(v, float) for v in obj.summary().values()) else back.summary() == obj.summary()
        assert repr(back).startswith(type(obj).__name__)


def test_plots_draw(tmp_path):
    from topo_mi.plotting import geometry as gp
    from topo_mi.plotting import pyplot

    X = _cloud(120, 5)
    y = np.arange(120) % 3
    axes = [g.spectrum(X).plot(), g.intrinsic_dimension(X).plot(),
            g.intrinsic_dimension(X, method="mle", k=(3, 6)).plot(),
            g.intrinsic_dimension(X, method="pca").plot(), g.embed(X, method="pca").plot(),
            gp.plot_embedding(g.embed(X, method="pca"), labels=y), gp.plot_embedding(X[:, :1])]
    for ax in axes:
        assert ax.figure is not None
    pyplot().close("all")


# -- the pipeline ----------------------------------------------------------------------------------

def _toy_layers(n=200, seed=0):
    rng = np.random.default_rng(seed)
    Z = rng.normal(size=(n, 3))
    return {"l1": np.tanh(Z @ rng.normal(size=(3, 16))).astype(np.float32),
            "l2": (Z @ rng.normal(size=(3, 8))).astype(np.float32),
            "l3": rng.normal(size=(n, 5)).astype(np.float32)}


def test_geometry_profile_on_a_mapping(tmp_path):
    from topo_mi._results import load_result
    from topo_mi.pipelines import GeometryProfile, geometry_profile

    layers = _toy_layers()
    labels = np.arange(200) % 4
    prof = geometry_profile(layers, embed="pca", n_boot=5, seed=0, labels=labels, progress=False)
    assert isinstance(prof, GeometryProfile) and prof.layers == ["l1", "l2", "l3"] and len(prof) == 3
    assert prof.ranks.dtype == np.int64 and prof.ranks[1] <= 3 and prof.ranks[2] == 5
    assert np.all(np.isfinite(prof.id_errors)) and np.all(prof.id_errors > 0)
    assert prof["l2"].rank.rank == g.rank_at(layers["l2"], 0.01).rank
    assert prof["l2"].intrinsic_dimension.value == pytest.approx(g.intrinsic_dimension(layers["l2"]).value,
                                                                rel=1e-12)
    assert prof["l1"].embedding.method == "pca"
    assert len(prof.table()) == 3 and "id[l2]" in prof.summary()
    with pytest.raises(UnknownNameError, match="closest"):
        prof["l9"]
    back = load_result(prof.save(tmp_path / "prof"))
    np.testing.assert_array_equal(back.ids, prof.ids)
    np.testing.assert_array_equal(back.labels, labels)
    fig = prof.plot_panel()
    prof.plot()
    from topo_mi.plotting import geometry as gp

    gp.plot_spectra(prof)
    gp.plot_id_profile(prof, show_pca=True)
    prof["l1"].plot()
    from topo_mi.plotting import pyplot

    pyplot().close("all")
    assert fig is not None


def test_geometry_profile_seeds_depend_on_the_layer_not_the_selection():
    from topo_mi.pipelines import geometry_profile

    layers = _toy_layers()
    a = geometry_profile(layers, embed=None, n_boot=4, seed=7, progress=False)
    b = geometry_profile(layers, layers=["l3", "l2"], embed=None, n_boot=4, seed=7, progress=False)
    np.testing.assert_array_equal(a["l2"].intrinsic_dimension.resamples, b["l2"].intrinsic_dimension.resamples)
    assert b.layers == ["l3", "l2"] and a["l1"].embedding is None


def test_geometry_profile_takes_activations_and_their_labels():
    from topo_mi.activations import Activations
    from topo_mi.pipelines import geometry_profile

    layers = _toy_layers(150)
    acts = Activations(layers, labels=np.arange(150) % 3)
    prof = geometry_profile(acts, layers=["l2"], embed="pca", n_boot=2, seed=1, progress=False)
    np.testing.assert_array_equal(prof.labels, np.arange(150) % 3)


def test_geometry_profile_errors():
    from topo_mi.pipelines import geometry_profile

    layers = _toy_layers(60)
    with pytest.raises(UnknownNameError, match="l1"):
        geometry_profile(layers, layers=["l1", "lx"], progress=False)
    with pytest.raises(UnknownNameError, match="embed"):
        geometry_profile(layers, embed="umapp", progress=False)
    with pytest.raises(InvalidParameterError, match="labels"):
        geometry_profile(layers, labels=np.arange(5), embed=None, progress=False)
    with pytest.raises(InvalidParameterError, match="acts"):
        geometry_profile(np.zeros((5, 5)), progress=False)
    with pytest.raises(InvalidParameterError, match="embed_kwargs"):
        geometry_profile(layers, embed_kwargs={"seed": 1}, progress=False)
    bad = dict(layers)
    bad["l2"] = bad["l2"].copy()
    bad["l2"][:30] = bad["l2"][0]  # 29 duplicate rows, then too few for MLE
    with pytest.raises(InvalidParameterError, match="layer 'l2'"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        geometry_profile(bad, layers=["l2"], id_method="mle", id_kwargs={"k": (30, 40)}, embed=None,
                         progress=False)


def test_geometry_profile_process_executor_matches_serial():
    from topo_mi.pipelines import geometry_profile

    layers = _toy_layers(120)
    a = geometry_profile(layers, embed="pca", n_boot=3, seed=5, progress=False)
    b = geometry_profile(layers, embed="pca", n_boot=3, seed=5, executor="process", progress=False)
    np.testing.assert_array_equal(a.ids, b.ids)
    np.testing.assert_array_equal(a.id_errors, b.id_errors)
    np.testing.assert_allclose(a.trustworthiness, b.trustworthiness, rtol=0, atol=0)


# -- properties ------------------------------------------------------------------------------------

from hypothesis import given, settings, strategies as st  # noqa: E402


@settings(max_examples=30, deadline=None)
@given(n=st.integers(3, 30), d=st.integers(1, 12), eps=st.floats(0.0, 1.0), seed=st.integers(0, 10**6),
       center=st.booleans())
def test_rank_at_is_minimal_and_reports_the_tail(n, d, eps, seed, center):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)) * rng.uniform(0.01, 5, size=d)
    res = g.rank_at(X, eps, center=center)
    A = X - X.mean(0) if center else X
    s2 = np.linalg.svd(A, compute_uv=False) ** 2
    total = s2.sum()
    assert res.error == pytest.approx(s2[res.rank:].sum(), rel=1e-9, abs=1e-12 * total)
    assert res.error <= eps * total + 1e-12 * total
    if res.rank > 0:
        assert s2[res.rank - 1:].sum() > eps * total


@settings(max_examples=20, deadline=None)
@given(n=st.integers(12, 40), k=st.integers(1, 5), seed=st.integers(0, 10**6))
def test_neighbourhood_figures_are_in_range_and_match_sklearn(n, k, seed):
    from sklearn.manifold import trustworthiness as sk_trust

    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 4))
    E = rng.normal(size=(n, 2))
    t, c, p = g.trustworthiness(X, E, k), g.continuity(X, E, k), g.knn_preservation(X, E, k)
    assert 0 <= p <= 1 and t <= 1 and c <= 1
    assert t == pytest.approx(sk_trust(X, E, n_neighbors=k), abs=1e-12)


def test_geometry_profile_plot_kinds_return_axes_and_the_panel_a_figure():
    import matplotlib.axes
    import matplotlib.figure

    from topo_mi.pipelines import geometry_profile

    rng = np.random.default_rng(0)
    acts = {"a": rng.normal(size=(80, 6)), "b": rng.normal(size=(80, 4)) @ rng.normal(size=(4, 8))}
    prof = geometry_profile(acts, embed="pca", n_boot=0, seed=0, progress=False)
    for kind in ("id", "spectra", "embedding"):
        assert isinstance(prof.plot(kind=kind), matplotlib.axes.Axes), kind
    assert isinstance(prof.plot(kind="embedding", layer="a"), matplotlib.axes.Axes)
    assert isinstance(prof.plot_panel(), matplotlib.figure.Figure)
    assert list(prof.to_frame().index) == ["a", "b"]


def test_geometry_profile_warns_once_per_layer_naming_it():
    import warnings

    from topo_mi.errors import TopoMIWarning
    from topo_mi.geometry import DuplicatePointsWarning
    from topo_mi.pipelines import geometry_profile

    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 3))
    acts = {"dup": np.vstack([X, X[:10]]), "clean": rng.normal(size=(70, 3))}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        geometry_profile(acts, embed=None, n_boot=5, seed=0, progress=False)
    dup = [w for w in caught if issubclass(w.category, DuplicatePointsWarning)]
    assert len(dup) == 1 and "layer 'dup'" in str(dup[0].message), [str(w.message) for w in caught]
    assert issubclass(DuplicatePointsWarning, TopoMIWarning)  # topo-mi -q silences it
