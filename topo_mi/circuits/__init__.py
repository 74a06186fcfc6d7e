"""Circuits: graphs of features joined by weights, paths, learned sparse circuits, compressibility.

- :func:`build_graph` — the circuit graph ``(layer, feature)`` nodes, edges ``d_jᵀ W d_i`` (networkx)
- :func:`top_paths`, :func:`path_activation`, :func:`path_contributions` — path analysis
- :func:`find_circuit` — hard-concrete L0 masks over edges or nodes -> :class:`CircuitResult`
- :func:`attention_circuits`, :func:`brute_force_accuracy` — EQKE/EVOU and brute force for the
  one-layer attention-only transformer (Gross et al., 2024)
- :func:`write_graphml`, :func:`read_graphml`, :func:`write_json`, :func:`read_json` — export

Submodules import torch and networkx only when their functions run.
"""
from __future__ import annotations

from topo_mi._lazy import lazy_exports

_ATTRS = {
    "build_graph": "topo_mi.circuits.graph",
    "graph_data": "topo_mi.circuits.graph",
    "top_paths": "topo_mi.circuits.paths",
    "path_activation": "topo_mi.circuits.paths",
    "path_contributions": "topo_mi.circuits.paths",
    "PathContributions": "topo_mi.circuits.paths",
    "CircuitPath": "topo_mi.circuits.paths",
    "find_circuit": "topo_mi.circuits.discovery",
    "CircuitResult": "topo_mi.circuits.result",
    "attention_circuits": "topo_mi.circuits.transformer",
    "AttentionCircuits": "topo_mi.circuits.transformer",
    "brute_force_accuracy": "topo_mi.circuits.transformer",
    "sampled_accuracy": "topo_mi.circuits.transformer",
    "write_graphml": "topo_mi.circuits._graphdata",
    "read_graphml": "topo_mi.circuits._graphdata",
    "write_json": "topo_mi.circuits._graphdata",
    "read_json": "topo_mi.circuits._graphdata",
    "EDGE_KINDS": "topo_mi.circuits._graphdata",
}

__getattr__, __dir__, __all__ = lazy_exports(__name__, _ATTRS, ())
