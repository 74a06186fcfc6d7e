"""Distances for Vietoris–Rips filtrations: euclidean, cosine, correlation, precomputed, kNN hops.

Everything is float64. High-dimensional euclidean distances go through BLAS on centred data
(``‖x‖² + ‖y‖² − 2x·y``); low-dimensional clouds use :func:`scipy.spatial.distance.pdist`, which
is exact to the last bits (ties such as the sides of a square stay ties).
"""
from __future__ import annotations

import numpy as np

from topo_mi._validation import check_int, fail
from topo_mi.errors import InvalidParameterError

METRICS = ("euclidean", "cosine", "correlation", "precomputed", "knn_geodesic")

# Up to this many features, scipy's pdist (exact differences, no cancellation) is used for
# euclidean distances: as fast as one-thread BLAS there, and the values are exact to the last bits.
_PDIST_MAX_FEATURES = 128


def unit_rows(X: np.ndarray, metric: str) -> np.ndarray:
    """Rows scaled to unit norm (``cosine``) or centred then scaled (``correlation``).

    Cosine distance ``1 − cos(x, y)`` equals ``‖x̂ − ŷ‖² / 2`` for the unit rows ``x̂``; the
    correlation distance is the cosine distance of the row-centred data.
    """
    U = np.array(X, dtype=np.float64, copy=True)
    if metric == "correlation":
        U -= U.mean(axis=1, keepdims=True)
    norms = np.linalg.norm(U, axis=1)
    bad = norms <= 1e-300 if metric == "cosine" else norms <= 1e-12 * (1.0 + np.abs(X).max(axis=1))
    if bad.any():
        what = "non-zero rows" if metric == "cosine" else "non-constant rows"
        fail("X", f"{what} with metric={metric!r} (the distance is undefined otherwise)",
             f"{int(bad.sum())} such rows (first at index {int(np.argmax(bad))})", raw=True)
    U /= norms[:, None]
    return U


def euclidean_distances(A: np.ndarray, B: np.ndarray | None = None) -> np.ndarray:
    """Euclidean distances between the rows of ``A`` and ``B`` (default ``A``), float64.

    With ``B is None`` the result is exactly symmetric with a zero diagonal.
    """
    A = np.asarray(A, dtype=np.float64)
    if B is None and A.shape[1] <= _PDIST_MAX_FEATURES:
        from scipy.spatial.distance import pdist, squareform

        return squareform(pdist(A))
    if B is None:
        return _self_distances(A)
    center = A.mean(axis=0)
    Ac = A - center
    Bc = np.asarray(B, dtype=np.float64) - center
    D = Ac @ Bc.T
    D *= -2.0
    D += np.einsum("ij,ij->i", Ac, Ac)[:, None]
    D += np.einsum("ij,ij->i", Bc, Bc)[None, :]
    np.maximum(D, 0.0, out=D)
    np.sqrt(D, out=D)
    return D


# Elements per row block of the self-distance matrix: the block's GEMM and its element-wise passes
# run on data still in cache.
_DIST_BLOCK_ELEMENTS = 1 << 20


def _self_distances(A: np.ndarray) -> np.ndarray:
    """All pairwise distances of the rows of ``A`` (float64), by row blocks of the upper triangle:
    each block's GEMM covers only the columns from its first row on (half the products of
    ``A @ A.T``), its squares become distances while the block is in cache, and its transpose is
    written into the lower triangle (exactly symmetric, zero diagonal). Measured at 10,451 x 384,
    one thread (``benchmarks/bench_hotpaths.py --rows distances``): 1.44 s, against 4.42 s for the
    full product with element-wise passes over the whole matrix and a symmetrisation, and 1.41 s
    for scikit-learn's ``euclidean_distances`` (which neither centres nor is exactly symmetric);
    the entries agree to ~4e-14."""
    n = A.shape[0]
    Ac = A - A.mean(axis=0)
    sq = np.einsum("ij,ij->i", Ac, Ac)
    D = np.empty((n, n))  # plain pages: mapping 2 MiB pages up front measured slower between large frees
    b = max(16, min(n, _DIST_BLOCK_ELEMENTS // max(n, 1)))
    for s in range(0, n, b):
        e = min(n, s + b)
        blk = D[s:e, s:]
        np.matmul(Ac[s:e], Ac[s:].T, out=blk)
        blk *= -2.0
        blk += sq[s:e, None]
        blk += sq[None, s:]
        np.maximum(blk, 0.0, out=blk)
        np.sqrt(blk, out=blk)
        sub = D[s:e, s:e]
        low = np.tril_indices(e - s, -1)
        sub[low] = sub.T[low]
        if e < n:
            D[e:, s:e] = blk[:, e - s:].T
    np.fill_diagonal(D, 0.0)
    return D


def upper_edges(D: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The pairs ``i < j`` with ``D[i, j] <= threshold``: rows and columns (int32) and lengths
    (float64), in row-major order, read by row blocks (no ``n x n`` mask)."""
    n = D.shape[0]
    rows, cols, vals = [], [], []
    b = max(16, min(n, _DIST_BLOCK_ELEMENTS // max(n, 1)))
    for s in range(0, n - 1, b):
        e = min(n - 1, s + b)
        blk = D[s:e, s + 1:]
        mask = blk <= threshold
        k = e - s
        mask[:, :k] &= ~np.tri(k, k, -1, dtype=bool)  # row s + r sees the columns after it only
        i, j = np.nonzero(mask)
        rows.append((i + s).astype(np.int32))
        cols.append((j + s + 1).astype(np.int32))
        vals.append(blk[i, j])
    if not rows:
        return np.empty(0, np.int32), np.empty(0, np.int32), np.empty(0)
    return np.concatenate(rows), np.concatenate(cols), np.ascontiguousarray(np.concatenate(vals), dtype=np.float64)


def _symmetrize(D: np.ndarray) -> None:
    """Copy the upper triangle onto the lower one and zero the diagonal, in place, by row blocks."""
    n = D.shape[0]
    step = max(1, 4_000_000 // max(n, 1))
    for s in range(0, n, step):
        e = min(n, s + step)
        blk = D[s:e]
        rows = np.arange(s, e)[:, None]
        cols = np.arange(n)[None, :]
        lower = cols < rows
        blk[lower] = D[:, s:e].T[lower]
    np.fill_diagonal(D, 0.0)


def cosine_from_unit(U: np.ndarray, V: np.ndarray | None = None) -> np.ndarray:
    """``1 − u·v`` for unit rows, clipped to ``[0, 2]`` (exactly symmetric when ``V is None``)."""
    if V is None and U.shape[1] <= _PDIST_MAX_FEATURES:
        from scipy.spatial.distance import pdist, squareform

        return squareform(0.5 * pdist(U, "sqeuclidean"))
    D = U @ (U if V is None else V).T
    np.subtract(1.0, D, out=D)
    np.clip(D, 0.0, 2.0, out=D)
    if V is None:
        _symmetrize(D)
    return D


def distance_matrix_of(X: np.ndarray, metric: str) -> np.ndarray:
    """Dense ``(n, n)`` distances of a point cloud for a point-cloud metric."""
    if metric == "euclidean":
        return euclidean_distances(X)
    if metric in ("cosine", "correlation"):
        return cosine_from_unit(unit_rows(X, metric))
    raise InvalidParameterError(f"metric: expected a point-cloud metric, got {metric!r}")  # pragma: no cover


def knn_graph(X: np.ndarray, k: int):
    """Symmetrised k-nearest-neighbour graph (CSR, boolean), each point counted among its own k.

    Follows Naitzat, Zhitnikov & Lim (JMLR 2020, code ``topnn_framework``): scikit-learn's
    ``kneighbors_graph(X, k, include_self=True)``, then ``A ∨ Aᵀ``.
    """
    from sklearn.neighbors import kneighbors_graph

    n = X.shape[0]
    k = check_int("k", k, min_value=1, max_value=n)
    A = kneighbors_graph(np.asarray(X, dtype=np.float64), n_neighbors=k, mode="connectivity",
                         include_self=True)
    A = ((A + A.T) > 0).astype(np.int8).tocsr()
    A.setdiag(0)
    A.eliminate_zeros()
    return A


def hop_distances(A, *, max_hops: float | None = None, sources=None):
    """Hop (unweighted shortest-path) distances on the graph ``A``.

    Returns a dense float64 matrix (``inf`` between components) when ``max_hops`` is None, else a
    scipy COO matrix holding each pair ``i < j`` at ``1 <= hops <= max_hops`` exactly once.
    ``sources`` restricts the rows of the dense matrix to those vertices.
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import shortest_path

    if max_hops is None or not np.isfinite(max_hops):
        return shortest_path(A, method="D", directed=False, unweighted=True, indices=sources)
    n = A.shape[0]
    h_max = int(np.floor(max_hops))
    B = A.astype(bool).tocsr()
    seen = B.copy()
    seen.setdiag(True)
    frontier = B
    rows, cols, vals = [], [], []
    for h in range(1, h_max + 1):
        if h > 1:  # vertices first reached in h hops: neighbours of the last frontier, not seen yet
            nxt = (frontier @ B).tocsr()
            new = (nxt - nxt.multiply(seen)).astype(bool).tocsr()
            new.eliminate_zeros()
            if new.nnz == 0:
                break
            seen = (seen + new).astype(bool).tocsr()
            frontier = new
        c = frontier.tocoo()
        m = c.row < c.col
        rows.append(c.row[m])
        cols.append(c.col[m])
        vals.append(np.full(int(m.sum()), float(h)))
    if not rows:
        return coo_matrix((np.zeros(0), (np.zeros(0, np.int64), np.zeros(0, np.int64))), shape=(n, n))
    r, c, v = np.concatenate(rows), np.concatenate(cols), np.concatenate(vals)
    return coo_matrix((v, (r, c)), shape=(n, n))


def knn_geodesic_distances(X, k: int, *, max_hops: float | None = None):
    """Hop distance on the symmetrised kNN graph of ``X`` (Naitzat et al., JMLR 2020, §6.3).

    Parameters
    ----------
    X : array of shape (n_samples, n_features)
    k : int
        Neighbours per point, the point itself included (k = 14 for their D-I, 35 for D-II/III).
    max_hops : float, optional
        Keep only pairs at most this many hops apart and return them as a sparse COO matrix
        (upper triangle, one entry per pair); by default a dense ``(n, n)`` matrix with ``inf``
        between connected components.
    """
    from topo_mi._validation import check_point_cloud

    X = check_point_cloud(X)
    return hop_distances(knn_graph(X, k), max_hops=max_hops)
