"""The pipeline functions users call: activations (or a model) in, a typed result out.

- :func:`betti_profile` — persistence diagrams and Betti curves layer by layer (topology)
- :func:`geometry_profile` — rank@eps, participation ratio, intrinsic dimension, embeddings
- :func:`stability_profile` — layer Jacobians, finite-time Lyapunov exponents, spectra
- :func:`sensitivity_profile` — attributions per layer, the loss Hessian's spectrum, κ, trace
- :func:`circuit_graph` — circuit graph, top paths, learned sparse circuit
- :func:`compare` / :func:`compare_many` — layer x layer similarity with statistics
- :func:`dictionary_profile` — a sparse dictionary (SAE) trained on one layer: metrics, examples
- :func:`proof_table` — compact proofs of max-of-K accuracy: bound against cost per strategy
- :func:`concept_profile` — a concept's direction, R_c, τ_c and causal effect layer by layer
- :func:`superposition_profile` — toy models of superposition across sparsity, phase diagram, D*
- :func:`synthesis_profile` — interpretations judged by explanatory coverage, consistency K, their union
- :func:`run` — run a declarative TOML spec end to end (what ``topo-mi run`` calls)
"""
from __future__ import annotations

from topo_mi._lazy import lazy_exports

_ATTRS = {
    "betti_profile": "topo_mi.pipelines.topology",
    "BettiProfile": "topo_mi.pipelines.topology",
    "geometry_profile": "topo_mi.pipelines.geometry",
    "GeometryProfile": "topo_mi.pipelines.geometry",
    "stability_profile": "topo_mi.pipelines.dynamics",
    "StabilityResult": "topo_mi.pipelines.dynamics",
    "sensitivity_profile": "topo_mi.pipelines.differential",
    "SensitivityResult": "topo_mi.pipelines.differential",
    "circuit_graph": "topo_mi.pipelines.circuits",
    "compare": "topo_mi.pipelines.comparison",
    "compare_many": "topo_mi.pipelines.comparison",
    "ComparisonResult": "topo_mi.pipelines.comparison",
    "ManyComparisonResult": "topo_mi.pipelines.comparison",
    "dictionary_profile": "topo_mi.pipelines.dictionaries",
    "DictionaryProfile": "topo_mi.pipelines.dictionaries",
    "proof_table": "topo_mi.pipelines.guarantees",
    "ProofTable": "topo_mi.pipelines.guarantees",
    "concept_profile": "topo_mi.pipelines.causal",
    "ConceptProfile": "topo_mi.pipelines.causal",
    "superposition_profile": "topo_mi.pipelines.superposition",
    "SuperpositionProfile": "topo_mi.pipelines.superposition",
    "synthesis_profile": "topo_mi.pipelines.synthesis",
    "SynthesisResult": "topo_mi.pipelines.synthesis",
    "run": "topo_mi.pipelines.runner",
    "RunResult": "topo_mi.pipelines.runner",
    "load_spec": "topo_mi.pipelines.spec",
    "validate_spec": "topo_mi.pipelines.spec",
}

# The modules behind these names are deliberately not named like the functions (comparison.py,
# not compare.py): importing a submodule sets it as an attribute of this package, which would
# shadow a function of the same name.

__getattr__, __dir__, __all__ = lazy_exports(__name__, _ATTRS, ())
