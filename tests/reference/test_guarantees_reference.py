"""Compact proofs on the zoo's max-of-4 model (Gross et al. 2024 recipe) and on several seeds.

- Soundness: 0 <= bound <= brute-force accuracy for every strategy, and no certified sequence is
  wrong (checked on 300,000 random sequences against the package's independent table evaluation).
- Tightness: the cubic bound is at least 0.9 of the brute-force accuracy at >= 100x fewer FLOPs
  (Gross et al. report cubic proofs near 2^27 FLOPs against brute force over all 64^4 sequences).
- Brute force as a proof agrees with ``brute_force_accuracy`` to the sequence.
"""
import numpy as np
import pytest
import torch

from topo_mi.circuits.transformer import brute_force_accuracy, last_position_logits
from topo_mi.guarantees import STRATEGIES, brute_force_proof, certified_sequences, cubic_proof, prove


@pytest.fixture(scope="module")
def zoo():
    from topo_mi.models import pretrained

    return pretrained("attn-max-of-4")


@pytest.fixture(scope="module")
def brute(zoo):
    return brute_force_proof(zoo)


def test_brute_force_proof_equals_brute_force_accuracy(zoo, brute):
    assert brute.n_total == 64 ** 4
    assert brute.n_certified == round(brute_force_accuracy(zoo) * 64 ** 4)
    assert brute.bound > 0.99


def test_cubic_is_tight_and_cheap(zoo, brute):
    cubic = cubic_proof(zoo)
    assert cubic.bound >= 0.9 * brute.bound, (cubic.bound, brute.bound)
    assert brute.flops_counted / cubic.flops_counted >= 100, (brute.flops_counted, cubic.flops_counted)


def test_every_strategy_sound_on_zoo(zoo, brute):
    rng = np.random.default_rng(0)
    tokens = rng.integers(0, 64, size=(300_000, 4))
    with torch.no_grad():
        correct = last_position_logits(zoo, tokens).numpy().argmax(1) == tokens.max(1)
    bounds = {}
    for s in STRATEGIES[1:]:
        p = prove(zoo, s)
        assert 0.0 <= p.bound <= brute.bound, s
        assert not (certified_sequences(p, tokens) & ~correct).any(), s
        bounds[s] = p.bound
    # the exact-score subcubic proof is the tightest subcubic one; all are non-trivial here
    assert bounds["subcubic"] >= max(bounds["subcubic_rank1_svd"], bounds["subcubic_rank1_rowdiff"])
    assert min(bounds.values()) > 0.3, bounds


@pytest.mark.slow
def test_soundness_per_seed_max_of_4():
    from topo_mi.models import AttentionOnlyTransformer, train_max_of_k

    for seed in (1, 2, 3):
        m = AttentionOnlyTransformer(d_vocab=64, d_model=32, n_ctx=4, d_head=32, seed=seed)
        train_max_of_k(m, steps=3000, batch_size=128, lr=1e-3, seed=seed)
        bf = brute_force_proof(m)
        for s in STRATEGIES[1:]:
            p = prove(m, s)
            assert 0.0 <= p.bound <= bf.bound, (seed, s)
        assert cubic_proof(m).bound >= 0.8 * bf.bound
