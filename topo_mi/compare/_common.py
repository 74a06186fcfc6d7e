"""Shared checks and small linear-algebra helpers of :mod:`topo_mi.compare`."""
from __future__ import annotations

import numpy as np

from topo_mi._validation import as_array, check_finite, check_point_cloud, fail
from topo_mi.errors import ResourceError

# Largest n x n float64 matrix a Gram-based index builds (2 GiB: n is about 16,000).
MAX_GRAM_BYTES = 2 * 1024**3


def check_pair(X, Y, *, min_points: int = 2, names: tuple[str, str] = ("X", "Y"), keep_float32: bool = False,
               defer_finite: bool = False):
    """Validate two representations of the same samples: 2-D float arrays with equal rows.

    float64 copies, except that ``keep_float32=True`` passes float32 arrays through unchanged (for
    callers whose next step, :func:`center_columns`, writes float64 anyway: one pass, no extra copy).
    ``defer_finite=True`` leaves the finiteness check to the caller's ``center_columns(X, name=...)``,
    which reads it off the column means it computes anyway (no pass of its own over the data).
    """
    def one(A, name):
        arr = as_array(A, name)
        keep = keep_float32 and getattr(arr, "dtype", None) == np.float32
        return check_point_cloud(arr, name, min_points=min_points, dtype=np.float32 if keep else np.float64,
                                 allow_nonfinite=defer_finite)

    X = one(X, names[0])
    Y = one(Y, names[1])
    if X.shape[0] != Y.shape[0]:
        fail(names[1], f"{X.shape[0]} rows (one per sample, like {names[0]})",
             f"{Y.shape[0]} rows (shape {Y.shape})", raw=True)
    return X, Y


def center_columns(X: np.ndarray, *, name: str | None = None) -> np.ndarray:
    """A float64 copy of ``X`` whose columns have zero mean (one pass; means accumulated in float64).

    With ``name``, ``X`` is also checked for NaN and infinities through those means: a column
    holding a NaN or an infinity has a non-finite mean (NaN propagates, inf - inf is NaN), so finite
    means prove finite entries; only a non-finite mean pays for the exact count and rows
    (:func:`check_finite`), and finite entries whose float64 sum overflows are refused by name.
    """
    with np.errstate(over="ignore", invalid="ignore"):
        mu = X.mean(axis=0, dtype=np.float64, keepdims=True)
    if name is not None and not np.isfinite(mu).all():
        check_finite(name, X)
        fail(name, "values whose column sums fit in float64", f"entries up to {np.abs(X).max():.3g}", raw=True)
    return np.subtract(X, mu, dtype=np.float64)


def check_not_constant(name: str, Xc: np.ndarray, *, sq_norm: float | None = None) -> None:
    """Raise when a centred representation is (numerically) constant across samples.

    ``sq_norm``: ``‖Xc‖²_F`` when the caller already has it (the trace of ``XcᵀXc``); otherwise one
    BLAS dot product computes it, with no temporary array.
    """
    if sq_norm is None:
        flat = Xc.reshape(-1)
        sq_norm = float(np.dot(flat, flat)) if flat.size else 0.0
    if not sq_norm > 0.0:
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
