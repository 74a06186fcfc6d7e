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


__all__ = ["knn", "exact_distances", "find_duplicates", "first_kept"]
