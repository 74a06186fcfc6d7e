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
