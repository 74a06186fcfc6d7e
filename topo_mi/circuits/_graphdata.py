"""The circuit graph as flat arrays (nodes and edges), and its conversion to/from networkx.

Arrays are what results store (``save``/``load`` need no pickle) and what the vectorised path
search works on; ``networkx.DiGraph`` is what users get. Nodes are ``(layer name, feature index)``;
node ids in the arrays run layer by layer (``offset[layer] + index``).
"""
from __future__ import annotations

import dataclasses
import json
from typing import Any

import numpy as np

EDGE_KINDS = ("linear", "skip", "scale", "ov", "direct", "qk")


@dataclasses.dataclass
class GraphData:
    model_kind: str
    layer_names: list
    layer_sizes: np.ndarray
    layer_basis: list
    layer_kinds: list
    edge_src: np.ndarray
    edge_dst: np.ndarray
    edge_weight: np.ndarray
    edge_kind: np.ndarray
    edge_attribution: np.ndarray
    edge_attribution_var: np.ndarray
    node_bias: np.ndarray
    node_mean: np.ndarray
    node_var: np.ndarray

    @property
    def offsets(self) -> np.ndarray:
        return np.concatenate([[0], np.cumsum(self.layer_sizes)]).astype(np.int64)

    @property
    def n_nodes(self) -> int:
        return int(np.sum(self.layer_sizes))

    @property
    def node_layer(self) -> np.ndarray:
        return np.repeat(np.arange(len(self.layer_sizes)), self.layer_sizes).astype(np.int64)

    @property
    def node_index(self) -> np.ndarray:
        return np.concatenate([np.arange(s) for s in self.layer_sizes]).astype(np.int64) \
            if len(self.layer_sizes) else np.zeros(0, np.int64)

    def node_keys(self) -> list[tuple[str, int]]:
        names = self.layer_names
        return [(names[l], i) for l, i in zip(self.node_layer.tolist(), self.node_index.tolist())]

    def has_data(self) -> bool:
        return bool(np.isfinite(self.edge_attribution).any()) if self.edge_attribution.size else False


def empty_float(n: int) -> np.ndarray:
    return np.full(n, np.nan)


def to_networkx(gd: GraphData, *, edge_extra: dict[str, np.ndarray] | None = None,
                node_extra: dict[str, np.ndarray] | None = None, edge_subset: np.ndarray | None = None,
                graph_attrs: dict[str, Any] | None = None):
    """Build a ``networkx.DiGraph`` from arrays (vectorised attribute lists, no per-edge numpy)."""
    import networkx as nx

    G = nx.DiGraph()
    G.graph.update(model_kind=gd.model_kind, layers=list(gd.layer_names),
                   sizes=[int(s) for s in gd.layer_sizes], basis=list(gd.layer_basis))
    if graph_attrs:
        G.graph.update(graph_attrs)
    keys = gd.node_keys()
    layer = gd.node_layer.tolist()
    index = gd.node_index.tolist()
    kinds = [gd.layer_kinds[l] for l in layer]
    names = [gd.layer_names[l] for l in layer]
    cols: dict[str, list] = {"layer": names, "index": index, "depth": layer, "kind": kinds}
    for name, arr in (("bias", gd.node_bias), ("mean", gd.node_mean), ("var", gd.node_var)):
        if arr.size and np.isfinite(arr).any():
            cols[name] = arr.tolist()
    for name, arr in (node_extra or {}).items():
        cols[name] = np.asarray(arr).tolist()
    cnames = list(cols)
    G.add_nodes_from(zip(keys, (dict(zip(cnames, vals)) for vals in zip(*cols.values()))))

    sel = slice(None) if edge_subset is None else np.asarray(edge_subset)
    src = gd.edge_src[sel].tolist()
    dst = gd.edge_dst[sel].tolist()
    ecols: dict[str, list] = {"weight": gd.edge_weight[sel].tolist(),
                              "kind": [EDGE_KINDS[k] for k in gd.edge_kind[sel].tolist()]}
    if gd.has_data():
        ecols["attribution"] = gd.edge_attribution[sel].tolist()
        ecols["attribution_var"] = gd.edge_attribution_var[sel].tolist()
    for name, arr in (edge_extra or {}).items():
        ecols[name] = np.asarray(arr)[sel].tolist()
    names = list(ecols)
    dicts = [{names[0]: v} for v in ecols[names[0]]]
    for name in names[1:]:
        for d, v in zip(dicts, ecols[name]):
            d[name] = v
    us = [keys[s] for s in src]
    vs = [keys[d] for d in dst]
    if type(G) is nx.DiGraph and hasattr(G, "_succ") and hasattr(G, "_pred"):
        # Fast path: the nodes exist and each (u, v) pair occurs once, so the adjacency dicts can
        # be filled directly (what add_edges_from does, without its per-edge checks).
        succ, pred = G._succ, G._pred
        for u, v, d in zip(us, vs, dicts):
            succ[u][v] = d
            pred[v][u] = d
        if hasattr(nx, "_clear_cache"):
            nx._clear_cache(G)
    else:  # pragma: no cover - other networkx internals
        G.add_edges_from(zip(us, vs, dicts))
    return G


def from_networkx(G) -> tuple[list, np.ndarray, np.ndarray, np.ndarray, list]:
    """Nodes (list), edge src/dst indices and weights, and topological generations of a DiGraph."""
    import networkx as nx

    from topo_mi._validation import fail

    if not isinstance(G, nx.DiGraph):
        fail("graph", "a networkx.DiGraph (from build_graph) or a CircuitResult", G)
    if not nx.is_directed_acyclic_graph(G):
        fail("graph", "a directed acyclic graph", "a graph with a cycle", raw=True)
    nodes = list(G.nodes)
    pos = {n: i for i, n in enumerate(nodes)}
    m = G.number_of_edges()
    src = np.empty(m, np.int64)
    dst = np.empty(m, np.int64)
    w = np.empty(m, np.float64)
    for e, (u, v, d) in enumerate(G.edges(data="weight", default=np.nan)):
        src[e], dst[e], w[e] = pos[u], pos[v], d
    gens = [np.array([pos[n] for n in g], np.int64) for g in nx.topological_generations(G)]
    return nodes, src, dst, w, gens


# -- export -----------------------------------------------------------------------------------

def _plain_attrs(d: dict) -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, (np.generic,)):
            v = v.item()
        if isinstance(v, (bool, int, float, str)):
            out[k] = v
        else:
            out[k] = json.dumps(v, default=str)
    return out


def _node_str(node) -> str:
    if isinstance(node, tuple) and len(node) == 2:
        return f"{node[0]}:{node[1]}"
    return str(node)


def _as_graph(G):
    import networkx as nx

    from topo_mi._validation import fail

    if hasattr(G, "graph_data") and hasattr(G, "graph"):  # a CircuitResult
        G = G.graph
    if not isinstance(G, nx.DiGraph):
        fail("graph", "a networkx.DiGraph or a CircuitResult", G)
    return G


def write_graphml(G, path) -> None:
    """Write a circuit graph (or a CircuitResult's graph) as GraphML.

    Node ids become ``"layer:index"`` and ``layer``/``index`` are node attributes, so
    :func:`read_graphml` restores the ``(layer, index)`` nodes; list-valued attributes are stored
    as JSON strings.
    """
    import networkx as nx

    from topo_mi._io import atomic_path

    G = _as_graph(G)

    H = nx.DiGraph()
    H.graph.update({k: json.dumps(v) if not isinstance(v, (str, int, float, bool)) else v
                    for k, v in G.graph.items()})
    H.graph["topo_mi_graph_json_keys"] = json.dumps(
        [k for k, v in G.graph.items() if not isinstance(v, (str, int, float, bool))])
    for n, d in G.nodes(data=True):
        attrs = _plain_attrs(d)
        if isinstance(n, tuple) and len(n) == 2:
            attrs.setdefault("layer", str(n[0]))
            attrs.setdefault("index", int(n[1]))
        H.add_node(_node_str(n), **attrs)
    for u, v, d in G.edges(data=True):
        H.add_edge(_node_str(u), _node_str(v), **_plain_attrs(d))
    with atomic_path(path, suffix=".graphml") as tmp:
        nx.write_graphml(H, tmp)


def read_graphml(path):
    """Read a file written by :func:`write_graphml` back to ``(layer, index)`` nodes."""
    import networkx as nx

    H = nx.read_graphml(path)
    G = nx.DiGraph()
    json_keys = set(json.loads(H.graph.pop("topo_mi_graph_json_keys", "[]")))
    G.graph.update({k: (json.loads(v) if k in json_keys else v) for k, v in H.graph.items()})
    key = {}
    for n, d in H.nodes(data=True):
        k = (d["layer"], int(d["index"])) if "layer" in d and "index" in d else n
        key[n] = k
        G.add_node(k, **d)
    for u, v, d in H.edges(data=True):
        G.add_edge(key[u], key[v], **d)
    return G


def graph_to_json_dict(G) -> dict:
    nodes = []
    for n, d in G.nodes(data=True):
        item = {"id": list(n) if isinstance(n, tuple) else n}
        item.update(_plain_attrs(d))
        nodes.append(item)
    edges = []
    for u, v, d in G.edges(data=True):
        item = {"source": list(u) if isinstance(u, tuple) else u,
                "target": list(v) if isinstance(v, tuple) else v}
        item.update(_plain_attrs(d))
        edges.append(item)
    return {"format": "topo_mi.circuit_graph/1", "directed": True, "graph": dict(G.graph),
            "nodes": nodes, "edges": edges}


def write_json(G, path) -> None:
    """Write a circuit graph (or a CircuitResult's graph) as node-link JSON (atomic)."""
    from topo_mi._io import write_json as _write

    _write(path, graph_to_json_dict(_as_graph(G)))


def read_json(path):
    """Read a file written by :func:`write_json` (nodes ``(layer, index)``)."""
    import networkx as nx

    from topo_mi._io import read_json as _read
    from topo_mi.errors import InvalidParameterError

    doc = _read(path)
    if not isinstance(doc, dict) or doc.get("format") != "topo_mi.circuit_graph/1":
        raise InvalidParameterError(f"path: expected a topo_mi.circuit_graph/1 JSON file, got {str(path)!r}")

    def key(x):
        return tuple(x) if isinstance(x, list) else x

    G = nx.DiGraph()
    G.graph.update(doc.get("graph", {}))
    for item in doc["nodes"]:
        item = dict(item)
        G.add_node(key(item.pop("id")), **item)
    for item in doc["edges"]:
        item = dict(item)
        G.add_edge(key(item.pop("source")), key(item.pop("target")), **item)
    return G


__all__ = ["GraphData", "EDGE_KINDS", "to_networkx", "from_networkx", "write_graphml", "read_graphml",
           "write_json", "read_json"]
