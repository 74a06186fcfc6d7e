"""Similarity and distance between two representations of the same samples.

Every index takes two arrays ``X`` (n_samples, d_x) and ``Y`` (n_samples, d_y) whose row ``i`` is
the same input, and returns a float:

- :func:`cka` (linear / RBF, optionally debiased) and :func:`minibatch_cka` — Kornblith et al.
  2019; Nguyen et al. 2021
- :func:`cca` (ρ̄ or R²_CCA), :func:`canonical_correlations`, :func:`svcca`, :func:`pwcca`
- :func:`procrustes` (a distance), :func:`rsa`, :func:`knn_overlap`
- :func:`diagram_distance` (bottleneck / Wasserstein between Rips persistence diagrams) and
  :func:`rtd` (Representation Topology Divergence, Barannikov et al. 2022) — both distances
- :func:`hsic`, :func:`gram_linear`, :func:`gram_rbf`, :func:`center_gram` — building blocks
- :func:`permutation_pvalues`, :func:`adjust_pvalues`, :func:`percentile_interval`, :func:`jackknife_interval` — statistics

Layer x layer matrices with permutation tests, bootstrap intervals and corrections:
:func:`topo_mi.pipelines.compare` and :func:`topo_mi.pipelines.compare_many`.
"""
from topo_mi.compare._cca import canonical_correlations, cca, procrustes, pwcca, svcca
from topo_mi.compare._cka import center_gram, cka, gram_linear, gram_rbf, hsic, minibatch_cka
from topo_mi.compare._registry import METHODS, Method, get_method
from topo_mi.compare._rsa import knn_overlap, rsa
from topo_mi.compare._stats import (adjust_pvalues, jackknife_groups, jackknife_interval, percentile_interval,
                                    permutation_pvalues)
from topo_mi.compare._topological import diagram_distance, rtd, rtd_barcode

__all__ = [
    "cka", "minibatch_cka", "hsic", "gram_linear", "gram_rbf", "center_gram",
    "cca", "canonical_correlations", "svcca", "pwcca", "procrustes", "rsa", "knn_overlap",
    "diagram_distance", "rtd", "rtd_barcode",
    "permutation_pvalues", "adjust_pvalues", "percentile_interval", "jackknife_interval", "jackknife_groups",
    "METHODS", "Method", "get_method",
]
