"""How faithful an embedding is: stress, trustworthiness, continuity, k-NN preservation.

All four are computed in one pass over blocks of rows: for a block of query points the distance
rows to every point are formed in both spaces (``block x n`` at a time, never ``n x n``), so the
memory stays bounded while the time is O(n^2 d) like any exact evaluation.

- Stress (the framework's ``L_top``): ``sum_{i != j} (d_X(i, j) - ||e_i - e_j||)^2`` over ordered
  pairs; Kruskal's stress-1 (Psychometrika 29, 1964): ``sqrt(sum_{i<j} (d_X - d_E)^2 /
  sum_{i<j} d_E^2)``.
- Trustworthiness and continuity (Venna & Kaski, ICANN 2001): with ``r(i, j)`` the rank of ``j``
  among the neighbours of ``i`` (1 = nearest, the point itself excluded),
  ``T(k) = 1 - 2 / (n k (2n - 3k - 1)) sum_i sum_{j in N_E(i) \\ N_X(i)} (r_X(i, j) - k)``
  and ``C(k)`` the same with the spaces swapped. Ties in distance get the smallest rank
  (``r = 1 + #points strictly closer``); on data without ties ``T`` equals
  ``sklearn.manifold.trustworthiness``.
- k-NN preservation: the mean fraction of the ``k`` nearest neighbours shared by both spaces.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from topo_mi._validation import check_distance_matrix, check_int, check_point_cloud, check_random_state, fail

# Budget (float64 elements) for one block of distance rows and rank comparisons.
_BLOCK_ELEMENTS = 16_000_000


@dataclass
class QualityStats:
    n: int
    n_query: int
    sum_sq_diff: float  # sum over the visited ordered pairs of (dX - dE)^2
    sum_dE2: float
    sum_dX2: float
    sum_diff_dE: float  # sum (dX - dE) dE
    trust_penalty: float  # sum over queries of sum_j max(0, r_X - k) for j in N_E
    cont_penalty: float
    shared: float  # sum over queries of |N_X & N_E|
    k: int | None

    # -- figures -------------------------------------------------------------------------------
    def raw_stress(self) -> float:
        """``L_top`` over all ordered pairs (scaled up from the query rows when subsampled)."""
        return self.sum_sq_diff * self.n / self.n_query

    def kruskal(self, rescale: bool = True) -> float:
        if not rescale:
            return float(np.sqrt(self.sum_sq_diff / self.sum_dE2)) if self.sum_dE2 > 0 else float("inf")
        if self.sum_dE2 <= 0:
            return float("inf")
        # optimal scale s = sum dX dE / sum dE^2 = 1 + sum (dX - dE) dE / sum dE^2; the residual
        # sum (dX - s dE)^2 expanded around s = 1 so that a perfect embedding gives exactly ~0.
        t = self.sum_diff_dE / self.sum_dE2
        s = 1.0 + t
        if s <= 0:
            return float("inf")
        num = self.sum_sq_diff - 2.0 * t * self.sum_diff_dE + t * t * self.sum_dE2
        return float(np.sqrt(max(num, 0.0) / (s * s * self.sum_dE2)))

    def _norm(self) -> float:
        k, n = self.k, self.n
        return 2.0 / (k * (2.0 * n - 3.0 * k - 1.0))

    def trustworthiness(self) -> float:
        return float(1.0 - self._norm() * self.trust_penalty / self.n_query)

    def continuity(self) -> float:
        return float(1.0 - self._norm() * self.cont_penalty / self.n_query)

    def knn_preservation(self) -> float:
        return float(self.shared / (self.n_query * self.k))


def _rows_fn(X, metric):
    """A function ``rows -> (len(rows), n)`` distance block in the space of ``X``."""
    if metric == "precomputed":
        return lambda rows: np.asarray(X[rows], dtype=np.float64)
    if metric == "euclidean":
        sq = np.einsum("ij,ij->i", X, X)

        def fn(rows):
            d2 = sq[rows, None] + sq[None, :] - 2.0 * (X[rows] @ X.T)
            np.maximum(d2, 0.0, out=d2)
            d2[np.arange(len(rows)), rows] = 0.0
            return np.sqrt(d2, out=d2)
        return fn
    from sklearn.metrics import pairwise_distances

    return lambda rows: pairwise_distances(X[rows], X, metric=metric)


def quality_pass(X, E, *, k: int | None, metric: str = "euclidean", query=None) -> QualityStats:
    """One blockwise pass computing every embedding-quality statistic.

    ``X`` (n, d) data (or an (n, n) distance matrix with ``metric="precomputed"``), ``E`` (n, m)
    float64 embedding, both validated; ``query``: row indices to visit (default all).
    """
    n = E.shape[0]
    q_rows = np.arange(n) if query is None else np.asarray(query)
    dx_fn = _rows_fn(X, metric)
    de_fn = _rows_fn(E, "euclidean")
    kk = 0 if k is None else k
    block = max(1, _BLOCK_ELEMENTS // (n * max(1, 2 + kk)))
    s_sq = s_e2 = s_x2 = s_de = 0.0
    t_pen = c_pen = shared = 0.0
    for s in range(0, q_rows.size, block):
        rows = q_rows[s:s + block]
        b = rows.size
        DX = dx_fn(rows)
        DE = de_fn(rows)
        ar = np.arange(b)
        DX[ar, rows] = 0.0
        DE[ar, rows] = 0.0
        diff = DX - DE
        s_sq += float(np.einsum("ij,ij->", diff, diff))
        s_e2 += float(np.einsum("ij,ij->", DE, DE))
        s_x2 += float(np.einsum("ij,ij->", DX, DX))
        s_de += float(np.einsum("ij,ij->", diff, DE))
        if k is None:
            continue
        DX[ar, rows] = np.inf
        DE[ar, rows] = np.inf
        nx = np.argpartition(DX, k - 1, axis=1)[:, :k]
        ne = np.argpartition(DE, k - 1, axis=1)[:, :k]
        # ranks in X of the embedding's neighbours, and in E of the data's neighbours
        tx = np.take_along_axis(DX, ne, axis=1)
        rx = 1 + (DX[:, None, :] < tx[:, :, None]).sum(axis=2)
        t_pen += float(np.maximum(rx - k, 0).sum())
        te = np.take_along_axis(DE, nx, axis=1)
        re = 1 + (DE[:, None, :] < te[:, :, None]).sum(axis=2)
        c_pen += float(np.maximum(re - k, 0).sum())
        shared += float((np.sort(nx, axis=1)[:, :, None] == np.sort(ne, axis=1)[:, None, :]).any(axis=2).sum())
    return QualityStats(n=n, n_query=int(q_rows.size), sum_sq_diff=s_sq, sum_dE2=s_e2, sum_dX2=s_x2,
                        sum_diff_dE=s_de, trust_penalty=t_pen, cont_penalty=c_pen, shared=shared, k=k)


# -- validation ------------------------------------------------------------------------------------

def check_pair(X, E, metric: str = "euclidean"):
    """Validate data (or a distance matrix) and an embedding with the same rows."""
    if not isinstance(metric, str):
        fail("metric", "a metric name (str)", metric)
    if metric == "precomputed":
        X = check_distance_matrix(X, "X")
    else:
        X = check_point_cloud(X, "X", min_points=2)
    E = check_point_cloud(E, "E", min_points=2)
    if E.shape[0] != X.shape[0]:
        fail("E", f"{X.shape[0]} rows like X", f"{E.shape[0]} rows", raw=True)
    return X, E


def check_k(k, n: int, name: str = "k") -> int:
    k = check_int(name, k, min_value=1)
    if not k < n / 2:
        fail(name, f"an integer below n_samples / 2 = {n / 2:g} (the normalisation of Venna & Kaski "
             "needs 2n - 3k - 1 > 0)", k)
    return k


# -- public functions ------------------------------------------------------------------------------

def stress(X_or_D, E, *, normalized: bool = True, rescale: bool = True, metric: str = "euclidean") -> float:
    """Stress of an embedding: the framework's ``L_top`` or Kruskal's normalised stress-1.

    Parameters
    ----------
    X_or_D : array-like of shape (n, d), or (n, n) distances with ``metric="precomputed"``
    E : array-like of shape (n, m)
        The embedding (rows correspond).
    normalized : bool, default True
        True: Kruskal's stress-1 ``sqrt(sum (d_X - d_E)^2 / sum d_E^2)`` (0 = distances kept
        exactly, scale-free with ``rescale``). False: the raw
        ``L_top = sum_{i,j} (d_X(i, j) - ||e_i - e_j||)^2`` over all ordered pairs, as given.
    rescale : bool, default True
        For the normalised stress, first multiply ``E`` by the scale ``s`` minimising
        ``sum (d_X - s d_E)^2``: UMAP and t-SNE coordinates have no meaningful unit. Ignored
        for the raw stress.
    metric : str, default "euclidean"
        Distance in the data space (any scikit-learn metric, or ``"precomputed"``).

    Returns
    -------
    float

    Notes
    -----
    Exact, in O(n^2 d) time and O(n) memory per block of rows (never the n x n matrix).
    """
    if not isinstance(normalized, (bool, np.bool_)):
        fail("normalized", "True or False", normalized)
    X, E = check_pair(X_or_D, E, metric)
    st = quality_pass(X, E, k=None, metric=metric)
    return st.kruskal(bool(rescale)) if normalized else st.raw_stress()


def _neighbour_figure(X, E, k, metric, which):
    X, E = check_pair(X, E, metric)
    k = check_k(k, E.shape[0])
    st = quality_pass(X, E, k=k, metric=metric)
    return getattr(st, which)()


def trustworthiness(X, E, k: int = 5, *, metric: str = "euclidean") -> float:
    """Trustworthiness ``T(k)`` of Venna & Kaski (2001): are the embedding's neighbours true ones?

    Parameters
    ----------
    X : array-like of shape (n, d), or (n, n) distances with ``metric="precomputed"``
    E : array-like of shape (n, m)
    k : int, default 5
        Neighbourhood size, ``1 <= k < n / 2``.
    metric : str, default "euclidean"

    Returns
    -------
    float in [0, 1]
        1 when every ``k``-NN in ``E`` is a ``k``-NN in ``X``. Equal to
        ``sklearn.manifold.trustworthiness(X, E, n_neighbors=k)`` on data without distance ties,
        without its two n x n matrices.
    """
    return _neighbour_figure(X, E, k, metric, "trustworthiness")


def continuity(X, E, k: int = 5, *, metric: str = "euclidean") -> float:
    """Continuity ``C(k)`` of Venna & Kaski (2001): are the true neighbours kept together in ``E``?

    Same parameters as :func:`trustworthiness` with the roles of the two spaces swapped.
    """
    return _neighbour_figure(X, E, k, metric, "continuity")


def knn_preservation(X, E, k: int = 5, *, metric: str = "euclidean") -> float:
    """Mean fraction of each point's ``k`` nearest neighbours in ``X`` that are also its ``k``
    nearest in ``E`` (1 = all neighbourhoods kept). Same parameters as :func:`trustworthiness`."""
    return _neighbour_figure(X, E, k, metric, "knn_preservation")


def query_rows(n: int, quality_points: int | None, rng) -> np.ndarray | None:
    """``None`` (all rows) or a sorted random subset of ``quality_points`` rows."""
    if quality_points is None or quality_points >= n:
        return None
    return np.sort(check_random_state(rng).choice(n, size=quality_points, replace=False))


__all__ = ["stress", "trustworthiness", "continuity", "knn_preservation", "quality_pass", "QualityStats"]
