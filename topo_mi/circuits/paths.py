"""Paths through a circuit graph: the strongest paths, path activations, exact path decompositions.

The framework's path activation ``A_π(x) = ∏_{l∈π} W^{(l)} · x``. With every activation written as
``act(z) = s(z)·z`` (the gate ``s(z) = act(z)/z``; for ReLU the activation pattern) and the gates
fixed at their values for a sample, the network is linear along each path, so the output is
*exactly* the sum over all paths (from an input unit or from a bias) of
``source · ∏ weights · ∏ gates``. For a deep linear network all gates are 1.
"""
from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from topo_mi._results import Result, result_dataclass
from topo_mi._validation import check_int, fail
from topo_mi.circuits import _stack
from topo_mi.errors import ResourceError, UnknownNameError


class CircuitPath(NamedTuple):
    """A path of the circuit graph: its nodes and the product of its edge weights."""

    nodes: tuple
    weight: float

    @property
    def strength(self) -> float:
        """``|∏ weights|``."""
        return abs(self.weight)


# -- k strongest paths ---------------------------------------------------------------------------

def _endpoints(spec: Any, nodes: list, node_pos: dict, name: str) -> np.ndarray:
    """A node, a list of nodes, or a layer name -> node positions."""
    if isinstance(spec, str):
        sel = [i for i, n in enumerate(nodes) if isinstance(n, tuple) and n and n[0] == spec]
        if not sel:
            layers = sorted({n[0] for n in nodes if isinstance(n, tuple) and n})
            from topo_mi._validation import unknown_name

            raise unknown_name(f"layer for {name}", spec, layers)
        return np.asarray(sel, np.int64)
    if _hashable(spec) and spec in node_pos:
        return np.asarray([node_pos[spec]], np.int64)
    if isinstance(spec, list) and len(spec) == 2 and isinstance(spec[0], str) and tuple(spec) in node_pos:
        return np.asarray([node_pos[tuple(spec)]], np.int64)
    if not isinstance(spec, (list, tuple, set, frozenset)) or not spec:
        fail(name, "a node (layer, index) of the graph, a list of nodes or a layer name", spec)
    out = []
    for node in spec:
        node = tuple(node) if isinstance(node, list) else node
        if not _hashable(node) or node not in node_pos:
            fail(name, "a node (layer, index) of the graph, a list of nodes or a layer name", node)
        out.append(node_pos[node])
    return np.asarray(out, np.int64)


def _hashable(x) -> bool:
    try:
        hash(x)
    except TypeError:
        return False
    return True


def _graph_arrays(graph, weight: str):
    """(nodes, src, dst, w, generations) from a DiGraph or a CircuitResult (no networkx then)."""
    from topo_mi.circuits.result import CircuitResult

    if isinstance(graph, CircuitResult):
        gd = graph.graph_data
        nodes = gd.node_keys()
        src, dst, w = gd.edge_src, gd.edge_dst, gd.edge_weight
        if weight == "attribution":
            w = gd.edge_attribution
        elif weight != "weight":
            fail("weight", "'weight' or 'attribution' for a CircuitResult", weight)
        layer_of = gd.node_layer
        gens = [np.flatnonzero(layer_of == l) for l in range(len(gd.layer_sizes))]
        return nodes, src, dst, w, gens
    import networkx as nx

    from topo_mi.circuits._graphdata import from_networkx

    if not isinstance(graph, nx.DiGraph):
        fail("graph", "a networkx.DiGraph (from build_graph) or a CircuitResult", graph)
    if not isinstance(weight, str):
        fail("weight", "the name of an edge attribute", weight)
    if graph.number_of_edges():
        import itertools

        attrs: dict[str, bool] = {}  # attribute -> numeric on the edges inspected
        for _, _, d in itertools.islice(graph.edges(data=True), 1000):
            for a, v in d.items():
                num = isinstance(v, (int, float, np.number)) and not isinstance(v, bool)
                attrs[a] = attrs.get(a, True) and num
        if weight not in attrs:
            from topo_mi._validation import closest_names

            valid = sorted(a for a, num in attrs.items() if num) or sorted(attrs)
            close = closest_names(weight, valid) or valid
            raise UnknownNameError(f"weight: unknown edge attribute {weight!r}; closest valid names: "
                                   f"{', '.join(map(repr, close))}")
        if not attrs[weight]:
            fail("weight", "a numeric edge attribute", f"{weight!r}, which holds non-numeric values", raw=True)
    if weight != "weight":
        H = nx.DiGraph()
        H.add_nodes_from(graph.nodes)
        H.add_edges_from((u, v, {"weight": d.get(weight, np.nan)}) for u, v, d in graph.edges(data=True))
        graph = H
    return from_networkx(graph)


def top_paths(graph, source, target, k: int = 10, *, weight: str = "weight") -> list[CircuitPath]:
    """The ``k`` paths from ``source`` to ``target`` with the largest ``|∏ weights|``.

    Equivalent to the k shortest paths with edge lengths ``-log|w|``; since circuit graphs are
    acyclic every path is simple, and a k-best dynamic programme over the topological order finds
    them exactly (vectorised per layer; lengths may be negative, which Dijkstra-based k-shortest
    path search does not allow). Zero-weight edges are never on a path.

    Parameters
    ----------
    graph : networkx.DiGraph or CircuitResult
        From :func:`build_graph` (any acyclic graph with numeric edge weights works), or a
        :class:`CircuitResult` (its full graph).
    source, target : node, list of nodes, or layer name
        Nodes are ``(layer, index)``; a layer name means any node of that layer.
    k : int, default 10
    weight : str, default "weight"
        The edge attribute multiplied along paths (e.g. ``"attribution"``).

    Returns
    -------
    list of CircuitPath
        ``(nodes, weight)`` with the signed product of weights, strongest first.
    """
    k = check_int("k", k, min_value=1)
    nodes, src, dst, w, gens = _graph_arrays(graph, weight)
    pos = {n: i for i, n in enumerate(nodes)}
    sources = _endpoints(source, nodes, pos, "source")
    targets = _endpoints(target, nodes, pos, "target")
    return k_best_paths(nodes, src, dst, w, gens, sources, targets, k)


def k_best_paths(nodes: list, src: np.ndarray, dst: np.ndarray, w: np.ndarray, gens: list, sources: np.ndarray,
                 targets: np.ndarray, k: int) -> list[CircuitPath]:
    """k-best paths by ``|∏ w|`` in a DAG given as arrays (``gens``: topological generations)."""
    n = len(nodes)
    w = np.asarray(w, np.float64)
    ok = np.isfinite(w) & (w != 0)
    src, dst, w = src[ok], dst[ok], w[ok]
    cost_e = -np.log(np.abs(w))
    sign_e = np.sign(w)

    best = np.full((n, k), np.inf)
    sign = np.ones((n, k))
    back_node = np.full((n, k), -1, np.int64)
    back_rank = np.full((n, k), -1, np.int64)
    is_source = np.zeros(n, bool)
    is_source[sources] = True

    gen_of = np.empty(n, np.int64)
    for g, members in enumerate(gens):
        gen_of[members] = g
    order = np.argsort(gen_of[dst], kind="stable")
    src, dst, cost_e, sign_e = src[order], dst[order], cost_e[order], sign_e[order]
    bounds = np.searchsorted(gen_of[dst], np.arange(len(gens) + 1))
    for g, members in enumerate(gens):
        lo, hi = bounds[g], bounds[g + 1]
        es, ed = src[lo:hi], dst[lo:hi]
        cand_cost = (best[es] + cost_e[lo:hi, None]).ravel()
        cand_sign = (sign[es] * sign_e[lo:hi, None]).ravel()
        cand_dst = np.repeat(ed, k)
        cand_bn = np.repeat(es, k)
        cand_br = np.tile(np.arange(k), len(es))
        own = members[is_source[members]]
        if own.size:  # a source starts its own empty path
            cand_cost = np.concatenate([cand_cost, np.zeros(own.size)])
            cand_sign = np.concatenate([cand_sign, np.ones(own.size)])
            cand_dst = np.concatenate([cand_dst, own])
            cand_bn = np.concatenate([cand_bn, np.full(own.size, -1)])
            cand_br = np.concatenate([cand_br, np.full(own.size, -1)])
        fin = np.isfinite(cand_cost)
        if not fin.any():
            continue
        cand_cost, cand_sign, cand_dst = cand_cost[fin], cand_sign[fin], cand_dst[fin]
        cand_bn, cand_br = cand_bn[fin], cand_br[fin]
        o = np.lexsort((cand_cost, cand_dst))
        d_sorted = cand_dst[o]
        first = np.searchsorted(d_sorted, d_sorted, side="left")
        rank = np.arange(d_sorted.size) - first
        keep = rank < k
        o, rank = o[keep], rank[keep]
        tgt = cand_dst[o]
        best[tgt, rank] = cand_cost[o]
        sign[tgt, rank] = cand_sign[o]
        back_node[tgt, rank] = cand_bn[o]
        back_rank[tgt, rank] = cand_br[o]

    flat_cost = best[targets].ravel()
    flat_node = np.repeat(targets, k)
    flat_rank = np.tile(np.arange(k), targets.size)
    o = np.argsort(flat_cost, kind="stable")
    out = []
    for idx in o[:k]:
        if not np.isfinite(flat_cost[idx]):
            break
        v, r = int(flat_node[idx]), int(flat_rank[idx])
        product = sign[v, r] * np.exp(-best[v, r])
        seq = []
        while v >= 0:
            seq.append(nodes[v])
            v, r = int(back_node[v, r]), int(back_rank[v, r])
        if len(seq) < 2:
            continue  # a source that is also a target: no edge
        out.append(CircuitPath(tuple(reversed(seq)), float(product)))
    return out


# -- path activation -----------------------------------------------------------------------------

def _prepare(model, x):
    import torch

    from topo_mi.circuits.graph import as_input_tensor, split_data

    stack = _stack.extract(model)
    x, _ = split_data(x)
    x = as_input_tensor(x, stack.layers[0].dim, "x")
    _stack.check_matches_model(stack, model, x)
    with torch.no_grad():
        values, pres = stack.forward(x.to(torch.float64), return_pre=True)
    gates = [None] + [_stack.gate(stack.layers[l], pres[l]) for l in range(1, len(stack.layers))]
    return stack, values, gates


def path_activation(model, path, x, *, gated: bool = True) -> np.ndarray:
    r"""The activation carried by one path, per sample: ``a_src(x) · ∏ W · ∏ gates``.

    Parameters
    ----------
    model : torch.nn.Module
        An MLP / ``nn.Sequential`` or a residual MLP stack (see :func:`build_graph`).
    path : sequence of nodes ``(layer, index)`` or a :class:`CircuitPath`
        Consecutive nodes must be joined by an edge of the neuron-basis graph.
    x : array of shape (n_samples, in_dim)
    gated : bool, default True
        Multiply by the gate ``act(z)/z`` of every node after the first (the ReLU activation
        pattern); ``False`` gives the linear path activation ``A_π(x) = ∏ W · x`` of the framework.

    Returns
    -------
    ndarray of shape (n_samples,)
        Starting from the source node's activation (the input itself for ``"input"`` nodes).
        Summed over every path from the input layer and from every bias (see
        :func:`path_contributions`), the gated activations of paths ending at an output unit give
        that output exactly.
    """
    if isinstance(path, CircuitPath):
        path = path.nodes
    if isinstance(path, (str, bytes)) or not hasattr(path, "__iter__"):
        fail("path", "a sequence of nodes (layer, index)", path)
    path = [tuple(p) if isinstance(p, list) else p for p in path]
    if len(path) < 1:
        fail("path", "at least one node", path)
    stack, values, gates = _prepare(model, x)
    li = []
    for node in path:
        if not (isinstance(node, tuple) and len(node) == 2 and isinstance(node[0], str)):
            fail("path", "nodes (layer name, index)", node)
        l = stack.index(node[0])
        i = check_int(f"path node {node!r} index", node[1], min_value=0, max_value=stack.layers[l].dim - 1)
        li.append((l, i))
    l0, i0 = li[0]
    act = values[l0][:, i0].numpy().copy()
    for step, ((la, ia), (lb, ib)) in enumerate(zip(li[:-1], li[1:])):
        maps = [m for m in stack.maps if m.src == la and m.dst == lb]
        if not maps:
            fail("path", f"consecutive nodes joined by an edge (layer {stack.names[la]!r} does not feed "
                 f"layer {stack.names[lb]!r})", (path[step], path[step + 1]))
        act = act * maps[0].weight[ib, ia]
        if gated:
            act = act * gates[lb][:, ib].numpy()
    return act


# -- exact path decomposition --------------------------------------------------------------------

@result_dataclass
class PathContributions(Result):
    """Every path's contribution to the output, per sample (an exact decomposition).

    Attributes
    ----------
    layer_names : list of str
    paths : ndarray of shape (n_paths, n_layers)
        The unit visited in each layer, ``-1`` where the path skips the layer (before its start,
        or across a residual skip connection).
    bias_start : ndarray of shape (n_paths,)
        True when the path starts at the bias of its first visited layer, not at an input unit.
    contributions : ndarray of shape (n_samples, n_paths)
        ``source · ∏ weights · ∏ gates`` per sample.
    output : ndarray of shape (n_samples, out_dim)
        The model's output (float64).
    """

    layer_names: list
    paths: np.ndarray
    bias_start: np.ndarray
    contributions: np.ndarray
    output: np.ndarray

    @property
    def output_unit(self) -> np.ndarray:
        return self.paths[:, -1]

    def total(self) -> np.ndarray:
        """Sum of the path contributions per output unit: (n_samples, out_dim) — equals ``output``."""
        n, d = self.output.shape
        out = np.zeros((n, d))
        np.add.at(out.T, self.output_unit, self.contributions.T)
        return out

    def max_error(self) -> float:
        return float(np.abs(self.total() - self.output).max()) if self.output.size else 0.0

    def summary(self) -> dict[str, Any]:
        return {"n_paths": int(self.paths.shape[0]), "n_bias_paths": int(self.bias_start.sum()),
                "n_samples": int(self.output.shape[0]), "max_error": self.max_error()}


def count_paths(stack: _stack.Stack) -> np.ndarray:
    """Number of (non-zero) paths ending at each layer, from inputs and biases (float64 counts)."""
    counts = [np.ones(stack.layers[0].dim)]
    for l in range(1, len(stack.layers)):
        c = np.zeros(stack.layers[l].dim)
        for m in stack.incoming(l):
            c += (m.weight != 0).astype(np.float64) @ counts[m.src]
        b = stack.layers[l].bias
        if b is not None:
            c += (b != 0)
        counts.append(c)
    return np.array([c.sum() for c in counts])


def path_contributions(model, x, *, max_paths: int = 2_000_000, max_entries: int = 50_000_000) -> PathContributions:
    """Decompose the output into the contributions of all paths (exact, gates fixed per sample).

    For a deep linear network the contributions of all paths from the inputs and the biases sum
    to the output exactly; for a ReLU network the same holds with the activation pattern fixed,
    and for tanh/leaky ReLU with the gates ``act(z)/z`` fixed (the decomposition is exact per
    sample, not a linearisation).

    Parameters
    ----------
    model : torch.nn.Module
        An MLP / ``nn.Sequential`` or a residual MLP stack.
    x : array of shape (n_samples, in_dim)
    max_paths : int, default 2,000,000
        The number of paths is counted first (a product of widths: it explodes with depth);
        more raises :class:`~topo_mi.errors.ResourceError`.
    max_entries : int, default 50,000,000
        Limit on ``n_samples × partial paths`` held at once (float64).

    Returns
    -------
    PathContributions
        ``.total()`` equals ``.output``.
    """
    import torch

    max_paths = check_int("max_paths", max_paths, min_value=1)
    max_entries = check_int("max_entries", max_entries, min_value=1)
    stack, values, gates = _prepare(model, x)
    n = values[0].shape[0]
    counts = count_paths(stack)
    if counts[-1] > max_paths or counts.sum() * n > max_entries:
        raise ResourceError(
            f"model: {counts[-1]:.3g} paths reach the output ({counts.sum():.3g} partial paths in all, "
            f"{n} samples), over max_paths={max_paths:,} or max_entries={max_entries:,}; path "
            "decompositions are for small networks — use top_paths on a graph for large ones")
    L = len(stack.layers)
    g = [None if gt is None else gt.numpy() for gt in gates]
    d0 = stack.layers[0].dim
    P = {0: np.full((d0, L), -1, np.int64)}
    P[0][:, 0] = np.arange(d0)
    B = {0: np.zeros(d0, bool)}
    C = {0: values[0].numpy().astype(np.float64)}
    for l in range(1, L):
        parts_P, parts_B, parts_C = [], [], []
        for m in stack.incoming(l):
            Pu, Cu = P[m.src], C[m.src]
            ends = Pu[:, m.src]
            j_all, i_all = np.nonzero(m.weight)
            order = np.argsort(ends, kind="stable")
            cnt = np.bincount(ends, minlength=stack.layers[m.src].dim)
            start = np.concatenate([[0], np.cumsum(cnt)])
            reps = cnt[i_all]
            if reps.sum() == 0:
                continue
            edge_of = np.repeat(np.arange(j_all.size), reps)
            within = np.arange(edge_of.size) - np.repeat(np.cumsum(reps) - reps, reps)
            pidx = order[start[i_all][edge_of] + within]
            newP = Pu[pidx].copy()
            newP[:, l] = j_all[edge_of]
            parts_P.append(newP)
            parts_B.append(B[m.src][pidx])
            parts_C.append(Cu[:, pidx] * m.weight[j_all, i_all][edge_of][None, :])
        bias = stack.layers[l].bias
        if bias is not None:
            jb = np.flatnonzero(bias != 0)
            newP = np.full((jb.size, L), -1, np.int64)
            newP[:, l] = jb
            parts_P.append(newP)
            parts_B.append(np.ones(jb.size, bool))
            parts_C.append(np.broadcast_to(bias[jb][None, :], (n, jb.size)).copy())
        Pl = np.concatenate(parts_P) if parts_P else np.zeros((0, L), np.int64)
        Cl = np.concatenate(parts_C, axis=1) if parts_C else np.zeros((n, 0))
        Cl = Cl * g[l][:, Pl[:, l]]
        P[l], B[l], C[l] = Pl, (np.concatenate(parts_B) if parts_B else np.zeros(0, bool)), Cl
        for u in list(P):  # free layers no longer needed
            if u < l and all(m.src != u for m in stack.maps if m.dst > l):
                del P[u], B[u], C[u]
    with torch.no_grad():
        out = values[-1].numpy().astype(np.float64)
    return PathContributions(layer_names=stack.names, paths=P[L - 1], bias_start=B[L - 1],
                             contributions=C[L - 1], output=out)


__all__ = ["CircuitPath", "top_paths", "path_activation", "path_contributions", "PathContributions",
           "count_paths"]
