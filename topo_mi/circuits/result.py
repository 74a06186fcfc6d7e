"""``CircuitResult``: a circuit graph as node/edge arrays, with the learned mask and its scores."""
from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from topo_mi._results import Result, result_dataclass
from topo_mi._validation import check_choice
from topo_mi.circuits._graphdata import EDGE_KINDS, GraphData, to_networkx

# The graph's fields are GraphData's, in its order. A frozen dataclass cannot derive from the
# mutable GraphData, so CircuitResult takes them from a frozen dataclass built from its fields.
_GRAPH_FIELDS = tuple(f.name for f in dataclasses.fields(GraphData))
_GraphFields = dataclasses.make_dataclass(
    "_GraphFields", [(f.name, f.type) for f in dataclasses.fields(GraphData)], frozen=True, eq=False,
    repr=False, namespace={"__module__": __name__})


def _empty(dtype=np.float64):
    return dataclasses.field(default_factory=lambda: np.zeros(0, dtype))


@result_dataclass
class CircuitResult(_GraphFields, Result):
    """A circuit graph (features joined by weights), optionally with a learned sparse circuit.

    The graph is stored as arrays — nodes run layer by layer, node id ``offset[layer] + index`` —
    so that ``save``/``load`` need no pickle; :attr:`graph` rebuilds the ``networkx.DiGraph``.

    Attributes
    ----------
    layer_names, layer_sizes, layer_basis, layer_kinds
        The graph's layers (basis ``"neuron"``, ``"pca"``, ``"custom"``...; kind input/hidden/output).
    edge_src, edge_dst : ndarray of shape (n_edges,)
        Node ids of each edge.
    edge_weight : ndarray of shape (n_edges,)
        ``d_jᵀ W d_i``.
    edge_kind : ndarray of shape (n_edges,)
        Codes into ``EDGE_KINDS`` (linear, skip, scale, ov, direct, qk).
    edge_attribution, edge_attribution_var : ndarray of shape (n_edges,)
        Weight × mean source activation and its variance (NaN without data).
    node_bias, node_mean, node_var : ndarray of shape (n_nodes,)
    granularity : {"edges", "nodes", "none"}
        What the mask gates; ``"none"`` when no circuit was searched.
    ablation, metric, objective : str
    unit_gated : ndarray of bool
        Which units (edges or nodes, in array order) carry a gate.
    gate_logits : ndarray
        The hard-concrete ``log α`` of each unit (NaN where ungated); kept where ``> 0``.
    kept : ndarray of bool
        The circuit (ungated units count as kept).
    unit_scores : dict
        Per-unit ranking scores: ``"magnitude"`` and ``"patching"`` (first-order activation
        patching: expected squared change of the output when the unit alone is ablated).
    full_score, circuit_score, alpha : float
        The metric of the full model, of the circuit (everything else ablated), and their ratio:
        the α-compressibility.
    magnitude_score, patching_score : float
        The metric of the same number of units chosen by magnitude / patching ranking.
    curve_sizes : ndarray
        Circuit sizes of the faithfulness curve.
    curve_scores : dict
        ``"mask"``, ``"magnitude"``, ``"patching"`` -> scores at ``curve_sizes``.
    loss_history, size_history : ndarray
        Training loss and expected number of kept units per step.
    paths : list of dict
        The strongest input-to-output paths: ``{"nodes": [[layer, index], ...], "weight": w}``.
    attention : AttentionCircuits or None
        For the attention-only transformer: EQKE, EVOU, the direct path.
    params : dict
        The arguments the circuit was found with.
    """

    granularity: str = "none"
    ablation: str = ""
    metric: str = ""
    objective: str = ""
    unit_gated: np.ndarray = _empty(bool)
    gate_logits: np.ndarray = _empty()
    kept: np.ndarray = _empty(bool)
    unit_scores: dict = dataclasses.field(default_factory=dict)
    full_score: float = float("nan")
    circuit_score: float = float("nan")
    alpha: float = float("nan")
    magnitude_score: float = float("nan")
    patching_score: float = float("nan")
    curve_sizes: np.ndarray = _empty(np.int64)
    curve_scores: dict = dataclasses.field(default_factory=dict)
    loss_history: np.ndarray = _empty()
    size_history: np.ndarray = _empty()
    paths: list = dataclasses.field(default_factory=list)
    attention: Any = None
    params: dict = dataclasses.field(default_factory=dict)

    _plot_function = "topo_mi.plotting.circuits:plot_circuit"

    # -- construction ---------------------------------------------------------------------------
    @classmethod
    def from_graph_data(cls, gd: GraphData, **kw) -> "CircuitResult":
        return cls(**{f: getattr(gd, f) for f in _GRAPH_FIELDS}, **kw)

    @property
    def graph_data(self) -> GraphData:
        return GraphData(**{f: getattr(self, f) for f in _GRAPH_FIELDS})

    # -- sizes ----------------------------------------------------------------------------------
    @property
    def n_nodes(self) -> int:
        return int(np.sum(self.layer_sizes))

    @property
    def n_edges(self) -> int:
        return int(self.edge_src.size)

    @property
    def n_units(self) -> int:
        """Number of gated units (edges or nodes) the circuit was searched among."""
        return int(self.unit_gated.sum())

    @property
    def n_kept(self) -> int:
        """Number of gated units kept in the circuit."""
        return int((self.kept & self.unit_gated).sum())

    # -- membership -----------------------------------------------------------------------------
    @property
    def node_in_circuit(self) -> np.ndarray:
        n = self.n_nodes
        if self.granularity == "nodes":
            return self.kept.copy()
        if self.granularity == "edges":
            inc = np.zeros(n, bool)
            e = self.kept
            inc[self.edge_src[e]] = True
            inc[self.edge_dst[e]] = True
            return inc
        return np.ones(n, bool)

    @property
    def edge_in_circuit(self) -> np.ndarray:
        if self.granularity == "edges":
            return self.kept.copy()
        if self.granularity == "nodes":
            k = self.kept
            return k[self.edge_src] & k[self.edge_dst]
        return np.ones(self.n_edges, bool)

    def _node_keys(self) -> list:
        return self.graph_data.node_keys()

    @property
    def kept_edges(self) -> list[tuple]:
        """Circuit edges as ``((layer, i), (layer, j))`` pairs."""
        keys = self._node_keys()
        sel = np.flatnonzero(self.edge_in_circuit)
        return [(keys[s], keys[d]) for s, d in zip(self.edge_src[sel].tolist(), self.edge_dst[sel].tolist())]

    @property
    def kept_nodes(self) -> list[tuple]:
        """Circuit nodes ``(layer, index)``."""
        keys = self._node_keys()
        return [keys[i] for i in np.flatnonzero(self.node_in_circuit)]

    # -- graphs ---------------------------------------------------------------------------------
    def _extras(self):
        edge_extra, node_extra = {}, {}
        if self.granularity != "none":
            edge_extra["in_circuit"] = self.edge_in_circuit
            node_extra["in_circuit"] = self.node_in_circuit
            gate = np.where(np.isfinite(self.gate_logits), self.gate_logits, np.inf)
            if self.granularity == "edges":
                edge_extra["gate_logit"] = gate
            else:
                node_extra["gate_logit"] = gate
        return edge_extra, node_extra

    @property
    def graph(self):
        """The full graph as a ``networkx.DiGraph`` (built on first access, then cached)."""
        cache = self.__dict__.get("_graph_cache")
        if cache is None:
            edge_extra, node_extra = self._extras()
            cache = to_networkx(self.graph_data, edge_extra=edge_extra, node_extra=node_extra,
                                graph_attrs=self._graph_attrs())
            object.__setattr__(self, "_graph_cache", cache)
        return cache

    @property
    def circuit(self):
        """The circuit alone (kept edges and their nodes) as a ``networkx.DiGraph``."""
        edge_extra, node_extra = self._extras()
        sel = np.flatnonzero(self.edge_in_circuit)
        G = to_networkx(self.graph_data, edge_extra=edge_extra, node_extra=node_extra, edge_subset=sel,
                        graph_attrs=self._graph_attrs())
        keep = set(self.kept_nodes)
        G.remove_nodes_from([n for n in list(G.nodes) if n not in keep and G.degree(n) == 0])
        return G

    def _graph_attrs(self) -> dict:
        out = {"granularity": self.granularity}
        for name in ("full_score", "circuit_score", "alpha"):
            v = getattr(self, name)
            if np.isfinite(v):
                out[name] = float(v)
        return out

    def to_graphml(self, path, *, circuit_only: bool = False) -> None:
        """Write the graph (or the circuit alone) as GraphML (node ids ``"layer:index"``)."""
        from topo_mi.circuits._graphdata import write_graphml

        write_graphml(self.circuit if circuit_only else self.graph, path)

    def to_json(self, path, *, circuit_only: bool = False) -> None:
        """Write the graph (or the circuit alone) as node-link JSON (``topo_mi.circuit_graph/1``)."""
        from topo_mi.circuits._graphdata import write_json

        write_json(self.circuit if circuit_only else self.graph, path)

    # -- display --------------------------------------------------------------------------------
    def report_section(self) -> dict[str, Any]:
        """Headline (circuit size and faithfulness), a per-layer units table, caption of the drawing."""
        sizes = np.asarray(self.layer_sizes, dtype=np.int64)
        bounds = np.concatenate([[0], np.cumsum(sizes)])
        inc = self.node_in_circuit
        kept_per_layer = [int(inc[bounds[i]:bounds[i + 1]].sum()) for i in range(len(sizes))]
        if self.granularity != "none":
            metric = {"r2": "R²", "accuracy": "accuracy", "neg_mse": "−MSE"}.get(self.metric, self.metric)
            headline = (f"A circuit of {self.n_kept} of {self.n_units} {self.granularity} scores {metric} = "
                        f"{self.circuit_score:.3g} (full model {self.full_score:.3g}); magnitude pruning to the "
                        f"same size scores {self.magnitude_score:.3g}.")
        elif self.attention is not None:
            a = self.attention.summary()
            headline = (f"Attention circuits of the {self.model_kind}: EVOU diagonal dominance "
                        f"{a.get('evou_diagonal_dominance', float('nan')):.3g}, EQKE monotonicity "
                        f"{a.get('eqke_monotonicity', float('nan')):.3g}.")
        else:
            headline = f"Graph of {self.n_nodes} features and {self.n_edges} edges (no circuit search)."
        if self.paths:
            headline = headline[:-1] + f"; the strongest path has weight {float(self.paths[0]['weight']):.3g}."
        table = {"index": list(self.layer_names), "columns": ["kind", "basis", "units", "in circuit"],
                 "rows": [[str(k), str(b), int(n), kept] for k, b, n, kept in
                          zip(self.layer_kinds, self.layer_basis, sizes, kept_per_layer)]}
        caption = ("The model as a layered graph: one column of nodes per layer (features in the given basis), "
                   "edges d_jᵀ W d_i between consecutive layers, wider for larger |weight| (red positive, blue "
                   "negative; at most the 400 strongest)" + ("; only the edges of the circuit found by the "
                                                            f"L0-masked search are drawn (scored by {self.metric})"
                                                            if self.granularity != "none" else "") + ".")
        return {"headline": headline, "table": table, "caption": caption}

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {"model_kind": self.model_kind, "n_nodes": self.n_nodes,
                               "n_edges": self.n_edges, "granularity": self.granularity}
        if self.granularity != "none":
            out.update(n_units=self.n_units, n_kept=self.n_kept, full_score=self.full_score,
                       circuit_score=self.circuit_score, alpha=self.alpha,
                       magnitude_score=self.magnitude_score, patching_score=self.patching_score)
        if self.paths:
            out["top_path_weight"] = float(self.paths[0]["weight"])
        if self.attention is not None:
            out.update({f"attention_{k}": v for k, v in self.attention.summary().items()
                        if k in ("evou_diagonal_dominance", "eqke_monotonicity")})
        return out

    def plot(self, ax=None, *, kind: str = "graph", **kwargs):
        """``kind="graph"`` (layered drawing), ``"faithfulness"`` (score vs size) or ``"attention"``."""
        check_choice("kind", kind, ("graph", "faithfulness", "attention"))
        return super().plot(ax=ax, kind=kind, **kwargs)


__all__ = ["CircuitResult", "EDGE_KINDS"]
