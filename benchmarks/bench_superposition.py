"""Toy models of superposition: batched training against one model at a time.

Trains the paper's setting (n = 5 features, m = 2 hidden, I_i = 0.9^i, batch 1,024, AdamW lr 1e-3) for
``--instances`` densities ``20^(-linspace(0, 1, k))`` three ways, interleaved ``--repeats`` times:

1. ``loop``: ``topo_mi.models.train_superposition`` on one ``ToySuperposition`` per instance (what a
   user of the single-model API writes);
2. ``notebook``: a plain PyTorch transcription of the authors' notebook (one (instances, features,
   hidden) tensor, one random stream for all instances, ``torch.optim.AdamW`` with defaults);
3. ``topo_mi``: ``topo_mi.superposition.train_toy_models`` (one batched computation, each instance its
   own data stream, so each instance equals its single-model training; checked here).

Prints seconds per run and the ratios, and the largest weight difference between the batched run and
the loop (float32; same seeds).

    python benchmarks/bench_superposition.py [--instances 10] [--steps 2000] [--repeats 3] [--quick]
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from topo_mi.models import ToySuperposition, train_superposition
from topo_mi.superposition import train_toy_models


def run_loop(densities, steps, seeds):
    Ws = []
    for d, s in zip(densities, seeds):
        model = ToySuperposition(5, 2, seed=s)
        train_superposition(model, sparsity=1.0 - d, importance_decay=0.9, steps=steps, seed=s)
        Ws.append(model.W.detach().numpy().T)
    return np.stack(Ws)


def run_notebook(densities, steps, seed=0):
    """The notebook's ``Model`` and ``optimize`` (constant learning rate), transcribed."""
    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(seed)
    n_inst, n, m = len(densities), 5, 2
    W = torch.nn.init.xavier_normal_(torch.empty(n_inst, n, m), generator=g).requires_grad_()
    b = torch.zeros(n_inst, n, requires_grad=True)
    p = torch.as_tensor(densities, dtype=torch.float32)[:, None]
    importance = (0.9 ** torch.arange(n, dtype=torch.float32))[None, :]
    opt = torch.optim.AdamW([W, b], lr=1e-3)
    for _ in range(steps):
        x = torch.rand(1024, n_inst, n, generator=g)
        x = torch.where(torch.rand(1024, n_inst, n, generator=g) <= p, x, torch.zeros(()))
        h = torch.einsum("...if,ifh->...ih", x, W)
        out = torch.relu(torch.einsum("...ih,ifh->...if", h, W) + b)
        loss = (importance * (x.abs() - out) ** 2).mean(dim=(0, 2)).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return W.detach().numpy()


def run_topo_mi(densities, steps, seeds):
    return train_toy_models(5, 2, sparsity=1.0 - np.asarray(densities), importance=0.9, seeds=seeds,
                            steps=steps).W


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--instances", type=int, default=10)
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="200 steps, one repeat (a smoke run)")
    args = ap.parse_args()
    steps, repeats = (200, 1) if args.quick else (args.steps, args.repeats)
    densities = list(20.0 ** -np.linspace(0, 1, args.instances))
    seeds = list(range(args.instances))
    torch.set_num_threads(1)
    print(f"n = 5, m = 2, {args.instances} instances, {steps} steps of 1,024, one thread; {repeats} interleaved "
          "repeats (median)", flush=True)
    times = {"loop": [], "notebook": [], "topo_mi": []}
    for _ in range(repeats):
        for name, fn in (("loop", lambda: run_loop(densities, steps, seeds)),
                         ("notebook", lambda: run_notebook(densities, steps)),
                         ("topo_mi", lambda: run_topo_mi(densities, steps, seeds))):
            t0 = time.perf_counter()
            out = fn()
            times[name].append(time.perf_counter() - t0)
            if name == "loop":
                W_loop = out
            if name == "topo_mi":
                W_ours = out
            print(f"  {name:9s} {times[name][-1]:8.2f} s", flush=True)
    med = {k: float(np.median(v)) for k, v in times.items()}
    print(f"median seconds: loop {med['loop']:.2f}, notebook {med['notebook']:.2f}, topo_mi {med['topo_mi']:.2f}")
    print(f"ratio loop / topo_mi     = {med['loop'] / med['topo_mi']:.1f}x")
    print(f"ratio notebook / topo_mi = {med['notebook'] / med['topo_mi']:.2f}x")
    print(f"max |W_batched - W_loop| = {np.abs(W_ours - W_loop).max():.2e}")
    # the share of the batched step spent drawing the features (each instance's own stream, as the loop's)
    gens = [torch.Generator().manual_seed(s) for s in seeds]
    buf = torch.empty(args.instances, 2, 1024, 5)
    t0 = time.perf_counter()
    for _ in range(steps):
        for k, g in enumerate(gens):
            torch.rand(2, 1024, 5, generator=g, out=buf[k])
    t_draw = time.perf_counter() - t0
    print(f"random draws alone: {t_draw:.2f} s = {100 * t_draw / med['topo_mi']:.0f} % of the batched run")


if __name__ == "__main__":
    main()
