"""Figures of :mod:`topo_mi.pipelines.comparison`: heatmaps, layer matching, model dendrograms."""
from __future__ import annotations

import numpy as np

from topo_mi.plotting import get_ax


def _method(result, method):
    if method is None:
        return result.methods[0]
    if method not in result.methods:
        from topo_mi._validation import unknown_name

        raise unknown_name("method", method, result.methods)
    return method


def plot_comparison(result, ax=None, *, method: str | None = None, marks: bool = True, annotate: bool | None = None,
                    cmap: str | None = None):
    """Heatmap of the layer x layer matrix of ``method``.

    Cells whose corrected p-value is below ``alpha`` get a star; each row's best match is framed.
    Distances use a reversed colour map so that similar pairs are always bright.
    """
    from matplotlib.patches import Rectangle

    m = _method(result, method)
    V = np.asarray(result.values[m])
    La, Lb = V.shape
    ax = get_ax(ax, figsize=(1.2 + 0.55 * Lb, 1.0 + 0.5 * La))
    hi = result.higher_is_similar[m]
    im = ax.imshow(V, cmap=cmap or ("viridis" if hi else "viridis_r"), aspect="auto")
    ax.figure.colorbar(im, ax=ax, shrink=0.8, label=m)
    ax.set_xticks(range(Lb), result.layers_b, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(La), result.layers_a, fontsize=8)
    ax.set_xlabel(result.names[1])
    ax.set_ylabel(result.names[0])
    if annotate is None:
        annotate = La * Lb <= 64
    sig = np.asarray(result.significant[m])
    best = {a: b for a, b in zip(result.layers_a, result.best_match_a[m])}
    lo, hi_v = np.nanmin(V), np.nanmax(V)
    mid = (lo + hi_v) / 2
    for i in range(La):
        j = result.layers_b.index(best[result.layers_a[i]])
        ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, edgecolor="white", linewidth=2))
        for jj in range(Lb):
            text = ""
            if annotate:
                text = f"{V[i, jj]:.2f}"
            if marks and sig[i, jj]:
                text += "*"
            if text:
                bright = (V[i, jj] > mid) == hi
                ax.text(jj, i, text, ha="center", va="center", fontsize=7,
                        color="black" if bright else "white")
    n_perm = result.n_perm.get(m, 0)
    extra = f", * {result.correction} p<{result.alpha:g} ({n_perm} perm.)" if marks and n_perm else ""
    ax.set_title(f"{m}{extra}", fontsize=9)
    return ax


def plot_layer_matching(result, ax=None, *, method: str | None = None):
    """Layers of the first model (left) joined to their best match in the second (right).

    Solid lines: best match of each left layer; dashed: best match of each right layer. Line width
    grows with similarity; stars mark significant pairs.
    """
    m = _method(result, method)
    V = np.asarray(result.values[m])
    La, Lb = V.shape
    ax = get_ax(ax, figsize=(4.0, 0.5 + 0.45 * max(La, Lb)))
    ya = np.linspace(1, 0, La) if La > 1 else np.array([0.5])
    yb = np.linspace(1, 0, Lb) if Lb > 1 else np.array([0.5])
    hi = result.higher_is_similar[m]
    s = V if hi else -V
    rng = np.nanmax(s) - np.nanmin(s)
    width = lambda v: 0.8 + 3.0 * ((v - np.nanmin(s)) / rng if rng > 0 else 1.0)
    sig = np.asarray(result.significant[m])
    for i, b in enumerate(result.best_match_a[m]):
        j = result.layers_b.index(b)
        ax.plot([0, 1], [ya[i], yb[j]], color="tab:blue", lw=width(s[i, j]), solid_capstyle="round")
        if sig[i, j]:
            ax.text(0.5, (ya[i] + yb[j]) / 2, "*", ha="center", va="bottom", color="tab:blue")
    for j, a in enumerate(result.best_match_b[m]):
        i = result.layers_a.index(a)
        ax.plot([0, 1], [ya[i], yb[j]], color="tab:orange", lw=width(s[i, j]) * 0.6, ls="--")
    for y, name in zip(ya, result.layers_a):
        ax.text(-0.04, y, name, ha="right", va="center", fontsize=8)
    for y, name in zip(yb, result.layers_b):
        ax.text(1.04, y, name, ha="left", va="center", fontsize=8)
    ax.scatter(np.zeros(La), ya, color="black", s=12, zorder=3)
    ax.scatter(np.ones(Lb), yb, color="black", s=12, zorder=3)
    ax.set_xlim(-0.45, 1.45)
    ax.set_ylim(-0.1, 1.1)
    ax.axis("off")
    ax.set_title(f"best-matching layers ({m}): {result.names[0]} → {result.names[1]} (solid), "
                 f"← (dashed)", fontsize=8)
    return ax


def _model_distance(result, m) -> np.ndarray:
    S = np.asarray(result.similarity[m], dtype=np.float64)
    D = (1.0 - S) if result.higher_is_similar[m] else S.copy()
    D = np.maximum((D + D.T) / 2, 0.0)
    np.fill_diagonal(D, 0.0)
    return D


def plot_dendrogram(result, ax=None, *, method: str | None = None, linkage: str = "average"):
    """Hierarchical clustering of the models (``1 - similarity`` or the distance itself)."""
    from scipy.cluster.hierarchy import dendrogram, linkage as make_linkage
    from scipy.spatial.distance import squareform

    m = _method(result, method)
    D = _model_distance(result, m)
    ax = get_ax(ax, figsize=(1.5 + 0.5 * len(result.names), 3.5))
    Z = make_linkage(squareform(D, checks=False), method=linkage)
    dendrogram(Z, labels=list(result.names), ax=ax, leaf_rotation=60, color_threshold=None)
    ax.set_ylabel(f"1 - {m}" if result.higher_is_similar[m] else m)
    ax.set_title(f"models clustered by {m} over {len(result.layers)} layers", fontsize=9)
    return ax


def plot_model_matrix(result, ax=None, *, method: str | None = None):
    """Heatmap of the N x N model matrix of ``method``."""
    m = _method(result, method)
    S = np.asarray(result.similarity[m])
    N = S.shape[0]
    ax = get_ax(ax, figsize=(1.5 + 0.5 * N, 1.0 + 0.5 * N))
    im = ax.imshow(S, cmap="viridis" if result.higher_is_similar[m] else "viridis_r")
    ax.figure.colorbar(im, ax=ax, shrink=0.8, label=m)
    ax.set_xticks(range(N), result.names, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(N), result.names, fontsize=8)
    return ax


__all__ = ["plot_comparison", "plot_layer_matching", "plot_dendrogram", "plot_model_matrix"]
