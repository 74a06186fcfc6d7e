"""Causal abstraction (framework §2): intervene on a network and measure what a concept does.

- :func:`intervene` — a context manager editing layer outputs during forwards, with the ops
  :class:`Zero`, :class:`Mean`, :class:`Resample`, :class:`Patch`, :class:`Steer`, :class:`Project`,
  :class:`ProjectOut`, :class:`Erase`, :class:`Replace` (restricted to units/positions, composed with ``>>``)
- :func:`cache_outputs` — a layer's full outputs (a ``Patch`` source)
- :func:`patch_sweep` — activation patching over many (layer, position) sites, many sites per forward
- :func:`concept_direction`, :func:`erase_concept` — concept directions (mean difference, logistic
  probe, LDA) and exact LEACE erasure
- :func:`delta_n`, :func:`variance_ratio`, :func:`sensitivity` — the framework's ΔN, R_c and τ_c
"""
from __future__ import annotations

from topo_mi._lazy import lazy_exports

_ATTRS = {
    **{name: "topo_mi.causal._ops" for name in ("Op", "Compose", "Zero", "Mean", "Resample", "Patch", "Steer",
                                                "Project", "ProjectOut", "Erase", "Replace")},
    "intervene": "topo_mi.causal._intervene",
    "Intervention": "topo_mi.causal._intervene",
    "cache_outputs": "topo_mi.causal._intervene",
    "patch_sweep": "topo_mi.causal.patching",
    "PatchSweepResult": "topo_mi.causal.patching",
    "concept_direction": "topo_mi.causal.concepts",
    "ConceptDirection": "topo_mi.causal.concepts",
    "erase_concept": "topo_mi.causal.concepts",
    "ConceptEraser": "topo_mi.causal.concepts",
    "concept_mask": "topo_mi.causal.concepts",
    "delta_n": "topo_mi.causal.quantities",
    "DeltaNResult": "topo_mi.causal.quantities",
    "variance_ratio": "topo_mi.causal.quantities",
    "VarianceRatioResult": "topo_mi.causal.quantities",
    "sensitivity": "topo_mi.causal.quantities",
    "SensitivityResult": "topo_mi.causal.quantities",
}

__getattr__, __dir__, __all__ = lazy_exports(__name__, _ATTRS, ())
