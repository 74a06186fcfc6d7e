"""Figures of sparse dictionaries: feature-density histograms, latent activation histograms,
relative decoder norms (crosscoder model diffing), the dictionary profile."""
from __future__ import annotations

import numpy as np

from topo_mi.plotting import get_ax


def plot_density(metrics, ax=None, *, bins: int = 30, label: str | None = None):
    """Histogram of log10 feature density (fraction of samples a latent fires on); dead latents noted."""
    ax = get_ax(ax)
    counts, edges = metrics.density_histogram(bins)
    ax.stairs(counts, edges, fill=True, alpha=0.6, label=label)
    n_dead = int(round(metrics.dead_fraction * metrics.d_sae))
    ax.set_xlabel("log10 feature density")
    ax.set_ylabel("latents")
    ax.set_title(f"{metrics.kind}: L0 {metrics.l0:.1f}, EV {metrics.explained_variance['ratio_of_sums_centred']:.3f}, "
                 f"{n_dead} dead", fontsize=9)
    return ax


def plot_top_examples(result, ax=None, *, max_latents: int = 6):
    """Activation histograms (non-zero values) of the first ``max_latents`` latents."""
    ax = get_ax(ax)
    for i in range(min(max_latents, len(result.latents))):
        ax.stairs(result.histograms[i], result.bin_edges[i], label=f"latent {int(result.latents[i])}")
    ax.set_yscale("log")
    ax.set_xlabel("activation (non-zero)")
    ax.set_ylabel("samples")
    ax.legend(fontsize=7)
    return ax


def plot_relative_norms(values, ax=None, *, bins: int = 40, labels=("A", "B")):
    """Histogram of per-latent relative decoder norms ``||W_A|| / (||W_A|| + ||W_B||)``."""
    ax = get_ax(ax)
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    ax.hist(v, bins=bins, range=(0.0, 1.0), color="C2", alpha=0.8)
    ax.set_xlabel(f"relative decoder norm ({labels[1]}-only 0 ... shared 0.5 ... {labels[0]}-only 1)")
    ax.set_ylabel("latents")
    return ax


def plot_profile(profile, ax=None):
    """The dictionary profile: feature-density histogram with the headline metrics in the title."""
    return plot_density(profile.metrics, ax=ax)
