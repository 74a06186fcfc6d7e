"""Activation patching: ``topo_mi.causal.patch_sweep`` (many sites per forward) vs one forward per site.

The peer is the loop of TransformerLens' patching utilities (``get_act_patch_resid_pre`` and
friends): for every (layer, position) site, one forward of the corrupt batch with a hook that
writes the clean activation at that site, then the metric. It is re-implemented here with plain
``register_forward_hook`` calls (TransformerLens itself pins other torch versions). Both must give
the same normalised effects to 1e-6.

Cases: the max-of-4 attention-only transformer (Gross et al. 2024; 5 residual-width hooks x 4
positions, 256 sequences; best of 3 interleaved runs) and the shipped MiniLM (embeddings + 6 layers x
16 token positions, 8 sentence pairs; one run each) when it loads.

    python benchmarks/bench_causal.py [--quick]
"""
from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np
import torch

from topo_mi.causal import patch_sweep


def interleaved(fns, repeat):
    """Best-of-``repeat`` time of each function, run in alternation (load drifts hit both alike)."""
    best = [float("inf")] * len(fns)
    out = [None] * len(fns)
    for _ in range(repeat):
        for i, fn in enumerate(fns):
            t0 = time.perf_counter()
            out[i] = fn()
            best[i] = min(best[i], time.perf_counter() - t0)
    return best, out


def _first(o):
    if isinstance(o, torch.Tensor):
        return o
    if hasattr(o, "last_hidden_state"):
        return o.last_hidden_state
    return o[0]


def one_forward_per_site(model, clean, corrupt, layers, n_pos, metric):
    """The peer: the clean run with its cache (TransformerLens' run_with_cache), the corrupt run, then
    for each (layer, position) one hooked forward of the corrupt batch. Returns normalised effects."""
    mods = dict(model.named_modules())
    call = (lambda x: model(**x)) if isinstance(clean, dict) else model
    cache = {}
    hs = [mods[n].register_forward_hook(lambda m, a, o, n=n: cache.__setitem__(n, _first(o).detach()))
          for n in layers]
    with torch.no_grad():
        m_clean = metric(call(clean)).double().mean().item()
    for h in hs:
        h.remove()
    with torch.no_grad():
        m_corr = metric(call(corrupt)).double().mean().item()
    out = np.empty((len(layers), n_pos, next(iter(cache.values())).shape[0]))
    for li, name in enumerate(layers):
        for p in range(n_pos):
            def hook(m, a, o, name=name, p=p):
                t = _first(o).clone()
                t[:, p] = cache[name][:, p]
                return (t,) + tuple(o[1:]) if isinstance(o, tuple) else t
            h = mods[name].register_forward_hook(hook)
            try:
                with torch.no_grad():
                    out[li, p] = metric(call(corrupt)).double().numpy()
            finally:
                h.remove()
    return (out.mean(2) - m_corr) / (m_clean - m_corr)


def run_case(label, model, clean, corrupt, layers, n_pos, metric, repeat, max_rows):
    model.eval()
    (t_ours, t_peer), (ours, peer) = interleaved([
        lambda: patch_sweep(model, clean, corrupt, layers=layers, metric=metric, max_rows=max_rows),
        lambda: one_forward_per_site(model, clean, corrupt, layers, n_pos, metric)], repeat)
    err = float(np.max(np.abs(ours.effect - peer)))
    n_sites = len(layers) * n_pos
    print(f"{label:<34s} sites {n_sites:4d}  topo_mi {t_ours:7.3f} s ({ours.n_forwards} forwards)  "
          f"one-per-site {t_peer:7.3f} s  ratio {t_peer / t_ours:5.2f}x  max |effect diff| {err:.1e}", flush=True)
    assert err < 1e-6, err
    return t_peer / t_ours


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    repeat = 1 if args.quick else 3
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, load average "
          f"{os.getloadavg()[0]:.2f} at start", flush=True)

    from topo_mi.models import AttentionOnlyTransformer

    model = AttentionOnlyTransformer(d_vocab=64, d_model=32, n_ctx=4, d_head=32, n_heads=1, seed=0)
    g = torch.Generator().manual_seed(0)
    n = 64 if args.quick else 256
    clean = torch.randint(0, 64, (n, 4), generator=g)
    corrupt = torch.randint(0, 64, (n, 4), generator=g)
    layers = ["hook_embed", "hook_pos", "hook_resid_pre", "hook_attn_out", "hook_resid_post"]
    target = clean.max(1).values  # max-of-4: the logit of the clean sequence's maximum at the last position

    def metric(out):  # patch_sweep calls the metric on one copy (n rows) at a time
        return out[:, -1].gather(1, target[:, None])[:, 0]

    run_case(f"max-of-4 transformer, {n} seqs", model, clean, corrupt, layers, 4, metric, repeat, 8192)

    try:
        from topo_mi.activations.hf import MINILM_LAYERS, load_minilm

        mini, tok = load_minilm()
    except Exception as exc:  # the HuggingFace extra is optional
        print(f"MiniLM case skipped: {type(exc).__name__}: {exc}")
        return
    from topo_mi.datasets import make

    sents = [str(s) for s in np.asarray(make("sentences").X)]
    m = 4 if args.quick else 8
    T = 16
    enc = tok(sents[:2 * m], padding="max_length", truncation=True, max_length=T, return_tensors="pt")
    clean_m = {k: v[:m] for k, v in enc.items()}
    corrupt_m = {k: v[m:2 * m] for k, v in enc.items()}
    with torch.no_grad():
        ref = mini(**clean_m).last_hidden_state[:, 0]

    def metric_m(out):  # alignment of the first token's state with the clean one
        h = _first(out)[:, 0]
        return (h * ref).sum(1) / (ref.norm(dim=1) ** 2)

    # one timing each: 112 forwards of the peer take minutes on 2 shared cores
    run_case(f"MiniLM, {m} sentence pairs x {T} tokens", mini, clean_m, corrupt_m, MINILM_LAYERS, T, metric_m,
             1, 4096)


if __name__ == "__main__":
    main()
