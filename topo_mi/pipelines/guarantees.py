"""``proof_table``: every proof strategy on one model or on trained seeds × K, bound against cost.

The pipeline of :mod:`topo_mi.guarantees` (Gross et al., 2024): for each model it runs the chosen
strategies (brute force only when ``d_vocab ** K`` fits the budget; the table says when it did
not), a sampled accuracy estimate and the EQKE/EVOU noise analysis, and returns a
:class:`ProofTable` whose figure is the bound against log2 FLOPs with brute force as the ceiling.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from topo_mi._results import Result, result_dataclass
from topo_mi._validation import check_choice, check_int, fail


@result_dataclass
class ProofTable(Result):
    """Proof strategies × runs (models), with costs.

    Attributes
    ----------
    strategies : tuple of str
    labels : list of str
        One per run (model).
    k, d_vocab, seeds : ndarray of int (n_runs,)
        Context length K, vocabulary and training seed (-1 for a given model) of each run.
    bound, flops, flops_formula, wall_time_s : ndarray (n_runs, n_strategies)
        NaN where a strategy did not run (brute force over its budget).
    brute_force_accuracy, sampled_accuracy : ndarray (n_runs,)
        The exact accuracy (NaN when brute force did not run) and the accuracy of the model's own
        forward pass on ``n_samples`` random sequences (an estimate, not a ceiling).
    complexity : tuple of str
        Per strategy.
    notes : list of str
    noise : list of dict
        Per run, :meth:`topo_mi.guarantees.NoiseAnalysis.summary`.
    """

    strategies: tuple
    labels: list
    k: np.ndarray
    d_vocab: np.ndarray
    seeds: np.ndarray
    bound: np.ndarray
    flops: np.ndarray
    flops_formula: np.ndarray
    wall_time_s: np.ndarray
    brute_force_accuracy: np.ndarray
    sampled_accuracy: np.ndarray
    complexity: tuple
    notes: list
    noise: list

    _plot_function = "topo_mi.plotting.guarantees:plot_proof_table"

    def table(self) -> list[dict[str, Any]]:
        """One row per (K, d_vocab, strategy): mean ± sd of the bound over runs, mean cost."""
        rows = []
        for K, dv in sorted({(int(a), int(b)) for a, b in zip(self.k, self.d_vocab)}):
            sel = (self.k == K) & (self.d_vocab == dv)
            bf = self.brute_force_accuracy[sel]
            for j, s in enumerate(self.strategies):
                b = self.bound[sel, j]
                ok = np.isfinite(b)
                n = int(ok.sum())
                f = self.flops[sel, j][ok]
                rows.append({
                    "K": K, "d_vocab": dv, "strategy": s, "n_runs": n,
                    "bound_mean": float(b[ok].mean()) if n else math.nan,
                    "bound_sd": float(b[ok].std(ddof=1)) if n > 1 else (0.0 if n else math.nan),
                    "flops_mean": float(f.mean()) if n else math.nan,
                    "log2_flops": float(np.log2(f).mean()) if n else math.nan,
                    "wall_time_s": float(self.wall_time_s[sel, j][ok].mean()) if n else math.nan,
                    "brute_force_accuracy": float(np.nanmean(bf)) if np.isfinite(bf).any() else math.nan,
                    "sampled_accuracy": float(self.sampled_accuracy[sel].mean()),
                    "complexity": self.complexity[j],
                    "ran": "yes" if n == int(sel.sum()) else ("no" if n == 0 else f"{n} of {int(sel.sum())}"),
                })
        return rows

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {"n_runs": len(self.labels)}
        many_k = len(set(self.k.tolist())) > 1
        for r in self.table():
            pre = f"K{r['K']}_" if many_k else ""
            out[f"{pre}{r['strategy']}_bound"] = r["bound_mean"]
            out[f"{pre}{r['strategy']}_log2_flops"] = r["log2_flops"]
        return out

    def report_section(self) -> dict[str, Any]:
        rows = self.table()
        index = [f"K={r['K']} {r['strategy']}" if len(set(self.k.tolist())) > 1 else r["strategy"] for r in rows]
        cols = ["d_vocab", "runs", "bound mean", "bound sd", "log2 FLOPs", "time (s)", "brute-force accuracy"]
        body = [[r["d_vocab"], r["n_runs"], r["bound_mean"], r["bound_sd"], r["log2_flops"], r["wall_time_s"],
                 r["brute_force_accuracy"]] for r in rows]
        by = {(r["K"], r["strategy"]): r for r in rows}
        K0 = int(self.k[0])
        cub, bf = by.get((K0, "cubic")), by.get((K0, "brute_force"))
        if cub and bf and math.isfinite(bf["bound_mean"]) and math.isfinite(cub["bound_mean"]):
            headline = (f"For K={K0}, the cubic proof certifies an accuracy of at least {cub['bound_mean']:.4f} "
                        f"(brute force: {bf['bound_mean']:.4f}) with {bf['flops_mean'] / cub['flops_mean']:.0f}x "
                        "fewer FLOPs.")
        elif cub:
            headline = (f"For K={K0}, the cubic proof certifies an accuracy of at least {cub['bound_mean']:.4f} "
                        f"at 2^{cub['log2_flops']:.1f} FLOPs (brute force not run).")
        else:
            best = max((r for r in rows if math.isfinite(r["bound_mean"])), key=lambda r: r["bound_mean"],
                       default=None)
            headline = ("No proof ran." if best is None else
                        f"Best certified bound {best['bound_mean']:.4f} ({best['strategy']}, K={best['K']}).")
        caption = ("Certified accuracy lower bound (y) against the proof's cost in counted FLOPs (x, log2), one "
                   "colour per strategy and one marker per K; error bars are the sd over seeds. Dashed lines: "
                   "brute-force accuracy, the ceiling every sound bound stays under. The proofs are argued "
                   "computations tested against brute force, not machine-checked.")
        if self.notes:
            caption += " Notes: " + "; ".join(self.notes)
        return {"headline": headline, "table": {"index": index, "columns": cols, "rows": body}, "caption": caption}


def _vocab_for(d_vocab, K: int) -> int:
    if isinstance(d_vocab, dict):
        table = {int(k): v for k, v in d_vocab.items()}
        if K not in table:
            fail("d_vocab", f"an entry for every K (missing K={K})", d_vocab)
        return check_int("d_vocab", table[K], min_value=2)
    return check_int("d_vocab", d_vocab, min_value=2)


def proof_table(model=None, *, strategies=None, ks=None, seeds=None, d_vocab=64, d_model: int = 32,
                d_head: int = 32, steps: int = 3000, batch_size: int = 128, lr: float = 1e-3,
                weight_decay: float = 0.01, max_brute_force_sequences: int = 1 << 26, margin: float = 1e-9,
                n_samples: int = 100_000, seed: int = 0, progress: bool = False) -> ProofTable:
    """Run proof strategies on a model, or train max-of-K models per (K, seed) and run them on each.

    Parameters
    ----------
    model : AttentionOnlyTransformer, optional
        One model (one run). Leave None to train with ``ks`` and ``seeds``.
    strategies : sequence of str, optional
        Default every strategy of :data:`topo_mi.guarantees.STRATEGIES`.
    ks, seeds : sequence of int, optional
        Train ``AttentionOnlyTransformer(d_vocab, d_model, n_ctx=K, d_head, seed=s)`` with
        :func:`topo_mi.models.train_max_of_k` (``steps``, ``batch_size``, ``lr``,
        ``weight_decay``, seed ``s``) for each K and seed. Defaults ``[4]`` and ``[0]``.
    d_vocab : int or dict, default 64
        The vocabulary, or one per K (``{10: 16}``; TOML keys may be strings).
    max_brute_force_sequences : int, default 2**26
        Brute force runs only when ``d_vocab ** K`` is at most this; otherwise its column is NaN
        and a note says why (the other strategies still run).
    margin : float, default 1e-9
        Required gap for the cubic and subcubic proofs.
    n_samples : int, default 100000
        Random sequences for the sampled accuracy of the model's forward pass.
    seed : int, default 0
        Seed of the sampled accuracy.
    """
    from topo_mi.circuits.transformer import sampled_accuracy
    from topo_mi.guarantees import STRATEGIES, noise_analysis, prove
    from topo_mi.models import AttentionOnlyTransformer, train_max_of_k

    strategies = tuple(STRATEGIES if strategies is None else strategies)
    if not strategies:
        fail("strategies", "a non-empty list of proof strategies", list(strategies))
    for s in strategies:
        check_choice("strategies", s, STRATEGIES)
    budget = check_int("max_brute_force_sequences", max_brute_force_sequences, min_value=1)
    n_samples = check_int("n_samples", n_samples, min_value=1)
    runs = []  # (label, K, d_vocab, seed, model)
    if model is not None:
        if ks is not None or seeds is not None:
            fail("model", "None when ks/seeds ask for trained models", f"a {type(model).__name__}", raw=True)
        runs.append(("model", int(model.W_pos.shape[0]), int(model.W_E.shape[0]), -1, model))
    else:
        ks = [4] if ks is None else [check_int("ks", k, min_value=2) for k in ks]
        seeds = [0] if seeds is None else [check_int("seeds", s, min_value=0) for s in seeds]
        if not ks or not seeds:
            fail("ks", "non-empty ks and seeds", f"ks={ks}, seeds={seeds}", raw=True)
        for K in ks:
            dv = _vocab_for(d_vocab, K)
            for s in seeds:
                m = AttentionOnlyTransformer(d_vocab=dv, d_model=d_model, n_ctx=K, d_head=d_head, seed=s)
                train_max_of_k(m, steps=steps, batch_size=batch_size, lr=lr, weight_decay=weight_decay, seed=s,
                               progress=progress)
                runs.append((f"K={K} d_vocab={dv} seed={s}", K, dv, s, m.eval()))
    n_runs, n_s = len(runs), len(strategies)
    nan = np.full((n_runs, n_s), np.nan)
    bound, flops, flops_f, wall = nan.copy(), nan.copy(), nan.copy(), nan.copy()
    bf_acc, sampled = np.full(n_runs, np.nan), np.zeros(n_runs)
    complexity = ["(not run)"] * n_s
    notes, noise = [], []
    for i, (label, K, dv, s, m) in enumerate(runs):
        for j, strat in enumerate(strategies):
            if strat == "brute_force" and dv ** K > budget:
                note = f"brute force not run for K={K}, d_vocab={dv}: {dv ** K:,} sequences over the budget {budget:,}"
                if note not in notes:
                    notes.append(note)
                continue
            p = prove(m, strat, **({} if strat == "brute_force" else {"margin": margin}))
            bound[i, j], flops[i, j], flops_f[i, j], wall[i, j] = (p.bound, p.flops_counted, p.flops_formula,
                                                                 p.wall_time_s)
            complexity[j] = p.complexity
            if strat == "brute_force":
                bf_acc[i] = p.bound
        sampled[i] = sampled_accuracy(m, n_samples=n_samples, seed=seed)
        noise.append(noise_analysis(m).summary())
    return ProofTable(strategies=strategies, labels=[r[0] for r in runs], k=np.array([r[1] for r in runs]),
                      d_vocab=np.array([r[2] for r in runs]), seeds=np.array([r[3] for r in runs]), bound=bound,
                      flops=flops, flops_formula=flops_f, wall_time_s=wall, brute_force_accuracy=bf_acc,
                      sampled_accuracy=sampled, complexity=tuple(complexity), notes=notes, noise=noise)


__all__ = ["ProofTable", "proof_table"]
