"""Figures of persistence: diagrams, barcodes, Betti curves, Betti profiles, distance heatmaps."""
from __future__ import annotations

import numpy as np

from topo_mi.plotting import get_ax

_COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#7f7f7f")


def _diagrams(obj):
    from topo_mi.topology._vectorize import as_diagram_list

    return as_diagram_list(obj)


def _dims(dgms, dims):
    return list(range(len(dgms))) if dims is None else [int(d) for d in dims]


def plot_diagram(result, ax=None, *, dims=None, title: str | None = None, size: float = 14.0):
    """Persistence diagram: births on x, deaths on y, the diagonal, essential classes on a top line.

    Parameters
    ----------
    result : PersistenceResult or list of (n_k, 2) arrays
    dims : list of int, optional
        Dimensions to draw (default all).
    """
    ax = get_ax(ax, figsize=(4.6, 4.4))
    dgms = _diagrams(result)
    dims = _dims(dgms, dims)
    finite = np.concatenate([d[np.isfinite(d)] for d in dgms] + [np.zeros(1)])
    top = float(finite.max()) if finite.size else 1.0
    thr = getattr(result, "threshold", np.inf)
    if np.isfinite(thr):
        top = max(top, float(thr))
    top = top if top > 0 else 1.0
    inf_y = top * 1.1
    lo = min(0.0, float(finite.min()))
    ax.plot([lo, inf_y], [lo, inf_y], color="0.5", lw=0.8, zorder=0)
    ax.axhline(inf_y, color="0.6", lw=0.8, ls="--", zorder=0)
    any_inf = False
    for k in dims:
        if k >= len(dgms):
            continue
        d = dgms[k]
        ess = ~np.isfinite(d[:, 1])
        any_inf |= bool(ess.any())
        color = _COLORS[k % len(_COLORS)]
        ax.scatter(d[~ess, 0], d[~ess, 1], s=size, color=color, alpha=0.75, label=f"H{k} ({len(d)})",
                   edgecolors="none")
        if ess.any():
            ax.scatter(d[ess, 0], np.full(int(ess.sum()), inf_y), s=size * 1.6, color=color, marker="^",
                       edgecolors="k", linewidths=0.4)
    ticks = [t for t in ax.get_yticks() if lo <= t < inf_y * 0.97]
    ax.set_yticks(ticks + [inf_y])
    ax.set_yticklabels([f"{t:g}" for t in ticks] + ["∞" if not np.isfinite(thr) else f"∞ (>{thr:g})"])
    ax.set_xlim(lo - 0.02 * inf_y, inf_y * 1.02)
    ax.set_ylim(lo - 0.02 * inf_y, inf_y * 1.04)
    ax.set_xlabel("birth")
    ax.set_ylabel("death")
    ax.legend(loc="lower right", fontsize=8, frameon=False)
    ax.set_title(title if title is not None else _default_title(result, "persistence diagram"), fontsize=9)
    return ax


def _default_title(result, what):
    if not hasattr(result, "metric"):
        return what
    extra = ""
    if getattr(result, "landmark_indices", None) is not None:
        extra = f", {result.n_landmarks} landmarks, bound {result.bottleneck_bound:.3g}"
    return f"{what} ({result.metric}, Z/{result.coeff}{extra})"


def plot_barcode(result, ax=None, *, dims=None, max_bars: int | None = 60, title: str | None = None):
    """Barcode: one horizontal bar per class, grouped by dimension, longest first; essential bars
    end in an arrow at the right edge."""
    ax = get_ax(ax, figsize=(5.5, 4.0))
    dgms = _diagrams(result)
    dims = _dims(dgms, dims)
    finite = np.concatenate([d[np.isfinite(d)] for d in dgms] + [np.zeros(1)])
    right = float(finite.max()) * 1.1 if finite.size and finite.max() > 0 else 1.0
    y = 0
    yticks, ylabels = [], []
    for k in dims:
        if k >= len(dgms):
            continue
        d = dgms[k]
        pers = d[:, 1] - d[:, 0]
        order = np.lexsort((d[:, 0], -pers))
        shown = order if max_bars is None else order[:max_bars]
        color = _COLORS[k % len(_COLORS)]
        start = y
        for b, e in d[shown]:
            if np.isfinite(e):
                ax.plot([b, e], [y, y], color=color, lw=1.6, solid_capstyle="butt")
            else:
                ax.plot([b, right], [y, y], color=color, lw=1.6)
                ax.plot([right], [y], marker=">", color=color, ms=4)
            y += 1
        if len(shown) < len(d):
            ax.text(right, y, f"+{len(d) - len(shown)} shorter", fontsize=7, ha="right", va="bottom")
            y += 1
        yticks.append((start + y - 1) / 2.0)
        ylabels.append(f"H{k}")
        y += 2
    ax.set_yticks(yticks)
    ax.set_yticklabels(ylabels)
    ax.invert_yaxis()
    ax.set_xlim(0, right * 1.03)
    ax.set_xlabel("scale ε")
    ax.set_title(title if title is not None else _default_title(result, "barcode"), fontsize=9)
    return ax


def plot_betti_curves(result, ax=None, *, grid=None, dims=None, title: str | None = None):
    """Betti curves β_k(ε) of one result (step functions, ``b <= ε < d`` convention)."""
    from topo_mi.topology._vectorize import betti_curve

    ax = get_ax(ax, figsize=(5.0, 3.6))
    dgms = _diagrams(result)
    dims = _dims(dgms, dims)
    if grid is None:
        finite = np.concatenate([d[np.isfinite(d)] for d in dgms] + [np.zeros(1)])
        hi = float(finite.max()) * 1.1 if finite.max() > 0 else 1.0
        thr = getattr(result, "threshold", np.inf)
        if np.isfinite(thr):
            hi = min(hi, float(thr))
        grid = np.linspace(0.0, hi, 400)
    grid = np.asarray(grid, dtype=float)
    curves = betti_curve(dgms, grid)
    for k in dims:
        if k < len(curves):
            ax.step(grid, curves[k], where="post", color=_COLORS[k % len(_COLORS)], label=f"β{k}")
    ax.set_xlabel("scale ε")
    ax.set_ylabel("Betti number")
    ax.set_yscale("symlog", linthresh=10)
    ax.legend(fontsize=8, frameon=False)
    ax.set_title(title if title is not None else _default_title(result, "Betti curves"), fontsize=9)
    return ax


def plot_betti_profile(profile, ax=None, *, dims=None, show_complexity: bool = True, title: str | None = None):
    """Betti numbers across depth at the profile's scale, with bootstrap bands when present."""
    ax = get_ax(ax, figsize=(6.0, 3.8))
    x = np.arange(len(profile.layers))
    B = np.asarray(profile.betti_numbers)
    dims = list(range(B.shape[1])) if dims is None else list(dims)
    for k in dims:
        color = _COLORS[k % len(_COLORS)]
        ax.plot(x, B[:, k], marker="o", color=color, label=f"β{k}")
        if profile.betti_numbers_lo is not None:
            ax.fill_between(x, profile.betti_numbers_lo[:, k], profile.betti_numbers_hi[:, k], color=color,
                            alpha=0.2, lw=0)
    if show_complexity:
        ax.plot(x, profile.complexity, marker="s", color="k", ls="--", lw=1, label="Σβ")
        if profile.complexity_lo is not None:
            ax.fill_between(x, profile.complexity_lo, profile.complexity_hi, color="k", alpha=0.1, lw=0)
    from matplotlib.ticker import MaxNLocator

    from topo_mi.pipelines.topology import layer_scales

    ax.yaxis.set_major_locator(MaxNLocator(integer=True))  # Betti numbers are counts
    scales = layer_scales(profile)
    ax.set_xticks(x)
    ax.set_xticklabels(profile.layers, rotation=30, ha="right", fontsize=8)
    if np.all(scales == scales[0]):
        ax.set_ylabel(f"Betti number at ε = {scales[0]:g}")
    else:  # each layer at its own scale: shown under its name
        ax.set_xticklabels([f"{n}\nε={s:.3g}" for n, s in zip(profile.layers, scales)], rotation=30, ha="right",
                           fontsize=7)
        ax.set_ylabel("Betti number at each layer's ε")
    ax.legend(fontsize=8, frameon=False)
    ci = f", {int(round(100 * profile.ci))}% bands over {profile.n_boot} resamples" if profile.n_boot else ""
    rule = (profile.params or {}).get("scale_rule")
    if title is None:
        title = f"Betti numbers across depth ({profile.params.get('metric')}{ci})"
        if rule:
            title += f"\nscale: {rule}"
    ax.set_title(title, fontsize=9)
    return ax


def plot_profile_curves(profile, ax=None, *, dim: int = 1, title: str | None = None):
    """Heatmap of β_dim(ε) (layers × shared grid)."""
    ax = get_ax(ax, figsize=(6.0, 3.6))
    C = np.asarray(profile.betti_curves)[:, dim, :]
    g = np.asarray(profile.grid)
    im = ax.imshow(C, aspect="auto", origin="lower", cmap="viridis", interpolation="nearest",
                   extent=(g[0], g[-1], -0.5, len(profile.layers) - 0.5))
    ax.set_yticks(np.arange(len(profile.layers)))
    ax.set_yticklabels(profile.layers, fontsize=8)
    ax.set_xlabel("scale ε")
    ax.figure.colorbar(im, ax=ax, label=f"β{dim}")
    ax.set_title(title if title is not None else f"β{dim}(ε) across depth", fontsize=9)
    return ax


def plot_distance_heatmap(matrix, ax=None, *, labels=None, title: str | None = None, cmap: str = "magma_r",
                          annotate: bool | None = None):
    """Heatmap of a layer × layer (or model × model) diagram-distance matrix."""
    ax = get_ax(ax, figsize=(4.8, 4.2))
    M = np.asarray(matrix, dtype=float)
    shown = np.where(np.isfinite(M), M, np.nan)
    im = ax.imshow(shown, cmap=cmap, interpolation="nearest")
    m = M.shape[0]
    labels = [str(i) for i in range(m)] if labels is None else [str(s) for s in labels]
    ax.set_xticks(range(m))
    ax.set_yticks(range(m))
    ax.set_xticklabels(labels, rotation=45, ha="right", fontsize=8)
    ax.set_yticklabels(labels, fontsize=8)
    if annotate is None:
        annotate = m <= 12
    if annotate:
        vmax = np.nanmax(shown) if np.isfinite(shown).any() else 1.0
        for i in range(m):
            for j in range(m):
                v = M[i, j]
                txt = "∞" if np.isinf(v) else f"{v:.2g}"
                ax.text(j, i, txt, ha="center", va="center", fontsize=7,
                        color="w" if np.isfinite(v) and v > 0.6 * vmax else "k")
    ax.figure.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    ax.set_title(title if title is not None else "diagram distances", fontsize=9)
    return ax


def plot_layer_distances(profile, ax=None, *, metric: str = "bottleneck", dim: int | None = None, **kwargs):
    """Layer × layer diagram distances of a :class:`~topo_mi.pipelines.topology.BettiProfile`."""
    M = profile.distance_matrix(metric=metric, dim=dim)
    what = "all dimensions" if dim is None else f"H{dim}"
    return plot_distance_heatmap(M, ax, labels=profile.layers,
                                 title=kwargs.pop("title", f"{metric} distance between layers ({what})"), **kwargs)
