"""Synthesis: judging interpretations of a network by consistency and explanatory coverage.

An *interpretation* I of a network N is anything producing a stand-in I(x) for N(x): a circuit
with the rest ablated, a rank-r projection of a layer, a dictionary reconstruction spliced in, an
erasure or steering, a user function. For each one, per input, δ_I(x) = ‖N(x) − I(x)‖ in a stated
space and norm; from it

- explanatory coverage: coverage(ε) = #{x : δ_I(x) < ε} / n, its curve over ε, area and
  bootstrap intervals (:func:`evaluate`, :class:`CoverageResult`);
- consistency: K = sup_x δ_I(x) / δ_I for the interpretation's stated error budget δ_I, with the
  worst input;
- pluralism: members combined by a rule (union by default), each member's coverage, the
  combination's, the overlap matrix (:func:`combine`, :class:`PluralismResult`);
- the framework's claims as experiments (:func:`single_method_coverage`,
  :func:`fidelity_vs_depth`, :func:`decision_regions_vs_betti`): they report, they assert nothing.

Adapters: :func:`circuit`, :func:`projection`, :func:`dictionary`, :func:`erasure`,
:func:`steering`, :func:`replace`, :func:`function`, :func:`constant_mean`, :func:`outputs`,
:func:`identity`. Every layer replacement goes through :func:`topo_mi.causal.intervene`.

torch is imported only when a function runs.
"""
from __future__ import annotations

from topo_mi._lazy import lazy_exports

_ATTRS = {
    "Interpretation": "topo_mi.synthesis._interpretation",
    "identity": "topo_mi.synthesis._interpretation",
    "replace": "topo_mi.synthesis._interpretation",
    "function": "topo_mi.synthesis._interpretation",
    "constant_mean": "topo_mi.synthesis._interpretation",
    "outputs": "topo_mi.synthesis._interpretation",
    "projection": "topo_mi.synthesis._interpretation",
    "circuit": "topo_mi.synthesis._interpretation",
    "dictionary": "topo_mi.synthesis._interpretation",
    "erasure": "topo_mi.synthesis._interpretation",
    "steering": "topo_mi.synthesis._interpretation",
    "SynthesisResult": "topo_mi.synthesis._profile",
    "profile": "topo_mi.synthesis._profile",
    "CoverageResult": "topo_mi.synthesis._coverage",
    "coverage": "topo_mi.synthesis._coverage",
    "evaluate": "topo_mi.synthesis._coverage",
    "discrepancies": "topo_mi.synthesis._coverage",
    "coverage_stats": "topo_mi.synthesis._coverage",
    "coverage_curve": "topo_mi.synthesis._coverage",
    "consistency": "topo_mi.synthesis._coverage",
    "single_method_coverage": "topo_mi.synthesis._experiments",
    "MethodCoverageResult": "topo_mi.synthesis._experiments",
    "fidelity_vs_depth": "topo_mi.synthesis._experiments",
    "FidelityDepthResult": "topo_mi.synthesis._experiments",
    "power_fits": "topo_mi.synthesis._experiments",
    "decision_regions_vs_betti": "topo_mi.synthesis._experiments",
    "RegionsBettiResult": "topo_mi.synthesis._experiments",
    "count_regions": "topo_mi.synthesis._experiments",
    "PluralismResult": "topo_mi.synthesis._pluralism",
    "combine": "topo_mi.synthesis._pluralism",
}

__getattr__, __dir__, __all__ = lazy_exports(__name__, _ATTRS, ())
