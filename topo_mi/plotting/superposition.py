"""Figures of :mod:`topo_mi.superposition`, after Elhage et al. (2022) and Henighan et al. (2023)."""
from __future__ import annotations

import numpy as np

from topo_mi.plotting import get_ax, pyplot

#: Colours of the polytope labels (stacked dimensionality bars, arrows).
POLYTOPE_COLORS = {"dedicated": "#1f77b4", "antipodal": "#ff7f0e", "triangle": "#2ca02c", "pentagon": "#d62728",
                   "tetrahedron": "#9467bd", "square_antiprism": "#8c564b", "other": "#7f7f7f",
                   "not_learned": "#dddddd"}
#: The "sticky" dimensions per feature of the paper's plateaus.
STICKY = {"1": 1.0, "3/4": 0.75, "2/3": 2 / 3, "1/2": 0.5, "2/5": 0.4, "3/8": 0.375, "1/3": 1 / 3}


def _geometry(result):
    return getattr(result, "geometry", result)


def _density_label(result, k: int) -> str:
    S = getattr(result, "sparsity", None)
    if S is None:
        return f"#{k}"
    return f"1-S={1 - float(S[k]):.3g}"


def _arrows(ax, W, labels, title):
    lim = max(1.2, float(np.abs(W).max()) * 1.15)
    for i, (w, lab) in enumerate(zip(W, labels)):
        ax.plot([0, w[0]], [0, w[1]], color=POLYTOPE_COLORS.get(lab, "k"), lw=1.5)
        ax.plot([w[0]], [w[1]], "o", ms=3, color=POLYTOPE_COLORS.get(lab, "k"))
        if np.hypot(*w) > 0.1:
            ax.annotate(str(i), (w[0], w[1]), fontsize=6, xytext=(2, 2), textcoords="offset points")
    ax.set_xlim(-lim, lim)
    ax.set_ylim(-lim, lim)
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title, fontsize=8)


def plot_feature_geometry(result, ax=None, *, instances=None, max_instances: int = 10):
    """``W Wᵀ`` (the paper's ``WᵀW``, n × n) per instance and, for m = 2, the feature directions.

    ``result`` is a :class:`~topo_mi.superposition.ToyModels` or a
    :class:`~topo_mi.superposition.FeatureGeometry`. With ``ax`` only the first chosen instance is
    drawn there (its arrows for m = 2, else its Gram matrix); without, a grid (one column per
    instance; Gram matrices on top, arrows coloured by polytope below) is made and its Axes
    array returned.
    """
    g = _geometry(result)
    W = np.asarray(g.W)
    idx = list(range(min(W.shape[0], max_instances))) if instances is None else [int(i) for i in instances]
    if ax is not None:
        k = idx[0]
        if W.shape[2] == 2:
            _arrows(ax, W[k], g.polytopes[k], _density_label(result, k))
        else:
            G = W[k] @ W[k].T
            v = max(float(np.abs(G).max()), 1e-12)
            ax.imshow(G, cmap="RdBu_r", vmin=-v, vmax=v)
            ax.set_title(f"W Wᵀ, {_density_label(result, k)}", fontsize=8)
        return ax
    plt = pyplot()
    rows = 2 if W.shape[2] == 2 else 1
    fig, axes = plt.subplots(rows, len(idx), figsize=(1.6 * len(idx) + 0.6, 1.7 * rows + 0.4), squeeze=False,
                             constrained_layout=True)
    for c, k in enumerate(idx):
        G = W[k] @ W[k].T
        v = max(float(np.abs(G).max()), 1e-12)
        axes[0, c].imshow(G, cmap="RdBu_r", vmin=-v, vmax=v)
        axes[0, c].set_xticks([])
        axes[0, c].set_yticks([])
        axes[0, c].set_title(_density_label(result, k), fontsize=8)
        if rows == 2:
            _arrows(axes[1, c], W[k], g.polytopes[k], "")
    axes[0, 0].set_ylabel("W Wᵀ", fontsize=8)
    if rows == 2:
        axes[1, 0].set_ylabel("features in the hidden plane", fontsize=8)
    fig.suptitle(f"Feature geometry: n = {W.shape[1]} features in m = {W.shape[2]} dimensions", fontsize=9)
    return axes


def plot_dimensionality_bars(result, ax=None, *, column: int = 0):
    """Stacked bars: each instance's ``D_i``, one segment per feature, coloured by polytope.

    ``result`` is a :class:`~topo_mi.superposition.SuperpositionSweep` (its best seed per sparsity,
    importance column ``column``) or :class:`~topo_mi.superposition.ToyModels`. A bar's height is
    ``Σ_i D_i <= m``: how many dimensions the represented features fill.
    """
    ax = get_ax(ax, figsize=(6.5, 3.6))
    if hasattr(result, "best_seed"):
        D = np.asarray(result.dimensionality)[:, column]
        labels = [row[column] for row in result.polytopes]
        x_lab = [f"{1 / max(1 - s, 1e-12):.3g}" for s in result.sparsity]
        m = result.models.W.shape[2]
    else:
        g = _geometry(result)
        D, labels = np.asarray(g.dimensionality), g.polytopes
        S = getattr(result, "sparsity", None)
        x_lab = [f"{1 / max(1 - s, 1e-12):.3g}" for s in S] if S is not None else [str(k) for k in range(len(D))]
        m = g.W.shape[2]
    order = {name: r for r, name in enumerate(POLYTOPE_COLORS)}
    seen = set()
    for k in range(D.shape[0]):
        bottom = 0.0
        feats = sorted(range(D.shape[1]), key=lambda i: (order.get(labels[k][i], 99), i))
        for i in feats:
            lab = labels[k][i]
            if D[k, i] <= 0:
                continue
            ax.bar(k, D[k, i], bottom=bottom, color=POLYTOPE_COLORS.get(lab, "k"), edgecolor="white", lw=0.5,
                   label=lab if lab not in seen else None)
            seen.add(lab)
            bottom += D[k, i]
    ax.axhline(m, color="0.4", ls="--", lw=0.8)
    ax.set_ylim(0, 1.3 * m)
    ax.set_xticks(range(D.shape[0]))
    ax.set_xticklabels(x_lab, rotation=45, fontsize=7)
    ax.set_xlabel("1 / (1 − S)")
    ax.set_ylabel("Σ_i D_i (stacked per feature)")
    ax.set_title("Feature dimensionality per instance")
    if seen:
        ax.legend(fontsize="x-small", loc="upper center", ncol=4)
    return ax


def plot_phase_diagram(result, ax=None):
    """The n = 2, m = 1 phase diagram: density (rows) × the extra feature's importance (columns)."""
    from topo_mi.superposition.sweeps import PHASES, _PHASE_LETTER

    ax = get_ax(ax, figsize=(5.5, 4.0))
    colors = ["#dddddd", "#ff7f0e", "#1f77b4", "#9467bd"]
    code = np.array([[PHASES.index(p) for p in row] for row in result.phases])
    from matplotlib.colors import ListedColormap

    ax.imshow(code, cmap=ListedColormap(colors), vmin=-0.5, vmax=len(PHASES) - 0.5, aspect="auto")
    for i, row in enumerate(result.phases):
        for j, p in enumerate(row):
            ax.text(j, i, _PHASE_LETTER[p], ha="center", va="center", fontsize=9)
    ax.set_xticks(range(len(result.ratio)))
    ax.set_xticklabels([f"{r:g}" for r in result.ratio])
    ax.set_yticks(range(len(result.density)))
    ax.set_yticklabels([f"{d:g}" for d in result.density])
    ax.set_xlabel("importance of the extra feature r")
    ax.set_ylabel("feature density 1 − S")
    ax.set_title("n = 2, m = 1: X not learned, S antipodal, D dedicated, ? confused", fontsize=8)
    return ax


def plot_dimensions_per_feature(result, ax=None, *, column: int = 0):
    """``D*`` (line) and every feature's ``D_i`` (dots) against ``1/(1 − S)``, with the sticky fractions."""
    ax = get_ax(ax, figsize=(6.0, 4.0))
    x = 1.0 / np.maximum(1.0 - np.asarray(result.sparsity), 1e-12)
    D = np.asarray(result.dimensionality)[:, column]
    norms = np.asarray(result.norms)[:, column]
    for k in range(D.shape[0]):
        keep = norms[k] > 0.5
        ax.scatter(np.full(keep.sum(), x[k]), D[k, keep], s=4, color="C0", alpha=0.25, lw=0)
    ax.plot(x, np.asarray(result.dimensions_per_feature)[:, column], "o-", color="k", ms=3,
            label="D* = m / ‖W‖²_F")
    for name, v in STICKY.items():
        ax.axhline(v, color="0.75", lw=0.6, ls=":")
        ax.text(x.max(), v, f"{name} ", va="bottom", ha="right", fontsize=7, color="0.4")
    ax.set_xscale("log")
    ax.set_ylim(0, 1.1)
    ax.set_xlabel("1 / (1 − S)")
    ax.set_ylabel("dimensions per feature")
    ax.set_title("Dimensions per feature across sparsity")
    ax.legend(fontsize="small", loc="upper right")
    return ax


def plot_finite_dataset(result, ax=None):
    """The largest ``D_i`` (features) and ``D_{x_t}`` (training points) against ``T``; test loss on the right."""
    ax = get_ax(ax, figsize=(6.0, 4.0))
    T = np.asarray(result.T)
    ax.plot(T, result.feature_dim_max.mean(axis=1), "o-", color="C0", label="features: max D_i")
    ax.plot(T, result.data_dim_max.mean(axis=1), "s-", color="C3", label="data points: max D_x")
    ax.set_xscale("log")
    ax.set_xlabel("training points T")
    ax.set_ylabel("largest dimensionality")
    ax.set_title("Finite dataset: memorisation (data) vs generalisation (features)", fontsize=9)
    ax2 = ax.twinx()
    ax2.plot(T, result.test_loss.mean(axis=1), ":", color="0.3", label="test loss")
    ax2.set_yscale("log")
    ax2.set_ylabel("test loss")
    h1, l1 = ax.get_legend_handles_labels()
    h2, l2 = ax2.get_legend_handles_labels()
    ax.legend(h1 + h2, l1 + l2, fontsize="small", loc="center right")
    return ax


def plot_profile(result, ax=None):
    """The pipeline's figure.

    Top row (m = 2): the feature directions of each density's best seed, coloured by polytope.
    Bottom row: the stacked dimensionality bars, then ``D*`` across sparsity, the phase diagram and
    the finite-dataset curves when they were computed. With ``ax``, only the bars are drawn there.
    Returns the bottom row's Axes.
    """
    panels = [("bars", result.sweep)]
    if result.dimensions_curve is not None:
        panels.append(("dstar", result.dimensions_curve))
    if result.phase_diagram is not None:
        panels.append(("phase", result.phase_diagram))
    if result.finite is not None:
        panels.append(("finite", result.finite))
    draw = {"bars": plot_dimensionality_bars, "dstar": plot_dimensions_per_feature,
            "phase": plot_phase_diagram, "finite": plot_finite_dataset}
    if ax is not None:
        return plot_dimensionality_bars(result.sweep, ax=ax)
    plt = pyplot()
    sw = result.sweep
    arrows = sw.models.W.shape[2] == 2
    width = max(5.2 * len(panels), 1.5 * sw.sparsity.size)
    k_top, k_bot = sw.sparsity.size, len(panels)
    fig = plt.figure(figsize=(width, 4.4 + (2.0 if arrows else 0.0)))
    split = 2.0 / 6.4 if arrows else 0.0
    if arrows:
        top = fig.add_gridspec(1, k_top, top=0.95, bottom=1.0 - split + 0.02, left=0.05, right=0.98, wspace=0.15)
        for i in range(k_top):
            a = fig.add_subplot(top[0, i])
            k = sw.best_index(i, 0)
            _arrows(a, sw.models.W[k], sw.models.geometry.polytopes[k], f"1-S={1 - sw.sparsity[i]:.3g}")
    grid = fig.add_gridspec(1, k_bot, top=1.0 - split - 0.07, bottom=0.1, left=0.05, right=0.98, wspace=0.3)
    axes = np.array([fig.add_subplot(grid[0, j]) for j in range(k_bot)])
    for a, (kind, res) in zip(axes, panels):
        draw[kind](res, ax=a)
    return axes


__all__ = ["plot_feature_geometry", "plot_dimensionality_bars", "plot_phase_diagram", "plot_dimensions_per_feature",
           "plot_finite_dataset", "plot_profile", "POLYTOPE_COLORS", "STICKY"]
