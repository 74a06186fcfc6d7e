"""Toy models of superposition (Elhage et al., 2022): many instances at once, sweeps, phase diagrams,
feature geometry.

- :func:`train_toy_models` — ``n_instances`` models in one batched computation (each its own
  sparsity, importance and seed); :class:`ToyModels`
- :func:`feature_geometry` — ``‖W_i‖``, ``D_i``, ``D*``, interference, Gram rank, polytopes
- :func:`sweep` — a sparsity × importance grid (:class:`SuperpositionSweep`)
- :func:`phase_diagram` — the n = 2, m = 1 diagram (:class:`PhaseDiagram`)
- :func:`dimensions_per_feature_curve` — ``D*`` against ``1/(1 − S)`` (the plateaus)
- :func:`expected_loss_2_1` — the exact expected loss of the biasless n = 2, m = 1 model
- :func:`finite_dataset` — T training points: memorisation and generalisation

Importing :mod:`topo_mi.superposition` is light; the names that need torch import it on use.
"""
from __future__ import annotations

from topo_mi._lazy import lazy_exports

_ATTRS = {
    "POLYTOPES": "geometry", "FeatureGeometry": "geometry", "feature_geometry": "geometry",
    "feature_dimensionality": "geometry", "classify_polytopes": "geometry",
    "ToyModels": "training", "ToyModelInstances": "training", "train_toy_models": "training",
    "feature_batch": "training", "estimate_bytes": "training",
    "expected_loss_2_1": "exact", "monte_carlo_loss_2_1": "exact",
    "SuperpositionSweep": "sweeps", "sweep": "sweeps", "PhaseDiagram": "sweeps", "phase_diagram": "sweeps",
    "classify_2_1": "sweeps", "dimensions_per_feature_curve": "sweeps", "PHASES": "sweeps",
    "FiniteDatasetResult": "finite", "finite_dataset": "finite", "data_dimensionality": "finite",
}

__getattr__, __dir__, __all__ = lazy_exports(__name__, _ATTRS, (), prefix="topo_mi.superposition.")
