"""Vietoris–Rips persistence of activations: diagrams, Betti curves, landmarks, distances.

- :func:`persistence` — diagrams H_0..H_k of a point cloud, a layer or a distance matrix, with
  ripser / gudhi / giotto-ph backends, any prime field, certified max–min landmarks
- :class:`PersistenceResult` — the canonical diagrams plus Betti numbers, curves and summaries
- :func:`betti_curve`, :func:`betti_numbers`, :func:`persistence_landscape`,
  :func:`persistence_image`, :func:`persistence_entropy`, :func:`total_persistence`
- :func:`bottleneck`, :func:`wasserstein`, :func:`distance_matrix` — diagram distances
- :func:`knn_geodesic_distances` — Naitzat et al.'s kNN hop distance

Convention: a bar ``[b, d)`` is alive at scale ``s`` iff ``b <= s < d``, i.e. Betti numbers at
``s`` are those of the complex ``{σ : diam σ <= s}``.

gudhi, ripser and scikit-learn are imported only when a computation needs them.
"""
from topo_mi.topology._backends import BACKENDS
from topo_mi.topology._distances import bottleneck, distance_matrix, wasserstein
from topo_mi.topology._metrics import METRICS, knn_geodesic_distances
from topo_mi.topology._persistence import persistence
from topo_mi.topology._result import PersistenceResult
from topo_mi.topology._vectorize import (
    betti_curve, betti_numbers, longest_bars, n_bars_longer_than, persistence_entropy, persistence_image,
    persistence_landscape, total_persistence,
)

__all__ = [
    "persistence", "PersistenceResult", "betti_curve", "betti_numbers", "persistence_landscape",
    "persistence_image", "persistence_entropy", "total_persistence", "longest_bars", "n_bars_longer_than",
    "bottleneck", "wasserstein", "distance_matrix", "knn_geodesic_distances", "BACKENDS", "METRICS",
]
