r"""The exact expected loss of the biasless ReLU toy model with n = 2 features in m = 1 dimension.

``x' = ReLU(w (w · x))`` with ``w = (w_0, w_1)`` (the model's ``W`` of shape (2, 1)); ``x_i = 0``
with probability ``S_i`` else ``U[0, 1]``, independently; loss
``L(w) = ½ Σ_i I_i E[(x_i − x'_i)²]`` (the training objective: mean over features). Splitting on
which features are active:

- one feature ``i`` active (``x_i = u``): ``h = w_i u``, the error is
  ``I_i (1 − w_i²)² / 3 + I_j max(w_i w_j, 0)² / 3``;
- both active: ``E[(u_i − ReLU(w_i h))²]`` over the unit square, a quadratic polynomial on each side
  of the line ``w_i h = 0``; it is integrated exactly (the square clipped by the half-plane,
  split into triangles, each integrated by the edge-midpoint rule, exact for degree 2).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from topo_mi._validation import as_array, check_float, check_int, fail


def _clip_square(a: np.ndarray) -> np.ndarray:
    """Vertices (k, 2) of the unit square ∩ {u : a · u > 0} (Sutherland–Hodgman), possibly empty."""
    poly = [np.array(p, dtype=np.float64) for p in ((0, 0), (1, 0), (1, 1), (0, 1))]
    out = []
    for k in range(4):
        p, q = poly[k], poly[(k + 1) % 4]
        fp, fq = a @ p, a @ q
        if fp > 0:
            out.append(p)
        if (fp > 0) != (fq > 0) and fp != fq:
            t = fp / (fp - fq)
            out.append(p + t * (q - p))
    return np.array(out).reshape(-1, 2)


def _integrate_quadratic(poly: np.ndarray, f) -> float:
    """∫ f over a convex polygon, exact for polynomials of degree <= 2."""
    if len(poly) < 3:
        return 0.0
    total = 0.0
    p0 = poly[0]
    for k in range(1, len(poly) - 1):
        p1, p2 = poly[k], poly[k + 1]
        area = 0.5 * abs((p1[0] - p0[0]) * (p2[1] - p0[1]) - (p2[0] - p0[0]) * (p1[1] - p0[1]))
        mids = ((p0 + p1) / 2, (p1 + p2) / 2, (p2 + p0) / 2)
        total += area * sum(f(m) for m in mids) / 3.0
    return total


def _check_pair(name: str, value: Any, *, low: float, high: float | None, high_inclusive=True) -> np.ndarray:
    arr = np.asarray(value, dtype=object)
    vals = [value, value] if arr.ndim == 0 else list(arr.ravel())
    if arr.ndim > 1 or len(vals) != 2:
        fail(name, "a number or two numbers (one per feature)", value)
    return np.array([check_float(f"{name}[{k}]", v, min_value=low, max_value=high,
                                 max_inclusive=high_inclusive) for k, v in enumerate(vals)])


def _check_w(W: Any) -> np.ndarray:
    w = np.asarray(as_array(W, "W"))
    if w.dtype.kind not in "biuf" or w.size != 2 or w.ndim > 2 or (w.ndim == 2 and w.shape not in ((2, 1), (1, 2))):
        fail("W", "two weights, shape (2,) or (2, 1) (n = 2 features, m = 1 hidden dimension)", w)
    w = w.astype(np.float64).ravel()
    if not np.all(np.isfinite(w)):
        fail("W", "finite weights", w)
    return w


def expected_loss_2_1(W: Any, *, sparsity: Any = 0.0, importance: Any = (1.0, 1.0)) -> float:
    r"""Exact ``½ Σ_i I_i E[(x_i − ReLU(w_i (w · x)))²]`` of the biasless n = 2, m = 1 model.

    Parameters
    ----------
    W : array of shape (2,) or (2, 1)
        The features' weights ``(w_0, w_1)``.
    sparsity : float or two floats in [0, 1]
        ``S_i``: probability that ``x_i = 0``.
    importance : float or two floats >= 0

    Returns
    -------
    float
    """
    w = _check_w(W)
    S = _check_pair("sparsity", sparsity, low=0.0, high=1.0)
    imp = _check_pair("importance", importance, low=0.0, high=None)
    p = 1.0 - S
    total = 0.0
    for i in range(2):
        j = 1 - i
        one = (imp[i] * (1.0 - w[i] ** 2) ** 2 + imp[j] * max(w[i] * w[j], 0.0) ** 2) / 3.0
        total += p[i] * (1.0 - p[j]) * one
    both = 0.0
    for i in range(2):
        a = w[i] * w  # ReLU active where a · u > 0
        region = _clip_square(a)
        # E[u_i²] = 1/3 over the square; where active the error is (u_i − a · u)² instead
        gain = _integrate_quadratic(region, lambda u, i=i, a=a: (u[i] - a @ u) ** 2 - u[i] ** 2)
        both += imp[i] * (1.0 / 3.0 + gain)
    total += p[0] * p[1] * both
    return 0.5 * float(total)


def monte_carlo_loss_2_1(W: Any, *, sparsity: Any = 0.0, importance: Any = (1.0, 1.0), n_samples: int = 1_000_000,
                         seed: int = 0) -> tuple[float, float]:
    """Monte-Carlo estimate (mean, standard error) of the loss :func:`expected_loss_2_1` computes,
    from ``n_samples`` inputs drawn with a NumPy generator seeded by ``seed`` and the model's forward
    pass ``ReLU(x W Wᵀ)`` (an independent computation of the same quantity)."""
    w = _check_w(W)
    S = _check_pair("sparsity", sparsity, low=0.0, high=1.0)
    imp = _check_pair("importance", importance, low=0.0, high=None)
    n_samples = check_int("n_samples", n_samples, min_value=2)
    rng = np.random.default_rng(check_int("seed", seed, min_value=0))
    Wm = w[:, None]
    sums = np.zeros(2)
    chunk = 1 << 18
    for start in range(0, n_samples, chunk):
        b = min(chunk, n_samples - start)
        x = np.where(rng.random((b, 2)) >= S, rng.random((b, 2)), 0.0)
        out = np.maximum(x @ Wm @ Wm.T, 0.0)
        per = 0.5 * ((x - out) ** 2 * imp).sum(axis=1)
        sums += per.sum(), (per ** 2).sum()
    mean = sums[0] / n_samples
    var = max(sums[1] / n_samples - mean ** 2, 0.0) * n_samples / (n_samples - 1)
    return float(mean), float(np.sqrt(var / n_samples))


__all__ = ["expected_loss_2_1", "monte_carlo_loss_2_1"]
