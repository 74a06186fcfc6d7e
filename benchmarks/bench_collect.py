"""Collection overhead: ``topo_mi.collect`` vs a bare forward pass over the same inputs.

Cases: a 4 x 512 MLP on 100,000 inputs (all hidden layers) and the real MiniLM on sentences
(all 7 hidden states, mean-pooled); in memory and streaming to an on-disk store.
Prints seconds and the ratio collect / bare forward (goal: <= 1.15x in memory).

    python benchmarks/bench_collect.py [--quick]
"""
from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import torch
from torch import nn

import topo_mi as tm


def interleaved(fns, repeat):
    """Best-of-``repeat`` time of each function, measured in alternation so that load drifts on a
    shared machine hit every contender alike."""
    best = [float("inf")] * len(fns)
    for _ in range(repeat):
        for i, fn in enumerate(fns):
            t0 = time.perf_counter()
            fn()
            best[i] = min(best[i], time.perf_counter() - t0)
    return best


def bare_forward(model, batches, kw=False):
    model.eval()
    with torch.no_grad():
        for b in batches:
            model(**b) if kw else model(b)


def mlp_case(n, repeat):
    g = torch.Generator().manual_seed(0)
    layers = []
    d = 64
    for i in range(4):
        layers += [nn.Linear(d, 512), nn.ReLU()]
        d = 512
    model = nn.Sequential(*layers, nn.Linear(512, 10))
    X = torch.randn(n, 64, generator=g)
    bs = 1024
    batches = [X[i:i + bs] for i in range(0, n, bs)]
    names = [str(i) for i in range(1, 8, 2)]
    def to_disk():
        d = tempfile.mkdtemp()
        try:
            tm.collect(model, X, layers=names, batch_size=bs, progress=False, store=os.path.join(d, "s"))
        finally:
            shutil.rmtree(d)

    t_bare, t_mem, t_disk = interleaved([
        lambda: bare_forward(model, batches),
        lambda: tm.collect(model, X, layers=names, batch_size=bs, progress=False),
        to_disk], repeat)
    return f"MLP 4x512, n={n}, 4 layers", t_bare, t_mem, t_disk


def minilm_case(n, repeat):
    from topo_mi.activations.hf import MINILM_LAYERS, load_minilm

    model, tok = load_minilm()
    from topo_mi.datasets import make

    sents = list(make("sentences").X)
    sents = (sents * (n // len(sents) + 1))[:n]
    enc = tok(sents, padding="max_length", truncation=True, max_length=48, return_tensors="pt")
    enc = dict(enc)
    bs = 64
    batches = [{k: v[i:i + bs] for k, v in enc.items()} for i in range(0, n, bs)]
    def to_disk():
        d = tempfile.mkdtemp()
        try:
            tm.collect(model, enc, layers=MINILM_LAYERS, reduce="mean", batch_size=bs, progress=False,
                       store=os.path.join(d, "s"))
        finally:
            shutil.rmtree(d)

    t_bare, t_mem, t_disk = interleaved([
        lambda: bare_forward(model, batches, kw=True),
        lambda: tm.collect(model, enc, layers=MINILM_LAYERS, reduce="mean", batch_size=bs, progress=False),
        to_disk], repeat)
    return f"MiniLM, {n} sentences x 48 tokens, 7 states", t_bare, t_mem, t_disk


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small sizes, one repeat")
    args = ap.parse_args()
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    repeat = 1 if args.quick else 5
    rows = [mlp_case(10_000 if args.quick else 50_000, repeat)]
    try:
        rows.append(minilm_case(64 if args.quick else 256, repeat))
    except ImportError as exc:
        print(f"(MiniLM skipped: {exc})")
    print(f"{'case':<42} {'bare fwd s':>10} {'collect s':>10} {'ratio':>6} {'to disk s':>10} {'ratio':>6}")
    for name, tb, tmem, tdisk in rows:
        print(f"{name:<42} {tb:>10.3f} {tmem:>10.3f} {tmem / tb:>6.2f} {tdisk:>10.3f} {tdisk / tb:>6.2f}")


if __name__ == "__main__":
    main()
