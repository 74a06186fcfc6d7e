"""Figures of topo_mi.synthesis: coverage curves, pluralism, the framework's claims."""
from __future__ import annotations

import numpy as np

from topo_mi.plotting import get_ax


def _eps_label(r) -> str:
    unit = "relative " if r.relative else ""
    return f"ε ({unit}{r.norm} in {r.space})"


def plot_coverage(result, ax=None, *, band: bool = True, label: str | None = None, color=None):
    """coverage(ε) with its pointwise bootstrap band; the chosen ε marked."""
    ax = get_ax(ax)
    line, = ax.step(result.eps_grid, result.curve, where="post", label=label or result.name, color=color)
    if band and np.isfinite(result.curve_low).all():
        ax.fill_between(result.eps_grid, result.curve_low, result.curve_high, step="post", alpha=0.2,
                        color=line.get_color(), linewidth=0)
    ax.axvline(result.eps, color="0.6", lw=0.8, ls=":")
    ax.set_xscale("log")
    ax.set_xlabel(_eps_label(result))
    ax.set_ylabel("coverage = #{δ < ε} / n")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title(f"{result.name}: coverage {result.coverage:.2f} at ε = {result.eps:g}")
    return ax


def plot_coverages(results, ax=None, *, target: float | None = 0.8, union=None, title: str | None = None):
    """Several interpretations' coverage curves on one plot (and the union's, when given)."""
    ax = get_ax(ax, figsize=(6.0, 4.2))
    if union is not None:  # drawn first, wide and pale, so the members stay visible on top of it
        ax.step(union.eps_grid, union.curve, where="post", color="k", lw=4, alpha=0.3, zorder=1,
                label=f"union ({union.coverage:.2f})")
    for r in results:
        plot_coverage(r, ax=ax, label=f"{r.name} ({r.coverage:.2f})")
    if target is not None:
        ax.axhline(target, color="r", lw=0.8, ls="--", label=f"coverage {target:g}")
    ax.legend(fontsize=7, loc="lower right")
    ax.set_title(title or f"coverage at ε = {results[0].eps:g} (in brackets)")
    return ax


def plot_pluralism(result, ax=None, *, kind: str = "curves"):
    """``kind="curves"``: members' and combination's coverage curves; ``"overlap"``: the matrix."""
    ax = get_ax(ax, figsize=(6.0, 4.2))
    if kind == "overlap":
        im = ax.imshow(result.overlap, vmin=0, vmax=1, cmap="viridis")
        ax.set_xticks(range(len(result.names)), result.names, rotation=45, ha="right", fontsize=7)
        ax.set_yticks(range(len(result.names)), result.names, fontsize=7)
        for i in range(len(result.names)):
            for j in range(len(result.names)):
                ax.text(j, i, f"{result.overlap[i, j]:.2f}", ha="center", va="center", fontsize=7,
                        color="w" if result.overlap[i, j] < 0.5 else "k")
        ax.figure.colorbar(im, ax=ax, label="fraction explained by both")
        ax.set_title(f"overlap at ε = {result.eps:g}")
        return ax
    for name, curve, c in zip(result.names, result.member_curves, result.member_coverage):
        ax.step(result.eps_grid, curve, where="post", label=f"{name} ({c:.2f})")
    ax.step(result.eps_grid, result.curve, where="post", color="k", lw=2,
            label=f"{result.rule} ({result.coverage:.2f})")
    ax.axvline(result.eps, color="0.6", lw=0.8, ls=":")
    ax.set_xscale("log")
    ax.set_xlabel(f"ε ({result.norm} in {result.space})")
    ax.set_ylabel("coverage")
    ax.set_ylim(-0.02, 1.02)
    ax.legend(fontsize=7, loc="lower right")
    ax.set_title(f"combined by {result.rule!r}: {result.coverage:.2f} at ε = {result.eps:g}")
    return ax


def plot_synthesis(result, ax=None, **kw):
    """The pipeline's result: every member's curve, the union and the 0.8 line."""
    return plot_coverages(result.members, ax=ax, target=result.target, union=result.pluralism,
                          title=f"coverage at ε = {result.eps:g}; union {result.pluralism.coverage:.2f}")


def plot_method_coverage(result, ax=None):
    """Coverage at ε of each method (bars with intervals) per model, the union, the target line."""
    ax = get_ax(ax, figsize=(7.0, 4.2))
    n_m, n_k = result.coverage.shape
    width = 0.8 / (n_k + 1)
    xs = np.arange(n_m)
    for j, meth in enumerate(list(result.methods) + ["union"]):
        if meth == "union":
            c, lo, hi = result.union, result.union_low, result.union_high
        else:
            c, lo, hi = result.coverage[:, j], result.low[:, j], result.high[:, j]
        ok = np.isfinite(c)
        err = np.vstack([c - lo, hi - c])
        ax.bar(xs[ok] + (j - n_k / 2) * width, c[ok], width, yerr=err[:, ok], capsize=2, label=meth,
               color="k" if meth == "union" else None)
    ax.axhline(result.target, color="r", ls="--", lw=0.8, label=f"target {result.target:g}")
    ax.set_xticks(xs, result.models, fontsize=8)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel(f"coverage at ε = {result.eps:g} ({result.norm}, {result.space})")
    ax.legend(fontsize=7, ncol=2)
    ax.set_title("single methods vs their union")
    return ax


def plot_fidelity_depth(result, ax=None):
    """Mean fidelity against depth (log–log) with c·L^(−1/2) and the free power law."""
    ax = get_ax(ax)
    L = result.depths.astype(float)
    ax.errorbar(L, result.mean, yerr=result.sem, fmt="o", capsize=3, label=f"{result.method} (mean ± s.e.)")
    fine = np.geomspace(L.min(), L.max(), 100)
    ax.plot(fine, result.c_half * fine ** -0.5, "r--",
            label=f"c·L^(-1/2), c = {result.c_half:.3g}, RMS residual {result.residual_half:.3g}")
    if np.isfinite(result.beta):
        ax.plot(fine, result.c_free * fine ** result.beta, "k:",
                label=f"c·L^β, β = {result.beta:.2f} ± {result.beta_se:.2f}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("depth L")
    ax.set_ylabel(f"fidelity: coverage at ε = {result.eps:g}")
    ax.legend(fontsize=7)
    return ax


def plot_regions_betti(result, ax=None):
    """Left: the decision regions; right: b_1(S_ε) of each layer against the region count."""
    plt = __import__("topo_mi.plotting", fromlist=["pyplot"]).pyplot()
    if ax is None:
        fig, (a0, a1) = plt.subplots(1, 2, figsize=(10, 4), constrained_layout=True)
    else:
        a0, a1 = None, ax
    if a0 is not None:
        a0.imshow(result.labels_grid, origin="lower", extent=tuple(result.extent), cmap="coolwarm",
                  interpolation="nearest")
        a0.set_title(f"decision regions: {result.n_regions} "
                     f"({', '.join(map(str, result.regions_per_class.tolist()))} per class)")
    cmap = plt.get_cmap("viridis")
    k = len(result.layers)
    for i, name in enumerate(result.layers):
        g = result.eps_grid[i]
        a1.plot(g / (g.max() if g.max() > 0 else 1), result.betti1[i], color=cmap(i / max(k - 1, 1)), lw=1,
                label=name if i in (0, k - 1) or k <= 6 else None)
    a1.axhline(result.n_regions, color="r", ls="--", lw=0.8, label=f"{result.n_regions} regions")
    a1.set_xlabel("ε / largest finite H1 death (per layer)")
    a1.set_ylabel("b_1(S_ε)")
    a1.legend(fontsize=7)
    a1.set_title(f"layers with an ε*: {int(np.isfinite(result.eps_star).sum())} of {k}")
    return a1
