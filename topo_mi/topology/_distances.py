"""Bottleneck and Wasserstein distances between persistence diagrams, per homology dimension.

Both use the L∞ ground distance in the (birth, death) plane with the diagonal as a free sink
(the usual convention, the one of the stability theorems). Essential classes (``inf`` deaths)
are matched among themselves by birth; diagrams with different numbers of essential classes in a
dimension are at distance ``inf``.
"""
from __future__ import annotations

import numpy as np

from topo_mi._validation import check_choice, check_float, check_int, fail
from topo_mi.topology._vectorize import as_diagram_list, diagram_array, is_pair_list

_EXACT_WASSERSTEIN_MAX = 1500  # points (both diagrams) up to which the assignment is solved exactly


def _pair_lists(a, b):
    """Two lists of diagrams, or two single diagrams as one-element lists (flag single)."""
    single = _is_single(a) and _is_single(b)
    if single:
        return [_as_single(a, "a")], [_as_single(b, "b")], True
    return as_diagram_list(a, "a"), as_diagram_list(b, "b"), False


def _is_single(x) -> bool:
    if isinstance(x, np.ndarray):
        return True
    return isinstance(x, (list, tuple)) and not hasattr(x, "diagrams") and is_pair_list(x)


def _as_single(x, name):
    return diagram_array(x, name)


def _clean(d: np.ndarray, name: str) -> np.ndarray:
    if np.isnan(d).any():
        fail(name, "diagrams without NaN", "NaN entries", raw=True)
    if np.isinf(d[:, 0]).any():
        fail(name, "finite births", "an infinite birth", raw=True)
    below = d[:, 1] < d[:, 0]
    if below.any():
        i = int(np.flatnonzero(below)[0])
        fail(name, "points with death >= birth", f"{int(below.sum())} point(s) with death < birth, the first "
             f"(birth {d[i, 0]:g}, death {d[i, 1]:g}) at row {i}", raw=True)
    return d[d[:, 1] > d[:, 0]]  # points on the diagonal are at distance 0 from it


def _split(d):
    ess = ~np.isfinite(d[:, 1])
    return d[~ess], np.sort(d[ess, 0])


def bottleneck_1d(x: np.ndarray, y: np.ndarray) -> float:
    """Bottleneck distance between two (n, 2) diagrams (gudhi's exact algorithm)."""
    x, y = _clean(x, "a"), _clean(y, "b")
    (xf, xe), (yf, ye) = _split(x), _split(y)
    if len(xe) != len(ye):
        return float("inf")
    ess = float(np.max(np.abs(xe - ye))) if len(xe) else 0.0
    if len(xf) == 0 and len(yf) == 0:
        return ess
    if len(xf) == len(yf) and np.array_equal(xf[np.lexsort(xf.T[::-1])], yf[np.lexsort(yf.T[::-1])]):
        return ess  # identical multisets (gudhi's near-exact algorithm answers ~1e-308 there)
    import gudhi

    return max(ess, float(gudhi.bottleneck_distance(xf, yf)))


def wasserstein_1d(x: np.ndarray, y: np.ndarray, p: float = 2.0, *, delta: float = 1e-4) -> float:
    """p-Wasserstein distance between two (n, 2) diagrams.

    Exact (a linear assignment on the diagrams augmented with their diagonal projections) up to
    1,500 points in all; beyond, gudhi's hera with relative error ``delta``.
    """
    x, y = _clean(x, "a"), _clean(y, "b")
    (xf, xe), (yf, ye) = _split(x), _split(y)
    if len(xe) != len(ye):
        return float("inf")
    ess = float(np.sum(np.abs(xe - ye) ** p))
    n, m = len(xf), len(yf)
    if n + m == 0:
        return ess ** (1.0 / p)
    if n + m > _EXACT_WASSERSTEIN_MAX:
        from gudhi.hera import wasserstein_distance

        w = float(wasserstein_distance(xf, yf, order=p, internal_p=np.inf, delta=delta))
        return (w ** p + ess) ** (1.0 / p)
    from scipy.optimize import linear_sum_assignment

    C = np.zeros((n + m, n + m))
    if n and m:
        C[:n, :m] = np.maximum(np.abs(xf[:, None, 0] - yf[None, :, 0]), np.abs(xf[:, None, 1] - yf[None, :, 1])) ** p
    dx = ((xf[:, 1] - xf[:, 0]) / 2.0) ** p  # L∞ distance to the diagonal
    dy = ((yf[:, 1] - yf[:, 0]) / 2.0) ** p
    C[:n, m:] = dx[:, None]
    C[n:, :m] = dy[None, :]
    r, c = linear_sum_assignment(C)
    return float(C[r, c].sum() + ess) ** (1.0 / p)


def _per_dim(fn, a, b, dim, **kw):
    A, B, single = _pair_lists(a, b)
    if single:
        return fn(A[0], B[0], **kw)
    if dim is not None:
        dim = check_int("dim", dim, min_value=0)
        if dim >= len(A) or dim >= len(B):
            fail("dim", f"a dimension present in both ({min(len(A), len(B)) - 1} at most)", dim)
        return fn(A[dim], B[dim], **kw)
    if len(A) != len(B):
        fail("b", f"diagrams up to the same dimension as a ({len(A) - 1}); or pass dim=",
             f"dimensions up to {len(B) - 1}", raw=True)
    return np.array([fn(x, y, **kw) for x, y in zip(A, B)])


def bottleneck(a, b, *, dim: int | None = None):
    """Bottleneck distance per homology dimension.

    Parameters
    ----------
    a, b : PersistenceResult, list of (n_k, 2) arrays, or single (n, 2) diagrams
    dim : int, optional
        One dimension (returns a float). By default an array with one distance per dimension;
        for two single diagrams, a float.
    """
    return _per_dim(bottleneck_1d, a, b, dim)


def wasserstein(a, b, p: float = 2.0, *, dim: int | None = None, delta: float = 1e-4):
    """p-Wasserstein distance per homology dimension (same arguments as :func:`bottleneck`).

    Exact up to 1,500 diagram points, else gudhi.hera with relative error ``delta``.
    """
    p = check_float("p", p, min_value=1.0)
    delta = check_float("delta", delta, min_value=0, min_inclusive=False)
    return _per_dim(wasserstein_1d, a, b, dim, p=p, delta=delta)


def _pair_task(item):
    i, j, A, B, metric, dim, p = item
    if metric == "bottleneck":
        d = bottleneck(A, B, dim=dim)
        return i, j, float(np.max(d))
    d = wasserstein(A, B, p, dim=dim)
    return i, j, float(np.sum(np.asarray(d) ** p) ** (1.0 / p))


def distance_matrix(results, *, metric: str = "bottleneck", dim: int | None = None, p: float = 2.0,
                    executor=None) -> np.ndarray:
    """Pairwise diagram distances between many results (e.g. the layers of a profile).

    Parameters
    ----------
    results : sequence of PersistenceResult (or lists of diagrams)
    metric : {"bottleneck", "wasserstein"}
    dim : int, optional
        One homology dimension. By default all dimensions together: the maximum over dimensions
        for bottleneck, ``(Σ_k W_p^p)^(1/p)`` for Wasserstein (the distance between the diagrams
        of all dimensions, each matched within its own dimension).
    p : float
        Wasserstein exponent.
    executor : None, "serial", "process", "dask" or an Executor

    Returns
    -------
    ndarray of shape (n_results, n_results), symmetric with a zero diagonal
    """
    from topo_mi.parallel import get_executor

    metric = check_choice("metric", metric, ("bottleneck", "wasserstein"))
    p = check_float("p", p, min_value=1.0)
    dgms = [as_diagram_list(r, f"results[{i}]") for i, r in enumerate(results)]
    m = len(dgms)
    items = [(i, j, dgms[i], dgms[j], metric, dim, p) for i in range(m) for j in range(i + 1, m)]
    out = np.zeros((m, m))
    for i, j, d in get_executor(executor).map(_pair_task, items, desc="diagram distances", progress=False):
        out[i, j] = out[j, i] = d
    return out
