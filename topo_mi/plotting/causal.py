"""Figures of topo_mi.causal: patching heatmaps, ΔN and τ_c distributions, concept profiles."""
from __future__ import annotations

import numpy as np

from topo_mi.plotting import get_ax


def plot_patch_sweep(result, ax=None, *, cmap: str = "RdBu_r"):
    """Heatmap of the normalised patching effect, layers (rows) by positions (columns)."""
    ax = get_ax(ax, figsize=(1.2 + 0.6 * len(result.positions), 1.0 + 0.4 * len(result.layers)))
    eff = np.asarray(result.effect, dtype=float)
    lim = max(1.0, float(np.nanmax(np.abs(eff))) if np.isfinite(eff).any() else 1.0)
    im = ax.imshow(eff, cmap=cmap, vmin=-lim, vmax=lim, aspect="auto")
    ax.set_xticks(range(len(result.positions)), [str(p) for p in result.positions])
    ax.set_yticks(range(len(result.layers)), result.layers)
    ax.set_xlabel("position")
    ax.set_ylabel("layer")
    ax.set_title("patching effect (1 = clean, 0 = corrupt)")
    ax.figure.colorbar(im, ax=ax)
    return ax


def plot_delta_n(result, ax=None, *, bins: int = 40):
    """Histogram of ΔN over the samples."""
    ax = get_ax(ax)
    ax.hist(np.asarray(result.values), bins=bins, color="C0", alpha=0.8)
    title = f"ΔN ({result.output}, norm {result.norm})"
    if result.fraction_changed is not None:
        title += f"; {result.fraction_changed:.0%} predictions changed"
    ax.set_title(title, fontsize=9)
    ax.set_xlabel("ΔN(x)")
    ax.set_ylabel("samples")
    return ax


def plot_sensitivity(result, ax=None, *, bins: int = 40):
    """Histogram of the per-sample directional derivatives, the sup τ_c marked."""
    ax = get_ax(ax)
    ax.hist(np.asarray(result.per_sample), bins=bins, color="C2", alpha=0.8)
    ax.axvline(result.tau, color="k", ls="--", label=f"τ_c = {result.tau:.3g} (id {result.argmax_id})")
    ax.set_xlabel(f"d/dλ {result.output} along v at {result.layer}")
    ax.set_ylabel("samples")
    ax.legend(fontsize=8)
    return ax
