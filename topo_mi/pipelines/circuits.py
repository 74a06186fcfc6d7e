"""The circuit pipeline: graph, strongest paths and (optionally) a learned sparse circuit in one call."""
from __future__ import annotations

from typing import Any

import numpy as np

from topo_mi._validation import check_int, fail

__all__ = ["circuit_graph", "CircuitResult"]


def __getattr__(name: str):
    if name == "CircuitResult":
        from topo_mi.circuits.result import CircuitResult

        return CircuitResult
    raise AttributeError(f"module 'topo_mi.pipelines.circuits' has no attribute {name!r}")


def _paths_of(result, k: int, sources: str, targets: str, weight: str) -> list[dict]:
    from topo_mi.circuits.paths import k_best_paths

    gd = result.graph_data
    nodes = gd.node_keys()
    sel = result.edge_in_circuit
    w = gd.edge_weight if weight == "weight" else gd.edge_attribution
    layer_of = gd.node_layer
    gens = [np.flatnonzero(layer_of == l) for l in range(len(gd.layer_sizes))]
    li = {name: i for i, name in enumerate(gd.layer_names)}
    src_nodes = np.flatnonzero(layer_of == li[sources])
    dst_nodes = np.flatnonzero(layer_of == li[targets])
    paths = k_best_paths(nodes, gd.edge_src[sel], gd.edge_dst[sel], np.asarray(w)[sel], gens, src_nodes,
                         dst_nodes, k)
    return [{"nodes": [[str(n[0]), int(n[1])] for n in p.nodes], "weight": float(p.weight)} for p in paths]


def _default_metric(data) -> str:
    """``"accuracy"`` for ``(x, y)`` with integer class labels (one per input), else ``"r2"``."""
    from topo_mi.circuits.graph import split_data

    if data is None:
        return "r2"
    _, y = split_data(data)
    if y is None:
        return "r2"
    y = np.asarray(y.detach().cpu() if hasattr(y, "detach") else y)
    return "accuracy" if y.ndim == 1 and y.dtype.kind in "iub" else "r2"


def circuit_graph(model, data=None, *, metric: Any = None, features=None, layers=None, top_k: int | None = None,
                  threshold: float | None = None, find: bool | None = None, n_paths: int = 10,
                  path_weight: str = "weight", max_edges: int | None = None, **find_kwargs):
    """Circuit graph, strongest paths and a learned sparse circuit of a model, as one result.

    Parameters
    ----------
    model : torch.nn.Module
        An MLP / ``nn.Sequential``, a residual MLP stack, or the attention-only transformer.
    data : array of shape (n_samples, in_dim), (x, y), or token ids (transformer), optional
        Inputs for attributions and for the circuit search.
    metric : str or callable, optional
        Passed to :func:`topo_mi.circuits.find_circuit`. Default: ``"accuracy"`` when ``data`` is
        ``(x, y)`` with integer class labels ``y``, else ``"r2"`` (against ``y``, or the full
        model's output without ``y``).
    features, layers, top_k, threshold, max_edges
        Passed to :func:`topo_mi.circuits.build_graph` (``features``/``top_k``/``threshold`` only
        without a circuit search: the mask gates neuron-basis edges of the full graph).
    find : bool, optional
        Search a sparse circuit with :func:`topo_mi.circuits.find_circuit`. Default: when
        ``data`` is given, ``features``/``top_k``/``threshold`` are not, and the model is not the
        transformer.
    n_paths : int, default 10
        Strongest paths stored in ``result.paths`` (from the first to the last layer; inside the
        circuit when one was searched; ``key -> logits`` for the transformer).
    path_weight : {"weight", "attribution"}, default "weight"
    **find_kwargs
        ``granularity``, ``ablation``, ``l0``, ``steps``, ``seed``... for ``find_circuit``.

    Returns
    -------
    CircuitResult
        With ``attention`` (EQKE, EVOU, direct path) for the transformer.
    """
    from topo_mi.circuits import _stack
    from topo_mi.circuits.graph import DEFAULT_MAX_EDGES, graph_data
    from topo_mi.circuits.result import CircuitResult

    if metric is None:
        metric = _default_metric(data)
    n_paths = check_int("n_paths", n_paths, min_value=0)
    if path_weight not in ("weight", "attribution"):
        fail("path_weight", "'weight' or 'attribution'", path_weight)
    if path_weight == "attribution" and data is None:
        fail("path_weight", "'weight' unless data is given", path_weight)
    max_edges = DEFAULT_MAX_EDGES if max_edges is None else check_int("max_edges", max_edges, min_value=1)
    transformer = _stack.is_transformer(model)
    sparsify = top_k is not None or threshold is not None
    if find is None:
        find = data is not None and features is None and not sparsify and not transformer
    if find:
        if transformer:
            raise _stack.unsupported("the attention-only transformer with find=True (find_circuit masks MLPs "
                                     "and residual MLP stacks); use find=False")
        if data is None:
            fail("data", "inputs to search a circuit on (or find=False)", None)
        if features is not None:
            fail("features", "None when find=True (the mask gates neuron-basis edges); pass find=False "
                 "for a feature graph", features)
        if sparsify:
            fail("top_k", "None (and threshold None) when find=True: the circuit search gates every edge; "
                 "pass find=False to sparsify the graph", top_k if top_k is not None else threshold)
        from topo_mi.circuits.discovery import find_circuit

        res = find_circuit(model, data, metric=metric, layers=layers, **find_kwargs)
    else:
        unused = sorted(set(find_kwargs) - {"seed", "progress"})  # no randomness without a search
        if unused:
            fail("find_kwargs", "no circuit-search options with find=False", unused)
        gd = graph_data(model, layers=layers, features=features, data=data, top_k=top_k, threshold=threshold,
                        max_edges=max_edges)
        attention = None
        if transformer:
            from topo_mi.circuits.transformer import attention_circuits

            attention = attention_circuits(model)
        res = CircuitResult.from_graph_data(gd, attention=attention,
                                            params={"top_k": top_k, "threshold": threshold})
    if n_paths:
        names = res.layer_names
        src, dst = ("key", "logits") if transformer else (names[0], names[-1])
        paths = _paths_of(res, n_paths, src, dst, path_weight)
        import dataclasses

        res = dataclasses.replace(res, paths=paths)
    return res
