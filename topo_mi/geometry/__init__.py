"""Geometry of representations: spectra and rank, embeddings and their faithfulness, intrinsic dimension.

The framework's first method, activation space decomposition (``A`` in R^{n x d}: n samples over
d units of one layer):

- spectral route — :func:`spectrum` (singular values, explained variance, participation ratio,
  effective rank) and :func:`rank_at` (smallest ``r`` with ``||A - A_r||_F^2 <= eps``);
- nonlinear route — :func:`embed` (UMAP, Isomap, metric MDS, PCA, spectral, t-SNE) returning an
  :class:`EmbeddingResult` with its :func:`stress` (``L_top`` and Kruskal's stress-1),
  :func:`trustworthiness`, :func:`continuity` and :func:`knn_preservation`;
- :func:`intrinsic_dimension` — TwoNN (Facco et al. 2017, Ansuini et al. 2019 conventions),
  MLE (Levina & Bickel 2004) and PCA, with resampling error bars.

Layer-by-layer profiles: :func:`topo_mi.pipelines.geometry_profile`. Plots:
:mod:`topo_mi.plotting.geometry`.

scikit-learn and umap-learn are imported only when a function needs them.

>>> from topo_mi import geometry                                      # doctest: +SKIP
>>> geometry.rank_at(acts["act2"], 0.01).rank                          # doctest: +SKIP
>>> geometry.intrinsic_dimension(acts["act2"], n_boot=50, seed=0)      # doctest: +SKIP
"""
from __future__ import annotations

from topo_mi.geometry._embed import EMBED_METHODS, EmbeddingResult, classical_mds, embed
from topo_mi.geometry._intrinsic import ID_METHODS, DuplicatePointsWarning, IDResult, intrinsic_dimension
from topo_mi.geometry._quality import continuity, knn_preservation, stress, trustworthiness
from topo_mi.geometry._spectral import SPECTRUM_METHODS, RankResult, SpectrumResult, rank_at, spectrum

__all__ = [
    "spectrum", "rank_at", "SpectrumResult", "RankResult",
    "embed", "EmbeddingResult", "classical_mds",
    "stress", "trustworthiness", "continuity", "knn_preservation",
    "intrinsic_dimension", "IDResult", "DuplicatePointsWarning",
    "SPECTRUM_METHODS", "EMBED_METHODS", "ID_METHODS",
]
