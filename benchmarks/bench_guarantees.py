"""Compact-proof benchmark on the zoo's max-of-4 model (``attn-max-of-4``, all 64⁴ inputs).

For every strategy of ``topo_mi.guarantees``: the certified bound, the cost in FLOPs (counted and
by formula) and the wall time, with the ratios to brute force. The peer a user would otherwise
reach for is brute force by the model's own forward pass over every input (batched, float32): it
is timed on a sample of sequences and extrapolated, and its FLOPs are those of a full forward pass
per sequence (embedding, Q/K/V, scores, pattern, W_O, unembedding). Checks printed: the cubic bound
is at least 0.9 of the brute-force accuracy, and costs at least 100x fewer FLOPs than brute force.

Usage: ``python benchmarks/bench_guarantees.py [--sample 1048576]``.
"""
from __future__ import annotations

import argparse
import math
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _forward_flops(d, dm, dh, n) -> float:
    """FLOPs of one full forward pass of a one-layer attention-only transformer on n tokens."""
    return float(3 * 2 * n * dm * dh + 2 * n * n * dh + 5 * n * n + 2 * n * n * dh + 2 * n * dh * dm
                 + n * dm + 2 * n * dm * d)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sample", type=int, default=1 << 20, help="sequences for the forward-pass peer")
    args = ap.parse_args(argv)
    import torch

    from topo_mi.guarantees import STRATEGIES, prove
    from topo_mi.models import pretrained

    torch.set_num_threads(1)
    print(f"load average at start: {os.getloadavg()[0]:.2f} (cores: {os.cpu_count()})", flush=True)
    model = pretrained("attn-max-of-4")
    d, n, dm, dh = 64, 4, 32, 32
    proofs = {}
    for s in STRATEGIES:
        proofs[s] = prove(model, s)
        p = proofs[s]
        print(f"  {s:24s} bound {p.bound:.5f}  counted 2^{math.log2(p.flops_counted):5.2f} "
              f"({p.flops_counted:.3g}) formula {p.flops_formula:.3g}  {p.wall_time_s:8.3f} s  {p.complexity}",
              flush=True)
    bf = proofs["brute_force"]
    # the peer: the model's forward pass on every sequence, timed on a sample and extrapolated
    g = torch.Generator().manual_seed(0)
    tokens = torch.randint(0, d, (args.sample, n), generator=g)
    t0 = time.perf_counter()
    correct = 0
    with torch.no_grad():
        for start in range(0, args.sample, 1 << 16):
            tk = tokens[start:start + (1 << 16)]
            correct += int((model(tk)[:, -1].argmax(-1) == tk.max(1).values).sum())
    t_fwd = (time.perf_counter() - t0) * d ** n / args.sample
    f_fwd = _forward_flops(d, dm, dh, n) * d ** n
    print(f"  {'peer: forward pass':24s} sampled accuracy {correct / args.sample:.5f}  formula 2^{math.log2(f_fwd):5.2f} "
          f"({f_fwd:.3g})  {t_fwd:8.3f} s (extrapolated from {args.sample:,} sequences)")
    print("\nratios (brute force / strategy):")
    for s, p in proofs.items():
        if s == "brute_force":
            continue
        print(f"  {s:24s} FLOPs {bf.flops_counted / p.flops_counted:9.1f}x   time {bf.wall_time_s / p.wall_time_s:9.1f}x"
              f"   bound/brute {p.bound / bf.bound:.4f}   vs forward-pass peer: FLOPs {f_fwd / p.flops_counted:.3g}x, "
              f"time {t_fwd / p.wall_time_s:.3g}x")
    print(f"  {'tables brute force':24s} vs forward-pass peer: FLOPs {f_fwd / bf.flops_counted:.1f}x, "
          f"time {t_fwd / bf.wall_time_s:.1f}x")
    c = proofs["cubic"]
    ok1 = c.bound >= 0.9 * bf.bound
    ok2 = bf.flops_counted / c.flops_counted >= 100
    print(f"\ncheck cubic bound >= 0.9 brute force: {c.bound:.5f} >= {0.9 * bf.bound:.5f}: {'OK' if ok1 else 'FAIL'}")
    print(f"check cubic >= 100x fewer FLOPs than brute force: {bf.flops_counted / c.flops_counted:.1f}x: "
          f"{'OK' if ok2 else 'FAIL'}")
    print(f"load average at end: {os.getloadavg()[0]:.2f}")
    return 0 if ok1 and ok2 else 1


if __name__ == "__main__":
    raise SystemExit(main())
