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


def plot_concept_profile(result, ax=None):
    """Four panels across layers: accuracy, R_c, τ_c, counterfactual flips (concept vs baselines).

    With ``ax`` given, only the R_c panel is drawn on it.
    """
    x = np.arange(len(result.layers))
    if ax is not None:
        return _panel_r_c(result, ax, x)
    plt = __import__("topo_mi.plotting", fromlist=["pyplot"]).pyplot()
    fig, axes = plt.subplots(2, 2, figsize=(9.0, 6.5), constrained_layout=True)
    a = axes[0, 0]
    a.plot(x, result.accuracy, "o-", label="in-sample")
    a.plot(x, result.cv_accuracy, "s-", label="held-out")
    a.plot(x, result.perm_cv_accuracy, "x--", color="grey", label="held-out, permuted labels")
    a.axhline(result.majority_rate, color="k", lw=0.8, ls=":", label="majority rate")
    a.set_ylabel(f"accuracy along v_c ({result.method})")
    a.legend(fontsize=7)
    _panel_r_c(result, axes[0, 1], x)
    a = axes[1, 0]
    a.plot(x, result.tau, "o-", color="C2")
    a.set_ylabel("τ_c (sup ‖d logits / dλ‖)")
    a = axes[1, 1]
    a.plot(x, result.counterfactual_flip, "o-", color="C3", label="counterfactual along v_c")
    a.plot(x, result.random_flip, "x--", color="grey", label="along a random direction")
    a.set_ylim(-0.02, 1.02)
    a.set_ylabel("predictions flipped")
    a.legend(fontsize=7)
    for a in axes.ravel():
        a.set_xticks(x, result.layers, rotation=45, fontsize=7)
    fig.suptitle(f"concept {result.concept!r}", fontsize=10)
    return axes


def _panel_r_c(result, ax, x):
    r = np.asarray(result.r_c)
    ax.errorbar(x, r, yerr=[r - result.r_c_low, result.r_c_high - r], fmt="o-", capsize=3, label="R_c (95% CI)")
    if result.perm_r_c.size:
        ax.fill_between(x, result.perm_r_c.min(1), result.perm_r_c.max(1), color="grey", alpha=0.3,
                        label="permuted labels (range)")
    ax.set_ylabel("R_c = V[v_c] / V[N]")
    ax.set_xticks(x, result.layers, rotation=45, fontsize=7)
    ax.legend(fontsize=7)
    return ax
