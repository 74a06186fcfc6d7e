"""AuxK against k-only TopK training at equal steps: the dead fraction on the data.

Reproduces the README's AuxK figures (Dictionaries section):

- toy: Sharkey et al.'s generator (32 planted directions in R^16, 3 active on average, 8,192
  points, seed 1), TopK k = 3 with 64 and 128 latents, 600 steps of 256, lr 3e-3, dead after
  25,600 samples, seeds 0 and 1;
- minilm (``--minilm``): MiniLM ``encoder.layer.3`` token vectors of the ``text`` corpus, 16x width
  (6,144 latents), k = 16, 2,000 steps of 256, lr 4e-3, dead after 25,600 tokens, seeds 0 and 1.

With ``--options`` it adds AuxK's two reference variants at the same steps: the error divided
by the residual's variance (``auxk_normalization='residual_variance'``, OpenAI's code) and the
decoder gradient's component along each row removed (``project_decoder_grad=True``).

    python benchmarks/exp_auxk.py [--minilm] [--options]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from topo_mi.dictionaries import evaluate, toy_features, train_sae  # noqa: E402


VARIANTS = {"residual-variance AuxK": dict(auxk_normalization="residual_variance"),
            "AuxK + projected decoder gradient": dict(project_decoder_grad=True)}


def compare(X, label, *, d_sae, k, n_steps, lr, options=False):
    for seed in (0, 1):
        out = []
        runs = [dict(aux_coefficient=0.0), dict(aux_coefficient=1 / 32)]
        if options:
            runs += [dict(aux_coefficient=1 / 32, **v) for v in VARIANTS.values()]
        for kw in runs:
            sae = train_sae(X, kind="topk", d_sae=d_sae, k=k, n_steps=n_steps, batch_size=256, lr=lr, seed=seed,
                            dead_after=25_600, **kw)
            m = evaluate(sae, X)
            out.append((m.dead_fraction, m.explained_variance["ratio_of_sums_centred"]))
        (d0, e0), (d1, e1) = out[:2]
        line = (f"{label}, seed {seed}: dead {100 * d0:.1f} % without AuxK -> {100 * d1:.1f} % with it; "
                f"EV {e0:.3f} -> {e1:.3f}")
        for name, (d, e) in zip(VARIANTS, out[2:]):
            line += f"; {name}: dead {100 * d:.1f} %, EV {e:.3f}"
        print(line, flush=True)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minilm", action="store_true")
    ap.add_argument("--options", action="store_true", help="also the two reference variants of AuxK")
    args = ap.parse_args(argv)
    X = toy_features(8192, d=16, n_features=32, mean_active=3, seed=1)[0]
    for d_sae in (64, 128):
        compare(X, f"toy, 32 features, {d_sae} latents, k = 3", d_sae=d_sae, k=3, n_steps=600, lr=3e-3,
                options=args.options)
    if args.minilm:
        import numpy as np

        from topo_mi import datasets
        from topo_mi.activations import collect_text
        from topo_mi.activations.hf import load_minilm

        model, tok = load_minilm()
        texts = [str(t) for t in datasets.make("text").X]
        acts = collect_text(model, tok, texts, layers=["encoder.layer.3"], batch_size=64, progress=False)
        A = np.asarray(acts["encoder.layer.3"], dtype=np.float32)
        compare(A, f"MiniLM encoder.layer.3, {len(A):,} tokens, 16x width, k = 16", d_sae=16 * A.shape[1], k=16,
                n_steps=2000, lr=4e-3, options=args.options)


if __name__ == "__main__":
    main()
