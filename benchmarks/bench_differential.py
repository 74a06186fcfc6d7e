"""Differential analysis: integrated gradients against captum, the top Hessian eigenvalue against
PyHessian-style power iteration and the exact Hessian.

1. Integrated gradients of the true-class logit of the digits MLP (``mlp-digits``, 64-64-32-10,
   float32) for ``--n`` images, 50 nodes, zero baseline: ``topo_mi.differential.integrated_gradients``
   (Gauss–Legendre and trapezoid) against captum's ``IntegratedGradients`` (``gausslegendre`` and
   ``riemann_trapezoid``) when captum is importable, else a plain per-sample loop over the nodes.
   Prints seconds, the time ratio, the largest completeness error of each and the largest
   difference of each from the exact path integral (``rule="exact"``, also timed).
2. The loss Hessian of the same model (cross-entropy, mean over ``--hessian-n`` images, 6,570
   parameters): the top eigenvalue by ``hessian_spectrum(k=1, which="top")`` (Lanczos on
   forward-over-reverse HVPs) against power iteration written as PyHessian does it (double-backward
   HVPs, relative tolerance 1e-3, at most 100 iterations; it converges to the largest-*magnitude*
   eigenvalue) and against ``numpy.linalg.eigvalsh`` of the exact Hessian; Hutchinson's trace
   (± standard error) against the exact trace. Prints seconds, ratios and agreement.

    python benchmarks/bench_differential.py [--quick] [--n 500] [--hessian-n 1000] [--threads N]

captum is not a dependency of topo_mi: the benchmark imports it when present (``pip install
captum==0.9.0``, which leaves torch 2.13.0 as it is; a folder of its own can be put on the path
with ``--peer-path``).
"""
from __future__ import annotations

import argparse
import sys
import time

import numpy as np
import torch


def timed(fn, *args, **kw):
    t0 = time.perf_counter()
    out = fn(*args, **kw)
    return out, time.perf_counter() - t0


def load(n, seed=0):
    from topo_mi.datasets import make
    from topo_mi.models import pretrained

    net = pretrained("mlp-digits").eval()
    ds = make("digits")
    X, y = np.asarray(ds.X, dtype=np.float32), np.asarray(ds.y)
    idx = np.random.default_rng(seed).choice(len(X), size=min(n, len(X)), replace=False)
    return net, torch.as_tensor(X[idx]), torch.as_tensor(y[idx]).long()


def plain_loop_ig(net, X, y, steps):
    """Per sample, per node: the textbook loop (trapezoid weights)."""
    t = np.linspace(0, 1, steps)
    w = np.full(steps, 1 / (steps - 1))
    w[0] = w[-1] = 0.5 / (steps - 1)
    out = torch.zeros_like(X)
    for i in range(X.shape[0]):
        acc = torch.zeros_like(X[i])
        for a, wk in zip(t, w):
            p = (float(a) * X[i]).detach().requires_grad_(True)
            f = net(p[None])[0, y[i]]
            (g,) = torch.autograd.grad(f, p)
            acc += float(wk) * g
        out[i] = X[i] * acc
    return out.numpy()


def bench_ig(n, steps):
    from topo_mi.differential import integrated_gradients

    net, X, y = load(n)
    print(f"\n== 1. integrated gradients: mlp-digits, {X.shape[0]} images x {steps} nodes (float32) ==")
    ex, t_ex = timed(integrated_gradients, net, X, target=y, rule="exact")
    print(f"  topo_mi exact path      {t_ex:8.3f} s   completeness {ex.delta.max():.2e}   "
          f"mean segments {ex.n_segments.mean():.1f}")
    rows = []
    for ours, theirs in (("gauss_legendre", "gausslegendre"), ("trapezoid", "riemann_trapezoid")):
        r, t = timed(integrated_gradients, net, X, target=y, rule=ours, steps=steps, batch_size=8192)
        rows.append((ours, t, r.delta.max(), np.abs(r.attributions - ex.attributions).max()))
        print(f"  topo_mi {ours:15s} {t:8.3f} s   completeness {r.delta.max():.2e}   "
              f"max |IG - exact| {rows[-1][3]:.2e}")
        try:
            from captum.attr import IntegratedGradients
        except ImportError:
            if ours != "trapezoid":
                continue
            m = min(50, X.shape[0])
            ref, tp = timed(plain_loop_ig, net, X[:m], y[:m], steps)
            tp *= X.shape[0] / m
            print(f"  plain loop (trapezoid)  {tp:8.3f} s   (timed on {m} images, scaled)   "
                  f"max |loop - topo_mi| {np.abs(ref - r.attributions[:m]).max():.2e}")
            print(f"  ratio loop / topo_mi    {tp / t:8.1f}x")
            continue
        ig = IntegratedGradients(net)
        (attr, delta), tc = timed(ig.attribute, X, baselines=torch.zeros_like(X), target=y, n_steps=steps,
                                  method=theirs, internal_batch_size=8192, return_convergence_delta=True)
        attr = attr.detach().numpy()
        print(f"  captum  {theirs:15s} {tc:8.3f} s   completeness {delta.abs().max().item():.2e}   "
              f"max |IG - exact| {np.abs(attr - ex.attributions).max():.2e}")
        print(f"  ratio captum / topo_mi  {tc / t:8.2f}x")


def power_iteration_pyhessian(net, X, y, tol=1e-3, max_iter=100, seed=0):
    """PyHessian's ``eigenvalues(top_n=1)``: double-backward HVPs, stop on relative change < tol."""
    params = [p for p in net.parameters() if p.requires_grad]
    loss = torch.nn.functional.cross_entropy(net(X), y)
    grads = torch.autograd.grad(loss, params, create_graph=True)
    g = torch.Generator().manual_seed(seed)
    v = [torch.randn(p.shape, generator=g) for p in params]
    norm = torch.sqrt(sum((x * x).sum() for x in v))
    v = [x / norm for x in v]
    ev, it = None, 0
    for it in range(1, max_iter + 1):
        Hv = torch.autograd.grad(grads, params, grad_outputs=v, retain_graph=True)
        new = sum((a * b).sum() for a, b in zip(Hv, v)).item()
        norm = torch.sqrt(sum((x * x).sum() for x in Hv))
        v = [x / norm for x in Hv]
        if ev is not None and abs(ev - new) / (abs(ev) + 1e-6) < tol:
            ev = new
            break
        ev = new
    return ev, it


def bench_hessian(n, exact=True):
    from topo_mi.differential import LossHessian, hessian_spectrum, hutchinson_trace

    net, X, y = load(n, seed=1)
    dim = sum(p.numel() for p in net.parameters())
    print(f"\n== 2. loss Hessian: mlp-digits, cross-entropy over {X.shape[0]} images, {dim} parameters (float32) ==")
    warm = LossHessian(net, "cross_entropy", (X[:2], y[:2]))
    _, t_w = timed(warm.matvec, np.ones(warm.dim))
    print(f"  (torch's one-time set-up of forward-mode decompositions on the first JVP: {t_w:.1f} s, not counted)")
    r, t_l = timed(hessian_spectrum, net, "cross_entropy", (X, y), k=1, which="top", trace=False, density=False)
    print(f"  topo_mi Lanczos top-1   {t_l:8.3f} s   lambda_max {r.lambda_max:.6f}   ({r.n_matvecs} HVPs, "
          f"residual {r.residuals[0]:.1e})")
    rr, t_r = timed(hessian_spectrum, net, "cross_entropy", (X, y), k=1, which="top", trace=False, density=False,
                    hvp="reverse")
    print(f"  topo_mi Lanczos, reverse {t_r:7.3f} s   lambda_max {rr.lambda_max:.6f}   ({rr.n_matvecs} HVPs, "
          "double backward on retained graphs)")
    (ev_p, iters), t_p = timed(power_iteration_pyhessian, net, X, y)
    print(f"  power iteration (PyH.)  {t_p:8.3f} s   lambda       {ev_p:.6f}   ({iters} HVPs; largest magnitude)")
    print(f"  ratio power / Lanczos   {t_p / t_l:8.2f}x   |difference| {abs(ev_p - r.lambda_max):.2e}")
    (ev_q, iters_q), t_q = timed(power_iteration_pyhessian, net, X, y, tol=1e-7, max_iter=5000)
    print(f"  power iteration, tol 1e-7 {t_q:6.3f} s   lambda       {ev_q:.6f}   ({iters_q} HVPs)")
    print(f"  ratio power / Lanczos   {t_q / t_l:8.2f}x (forward), {t_q / t_r:.2f}x (reverse)   "
          f"|difference| {abs(ev_q - r.lambda_max):.2e}")
    tr, t_h = timed(hutchinson_trace, LossHessian(net, "cross_entropy", (X, y)), rtol=0.02, max_probes=500, seed=0)
    print(f"  Hutchinson trace        {t_h:8.3f} s   {tr.trace:.4f} ± {tr.stderr:.4f} ({tr.n_probes} probes)")
    if not exact:
        return
    op = LossHessian(net, "cross_entropy", (X, y))
    H, t_d = timed(op.dense, max_params=dim)
    ev, t_e = timed(np.linalg.eigvalsh, H)
    print(f"  exact Hessian + eigvalsh {t_d + t_e:7.3f} s   lambda_max {ev[-1]:.6f}   lambda_min {ev[0]:.3e}   "
          f"(HVP columns {t_d:.1f} s, eigvalsh {t_e:.1f} s)")
    print(f"  ratio exact / Lanczos   {(t_d + t_e) / t_l:8.1f}x   |Lanczos - exact| {abs(r.lambda_max - ev[-1]):.2e} "
          f"(float32 HVPs; relative {abs(r.lambda_max - ev[-1]) / abs(ev[-1]):.1e})")
    print(f"  exact trace {np.trace(H):.4f}: Hutchinson error {(tr.trace - np.trace(H)) / tr.stderr:+.2f} SE")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small sizes, no exact Hessian (a smoke run)")
    ap.add_argument("--n", type=int, default=500, help="images attributed")
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--hessian-n", type=int, default=1000, help="images in the loss")
    ap.add_argument("--no-exact", action="store_true", help="skip the exact Hessian (minutes at 6,570 parameters)")
    ap.add_argument("--skip-ig", action="store_true", help="only the Hessian part")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--peer-path", default=None, help="a folder holding captum, put first on sys.path")
    args = ap.parse_args(argv)
    if args.peer_path:
        sys.path.insert(0, args.peer_path)
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        import captum

        print(f"captum {captum.__version__}, torch {torch.__version__}, {torch.get_num_threads()} threads")
    except ImportError:
        print(f"captum not installed: integrated gradients are compared with a plain loop; torch {torch.__version__}")
    n, hn = (50, 200) if args.quick else (args.n, args.hessian_n)
    if not args.skip_ig:
        bench_ig(n, args.steps)
    bench_hessian(hn, exact=not (args.quick or args.no_exact))


if __name__ == "__main__":
    main()
