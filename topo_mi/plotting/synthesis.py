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
    for r in results:
        plot_coverage(r, ax=ax, label=f"{r.name} ({r.coverage:.2f})")
    if union is not None:
        ax.step(union.eps_grid, union.curve, where="post", color="k", lw=2,
                label=f"union ({union.coverage:.2f})")
    if target is not None:
        ax.axhline(target, color="r", lw=0.8, ls="--", label=f"coverage {target:g}")
    ax.legend(fontsize=7, loc="upper left")
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
