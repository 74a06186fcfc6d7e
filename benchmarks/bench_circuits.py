"""Circuit pipeline benchmark: graph construction, circuit search, brute force.

1. Graph of a 4 × 512 MLP (random orthonormal feature bases in every hidden layer, so every edge
   weight d_jᵀ W d_i is a real dot product): ``build_graph`` (one matrix product per layer pair)
   versus a plain per-edge Python loop building the same networkx graph — the loop with
   ``W d_i`` hoisted per source (timed in full; graphs checked equal) and the naive
   ``d_jᵀ W d_i`` per edge (timed on a sample of edges, extrapolated).
2. ``find_circuit`` on the planted circuit: time, precision/recall, α-compressibility, and the
   score at equal size of magnitude pruning and first-order activation patching.
3. Brute-force max-of-4 accuracy over all 64⁴ inputs (per-token tables) versus batched forward
   passes (timed on a sample, extrapolated).

Prints ratios; ``--quick`` uses 4 × 128 widths and fewer steps.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _mlp(width: int, in_dim: int, out_dim: int, seed: int = 0):
    import torch
    from torch import nn

    torch.manual_seed(seed)
    layers = []
    dims = [in_dim] + [width] * 4
    for a, b in zip(dims[:-1], dims[1:]):
        layers += [nn.Linear(a, b), nn.ReLU()]
    layers.append(nn.Linear(width, out_dim))
    return nn.Sequential(*layers)


def _loop_graph(net, bases, names, *, hoist: bool, limit: int | None = None):
    """The reference: a per-edge Python loop adding each edge to a networkx graph."""
    import networkx as nx

    Ws = [m.weight.detach().double().numpy() for m in net if hasattr(m, "weight")]
    G = nx.DiGraph()
    for l, name in enumerate(names):
        for i in range(bases[l].shape[0]):
            G.add_node((name, i), layer=name, index=i, depth=l)
    count = 0
    for l, W in enumerate(Ws):
        for i, di in enumerate(bases[l]):
            Wd = W @ di if hoist else None
            for j, dj in enumerate(bases[l + 1]):
                w = float(dj @ Wd) if hoist else float(dj @ W @ di)
                G.add_edge((names[l], i), (names[l + 1], j), weight=w, kind="linear")
                count += 1
                if limit is not None and count >= limit:
                    return G, count
    return G, count


def bench_graph(width: int, naive_sample: int) -> dict:
    import networkx  # noqa: F401  (imported before timing: both sides use it)

    import topo_mi.circuits as C
    import topo_mi.circuits.graph  # noqa: F401

    in_dim, out_dim = width, 10
    net = _mlp(width, in_dim, out_dim)
    rng = np.random.default_rng(0)
    names = ["input", "1", "3", "5", "7", "8"]
    bases = [np.eye(in_dim)]
    feats = {}
    for name in names[1:-1]:
        q, _ = np.linalg.qr(rng.normal(size=(width, width)))
        feats[name] = q.T
        bases.append(q.T)
    bases.append(np.eye(out_dim))
    n_edges = in_dim * width + 3 * width * width + width * out_dim

    t0 = time.perf_counter()
    G = C.build_graph(net, features=feats)
    t_vec = time.perf_counter() - t0
    t0 = time.perf_counter()
    gd = C.graph_data(net, features=feats)
    t_arrays = time.perf_counter() - t0

    t0 = time.perf_counter()
    H, _ = _loop_graph(net, bases, names, hoist=True)
    t_loop = time.perf_counter() - t0
    same = set(G.edges) == set(H.edges) and G.number_of_nodes() == H.number_of_nodes()
    err = max(abs(G.edges[u, v]["weight"] - d["weight"]) for u, v, d in H.edges(data=True))
    del H

    t0 = time.perf_counter()
    _, done = _loop_graph(net, bases, names, hoist=False, limit=naive_sample)
    t_naive = (time.perf_counter() - t0) * n_edges / done
    return dict(width=width, n_edges=G.number_of_edges(), t_vec=t_vec, t_arrays=t_arrays, t_loop=t_loop,
                t_naive=t_naive, naive_sample=done, equal=same, max_weight_diff=err,
                expected_edges=n_edges, arrays_edges=int(gd.edge_src.size))


def bench_find(steps: int) -> dict:
    import topo_mi.circuits as C
    from topo_mi.circuits._planted import planted_network, precision_recall

    net, x, truth = planted_network(seed=0)
    t0 = time.perf_counter()
    res = C.find_circuit(net, x, l0=1.0, steps=steps, seed=0)
    t = time.perf_counter() - t0
    p, r = precision_recall(res.kept_edges, truth)
    at = int(np.searchsorted(res.curve_sizes, res.n_kept))
    return dict(time=t, steps=steps, precision=p, recall=r, n_kept=res.n_kept, n_units=res.n_units,
                alpha=res.alpha, circuit=res.circuit_score, magnitude=res.magnitude_score,
                patching=res.patching_score, mask_curve=res.curve_scores["mask"][at])


def bench_brute(quick: bool) -> dict | None:
    import torch

    import topo_mi.circuits as C

    try:
        from topo_mi.models.zoo import cache_path, pretrained
    except ImportError:
        return None
    if quick and not cache_path("attn-max-of-4").is_file():
        return None  # training the zoo model takes minutes: only in the full run
    m = pretrained("attn-max-of-4")
    t0 = time.perf_counter()
    acc = C.brute_force_accuracy(m)
    t_tables = time.perf_counter() - t0
    n = 1 << 18
    tokens = torch.randint(0, 64, (n, 4), generator=torch.Generator().manual_seed(0))
    t0 = time.perf_counter()
    with torch.no_grad():
        for s in range(0, n, 1 << 16):
            m(tokens[s:s + (1 << 16)])[:, -1].argmax(-1)
    t_forward = (time.perf_counter() - t0) * 64 ** 4 / n
    return dict(acc=acc, t_tables=t_tables, t_forward=t_forward, sampled=C.sampled_accuracy(m, n_samples=100_000))


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="4 × 128 widths, fewer steps, no brute force unless cached")
    args = ap.parse_args(argv)
    import torch

    width = 128 if args.quick else 512
    print(f"torch threads: {torch.get_num_threads()}")
    g = bench_graph(width, naive_sample=2_000 if args.quick else 20_000)
    print(f"\n[graph] MLP {g['width']}-{'-'.join([str(g['width'])] * 4)}-10 with random orthonormal feature bases: "
          f"{g['n_edges']:,} edges (expected {g['expected_edges']:,})")
    print(f"  build_graph (arrays + networkx):      {g['t_vec']:8.2f} s")
    print(f"  graph_data (arrays only):             {g['t_arrays']:8.2f} s")
    print(f"  per-edge loop, W d_i hoisted:         {g['t_loop']:8.2f} s   ratio {g['t_loop'] / g['t_vec']:6.1f}x")
    print(f"  per-edge loop, naive d_j^T W d_i:     {g['t_naive']:8.2f} s   ratio {g['t_naive'] / g['t_vec']:6.1f}x "
          f"(extrapolated from {g['naive_sample']:,} edges)")
    print(f"  graphs equal: {g['equal']}, max |weight difference| {g['max_weight_diff']:.2e}")

    f = bench_find(150 if args.quick else 300)
    print(f"\n[find_circuit] planted circuit (12 edges among {f['n_units']}), {f['steps']} steps: {f['time']:.2f} s")
    print(f"  kept {f['n_kept']} edges, precision {f['precision']:.3f}, recall {f['recall']:.3f}, "
          f"alpha {f['alpha']:.4f}")
    print(f"  score at equal size: L0 mask {f['circuit']:.4f} | magnitude pruning {f['magnitude']:.4f} | "
          f"activation patching {f['patching']:.4f}")

    b = bench_brute(args.quick)
    if b is None:
        print("\n[brute force] skipped (--quick and no cached attn-max-of-4)")
    else:
        print(f"\n[brute force] max-of-4 over all 64^4 = 16,777,216 inputs: accuracy {b['acc']:.6f} "
              f"(100k-sample estimate {b['sampled']:.5f})")
        print(f"  per-token tables: {b['t_tables']:7.2f} s | batched forward (extrapolated): {b['t_forward']:7.2f} s | "
              f"ratio {b['t_forward'] / b['t_tables']:.1f}x")


if __name__ == "__main__":
    main()
