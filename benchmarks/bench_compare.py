"""Representation-comparison benchmark.

1. Linear CKA on 50,000 x 1,024 activations (two float64 matrices): the feature form
   ``‖YᵀX‖²/(‖XᵀX‖‖YᵀY‖)`` (O(n·d²)) on all rows, versus the Gram-matrix formula
   (n x n matrices: 20 GB each at n = 50,000, so it is timed on a 5,000-row subsample and
   extrapolated by n²), and versus peer packages when importable (ckatorch, repsim; timed on
   the same subsample: both build n x n Gram matrices). Values are checked equal.
2. A 12 x 12 layer CKA matrix (1,000 samples, widths 256) with 1,000 permutations: the batched
   engine versus a loop of ``cka()`` calls on permuted rows (timed on 5 permutations,
   extrapolated).
3. RTD, 500 points per trial (two Rips H1 computations on 1,000 points each): seconds per trial.

Prints times and ratios (no thresholds). ``--quick``: 10,000 x 256 CKA (subsample 2,000), 100
permutations, RTD with 200 points per trial.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _timed(fn, repeat=1):
    best, out = np.inf, None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return out, best


def _related(n, d, rng, rank=32):
    Z = rng.standard_normal((n, rank), dtype=np.float32)
    X = np.tanh(Z @ rng.standard_normal((rank, d), dtype=np.float32) / np.sqrt(rank))
    Y = Z @ rng.standard_normal((rank, d), dtype=np.float32) + rng.standard_normal((n, d), dtype=np.float32)
    return X, Y


def _gram_cka(X, Y):
    """The Gram-matrix formula written out (Kornblith et al. 2019): <HKH, HLH> / (‖HKH‖ ‖HLH‖)."""
    X = np.asarray(X, np.float64)
    Y = np.asarray(Y, np.float64)
    K, L = X @ X.T, Y @ Y.T
    for M in (K, L):
        r = M.mean(0)
        M -= r[:, None]
        M -= r[None, :]
        M += r.mean()
    return float(np.vdot(K, L) / (np.linalg.norm(K) * np.linalg.norm(L)))


def _peers():
    peers = {}
    try:
        import torch
        from ckatorch import cka_base

        def run_ckatorch(X, Y):
            return float(cka_base(torch.from_numpy(np.asarray(X, np.float64)),
                                  torch.from_numpy(np.asarray(Y, np.float64)), kernel="linear"))

        peers["ckatorch"] = run_ckatorch
    except Exception as exc:  # not installed, or its import fails
        print(f"   ckatorch: skipped ({type(exc).__name__}: {exc})")
    try:
        import repsim

        def run_repsim(X, Y):
            M = repsim.cka([np.asarray(X, np.float64), np.asarray(Y, np.float64)], kernel_type="linear")
            return float(np.asarray(M)[0, 1])

        peers["repsim"] = run_repsim
    except Exception as exc:
        print(f"   repsim: skipped ({type(exc).__name__}: {exc})")
    return peers


def bench_cka(n, d, n_sub, rng):
    from topo_mi.compare import cka

    print(f"1. linear CKA, {n:,} x {d:,} (float32 activations, float64 arithmetic)")
    X, Y = _related(n, d, rng)
    full, t_feat = _timed(lambda: cka(X, Y, form="features"))
    print(f"   feature form, all {n:,} rows:            {t_feat:8.2f} s   CKA = {full:.6f}")
    Xs, Ys = X[:n_sub], Y[:n_sub]
    sub_feat, t_feat_sub = _timed(lambda: cka(Xs, Ys, form="features"), repeat=2)
    sub_gram, t_gram_sub = _timed(lambda: _gram_cka(Xs, Ys))
    ours_gram, t_ours_gram = _timed(lambda: cka(Xs, Ys, form="gram"))
    scale = (n / n_sub) ** 2
    print(f"   subsample of {n_sub:,} rows: feature form     {t_feat_sub:8.3f} s   CKA = {sub_feat:.6f}")
    print(f"   subsample: Gram formula (reference code)  {t_gram_sub:8.3f} s   CKA = {sub_gram:.6f}"
          f"   ({t_gram_sub / t_feat_sub:.1f}x the feature form)")
    print(f"   subsample: cka(form='gram')               {t_ours_gram:8.3f} s   CKA = {ours_gram:.6f}")
    assert abs(sub_gram - sub_feat) < 1e-8 and abs(ours_gram - sub_feat) < 1e-8
    print(f"   Gram formula extrapolated to n = {n:,} (x{scale:.0f}, {8 * n * n / 1e9:.0f} GB per matrix): "
          f"~{t_gram_sub * scale:,.0f} s, {t_gram_sub * scale / t_feat:,.0f}x the feature form")
    rows = {"feature form (all rows)": t_feat, f"Gram formula ({n_sub:,} rows)": t_gram_sub}
    for name, fn in _peers().items():
        try:
            val, t = _timed(lambda: fn(Xs, Ys))
        except Exception as exc:  # pragma: no cover - a peer failing at run time
            print(f"   {name}: failed ({type(exc).__name__}: {exc})")
            continue
        print(f"   subsample: {name:<31}{t:8.3f} s   CKA = {val:.6f}   ({t / t_feat_sub:.1f}x the feature form)")
        rows[f"{name} ({n_sub:,} rows)"] = t
    return rows


def bench_permutations(n, width, n_layers, n_perm, rng):
    from topo_mi.compare import cka
    from topo_mi.pipelines.comparison import compare

    print(f"2. {n_layers} x {n_layers} layer CKA matrix, {n:,} samples, widths {width}, {n_perm:,} permutations")
    Z = rng.standard_normal((n, 16))
    A, B = {}, {}
    for l in range(n_layers):  # the second half of B's layers is unrelated noise
        A[f"l{l}"] = np.tanh(Z @ rng.standard_normal((16, width)) + 0.1 * l)
        signal = np.tanh(Z @ rng.standard_normal((16, width))) if l < n_layers // 2 else 0.0
        B[f"l{l}"] = signal + 0.5 * rng.standard_normal((n, width))
    res, t = _timed(lambda: compare(A, B, methods=("cka",), n_perm=n_perm, seed=0))
    print(f"   batched engine ({res.notes['cka']}): {t:8.2f} s "
          f"({t / n_perm * 1e3:.1f} ms per permutation for all {n_layers ** 2} pairs)")
    k = 5
    perms = [np.random.default_rng(i).permutation(n) for i in range(k)]
    Xs, Ys = list(A.values()), list(B.values())
    _, t_loop = _timed(lambda: [[[cka(x, y[p]) for y in Ys] for x in Xs] for p in perms])
    est = t_loop / k * n_perm
    print(f"   loop of cka() calls: {t_loop / k:.2f} s per permutation -> ~{est:,.0f} s for {n_perm:,} "
          f"({est / t:.0f}x the engine)")
    from topo_mi.compare import adjust_pvalues

    related = n_layers * (n_layers // 2)
    for corr in ("holm", "bh"):
        sig = adjust_pvalues(res.p_values["cka"], corr) < 0.05
        print(f"   significant at 0.05 after {corr}: {int(sig[:, :n_layers // 2].sum())} of the {related} related "
              f"pairs, {int(sig[:, n_layers // 2:].sum())} of the {n_layers ** 2 - related} unrelated "
              f"(smallest possible p = 1/{n_perm + 1})")
    return t, est


def bench_rtd(batch, trials, rng):
    from topo_mi.compare import rtd

    print(f"3. RTD, {batch} points per trial, {trials} trials (CPU, gudhi Rips H1 on 2 x {2 * batch} points)")
    n = max(2 * batch, 1000)
    X = rng.standard_normal((n, 64))
    Y = np.tanh(X @ rng.standard_normal((64, 32)) / 8) + 0.1 * rng.standard_normal((n, 32))
    val, t = _timed(lambda: rtd(X, Y, trials=trials, batch=batch, seed=0))
    print(f"   {t:8.2f} s in all, {t / trials:.2f} s per trial   RTD = {val:.3f}")
    return t / trials


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small sizes (a minute or two)")
    ap.add_argument("--threads", type=int, default=None,
                    help="BLAS and torch threads (default: the libraries' own default)")
    args = ap.parse_args(argv)
    if args.threads:
        from threadpoolctl import threadpool_limits

        threadpool_limits(limits=args.threads)
        try:
            import torch

            torch.set_num_threads(args.threads)
        except ImportError:  # pragma: no cover
            pass
    import os

    print(f"cores: {os.cpu_count()}, threads: {args.threads or 'library default'}")
    rng = np.random.default_rng(0)
    if args.quick:
        bench_cka(10_000, 256, 2_000, rng)
        bench_permutations(500, 64, 12, 100, rng)
        bench_rtd(200, 2, rng)
    else:
        bench_cka(50_000, 1_024, 5_000, rng)
        bench_permutations(1_000, 256, 12, 1_000, rng)
        bench_rtd(500, 3, rng)


if __name__ == "__main__":
    main()
