"""The hot paths side by side with the reference a user would otherwise run, in one run.

One row per line of the performance table in the README (topology, geometry, compare,
activations), each printed as a ratio; contenders are interleaved (A, B, A, B, ...) and the
load average is printed with every row, since the development machine is shared.

Rows:
  minilm     MiniLM token vectors x 7 layers, persistence(max_error=...) vs the longest H1 bar
  landmarks  max-min landmarks, 100,000 x 768 float32, 1,000 landmarks: blocked vs the row loop
  bound      landmark bound vs the actual bottleneck distance (subsample where exact is known)
  guard      the memory guard's estimate vs the measured peak (cases a-d, one process each)
  exact      exact H0-H1 of 4,000 torus points (no threshold): certified cut vs gudhi's RipsPersistence
  cut        the certified cut vs the whole filtration on the Rips cases (a), (b), (d)
  cka        linear CKA vs the feature form written by hand in numpy
  twonn      TwoNN exact at 10k and 100k points (growth) and approximate (pynndescent) vs exact
  collect    collect() vs a bare forward pass (MLP 4 x 512)
  distances  the dense distance matrix (10,451 x 384 float32, MiniLM's size) vs the full product by hand
             and scikit-learn's euclidean_distances

Usage:
  python benchmarks/bench_hotpaths.py                  # every row at the issue's sizes
  python benchmarks/bench_hotpaths.py --quick          # small sizes (a smoke run)
  python benchmarks/bench_hotpaths.py --rows landmarks,cka --markdown
  python benchmarks/bench_hotpaths.py --rows minilm --minilm-corpus text --minilm-texts 600   # 10,451 tokens

Ratios are printed, never asserted.
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

ROWS = []


def load():
    return f"load {os.getloadavg()[0]:.1f}"


def row(what, ours, ref, ratio):
    ROWS.append((what, ours, ref, ratio, load()))
    print(f"| {what} | {ours} | {ref} | {ratio} | {ROWS[-1][4]} |", flush=True)


def interleaved(fns, repeat):
    best = [float("inf")] * len(fns)
    outs = [None] * len(fns)
    for _ in range(repeat):
        for i, fn in enumerate(fns):
            gc.collect()
            t0 = time.perf_counter()
            outs[i] = fn()
            best[i] = min(best[i], time.perf_counter() - t0)
    return best, outs


# -- rows ------------------------------------------------------------------------------------
def bench_landmarks(n, n_land, repeat):
    from bench_topology import activations

    from topo_mi._sampling import maxmin_landmarks
    from topo_mi.topology._landmarks import greedy_permutation
    from topo_mi.topology._persistence import _one_blas_thread

    A = activations(n)

    def old():
        with _one_blas_thread():  # how the row loop ran inside persistence()
            return maxmin_landmarks(A, n_land, start=0)

    (t_new, t_old), (new, ref) = interleaved([lambda: greedy_permutation(A, n_land, start=0), old], repeat)
    same = int(np.sum(new[0] == ref[0]))
    row(f"max-min landmarks, {n:,} x {A.shape[1]} float32, {n_land:,} landmarks",
        f"{t_new:.1f} s (cover radius {new[2]:.6g})",
        f"row loop (float64 copy) {t_old:.1f} s (cover radius {ref[1]:.6g}); {same}/{n_land} indices equal",
        f"{t_old / t_new:.1f}x faster")


def bench_bound(n, n_land):
    from bench_topology import activations

    from topo_mi.topology import bottleneck, persistence

    A = activations(100_000)[np.random.default_rng(0).choice(100_000, n, replace=False)]
    t0 = time.perf_counter()
    exact = persistence(A, max_dim=1)
    t_exact = time.perf_counter() - t0
    lm = persistence(A, max_dim=1, n_landmarks=n_land, seed=0)
    actual = bottleneck(lm, exact)
    row(f"landmark bound vs actual ({n:,} x 768 subsample, {n_land} landmarks, exact {t_exact:.0f} s)",
        f"bound 2r = {lm.bottleneck_bound:.3g}", f"actual bottleneck H0 {actual[0]:.3g}, H1 {actual[1]:.3g}",
        f"{lm.bottleneck_bound / max(actual.max(), 1e-12):.1f}x loose")


def bench_minilm(n_texts, max_error, corpus="sentences", jobs=1):
    from topo_mi import datasets
    from topo_mi.activations import collect_text
    from topo_mi.activations.hf import MINILM_LAYERS, load_minilm
    from topo_mi.topology import persistence

    texts = [str(t) for t in datasets.make(corpus).X][:n_texts]
    model, tok = load_minilm()
    acts = collect_text(model, tok, texts, layers=MINILM_LAYERS, batch_size=64, progress=False)
    worst, tot, exact_h0, n_tok, routes = np.inf, 0.0, True, 0, set()
    per, cuts = [], []
    done = {}
    if jobs > 1:  # the layers side by side in worker processes, through the pipeline's executor
        from topo_mi.parallel import get_executor
        from topo_mi.pipelines import betti_profile

        t0 = time.perf_counter()
        prof = betti_profile({n: np.asarray(acts[n], dtype=np.float32) for n in MINILM_LAYERS}, max_dim=1,
                             max_error=max_error, executor=get_executor("process", n_workers=jobs), progress=False)
        wall = time.perf_counter() - t0
        done = {n: (r, r.elapsed_s) for n, r in zip(prof.layers, prof.results)}
    for name in MINILM_LAYERS:
        X = np.asarray(acts[name], dtype=np.float32)
        n_tok = len(X)
        t0 = time.perf_counter()
        r, el = done.get(name) or (persistence(X, max_dim=1, max_error=max_error), None)
        el = time.perf_counter() - t0 if el is None else el
        tot += el
        h1 = r.diagrams[1]
        longest = float((h1[:, 1] - h1[:, 0]).max()) if len(h1) else 0.0
        worst = min(worst, longest - r.error_bounds[1])
        exact_h0 &= r.error_bounds[0] == 0.0
        routes.add(r.route)
        n_distinct = len(np.unique(X, axis=0))  # repeated tokens: the exact routes merge them above H0
        per.append(f"{r.error_bounds[1]:.3g}/{longest:.3g} ({el:.0f} s, {r.route}"
                   + (f", {n_distinct:,} distinct" if n_distinct < n_tok else "") + ")")
        if r.cut is not None:  # the certified cut's birth bound and the collapse radius against R_enc
            cuts.append(f"{r.cut['birth_bound'] / r.cut['enclosing_radius']:.2f}/"
                        f"{r.cut['collapse_radius']:.4g}/{r.cut['enclosing_radius']:.4g}")
    row(f"MiniLM, 7 layers x {n_tok:,} token vectors, max_error={max_error}",
        f"route {','.join(sorted(routes))}; H1 bound/longest bar per layer {' '.join(per)}; H0 exact: {exact_h0}"
        + (f"; per layer cut birth bound / R_enc, collapse radius / R_enc {' '.join(cuts)}" if cuts else ""),
        f"{tot:.0f} s of persistence in all" + (f", {wall:.0f} s wall with {jobs} worker processes" if jobs > 1 else "")
        + " (target 60 s)",
        "bound below every longest H1 bar" if worst > 0 else "bound NOT below every longest H1 bar")


_GUARD_CASE = r"""
import sys, json, resource, time, numpy as np
sys.path.insert(0, {root!r}); sys.path.insert(0, {bench!r})
import bench_topology as bt
from topo_mi.topology import persistence, _resources as rs, _metrics as mt
case = {case!r}
if case == "a": X, md = bt.noisy_circle(1000), 1
elif case == "b": X, md = bt.gaussian(2000), 1
elif case == "c": X, md = bt.sphere(500), 2
else:
    A = bt.activations(100_000); r = persistence(A, max_dim=0, n_landmarks=1000, seed=0)
    X, md = A[r.landmark_indices].astype(np.float64), 1; del A
base = rs._status_kb("VmRSS")
rs._reset_peak()  # the high-water mark from here on
t = time.perf_counter(); res = persistence(X, max_dim=md, memory_limit=1 << 62); t = time.perf_counter() - t
peak = rs._status_kb("VmHWM")
# the guard's estimate of the complex that ran (the certified cut's last threshold, if it applied)
cut = np.inf if res.cut is None else res.cut["cut"]
D = mt.distance_matrix_of(X, "euclidean")
est = rs.check_complex_fits(D, n=len(D), max_dim=md, threshold=cut, backend="gudhi", limit=1 << 62, pilot=True)
print(json.dumps({{"est": est["bytes"], "peak": peak - base, "base": base, "t": t, "cut": cut}}))
"""


def bench_guard(cases):
    for c in cases:
        code = _GUARD_CASE.format(root=str(ROOT), bench=str(ROOT / "benchmarks"), case=c)
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        if out.returncode:
            row(f"memory guard, case {c}", "failed", out.stderr.strip().splitlines()[-1:], "-")
            continue
        res = json.loads(out.stdout.strip().splitlines()[-1])
        cut = "" if res["cut"] == float("inf") else f", cut at {res['cut']:.3g}"
        row(f"memory guard, case {c} (Rips {res['t']:.1f} s{cut})", f"estimate {res['est'] / 1e6:.0f} MB",
            f"measured peak {res['peak'] / 1e6:.0f} MB (distance matrix and backend) above the "
            f"{res['base'] / 1e6:.0f} MB the process held", f"peak / estimate {res['peak'] / res['est']:.2f}")


_EXACT_CASE = r"""
import sys, json, time, numpy as np
sys.path.insert(0, {root!r})
from topo_mi import datasets
from topo_mi.topology import _resources as rs
X = datasets.make("torus", n={n}, seed=0).X
rs._reset_peak()
base = rs._status_kb("VmRSS")
t = time.perf_counter()
if {who!r} == "topo_mi":
    from topo_mi.topology import persistence
    r = persistence(X, max_dim=1, memory_limit=4 << 30)
    dgms, cut = r.diagrams, r.cut["cut"] if r.cut else float("inf")
else:
    from gudhi.sklearn.rips_persistence import RipsPersistence
    dgms, cut = RipsPersistence([0, 1], homology_coeff_field=2).fit_transform([X])[0], float("inf")
t = time.perf_counter() - t
h1 = np.asarray(dgms[1])
print(json.dumps({{"t": t, "peak": rs._status_kb("VmHWM") - base, "cut": cut, "n_h1": len(h1),
                  "h1": sorted(map(tuple, h1.tolist()))}}))
"""


def bench_exact_rips(n):
    """Exact H0-H1 of a torus in R^3 without a threshold: topo_mi (certified cut) vs gudhi's
    RipsPersistence, one process each (peak memory), topo_mi first."""
    out = {}
    for who in ("topo_mi", "gudhi"):
        code = _EXACT_CASE.format(root=str(ROOT), n=n, who=who)
        p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        if p.returncode:
            row(f"exact Rips, {n:,} torus points in R^3, H0-H1 ({who})", "failed", p.stderr.strip()[-200:], "-")
            return
        out[who] = json.loads(p.stdout.strip().splitlines()[-1])
    a, b = out["topo_mi"], out["gudhi"]
    same = len(a["h1"]) == len(b["h1"]) and np.allclose(np.array(a["h1"]), np.array(b["h1"]), rtol=0, atol=1e-12)
    row(f"exact Rips, {n:,} torus points in R^3, H0-H1, no threshold given",
        f"{a['t']:.1f} s, {a['peak'] / 1e9:.2f} GB (certified cut at {a['cut']:.3g})",
        f"gudhi RipsPersistence {b['t']:.1f} s, {b['peak'] / 1e9:.2f} GB; same H1 diagram: {same}",
        f"{a['t'] / b['t']:.2f}x time, {a['peak'] / b['peak']:.2f}x memory")


def bench_cut_cases(repeat, n_acts):
    """The certified cut against the whole filtration on the Rips benchmark's H0-H1 cases (a), (b)
    and (d)'s 1,000 landmarks (of ``n_acts`` activations), interleaved, same diagrams checked."""
    import bench_topology as bt

    from topo_mi.topology import _cut, persistence

    A = bt.activations(n_acts)
    idx = persistence(A, max_dim=0, n_landmarks=1000, seed=0).landmark_indices
    cases = [("a", "1,000 noisy circle R^64", bt.noisy_circle(1000)), ("b", "2,000 Gaussian R^64", bt.gaussian(2000)),
             ("d", f"1,000 landmarks of {n_acts:,} x 768", A[idx].astype(np.float64))]
    default = _cut.CUT_MIN_POINTS

    def run(X, with_cut):
        _cut.CUT_MIN_POINTS = default if with_cut else 1 << 62
        try:
            return persistence(X, max_dim=1)
        finally:
            _cut.CUT_MIN_POINTS = default

    for case, label, X in cases:
        (t_cut, t_whole), (rc, rw) = interleaved([lambda: run(X, True), lambda: run(X, False)], repeat)
        same = all(np.array_equal(a, b) for a, b in zip(rc.diagrams, rw.diagrams))
        c = rc.cut
        where = "no cut" if c is None else (f"cut at {c['cut']:.3g} of an enclosing radius {c['enclosing_radius']:.3g}, "
                                              f"{len(c['thresholds'])} runs")
        row(f"Rips ({case}) {label}, H0-H1: certified cut vs whole filtration", f"{t_cut:.2f} s ({where})",
            f"whole filtration {t_whole:.2f} s; same diagrams: {same}", f"{t_cut / t_whole:.2f}x")


def bench_cka(n, d, repeat):
    from bench_compare import _related

    from topo_mi.compare import cka

    X, Y = _related(n, d, np.random.default_rng(0))

    def by_hand():
        Xc = X - X.mean(0, dtype=np.float64)
        Yc = Y - Y.mean(0, dtype=np.float64)
        return np.linalg.norm(Xc.T @ Yc) ** 2 / (np.linalg.norm(Xc.T @ Xc) * np.linalg.norm(Yc.T @ Yc))

    (t_ours, t_hand), (a, b) = interleaved([lambda: cka(X, Y), by_hand], repeat)
    row(f"linear CKA, {n:,} x {d:,}", f"{t_ours:.2f} s (CKA {a:.6f})", f"feature form by hand {t_hand:.2f} s "
        f"(CKA {b:.6f})", f"{t_ours / t_hand:.2f}x")


def bench_distances(n, d, repeat):
    from sklearn.metrics.pairwise import euclidean_distances as sk

    from topo_mi.topology._metrics import euclidean_distances

    X = np.random.default_rng(0).normal(size=(n, d)).astype(np.float32)

    def full_product():  # the whole A A^T, element-wise passes over the matrix, then symmetrised
        A = X.astype(np.float64)
        A -= A.mean(axis=0)
        sq = np.einsum("ij,ij->i", A, A)
        D = A @ A.T
        D *= -2.0
        D += sq[:, None]
        D += sq[None, :]
        np.maximum(D, 0.0, out=D)
        np.sqrt(D, out=D)
        D = np.triu(D, 1)
        return D + D.T

    euclidean_distances(X[:200])  # BLAS warm-up
    (t_ours, t_full, t_sk), (a, b, c) = interleaved(
        [lambda: euclidean_distances(X), full_product, lambda: sk(X.astype(np.float64))], repeat)
    err = max(float(np.abs(a - b).max()), float(np.abs(a - c).max()))
    row(f"distance matrix, {n:,} x {d} float32 (float64 result)", f"{t_ours:.2f} s",
        f"full product by hand {t_full:.2f} s, scikit-learn {t_sk:.2f} s (max |diff| {err:.1e})",
        f"{t_ours / min(t_full, t_sk):.2f}x the faster")
    del a, b, c


def bench_twonn(sizes, big, sub):
    from bench_geometry import make_twonn_data

    from topo_mi.geometry import intrinsic_dimension

    times = []
    for n in sizes:
        X = make_twonn_data(n, 128)
        t0 = time.perf_counter()
        intrinsic_dimension(X)
        times.append(time.perf_counter() - t0)
    slope = np.polyfit(np.log(sizes), np.log(times), 1)[0] if len(sizes) > 1 else float("nan")
    row(f"TwoNN exact, n = {sizes[0]:,} -> {sizes[-1]:,} at d = 128",
        " -> ".join(f"{t:.2f} s" for t in times), "-", f"grows as n^{slope:.2f}")
    from topo_mi.geometry import _neighbors as nb

    t0 = time.perf_counter()
    nb.approximate_knn(np.random.default_rng(0).normal(size=(500, 8)), 3)
    t_jit = time.perf_counter() - t0
    X = make_twonn_data(big, 128)
    t0 = time.perf_counter()
    approx = intrinsic_dimension(X, neighbors="approximate", seed=0)
    t_big = time.perf_counter() - t0
    S = X[np.random.default_rng(1).choice(big, sub, replace=False)] if sub < big else X
    (t_e, t_a), (ex, ap) = interleaved([lambda: intrinsic_dimension(S),
                                        lambda: intrinsic_dimension(S, neighbors="approximate", seed=0)], 1)
    row(f"TwoNN approximate (pynndescent), {big:,} x 128; exact vs approximate on {sub:,}",
        f"{t_big:.1f} s, ID {approx.value:.3f} (agreement {approx.params['neighbor_agreement']:.3f}); "
        f"numba compile {t_jit:.0f} s once per process",
        f"on {sub:,}: exact {t_e:.1f} s ID {ex.value:.3f}, approximate {t_a:.1f} s ID {ap.value:.3f}",
        f"{abs(ap.value / ex.value - 1) * 100:.2f} % off exact; {t_e / t_a:.1f}x faster")


def bench_collect(n, repeat):
    from bench_collect import mlp_case

    what, m = mlp_case(n, repeat)  # ratios: medians of each round's paired ratio (bench_collect.Medians)
    t_bare, t_mem, t_disk, t_hand, t_hand_disk = m
    row(f"collect, {what}", f"{t_mem:.2f} s in memory, {t_disk:.2f} s to disk",
        f"bare forward {t_bare:.2f} s; hooks by hand into np.empty {t_hand:.2f} s ({m.ratio(3):.2f}x), "
        f"into raw files {t_hand_disk:.2f} s ({m.ratio(4):.2f}x)",
        f"{m.ratio(1):.2f}x (disk {m.ratio(2):.2f}x); {m.ratio(1, 3):.2f}x the hand-written "
        f"(disk {m.ratio(2, 4):.2f}x)")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--rows", default="landmarks,bound,guard,exact,cut,cka,twonn,collect,distances,minilm")
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--minilm-error", type=float, default=1.0)
    ap.add_argument("--minilm-texts", type=int, default=None,
                    help="texts of the MiniLM row (default 200 sentences; 600 texts of --minilm-corpus text "
                         "are 10,451 tokens)")
    ap.add_argument("--minilm-corpus", default="sentences", choices=["sentences", "text"])
    ap.add_argument("--minilm-jobs", type=int, default=1, help="layers side by side in this many processes")
    args = ap.parse_args(argv)
    want = set(args.rows.split(","))
    q = args.quick
    print(f"# bench_hotpaths on {os.cpu_count()} cores, {load()}\n")
    print("| what | topo_mi | reference in the same run | ratio | load |\n|---|---|---|---|---|")
    if "landmarks" in want:
        bench_landmarks(20_000 if q else 100_000, 200 if q else 1000, args.repeat)
    if "bound" in want:
        bench_bound(600 if q else 2000, 100 if q else 500)
    if "guard" in want:
        bench_guard("a" if q else "abcd")
    if "exact" in want:
        bench_exact_rips(1500 if q else 4000)
    if "cut" in want:
        bench_cut_cases(1 if q else 2, 5000 if q else 20_000)
    if "cka" in want:
        bench_cka(5000 if q else 50_000, 256 if q else 1024, args.repeat)
    if "twonn" in want:
        bench_twonn([2000, 5000] if q else [10_000, 30_000, 100_000], 20_000 if q else 1_000_000,
                    5000 if q else 100_000)
    if "collect" in want:
        bench_collect(5000 if q else 50_000, max(args.repeat, 3))
    if "distances" in want:
        bench_distances(2000 if q else 10_451, 384, max(args.repeat, 2))
    if "minilm" in want:
        bench_minilm(args.minilm_texts or (40 if q else 200), args.minilm_error, args.minilm_corpus,
                     args.minilm_jobs)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
    print(f"\npeak memory of this process {peak:.1f} GB; {load()}")


if __name__ == "__main__":
    main()
