"""Shared checks and small linear-algebra helpers of :mod:`topo_mi.compare`."""
from __future__ import annotations

import numpy as np

from topo_mi._validation import check_point_cloud, fail
from topo_mi.errors import ResourceError

# Largest n x n float64 matrix a Gram-based index builds (2 GiB: n is about 16,000).
MAX_GRAM_BYTES = 2 * 1024**3


def check_pair(X, Y, *, min_points: int = 2, names: tuple[str, str] = ("X", "Y")):
    """Validate two representations of the same samples: float64 2-D arrays with equal rows."""
    X = check_point_cloud(X, names[0], min_points=min_points)
    Y = check_point_cloud(Y, names[1], min_points=min_points)
    if X.shape[0] != Y.shape[0]:
        fail(names[1], f"{X.shape[0]} rows (one per sample, like {names[0]})",
             f"{Y.shape[0]} rows (shape {Y.shape})", raw=True)
    return X, Y


def center_columns(X: np.ndarray) -> np.ndarray:
    """A copy of ``X`` whose columns have zero mean."""
    return X - X.mean(axis=0, keepdims=True)


def check_not_constant(name: str, Xc: np.ndarray) -> None:
    """Raise when a centred representation is (numerically) constant across samples."""
    scale = float(np.abs(Xc).max()) if Xc.size else 0.0
    if scale == 0.0:
        fail(name, "a representation that varies across samples", "the same vector for every sample", raw=True)


def check_gram_memory(n: int, what: str, *, copies: int = 2) -> None:
    """Raise :class:`ResourceError` when ``copies`` n x n float64 matrices exceed the budget."""
    need = 8 * n * n
    if need > MAX_GRAM_BYTES:
        raise ResourceError(
            f"{what}: an n x n Gram matrix for n = {n} samples takes {need / 1024**3:.1f} GiB "
            f"(x{copies}); the limit is {MAX_GRAM_BYTES / 1024**3:.0f} GiB per matrix. Use the linear "
            "kernel (computed from features), minibatch_cka, or a random subsample of the rows")


def sq_distances(X: np.ndarray) -> np.ndarray:
    """Squared Euclidean distances between the rows of ``X`` (n x n, non-negative, zero diagonal)."""
    sq = np.einsum("ij,ij->i", X, X)
    D2 = sq[:, None] + sq[None, :] - 2.0 * (X @ X.T)
    np.maximum(D2, 0.0, out=D2)
    np.fill_diagonal(D2, 0.0)
    return D2


def distances(X: np.ndarray) -> np.ndarray:
    """Exact Euclidean distance matrix (scipy's ``cdist``, no cancellation error)."""
    from scipy.spatial.distance import cdist

    return cdist(X, X)
