"""topo_mi.guarantees: soundness against brute force, counting oracles, the seed-exact circuits.

Known answers:
- Soundness: no sequence a proof certifies is wrong under an independent evaluation of every
  sequence (``topo_mi.circuits.transformer.last_position_logits``), so 0 <= bound <= brute-force
  accuracy; brute force as a proof certifies exactly the correct sequences.
- Counting: with every case passing the cubic count is d^n; the sequences whose max is m number
  (m + 1)^n - m^n; certified + dropped + failed = d^n for the gap proofs.
- Structure: at margin 0 the cubic case bound is below every subcubic one, so each subcubic proof
  certifies a subset of what the cubic proof certifies.
- EQKE = (W_E + W_pos[-1]) W_Q W_Kᵀ (W_E + mean_p W_pos[p])ᵀ by hand to 1e-10, and the seed
  decomposition reproduces the forward pass.
"""
import itertools
import math

import numpy as np
import pytest
import torch
from torch import nn

from topo_mi.circuits.transformer import (attention_circuits, brute_force_accuracy, last_position_logits,
                                          scaled_attention_circuits, seed_circuits)
from topo_mi.errors import InvalidParameterError, ResourceError, UnknownNameError
from topo_mi.guarantees import (STRATEGIES, Proof, brute_force_proof, certified_sequences, count_cubic,
                                count_gap, cubic_proof, noise_analysis, prove, subcubic_proof)
from topo_mi.models import AttentionOnlyTransformer, train_max_of_k

PROOFS = [s for s in STRATEGIES if s != "brute_force"]


def _trained(d_vocab, n_ctx, seed, steps):
    m = AttentionOnlyTransformer(d_vocab=d_vocab, d_model=16, n_ctx=n_ctx, d_head=16, seed=seed)
    train_max_of_k(m, steps=steps, batch_size=128, lr=3e-3, seed=seed)
    return m.eval()


@pytest.fixture(scope="module")
def models():
    """Small vocabularies (d_vocab 8-16): two trained, one half-trained, one untrained."""
    return {"d12_n3": _trained(12, 3, 1, 500), "d8_n4": _trained(8, 4, 2, 500),
            "d16_n3_half": _trained(16, 3, 3, 60),
            "d10_n3_random": AttentionOnlyTransformer(d_vocab=10, d_model=16, n_ctx=3, d_head=16, seed=4).eval()}


def _all_tokens(d, n):
    return np.array(list(itertools.product(range(d), repeat=n)), dtype=np.int64)


def _correct(model, tokens):
    with torch.no_grad():
        logits = last_position_logits(model, tokens).numpy()
    return logits.argmax(axis=1) == tokens.max(axis=1)


# -- seed-exact circuits ------------------------------------------------------------------------

def test_seed_eqke_by_hand():
    m = AttentionOnlyTransformer(d_vocab=7, d_model=5, n_ctx=3, d_head=4, seed=3)
    E, P = m.W_E.detach().double().numpy(), m.W_pos.detach().double().numpy()
    Q, K = m.W_Q[0].detach().double().numpy(), m.W_K[0].detach().double().numpy()
    V, O, U = m.W_V[0].detach().double().numpy(), m.W_O[0].detach().double().numpy(), m.W_U.detach().double().numpy()
    c = seed_circuits(m)
    pbar = sum(P[p] for p in range(3)) / 3
    for q in range(7):
        for k in range(7):
            qv = sum((E[q, i] + P[-1, i]) * Q[i] for i in range(5))
            kv = sum((E[k, i] + pbar[i]) * K[i] for i in range(5))
            assert abs(c.eqke[q, k] - float(np.dot(qv, kv))) < 1e-10
    np.testing.assert_allclose(c.evou, (E + pbar) @ V @ O @ U, atol=1e-10)
    np.testing.assert_allclose(c.pvou, (P - pbar) @ V @ O @ U, atol=1e-10)
    np.testing.assert_allclose(c.eupu, (E + P[-1]) @ U, atol=1e-10)
    assert c.attn_scale == pytest.approx(2.0)
    # the scaled convention is unchanged and differs by the scale and the mean positional term
    s = attention_circuits(m)
    assert scaled_attention_circuits is attention_circuits
    np.testing.assert_allclose(c.eqke, s.eqke * 2.0 + ((E + P[-1]) @ Q @ K.T @ pbar)[:, None], atol=1e-10)


def test_seed_decomposition_reproduces_forward():
    m = AttentionOnlyTransformer(d_vocab=9, d_model=8, n_ctx=4, d_head=4, seed=5).double()
    c = seed_circuits(m)
    tokens = torch.randint(0, 9, (300, 4), generator=torch.Generator().manual_seed(0))
    t = tokens.numpy()
    q = t[:, -1]
    s = (c.eqke[q[:, None], t] + c.eqkp[q]) / c.attn_scale
    a = np.exp(s - s.max(axis=1, keepdims=True))
    a /= a.sum(axis=1, keepdims=True)
    logits = c.eupu[q] + np.einsum("bp,bpx->bx", a, c.evou[t] + c.pvou[None, :, :])
    with torch.no_grad():
        ref = m(tokens)[:, -1].numpy()
    np.testing.assert_allclose(logits, ref, atol=1e-10)


# -- counting oracles ---------------------------------------------------------------------------

@pytest.mark.parametrize("d,n", [(5, 2), (6, 3), (7, 4), (4, 5)])
def test_cubic_count_all_passing_is_every_sequence(d, n):
    assert count_cubic(np.ones((d, d, d, n), bool), np.ones((d, d), bool), n) == d ** n
    j = np.broadcast_to((np.arange(d) - 1)[None, :, None], (d, d, n)).copy()
    assert count_gap(j, np.ones((d, d), bool), n) == (d ** n, 0, 0)


@pytest.mark.parametrize("d,n", [(6, 3), (5, 4)])
def test_count_of_sequences_with_max_m(d, n):
    for m in range(d):
        pk = np.zeros((d, d, d, n), bool)
        pk[:, m] = True
        pc0 = np.zeros((d, d), bool)
        pc0[:, m] = True
        assert count_cubic(pk, pc0, n) == (m + 1) ** n - m ** n
        # brute check against enumeration
        assert sum(1 for s in itertools.product(range(d), repeat=n) if max(s) == m) == (m + 1) ** n - m ** n


def test_gap_accounting_identity_and_dropped_count():
    rng = np.random.default_rng(0)
    d, n = 7, 4
    for _ in range(5):
        j = rng.integers(-1, d, size=(d, d, n))
        c0 = rng.random((d, d)) < 0.5
        counted, dropped, failed = count_gap(j, c0, n)
        assert counted + dropped + failed == d ** n
        # independent per-sequence count: a sequence is counted when every non-max key token <= j
        seqs = _all_tokens(d, n)
        q, m, pre = seqs[:, -1], seqs.max(1), seqs[:, :-1]
        nonmax = pre < m[:, None]
        c = nonmax.sum(1)
        jj = np.minimum(j[q, m, c], m - 1)
        ok_c = (jj >= 0) & ((pre <= jj[:, None]) | ~nonmax).all(1)
        dropped_c = (jj >= 0) & ~ok_c
        ok = np.where(c == 0, c0[q, m], ok_c)
        assert counted == ok.sum() and dropped == np.where(c == 0, False, dropped_c).sum()


# -- soundness ----------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["d12_n3", "d8_n4", "d16_n3_half", "d10_n3_random"])
def test_every_proof_is_sound_per_sequence(models, name):
    model = models[name]
    d, n = model.d_vocab, model.n_ctx
    tokens = _all_tokens(d, n)
    correct = _correct(model, tokens)
    bf = brute_force_proof(model)
    assert bf.n_certified == correct.sum() == round(brute_force_accuracy(model) * d ** n)
    assert bf.n_certified + bf.n_failed == d ** n
    for s in PROOFS:
        p = prove(model, s)
        mask = certified_sequences(p, tokens)
        assert not (mask & ~correct).any(), s
        assert mask.sum() == p.n_certified, s
        assert 0.0 <= p.bound <= bf.bound
        assert p.n_certified + p.n_dropped + p.n_failed == d ** n


def test_trained_models_get_nontrivial_bounds(models):
    for name in ("d12_n3", "d8_n4"):
        bf = brute_force_proof(models[name]).bound
        cub = cubic_proof(models[name]).bound
        assert bf > 0.95 and cub > 0.8 * bf, (name, bf, cub)


@pytest.mark.parametrize("name", ["d12_n3", "d8_n4", "d16_n3_half"])
def test_subcubic_certifies_a_subset_of_cubic_at_zero_margin(models, name):
    model = models[name]
    tokens = _all_tokens(model.d_vocab, model.n_ctx)
    cubic = certified_sequences(cubic_proof(model, margin=0.0), tokens)
    for qk in ("exact", "svd", "rowdiff"):
        sub = certified_sequences(subcubic_proof(model, qk=qk, margin=0.0), tokens)
        assert not (sub & ~cubic).any(), qk


def test_margin_only_removes_certificates(models):
    model = models["d12_n3"]
    tokens = _all_tokens(12, 3)
    loose = certified_sequences(cubic_proof(model, margin=0.0), tokens)
    strict = certified_sequences(cubic_proof(model, margin=1.0), tokens)
    assert not (strict & ~loose).any() and strict.sum() < loose.sum()


def test_flops_formula_matches_counted_operations(models):
    for model in (models["d12_n3"], models["d8_n4"]):
        for s in STRATEGIES:
            p = prove(model, s)
            assert 0.5 <= p.flops_counted / p.flops_formula <= 2.0, (s, p.flops_counted, p.flops_formula)


# -- results ------------------------------------------------------------------------------------

def test_proof_result_roundtrip(models, tmp_path):
    p = cubic_proof(models["d12_n3"])
    assert isinstance(p, Proof) and p.complexity.startswith("O(") and p.wall_time_s >= 0
    assert any("not bounded" in a for a in p.assumptions)
    back = Proof.load(p.save(tmp_path / "p"))
    assert back.n_certified == p.n_certified and np.array_equal(back.certificate["pass_k"], p.certificate["pass_k"])
    d = p.to_dict()
    assert d["strategy"] == "cubic" and d["bound"] == p.bound
    assert set(p.summary()) >= {"bound", "flops_counted", "flops_formula", "complexity", "wall_time_s"}
    ax = p.plot()
    assert ax.get_xlabel()


def test_noise_analysis_bounds_hold(models):
    for model in models.values():
        na = noise_analysis(model)
        c = seed_circuits(model)
        np.testing.assert_allclose(na.eqke_singular_values, np.linalg.svd(c.eqke, compute_uv=False), rtol=1e-10)
        for part in (na.eqke, na.evou):
            assert part["residual_max_row_difference"] <= part["residual_sqrt2_sigma_bound"] * (1 + 1e-12)
            assert part["residual_sqrt2_sigma_bound"] <= part["residual_frobenius_bound"] * (1 + 1e-12)
            assert 0 < part["sigma1_share"] <= 1
        e = na.eqke
        assert e["factored_residual_max_row_difference"] <= e["factored_sqrt2_sigma_bound"] * (1 + 1e-12)
        assert e["factored_residual_max_row_difference"] <= e["factored_rowdiff_bound"] * (1 + 1e-12)
    assert math.isfinite(na.summary()["eqke_sigma1_over_sigma2"])


# -- bad input ----------------------------------------------------------------------------------

class _WithBias(AttentionOnlyTransformer):
    def __init__(self, **kw):
        super().__init__(**kw)
        self.b_U = nn.Parameter(torch.zeros(self.d_vocab))


class _WithNorm(AttentionOnlyTransformer):
    def __init__(self, **kw):
        super().__init__(**kw)
        self.ln_final = nn.LayerNorm(self.d_model)


def test_bad_models_are_refused_naming_the_part():
    kw = dict(d_vocab=6, d_model=4, n_ctx=3, d_head=4)
    with pytest.raises(InvalidParameterError, match="model: expected one attention head.*n_heads=2"):
        cubic_proof(AttentionOnlyTransformer(n_heads=2, **kw))
    with pytest.raises(InvalidParameterError, match="no biases.*b_U"):
        cubic_proof(_WithBias(**kw))
    with pytest.raises(InvalidParameterError, match="no layer norm.*ln_final"):
        subcubic_proof(_WithNorm(**kw))
    with pytest.raises(InvalidParameterError, match="attention-only transformer.*MLP"):
        from topo_mi.models import MLP
        brute_force_proof(MLP(in_dim=2, widths=[3], out_dim=2))
    with pytest.raises(InvalidParameterError, match="n_ctx >= 2"):
        cubic_proof(AttentionOnlyTransformer(d_vocab=6, d_model=4, n_ctx=1, d_head=4))
    m = AttentionOnlyTransformer(**kw)
    with pytest.raises(InvalidParameterError, match="margin"):
        cubic_proof(m, margin=-1.0)
    with pytest.raises(UnknownNameError, match="qk"):
        subcubic_proof(m, qk="rank7")
    with pytest.raises(UnknownNameError, match="strategy"):
        prove(m, "quartic")
    with pytest.raises(InvalidParameterError, match="tokens"):
        certified_sequences(cubic_proof(m), np.zeros((2, 2), np.int64))


def test_brute_force_refused_up_front_but_cheaper_proofs_run():
    m = AttentionOnlyTransformer(d_vocab=24, d_model=8, n_ctx=6, d_head=8, seed=0)
    with pytest.raises(ResourceError, match=r"191,102,976 sequences.*FLOPs.*cubic or subcubic"):
        brute_force_proof(m)
    p = cubic_proof(m)
    assert p.n_total == 24 ** 6 and 0.0 <= p.bound <= 1.0
    with pytest.raises(ResourceError, match="cubic proof needs about.*max_bytes"):
        cubic_proof(m, max_bytes=10_000)
    with pytest.raises(ResourceError, match="subcubic proof.*max_bytes"):
        subcubic_proof(m, max_bytes=10_000)
    assert subcubic_proof(m).n_total == 24 ** 6


# -- pipeline -----------------------------------------------------------------------------------

def test_proof_table_on_one_model(models, tmp_path):
    from topo_mi.pipelines import ProofTable, proof_table

    model = models["d12_n3"]
    t = proof_table(model, n_samples=2000)
    assert t.bound.shape == (1, len(STRATEGIES)) and t.labels == ["model"]
    bf = brute_force_proof(model)
    assert t.brute_force_accuracy[0] == bf.bound == t.bound[0, 0]
    assert t.bound[0, 1] == cubic_proof(model).bound
    assert np.all(t.bound[0] <= bf.bound)
    sec = t.report_section()
    assert "cubic" in sec["headline"] and "not machine-checked" in sec["caption"]
    assert len(sec["table"]["index"]) == len(sec["table"]["rows"]) == len(STRATEGIES)
    assert all(len(r) == len(sec["table"]["columns"]) for r in sec["table"]["rows"])
    back = ProofTable.load(t.save(tmp_path / "t"))
    np.testing.assert_array_equal(back.bound, t.bound)
    assert t.plot().get_xlabel().startswith("proof cost")


def test_proof_table_multi_seed_multi_k_mean_sd_and_budget_note():
    from topo_mi.pipelines import proof_table

    t = proof_table(ks=[3, 4], seeds=[0, 1], d_vocab={"3": 8, 4: 6}, d_model=8, d_head=8, steps=80, lr=3e-3,
                    strategies=["brute_force", "cubic", "subcubic"], max_brute_force_sequences=1000,
                    n_samples=1000)
    assert list(t.k) == [3, 3, 4, 4] and list(t.d_vocab) == [8, 8, 6, 6] and list(t.seeds) == [0, 1, 0, 1]
    assert np.isnan(t.bound[2:, 0]).all() and np.isfinite(t.bound[:2, 0]).all()   # 6^4 = 1296 > 1000
    assert any("K=4" in n and "1,296" in n for n in t.notes)
    rows = {(r["K"], r["strategy"]): r for r in t.table()}
    cub = rows[(3, "cubic")]
    assert cub["bound_mean"] == pytest.approx(t.bound[:2, 1].mean())
    assert cub["bound_sd"] == pytest.approx(np.std(t.bound[:2, 1], ddof=1))
    assert rows[(4, "brute_force")]["ran"] == "no" and math.isnan(rows[(4, "brute_force")]["bound_mean"])
    assert np.all(t.bound[:2, 1:] <= t.bound[:2, :1] + 1e-15)
    assert "K3_cubic_bound" in t.summary()
    with pytest.raises(InvalidParameterError, match="d_vocab.*K=5"):
        proof_table(ks=[5], d_vocab={4: 6}, steps=1)
    with pytest.raises(UnknownNameError, match="strategies"):
        proof_table(ks=[3], d_vocab=4, steps=1, strategies=["nope"])


def test_spec_runs_the_guarantees_analysis(tmp_path, report_checker):
    from topo_mi.pipelines import run

    spec = """
name = "g"
seed = 0
[analyses.guarantees]
ks = [3]
seeds = [0]
d_vocab = 6
d_model = 8
d_head = 8
steps = 50
n_samples = 500
strategies = ["brute_force", "cubic", "subcubic_rank1_rowdiff"]
"""
    res = run(spec, out=tmp_path / "run", progress=False)
    out = report_checker(tmp_path / "run")
    g = out["analyses"]["guarantees"]
    assert 0.0 <= g["cubic_bound"] <= g["brute_force_bound"] <= 1.0
    assert (tmp_path / "run" / "figures" / "guarantees.png").is_file()
    assert res.results["analyses"]["guarantees"]["n_runs"] == 1
    from topo_mi.errors import SpecError

    with pytest.raises(SpecError, match="analyses.guarantees.widht"):
        run(spec.replace("d_model = 8", "widht = 8"), out=tmp_path / "bad", progress=False)
