"""Nearest neighbours without an n x n matrix, duplicate handling and neighbour reuse.

Every k-NN estimator here (TwoNN, MLE) works on the same three steps:

1. :func:`knn` — the ``K`` nearest neighbours of every point through scikit-learn's
   ``NearestNeighbors`` (a KD-/ball tree in low dimension, chunked brute force otherwise: memory
   stays O(n K), never O(n^2)); the distances are then recomputed exactly as ``||x_i - x_j||``
   (the brute-force path uses ``|x|^2 + |y|^2 - 2 x.y``, which loses the small distances
   TwoNN divides by) and each row re-sorted.
2. :func:`find_duplicates` — exact duplicate rows, found among the points whose nearest
   neighbour is at distance 0 (cheap when there are none).
3. :func:`first_kept` — for a subset of the points (duplicates removed, or a resample), the
   first ``m`` neighbours *within the subset*, read from the lists of step 1; rows whose list
   holds fewer than ``m`` kept neighbours are recomputed exactly. The result is identical to a
   fresh neighbour search on the subset, at a fraction of the cost.
"""
from __future__ import annotations

import numpy as np

# Rows per block when gathering neighbour coordinates (bounds memory to ~block * K * d floats).
_BLOCK_ELEMENTS = 8_000_000


def knn(X: np.ndarray, k: int, *, algorithm: str = "auto", n_jobs: int | None = None
        ) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` nearest neighbours of every row of ``X`` among the other rows.

    Parameters
    ----------
    X : ndarray of shape (n, d), float64
    k : int, 1 <= k <= n - 1

    Returns
    -------
    dist : ndarray of shape (n, k), float64
        Exact Euclidean distances, ascending along each row.
    ind : ndarray of shape (n, k), int64
        Neighbour indices (the point itself excluded, duplicates of it included).
    """
    from sklearn.neighbors import NearestNeighbors

    nn = NearestNeighbors(n_neighbors=k, algorithm=algorithm, n_jobs=n_jobs).fit(X)
    _, ind = nn.kneighbors(return_distance=True)
    ind = ind.astype(np.int64, copy=False)
    dist = exact_distances(X, ind)
    order = np.argsort(dist, axis=1, kind="stable")
    return np.take_along_axis(dist, order, axis=1), np.take_along_axis(ind, order, axis=1)


_NND_READY = []
# Neighbours per point in the NN-descent graph (only the first k are kept): on 100,000 x 128
# points of a 10-dimensional latent, TwoNN's two neighbours were exact for 80 % of the points
# with a graph of 4 (1.9 s, TwoNN 2.8 % off exact), 93 % with 8 (3.0 s, 0.7 % off) and 99 % with
# 12 (6.6 s, 0.07 % off).
_NND_GRAPH = 10


def enable_numba_cache(package: str, modules) -> None:
    """Turn numba's on-disk cache on for the jitted functions of ``package.<module>`` compiled
    without ``cache=True``: the first process writes the machine code, later ones load it. Any
    failure here only costs speed."""
    try:
        import importlib

        from numba.core.caching import NullCache
        from numba.core.dispatcher import Dispatcher

        for name in modules:
            try:
                mod = importlib.import_module(f"{package}.{name}")
            except ImportError:  # pragma: no cover - layout differs between versions
                continue
            for obj in list(vars(mod).values()):
                if isinstance(obj, Dispatcher) and isinstance(getattr(obj, "_cache", None), NullCache):
                    obj.enable_caching()
    except Exception:  # pragma: no cover - numba internals changed: just slower
        pass


def import_pynndescent():
    """Import pynndescent with numba's on-disk cache turned on for its kernels (several are
    jitted without ``cache=True``, so every process compiled them again: 101 s on the busy
    2-core machine, after a cold 351 s), the way :func:`topo_mi.geometry._embed.import_umap`
    does for umap-learn. Any failure here only costs speed."""
    try:
        import pynndescent
    except ImportError as exc:  # pragma: no cover - umap-learn brings it
        from topo_mi.errors import DependencyError

        raise DependencyError("neighbors='approximate' needs pynndescent (pip install pynndescent)") from exc
    if not _NND_READY:
        _NND_READY.append(True)
        enable_numba_cache("pynndescent", ("pynndescent_", "rp_trees", "utils", "distances", "sparse",
                                           "graph_utils"))
    return pynndescent


def approximate_knn(X: np.ndarray, k: int, *, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """:func:`knn` through pynndescent's NN-descent graph (Dong, Charikar & Li, WWW 2011):
    near-linear time, neighbours possibly missed (measure with :func:`neighbor_agreement`);
    the distances of the neighbours found are exact, as in :func:`knn`.

    pynndescent compiles its kernels with numba on the first call of a process (minutes on a
    busy machine; the on-disk numba cache shortens later processes)."""
    pynndescent = import_pynndescent()
    n = X.shape[0]
    index = pynndescent.NNDescent(np.ascontiguousarray(X, dtype=np.float32),
                                  n_neighbors=min(n, max(k + 1, _NND_GRAPH)),
                                  random_state=seed, n_jobs=1, compressed=True)
    ind, _ = index.neighbor_graph
    ind = np.asarray(ind, dtype=np.int64)
    rows = np.arange(n)[:, None]
    own = ind == rows
    # drop each row's own index (or its last entry when the search missed it), keep k
    drop = np.where(own.any(axis=1), own.argmax(axis=1), ind.shape[1] - 1)
    mask = np.ones_like(ind, dtype=bool)
    mask[np.arange(n), drop] = False
    ind = ind[mask].reshape(n, -1)[:, :k]
    ind = np.where(ind < 0, (np.arange(n)[:, None] + 1) % n, ind)  # unfilled slots: any other point
    dist = exact_distances(X, ind)
    order = np.argsort(dist, axis=1, kind="stable")
    return np.take_along_axis(dist, order, axis=1), np.take_along_axis(ind, order, axis=1)


def neighbor_agreement(X: np.ndarray, dist: np.ndarray, m: int, *, n_queries: int = 256, seed: int = 0) -> float:
    """Fraction of ``n_queries`` random rows whose first ``m`` neighbour distances in ``dist``
    equal the exact ones (brute force against all rows, in float64)."""
    rng = np.random.default_rng(seed)
    n = X.shape[0]
    q = np.sort(rng.choice(n, size=min(n_queries, n), replace=False))
    exact = np.empty((q.size, m))
    sq = np.einsum("ij,ij->i", X, X)
    for s in range(0, q.size, 32):
        qq = q[s:s + 32]
        d2 = sq[qq, None] + sq[None, :] - 2.0 * (X[qq] @ X.T)
        d2[np.arange(qq.size), qq] = np.inf
        cand = np.argpartition(d2, m + 4, axis=1)[:, :m + 5]  # then exact differences
        diff = X[cand] - X[qq, None, :]
        dd = np.sort(np.sqrt(np.einsum("ijk,ijk->ij", diff, diff)), axis=1)[:, :m]
        exact[s:s + 32] = dd
    return float(np.mean(np.all(np.isclose(dist[q, :m], exact, rtol=1e-9, atol=0), axis=1)))


def exact_distances(X: np.ndarray, ind: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
    """``||X[rows[i]] - X[ind[i, j]]||`` computed directly (blockwise)."""
    n, k = ind.shape
    rows = np.arange(n) if rows is None else rows
    out = np.empty((n, k), dtype=np.float64)
    block = max(1, _BLOCK_ELEMENTS // max(1, k * X.shape[1]))
    for s in range(0, n, block):
        diff = X[ind[s:s + block]] - X[rows[s:s + block], None, :]
        np.sqrt(np.einsum("ijk,ijk->ij", diff, diff), out=out[s:s + block])
    return out


def find_duplicates(X: np.ndarray, dist: np.ndarray) -> np.ndarray:
    """Boolean mask of the rows to keep: one representative of each group of identical rows.

    Only rows whose nearest neighbour lies at distance 0 can have a copy, so ``np.unique`` runs
    on those alone; the first occurrence of each group is kept.
    """
    keep = np.ones(X.shape[0], dtype=bool)
    cand = np.flatnonzero(dist[:, 0] == 0.0)
    if cand.size == 0:
        return keep
    _, first = np.unique(X[cand], axis=0, return_index=True)
    keep[cand] = False
    keep[cand[first]] = True
    return keep


def first_kept(X: np.ndarray, dist: np.ndarray, ind: np.ndarray, keep: np.ndarray, m: int, *,
               algorithm: str = "auto") -> np.ndarray:
    """Distances from every kept point to its ``m`` nearest *kept* neighbours.

    Parameters
    ----------
    X : ndarray of shape (n, d)
    dist, ind : ndarrays of shape (n, K)
        Output of :func:`knn` on all of ``X``.
    keep : bool ndarray of shape (n,)
    m : int
        Number of neighbours wanted; ``m <= keep.sum() - 1``.

    Returns
    -------
    ndarray of shape (keep.sum(), m)
        Ascending distances, rows in the order of ``np.flatnonzero(keep)``.
    """
    rows = np.flatnonzero(keep)
    kept_nb = keep[ind[rows]]
    rank = np.cumsum(kept_nb, axis=1)
    ok = rank[:, -1] >= m
    out = np.empty((rows.size, m), dtype=np.float64)
    sel = kept_nb[ok] & (rank[ok] <= m)
    out[ok] = dist[rows[ok]][sel].reshape(-1, m)
    missing = np.flatnonzero(~ok)
    if missing.size:
        out[missing] = _exact_subset_knn(X, keep, rows[missing], m, algorithm=algorithm)
    return out


def _exact_subset_knn(X, keep, query_rows, m, *, algorithm="auto"):
    """Fallback of :func:`first_kept`: a neighbour search among the kept rows for a few queries."""
    from sklearn.neighbors import NearestNeighbors

    kept = np.flatnonzero(keep)
    nn = NearestNeighbors(n_neighbors=min(m + 1, kept.size), algorithm=algorithm).fit(X[kept])
    _, ind = nn.kneighbors(X[query_rows])
    pos = np.searchsorted(kept, query_rows)  # each query's own index among the kept rows
    out = np.empty((query_rows.size, m), dtype=np.float64)
    for i in range(query_rows.size):
        others = ind[i][ind[i] != pos[i]][:m]
        d = np.sqrt(((X[kept[others]] - X[query_rows[i]]) ** 2).sum(axis=1))
        out[i] = np.sort(d)
    return out


__all__ = ["knn", "approximate_knn", "neighbor_agreement", "exact_distances", "find_duplicates", "first_kept"]
