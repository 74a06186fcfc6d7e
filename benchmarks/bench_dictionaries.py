"""Training throughput of sparse autoencoders: topo_mi.dictionaries against the peers.

Tokens per second for a TopK (k = 32) and a ReLU + L1 SAE at d_in = 384 (MiniLM's width) and
d_sae = 8 x 384 = 3072, batches of 1,024, Adam, unit-norm decoder rows:

- ``topo_mi``: ``train_sae`` (seeded batching, dead-latent tracking, AuxK for TopK, history);
- ``plain``: a plain, well-written PyTorch loop computing the same loss (dense encode/decode,
  ``torch.topk`` + ``scatter``, Adam, decoder projection) with nothing else;
- ``SAELens`` (``TopKTrainingSAE`` / ``StandardTrainingSAE`` and their ``training_forward_pass``,
  Adam) and ``sparsify`` (EleutherAI, TopK only) when they import in the separate venv named by
  ``TOPO_MI_BENCH_VENV`` (default ``../benchvenv-dictionaries`` beside the repository), run there in
  a subprocess on the same data.

It also exports one SAE of each kind with ``export_saelens`` and loads it with SAELens's
``SAE.load_from_disk`` in that venv (when ``sae_lens`` imports there), printing the largest
difference between the two reconstructions.

Same data (a seeded Gaussian with a decaying spectrum, 65,536 rows), same thread count, one
warm-up step each. Run: ``python benchmarks/bench_dictionaries.py [--steps 60] [--threads 1] [--gradient]``
(``--gradient``: TopK's encoder weight gradient formed three ways, in milliseconds).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

D_IN, D_SAE, K, BATCH = 384, 3072, 32, 1024


def make_data(n=65536, seed=0):
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((D_IN, D_IN)) * (0.97 ** np.arange(D_IN))[:, None]
    return (rng.standard_normal((n, D_IN)) @ A / np.sqrt(D_IN)).astype(np.float32)


def bench_topo_mi(X, kind, steps):
    from topo_mi.dictionaries import train_sae

    kw = dict(kind=kind, d_sae=D_SAE, k=K if kind == "topk" else None, batch_size=BATCH, lr=1e-4, seed=0,
              b_dec_init="mean", l1_coefficient=1e-3 if kind == "relu" else None)
    train_sae(X, n_steps=1, **kw)  # warm-up
    t = time.perf_counter()
    train_sae(X, n_steps=steps, **kw)
    return steps * BATCH / (time.perf_counter() - t)


def bench_plain(X, kind, steps):
    import torch

    g = torch.Generator().manual_seed(0)
    W_dec = torch.randn(D_SAE, D_IN, generator=g)
    W_dec /= W_dec.norm(dim=1, keepdim=True)
    W_dec = torch.nn.Parameter(W_dec)
    W_enc = torch.nn.Parameter(W_dec.detach().T.clone())
    b_enc = torch.nn.Parameter(torch.zeros(D_SAE))
    b_dec = torch.nn.Parameter(torch.as_tensor(X[:4096].mean(0)))
    opt = torch.optim.Adam([W_enc, b_enc, W_dec, b_dec], lr=1e-4)
    Xt = torch.from_numpy(X)
    perm = torch.randperm(len(X), generator=g)

    def step(i):
        x = Xt[perm[(i * BATCH) % (len(X) - BATCH):][:BATCH]]
        pre = (x - b_dec) @ W_enc + b_enc
        if kind == "topk":
            v, idx = pre.topk(K, dim=1)
            z = torch.zeros_like(pre).scatter(1, idx, v.relu())
        else:
            z = pre.relu()
        x_hat = z @ W_dec + b_dec
        loss = (x - x_hat).pow(2).sum(-1).mean()
        if kind == "relu":
            loss = loss + 1e-3 * (z * W_dec.norm(dim=1)).sum(-1).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        with torch.no_grad():
            W_dec.div_(W_dec.norm(dim=1, keepdim=True))

    step(0)
    t = time.perf_counter()
    for i in range(1, steps + 1):
        step(i)
    return steps * BATCH / (time.perf_counter() - t)


_SPARSIFY = r'''
import json, sys, time, numpy as np, torch
torch.set_num_threads(int(sys.argv[3]))
from sparsify import SparseCoder, SparseCoderConfig
X = torch.from_numpy(np.load(sys.argv[1]))
steps = int(sys.argv[2])
sae = SparseCoder(X.shape[1], SparseCoderConfig(expansion_factor=8, k=32), device="cpu", dtype=torch.float32)
opt = torch.optim.Adam(sae.parameters(), lr=1e-4)
n = len(X); B = 1024
perm = torch.randperm(n, generator=torch.Generator().manual_seed(0))
def step(i):
    x = X[perm[(i * B) % (n - B):][:B]]
    out = sae(x)
    loss = out.fvu
    opt.zero_grad(set_to_none=True); loss.backward(); opt.step()
    sae.set_decoder_norm_to_unit_norm()
step(0)
t = time.perf_counter()
for i in range(1, steps + 1):
    step(i)
print(json.dumps({"tokens_per_s": steps * B / (time.perf_counter() - t)}))
'''


_SAELENS = r'''
import json, sys, time, warnings, numpy as np, torch
warnings.filterwarnings("ignore")
torch.set_num_threads(int(sys.argv[3]))
from sae_lens.saes.sae import TrainStepInput
from sae_lens.saes.topk_sae import TopKTrainingSAE, TopKTrainingSAEConfig
from sae_lens.saes.standard_sae import StandardTrainingSAE, StandardTrainingSAEConfig
X = torch.from_numpy(np.load(sys.argv[1]))
steps = int(sys.argv[2]); kind = sys.argv[4]
d = X.shape[1]
if kind == "topk":
    sae = TopKTrainingSAE(TopKTrainingSAEConfig(d_in=d, d_sae=8 * d, k=32, dtype="float32", device="cpu"))
    coef = {}
else:
    sae = StandardTrainingSAE(StandardTrainingSAEConfig(d_in=d, d_sae=8 * d, dtype="float32", device="cpu"))
    coef = {"l1": 1e-3}
opt = torch.optim.Adam(sae.parameters(), lr=1e-4)
n = len(X); B = 1024
perm = torch.randperm(n, generator=torch.Generator().manual_seed(0))
dead = torch.zeros(8 * d, dtype=torch.bool)
def step(i):
    x = X[perm[(i * B) % (n - B):][:B]]
    out = sae.training_forward_pass(TrainStepInput(sae_in=x, coefficients=coef, dead_neuron_mask=dead,
                                                   n_training_steps=i, is_logging_step=False))
    opt.zero_grad(set_to_none=True); out.loss.backward(); opt.step()
step(0)
t = time.perf_counter()
for i in range(1, steps + 1):
    step(i)
print(json.dumps({"tokens_per_s": steps * B / (time.perf_counter() - t)}))
'''


def _venv_python():
    venv = Path(os.environ.get("TOPO_MI_BENCH_VENV", Path(__file__).resolve().parents[2] / "benchvenv-dictionaries"))
    return venv / "bin" / "python"


def bench_saelens(X, kind, steps, threads):
    """SAELens's TopKTrainingSAE / StandardTrainingSAE ``training_forward_pass`` + Adam, same batches."""
    py = _venv_python()
    if not py.exists():
        return None, f"no venv at {py.parent.parent}"
    with tempfile.TemporaryDirectory() as tmp:
        np.save(Path(tmp) / "x.npy", X)
        (Path(tmp) / "b.py").write_text(_SAELENS)
        env = {**os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONPATH": "", "HF_HUB_OFFLINE": "1"}
        out = subprocess.run([str(py), str(Path(tmp) / "b.py"), str(Path(tmp) / "x.npy"), str(steps), str(threads),
                              kind], capture_output=True, text=True, env=env, timeout=1800)
    if out.returncode != 0:
        return None, out.stderr.strip().splitlines()[-1] if out.stderr.strip() else f"rc {out.returncode}"
    return json.loads(out.stdout.strip().splitlines()[-1])["tokens_per_s"], ""


def bench_sparsify(X, steps, threads):
    venv = Path(os.environ.get("TOPO_MI_BENCH_VENV", Path(__file__).resolve().parents[2] / "benchvenv-dictionaries"))
    py = venv / "bin" / "python"
    if not py.exists():
        return None, f"no venv at {venv}"
    with tempfile.TemporaryDirectory() as tmp:
        np.save(Path(tmp) / "x.npy", X)
        (Path(tmp) / "b.py").write_text(_SPARSIFY)
        env = {**os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONPATH": ""}
        out = subprocess.run([str(py), str(Path(tmp) / "b.py"), str(Path(tmp) / "x.npy"), str(steps), str(threads)],
                             capture_output=True, text=True, env=env, timeout=1800)
    if out.returncode != 0:
        return None, out.stderr.strip().splitlines()[-1] if out.stderr.strip() else f"rc {out.returncode}"
    return json.loads(out.stdout.strip().splitlines()[-1])["tokens_per_s"], ""


_SAELENS_LOAD = r'''
import json, sys, warnings, numpy as np, torch
warnings.filterwarnings("ignore")
from sae_lens import SAE
root = sys.argv[1]
X = torch.from_numpy(np.load(root + "/x.npy"))
out = {}
for kind in ("topk", "relu", "jumprelu", "batchtopk"):
    sae = SAE.load_from_disk(f"{root}/{kind}", device="cpu")
    with torch.no_grad():
        out[kind] = [type(sae).__name__, float(np.abs(sae(X).numpy() - np.load(f"{root}/{kind}_ref.npy")).max())]
print(json.dumps(out))
'''


def check_saelens_load(threads):
    """Export one SAE of each kind and load it with SAELens in the separate venv; max |difference|."""
    from topo_mi.dictionaries import toy_features, train_sae

    py = Path(os.environ.get("TOPO_MI_BENCH_VENV", Path(__file__).resolve().parents[2] / "benchvenv-dictionaries"))
    py = py / "bin" / "python"
    if not py.exists():
        return None
    X = toy_features(4096, d=16, n_features=32, mean_active=3, seed=1)[0]
    with tempfile.TemporaryDirectory() as tmp:
        np.save(Path(tmp) / "x.npy", X[:256])
        for kind in ("topk", "relu", "jumprelu", "batchtopk"):
            sae = train_sae(X, kind=kind, d_sae=24, k=3 if "topk" in kind else None, n_steps=30, batch_size=256)
            sae.export_saelens(Path(tmp) / kind, hook_name="blocks.0.hook_resid_post")
            np.save(Path(tmp) / f"{kind}_ref.npy", sae.reconstruct(X[:256]))
        (Path(tmp) / "l.py").write_text(_SAELENS_LOAD)
        env = {**os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONPATH": "", "HF_HUB_OFFLINE": "1"}
        out = subprocess.run([str(py), str(Path(tmp) / "l.py"), tmp], capture_output=True, text=True, env=env,
                             timeout=600)
    if out.returncode != 0:
        return {"error": (out.stderr.strip().splitlines() or [f"rc {out.returncode}"])[-1]}
    return json.loads(out.stdout.strip().splitlines()[-1])


def bench_weight_gradient(repeat=20):
    """TopK's encoder weight gradient at the benchmark's shape (batch x d_in, k of d_sae selected),
    three ways: the (row, latent) entries summed by one embedding_bag (topo_mi), the rows gathered
    into a (batch * k, d_in) temporary and index_add_-ed (sparsify's fused encoder), and a dense
    matmul with the scattered gradient. Milliseconds each, and the largest difference."""
    import torch

    from topo_mi.dictionaries._losses import _sparse_outer

    g0 = torch.Generator().manual_seed(0)
    x = torch.randn(BATCH, D_IN, generator=g0)
    W = torch.randn(D_IN, D_SAE, generator=g0)
    idx = (x @ W).topk(K, dim=1, sorted=False).indices
    g = torch.randn(BATCH, K, generator=g0)

    def gathered():
        out = torch.zeros(D_SAE, D_IN)
        out.index_add_(0, idx.reshape(-1), (g.unsqueeze(2) * x.unsqueeze(1)).reshape(-1, D_IN))
        return out.t()

    def dense():
        G = torch.zeros(BATCH, D_SAE)
        G.scatter_(1, idx, g)
        return x.t() @ G

    out = {}
    ref = gathered()
    for name, fn in (("embedding_bag", lambda: _sparse_outer(x, idx, g, W)), ("gather + index_add_", gathered),
                     ("dense matmul", dense)):
        fn()
        t = time.perf_counter()
        for _ in range(repeat):
            r = fn()
        out[name] = (1e3 * (time.perf_counter() - t) / repeat, float((r - ref).abs().max()))
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--gradient", action="store_true", help="also time TopK's encoder weight gradient three ways")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    if args.gradient:
        parts = bench_weight_gradient()
        print("TopK encoder weight gradient (ms, max |difference|): "
              + "; ".join(f"{k} {ms:.1f} ms ({d:.1e})" for k, (ms, d) in parts.items()), flush=True)
    X = make_data()
    load = os.getloadavg()[0]
    print(f"d_in {D_IN}, d_sae {D_SAE}, k {K}, batch {BATCH}, {args.steps} steps, {args.threads} thread(s), "
          f"load average {load:.1f}", flush=True)
    for kind in ("topk", "relu"):
        ours = bench_topo_mi(X, kind, args.steps)
        plain = bench_plain(X, kind, args.steps)
        line = f"{kind:5s} topo_mi {ours:9.0f} tok/s | plain loop {plain:9.0f} tok/s | ratio {ours / plain:.2f}x"
        if kind == "topk":
            sp, why = bench_sparsify(X, args.steps, args.threads)
            line += (f" | sparsify {sp:9.0f} tok/s | ratio {ours / sp:.2f}x" if sp else f" | sparsify skipped ({why})")
        sl, why = bench_saelens(X, kind, args.steps, args.threads)
        line += (f" | SAELens {sl:9.0f} tok/s | ratio {ours / sl:.2f}x" if sl else f" | SAELens skipped ({why})")
        print(line, flush=True)
    res = check_saelens_load(args.threads)
    if res is None:
        print("SAELens load check skipped (no venv)")
    else:
        print("SAELens load of the exports (class, max |reconstruction difference|):", json.dumps(res))


if __name__ == "__main__":
    main()
