"""Vietoris–Rips persistence: topo_mi.topology.persistence vs ripser, gudhi and giotto-ph.

Same data, same complex (the Vietoris–Rips filtration of the same points, H0..H_max_dim over
Z/2), one timed run each (``--repeat`` for best-of-k). Peers are called directly, on the point
cloud, the way their documentation shows: ``ripser.ripser(X, maxdim=...)``,
``gudhi.sklearn.RipsPersistence(...).fit_transform([X])``, ``gph.ripser_parallel(X, maxdim=...,
n_threads=<all cores>)`` (giotto-ph is optional: skipped when not importable). topo_mi's time is
the whole call, from points to the canonical result. Every peer's diagrams are checked against
topo_mi's (bottleneck distance, after float32 rounding for ripser/giotto-ph).

Cases (the issue's):
  a. 1,000 points of a noisy circle in R^64 (noise std 0.02 per coordinate), H0-H1
  b. 2,000 Gaussian points in R^64, H0-H1
  c. 500 points of the unit sphere S^2, H0-H2
  d. 100,000 x 768 activations (a torus through a random 2-layer ReLU network, float32),
     1,000 max-min landmarks, H0-H1; peers get the same 1,000 landmarks (persistence only);
     with --ripser-nperm ripser also runs its own greedy permutation (n_perm=1000) from all points.

Usage:
  python benchmarks/bench_topology.py            # cases a-d
  python benchmarks/bench_topology.py --quick    # small smoke run (seconds)
  python benchmarks/bench_topology.py --cases ab --repeat 3
  python benchmarks/bench_topology.py --sweep    # backend sweep behind backend="auto"

Ratios are printed, never asserted; the machine's load (other jobs) is printed with them.
"""
from __future__ import annotations

import argparse
import gc
import importlib.util
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from topo_mi import datasets  # noqa: E402
from topo_mi.topology import bottleneck, persistence  # noqa: E402

HAS_GPH = importlib.util.find_spec("gph") is not None
N_CPU = os.cpu_count() or 1


def _time(fn, repeat):
    best, out = np.inf, None
    for _ in range(repeat):
        gc.collect()
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


# -- data -----------------------------------------------------------------------------------------
def noisy_circle(n, dim=64, noise=0.02, seed=0):
    return datasets.make("circle", n=n, noise=noise, ambient_dim=dim, seed=seed).X


def gaussian(n, dim=64, seed=0):
    return np.random.default_rng(seed).normal(size=(n, dim))


def sphere(n, seed=0):
    return datasets.make("sphere", n=n, seed=seed).X


def activations(n, dim=768, seed=0):
    """A torus in R^3 through a random ReLU network 3 -> 256 -> dim, plus small noise (float32)."""
    rng = np.random.default_rng(seed)
    Z = datasets.make("torus", n=n, seed=seed).X
    W1 = rng.normal(size=(3, 256)) / np.sqrt(3)
    b1 = 0.5 * rng.normal(size=256)
    W2 = rng.normal(size=(256, dim)) / np.sqrt(256)
    b2 = 0.1 * rng.normal(size=dim)
    out = np.empty((n, dim), dtype=np.float32)
    for s in range(0, n, 10_000):  # in blocks: float64 temporaries stay small
        H = np.maximum(Z[s:s + 10_000] @ W1 + b1, 0.0)
        A = np.maximum(H @ W2 + b2, 0.0) + 0.01 * rng.normal(size=(len(H), dim))
        out[s:s + 10_000] = A
    return out


# -- peers ----------------------------------------------------------------------------------------
def run_ripser(X, max_dim):
    from ripser import ripser

    return ripser(X, maxdim=max_dim)["dgms"]


def run_gudhi(X, max_dim):
    from gudhi.sklearn.rips_persistence import RipsPersistence

    rp = RipsPersistence(list(range(max_dim + 1)), homology_coeff_field=2)
    return list(rp.fit_transform([X])[0])


def run_gph(X, max_dim):
    from gph import ripser_parallel

    return ripser_parallel(X, maxdim=max_dim, n_threads=N_CPU, collapse_edges=max_dim >= 2)["dgms"]


PEERS = {"ripser": run_ripser, "gudhi": run_gudhi}
if HAS_GPH:
    PEERS["giotto-ph"] = run_gph


def _agreement(ours, theirs):
    from topo_mi.topology._backends import canonical_diagrams

    d = canonical_diagrams([np.asarray(x, dtype=np.float64) for x in theirs], ours.max_dim)
    return float(np.max(bottleneck(ours.diagrams, d)))


def _warm_up():
    """Import every library and run each once on a tiny cloud (imports are not timed)."""
    X = np.random.default_rng(0).normal(size=(20, 3))
    persistence(X, max_dim=2)
    persistence(X, max_dim=0)
    for fn in PEERS.values():
        fn(X, 1)


# -- cases ----------------------------------------------------------------------------------------
def _interleaved(jobs, repeat):
    """Best of ``repeat`` for each job, the jobs taken in turn (load drift hits all of them)."""
    best = {name: np.inf for name in jobs}
    outs = {}
    for _ in range(repeat):
        for name, fn in jobs.items():
            t, outs[name] = _time(fn, 1)
            best[name] = min(best[name], t)
    return best, outs


def case_rows(name, X, max_dim, repeat, label):
    jobs = {"topo_mi": lambda: persistence(X, max_dim=max_dim)}
    jobs.update({peer: (lambda fn=fn: fn(X, max_dim)) for peer, fn in PEERS.items()})
    best, outs = _interleaved(jobs, repeat)
    ours = outs["topo_mi"]
    peers = {peer: (best[peer], _agreement(ours, outs[peer])) for peer in PEERS}
    return [(name, label, max_dim, best["topo_mi"], ours.backend, peers, None)]


def case_d(n, n_landmarks, repeat, with_nperm=False):
    A = activations(n)
    t_ours, ours = _time(lambda: persistence(A, max_dim=1, n_landmarks=n_landmarks, seed=0), repeat)
    L = A[ours.landmark_indices].astype(np.float64)
    peers = {}
    for peer, fn in PEERS.items():
        t, out = _time(lambda fn=fn: fn(L, 1), repeat)
        peers[peer] = (t, _agreement(ours, out))
    extra = {"timings": ours.timings, "cover_radius": ours.cover_radius, "bound": ours.bottleneck_bound,
             "n": n, "dim": A.shape[1], "n_landmarks": n_landmarks}
    if with_nperm:
        from ripser import ripser

        t0 = time.perf_counter()
        res = ripser(A, maxdim=1, n_perm=n_landmarks)
        extra["ripser_nperm"] = (time.perf_counter() - t0, float(res["r_cover"]))
    extra["total"] = t_ours
    same_work = sum(v for k, v in ours.timings.items() if k != "landmarks")  # what the peers do
    return [("d", f"{n:,} x {A.shape[1]}, {n_landmarks} landmarks", 1, same_work, ours.backend, peers, extra)]


def _progress(rows):
    for case, label, md, t, backend, peers, extra in rows:
        times = ", ".join(f"{p} {v[0]:.3f} s" for p, v in peers.items())
        print(f"# case {case} ({label}, H0-H{md}): topo_mi {t:.3f} s ({backend}); {times}", flush=True)
    return rows


def print_table(rows):
    names = list(PEERS)
    head = f"| case | data | H | topo_mi (s) | backend | " + " | ".join(f"{p} (s)" for p in names) + \
           " | fastest peer | ratio | max bottleneck vs peers |"
    print(head)
    print("|" + "---|" * (head.count("|") - 1))
    for case, label, md, t, backend, peers, extra in rows:
        fastest = min(peers, key=lambda p: peers[p][0])
        tf = peers[fastest][0]
        agree = max(a for _, a in peers.values())
        cells = " | ".join(f"{peers[p][0]:.3f}" for p in names)
        print(f"| {case} | {label} | 0-{md} | {t:.3f} | {backend} | {cells} | {fastest} | "
              f"{t / tf:.2f} | {agree:.1e} |")
    for case, label, md, t, backend, peers, extra in rows:
        if extra:
            tm = extra["timings"]
            print(f"\ncase {case}: topo_mi {extra['total']:.1f} s in all = landmarks {tm['landmarks']:.1f} s + distances "
                  f"{tm['distances']:.2f} s + estimate {tm['estimate']:.2f} s + persistence {tm['persistence']:.2f} s; "
                  f"cover radius r = {extra['cover_radius']:.4g}, certified bottleneck bound 2r = {extra['bound']:.4g}; "
                  "peers timed on the same landmarks, and the table compares the same work (distances + persistence)")
            if "ripser_nperm" in extra:
                tn, rc = extra["ripser_nperm"]
                print(f"case {case}: ripser(X, maxdim=1, n_perm={extra['n_landmarks']}) from all points (its own "
                      f"greedy permutation): {tn:.1f} s, its r_cover = {rc:.4g}")


def sweep(repeat):
    """Every backend on the same inputs (the measurements behind backend='auto')."""
    backends = ["mst", "gudhi", "ripser"] + (["giotto-ph"] if HAS_GPH else [])
    shapes = {"circle R^64": noisy_circle, "gauss R^64": gaussian, "sphere R^3": sphere}
    print("| data | n | H | " + " | ".join(backends) + " | fastest |")
    print("|" + "---|" * (4 + len(backends)))
    for sname, gen in shapes.items():
        for n in (200, 500, 1000):
            for md in (0, 1, 2):
                if md == 2 and n > (300 if sname == "sphere R^3" else 200):
                    continue
                X = gen(n)
                jobs = {b: (lambda b=b: persistence(X, max_dim=md, backend=b))
                        for b in backends if not (b == "mst" and md > 0)}
                times, _ = _interleaved(jobs, repeat)
                cells = " | ".join(f"{times[b]:.3f}" if b in times else "-" for b in backends)
                print(f"| {sname} | {n} | 0-{md} | {cells} | {min(times, key=times.get)} |", flush=True)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small sizes: a smoke run in seconds")
    ap.add_argument("--cases", default="abcd", help="which cases to run (default abcd)")
    ap.add_argument("--repeat", type=int, default=1, help="best of this many runs (default 1)")
    ap.add_argument("--sweep", action="store_true", help="time every backend on a size grid instead")
    ap.add_argument("--ripser-nperm", action="store_true",
                    help="case d: also time ripser's own greedy permutation (n_perm) from all points (slow)")
    args = ap.parse_args(argv)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"# bench_topology: {N_CPU} cores, load average {load:.1f}, giotto-ph "
          f"{'available' if HAS_GPH else 'not installed (skipped)'}, best of {args.repeat}\n")
    _warm_up()
    if args.sweep:
        sweep(args.repeat)
        return
    q = args.quick
    rows = []
    if "a" in args.cases:
        n = 150 if q else 1000
        rows += _progress(case_rows("a", noisy_circle(n), 1, args.repeat, f"{n:,} noisy circle in R^64"))
    if "b" in args.cases:
        n = 200 if q else 2000
        rows += _progress(case_rows("b", gaussian(n), 1, args.repeat, f"{n:,} Gaussian in R^64"))
    if "c" in args.cases:
        n = 100 if q else 500
        rows += _progress(case_rows("c", sphere(n), 2, args.repeat, f"{n:,} sphere S^2"))
    if "d" in args.cases:
        rows += _progress(case_d(5_000 if q else 100_000, 100 if q else 1000, args.repeat,
                                 with_nperm=args.ripser_nperm))
    print()
    print_table(rows)


if __name__ == "__main__":
    main()
