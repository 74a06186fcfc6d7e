"""Circuit graphs: features of adjacent layers joined by the weights between them.

The framework's computational circuit mapping: a feature is a direction ``d`` in a layer's
activation space; the edge from feature ``i`` of layer ``l`` to feature ``j`` of layer ``l+1`` weighs
``W(f_i, f_j) = d_jᵀ W^{(l,l+1)} d_i``. For all features of two layers at once this is one matrix
product ``D_{l+1} W D_lᵀ`` (rows of ``D`` are the directions), so a graph of 4 × 512 widths is built
in seconds.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from topo_mi._validation import (
    as_array, check_choice, check_finite, check_float, check_int, fail, unknown_name,
)
from topo_mi.circuits import _stack
from topo_mi.circuits._graphdata import EDGE_KINDS, GraphData, to_networkx
from topo_mi.errors import ResourceError

DEFAULT_MAX_EDGES = 2_000_000
_BYTES_PER_NX_EDGE = 450  # a networkx edge with a small attribute dict, measured roughly


# -- inputs -------------------------------------------------------------------------------------

def split_data(data: Any) -> tuple[Any, Any]:
    """``x`` or ``(x, y)`` -> ``(x, y or None)``."""
    if isinstance(data, (tuple, list)) and len(data) == 2 and not np.isscalar(data[0]):
        return data[0], data[1]
    return data, None


def as_input_tensor(x: Any, in_dim: int, name: str = "data"):
    import torch

    if isinstance(x, torch.Tensor):
        t = x.detach().to("cpu")
        if not t.is_floating_point():
            t = t.to(torch.float64)
        arr = t
    else:
        arr = as_array(x, name)
        if arr.dtype == object or arr.dtype.kind not in "biuf":
            fail(name, f"a numeric array of shape (n_samples, {in_dim})", arr)
        arr = torch.as_tensor(np.asarray(arr, dtype=np.float64))
    if arr.ndim != 2 or arr.shape[1] != in_dim:
        fail(name, f"inputs of shape (n_samples, {in_dim}) (the model's input width)",
             f"shape {tuple(arr.shape)}", raw=True)
    if arr.shape[0] < 1:
        fail(name, "at least one sample", f"shape {tuple(arr.shape)}", raw=True)
    check_finite(name, arr.numpy() if arr.dtype == torch.float64 else arr.double().numpy(), what="inputs")
    return arr


# -- features -----------------------------------------------------------------------------------

def _feature_matrix(spec: Any, layer: _stack.Layer, values: np.ndarray | None) -> tuple[np.ndarray | None, str]:
    """Rows are directions in the layer's space; ``None`` means the neuron basis."""
    where = f"features[{layer.name!r}]"
    if spec is None or (isinstance(spec, str) and spec == "neuron"):
        return None, "neuron"
    k = None
    if isinstance(spec, tuple) and len(spec) == 2 and spec[0] == "pca":
        spec, k = "pca", check_int(f"{where}[1]", spec[1], min_value=1)
    if isinstance(spec, str):
        check_choice(where, spec, ("neuron", "pca"))
        if values is None:
            fail("data", f"inputs to compute {where}='pca' from", None)
        if values.shape[0] < 2:
            fail("data", f"at least 2 samples to compute {where}='pca'", values.shape[0])
        X = values - values.mean(axis=0)
        _, s, vt = np.linalg.svd(X, full_matrices=False)
        k = min(k or vt.shape[0], vt.shape[0])
        return vt[:k].copy(), "pca"
    basis = "custom"
    if hasattr(spec, "components_"):       # scikit-learn PCA, FastICA, NMF...
        spec, basis = spec.components_, "components"
    elif hasattr(spec, "W_dec"):           # sparse autoencoders: decoder rows are the features
        spec, basis = spec.W_dec, "sae_decoder"
    D = as_array(spec, where)
    if D.dtype == object or D.dtype.kind not in "biuf":
        fail(where, f"a numeric matrix of shape (n_features, {layer.dim})", D)
    D = np.asarray(D, dtype=np.float64)
    if D.ndim == 1:
        D = D[None, :]
    if D.ndim != 2 or D.shape[1] != layer.dim:
        hint = " (pass the transpose: one direction per row)" if D.ndim == 2 and D.shape[0] == layer.dim else ""
        fail(where, f"a matrix of shape (n_features, {layer.dim}), {layer.dim} being the width of layer "
             f"{layer.name!r}{hint}", f"shape {D.shape}", raw=True)
    if D.shape[0] < 1:
        fail(where, "at least one direction", f"shape {D.shape}", raw=True)
    check_finite(where, D)
    return D, basis


def _resolve_features(stack: _stack.Stack, features: Any, idx: list[int], values) -> list:
    if features is None:
        return [(None, "neuron")] * len(stack.layers)
    if not isinstance(features, dict):
        fail("features", "None or a dict {layer name: directions (rows), 'pca', ('pca', k) or 'neuron'}",
             features)
    names = stack.names
    for key in features:
        if key not in names:
            raise unknown_name("layer in features", key, names)
        if stack.index(key) not in idx:
            fail("features", f"layers inside the graph's layers {[names[i] for i in idx]}", key)
    out = []
    for li, layer in enumerate(stack.layers):
        if layer.name in features:
            vals = None if values is None else values[li]
            out.append(_feature_matrix(features[layer.name], layer, vals))
        else:
            out.append((None, "neuron"))
    return out


# -- edge selection ------------------------------------------------------------------------------

def _select(M: np.ndarray, support: np.ndarray | None, key: np.ndarray, top_k: int | None,
            threshold: float | None) -> np.ndarray:
    """Boolean mask of kept entries of ``M`` (rows: targets) by ``|key|``."""
    keep = np.ones(M.shape, dtype=bool) if support is None else support.copy()
    a = np.abs(key)
    if top_k is not None and top_k < M.shape[1]:
        scores = np.where(keep, a, -np.inf)
        part = np.argpartition(-scores, top_k - 1, axis=1)[:, :top_k]
        sel = np.zeros(M.shape, dtype=bool)
        np.put_along_axis(sel, part, True, axis=1)
        keep &= sel
    if threshold is not None:
        keep &= a >= threshold
    return keep


def _too_large(n_edges: int, max_edges: int, total_rows: int, detail: str) -> ResourceError:
    fit = max(1, max_edges // max(total_rows, 1))
    gb = n_edges * _BYTES_PER_NX_EDGE / 1e9
    return ResourceError(
        f"graph: the graph would have {n_edges:,} edges ({detail}; about {gb:.1f} GB as a networkx graph), "
        f"over max_edges={max_edges:,}; pass top_k (e.g. top_k={fit} keeps at most "
        f"{fit * total_rows:,} edges) or threshold= to keep only strong edges, select fewer layers, "
        f"or raise max_edges")


def stack_graph(stack: _stack.Stack, *, idx: list[int], features=None, x=None, top_k=None, threshold=None,
                by: str = "weight", max_edges: int = DEFAULT_MAX_EDGES, dense: bool = False) -> GraphData:
    """Graph arrays of a stack over the consecutive layers ``idx`` (see :func:`build_graph`)."""
    import torch

    values = None
    if x is not None:
        with torch.no_grad():
            values = [v.numpy() for v in stack.forward(x.to(torch.float64))]
    feats = _resolve_features(stack, features, idx, values)
    layer_set = set(idx)
    maps = [m for m in stack.maps if m.src in layer_set and m.dst in layer_set]
    sizes = [stack.layers[i].dim if feats[i][0] is None else feats[i][0].shape[0] for i in idx]
    local = {li: k for k, li in enumerate(idx)}

    # Estimate first: the dense count is known before any product is computed.
    rows = sum(sizes[local[m.dst]] for m in maps)
    estimate = 0
    for m in maps:
        k_src, k_dst = sizes[local[m.src]], sizes[local[m.dst]]
        neuron = feats[m.src][0] is None and feats[m.dst][0] is None
        per = int(m.support.sum()) if (neuron and m.kind != "linear") else k_src * k_dst
        if top_k is not None:
            per = min(per, k_dst * min(top_k, k_src))
        estimate += per
    if threshold is None and estimate > max_edges:
        raise _too_large(estimate, max_edges, rows, "before sparsification" if top_k is None else f"top_k={top_k}")

    # Feature activations (for attributions and node statistics).
    acts: dict = {}
    if values is not None:
        for li in idx:
            D = feats[li][0]
            acts[li] = values[li] if D is None else values[li] @ D.T
    act_stats = {li: (a.mean(axis=0), a.var(axis=0)) for li, a in acts.items()}

    srcs, dsts, ws, kinds, attr, attr_var = [], [], [], [], [], []
    offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    total = 0
    for m in maps:
        Ds, Dd = feats[m.src][0], feats[m.dst][0]
        M = m.weight
        if Ds is not None:
            M = M @ Ds.T
        if Dd is not None:
            M = Dd @ M
        neuron = Ds is None and Dd is None
        if neuron and m.kind != "linear":
            support = m.support
        elif m.kind != "linear":
            support = np.abs(M) > 1e-12 * max(1.0, float(np.abs(M).max(initial=0.0)))
        else:
            support = None
        key = M
        if by == "attribution" and values is not None:
            key = M * act_stats[m.src][0][None, :]
        keep = _select(M, support, key, None if dense else top_k, None if dense else threshold)
        j, i = np.nonzero(keep)
        total += j.size
        if total > max_edges:
            raise _too_large(total, max_edges, rows, "after top_k/threshold, counted so far")
        w = M[j, i]
        srcs.append(offsets[local[m.src]] + i)
        dsts.append(offsets[local[m.dst]] + j)
        ws.append(w)
        kinds.append(np.full(j.size, EDGE_KINDS.index(m.kind), np.int8))
        if values is not None:
            mu, var_a = act_stats[m.src]
            attr.append(w * mu[i])
            attr_var.append(w ** 2 * var_a[i])
        else:
            attr.append(np.full(j.size, np.nan))
            attr_var.append(np.full(j.size, np.nan))

    n_nodes = int(offsets[-1])
    bias = np.full(n_nodes, np.nan)
    mean = np.full(n_nodes, np.nan)
    var = np.full(n_nodes, np.nan)
    for li in idx:
        sl = slice(offsets[local[li]], offsets[local[li] + 1])
        layer = stack.layers[li]
        if layer.bias is not None:
            D = feats[li][0]
            bias[sl] = layer.bias if D is None else D @ layer.bias
        if values is not None:
            mean[sl], var[sl] = act_stats[li]

    def cat(parts, dtype):
        return np.concatenate(parts).astype(dtype) if parts else np.zeros(0, dtype)

    return GraphData(
        model_kind=stack.kind,
        layer_names=[stack.layers[i].name for i in idx],
        layer_sizes=np.asarray(sizes, np.int64),
        layer_basis=[feats[i][1] for i in idx],
        layer_kinds=[stack.layers[i].kind for i in idx],
        edge_src=cat(srcs, np.int64), edge_dst=cat(dsts, np.int64), edge_weight=cat(ws, np.float64),
        edge_kind=cat(kinds, np.int8), edge_attribution=cat(attr, np.float64),
        edge_attribution_var=cat(attr_var, np.float64), node_bias=bias, node_mean=mean, node_var=var,
    )


def graph_data(model, *, layers=None, features=None, data=None, top_k=None, threshold=None, by="weight",
               max_edges: int = DEFAULT_MAX_EDGES) -> GraphData:
    """Validate the arguments of :func:`build_graph` and return the graph as arrays."""
    if top_k is not None:
        top_k = check_int("top_k", top_k, min_value=1)
    if threshold is not None:
        threshold = check_float("threshold", threshold, min_value=0.0)
    check_choice("by", by, ("weight", "attribution"))
    max_edges = check_int("max_edges", max_edges, min_value=1)
    if _stack.is_transformer(model):
        from topo_mi.circuits.transformer import transformer_graph

        if features is not None:
            fail("features", "None for the attention-only transformer (its graph is in the token basis)",
                 features)
        if layers is not None:
            fail("layers", "None for the attention-only transformer (layers 'query', 'key', 'logits')", layers)
        return transformer_graph(model, data=data, top_k=top_k, threshold=threshold, by=by,
                                 max_edges=max_edges)
    stack = _stack.extract(model)
    idx = _stack.window(stack, layers)
    x = None
    if data is not None:
        x, _ = split_data(data)
        x = as_input_tensor(x, stack.layers[0].dim)
        _stack.check_matches_model(stack, model, x)
    if by == "attribution" and x is None:
        fail("by", "'weight' unless data is given ('attribution' ranks by weight × mean activation)", by)
    return stack_graph(stack, idx=idx, features=features, x=x, top_k=top_k, threshold=threshold, by=by,
                       max_edges=max_edges)


def build_graph(model, *, layers=None, features=None, data=None, top_k: int | None = None,
                threshold: float | None = None, by: str = "weight", max_edges: int = DEFAULT_MAX_EDGES):
    r"""The circuit graph of a model: features of adjacent layers joined by ``d_jᵀ W d_i``.

    Parameters
    ----------
    model : torch.nn.Module
        An ``nn.Sequential`` of ``nn.Linear`` layers and elementwise activations (ReLU, Tanh,
        LeakyReLU; e.g. :class:`topo_mi.models.MLP`, deep linear networks), a residual MLP stack
        (:class:`topo_mi.models.ResidualMLP`) or the one-layer attention-only transformer
        (:class:`topo_mi.models.AttentionOnlyTransformer`). Other modules raise
        :class:`~topo_mi.errors.InvalidParameterError` naming what is supported.
    layers : list of str, optional
        Consecutive layer names (default: all). Layers are the model input ``"input"`` and the
        output of each module group: ``"act1", ..., "out"`` for an MLP; ``"embed",
        "blocks.0.act", "blocks.0", ..., "out"`` for a residual stack (``blocks.k.act`` is the
        block's activation, ``blocks.k`` the residual stream after it; the stream edges are the
        skip connection ``I`` and the block's write ``dt·I``); for the transformer the graph has
        the layers ``"query"`` (token at the last position), ``"key"`` (attended tokens) and
        ``"logits"``.
    features : dict, optional
        Per layer the feature directions (default: the neuron basis): a matrix of shape
        ``(n_features, width)`` with one direction per row (PCA components, SAE decoder rows, a
        user matrix; objects with ``components_`` or ``W_dec`` are read directly), ``"pca"`` or
        ``("pca", k)`` (principal directions of the layer's activations on ``data``), or
        ``"neuron"``.
    data : array of shape (n_samples, in_dim), or (x, y), optional
        Inputs (token ids of shape (n_samples, n_ctx) for the transformer). When given, each edge
        also carries ``attribution`` = weight × mean source-feature activation and
        ``attribution_var`` = weight² × its variance, and each node its activation ``mean``/``var``.
    top_k : int, optional
        Keep, for every node, only its ``top_k`` strongest incoming edges from each source layer.
    threshold : float, optional
        Keep only edges with ``|weight|`` (or ``|attribution|`` when ``by="attribution"``) at least
        this large.
    by : {"weight", "attribution"}, default "weight"
        What ``top_k`` and ``threshold`` rank.
    max_edges : int, default 2,000,000
        Refuse (:class:`~topo_mi.errors.ResourceError`, before building anything) graphs with more
        edges; the message suggests a ``top_k`` that fits.

    Returns
    -------
    networkx.DiGraph
        Nodes ``(layer, feature)`` with attributes ``layer``, ``index``, ``depth``, ``kind``
        (input/hidden/output), ``bias`` (``d_jᵀ b``), and ``mean``/``var`` with data; edges with
        ``weight``, ``kind`` (linear/skip/scale; ov/direct/qk for the transformer) and, with data,
        ``attribution`` and ``attribution_var``. ``graph.graph`` holds ``layers``, ``sizes``,
        ``basis`` and ``model_kind``.

    Notes
    -----
    Weights of all features of two layers come from one product ``D_{l+1} W D_lᵀ``. Exact zeros of
    structural maps (skip, scale) are not edges; every entry of an ``nn.Linear`` is. For the
    transformer the edges follow Gross et al., "Compact proofs of model performance via
    mechanistic interpretability" (2024): ``key -> logits`` is the OV circuit
    ``EVOU = W_E W_V W_O W_U``, ``query -> logits`` the direct path ``(W_E + W_pos[-1]) W_U``, and
    ``query -> key`` the QK circuit ``EQKE = (W_E + W_pos[-1]) W_Q W_Kᵀ W_Eᵀ / sqrt(d_head)``
    (attention scores: products along paths through them are not output contributions).
    """
    gd = graph_data(model, layers=layers, features=features, data=data, top_k=top_k, threshold=threshold,
                    by=by, max_edges=max_edges)
    return to_networkx(gd)


__all__ = ["build_graph", "graph_data", "stack_graph", "DEFAULT_MAX_EDGES", "split_data", "as_input_tensor"]
