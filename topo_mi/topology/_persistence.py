"""``persistence()``: Vietoris–Rips persistence of a point cloud, a layer or a distance matrix."""
from __future__ import annotations

import numbers
import time
from collections.abc import Mapping

import numpy as np

from topo_mi._sampling import maxmin_landmarks, random_subsample
from topo_mi._validation import (
    as_array, check_choice, check_distance_matrix, check_float, check_int, check_point_cloud, fail,
)
from topo_mi.errors import InvalidParameterError
from topo_mi.topology import _backends as bk
from topo_mi.topology import _metrics as mt
from topo_mi.topology import _resources as rs
from topo_mi.topology._result import PersistenceResult

LANDMARKS = ("maxmin", "random")
_MAX_DIM = 8


def _is_prime(p: int) -> bool:
    if p < 2:
        return False
    i = 2
    while i * i <= p:
        if p % i == 0:
            return False
        i += 1
    return True


def _single_layer(X):
    """An ``Activations`` (or any mapping) with exactly one layer -> that layer's array."""
    if isinstance(X, Mapping):
        names = list(X.keys())
        if len(names) != 1:
            fail("X", "an array, a tensor or a single layer (pass acts[name]; layers: "
                      f"{', '.join(map(repr, names[:8]))}{' ...' if len(names) > 8 else ''})",
                 f"a mapping with {len(names)} layers", raw=True)
        return X[names[0]]
    return X


def _resolve_seed(seed):
    """An int (recorded in the result) from None / int / Generator."""
    if seed is None:
        return None
    if isinstance(seed, bool):
        fail("seed", "None, an int or a numpy Generator", seed)
    if isinstance(seed, numbers.Integral):
        return int(seed)
    if isinstance(seed, np.random.Generator):
        return int(seed.integers(0, 2**31 - 1))
    fail("seed", "None, an int or a numpy Generator", seed)


def persistence(X, *, max_dim: int = 1, metric: str = "euclidean", backend: str = "auto", coeff: int = 2,
                threshold: float | None = None, n_landmarks: int | None = None, landmarks: str = "maxmin",
                seed=None, k: int | None = None, memory_limit: int | None = None, max_error: float | None = None,
                max_relative_error: float | None = None, route: str = "auto",
                label: str | None = None) -> PersistenceResult:
    """Vietoris–Rips persistent homology, H_0..H_max_dim over Z/coeff.

    The complex at scale ``s`` is ``{σ ⊂ X : diam(σ) <= s}``; a bar ``[b, d)`` is a class born
    at ``b`` and dead at ``d`` (see :meth:`PersistenceResult.betti_numbers`).

    Parameters
    ----------
    X : array of shape (n_samples, n_features), torch tensor, one ``Activations`` layer, or with
        ``metric="precomputed"`` a distance matrix of shape (n_samples, n_samples)
    max_dim : int, default 1
        Highest homology dimension.
    metric : {"euclidean", "cosine", "correlation", "precomputed", "knn_geodesic"}
        ``cosine`` is ``1 − cos``; ``correlation`` is ``1 − Pearson r`` of the rows;
        ``knn_geodesic`` is the hop distance on the symmetrised k-nearest-neighbour graph, each
        point among its own k (Naitzat, Zhitnikov & Lim, JMLR 2020); its values are integers, so
        ``betti_numbers(2)`` is the complex of simplices whose vertices are pairwise <= 2 hops
        apart. A precomputed matrix must be square, symmetric and have a zero diagonal (up to a
        relative 1e-8, then made exactly so: ``(D + Dᵀ) / 2``, zero diagonal).
    backend : {"auto", "gudhi", "ripser", "giotto-ph", "mst"}
        ``auto`` picks the fastest measured on this project's benchmark: ``mst`` (exact single
        linkage) when ``max_dim == 0``, else gudhi. ripser and giotto-ph compute in float32; their
        values are mapped back to the exact float64 distances. giotto-ph is optional.
    coeff : int, default 2
        A prime p: homology over Z/p (Z/2 and Z/3 tell a Klein bottle from a torus).
    threshold : float, optional
        Leave out edges longer than this (a smaller complex); classes still alive at the threshold
        get ``inf`` deaths. Betti numbers above the threshold are refused.
    n_landmarks : int, optional
        Build the complex on this many landmarks (``landmarks="maxmin"``: the greedy permutation;
        ``"random"``: a uniform sample). The result records the indices, the cover radius ``r``
        and the guaranteed bottleneck bound ``2r`` to the diagrams of all points (for cosine and
        correlation, computed on the unit sphere: ``2 r_c M`` with ``r_c`` the chordal cover
        radius and ``M <= 2`` the chordal diameter, as ``1 − cos = chord² / 2``). Points are never
        subsampled unless asked. The greedy permutation runs in float32 blocks through BLAS, ties
        going to the lowest index (:mod:`topo_mi.topology._landmarks`); its cover radius is
        recomputed in float64.
    landmarks : {"maxmin", "random"}
    seed : int, Generator or None
        Picks the first max–min landmark (None: the first point) or the random landmarks.
    k : int
        Neighbours for ``metric="knn_geodesic"`` (required there, refused elsewhere).
    max_error : float, optional
        Ask for diagrams certified within this bottleneck distance of the exact diagrams of all
        the points (Euclidean point clouds); topo_mi picks the cheapest certified route and
        reports it with the bound per dimension (``route``, ``error_bounds``, and in
        ``summary()`` the bound relative to the longest bars and the bars certified as real).
        H0 is exact (minimum spanning tree of all points) whenever their distance matrix fits.
        Not with ``n_landmarks`` or a finite ``threshold``.
    max_relative_error : float, optional
        The same target as a fraction of the cloud's scale ``R = max_u |u − x_c|`` (``x_c``
        the point nearest the mean; ``diameter / 2 <= R <= diameter``), so the bound is at most
        this fraction of the diameter.
    route : {"auto", "exact", "truncated", "landmarks", "sparse"}
        With a target: ``auto`` takes max–min landmarks when half the points or fewer meet it,
        else all points when their complex fits — exactly, or up to ``R − 2 max_error`` below
        the enclosing radius ``R`` with the bound ``max_error`` (route ``"truncated"``) — else
        gudhi's sparse Rips (see :mod:`topo_mi.topology._certified` for the guarantees and their
        papers).
    memory_limit : int, optional
        Bytes the computation may use (default: 75 % of the memory available now). The size of
        the complex is estimated first; what would not fit is refused with a
        :class:`~topo_mi.errors.ResourceError` that suggests ``n_landmarks`` or ``threshold``.
        A computation estimated to take over a minute warns first
        (:class:`~topo_mi.errors.CostWarning`) with the estimate and the cheaper options.
    label : str, optional
        What the points are (e.g. a layer name), for warnings.

    Returns
    -------
    PersistenceResult

    References
    ----------
    Bauer, "Ripser", J. Appl. Comput. Topol. 2021; Chazal, de Silva & Oudot, "Persistence
    stability for geometric complexes", Geom. Dedicata 2014; Naitzat, Zhitnikov & Lim,
    "Topology of deep neural networks", JMLR 2020.
    """
    t0 = time.perf_counter()
    max_dim = check_int("max_dim", max_dim, min_value=0, max_value=_MAX_DIM)
    metric = check_choice("metric", metric, mt.METRICS)
    backend = check_choice("backend", backend, bk.BACKENDS)
    coeff = check_int("coeff", coeff, min_value=2)
    if not _is_prime(coeff):
        fail("coeff", "a prime number (homology over the field Z/p)", coeff)
    if threshold is None:
        threshold = np.inf
    threshold = check_float("threshold", threshold, min_value=0, allow_inf=True)
    landmarks = check_choice("landmarks", landmarks, LANDMARKS)
    if metric == "knn_geodesic":
        if k is None:
            fail("k", "the number of neighbours (an integer >= 1) with metric='knn_geodesic'", k)
        k = check_int("k", k, min_value=1)
    elif k is not None:
        fail("k", "None unless metric='knn_geodesic'", k)
    if backend == "mst" and max_dim != 0:
        fail("backend", "'mst' only with max_dim=0 (it computes H0 only)", backend)
    if label is not None and not isinstance(label, str):
        fail("label", "a string or None", label)
    seed_int = _resolve_seed(seed)
    limit = rs.default_memory_limit() if memory_limit is None else check_int("memory_limit", memory_limit, min_value=1)
    from topo_mi.topology import _certified as cert

    kind, target, route = cert.parse_target(max_error, max_relative_error, route)
    if kind is not None:
        if metric != "euclidean":
            fail("metric", "'euclidean' with max_error / max_relative_error", metric)
        if n_landmarks is not None:
            fail("n_landmarks", "None with max_error (the certified route picks the landmarks)", n_landmarks)
        if np.isfinite(threshold):
            fail("threshold", "None with max_error (the bound is for the whole filtration)", threshold)
        if backend not in ("auto", "gudhi"):
            fail("backend", "'auto' or 'gudhi' with max_error", backend)
        X = check_point_cloud(_single_layer(X), "X", min_points=2)
        dgms, bounds, used, idx, cover, info = cert.certified_persistence(
            X, max_dim=max_dim, coeff=coeff, target=target, kind=kind, route=route, limit=limit)
        return PersistenceResult(
            diagrams=dgms, max_dim=max_dim, metric=metric, backend="mst" if used == "mst" else "gudhi",
            coeff=coeff, threshold=float("inf"), n_points=int(X.shape[0]), landmark_indices=idx,
            landmark_method=None if idx is None else "maxmin", cover_radius=float(cover),
            bottleneck_bound=float(max(bounds)), seed=None, elapsed_s=time.perf_counter() - t0,
            timings={}, route=used, error_bounds=tuple(float(b) for b in bounds),
            max_error=info["target"], cut=info.get("cut"),
        )

    # -- input -----------------------------------------------------------------------------------
    X = _single_layer(X)
    if metric == "precomputed":
        X = as_array(X, "X")
        if X.ndim == 2 and X.shape[0] == X.shape[1]:
            rs.check_dense_fits(X.shape[0], backend="gudhi", limit=limit, what=" (precomputed)")
        X = check_distance_matrix(X, "X")
        if np.any(np.diag(X) != 0) or not np.array_equal(X, X.T):
            # within the tolerance check_distance_matrix allows: make it exact (gudhi reads the
            # diagonal as vertex values and one triangle of the matrix)
            X = 0.5 * (X + X.T)
            np.fill_diagonal(X, 0.0)
    else:
        X = check_point_cloud(X, "X", min_points=2)
    N = X.shape[0]
    if n_landmarks is not None:
        n_landmarks = check_int("n_landmarks", n_landmarks, min_value=2, max_value=N)
        if n_landmarks == N:
            n_landmarks = None
    n = N if n_landmarks is None else n_landmarks
    run_backend = bk.choose_backend(n, max_dim, metric == "knn_geodesic") if backend == "auto" else backend
    bk.check_backend_available(run_backend)

    # -- landmarks and the distance matrix of the working points --------------------------------
    idx = None
    cover = 0.0
    bound = 0.0
    hop_full = None
    if metric == "knn_geodesic" and n_landmarks is not None:
        rs.check_dense_fits(N, backend=run_backend, limit=limit, what=" (hop distances of all points, for landmarks)")
        hop_full = mt.hop_distances(mt.knn_graph(X, k))
    timings = {}
    t1 = time.perf_counter()
    if n_landmarks is not None:
        idx, cover, bound = _landmarks(X, metric, n_landmarks, landmarks, seed_int, hop_full)
    timings["landmarks"] = time.perf_counter() - t1
    if metric != "knn_geodesic" or np.isinf(threshold) or hop_full is not None:
        rs.check_dense_fits(n, backend=run_backend, limit=limit)

    t1 = time.perf_counter()
    if metric == "precomputed":
        D = X if idx is None else np.ascontiguousarray(X[np.ix_(idx, idx)])
    elif metric == "knn_geodesic":
        if hop_full is not None:
            D = np.ascontiguousarray(hop_full[np.ix_(idx, idx)])
            del hop_full
        else:
            D = mt.hop_distances(mt.knn_graph(X, k), max_hops=None if np.isinf(threshold) else threshold)
    else:
        with _one_blas_thread():  # spinning BLAS threads would slow the single-threaded backend
            D = mt.distance_matrix_of(X if idx is None else X[idx], metric)
    if isinstance(D, np.ndarray) and not np.isfinite(D).all():
        D = _dense_to_coo(D)  # disconnected kNN graph (or an inf in a precomputed matrix): no edge

    t2 = time.perf_counter()
    timings["distances"] = t2 - t1

    timings["estimate"] = 0.0

    def check(t):  # the memory guard (and cost warning) of each complex before it runs
        t_check = time.perf_counter()
        info = rs.check_complex_fits(D, n=n, max_dim=max_dim, threshold=t, backend=run_backend, limit=limit,
                                     coeff=coeff)
        if run_backend != "mst":
            rs.warn_if_expensive(D, n=n, max_dim=max_dim, threshold=t, info=info, label=label,
                                 has_landmarks=idx is not None)
        timings["estimate"] += time.perf_counter() - t_check

    def run(t):
        return bk.run_backend(run_backend, D, n=n, max_dim=max_dim, threshold=t, coeff=coeff)

    from topo_mi.topology import _cut

    # the memory guard, then the backend; H0-H1 of many points through a certified prefix (see _cut)
    t3 = time.perf_counter()
    raw, cut = _cut.exact_persistence(D, max_dim=max_dim, threshold=threshold, backend=run_backend,
                                      check=check, run=run)
    if run_backend in ("ripser", "giotto-ph"):
        raw = bk.snap_to_distances([np.asarray(d, dtype=np.float64).reshape(-1, 2) for d in raw], D)
    dgms = bk.canonical_diagrams(raw, max_dim)
    timings["persistence"] = time.perf_counter() - t3 - timings["estimate"]
    return PersistenceResult(
        diagrams=dgms, max_dim=max_dim, metric=metric, backend=run_backend, coeff=coeff,
        threshold=float(threshold), n_points=int(N), landmark_indices=idx,
        landmark_method=None if idx is None else landmarks, cover_radius=float(cover),
        bottleneck_bound=float(bound), k=k, seed=seed_int, elapsed_s=time.perf_counter() - t0,
        timings=timings, cut=cut,
    )


def _dense_to_coo(D: np.ndarray):
    from scipy.sparse import coo_matrix

    i, j = np.nonzero(np.triu(np.isfinite(D), 1))
    return coo_matrix((D[i, j], (i, j)), shape=D.shape)


def _landmarks(X, metric, n, method, seed, hop_full):
    """Landmark indices, cover radius (metric units) and the bottleneck bound."""
    if metric in ("euclidean", "cosine", "correlation"):
        Y = X if metric == "euclidean" else mt.unit_rows(X, metric)
        if method == "maxmin":
            from topo_mi.topology._landmarks import greedy_permutation

            start = 0 if seed is None else int(np.random.default_rng(seed).integers(Y.shape[0]))
            idx, _, r, _ = greedy_permutation(Y, n, start=start)
        else:
            idx = random_subsample(Y.shape[0], n, seed=seed)
            r = _cover_radius_points(Y, idx)
        if metric == "euclidean":
            return idx, r, 2.0 * r
        # 1 - cos = chord^2 / 2; Rips of the cosine distance is Rips of the chordal one reparametrised
        # by f(c) = c^2 / 2, and |f(a) - f(b)| <= |a - b| * M for a, b <= M (the chordal diameter).
        M = min(2.0, 2.0 * float(np.max(np.linalg.norm(Y - Y[idx[0]], axis=1))))
        return idx, 0.5 * r * r, 2.0 * r * M
    D = X if metric == "precomputed" else hop_full
    if method == "maxmin":
        idx, r = maxmin_landmarks(D, n, seed=seed, start=0 if seed is None else None, metric="precomputed")
    else:
        idx = random_subsample(D.shape[0], n, seed=seed)
        r = float(np.max(np.min(D[:, idx], axis=1)))
    # With the whole matrix at hand, the distortion of the correspondence x <-> its nearest
    # landmark bounds the bottleneck distance directly (<= 2r, and valid without the triangle
    # inequality).
    return idx, r, _distortion_bound(D, idx)


_CONTROLLER = []


def _one_blas_thread():
    return _blas_threads(1)


def _blas_threads(n: int):
    """Limit BLAS to ``n`` threads. One thread for matrix-vector products: they are memory
    bound and extra BLAS threads only wait on each other (3x slower on a busy 2-core machine in
    our measurements); after a multi-threaded product, OpenBLAS threads keep spinning and steal
    the core the Rips backend runs on."""
    import contextlib

    if not _CONTROLLER:
        try:
            from threadpoolctl import ThreadpoolController

            _CONTROLLER.append(ThreadpoolController())  # finding the libraries costs ms: once
        except ImportError:  # pragma: no cover - scikit-learn brings threadpoolctl
            _CONTROLLER.append(None)
    ctl = _CONTROLLER[0]
    return contextlib.nullcontext() if ctl is None else ctl.limit(limits=n, user_api="blas")


def _cover_radius_points(Y, idx, block: int = 4096) -> float:
    L = Y[idx]
    r = 0.0
    for s in range(0, Y.shape[0], block):
        d = mt.euclidean_distances(Y[s:s + block], L)
        r = max(r, float(d.min(axis=1).max()))
    return r


def _distortion_bound(D: np.ndarray, idx: np.ndarray, block: int = 1024) -> float:
    """``max |D(x, x') − D(l(x), l(x'))|`` with ``l`` the nearest landmark (the correspondence
    distortion; the Rips diagrams of the landmarks are within this bottleneck distance)."""
    near = idx[np.argmin(D[:, idx], axis=1)]
    worst = 0.0
    for s in range(0, D.shape[0], block):
        a = D[s:s + block]
        b = D[np.ix_(near[s:s + block], near)]
        fa, fb = np.isfinite(a), np.isfinite(b)
        if not np.array_equal(fa, fb):  # pairs joined on one side only (disconnected kNN graph)
            return float("inf")
        if fa.any():
            worst = max(worst, float(np.abs(a[fa] - b[fa]).max()))
    return worst
