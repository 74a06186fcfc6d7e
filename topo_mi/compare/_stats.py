"""Permutation p-values, multiple-comparison corrections and bootstrap intervals.

References
----------
Phipson & Smyth, "Permutation p-values should never be zero", Stat. Appl. Genet. Mol. Biol. 2010.
Holm, "A simple sequentially rejective multiple test procedure", Scand. J. Stat. 1979.
Benjamini & Hochberg, "Controlling the false discovery rate", JRSS B 1995.
Efron & Tibshirani, "An Introduction to the Bootstrap", 1993 (percentile intervals).
"""
from __future__ import annotations

import numpy as np

from topo_mi._validation import check_choice, check_float, fail

CORRECTIONS = ("holm", "bh", "bonferroni", "none")


def permutation_pvalues(observed, null, *, higher_is_similar: bool = True) -> np.ndarray:
    """One-sided permutation p-values ``(1 + #{null at least as extreme}) / (1 + n_perm)``.

    Parameters
    ----------
    observed : array of shape S
    null : array of shape (n_perm, *S)
        Statistics with the sample correspondence broken.
    higher_is_similar : bool, default True
        True: "extreme" means at least as large (similarities); False: at most as small
        (distances).

    Returns
    -------
    ndarray of shape S, values in [1/(n_perm + 1), 1]
    """
    observed = np.asarray(observed, dtype=np.float64)
    null = np.asarray(null, dtype=np.float64)
    if null.ndim != observed.ndim + 1 or null.shape[1:] != observed.shape:
        fail("null", f"an array of shape (n_perm, {', '.join(map(str, observed.shape))})", null)
    # A relative tolerance keeps exact ties (e.g. identical representations) counted as ties.
    tol = 1e-12 * np.maximum(1.0, np.abs(observed))
    if higher_is_similar:
        hits = (null >= observed - tol).sum(axis=0)
    else:
        hits = (null <= observed + tol).sum(axis=0)
    return (1.0 + hits) / (1.0 + null.shape[0])


def adjust_pvalues(p, method: str = "holm") -> np.ndarray:
    """Multiple-comparison correction of a family of p-values (NaN entries are left out).

    Parameters
    ----------
    p : array of any shape
    method : {"holm", "bh", "bonferroni", "none"}, default "holm"
        Holm's step-down (family-wise error), Benjamini–Hochberg step-up (false discovery rate),
        Bonferroni, or no correction.

    Returns
    -------
    ndarray of the same shape, values in [0, 1]
    """
    check_choice("correction", method, CORRECTIONS)
    p = np.asarray(p, dtype=np.float64)
    out = np.full(p.shape, np.nan)
    mask = ~np.isnan(p)
    v = p[mask]
    m = v.size
    if m == 0:
        return out
    if np.any((v < 0) | (v > 1)):
        fail("p", "p-values in [0, 1]", f"range [{v.min():g}, {v.max():g}]", raw=True)
    if method == "none":
        adj = v.copy()
    elif method == "bonferroni":
        adj = np.minimum(1.0, v * m)
    elif method == "holm":
        order = np.argsort(v, kind="stable")
        stepped = np.maximum.accumulate((m - np.arange(m)) * v[order])
        adj = np.empty(m)
        adj[order] = np.minimum(1.0, stepped)
    else:  # bh
        order = np.argsort(v, kind="stable")
        ranked = v[order] * m / np.arange(1, m + 1)
        stepped = np.minimum.accumulate(ranked[::-1])[::-1]
        adj = np.empty(m)
        adj[order] = np.minimum(1.0, stepped)
    out[mask] = adj
    return out


def percentile_interval(boot, *, level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Percentile bootstrap interval over axis 0 of ``boot`` (n_boot, *S)."""
    level = check_float("ci_level", level, min_value=0.0, max_value=1.0, min_inclusive=False, max_inclusive=False)
    boot = np.asarray(boot, dtype=np.float64)
    alpha = (1.0 - level) / 2.0
    lo, hi = np.quantile(boot, [alpha, 1.0 - alpha], axis=0)
    return lo, hi


__all__ = ["permutation_pvalues", "adjust_pvalues", "percentile_interval", "CORRECTIONS"]
