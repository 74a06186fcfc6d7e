"""The pipeline functions users call: activations (or a model) in, a typed result out.

- :func:`betti_profile` — persistence diagrams and Betti curves layer by layer (topology)
- :func:`geometry_profile` — rank@eps, participation ratio, intrinsic dimension, embeddings
- :func:`stability_profile` — layer Jacobians, finite-time Lyapunov exponents, spectra
- :func:`circuit_graph` — circuit graph, top paths, learned sparse circuit
- :func:`compare` / :func:`compare_many` — layer x layer similarity with statistics
- :func:`proof_table` — compact proofs of max-of-K accuracy: bound against cost per strategy
- :func:`run` — run a declarative TOML spec end to end (what ``topo-mi run`` calls)
"""
from __future__ import annotations

import importlib

_ATTRS = {
    "betti_profile": "topo_mi.pipelines.topology",
    "BettiProfile": "topo_mi.pipelines.topology",
    "geometry_profile": "topo_mi.pipelines.geometry",
    "GeometryProfile": "topo_mi.pipelines.geometry",
    "stability_profile": "topo_mi.pipelines.dynamics",
    "StabilityResult": "topo_mi.pipelines.dynamics",
    "circuit_graph": "topo_mi.pipelines.circuits",
    "compare": "topo_mi.pipelines.comparison",
    "compare_many": "topo_mi.pipelines.comparison",
    "ComparisonResult": "topo_mi.pipelines.comparison",
    "ManyComparisonResult": "topo_mi.pipelines.comparison",
    "proof_table": "topo_mi.pipelines.guarantees",
    "ProofTable": "topo_mi.pipelines.guarantees",
    "run": "topo_mi.pipelines.runner",
    "RunResult": "topo_mi.pipelines.runner",
    "load_spec": "topo_mi.pipelines.spec",
    "validate_spec": "topo_mi.pipelines.spec",
}

__all__ = sorted(_ATTRS)

# The modules behind these names are deliberately not named like the functions (comparison.py,
# not compare.py): importing a submodule sets it as an attribute of this package, which would
# shadow a function of the same name.


def __getattr__(name: str):
    if name in _ATTRS:
        return getattr(importlib.import_module(_ATTRS[name]), name)
    raise AttributeError(f"module 'topo_mi.pipelines' has no attribute {name!r}")


def __dir__():
    return __all__
