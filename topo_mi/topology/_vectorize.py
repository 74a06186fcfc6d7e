"""Betti curves, summaries and vectorisations of persistence diagrams.

Convention for every scale-dependent quantity: a bar ``[b, d)`` is alive at scale ``s`` iff
``b <= s < d``. For a Vietoris–Rips filtration this is the homology of the complex
``{σ : diam(σ) <= s}`` (simplices enter at their diameter, closed condition): with the kNN hop
distance, ``s = 2`` is the complex of all simplices whose vertices are pairwise at most 2 hops
apart (Naitzat et al.'s complex).
"""
from __future__ import annotations

import numbers

import numpy as np

from topo_mi._validation import check_float, check_int, fail


def diagram_array(d, name: str) -> np.ndarray:
    """A float64 (n, 2) array of (birth, death) pairs, or a named error."""
    from topo_mi._validation import as_array

    a = as_array(d, name) if not isinstance(d, (list, tuple)) else None
    if a is None:
        try:
            a = np.asarray(d)
        except (ValueError, TypeError):
            fail(name, "an array of shape (n, 2) of (birth, death) pairs", d)
    if a.dtype == object or a.dtype.kind not in "biuf":
        fail(name, "a real numeric array of shape (n, 2) of (birth, death) pairs", a)
    a = np.asarray(a, dtype=np.float64)
    if a.size == 0:
        a = a.reshape(0, 2)
    if a.ndim != 2 or a.shape[1] != 2:
        fail(name, "an array of shape (n, 2) of (birth, death) pairs", a)
    return a


def as_diagram_list(obj, name: str = "diagrams") -> list[np.ndarray]:
    """Diagrams of a result, a list of ``(n_k, 2)`` arrays, or a gudhi-style list of (dim, (b, d))."""
    if hasattr(obj, "diagrams") and isinstance(obj.diagrams, (list, tuple)):
        return [np.asarray(d, dtype=np.float64).reshape(-1, 2) for d in obj.diagrams]
    if isinstance(obj, np.ndarray):
        fail(name, "a PersistenceResult or a list of (n_k, 2) arrays (one per dimension)", obj)
    if isinstance(obj, (list, tuple)):
        if obj and all(isinstance(p, tuple) and len(p) == 2 and isinstance(p[0], numbers.Integral)
                       and not isinstance(p[1], numbers.Number) for p in obj):  # gudhi's format
            top = max(int(p[0]) for p in obj)
            out = [[] for _ in range(top + 1)]
            for dim, (b, d) in obj:
                out[int(dim)].append((b, d))
            return [np.asarray(o, dtype=np.float64).reshape(-1, 2) for o in out]
        return [diagram_array(d, f"{name}[{k}]") for k, d in enumerate(obj)]
    fail(name, "a PersistenceResult or a list of (n_k, 2) arrays (one per dimension)", obj)


def is_pair_list(x) -> bool:
    """True for a non-empty list of (birth, death) number pairs (one diagram, not a list of them)."""
    if not isinstance(x, (list, tuple)) or not x:
        return False
    e = x[0]
    return (isinstance(e, (list, tuple, np.ndarray)) and np.ndim(e) == 1 and len(e) == 2
            and all(isinstance(v, numbers.Real) for v in e))


def as_diagram(obj, dim: int | None, name: str = "diagram") -> np.ndarray:
    """One ``(n, 2)`` diagram: ``obj`` itself if it is an array, else dimension ``dim`` of it."""
    if isinstance(obj, np.ndarray) or is_pair_list(obj):
        return diagram_array(obj, name)
    dgms = as_diagram_list(obj, name)
    if dim is None:
        fail("dim", "a homology dimension when a whole result or list of diagrams is given", dim)
    dim = check_int("dim", dim, min_value=0)
    if dim >= len(dgms):
        fail("dim", f"a dimension <= {len(dgms) - 1} (the diagrams stop there)", dim)
    return dgms[dim]


def _grid(grid) -> np.ndarray:
    g = np.asarray(grid, dtype=np.float64)
    if g.ndim == 0:
        g = g.reshape(1)
    if g.ndim != 1 or g.size == 0 or not np.isfinite(g).all():
        fail("grid", "a non-empty 1-D array of finite scales", grid)
    return g


def betti_curve(result_or_diagrams, grid) -> np.ndarray:
    """Betti numbers ``β_k(s) = #{bars [b, d) of dimension k : b <= s < d}`` on a grid.

    Parameters
    ----------
    result_or_diagrams : PersistenceResult or list of (n_k, 2) arrays
    grid : array of shape (n_grid,)

    Returns
    -------
    ndarray of shape (n_dims, n_grid), int64
    """
    dgms = as_diagram_list(result_or_diagrams)
    g = _grid(grid)
    out = np.zeros((len(dgms), g.size), dtype=np.int64)
    for k, d in enumerate(dgms):
        if len(d) == 0:
            continue
        births = np.sort(d[:, 0])
        deaths = np.sort(d[:, 1])
        out[k] = np.searchsorted(births, g, side="right") - np.searchsorted(deaths, g, side="right")
    return out


def betti_numbers(result_or_diagrams, scale: float) -> np.ndarray:
    """``β_k`` at one scale (same convention as :func:`betti_curve`); shape (n_dims,)."""
    scale = check_float("scale", scale)
    return betti_curve(result_or_diagrams, [scale])[:, 0]


def _finite(d: np.ndarray) -> np.ndarray:
    return d[np.isfinite(d[:, 1])]


def total_persistence(diagram, *, p: float = 1.0, dim: int | None = None) -> float:
    """``Σ (d − b)^p`` over the finite bars of one diagram (essential classes left out)."""
    d = _finite(as_diagram(diagram, dim))
    p = check_float("p", p, min_value=0, min_inclusive=False)
    return float(np.sum((d[:, 1] - d[:, 0]) ** p))


def persistence_entropy(diagram, *, dim: int | None = None, normalize: bool = False) -> float:
    """Shannon entropy ``−Σ ℓ_i/L log(ℓ_i/L)`` of the finite bar lengths (Chintakunta et al. 2015).

    Essential classes are left out; 0 for a diagram with no finite bar. ``normalize`` divides by
    ``log(number of bars)`` (1 for equal lengths).
    """
    d = _finite(as_diagram(diagram, dim))
    lengths = d[:, 1] - d[:, 0]
    lengths = lengths[lengths > 0]
    if lengths.size == 0:
        return 0.0
    q = lengths / lengths.sum()
    h = float(-np.sum(q * np.log(q))) + 0.0  # no -0.0
    if normalize:
        return h / np.log(lengths.size) if lengths.size > 1 else 0.0
    return h


def longest_bars(diagram, n: int = 5, *, dim: int | None = None, include_essential: bool = True) -> np.ndarray:
    """The ``n`` longest bars, longest first (essential classes first unless excluded)."""
    d = as_diagram(diagram, dim)
    n = check_int("n", n, min_value=0)
    if not include_essential:
        d = _finite(d)
    pers = d[:, 1] - d[:, 0]
    order = np.lexsort((d[:, 0], -pers))
    return d[order[:n]]


def n_bars_longer_than(diagram, tau: float, *, dim: int | None = None) -> int:
    """Number of bars with ``d − b > tau`` (essential classes count as infinitely long)."""
    d = as_diagram(diagram, dim)
    tau = check_float("tau", tau, min_value=0)
    return int(np.count_nonzero(d[:, 1] - d[:, 0] > tau))


def _prepare_bars(diagram, dim, inf_death):
    d = as_diagram(diagram, dim)
    ess = ~np.isfinite(d[:, 1])
    if ess.any():
        if inf_death is None:
            d = d[~ess]
        else:
            inf_death = check_float("inf_death", inf_death)
            d = d.copy()
            d[ess, 1] = inf_death
            d = d[d[:, 1] > d[:, 0]]
    return d


def persistence_landscape(diagram, grid, *, dim: int | None = None, n_layers: int = 5,
                          inf_death: float | None = None) -> np.ndarray:
    """Persistence landscape ``λ_j(t)``, j = 1..n_layers (Bubenik, JMLR 2015).

    ``λ_j(t)`` is the j-th largest of ``max(0, min(t − b, d − t))`` over the bars.

    Parameters
    ----------
    diagram : (n, 2) array, or a PersistenceResult / list of diagrams with ``dim``
    grid : array of shape (n_grid,)
    n_layers : int
    inf_death : float, optional
        Death given to essential classes; by default they are left out (a landscape needs
        finite bars).

    Returns
    -------
    ndarray of shape (n_layers, n_grid)
    """
    d = _prepare_bars(diagram, dim, inf_death)
    g = _grid(grid)
    n_layers = check_int("n_layers", n_layers, min_value=1)
    out = np.zeros((n_layers, g.size))
    if len(d) == 0:
        return out
    tents = np.minimum(g[None, :] - d[:, :1], d[:, 1:] - g[None, :])
    np.maximum(tents, 0.0, out=tents)
    tents = -np.sort(-tents, axis=0)
    m = min(n_layers, tents.shape[0])
    out[:m] = tents[:m]
    return out


def persistence_image(diagram, *, dim: int | None = None, resolution=(20, 20), bandwidth: float | None = None,
                      birth_range=None, persistence_range=None, weight: str = "linear",
                      inf_death: float | None = None) -> np.ndarray:
    """Persistence image (Adams et al., JMLR 2017).

    Bars become points ``(birth, persistence)``, each spread as a Gaussian of standard deviation
    ``bandwidth`` weighted by ``w(p)`` (``"linear"``: ``p / max p``; ``"constant"``: 1),
    integrated exactly over each pixel.

    Returns
    -------
    ndarray of shape (resolution[1], resolution[0])
        Rows: persistence increasing; columns: birth increasing.
    """
    from scipy.special import erf

    from topo_mi._validation import check_choice

    d = _prepare_bars(diagram, dim, inf_death)
    weight = check_choice("weight", weight, ("linear", "constant"))
    if np.ndim(resolution) == 0:
        resolution = (resolution, resolution)
    nb = check_int("resolution[0]", resolution[0], min_value=1)
    npers = check_int("resolution[1]", resolution[1], min_value=1)
    b = d[:, 0]
    p = d[:, 1] - d[:, 0]
    if birth_range is None:
        lo, hi = (float(b.min()), float(b.max())) if len(b) else (0.0, 1.0)
        if hi <= lo:
            hi = lo + (float(p.max()) if len(p) else 1.0)
        birth_range = (lo, hi)
    if persistence_range is None:
        persistence_range = (0.0, float(p.max()) if len(p) and p.max() > 0 else 1.0)
    b_lo, b_hi = map(float, birth_range)
    p_lo, p_hi = map(float, persistence_range)
    if not (b_hi > b_lo and p_hi > p_lo):
        fail("birth_range/persistence_range", "increasing (low, high) pairs", (birth_range, persistence_range))
    if bandwidth is None:
        bandwidth = max(b_hi - b_lo, p_hi - p_lo) / max(nb, npers)
    sigma = check_float("bandwidth", bandwidth, min_value=0, min_inclusive=False)
    img = np.zeros((npers, nb))
    if len(d) == 0:
        return img
    w = p / p.max() if weight == "linear" and p.max() > 0 else np.ones_like(p)
    be = np.linspace(b_lo, b_hi, nb + 1)
    pe = np.linspace(p_lo, p_hi, npers + 1)
    s = sigma * np.sqrt(2.0)
    cb = 0.5 * (erf((be[None, 1:] - b[:, None]) / s) - erf((be[None, :-1] - b[:, None]) / s))  # (n, nb)
    cp = 0.5 * (erf((pe[None, 1:] - p[:, None]) / s) - erf((pe[None, :-1] - p[:, None]) / s))  # (n, npers)
    img = np.einsum("i,ip,ib->pb", w, cp, cb)
    return img
