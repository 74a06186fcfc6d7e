"""Figures of compact proofs: accuracy bound against proof cost (the shape of Gross et al.'s
Figure 1), and the spectra of EQKE and EVOU."""
from __future__ import annotations

import math

import numpy as np

from topo_mi.plotting import get_ax

_COLOURS = {"brute_force": "#444444", "cubic": "#c0392b", "subcubic": "#2e6fba",
            "subcubic_rank1_svd": "#27ae60", "subcubic_rank1_rowdiff": "#8e44ad"}
_MARKERS = "osD^vP*X"


def plot_proof(proof, ax=None, **kwargs):
    """One proof: its bound against log2 of its counted FLOPs."""
    ax = get_ax(ax)
    ax.scatter([math.log2(max(proof.flops_counted, 1.0))], [proof.bound],
               color=_COLOURS.get(proof.strategy, "k"), label=proof.strategy, **kwargs)
    ax.set_xlabel("proof cost: log2 FLOPs (counted)")
    ax.set_ylabel("certified accuracy (lower bound)")
    ax.set_ylim(-0.02, 1.02)
    ax.legend(fontsize=7)
    return ax


def plot_proof_table(table, ax=None, **kwargs):
    """Bound against log2 FLOPs for every strategy and run; brute-force accuracy as the ceiling.

    One colour per strategy and one marker per K; for several seeds the mean ± sd of both axes.
    A dashed line per K marks the mean brute-force accuracy (where brute force ran).
    """
    ax = get_ax(ax, figsize=(6.0, 4.2))
    ks = sorted(set(int(k) for k in table.k))
    ceilings = []
    for ki, k in enumerate(ks):
        rows = np.asarray(table.k) == k
        marker = _MARKERS[ki % len(_MARKERS)]
        for si, s in enumerate(table.strategies):
            b = table.bound[rows, si]
            f = table.flops[rows, si]
            ok = np.isfinite(b) & np.isfinite(f) & (f > 0)
            if not ok.any():
                continue
            lf = np.log2(f[ok])
            ax.errorbar(lf.mean(), b[ok].mean(), xerr=lf.std() if ok.sum() > 1 else None,
                        yerr=b[ok].std(ddof=1) if ok.sum() > 1 else None, marker=marker, ms=6, capsize=2,
                        color=_COLOURS.get(s, f"C{si}"), linestyle="none",
                        label=s if ki == 0 else None)
        ceiling = np.asarray(table.brute_force_accuracy)[rows]
        ceiling = ceiling[np.isfinite(ceiling)]
        if ceiling.size:
            ceilings.append((k, ceiling.mean()))
    x0 = ax.get_xlim()[0]
    for k, c in ceilings:
        ax.axhline(c, color="#444444", ls="--", lw=0.8)
        ax.annotate(f"brute-force accuracy K={k}", (x0, c), fontsize=6, va="bottom")
    if len(ks) > 1:
        for ki, k in enumerate(ks):
            ax.plot([], [], marker=_MARKERS[ki % len(_MARKERS)], color="k", ls="none", label=f"K={k}")
    ax.set_xlabel("proof cost: log2 FLOPs (counted)")
    ax.set_ylabel("certified accuracy (lower bound)")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title("Compact proofs: bound vs cost", fontsize=9)
    ax.legend(fontsize=6, loc="lower right")
    return ax


def plot_noise(noise, ax=None, **kwargs):
    """Singular values of EQKE and EVOU (log scale): one dominant direction or not."""
    ax = get_ax(ax)
    for name, sv in (("EQKE", noise.eqke_singular_values), ("EVOU", noise.evou_singular_values)):
        ax.semilogy(np.arange(1, sv.size + 1), sv, marker=".", label=name)
    ax.set_xlabel("index")
    ax.set_ylabel("singular value")
    ax.legend(fontsize=7)
    return ax
