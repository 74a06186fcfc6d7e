"""Representational similarity analysis and nearest-neighbour overlap.

References
----------
Kriegeskorte, Mur & Bandettini, "Representational similarity analysis", Front. Syst. Neurosci.
2008 (RSA: correlate the dissimilarity matrices of two representations).
"""
from __future__ import annotations

import numpy as np

from topo_mi._validation import check_choice, check_int, fail
from topo_mi.compare._common import check_gram_memory, check_pair

RSA_COMPARE = ("spearman", "pearson")


def _rdm(X: np.ndarray, metric: str, name: str) -> np.ndarray:
    """Condensed dissimilarity vector (pdist order)."""
    from scipy.spatial.distance import pdist

    try:
        d = pdist(X, metric=metric)
    except ValueError as exc:
        raise fail("metric", "a metric of scipy.spatial.distance.pdist", f"{metric!r} ({exc})", raw=True)
    if not np.all(np.isfinite(d)):
        fail(name, f"finite {metric!r} dissimilarities",
             f"{int((~np.isfinite(d)).sum())} undefined pairs (constant rows with metric='correlation'?)", raw=True)
    return d


def _standardise(v: np.ndarray, name: str) -> np.ndarray:
    v = v - v.mean()
    norm = np.linalg.norm(v)
    if norm == 0.0:
        fail(name, "dissimilarities that are not all equal", "a constant dissimilarity matrix", raw=True)
    return v / norm


def _prepare_rsa(X: np.ndarray, metric: str = "correlation", compare: str = "spearman",
                 name: str = "X") -> np.ndarray:
    """A standardised square matrix of (ranked) dissimilarities with a zero diagonal.

    The Pearson correlation of two upper triangles is then ``Σ_{i<j} A_ij B_ij`` and permuting
    the samples of one representation permutes the rows and columns of its matrix.
    """
    from scipy.spatial.distance import squareform
    from scipy.stats import rankdata

    d = _rdm(X, metric, name)
    if compare == "spearman":
        d = rankdata(d)
    return squareform(_standardise(d, name), checks=False)


def _rsa_from(A: np.ndarray, B: np.ndarray, perm: np.ndarray | None = None) -> float:
    if perm is not None:
        B = np.take(np.take(B, perm, axis=0), perm, axis=1)
    return float(np.vdot(A, B) / 2.0)


def rsa(X, Y, *, metric: str = "correlation", compare: str = "spearman") -> float:
    """Representational similarity analysis: correlation of the two dissimilarity matrices.

    Parameters
    ----------
    X : array of shape (n_samples, d_x)
    Y : array of shape (n_samples, d_y)
    metric : str, default "correlation"
        Dissimilarity between samples, any metric of :func:`scipy.spatial.distance.pdist`;
        ``"correlation"`` (1 - Pearson r between the two activation vectors) is the usual RDM.
    compare : {"spearman", "pearson"}, default "spearman"
        How the n(n-1)/2 dissimilarities of the two representations are correlated.

    Returns
    -------
    float in [-1, 1]
    """
    X, Y = check_pair(X, Y, min_points=3)
    if not isinstance(metric, str):
        fail("metric", "a metric name of scipy.spatial.distance.pdist", metric)
    check_choice("compare", compare, RSA_COMPARE)
    check_gram_memory(X.shape[0], "rsa")
    from scipy.stats import pearsonr, spearmanr

    dx, dy = _rdm(X, metric, "X"), _rdm(Y, metric, "Y")
    for name, d in (("X", dx), ("Y", dy)):
        if np.ptp(d) == 0.0:
            fail(name, "dissimilarities that are not all equal", "a constant dissimilarity matrix", raw=True)
    r = spearmanr(dx, dy)[0] if compare == "spearman" else pearsonr(dx, dy)[0]
    return float(r)


def _neighbours(X: np.ndarray, k: int, metric: str) -> np.ndarray:
    """Indices (n, k) of each row's k nearest other rows (the row itself excluded)."""
    from sklearn.neighbors import NearestNeighbors

    nn = NearestNeighbors(n_neighbors=k + 1, metric=metric).fit(X)
    idx = nn.kneighbors(X, return_distance=False)
    n = X.shape[0]
    own = idx == np.arange(n)[:, None]
    # Drop the row itself; when duplicates hide it beyond the k+1 found, drop the farthest.
    missing = ~own.any(axis=1)
    own[missing, -1] = True
    return idx[~own].reshape(n, k)


def _prepare_knn(X: np.ndarray, k: int = 10, metric: str = "euclidean", name: str = "X") -> np.ndarray:
    return np.sort(_neighbours(X, k, metric), axis=1)


def _knn_from(Nx: np.ndarray, Ny: np.ndarray, perm: np.ndarray | None = None) -> float:
    n, k = Nx.shape
    if perm is not None:
        # Row i of Y[perm] is Y[perm[i]]; its neighbours are perm^{-1}(neighbours of perm[i]).
        inv = np.empty_like(perm)
        inv[perm] = np.arange(n)
        Ny = np.sort(inv[Ny[perm]], axis=1)
    # Overlap of two sorted index rows, vectorised: mark Y's neighbours in an n-wide table per chunk.
    total = 0
    step = max(1, int(2**24 // max(n, 1)))
    rows = np.arange(n)
    for start in range(0, n, step):
        sl = slice(start, min(n, start + step))
        m = np.zeros((sl.stop - sl.start, n), dtype=bool)
        r = rows[sl] - start
        m[r[:, None], Ny[sl]] = True
        total += int(m[r[:, None], Nx[sl]].sum())
    return total / (n * k)


def knn_overlap(X, Y, *, k: int = 10, metric: str = "euclidean") -> float:
    """Mean overlap of the k-nearest-neighbour sets of each sample in the two representations.

    ``(1/n) Σ_i |N_k^X(i) ∩ N_k^Y(i)| / k`` (each sample excluded from its own neighbours). 1 means
    the same neighbourhoods; a random pairing gives about ``k / (n - 1)``.

    Parameters
    ----------
    X : array of shape (n_samples, d_x)
    Y : array of shape (n_samples, d_y)
    k : int, default 10
        1 <= k < n_samples.
    metric : str, default "euclidean"
        Any metric of :class:`sklearn.neighbors.NearestNeighbors`.

    Returns
    -------
    float in [0, 1]
    """
    X, Y = check_pair(X, Y)
    k = check_int("k", k, min_value=1, max_value=X.shape[0] - 1)
    if not isinstance(metric, str):
        fail("metric", "a metric name", metric)
    return _knn_from(_prepare_knn(X, k, metric), _prepare_knn(Y, k, metric))


__all__ = ["rsa", "knn_overlap"]
