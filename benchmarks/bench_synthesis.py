"""Synthesis benchmark: per-input δ, coverage curves with bootstrap intervals, and K.

The peer a user would otherwise write is a plain loop over inputs (no library reports per-input
coverage):

1. δ_I(x) for a rank-r projection of a hidden layer of the zoo's D-I ReLU MLP: ``discrepancies``
   (batched forwards, one intervention per batch) versus a loop running the network and the
   intervened network on one input at a time (timed on a sample of inputs, extrapolated; values
   checked equal on that sample).
2. The coverage curve on 100 ε, the coverage at ε, the area and their percentile-bootstrap
   intervals (1,000 resamples) plus K with its argmax: ``coverage_stats`` + ``consistency``
   versus a loop over resamples and ε (``np.mean(δ[idx] < ε)`` for each) and a Python max loop
   over inputs for K — on the same resample indices, so the intervals are checked identical.

Prints times and ratios; ``--quick`` uses fewer inputs.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _bench_delta(n: int, sample: int):
    import torch

    import topo_mi.synthesis as S
    from topo_mi import models as zoo
    from topo_mi.causal import Replace, intervene
    from topo_mi.datasets import make

    net = zoo.pretrained("mlp-naitzat-d1-relu")
    X = np.asarray(make("naitzat_d1", resolution=0.19).X, np.float32)
    x = X[np.random.default_rng(0).choice(len(X), n, replace=n > len(X))]
    proj = S.projection(net, "act5", 2, x)
    S.discrepancies(net, [proj], x[:64])  # warm-up
    t = time.perf_counter()
    d = S.discrepancies(net, [proj], x)[proj.name]
    t_lib = time.perf_counter() - t

    op = proj.ops(net, None, None, None)["act5"]
    t = time.perf_counter()
    loop = np.empty(sample)
    with torch.no_grad():
        for i in range(sample):
            xi = torch.as_tensor(x[i:i + 1])
            ref = net(xi).double()
            with intervene(net, {"act5": Replace(op)}):
                out = net(xi).double()
            loop[i] = float(torch.linalg.vector_norm(ref - out))
    t_loop = (time.perf_counter() - t) * n / sample
    err = float(np.abs(loop - d[:sample]).max())
    return t_lib, t_loop, err


def _loop_stats(d, grid, eps, n_boot, ci, rng):
    n = d.size
    draws = rng.integers(0, n, size=(n_boot, n))
    curves = np.empty((n_boot, grid.size))
    covs = np.empty(n_boot)
    emax = grid[-1]
    for b in range(n_boot):
        s = d[draws[b]]
        for j, e in enumerate(grid):
            curves[b, j] = np.mean(s < e)
        covs[b] = np.mean(s < eps)
    lo, hi = np.quantile(curves, [(1 - ci) / 2, (1 + ci) / 2], axis=0)
    best, arg = -1.0, -1
    for i in range(n):
        if d[i] > best:
            best, arg = d[i], i
    area = np.mean(1 - np.minimum(d, emax) / emax)
    return lo, hi, covs, best, arg, area


def _bench_stats(n: int, n_boot: int):
    import topo_mi.synthesis as S

    d = np.random.default_rng(1).exponential(size=n)
    emax = float(d.max()) * (1 + 1e-9)
    from topo_mi.synthesis._coverage import default_grid

    grid = default_grid(emax, 100)
    t = time.perf_counter()
    st = S.coverage_stats(d, eps=0.7, eps_grid=grid, n_boot=n_boot, seed=0)
    K, sup, arg = S.consistency(d, 1.0)
    t_lib = time.perf_counter() - t
    t = time.perf_counter()
    lo, hi, covs, best, barg, area = _loop_stats(d, grid, 0.7, n_boot, 0.95, np.random.default_rng(0))
    t_loop = time.perf_counter() - t
    curve = np.array([np.mean(d < e) for e in grid])
    same = (np.allclose(np.minimum(lo, curve), st["curve_low"]) and np.allclose(np.maximum(hi, curve), st["curve_high"])
            and arg == barg and np.isclose(st["area"], area))
    return t_lib, t_loop, same


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args(argv)
    import os

    import torch

    torch.set_num_threads(1)
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; 1 torch thread", flush=True)
    n = 2000 if args.quick else 10000
    t_lib, t_loop, err = _bench_delta(n, 200 if args.quick else 500)
    print(f"1. δ of a rank-2 projection, {n} inputs: discrepancies {t_lib:.3f} s, per-input loop "
          f"{t_loop:.2f} s (extrapolated) -> {t_loop / t_lib:.0f}x; max |difference| {err:.2g}", flush=True)
    for nn_, nb in ((1000, 1000), (10000, 1000)) if not args.quick else ((1000, 200),):
        t_lib, t_loop, same = _bench_stats(nn_, nb)
        print(f"2. coverage curve (100 ε) + intervals ({nb} resamples) + K, {nn_} inputs: coverage_stats "
              f"{t_lib:.3f} s, loop {t_loop:.2f} s -> {t_loop / t_lib:.0f}x; identical intervals: {same}", flush=True)


if __name__ == "__main__":
    main()
