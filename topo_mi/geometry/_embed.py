"""The nonlinear route of activation-space decomposition: embeddings with their quality.

The framework asks for an embedding ``E = f(A)`` minimising the stress
``L_top = sum_{i,j} (d_A(a_i, a_j) - ||e_i - e_j||)^2``. Metric MDS minimises exactly that;
UMAP, Isomap, spectral embedding and t-SNE minimise other losses, so every
:class:`EmbeddingResult` reports the stress and the neighbourhood figures (trustworthiness,
continuity, k-NN preservation) that say how faithful the picture is.
"""
from __future__ import annotations

import numbers
import warnings
from typing import Any

import numpy as np

from topo_mi._results import Result, result_dataclass
from topo_mi._validation import (
    check_choice, check_distance_matrix, check_float, check_int, check_point_cloud, check_random_state, fail,
)
from topo_mi.errors import InvalidParameterError, ResourceError
from topo_mi.geometry import _quality as q

EMBED_METHODS = ("umap", "isomap", "mds", "pca", "spectral", "tsne")
# metric MDS holds n x n matrices (several copies inside SMACOF): refuse beyond this.
MDS_MAX_POINTS = 15_000


@result_dataclass
class EmbeddingResult(Result):
    """A low-dimensional embedding and how faithful it is (see :func:`embed`).

    Attributes
    ----------
    embedding : ndarray of shape (n_samples, n_components), float64
    method : str
    metric : str
        Distance of the data space (the embedding space is Euclidean).
    n_components : int
    stress : float
        Kruskal's stress-1 after the optimal rescaling of the embedding (0 = distances kept).
    raw_stress : float
        ``L_top = sum_{i != j} (d_X - d_E)^2`` over ordered pairs, on the embedding as returned.
    trustworthiness, continuity, knn_preservation : float
        At ``quality_k`` neighbours (Venna & Kaski 2001).
    quality_k : int
    quality_n : int
        Query points the quality figures were computed from: ``n_samples`` means exact; fewer
        means averages over that many random points against all points (``raw_stress`` is then
        scaled up by ``n_samples / quality_n``).
    params : dict
        The keyword arguments given to the method (JSON-able; other values as their repr).
    seed : int or None
    """

    embedding: np.ndarray
    method: str
    metric: str
    n_components: int
    stress: float
    raw_stress: float
    trustworthiness: float
    continuity: float
    knn_preservation: float
    quality_k: int
    quality_n: int
    params: dict
    seed: Any

    _plot_function = "topo_mi.plotting.geometry:plot_embedding"

    @property
    def n_samples(self) -> int:
        return int(self.embedding.shape[0])

    def summary(self):
        return {"method": self.method, "stress": self.stress, "trustworthiness": self.trustworthiness,
                "continuity": self.continuity, "knn_preservation": self.knn_preservation}


def seed_int(seed) -> int | None:
    """``None`` stays None; ints pass (0 <= seed < 2**32); Generators draw one int."""
    if seed is None:
        return None
    if isinstance(seed, numbers.Integral) and not isinstance(seed, bool):
        return check_int("seed", seed, min_value=0, max_value=2**32 - 1)
    return int(check_random_state(seed).integers(2**31 - 1))


def _jsonable(params: dict) -> dict:
    out = {}
    for key, value in params.items():
        if isinstance(value, (str, bool, type(None))) or (isinstance(value, numbers.Number)
                                                          and not isinstance(value, complex)):
            out[key] = value.item() if isinstance(value, np.generic) else value
        elif isinstance(value, (list, tuple)) and all(isinstance(v, (str, int, float, bool)) for v in value):
            out[key] = list(value)
        else:
            out[key] = repr(value)
    return out


def _construct(cls, name, **kw):
    try:
        return cls(**kw)
    except TypeError as exc:
        raise InvalidParameterError(f"kw: expected keyword arguments accepted by {name}, got {exc}") from exc


def _check_neighbors(kw, default, n, method):
    k = check_int("n_neighbors", kw.get("n_neighbors", default), min_value=2)
    if k >= n:
        fail("n_neighbors", f"fewer than the {n} points for {method}", k)
    return k


# -- the methods -----------------------------------------------------------------------------------

_UMAP_READY = False


def import_umap():
    """Import umap-learn once per process, with numba's on-disk cache on for all its kernels.

    Several umap-learn kernels (``fast_knn_indices``, ``smooth_knn_dist``,
    ``compute_membership_strengths``, the layout epochs ...) are jitted without ``cache=True``,
    so every new process compiled them again (15-45 s on 2 cores). Enabling numba's cache on those
    dispatchers makes the first process write the machine code and later ones load it; within a
    process numba compiles each signature once anyway. Any failure here only costs speed.
    """
    global _UMAP_READY
    try:
        import umap
    except ImportError as exc:  # pragma: no cover - a core dependency
        from topo_mi.errors import DependencyError

        raise DependencyError("embed(method='umap') needs umap-learn: pip install umap-learn") from exc
    if not _UMAP_READY:
        _UMAP_READY = True
        from topo_mi.geometry._neighbors import enable_numba_cache

        enable_numba_cache("umap", ("umap_", "layouts", "utils", "distances", "spectral", "sparse"))
    return umap


def _umap(X, n_components, metric, seed, kw):
    umap = import_umap()
    kw = dict(kw)
    kw["n_neighbors"] = _check_neighbors(kw, 15, X.shape[0], "umap")
    if seed is not None:
        kw["random_state"] = seed  # deterministic, single-threaded
        kw.setdefault("n_jobs", 1)
    model = _construct(umap.UMAP, "umap.UMAP", n_components=n_components, metric=metric, **kw)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*n_jobs value.*overridden.*")
        warnings.filterwarnings("ignore", message=".*using precomputed metric.*")
        E = model.fit_transform(X)
    return E, kw


def _isomap(X, n_components, metric, seed, kw):
    from sklearn.manifold import Isomap

    kw = dict(kw)
    kw["n_neighbors"] = _check_neighbors(kw, 10, X.shape[0], "isomap")
    model = _construct(Isomap, "sklearn.manifold.Isomap", n_components=n_components, metric=metric, **kw)
    return model.fit_transform(X), kw


def classical_mds(D: np.ndarray, n_components: int) -> np.ndarray:
    """Torgerson's classical MDS: top eigenvectors of ``-J D^2 J / 2`` scaled by sqrt(eigenvalue).

    Exact (zero stress) when ``D`` holds Euclidean distances of points in ``n_components``
    dimensions (Young & Householder 1938; Torgerson 1952).
    """
    import scipy.linalg

    n = D.shape[0]
    B = -0.5 * D ** 2
    B -= B.mean(axis=0, keepdims=True)
    B -= B.mean(axis=1, keepdims=True)
    B = 0.5 * (B + B.T)
    m = min(n_components, n)
    w, V = scipy.linalg.eigh(B, subset_by_index=[n - m, n - 1])
    w, V = w[::-1], V[:, ::-1]
    E = V * np.sqrt(np.maximum(w, 0.0))
    if m < n_components:
        E = np.hstack([E, np.zeros((n, n_components - m))])
    return E


def _mds(X, n_components, metric, seed, kw):
    from sklearn.manifold import smacof

    n = X.shape[0]
    if n > MDS_MAX_POINTS:
        raise ResourceError(f"X: metric MDS holds several {n} x {n} matrices; expected at most {MDS_MAX_POINTS} "
                            "points, subsample first (e.g. Activations.subsample) or use method='umap'")
    kw = dict(kw)
    init = kw.pop("init", "classical")
    max_iter = check_int("max_iter", kw.pop("max_iter", 300), min_value=0)
    eps = check_float("eps", kw.pop("eps", 1e-6), min_value=0.0)
    if kw:
        fail("kw", "only init, max_iter and eps for method='mds'", sorted(kw))
    if metric == "precomputed":
        D = X
    else:
        from sklearn.metrics import pairwise_distances

        D = pairwise_distances(X, metric=metric)
    if isinstance(init, str):
        check_choice("init", init, ("classical", "random"))
        E0 = (classical_mds(D, n_components) if init == "classical"
              else check_random_state(seed).uniform(-1, 1, size=(n, n_components)))
    else:
        E0 = np.asarray(init, dtype=np.float64)
        if E0.shape != (n, n_components):
            fail("init", f"'classical', 'random' or an array of shape ({n}, {n_components})", E0)
    params = {"init": init if isinstance(init, str) else "array", "max_iter": max_iter, "eps": eps}
    if max_iter == 0:
        return E0, params
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        E, _ = smacof(D, metric=True, n_components=n_components, init=E0, n_init=1, max_iter=max_iter,
                      eps=eps, random_state=seed, normalized_stress=False)
    return E, params


def _pca(X, n_components, metric, seed, kw):
    from sklearn.decomposition import PCA

    if metric != "euclidean":
        fail("metric", "'euclidean' for method='pca'", metric)
    if n_components > min(X.shape):
        fail("n_components", f"at most min(n_samples, n_features) = {min(X.shape)} for pca", n_components)
    model = _construct(PCA, "sklearn.decomposition.PCA", n_components=n_components, random_state=seed, **kw)
    return model.fit_transform(X), dict(kw)


def _spectral(X, n_components, metric, seed, kw):
    from sklearn.manifold import SpectralEmbedding

    if metric != "euclidean":
        fail("metric", "'euclidean' for method='spectral'", metric)
    if "n_neighbors" in kw:
        _check_neighbors(kw, None, X.shape[0], "spectral")
    model = _construct(SpectralEmbedding, "sklearn.manifold.SpectralEmbedding", n_components=n_components,
                       random_state=seed, **kw)
    return model.fit_transform(X), dict(kw)


def _tsne(X, n_components, metric, seed, kw):
    from sklearn.manifold import TSNE

    n = X.shape[0]
    kw = dict(kw)
    perplexity = check_float("perplexity", kw.pop("perplexity", min(30.0, max(1.0, (n - 1) / 3.0))),
                             min_value=0.0, min_inclusive=False)
    if perplexity >= n:
        fail("perplexity", f"a value below the {n} points", perplexity)
    kw.setdefault("init", "random" if metric == "precomputed" else "pca")
    kw.setdefault("method", "barnes_hut" if n_components < 4 else "exact")
    model = _construct(TSNE, "sklearn.manifold.TSNE", n_components=n_components, perplexity=perplexity,
                       metric=metric, random_state=seed, **kw)
    return model.fit_transform(X), {"perplexity": perplexity, **kw}


_METHODS = {"umap": _umap, "isomap": _isomap, "mds": _mds, "pca": _pca, "spectral": _spectral, "tsne": _tsne}


def embed(X, *, method: str = "umap", n_components: int = 2, metric: str = "euclidean", seed=None,
          quality_k: int = 5, quality_points: int | None = 10_000, **kw) -> EmbeddingResult:
    """Embed a point cloud in ``n_components`` dimensions and measure how faithful it is.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features), or (n, n) distances with ``metric="precomputed"``
        (not for ``pca``/``spectral``).
    method : {"umap", "isomap", "mds", "pca", "spectral", "tsne"}, default "umap"
        ``umap``: McInnes, Healy & Melville (2018), ``umap.UMAP`` (``n_neighbors=15``).
        ``isomap``: Tenenbaum, de Silva & Langford (Science 2000), ``n_neighbors=10``.
        ``mds``: metric MDS minimising the stress by SMACOF (de Leeuw 1977), started from
        classical MDS (Torgerson 1952), so Euclidean configurations are recovered exactly;
        keywords ``init`` ("classical" | "random" | array), ``max_iter``, ``eps``.
        ``pca``, ``spectral`` (Laplacian eigenmaps, Belkin & Niyogi 2003) and ``tsne`` (van der
        Maaten & Hinton 2008; perplexity ``min(30, (n - 1) / 3)``) from scikit-learn.
    n_components : int, default 2
    metric : str, default "euclidean"
    seed : int, Generator or None
        Seeds the method and the choice of quality query points. For UMAP the seed is passed as
        ``random_state`` only when given (a seeded UMAP runs single-threaded and reproducibly;
        ``seed=None`` lets it run in parallel).
    quality_k : int, default 5
        Neighbourhood size for trustworthiness, continuity and k-NN preservation.
    quality_points : int or None, default 10_000
        Above this many points the quality figures are averaged over that many random query
        points (each against all points), recorded in ``quality_n``; None: always exact.
    **kw
        Passed to the method's estimator (e.g. ``n_neighbors``, ``min_dist``).

    Returns
    -------
    EmbeddingResult

    Raises
    ------
    UnknownNameError
        Unknown ``method``.
    InvalidParameterError
        Too few points for the neighbourhood sizes, a metric the method cannot use, bad keywords.
    ResourceError
        ``mds`` on more than 15,000 points.
    """
    method = check_choice("method", method, EMBED_METHODS)
    if not isinstance(metric, str):
        fail("metric", "a metric name (str)", metric)
    if metric == "precomputed":
        if method in ("pca", "spectral"):
            fail("metric", f"a vector-space metric for method={method!r}", metric)
        X = check_distance_matrix(X, "X")
    else:
        X = check_point_cloud(X, "X", min_points=3)
    n = X.shape[0]
    n_components = check_int("n_components", n_components, min_value=1)
    if n_components >= n:
        fail("n_components", f"fewer than the {n} points", n_components)
    quality_k = check_k_embed(quality_k, n)
    if quality_points is not None:
        quality_points = check_int("quality_points", quality_points, min_value=1)
    sint = seed_int(seed)
    E, params = _METHODS[method](X, n_components, metric, sint, kw)
    E = np.asarray(E, dtype=np.float64)
    if not np.isfinite(E).all():
        from topo_mi.errors import DivergenceError

        raise DivergenceError(f"embed: method {method!r} returned {int((~np.isfinite(E)).sum())} non-finite "
                              "coordinates")
    q_rng = np.random.default_rng(None if sint is None else [sint, 1])
    rows = q.query_rows(n, quality_points, q_rng)
    st = q.quality_pass(X, E, k=quality_k, metric=metric, query=rows)
    return EmbeddingResult(embedding=E, method=method, metric=metric, n_components=n_components,
                           stress=st.kruskal(True), raw_stress=st.raw_stress(),
                           trustworthiness=st.trustworthiness(), continuity=st.continuity(),
                           knn_preservation=st.knn_preservation(), quality_k=quality_k,
                           quality_n=st.n_query, params=_jsonable(params), seed=sint)


def check_k_embed(k, n):
    return q.check_k(k, n, "quality_k")


__all__ = ["embed", "EmbeddingResult", "classical_mds", "EMBED_METHODS"]
