"""Ground truth for dictionary learning: Sharkey, Braun & Millidge's planted-feature toy data.

Protocol (REFERENCES, "Sparse dictionaries"): 128 unit Gaussian directions in R^64, feature i active
with probability ∝ 0.99^i (5 active on average), values U(0,1)·U(0,1); dictionaries of 256 latents
(2x the true number); score: mean max cosine similarity (MMCS) of the true directions with the
decoder rows, and the one-to-one Hungarian-matched mean (<= MMCS). Steps are fewer than the 2,000
of the reference measurement (at a higher learning rate) to keep each test well under a minute.
"""
import numpy as np
import pytest

pytest.importorskip("torch")

from topo_mi.dictionaries import evaluate, matched_mcs, mmcs, toy_features, train_sae  # noqa: E402


@pytest.fixture(scope="module")
def toy():
    return toy_features(2 ** 17, d=64, n_features=128, mean_active=5.0, decay=0.99, seed=0)


def test_generator_follows_the_protocol(toy):
    X, dirs, codes = toy
    assert X.shape == (2 ** 17, 64) and dirs.shape == (128, 64)
    np.testing.assert_allclose(np.linalg.norm(dirs, axis=1), 1.0)
    assert (codes > 0).sum(axis=1).mean() == pytest.approx(5.0, rel=0.02)
    p = (codes > 0).mean(axis=0)
    ratio = np.polyfit(np.arange(128), np.log(np.maximum(p, 1e-9)), 1)[0]
    assert ratio == pytest.approx(np.log(0.99), abs=0.002)
    v = codes[codes > 0]
    assert v.mean() == pytest.approx(0.25, abs=0.01)  # E[U·U] = 1/4
    np.testing.assert_allclose(X, codes.astype(np.float64) @ dirs, atol=1e-5)


def test_relu_l1_recovers_the_planted_features(toy):
    X, dirs, _ = toy
    sae = train_sae(X, kind="relu", d_sae=256, l1_coefficient=0.2, n_steps=1000, batch_size=1024, lr=3e-3, seed=0)
    D = sae.decoder_directions()
    assert mmcs(dirs, D) >= 0.99
    assert matched_mcs(dirs, D) <= mmcs(dirs, D) + 1e-12


def test_topk_at_the_true_l0_recovers_the_planted_features(toy):
    X, dirs, _ = toy
    sae = train_sae(X, kind="topk", k=5, d_sae=256, n_steps=600, batch_size=1024, lr=3e-3, seed=0)
    assert mmcs(dirs, sae.decoder_directions()) >= 0.99
    assert evaluate(sae, X[:20000]).l0 <= 5


def test_mmcs_discriminates_a_too_weak_l1(toy):
    X, dirs, _ = toy
    good = train_sae(X, kind="relu", d_sae=256, l1_coefficient=0.2, n_steps=600, batch_size=1024, lr=3e-3, seed=0)
    weak = train_sae(X, kind="relu", d_sae=256, l1_coefficient=3e-3, n_steps=600, batch_size=1024, lr=3e-3, seed=0)
    ev_good = evaluate(good, X[:20000]).explained_variance["ratio_of_sums_centred"]
    ev_weak = evaluate(weak, X[:20000]).explained_variance["ratio_of_sums_centred"]
    assert ev_weak > ev_good  # better reconstruction ...
    assert mmcs(dirs, weak.decoder_directions()) < 0.7  # ... with features not recovered


@pytest.mark.slow
@pytest.mark.hf
def test_minilm_token_sae_explains_most_variance_at_low_l0():
    """A TopK SAE (4x width, 3,000 steps, k = 64) on MiniLM encoder.layer.3 token activations of the
    shipped `text` corpus (865 sentences, 14,185 tokens with [CLS]/[SEP]); 10 % of the *sentences*
    are held out (tokens of one sentence are correlated, so a per-token split would leak): L0 <= 64
    and explained variance >= 0.8 on the held-out tokens (the issue's bar), above what the 64
    leading principal components of the training tokens explain there (a dense code of that size).
    Measured: held-out EV 0.824 at L0 64.0 (PCA-64: 0.689) on 1,406 tokens of 88 sentences."""
    pytest.importorskip("transformers")
    from topo_mi.activations import collect_text
    from topo_mi.activations.hf import load_minilm
    from topo_mi.datasets import make
    from topo_mi.pipelines import dictionary_profile
    from topo_mi.pipelines.dictionaries import holdout_rows

    model, tok = load_minilm()
    acts = collect_text(model, tok, list(make("text").X), layers=["encoder.layer.3"], progress=False)
    assert len(np.unique(acts.token_index[:, 0])) == 865
    prof = dictionary_profile(acts, layer="encoder.layer.3", kind="topk", expansion=4, k=64,
                              n_steps=3000, batch_size=256, lr=2e-3, dead_after=25600, seed=0)
    s = prof.summary()
    X = np.asarray(acts["encoder.layer.3"], dtype=np.float64)
    held = holdout_rows(len(X), int(round(0.1 * len(X))), 0, groups=acts.token_index[:, 0])
    assert prof.n_eval == len(held)
    held_texts = set(acts.token_index[held, 0].tolist())
    train = np.setdiff1d(np.arange(len(X)), held)
    assert not held_texts & set(acts.token_index[train, 0].tolist())  # whole sentences held out
    assert s["l0"] <= 64
    assert s["ev_ratio_of_sums_centred"] >= 0.8
    mu = X[train].mean(0)
    V = np.linalg.svd(X[train] - mu, full_matrices=False)[2][:64]
    R = (X[held] - mu) - (X[held] - mu) @ V.T @ V
    ev_pca = 1 - (R ** 2).sum() / ((X[held] - X[held].mean(0)) ** 2).sum()
    print(f"\nMiniLM text SAE: train {prof.n_train}, held out {prof.n_eval} tokens of {len(held_texts)} "
          f"sentences; L0 {s['l0']:.1f}; held-out EV {s['ev_ratio_of_sums_centred']:.4f} (PCA-64 {ev_pca:.4f}); "
          f"summary {s}")
    assert s["ev_ratio_of_sums_centred"] > ev_pca
    assert prof.examples.contexts and "[[" in prof.examples.contexts[0][0]
