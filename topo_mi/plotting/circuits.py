"""Figures of circuits: layered graph drawings, faithfulness curves, EQKE/EVOU heatmaps."""
from __future__ import annotations

import numpy as np

from topo_mi.plotting import get_ax, pyplot

_POS, _NEG = "#c0392b", "#2e6fba"


def plot_circuit(result, ax=None, *, kind: str = "graph", **kwargs):
    """Dispatch for ``CircuitResult.plot``: ``"graph"``, ``"faithfulness"`` or ``"attention"``."""
    if kind == "graph":
        return plot_graph(result, ax=ax, **kwargs)
    if kind == "faithfulness":
        return plot_faithfulness(result, ax=ax, **kwargs)
    if kind == "attention":
        if getattr(result, "attention", None) is None:
            from topo_mi.errors import InvalidParameterError

            raise InvalidParameterError("kind: expected 'graph' or 'faithfulness' for a result without "
                                        "attention circuits, got 'attention'")
        return plot_attention_circuits(result.attention, ax=ax, **kwargs)
    from topo_mi._validation import check_choice

    check_choice("kind", kind, ("graph", "faithfulness", "attention"))


def _layout(nodes_layer: np.ndarray, nodes_index: np.ndarray, sizes) -> np.ndarray:
    sizes = np.asarray(sizes)
    n_max = max(int(sizes.max()) if sizes.size else 1, 1)
    y = np.empty(nodes_layer.size)
    for l, s in enumerate(sizes):
        sel = nodes_layer == l
        y[sel] = (nodes_index[sel] - (s - 1) / 2.0) / max(n_max - 1, 1)
    return np.column_stack([nodes_layer.astype(float), y])


def _graph_arrays_for_plot(obj):
    """Layer names, per-node (layer, index), edges (src, dst, weight), edge/node circuit flags."""
    from topo_mi.circuits.result import CircuitResult

    if isinstance(obj, CircuitResult):
        gd = obj.graph_data
        in_e = obj.edge_in_circuit if obj.granularity != "none" else None
        in_n = obj.node_in_circuit if obj.granularity != "none" else None
        return (list(gd.layer_names), gd.node_layer, gd.node_index, np.asarray(gd.layer_sizes), gd.edge_src,
                gd.edge_dst, gd.edge_weight, in_e, in_n)
    import networkx as nx

    if not isinstance(obj, nx.DiGraph):
        from topo_mi._validation import fail

        fail("result", "a CircuitResult or a networkx.DiGraph from build_graph", obj)
    nodes = list(obj.nodes)
    if all(isinstance(n, tuple) and len(n) == 2 for n in nodes) and "layers" in obj.graph:
        names = list(obj.graph["layers"])
        li = {name: i for i, name in enumerate(names)}
        layer = np.array([li.get(n[0], 0) for n in nodes])
        index = np.array([int(n[1]) for n in nodes])
    else:
        names, layer, index = [], np.zeros(len(nodes), int), np.zeros(len(nodes), int)
        for g, members in enumerate(nx.topological_generations(obj)):
            names.append(f"generation {g}")
            for r, n in enumerate(members):
                k = nodes.index(n)
                layer[k], index[k] = g, r
    sizes = np.bincount(layer, minlength=len(names)) if len(nodes) else np.zeros(0, int)
    sizes = np.maximum(sizes, np.array([index[layer == l].max() + 1 if (layer == l).any() else 0
                                        for l in range(len(names))]))
    pos = {n: i for i, n in enumerate(nodes)}
    src, dst, w, flag = [], [], [], []
    for u, v, d in obj.edges(data=True):
        src.append(pos[u])
        dst.append(pos[v])
        w.append(float(d.get("weight", 1.0)))
        flag.append(bool(d.get("in_circuit", True)))
    in_e = np.array(flag, bool) if any("in_circuit" in d for _, _, d in obj.edges(data=True)) else None
    return (names, layer, index, sizes, np.array(src, int), np.array(dst, int), np.array(w, float), in_e, None)


def plot_graph(result, ax=None, *, max_edges: int = 400, show: str = "auto", node_size: float | None = None):
    """Layered drawing: layers left to right, edge width ∝ |weight|, red positive / blue negative.

    Parameters
    ----------
    result : CircuitResult or networkx.DiGraph
    ax : matplotlib Axes, optional
    max_edges : int, default 400
        Draw at most this many edges (the strongest); the title says how many are shown.
    show : {"auto", "all", "circuit"}, default "auto"
        ``"auto"``: the circuit when one was searched, else all edges.
    node_size : float, optional
        Marker size (default: shrinks with the widest layer).
    """
    from matplotlib.collections import LineCollection

    names, layer, index, sizes, src, dst, w, in_e, in_n = _graph_arrays_for_plot(result)
    ax = get_ax(ax, figsize=(6.5, 4.5))
    xy = _layout(layer, index, sizes)
    sel = np.arange(src.size)
    if show == "circuit" or (show == "auto" and in_e is not None):
        if in_e is not None:
            sel = sel[in_e]
    total = sel.size
    if sel.size > max_edges:
        sel = sel[np.argsort(-np.abs(w[sel]), kind="stable")[:max_edges]]
    wmax = float(np.abs(w[sel]).max()) if sel.size else 1.0
    wmax = wmax if wmax > 0 else 1.0
    order = sel[np.argsort(np.abs(w[sel]), kind="stable")]  # strongest drawn last
    segs = np.stack([xy[src[order]], xy[dst[order]]], axis=1) if order.size else np.zeros((0, 2, 2))
    widths = 0.2 + 3.0 * np.abs(w[order]) / wmax
    colors = [_POS if v >= 0 else _NEG for v in w[order]]
    ax.add_collection(LineCollection(segs, linewidths=widths, colors=colors, alpha=0.75, zorder=1))
    n_max = int(np.max(sizes)) if len(sizes) else 1
    s = node_size if node_size is not None else float(np.clip(400.0 / max(n_max, 1), 2.0, 60.0))
    face = np.full(layer.size, "#444444", dtype=object)
    if in_n is not None:
        face[~in_n] = "#cccccc"
    ax.scatter(xy[:, 0], xy[:, 1], s=s, c=list(face), zorder=2, linewidths=0)
    ax.set_xticks(range(len(names)))
    ax.set_xticklabels(names, rotation=30 if len(names) > 5 else 0, ha="right" if len(names) > 5 else "center")
    ax.set_yticks([])
    ax.set_xlim(-0.3, max(len(names) - 1, 0) + 0.3)
    ax.set_ylim(-0.6, 0.6)
    for side in ("top", "right", "left"):
        ax.spines[side].set_visible(False)
    what = "circuit edges" if (in_e is not None and show != "all") else "edges"
    shown = f"{sel.size:,} of {total:,} {what}" if sel.size < total else f"{total:,} {what}"
    ax.set_title(f"circuit graph ({shown}; red +, blue −)")
    return ax


def plot_faithfulness(result, ax=None):
    """Score versus circuit size: the mask's ranking, magnitude pruning, activation patching."""
    ax = get_ax(ax, figsize=(5.5, 4.0))
    sizes = np.asarray(result.curve_sizes, float)
    if sizes.size == 0:
        ax.set_title("no circuit searched")
        return ax
    styles = {"mask": ("L0 mask ranking", "#1b7837", "o"), "magnitude": ("magnitude pruning", "#888888", "s"),
              "patching": ("activation patching (1st order)", "#762a83", "^")}
    for name, scores in result.curve_scores.items():
        label, color, marker = styles.get(name, (name, None, "."))
        ax.plot(sizes, scores, marker=marker, ms=4, lw=1.4, color=color, label=label)
    ax.axhline(result.full_score, color="k", lw=0.8, ls="--", label=f"full model ({result.full_score:.3g})")
    ax.plot([result.n_kept], [result.circuit_score], marker="*", ms=14, color="#d95f02", ls="none",
            label=f"learned circuit: {result.n_kept} units, α = {result.alpha:.3g}")
    ax.set_xscale("symlog", linthresh=1.0)
    ax.set_xlabel(f"circuit size ({result.granularity} kept)")
    ax.set_ylabel(f"score ({result.metric}, {result.ablation} ablation)")
    lo = min(np.nanmin(v) for v in result.curve_scores.values()) if result.curve_scores else 0.0
    ax.set_ylim(max(lo, -0.5) - 0.05, max(result.full_score, 1.0 if result.metric in ("r2", "accuracy") else
                                           result.full_score) + 0.05)
    ax.legend(fontsize=7, loc="lower right")
    ax.set_title("faithfulness curve")
    return ax


def plot_attention_circuits(attn, ax=None, *, which=("eqke", "evou", "direct")):
    """Heatmaps of EQKE (query × key token), EVOU (attended token × logit) and the direct path.

    ``ax``: None (a new figure), a sequence of Axes (one per panel), or one Axes split into panels.
    Returns the Axes (the first one when several are given).
    """
    from topo_mi._validation import check_choice

    which = [check_choice("which", w, ("eqke", "evou", "direct", "eqkp", "pvou")) for w in which]
    titles = {"eqke": ("EQKE: attention score", "key token", "query token"),
              "evou": ("EVOU: OV circuit", "output logit", "attended token"),
              "direct": ("direct path EU", "output logit", "query token"),
              "eqkp": ("EQKP: positional score", "key position", "query token"),
              "pvou": ("PVOU: positional OV", "output logit", "position")}
    if ax is None:
        plt = pyplot()
        fig, axes = plt.subplots(1, len(which), figsize=(4.0 * len(which), 3.6), constrained_layout=True)
        axes = np.atleast_1d(axes)
        first = axes[0]
    elif isinstance(ax, (list, tuple, np.ndarray)):
        axes = np.ravel(ax)[:len(which)]
        first = axes[0]
    else:
        first = ax
        ax.set_axis_off()
        k = len(which)
        axes = [ax.inset_axes([i / k + 0.06 / k, 0.08, 0.8 / k, 0.82]) for i in range(k)]
    for a, name in zip(axes, which):
        M = getattr(attn, name)
        lim = float(np.abs(M).max()) or 1.0
        im = a.imshow(M, cmap="RdBu_r", vmin=-lim, vmax=lim, aspect="auto", origin="lower",
                      interpolation="nearest")
        title, xl, yl = titles[name]
        a.set_title(title, fontsize=9)
        a.set_xlabel(xl, fontsize=8)
        a.set_ylabel(yl, fontsize=8)
        a.tick_params(labelsize=7)
        a.figure.colorbar(im, ax=a, fraction=0.046, pad=0.03)
    return first


__all__ = ["plot_circuit", "plot_graph", "plot_faithfulness", "plot_attention_circuits"]
