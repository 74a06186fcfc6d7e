"""Subsampling shared by activations and topology: max–min (farthest-point) landmarks."""
from __future__ import annotations

import numpy as np

from topo_mi._validation import check_int, check_random_state


def maxmin_landmarks(X: np.ndarray, n: int, *, seed=None, start: int | None = None,
                     metric: str = "euclidean") -> tuple[np.ndarray, float]:
    """Greedy permutation (max–min / farthest-point sampling).

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features), or (n_samples, n_samples) with metric="precomputed"
    n : int
        Number of landmarks, 1 <= n <= n_samples.
    seed : int, Generator or None
        Picks the first landmark when ``start`` is None.

    Returns
    -------
    indices : ndarray of shape (n,) of int64
        The landmarks, in greedy order.
    cover_radius : float
        ``max_x min_l d(x, l)``: every point lies within this distance of a landmark. Rips
        persistence of the landmarks is within bottleneck distance ``2 * cover_radius`` of the
        full Rips persistence (the stability theorem, via the Gromov–Hausdorff distance).

    Notes
    -----
    Vectorised: one BLAS distance row per landmark, O(n * n_samples * n_features) time and
    O(n_samples) extra memory.
    """
    X = np.asarray(X)
    N = X.shape[0]
    n = check_int("n_landmarks", n, min_value=1, max_value=N)
    rng = check_random_state(seed)
    first = int(rng.integers(N)) if start is None else check_int("start", start, min_value=0, max_value=N - 1)
    idx = np.empty(n, dtype=np.int64)
    idx[0] = first
    if metric == "precomputed":
        mind = np.asarray(X[first], dtype=np.float64).copy()
        for i in range(1, n):
            nxt = int(np.argmax(mind))
            idx[i] = nxt
            np.minimum(mind, X[nxt], out=mind)
        return idx, float(np.max(mind)) if N > n else 0.0
    Xf = np.asarray(X, dtype=np.float64)
    sq = np.einsum("ij,ij->i", Xf, Xf)
    mind = _dist_row(Xf, sq, first)
    for i in range(1, n):
        nxt = int(np.argmax(mind))
        idx[i] = nxt
        np.minimum(mind, _dist_row(Xf, sq, nxt), out=mind)
    mind[idx] = 0.0
    return idx, float(np.max(mind))


def _dist_row(X: np.ndarray, sq: np.ndarray, i: int) -> np.ndarray:
    d2 = sq + sq[i] - 2.0 * (X @ X[i])
    np.maximum(d2, 0.0, out=d2)
    d2[i] = 0.0
    return np.sqrt(d2)


def random_subsample(N: int, n: int, *, seed=None) -> np.ndarray:
    """``n`` distinct indices out of ``N``, sorted, drawn with ``seed``."""
    n = check_int("n", n, min_value=1, max_value=N)
    rng = check_random_state(seed)
    return np.sort(rng.choice(N, size=n, replace=False)).astype(np.int64)
