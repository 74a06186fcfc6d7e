"""Figures of :mod:`topo_mi.differential` and the sensitivity pipeline."""
from __future__ import annotations

import math

import numpy as np

from topo_mi.plotting import get_ax


def plot_attributions(res, ax=None, **kwargs):
    """Mean absolute attribution per unit: an image for 2-D (or square) unit shapes, else bars."""
    ax = get_ax(ax)
    imp = res.unit_importance()
    side = int(round(math.sqrt(imp.size)))
    if imp.ndim == 2 or (imp.ndim == 1 and side * side == imp.size and imp.size >= 16):
        im = ax.imshow(imp.reshape(imp.shape if imp.ndim == 2 else (side, side)), cmap="viridis", **kwargs)
        ax.figure.colorbar(im, ax=ax, label="mean |attribution|")
        ax.set_xticks([])
        ax.set_yticks([])
    else:
        flat = imp.ravel()
        ax.bar(np.arange(flat.size), flat, color="C0", **kwargs)
        ax.set_xlabel("unit")
        ax.set_ylabel("mean |attribution|")
    title = f"{res.method} ({res.layer or 'input'})"
    if res.method == "integrated_gradients":
        title += f"\nrule {res.rule}, max completeness error {np.max(res.delta):.2g}"
    ax.set_title(title, fontsize=9)
    return ax


def plot_trace(res, ax=None, **kwargs):
    """Running Hutchinson estimate with +-2 standard errors."""
    ax = get_ax(ax)
    s = np.asarray(res.samples, dtype=np.float64)
    k = np.arange(1, s.size + 1)
    mean = np.cumsum(s) / k
    sq = np.cumsum(s * s) / k
    se = np.sqrt(np.maximum(sq - mean ** 2, 0.0) * k / np.maximum(k - 1, 1) / k)
    ax.plot(k, mean, color="C0", **kwargs)
    ax.fill_between(k[1:], (mean - 2 * se)[1:], (mean + 2 * se)[1:], color="C0", alpha=0.25, label="±2 SE")
    ax.set_xlabel("probes")
    ax.set_ylabel("trace estimate")
    ax.set_title(f"Hutchinson trace {res.trace:.4g} ± {res.stderr:.2g}", fontsize=9)
    ax.legend(fontsize=8)
    return ax


def plot_density(res, ax=None, **kwargs):
    """The SLQ spectral density on a log scale (a floor keeps empty stretches visible)."""
    ax = get_ax(ax)
    dens = np.asarray(res.density)
    floor = max(dens.max() * 1e-8, 1e-300)
    ax.semilogy(res.grid, np.maximum(dens, floor), color="C0", **kwargs)
    ax.axvline(0.0, color="0.5", lw=0.8, ls=":")
    ax.set_xlabel("eigenvalue")
    ax.set_ylabel("density (SLQ)")
    ax.set_title(f"spectral density: {res.n_vectors} probes x {res.m} Lanczos steps, sigma {res.sigma:.2g}",
                 fontsize=9)
    return ax


def plot_spectrum(res, ax=None, **kwargs):
    """The density when computed, with the extreme eigenvalues marked; otherwise the eigenvalues."""
    ax = get_ax(ax)
    if res.density is not None:
        plot_density(res.density, ax=ax, **kwargs)
        for i, v in enumerate(res.top):
            ax.axvline(v, color="C3", lw=0.8, alpha=0.8, label="top-k" if i == 0 else None)
        for i, v in enumerate(res.bottom):
            ax.axvline(v, color="C2", lw=0.8, alpha=0.8, label="bottom-k" if i == 0 else None)
        ax.legend(fontsize=8)
    else:
        vals = np.concatenate([res.bottom, res.top[::-1]])
        ax.plot(np.arange(vals.size), vals, "o", color="C0", **kwargs)
        ax.axhline(0.0, color="0.5", lw=0.8, ls=":")
        ax.set_xlabel("index (bottom-k, then top-k)")
        ax.set_ylabel("eigenvalue")
    kappa = res.condition_number
    if np.isfinite(kappa):
        kp = f"κ = {kappa:.3g}"
    elif res.n_negative_exact:
        kp = f"indefinite ({res.n_negative} negative), κ₊ = {res.condition_number_positive:.3g}"
    else:  # counts and the positive part among the eigenvalues found: bounds
        kp = f"indefinite (≥ {res.n_negative} negative), κ₊ ≥ {res.condition_number_positive:.3g}"
    ax.set_title(f"Hessian ({res.dim} parameters): λmax = {res.lambda_max:.4g}\n{kp}", fontsize=9)
    return ax


def plot_sensitivity(res, ax=None, **kwargs):
    """Left: attribution mass per layer (mean |attribution| per unit); right: the Hessian spectrum."""
    from topo_mi.plotting import pyplot

    if ax is not None:
        if res.spectrum is not None:
            return plot_spectrum(res.spectrum, ax=ax, **kwargs)
        return _plot_layer_bars(res, ax)
    plt = pyplot()
    ncols = 2 if res.spectrum is not None else 1
    fig, axes = plt.subplots(1, ncols, figsize=(5.0 * ncols, 4.0), constrained_layout=True, squeeze=False)
    _plot_layer_bars(res, axes[0, 0])
    if res.spectrum is not None:
        plot_spectrum(res.spectrum, ax=axes[0, 1], **kwargs)
    return axes[0, 0]


def _plot_layer_bars(res, ax):
    names = list(res.layers)
    vals = [res.attributions[n].unit_importance().mean() for n in names]
    ax.bar(np.arange(len(names)), vals, color="C0")
    ax.set_xticks(np.arange(len(names)))
    ax.set_xticklabels(names, rotation=45, ha="right", fontsize=8)
    ax.set_ylabel("mean |attribution| per unit")
    ax.set_title(f"{res.method} per layer (max completeness error {res.max_delta():.2g})", fontsize=9)
    return ax


__all__ = ["plot_attributions", "plot_trace", "plot_density", "plot_spectrum", "plot_sensitivity"]
