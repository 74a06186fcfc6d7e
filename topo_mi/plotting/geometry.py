"""Figures of the geometry results: spectra, intrinsic dimension (fits and across depth),
embeddings coloured by label, and the per-layer panel of a :class:`GeometryProfile`.
"""
from __future__ import annotations

import numpy as np

from topo_mi.plotting import get_ax, pyplot


# Ratios below this (relative to the largest) are round-off of zero singular values: not drawn.
_FLOOR = 1e-14


def _visible(y: np.ndarray) -> np.ndarray:
    return y > (_FLOOR * y.max() if y.size and y.max() > 0 else 0.0)


def _depth_colors(n: int):
    plt = pyplot()
    cmap = plt.get_cmap("viridis")
    return [cmap(x) for x in np.linspace(0.05, 0.9, max(n, 1))]


def plot_spectrum(spectrum, ax=None, *, normalize: bool = True, label: str | None = None, **kwargs):
    """Explained-variance ratio (``normalize``) or singular values against the component index,
    on a log scale. ``spectrum``: a :class:`~topo_mi.geometry.SpectrumResult`."""
    ax = get_ax(ax)
    y = spectrum.explained_variance_ratio if normalize else spectrum.singular_values
    x = np.arange(1, y.size + 1)
    pos = _visible(y)
    ax.plot(x[pos], y[pos], label=label, **kwargs)
    ax.set_yscale("log")
    ax.set_xlabel("component")
    ax.set_ylabel("explained variance ratio" if normalize else "singular value")
    if label is None:
        ax.set_title(f"PR = {spectrum.participation_ratio:.3g}, erank = {spectrum.effective_rank:.3g}")
    return ax


def plot_spectra(profile, ax=None, *, normalize: bool = True, max_components: int | None = None):
    """Singular value spectra of every layer of a :class:`GeometryProfile` (colour = depth)."""
    ax = get_ax(ax)
    for res, color in zip(profile.results, _depth_colors(len(profile.results))):
        spec = res.spectrum
        y = spec.explained_variance_ratio if normalize else spec.singular_values
        if max_components is not None:
            y = y[:max_components]
        x = np.arange(1, y.size + 1)
        pos = _visible(y)
        ax.plot(x[pos], y[pos], color=color, label=res.layer)
    ax.set_yscale("log")
    ax.set_xscale("log")
    ax.set_xlabel("component")
    ax.set_ylabel("explained variance ratio" if normalize else "singular value")
    ax.set_title("singular value spectra")
    if profile.results:
        ax.legend(fontsize="small", ncol=2 if len(profile.results) > 6 else 1)
    return ax


def plot_id_fit(result, ax=None):
    """What an :class:`~topo_mi.geometry.IDResult` was read from: the TwoNN line through the
    origin (Facco et al.), the MLE estimate against ``k``, or the cumulative PCA variance."""
    ax = get_ax(ax)
    x, y = result.fit_x, result.fit_y
    if result.method == "twonn":
        frac = result.params.get("fit_fraction", 0.9)
        n_fit = int(np.floor(frac * (x.size + 1)))
        ax.plot(x, y, ".", ms=2, color="0.6", label="all points")
        ax.plot(x[:n_fit], y[:n_fit], ".", ms=2, color="C0", label=f"fit ({frac:.0%})")
        xs = np.array([0.0, x[:n_fit].max() if n_fit else 1.0])
        ax.plot(xs, result.value * xs, color="C3", label=f"d = {result.value:.3g}")
        ax.set_xlabel(r"$\log \mu$")
        ax.set_ylabel(r"$-\log(1 - F(\mu))$")
    elif result.method == "mle":
        ax.plot(x, y, "o-", label="MLE at k")
        ax.axhline(result.value, color="C3", label=f"mean = {result.value:.3g}")
        ax.set_xlabel("k (neighbours)")
        ax.set_ylabel("estimate")
    else:
        ax.plot(x, y, "-")
        thr = result.params.get("threshold", 0.9)
        ax.axhline(thr, color="0.5", ls="--")
        ax.axvline(result.value, color="C3", label=f"{result.value:.0f} components")
        ax.set_xlabel("components")
        ax.set_ylabel("cumulative explained variance")
    err = "" if not np.isfinite(result.error) else f" ± {result.error:.2g}"
    ax.set_title(f"{result.method}: {result.value:.3g}{err}")
    ax.legend(fontsize="small")
    return ax


def plot_id_profile(profile, ax=None, *, show_pca: bool = False):
    """Intrinsic dimension across depth with error bars: the "hunchback" plot of Ansuini et al.
    (NeurIPS 2019). ``show_pca`` adds the 90 %-variance PCA dimension on a second axis."""
    ax = get_ax(ax, figsize=(max(4.0, 0.8 * len(profile.layers) + 2), 3.5))
    x = np.arange(len(profile.layers))
    ids, err = profile.ids, profile.id_errors
    ax.errorbar(x, ids, yerr=np.where(np.isfinite(err), err, 0.0), fmt="o-", capsize=3, color="C0",
                label="intrinsic dimension")
    ax.set_xticks(x)
    ax.set_xticklabels(profile.layers, rotation=45 if len(x) > 6 else 0, ha="right" if len(x) > 6 else "center")
    ax.set_xlabel("layer")
    method = profile.results[0].intrinsic_dimension.method if profile.results else ""
    ax.set_ylabel(f"ID ({method})")
    ax.set_title("intrinsic dimension across depth")
    if show_pca:
        ax2 = ax.twinx()
        ax2.plot(x, profile.pca_dimensions, "s--", color="C1", label="PCA (90 %)")
        ax2.set_ylabel("PCA dimension (90 % variance)", color="C1")
    return ax


def plot_embedding(result, ax=None, *, labels=None, s: float = 4.0, legend: bool = True, title: bool = True):
    """A 2-D embedding (:class:`~topo_mi.geometry.EmbeddingResult` or an array) coloured by label."""
    ax = get_ax(ax)
    E = np.asarray(getattr(result, "embedding", result))
    if E.ndim == 1 or E.shape[1] == 1:
        E = np.column_stack([E.ravel(), np.zeros(E.shape[0])])
    if labels is None:
        ax.scatter(E[:, 0], E[:, 1], s=s, color="C0", linewidths=0)
    else:
        labels = np.asarray(labels)
        classes = np.unique(labels)
        if labels.dtype.kind in "fc" and classes.size > 20:
            sc = ax.scatter(E[:, 0], E[:, 1], s=s, c=labels, cmap="viridis", linewidths=0)
            ax.figure.colorbar(sc, ax=ax)
        else:
            cmap = pyplot().get_cmap("tab10" if classes.size <= 10 else "tab20")
            for i, c in enumerate(classes):
                m = labels == c
                ax.scatter(E[m, 0], E[m, 1], s=s, color=cmap(i % cmap.N), label=str(c), linewidths=0)
            if legend and classes.size <= 20:
                ax.legend(fontsize="x-small", markerscale=3, loc="best", ncol=2 if classes.size > 5 else 1)
    ax.set_xticks([])
    ax.set_yticks([])
    if title and hasattr(result, "method"):
        ax.set_title(f"{result.method}: stress {result.stress:.2f}, T {result.trustworthiness:.3f}",
                     fontsize="small")
    return ax


def plot_layer(result, ax=None, *, labels=None):
    """One :class:`LayerGeometry`: its embedding when there is one, else its spectrum."""
    if result.embedding is not None:
        ax = plot_embedding(result.embedding, ax=ax, labels=labels)
        ax.set_title(f"{result.layer}: ID {result.intrinsic_dimension.value:.3g}, "
                     f"T {result.embedding.trustworthiness:.3f}", fontsize="small")
        return ax
    ax = plot_spectrum(result.spectrum, ax=ax)
    ax.set_title(f"{result.layer}: rank@eps {result.rank.rank}", fontsize="small")
    return ax


def plot_panel(profile, *, figsize=None, labels=None):
    """The per-layer panel of a :class:`GeometryProfile`; returns the Figure.

    Top row: singular value spectra, intrinsic dimension across depth, and rank@eps with the
    participation ratio. Bottom row: one embedding per layer, coloured by label.
    """
    plt = pyplot()
    n = max(len(profile.results), 1)
    ncols = max(n, 3)
    fig = plt.figure(figsize=figsize or (2.6 * ncols, 5.6), constrained_layout=True)
    has_emb = any(r.embedding is not None for r in profile.results)
    gs = fig.add_gridspec(2 if has_emb else 1, ncols)
    parts = np.array_split(np.arange(ncols), 3)
    ax_spec = fig.add_subplot(gs[0, parts[0][0]:parts[0][-1] + 1])
    ax_id = fig.add_subplot(gs[0, parts[1][0]:parts[1][-1] + 1])
    ax_rank = fig.add_subplot(gs[0, parts[2][0]:parts[2][-1] + 1])
    plot_spectra(profile, ax=ax_spec)
    plot_id_profile(profile, ax=ax_id)
    x = np.arange(len(profile.layers))
    eps = profile.params.get("eps")
    ax_rank.plot(x, profile.ranks, "o-", color="C2", label=f"rank@eps={eps:g}" if eps is not None else "rank")
    ax_rank.plot(x, profile.participation_ratios, "s--", color="C1", label="participation ratio")
    ax_rank.set_xticks(x)
    ax_rank.set_xticklabels(profile.layers, rotation=45 if len(x) > 6 else 0)
    ax_rank.set_title("linear dimension")
    ax_rank.legend(fontsize="small")
    if has_emb:
        labels = profile.labels if labels is None else labels
        for i, res in enumerate(profile.results):
            ax = fig.add_subplot(gs[1, i])
            if res.embedding is None:
                ax.set_axis_off()
                continue
            plot_embedding(res.embedding, ax=ax, labels=labels, legend=(i == len(profile.results) - 1), title=False)
            ax.set_title(f"{res.layer}\nstress {res.embedding.stress:.2f}, T {res.embedding.trustworthiness:.3f}",
                         fontsize="small")
    return fig


__all__ = ["plot_spectrum", "plot_spectra", "plot_id_fit", "plot_id_profile", "plot_embedding", "plot_layer",
           "plot_panel"]
