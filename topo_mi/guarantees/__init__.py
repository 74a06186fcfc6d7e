"""Compact proofs of max-of-K accuracy for the one-layer attention-only transformer.

Gross et al., "Compact proofs of model performance via mechanistic interpretability" (2024). A
:class:`Proof` is a certified lower bound on the accuracy over *all* ``d_vocab ** n_ctx`` inputs
together with its cost; strategies trade cost for tightness:

- :func:`brute_force_proof` — every sequence, ``O(d_vocab^n_ctx · n_ctx · d_vocab)``
- :func:`cubic_proof` — one case per (query, max, non-max token, copies), ``O(d_vocab^3 · n_ctx)``
- :func:`subcubic_proof` — one case per (query, max, copies) with a searched gap; key scores exact
  or rank-1 plus a bounded residual (``qk="svd"`` / ``"rowdiff"``)
- :func:`noise_analysis` — spectra and residual bounds of EQKE and EVOU
- :func:`certified_sequences` — which sequences a proof certifies

The proofs are argued computations, tested against brute force, not machine-checked.
"""
from __future__ import annotations

from topo_mi._lazy import lazy_exports

_ATTRS = {
    "Proof": "topo_mi.guarantees.proofs",
    "STRATEGIES": "topo_mi.guarantees.proofs",
    "brute_force_proof": "topo_mi.guarantees.proofs",
    "cubic_proof": "topo_mi.guarantees.proofs",
    "subcubic_proof": "topo_mi.guarantees.proofs",
    "prove": "topo_mi.guarantees.proofs",
    "certified_sequences": "topo_mi.guarantees.proofs",
    "count_cubic": "topo_mi.guarantees.proofs",
    "count_gap": "topo_mi.guarantees.proofs",
    "check_proof_model": "topo_mi.guarantees._model",
    "NoiseAnalysis": "topo_mi.guarantees.noise",
    "noise_analysis": "topo_mi.guarantees.noise",
    "seed_circuits": "topo_mi.circuits.transformer",
    "SeedCircuits": "topo_mi.circuits.transformer",
}

__getattr__, __dir__, __all__ = lazy_exports(__name__, _ATTRS, ())
