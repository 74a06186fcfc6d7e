"""Lyapunov spectra: JVP tangent propagation vs full Jacobians, and model-based vs time-series estimates.

1. Spectrum of a 512-unit tanh RNN (gain 2, autonomous, float64), k = 32 exponents over
   T = 2,000 steps: ``topo_mi.dynamics.lyapunov_spectrum`` (k JVPs per step) against a naive loop
   that forms the full 512 x 512 Jacobian each step with ``torch.autograd.functional.jacobian``
   and re-orthonormalises the same initial frame. Prints seconds, the time ratio and the largest
   difference of the exponents.
2. lambda_max of the logistic map, the Hénon map and the Lorenz flow: from the model
   (``lyapunov_spectrum``, one trajectory) against ``nolds.lyap_r`` (Rosenstein, Collins & De Luca,
   Physica D 65, 1993) on the x-coordinate series of the same trajectory; then the ensemble
   estimates the reference tests use. Prints seconds and errors against the reference values
   (Sprott).

    python benchmarks/bench_dynamics.py [--quick] [--threads N]

``--quick``: T = 200 for the RNN and shorter series (a smoke run, not numbers to report).
"""
from __future__ import annotations

import argparse
import importlib
import importlib.util
import math
import sys
import time
import types

import numpy as np
import torch

from topo_mi.dynamics import lyapunov_spectrum, systems


def load_nolds():
    """``nolds`` (or its ``measures`` module when the package's ``__init__`` fails to import).

    nolds 0.6.3's ``datasets`` module calls ``importlib.resources.files()`` on a module, which
    Python < 3.12 rejects with a TypeError at import time (CSchoel/nolds#80); ``lyap_r`` itself
    needs none of it.
    """
    try:
        return importlib.import_module("nolds")
    except TypeError:
        for name in [m for m in sys.modules if m == "nolds" or m.startswith("nolds.")]:
            del sys.modules[name]
        spec = importlib.util.find_spec("nolds")
        pkg = types.ModuleType("nolds")
        pkg.__path__ = list(spec.submodule_search_locations)
        sys.modules["nolds"] = pkg
        return importlib.import_module("nolds.measures")


# --- 1. JVP spectrum vs full Jacobians ------------------------------------------------------------------
def rnn_step(n: int, gain: float, seed: int = 0):
    """``h -> tanh(W h)`` with W ~ N(0, gain^2 / n): topo_mi.models.TanhRNN's cell at zero input."""
    try:
        from topo_mi.models import TanhRNN

        model = TanhRNN(1, n, 1, gain=gain, seed=seed).double()
        zero = torch.zeros(1, dtype=torch.float64)
        W = model.cell.W_hh.detach()

        def step(h):
            return model.step(h, zero)

        source = "topo_mi.models.TanhRNN"
    except ImportError:  # the models package is optional here
        g = torch.Generator().manual_seed(seed)
        W = torch.randn(n, n, generator=g, dtype=torch.float64) * gain / math.sqrt(n)

        def step(h):
            return torch.tanh(h @ W.T)

        source = "inline tanh(W h)"
    h0 = torch.randn(n, generator=torch.Generator().manual_seed(seed + 1), dtype=torch.float64)
    return step, h0, source


def naive_spectrum(step, h0, n_steps: int, k: int, seed: int, vectorize: bool = False):
    """Benettin with the full Jacobian formed each step (same initial frame as lyapunov_spectrum)."""
    dim = h0.numel()
    gen = torch.Generator().manual_seed(seed)
    Q = torch.linalg.qr(torch.randn((1, dim, k), generator=gen, dtype=torch.float64)).Q[0]
    h, total = h0.clone(), torch.zeros(k, dtype=torch.float64)
    for _ in range(n_steps):
        J = torch.autograd.functional.jacobian(step, h, vectorize=vectorize)
        with torch.no_grad():
            h = step(h)
        Q, R = torch.linalg.qr(J @ Q)
        total += torch.log(torch.abs(torch.diagonal(R)))
    return np.sort((total / n_steps).numpy())[::-1]


def bench_rnn(n: int, k: int, n_steps: int, naive_steps: int, vectorized_too: bool):
    step, h0, source = rnn_step(n, 2.0)
    # warm up every path (the first torch.func call imports torch._dynamo: seconds)
    for tangent in ("jvp", "jacobian"):
        lyapunov_spectrum(step, h0, 4, k=k, tangent=tangent, n_blocks=2)
    naive_spectrum(step, h0, 2, k, seed=0)
    naive_spectrum(step, h0, 2, k, seed=0, vectorize=True)
    rows = []
    t0 = time.perf_counter()
    ours = lyapunov_spectrum(step, h0, n_steps, k=k, seed=0)
    t_ours = time.perf_counter() - t0
    rows.append(("topo_mi lyapunov_spectrum (k JVPs / step)", n_steps, t_ours, ours.exponents))
    t0 = time.perf_counter()
    full = lyapunov_spectrum(step, h0, n_steps, k=k, seed=0, tangent="jacobian")
    rows.append(("topo_mi, tangent='jacobian' (jacrev / step)", n_steps, time.perf_counter() - t0, full.exponents))
    t0 = time.perf_counter()
    naive = naive_spectrum(step, h0, naive_steps, k, seed=0)
    rows.append(("naive: autograd.functional.jacobian / step", naive_steps, time.perf_counter() - t0, naive))
    if vectorized_too:
        t0 = time.perf_counter()
        naive_v = naive_spectrum(step, h0, naive_steps, k, seed=0, vectorize=True)
        rows.append(("naive, jacobian(vectorize=True)", naive_steps, time.perf_counter() - t0, naive_v))
    print(f"\n## 1. Spectrum of a {n}-unit tanh RNN (gain 2, {source}), k = {k}, float64\n")
    print(f"| method | steps | seconds | s / 1000 steps | time ratio vs topo_mi | "
          f"max abs diff of exponents vs topo_mi |")
    print("|---|---:|---:|---:|---:|---:|")
    per_ours = t_ours / n_steps
    for name, steps, t, lam in rows:
        same = steps == n_steps
        ref = ours.exponents if same else None
        diff = f"{np.max(np.abs(lam - ref)):.1e}" if ref is not None else "(fewer steps)"
        print(f"| {name} | {steps} | {t:.2f} | {1000 * t / steps:.2f} | {(t / steps) / per_ours:.1f}x | {diff} |")
    if naive_steps != n_steps:
        check = lyapunov_spectrum(step, h0, naive_steps, k=k, seed=0)
        print(f"\n(naive loop run for {naive_steps} steps; topo_mi over the same {naive_steps} steps differs "
              f"from it by {np.max(np.abs(check.exponents - naive)):.1e})")
    print(f"\nlambda_1..3 = {np.round(ours.exponents[:3], 4).tolist()} ± "
          f"{np.round(ours.stderr[:3], 4).tolist()} per step; "
          f"{int(np.sum(ours.exponents > 0))} of {k} positive")


# --- 2. model-based lambda_max vs nolds.lyap_r on the trajectory ----------------------------------------
def trajectory(sys_, n: int, every: int = 1, burn: int = 500) -> np.ndarray:
    """``n`` states of one trajectory, sampled every ``every`` steps after ``burn`` steps."""
    x = sys_.x0.clone()
    out = np.empty((n, sys_.dim))
    with torch.no_grad():
        for _ in range(burn):
            x = sys_.step(x)
        for i in range(n):
            for _ in range(every):
                x = sys_.step(x)
            out[i] = x.numpy()
    return out


def bench_nolds(nolds, spans: dict, ensembles: dict):
    # nolds.lyap_r parameters: delay embedding of the x series (dimension 2 for the maps, the usual
    # 3 for Lorenz, lag about a tenth of Lorenz's mean period); trajectory_len about the time the
    # mean log divergence takes to saturate; min_tsep from the mean period (nolds' default); least
    # squares line fit. The Lorenz series is sampled every 2 integrator steps (dt = 0.02).
    cases = [
        ("logistic", "logistic r=4", systems.logistic(), 1, dict(emb_dim=2, lag=1, trajectory_len=6, fit="poly")),
        ("henon", "Hénon (1.4, 0.3)", systems.henon(), 1, dict(emb_dim=2, lag=1, trajectory_len=8, fit="poly")),
        ("lorenz", "Lorenz (10, 28, 8/3), RK4 dt = 0.01", systems.lorenz(), 2,
         dict(emb_dim=3, lag=5, trajectory_len=50, fit="poly")),
    ]
    for sys_ in (c[2] for c in cases):  # warm-up
        lyapunov_spectrum(sys_.step, sys_.x0, 4, n_blocks=2)
    print("\n## 2. lambda_max from the model vs nolds.lyap_r on the same trajectory\n")
    print("One trajectory: topo_mi runs the model (all exponents, 200 transient steps); nolds gets the "
          "x-coordinate of the same trajectory. Errors against the reference values.\n")
    print("| system | reference | steps (samples for nolds) | topo_mi lambda_max | error | seconds "
          "| nolds.lyap_r | error | seconds |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for key, name, sys_, every, kw in cases:
        n_steps = spans[key]
        ref = float(sys_.reference[0])
        t0 = time.perf_counter()
        ours = lyapunov_spectrum(sys_.step, sys_.x0, n_steps, transient=200)
        t_ours = time.perf_counter() - t0
        series = trajectory(sys_, n_steps // every, every)[:, 0]
        t0 = time.perf_counter()
        lam_n = float(nolds.lyap_r(series, tau=sys_.dt * every, **kw))
        t_n = time.perf_counter() - t0
        print(f"| {name} | {ref:.4f} | {n_steps} ({series.size}) | {ours.exponents[0]:.4f} ± {ours.stderr[0]:.4f} "
              f"| {ours.exponents[0] - ref:+.4f} | {t_ours:.1f} | {lam_n:.4f} | {lam_n - ref:+.4f} | {t_n:.1f} |")
    print("\nEnsembles of short trajectories (ensemble=True), the settings of the reference tests:\n")
    print("| system | trajectories x (transient + steps) | lambda_max | error | sum of exponents | seconds |")
    print("|---|---:|---:|---:|---:|---:|")
    for key, name, sys_, _, _ in cases:
        m, tr, n, burn = ensembles[key]
        t0 = time.perf_counter()
        res = sys_.spectrum(n, transient=tr, n_members=m, burn_in=burn)
        t = time.perf_counter() - t0
        ref = float(sys_.reference[0])
        print(f"| {name} | {m} x ({tr} + {n}) | {res.exponents[0]:.4f} ± {res.stderr[0]:.4f} | "
              f"{res.exponents[0] - ref:+.4f} | {res.exponents.sum():.6f} | {t:.1f} |")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="short runs (a smoke test)")
    ap.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    ap.add_argument("--naive-steps", type=int, default=None,
                    help="steps of the naive loop (default: the same T; fewer extrapolates the time)")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    T = 200 if args.quick else 2000
    bench_rnn(512, 32, T, args.naive_steps or T, vectorized_too=True)
    nolds = load_nolds()
    if args.quick:
        spans = {"logistic": 1000, "henon": 1000, "lorenz": 2000}
        ensembles = {"logistic": (256, 20, 200, 0), "henon": (64, 100, 300, 0), "lorenz": (32, 200, 200, 300)}
    else:
        spans = {"logistic": 5000, "henon": 5000, "lorenz": 10000}
        ensembles = {"logistic": (1024, 20, 300, 0), "henon": (256, 100, 800, 0),
                     "lorenz": (512, 1500, 1500, 2000)}
    bench_nolds(nolds, spans, ensembles)


if __name__ == "__main__":
    main()
