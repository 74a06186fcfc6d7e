"""Sparse dictionaries: every loss term against a hand computation, metrics identities, training
mechanics (resampling, AuxK, checkpoints, determinism), crosscoders, I/O and bad input."""
import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from topo_mi.activations import Activations  # noqa: E402
from topo_mi.dictionaries import (SparseDictionary, auxk_loss, evaluate, explained_variance,  # noqa: E402
                                  geometric_median, jumprelu, l0_penalty, l1_penalty, make_config, mmcs,
                                  reconstruction_loss, toy_features, train_crosscoder, train_sae,
                                  train_transcoder)
from topo_mi.errors import (InvalidParameterError, NonFiniteError, StoreMismatchError,  # noqa: E402
                            UnknownNameError)


@pytest.fixture(scope="module")
def toy():
    X, dirs, codes = toy_features(8192, d=16, n_features=32, mean_active=3, seed=1)
    return X, dirs, codes


# ---------------------------------------------------------------------------------------------
# loss terms, by hand
# ---------------------------------------------------------------------------------------------
def test_reconstruction_loss_by_hand():
    x = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    xh = torch.tensor([[0.0, 2.0], [3.0, 2.0]])
    assert reconstruction_loss(x, xh).item() == pytest.approx((1 + 4) / 2)


def test_l1_is_weighted_by_decoder_norms_summed_over_sources():
    z = torch.tensor([[1.0, -2.0], [0.0, 3.0]])
    W = torch.zeros(2, 2, 3)  # (latents, sources, d)
    W[0, 0] = torch.tensor([3.0, 4.0, 0.0])  # norm 5
    W[0, 1] = torch.tensor([0.0, 0.0, 1.0])  # norm 1
    W[1, 0] = torch.tensor([0.0, 0.5, 0.0])  # norm 0.5
    # row 0: 1*(5+1) + 2*0.5 = 7; row 1: 3*0.5 = 1.5; mean 4.25
    assert l1_penalty(z, W).item() == pytest.approx(4.25)


def test_auxk_by_hand_detached_no_bias_scaled():
    pre = torch.tensor([[0.5, 2.0, -1.0, 3.0]], requires_grad=True)
    dead = torch.tensor([True, True, True, False])
    W = torch.eye(4).reshape(4, 1, 4) * torch.tensor([1.0, 2.0, 1.0, 1.0]).reshape(4, 1, 1)
    W.requires_grad_(True)
    resid = torch.tensor([[[1.0, 1.0, 1.0, 1.0]]], requires_grad=True)
    # k_aux = 2: dead latents 0 and 1 (2.0 and 0.5; latent 3 is alive even though larger)
    # e_hat = 0.5 * e0 + 2.0 * (2 e1) = [0.5, 4, 0, 0]; (e - e_hat)^2 = 0.25 + 9 + 1 + 1 = 11.25
    loss = auxk_loss(pre, dead, resid, W, k_aux=2)
    assert loss.item() == pytest.approx(min(3 / 2, 1.0) * 11.25)
    # with k_aux = 6 > n_dead the scale is n_dead / k_aux = 0.5 and all three dead latents are kept
    # (latent 2 has pre -1 -> ReLU 0)
    assert auxk_loss(pre, dead, resid, W, k_aux=6).item() == pytest.approx(0.5 * 11.25)
    loss.backward()
    assert resid.grad is None  # the residual is detached
    assert pre.grad[0, 3] == 0 and pre.grad[0, 2] == 0 and pre.grad[0, 1] != 0
    assert auxk_loss(pre, torch.zeros(4, dtype=torch.bool), resid, W, 2).item() == 0.0


def test_auxk_pre_activations_leave_the_input_centring_alone():
    """AuxK's pre-activations equal the model's; their gradient reaches W_enc and b_enc exactly as
    with b_dec a constant, and b_dec not at all (an earlier sign error doubled it instead)."""
    from topo_mi.dictionaries._train import _aux_pre_activations

    sae = SparseDictionary(make_config(kind="topk", d_in=5, d_sae=7, k=2), seed=3)
    assert sae.cfg["apply_b_dec_to_input"]
    with torch.no_grad():
        sae.b_dec.copy_(torch.linspace(-1, 1, 5).reshape(1, 5))
    x = torch.randn(6, 1, 5, generator=torch.Generator().manual_seed(0))
    w = torch.randn(6, 7, generator=torch.Generator().manual_seed(1))
    pre = _aux_pre_activations(sae, x)
    torch.testing.assert_close(pre, sae.pre_activations(x))
    (pre * w).sum().backward()
    assert sae.b_dec.grad is None or float(sae.b_dec.grad.abs().max()) < 1e-6
    xc = (x[:, 0] - sae.b_dec.detach()[0])
    torch.testing.assert_close(sae.W_enc.grad[0], xc.T @ w)
    torch.testing.assert_close(sae.b_enc.grad, w.sum(0))


def test_jumprelu_forward_and_straight_through_gradients_by_hand():
    eps = 0.1
    pre = torch.tensor([[0.52, 0.3, 0.56, 1.0]], requires_grad=True)
    theta = torch.tensor([0.5, 0.5, 0.5, 0.5], requires_grad=True)
    z = jumprelu(pre, theta, eps)
    assert z.detach().tolist() == [[pytest.approx(0.52), 0.0, pytest.approx(0.56), 1.0]]
    z.sum().backward()
    assert pre.grad.tolist() == [[1.0, 0.0, 1.0, 1.0]]
    # d/dtheta = -(theta/eps) K((pre - theta)/eps): |pre - theta| < eps/2 for 0.52 only (0.56 is 0.06 > 0.05)
    assert theta.grad.tolist() == pytest.approx([-(0.5 / eps), 0.0, 0.0, 0.0])
    theta.grad = None
    pre2 = torch.tensor([[0.48, 0.3], [0.53, 0.9]])
    th = torch.tensor([0.5, 0.5], requires_grad=True)
    l0 = l0_penalty(pre2, th, eps)
    assert l0.item() == pytest.approx((0 + 0 + 1 + 1) / 2)
    l0.backward()
    # latent 0: both rows within eps/2 of theta -> -(1/eps) * 2 / batch(2) = -10
    assert th.grad.tolist() == pytest.approx([-10.0, 0.0])


def test_topk_has_l0_exactly_k_and_batchtopk_keeps_k_times_batch():
    cfg = make_config(kind="topk", d_in=8, d_sae=32, k=5)
    sae = SparseDictionary(cfg, seed=0)
    x = torch.randn(64, 8, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert ((sae.encode(x) > 0).sum(dim=1) <= 5).all()
        sae.b_enc.fill_(100.0)  # every pre-activation positive: exactly k survive the ReLU
        assert ((sae.encode(x) > 0).sum(dim=1) == 5).all()
    b = SparseDictionary(make_config(kind="batchtopk", d_in=8, d_sae=32, k=3), seed=0)
    with torch.no_grad():
        b.b_enc.fill_(100.0)
        b.train()
        z = b.encode(x)
        assert int((z > 0).sum()) == 3 * 64
        assert (z > 0).sum(dim=1).float().std() > 0  # per-row counts vary (a batch-level budget)
        kept_min = z[z > 0].min()
        assert b.threshold.item() == pytest.approx(kept_min.item())  # first update = the value itself
        b.eval()
        assert torch.equal(b.encode(x) > 0, b.pre_activations(x) > b.threshold)


def test_sparse_decode_equals_the_dense_decode():
    sae = SparseDictionary(make_config(kind="topk", d_in=8, d_sae=32, k=5), seed=0)
    with torch.no_grad():
        sae.b_dec.normal_()
    x = torch.randn(16, 8, generator=torch.Generator().manual_seed(1))
    pre = sae.pre_activations(x)
    vals, idx = pre.topk(5, dim=1)
    torch.testing.assert_close(sae.sparse_decode(vals.relu(), idx)[:, 0], sae.decode(sae.activate(pre)))


def test_sparse_topk_backward_equals_dense_autograd():
    from topo_mi.dictionaries._losses import topk_encode

    # the selection comes in no particular order: the loss weights each latent, not each slot;
    # the larger case has latents chosen by many rows and latents chosen by none (empty sums)
    for n, d, s, k, col_major in ((12, 6, 20, 4, False), (50, 9, 300, 17, False), (40, 7, 64, 5, True)):
        g = torch.Generator().manual_seed(n)
        x = torch.randn(n, d, generator=g, requires_grad=True)
        W = torch.randn(s, d, generator=g).t()  # column-major (a tied initialisation)
        W = W.contiguous() if not col_major else W
        W.requires_grad_(True)
        b = torch.randn(s, generator=g, requires_grad=True)
        w_lat = torch.randn(n, s, generator=g)
        vals, idx = topk_encode(x, W, b, k)
        (vals * w_lat.gather(1, idx)).sum().backward()
        grads = [t.grad.clone() for t in (x, W, b)]
        assert (grads[1].stride(0) == 1) is col_major  # the gradient is laid out like W
        for t in (x, W, b):
            t.grad = None
        v2, i2 = (x @ W + b).topk(k, dim=1)
        assert torch.equal(i2.sort(dim=1).values, idx.sort(dim=1).values)
        (v2.relu() * w_lat.gather(1, i2)).sum().backward()
        for got, t in zip(grads, (x, W, b)):
            torch.testing.assert_close(got, t.grad, rtol=1e-5, atol=1e-5)


def test_geometric_median_known_answers():
    pts = np.array([[0.0, 0.0], [1.0, 0.0], [10.0, 0.0]])
    np.testing.assert_allclose(geometric_median(pts), [1.0, 0.0], atol=1e-4)
    sq = np.array([[1.0, 1.0], [-1.0, 1.0], [1.0, -1.0], [-1.0, -1.0], [100.0, 100.0]])
    # on the diagonal the unit vectors balance when 2a / sqrt(1 + a^2) = 1: a = 1 / sqrt(3)
    # (the mean is dragged to (20, 20))
    np.testing.assert_allclose(geometric_median(sq), [3 ** -0.5, 3 ** -0.5], atol=1e-5)


# ---------------------------------------------------------------------------------------------
# metric conventions
# ---------------------------------------------------------------------------------------------
def test_explained_variance_identities_and_hand_values():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((200, 5)) + np.array([3.0, -1.0, 0.0, 2.0, 5.0])
    ev = explained_variance(X, X)
    assert all(v == pytest.approx(1.0) for v in ev.values())
    mu = np.broadcast_to(X.mean(axis=0), X.shape)
    ev = explained_variance(X, mu)
    for name in ("ratio_of_sums_centred", "per_token_centred", "residual_centred"):
        assert ev[name] == pytest.approx(0.0, abs=1e-12), name
    # about zero the mean predictor already "explains" n ||mu||^2 / sum ||x||^2
    assert ev["ratio_of_sums_uncentred"] == pytest.approx(len(X) * (X.mean(0) ** 2).sum() / (X ** 2).sum())
    # a constant offset: the residual-centred convention forgives it, the others do not
    ev = explained_variance(X, X + 1.0)
    assert ev["residual_centred"] == pytest.approx(1.0)
    assert ev["ratio_of_sums_centred"] == pytest.approx(1 - 200 * 5 / ((X - X.mean(0)) ** 2).sum())
    x = np.array([[1.0, 0.0], [0.0, 2.0]])
    xh = np.array([[0.0, 0.0], [0.0, 1.0]])
    ev = explained_variance(x, xh)
    assert ev["per_token_uncentred"] == pytest.approx(1 - (1 / 1 + 1 / 4) / 2)
    assert ev["ratio_of_sums_uncentred"] == pytest.approx(1 - 2 / 5)
    with pytest.raises(InvalidParameterError, match="x_hat"):
        explained_variance(x, xh[:1])


def test_evaluate_streams_the_same_numbers(toy):
    X = toy[0][:3000]
    sae = train_sae(X, kind="topk", d_sae=32, k=3, n_steps=30, batch_size=256, seed=0)
    m1 = evaluate(sae, X, batch_size=4096)
    m2 = evaluate(sae, X, batch_size=97)
    for k_ in m1.explained_variance:
        assert m1.explained_variance[k_] == pytest.approx(m2.explained_variance[k_], rel=1e-9, abs=1e-12)
    ev = explained_variance(X, sae.reconstruct(X))
    for k_ in ev:
        assert m1.explained_variance[k_] == pytest.approx(ev[k_], abs=1e-6)
    z = sae.encode(X).detach().numpy()
    assert m1.l0 == pytest.approx((z > 0).sum(1).mean())
    np.testing.assert_allclose(m1.density, (z > 0).mean(0))
    assert m1.dead_fraction == pytest.approx(((z > 0).sum(0) == 0).mean())
    assert m1.l0 <= 3
    counts, edges = m1.density_histogram()
    assert counts.sum() == (m1.density > 0).sum()


# ---------------------------------------------------------------------------------------------
# training mechanics
# ---------------------------------------------------------------------------------------------
def test_training_is_deterministic_and_decoder_rows_unit(toy):
    X = toy[0]
    a = train_sae(X, kind="topk", d_sae=48, k=3, n_steps=40, batch_size=256, seed=3)
    b = train_sae(X, kind="topk", d_sae=48, k=3, n_steps=40, batch_size=256, seed=3)
    c = train_sae(X, kind="topk", d_sae=48, k=3, n_steps=40, batch_size=256, seed=4)
    for (n, p), q in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(p, q), n
    assert not torch.equal(a.W_dec, c.W_dec)
    np.testing.assert_allclose(a.W_dec.detach().flatten(1).norm(dim=1).numpy(), 1.0, atol=1e-5)
    assert len(a.history["mse"]) > 1 and a.history["mse"][-1] < a.history["mse"][0]


def test_store_and_activations_inputs_match_arrays(toy, tmp_path):
    X = toy[0][:2048]
    acts = Activations({"h": X, "g": X * 2})
    store = acts.save(tmp_path / "store")
    kw = dict(kind="relu", d_sae=24, n_steps=15, batch_size=128, seed=0, l1_coefficient=0.05)
    b = train_sae(acts, layer="h", **kw)  # streamed through Activations.iter_batches
    c = train_sae(store, layer="h", **kw)  # the same from the memory-mapped store
    assert torch.equal(b.W_enc, c.W_enc) and torch.equal(b.W_dec, c.W_dec)
    a = train_sae(X, **kw)  # arrays: the package's own seeded batching
    assert evaluate(a, X).mse == pytest.approx(evaluate(b, X).mse, rel=0.2)
    with pytest.raises(UnknownNameError, match="layer"):
        train_sae(store, layer="missing", **kw)
    with pytest.raises(InvalidParameterError, match="layer name"):
        train_sae(acts, **kw)


def test_resampling_by_hand(toy):
    from topo_mi.dictionaries._train import _Source, _resample

    X = toy[0][:4096]
    sae = SparseDictionary(make_config(kind="relu", d_in=16, d_sae=40), seed=0)
    opt = torch.optim.Adam(sae.parameters(), lr=1e-3)
    src = _Source([X], None, 256, 0)
    x = torch.from_numpy(src.batch(0)[0])
    (sae.decode(sae.encode(x), squeeze=False) - x).pow(2).sum().backward()
    opt.step()
    with torch.no_grad():
        sae.b_enc[:10] = -1e3  # latents 0..9 can never fire
    since = torch.zeros(40, dtype=torch.long)
    since[:10] = 10**6
    alive_norm = sae.W_enc[0, :, 10:].norm(dim=0).mean().item()
    n = _resample(sae, opt, src, since, dead_after=1000, n_samples=2048, seed=0, step=5)
    assert n == 10 and (since == 0).all()
    enc = sae.W_enc.detach()[0, :, :10]
    np.testing.assert_allclose(enc.norm(dim=0).numpy(), 0.2 * alive_norm, rtol=1e-5)
    dec = sae.W_dec.detach()[:10, 0]
    np.testing.assert_allclose(dec.norm(dim=1).numpy(), 1.0, rtol=1e-5)
    # decoder row = a normalised input, encoder row parallel to it
    cos = torch.nn.functional.cosine_similarity(enc.T, dec, dim=1)
    np.testing.assert_allclose(cos.numpy(), 1.0, atol=1e-5)
    Xn = X / np.maximum(np.linalg.norm(X, axis=1, keepdims=True), 1e-12)
    assert (np.abs(Xn @ dec.numpy().T).max(axis=0) > 1 - 1e-5).all()
    assert (sae.b_enc.detach()[:10] == 0).all()
    st = opt.state[sae.W_enc]
    assert (st["exp_avg"][0, :, :10] == 0).all() and (st["exp_avg_sq"][0, :, :10] == 0).all()
    assert (st["exp_avg_sq"][0, :, 10:] != 0).any()
    assert (opt.state[sae.W_dec]["exp_avg"][:10] == 0).all()
    # revived: they fire again
    with torch.no_grad():
        assert ((sae.encode(torch.from_numpy(X)) > 0).sum(0)[:10] > 0).all()


def test_resampling_lowers_the_dead_fraction_during_training(toy):
    X = toy[0]
    start = SparseDictionary(make_config(kind="relu", d_in=16, d_sae=64), seed=0)
    with torch.no_grad():
        start.b_enc[:32] = -10.0  # half the latents start dead: no gradient can reach them
    kw = dict(kind="relu", d_sae=64, n_steps=100, batch_size=256, lr=3e-3, seed=0, l1_coefficient=0.1,
              dead_after=256 * 20, log_every=1, init=start, b_dec_init="zeros")
    plain = train_sae(X, **kw)
    res = train_sae(X, resample_at=[50], **kw)
    h = res.history
    before = h["dead_fraction"][h["step"] == 49][0]
    after = h["dead_fraction"][h["step"] == 50][0]
    assert before >= 0.5 and after < 0.1
    assert evaluate(plain, X).dead_fraction >= 0.5
    assert evaluate(res, X).dead_fraction < 0.25


def test_auxk_reduces_dead_latents(toy):
    X = toy[0]
    start = SparseDictionary(make_config(kind="topk", d_in=16, d_sae=64, k=3), seed=0)
    with torch.no_grad():
        start.W_enc[:, :, 32:] *= 0.05  # half the latents have positive pre-activations but never win the top-k
        start.b_dec[0] = torch.as_tensor(X.mean(0))
    kw = dict(kind="topk", d_sae=64, k=3, n_steps=150, batch_size=256, lr=3e-3, seed=0, dead_after=256 * 10,
              init=start)
    no_aux = train_sae(X, aux_coefficient=0.0, **kw)
    aux = train_sae(X, **kw)
    m0, m1 = evaluate(no_aux, X), evaluate(aux, X)
    assert m0.dead_fraction >= 0.45 and m1.dead_fraction < 0.3
    assert m1.explained_variance["ratio_of_sums_centred"] > m0.explained_variance["ratio_of_sums_centred"]


@pytest.mark.parametrize("kind", ["topk", "batchtopk"])
def test_auxk_dead_set_counts_the_current_batch(toy, monkeypatch, kind):
    """The dead mask AuxK uses is the counter after this batch (as in OpenAI's reference: the firing
    statistics are updated before the auxiliary top-k): a latent firing in the batch is never
    among that batch's dead latents, even when it had been silent for ``dead_after`` tokens."""
    from topo_mi.dictionaries import _losses as L

    seen = []
    if kind == "topk":  # the one-source TopK path: the encoder asks dead_of for the mask
        real = L.topk_encode

        def spy(x, W, b, k, *, k_aux=0, dead_of=None):
            def wrapped(idx, vals):
                dead = dead_of(idx, vals)
                fired = torch.zeros(W.shape[1], dtype=torch.bool)
                fired[idx[vals > 0]] = True
                seen.append((dead.clone(), fired))
                return dead
            return real(x, W, b, k, k_aux=k_aux, dead_of=None if dead_of is None else wrapped)

        monkeypatch.setattr(L, "topk_encode", spy)
    else:  # the dense path: AuxK reads the pre-activations; BatchTopK keeps the top k*B of the batch
        real = L.auxk_loss

        def spy(pre, dead, residual, W_dec, k_aux, normalization="none"):
            flat = pre.detach().relu().flatten()
            vals, pos = flat.topk(3 * pre.shape[0])
            fired = torch.zeros(pre.shape[1], dtype=torch.bool)
            fired[pos[vals > 0] % pre.shape[1]] = True
            seen.append((dead.clone(), fired))
            return real(pre, dead, residual, W_dec, k_aux, normalization)

        monkeypatch.setattr(L, "auxk_loss", spy)
    # dead_after = one batch: every latent silent in the previous batch was dead under a stale counter
    train_sae(toy[0], kind=kind, d_sae=64 if kind == "topk" else 256, k=3, n_steps=30, batch_size=256, lr=3e-3,
              seed=0, dead_after=256)
    assert len(seen) >= 10
    assert all(not (dead & fired).any() for dead, fired in seen)
    assert all(dead.sum() == (~fired).sum() for dead, fired in seen)  # and everything silent now is dead


def test_jumprelu_and_batchtopk_train(toy):
    X = toy[0]
    j = train_sae(X, kind="jumprelu", d_sae=48, n_steps=150, batch_size=256, lr=3e-3, seed=0, l0_coefficient=0.01)
    mj = evaluate(j, X)
    assert mj.explained_variance["ratio_of_sums_centred"] > 0.5 and mj.l0 < 48
    assert (j.log_threshold.detach().exp() != 0.001).any()  # thresholds learned through the estimator
    b = train_sae(X, kind="batchtopk", d_sae=48, k=3, n_steps=150, batch_size=256, lr=3e-3, seed=0)
    mb = evaluate(b, X)
    assert b.threshold.item() > 0 and 1.0 < mb.l0 < 6.0
    assert mb.explained_variance["ratio_of_sums_centred"] > 0.5


def test_transcoder_predicts_another_layer(toy):
    X, dirs, codes = toy
    rng = np.random.default_rng(0)
    A = rng.standard_normal((16, 8)).astype(np.float32)
    Y = np.maximum(X @ A, 0.0)
    acts = Activations({"mlp_in": X, "mlp_out": Y})
    tc = train_transcoder(acts, layer="mlp_in", target_layer="mlp_out", kind="topk", d_sae=64, k=4, n_steps=300,
                          batch_size=256, lr=3e-3, seed=0)
    assert tc.cfg["d_in"] == 16 and tc.cfg["d_out"] == 8 and not tc.cfg["apply_b_dec_to_input"]
    assert tc.reconstruct(X[:5]).shape == (5, 8)
    m = evaluate(tc, acts, layer="mlp_in", target_layer="mlp_out")
    assert m.explained_variance["ratio_of_sums_centred"] > 0.8


# ---------------------------------------------------------------------------------------------
# crosscoders
# ---------------------------------------------------------------------------------------------
def test_crosscoder_copies_share_and_a_planted_feature_is_model_specific(toy):
    X, dirs, codes = toy
    rng = np.random.default_rng(5)
    kw = dict(kind="relu", d_sae=64, n_steps=400, batch_size=256, lr=3e-3, seed=0, l1_coefficient=0.1)
    cc = train_crosscoder([Activations({"h": X}), Activations({"h": X})], layer="h", **kw)
    dens = evaluate(cc, [X, X]).density
    r = cc.relative_decoder_norms()[dens > 0.001]
    assert len(r) > 20 and np.median(np.abs(r - 0.5)) < 0.02 and np.quantile(np.abs(r - 0.5), 0.9) < 0.05
    # model B = A plus a new feature active on 10% of samples
    v = rng.standard_normal(16)
    v /= np.linalg.norm(v)
    c = (rng.random(len(X)) < 0.1) * rng.random(len(X)) * 1.5
    XB = (X + c[:, None] * v).astype(np.float32)
    cc2 = train_crosscoder([X, XB], **kw)
    dec_b = cc2.decoder_directions(1)
    cos = np.abs(dec_b @ v) / np.linalg.norm(dec_b, axis=1).clip(1e-12)
    i = int(np.argmax(cos))
    rel = cc2.relative_decoder_norms(0, 1)
    assert cos[i] > 0.9 and rel[i] < 0.1  # writes (almost) only to model B
    shared = np.array([mmcs(d[None], cc2.decoder_directions(0)) for d in dirs])
    assert np.median(shared) > 0.8
    assert np.median(np.abs(rel[np.arange(64) != i] - 0.5)) < 0.1


def test_crosscoder_over_layers_of_one_model(toy):
    X = toy[0][:2048]
    acts = Activations({"a": X, "b": -X})
    cc = train_crosscoder(acts, layers=["a", "b"], kind="topk", k=3, d_sae=32, n_steps=40, batch_size=256)
    assert cc.cfg["n_in"] == 2 and cc.encode(np.stack([X[:4], -X[:4]], axis=1)).shape == (4, 32)
    from topo_mi.plotting.dictionaries import plot_relative_norms

    ax = plot_relative_norms(cc.relative_decoder_norms())
    assert sum(p.get_height() for p in ax.patches) == 32
    with pytest.raises(InvalidParameterError, match="layers"):
        train_crosscoder(acts, layers=["a"], d_sae=8)


# ---------------------------------------------------------------------------------------------
# checkpoints, save/load, export
# ---------------------------------------------------------------------------------------------
class _Stop(Exception):
    pass


def test_resume_after_interruption_is_identical(toy, tmp_path):
    X = toy[0]
    kw = dict(kind="topk", d_sae=48, k=3, n_steps=60, batch_size=256, lr=3e-3, seed=0, dead_after=256 * 5)
    full = train_sae(X, **kw)

    def boom(step, model):
        if step == 47:
            raise _Stop

    with pytest.raises(_Stop):
        train_sae(X, checkpoint_dir=tmp_path, checkpoint_every=20, callback=boom, **kw)
    ck = tmp_path / "checkpoint.safetensors"
    assert ck.exists()
    before = ck.read_bytes()
    with pytest.raises(InvalidParameterError, match="resume=True"):
        train_sae(X, checkpoint_dir=tmp_path, checkpoint_every=20, **kw)
    with pytest.raises(StoreMismatchError, match="lr"):
        train_sae(X, checkpoint_dir=tmp_path, checkpoint_every=20, resume=True, **{**kw, "lr": 1e-3})
    with pytest.raises(StoreMismatchError, match="data"):
        train_sae(X * 2, checkpoint_dir=tmp_path, checkpoint_every=20, resume=True, **kw)
    assert ck.read_bytes() == before  # refused runs overwrite nothing
    resumed = train_sae(X, checkpoint_dir=tmp_path, checkpoint_every=20, resume=True, **kw)
    for (n, p), q in zip(full.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(p, q), n
    for k_ in ("step", "mse", "l0", "dead_fraction"):
        np.testing.assert_array_equal(full.history[k_], resumed.history[k_])
    # the same from a store streamed by iter_batches (resuming mid-epoch skips the batches seen)
    store = Activations({"h": X}).save(tmp_path / "store")
    kw2 = {**kw, "n_steps": 45}
    full = train_sae(store, layer="h", **kw2)
    with pytest.raises(_Stop):
        train_sae(store, layer="h", checkpoint_dir=tmp_path / "ck2", checkpoint_every=10, callback=boom2, **kw2)
    resumed = train_sae(store, layer="h", checkpoint_dir=tmp_path / "ck2", checkpoint_every=10, resume=True, **kw2)
    for (n, p), q in zip(full.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(p, q), n


def boom2(step, model):
    if step == 37:  # 32 batches of 256 per epoch: the checkpoint at 30 resumes inside epoch 0
        raise _Stop


def test_save_load_and_saelens_layout(toy, tmp_path):
    from safetensors.torch import load_file

    X = toy[0][:2048]
    for kind, extra in (("topk", {"k": 3}), ("relu", {}), ("jumprelu", {})):
        sae = train_sae(X, kind=kind, d_sae=24, n_steps=20, batch_size=256, seed=0, **extra)
        back = SparseDictionary.load(sae.save(tmp_path / f"own-{kind}"))
        np.testing.assert_array_equal(back.reconstruct(X[:50]), sae.reconstruct(X[:50]))
        np.testing.assert_array_equal(back.history["mse"], sae.history["mse"])
        out = sae.export_saelens(tmp_path / f"sl-{kind}", hook_name="blocks.0.hook_resid_post")
        cfg = json.loads((out / "cfg.json").read_text())
        t = {k: v.numpy() for k, v in load_file(str(out / "sae_weights.safetensors")).items()}
        assert cfg["d_in"] == 16 and cfg["d_sae"] == 24 and cfg["apply_b_dec_to_input"] is True
        assert t["W_enc"].shape == (16, 24) and t["W_dec"].shape == (24, 16)
        # SAELens's forward from the exported tensors and config alone
        pre = (X[:50] - t["b_dec"]) @ t["W_enc"] + t["b_enc"]
        if cfg["architecture"] == "topk":
            k = cfg["activation_fn_kwargs"]["k"]
            z = np.zeros_like(pre)
            top = np.argsort(-pre, axis=1)[:, :k]
            np.put_along_axis(z, top, np.maximum(np.take_along_axis(pre, top, 1), 0), 1)
        elif cfg["architecture"] == "jumprelu":
            z = pre * (pre > t["threshold"])
        else:
            z = np.maximum(pre, 0)
        np.testing.assert_allclose(z @ t["W_dec"] + t["b_dec"], sae.reconstruct(X[:50]), atol=1e-5)
    tc = train_transcoder(Activations({"a": X, "b": X[:, :4]}), layer="a", target_layer="b", kind="topk", k=2,
                          d_sae=8, n_steps=5, batch_size=256)
    with pytest.raises(InvalidParameterError, match="single-source SAE"):
        tc.export_saelens(tmp_path / "tc")


# ---------------------------------------------------------------------------------------------
# splicing into a model
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def lm():
    from topo_mi.models import AttentionOnlyTransformer

    # a copy task solved through the residual stream: logits = 3 W_E[t] W_U with W_E = W_U = I,
    # sequences repeat one token, so the clean loss is low and ablating the residual stream is costly
    model = AttentionOnlyTransformer(d_vocab=8, d_model=8, n_ctx=6, d_head=8, seed=0)
    with torch.no_grad():
        model.W_E.copy_(3 * torch.eye(8))
        model.W_U.copy_(torch.eye(8))
        model.W_O.mul_(0.1)
        model.W_pos.mul_(0.5)
    tokens = torch.as_tensor(np.random.default_rng(0).integers(0, 8, size=(64, 1))).repeat(1, 6)
    return model, tokens


def _resid_rows(model, tokens) -> np.ndarray:
    """Every position's ``hook_resid_pre`` vector, one row per token."""
    from topo_mi.activations._hooks import _recording, resolve_layers

    rows = []
    with torch.no_grad(), _recording(resolve_layers(model, ["hook_resid_pre"]),
                                     lambda n, o: rows.append(o.reshape(-1, o.shape[-1]).clone())):
        model(tokens)
    return torch.cat(rows).numpy()


def _copy_task_tokens(n, seed=1):
    return torch.as_tensor(np.random.default_rng(seed).integers(0, 8, size=(n, 1))).repeat(1, 6)


def test_loss_recovered_identities(lm):
    from topo_mi.dictionaries import loss_recovered, next_token_ce

    model, tokens = lm
    with torch.no_grad():
        clean = next_token_ce(model(tokens), tokens).item()
    for baseline in ("zero", "mean"):
        ident = loss_recovered(model, lambda t: t, tokens, layer="hook_resid_pre", baseline=baseline, batch_size=20)
        assert ident.fraction_recovered == pytest.approx(1.0) and ident.kl == pytest.approx(0.0, abs=1e-12)
        assert ident.loss_clean == pytest.approx(clean, rel=1e-6)
    zero = loss_recovered(model, torch.zeros_like, tokens, layer="hook_resid_pre", baseline="zero")
    assert zero.fraction_recovered == 0.0 and zero.kl > 0 and zero.loss_ablated > zero.loss_clean
    # the mean baseline really is the mean: splicing the mean in recovers exactly 0 against it
    mu = torch.as_tensor(_resid_rows(model, tokens)).double().mean(0).float()
    mean = loss_recovered(model, lambda t: mu.expand_as(t).clone(), tokens, layer="hook_resid_pre", baseline="mean")
    assert mean.fraction_recovered == pytest.approx(0.0, abs=1e-6)


def test_sae_splice_recovers_most_of_the_loss(lm):
    from topo_mi.dictionaries import loss_recovered, splice

    model, tokens = lm
    A = _resid_rows(model, _copy_task_tokens(1024))
    sae = train_sae(A, kind="topk", d_sae=64, k=4, n_steps=200, batch_size=256, lr=3e-3, seed=0)
    r = loss_recovered(model, sae, tokens, layer="hook_resid_pre")
    assert r.loss_ablated > r.loss_clean + 1.0
    assert r.loss_clean < r.loss_spliced < r.loss_ablated and 0.9 < r.fraction_recovered < 1.0
    assert r.fraction_recovered == pytest.approx(
        (r.loss_ablated - r.loss_spliced) / (r.loss_ablated - r.loss_clean))
    with torch.no_grad():
        with splice(model, sae, layer="hook_resid_pre"):
            out = model(tokens)
        assert not torch.equal(out, model(tokens))  # hook removed on exit
    wrong = train_sae(A[:, :4], kind="topk", d_sae=8, k=2, n_steps=2, batch_size=256)
    with pytest.raises(InvalidParameterError, match="d_in = 8"):
        loss_recovered(model, wrong, tokens, layer="hook_resid_pre")
    with pytest.raises(InvalidParameterError, match="reconstruction: expected a tensor of the layer's shape"):
        loss_recovered(model, lambda t: t[..., :4], tokens, layer="hook_resid_pre")
    with pytest.raises(UnknownNameError, match="hook_resid_pre"):
        loss_recovered(model, sae, tokens, layer="hook_resid_prex")


# ---------------------------------------------------------------------------------------------
# bad input
# ---------------------------------------------------------------------------------------------
def test_bad_input_messages(toy):
    X = toy[0][:1024]
    with pytest.raises(InvalidParameterError, match="d_sae: expected an integer >= 1, got 0"):
        train_sae(X, kind="relu", d_sae=0)
    with pytest.raises(InvalidParameterError, match="k: expected an integer <= 8, got 9"):
        train_sae(X, kind="topk", d_sae=8, k=9)
    with pytest.raises(InvalidParameterError, match="k: expected the number of active latents"):
        train_sae(X, kind="topk", d_sae=8)
    with pytest.raises(UnknownNameError, match="kind"):
        train_sae(X, kind="top-k", d_sae=8)
    from topo_mi.errors import ResourceError

    with pytest.raises(ResourceError, match="d_sae: a dictionary of"):  # refused before allocating
        train_sae(X, kind="relu", d_sae=10 ** 10)
    bad = X.copy()
    bad[700, 3] = np.nan
    with pytest.raises(NonFiniteError, match=r"non-finite rows in batch \d+"):
        train_sae(bad, kind="topk", d_sae=8, k=2, n_steps=20, batch_size=256, seed=0, b_dec_init="zeros")
    with pytest.raises(NonFiniteError, match="initialisation sample"):
        train_sae(bad, kind="topk", d_sae=8, k=2, n_steps=20, batch_size=256, seed=0)
    with pytest.raises(InvalidParameterError, match="batch_size"):
        train_sae(X[:10], kind="topk", d_sae=8, k=2, batch_size=256)
    sae = train_sae(X, kind="topk", d_sae=8, k=2, n_steps=2, batch_size=256)
    with pytest.raises(InvalidParameterError, match=r"x: expected an array of shape \(batch, 16\)"):
        sae.encode(np.zeros((3, 5), dtype=np.float32))
    with pytest.raises(InvalidParameterError, match="data: expected activations of width d_in = 16"):
        evaluate(sae, X[:, :5])
    with pytest.raises(InvalidParameterError, match="at least two output sources"):
        sae.relative_decoder_norms()


# ---------------------------------------------------------------------------------------------
# examples, pipeline, spec
# ---------------------------------------------------------------------------------------------
def test_top_examples_by_brute_force_with_token_contexts(toy):
    from topo_mi.dictionaries import top_examples

    X = toy[0][:3000]
    sae = train_sae(X, kind="topk", d_sae=32, k=3, n_steps=30, batch_size=256, seed=0)
    token_index = np.stack([np.arange(3000) // 10, np.arange(3000) % 10], axis=1)
    tokens = np.array([[f"t{s}_{p}" for p in range(10)] for s in range(300)])
    ex = top_examples(sae, X, latents=[0, 5, 7], n=4, batch_size=700, tokens=tokens, token_index=token_index,
                      context=2)
    Z = sae.encode(X).detach().numpy()
    for i, lat in enumerate([0, 5, 7]):
        order = np.argsort(-Z[:, lat], kind="stable")[:4]
        fired = Z[order, lat] > 0
        np.testing.assert_allclose(ex.values[i][fired], Z[order, lat][fired], rtol=1e-6)
        assert set(ex.rows[i][fired]) == set(order[fired])
        r = ex.rows[i][0]
        if r >= 0:
            s, p = divmod(int(r), 10)
            assert ex.contexts[i][0].endswith(f"[[t{s}_{p}]]")
            assert ex.histograms[i].sum() == (Z[:, lat] > 0).sum()
    assert ex.table(5)[0][1] == ex.rows[1][0]
    assert len(ex.plot().get_legend().get_texts()) == 3
    # one token per row (collect_text's layout), on a subset of the rows
    per_row = np.array([f"t{s}_{p}" for s, p in token_index])
    sub = np.arange(1000, 3000)
    ex2 = top_examples(sae, X[sub], latents=[5], n=2, tokens=per_row, token_index=token_index, token_rows=sub,
                       context=2)
    r = sub[ex2.rows[0][0]]
    s_, p_ = divmod(int(r), 10)
    want = " ".join(f"t{s_}_{q}" for q in range(max(0, p_ - 2), p_))
    assert ex2.contexts[0][0] == (want + " " if want else "") + f"[[t{s_}_{p_}]]"


def test_dictionary_profile_pipeline_and_report(toy, lm, tmp_path):
    import topo_mi.pipelines as P
    from topo_mi._results import load_result

    X = toy[0][:3000]
    acts = Activations({"h": X})
    prof = P.dictionary_profile(acts, layer="h", kind="topk", d_sae=32, k=3, n_steps=40, batch_size=256,
                                lr=3e-3, seed=0)
    assert prof.n_eval == round(0.1 * len(X)) and prof.n_train + prof.n_eval == len(X)
    s = prof.summary()
    assert s["l0"] <= 3 and 0 < s["ev_ratio_of_sums_centred"] < 1 and prof.loss is None
    sec = prof.report_section()
    assert set(sec) == {"headline", "table", "caption"} and sec["table"]["index"] == ["h"]
    assert len(sec["table"]["rows"][0]) == len(sec["table"]["columns"])
    back = load_result(prof.save(tmp_path / "prof"))
    np.testing.assert_array_equal(back.dictionary().reconstruct(X[:20]), prof.dictionary().reconstruct(X[:20]))
    assert back.metrics.l0 == prof.metrics.l0
    ax = prof.plot()
    assert ax.get_xlabel() == "log10 feature density"
    # with a model: the loss recovered by splicing
    model, tokens = lm
    prof2 = P.dictionary_profile(Activations({"hook_resid_pre": _resid_rows(model, _copy_task_tokens(256))}),
                                 kind="topk", d_sae=32,
                                 k=4, n_steps=30, batch_size=256, lr=3e-3, model=model, inputs=tokens)
    assert prof2.loss is not None and "loss recovered" in prof2.report_section()["table"]["columns"]


def test_spec_accepts_the_dictionary_section():
    from topo_mi.pipelines.runner import check_analysis_params
    from topo_mi.pipelines.spec import load_spec
    from topo_mi.errors import SpecError

    text = """
name = "t"
[dataset]
name = "sentences"
[model]
hf = "minilm"
[activations]
reduce = "tokens"
[analyses.dictionary]
layer = "encoder.layer.3"
kind = "topk"
k = 8
"""
    spec = load_spec(text)
    check_analysis_params(spec)
    bad = load_spec(text.replace("k = 8", "kk = 8"))
    with pytest.raises(SpecError, match="analyses.dictionary.kk"):
        check_analysis_params(bad)
    with pytest.raises(SpecError, match="analyses.dictionary.model"):
        check_analysis_params(load_spec(text.replace("k = 8", "model = 1")))


def test_decoder_rows_as_a_feature_basis_for_circuits_and_topology():
    import topo_mi as tm
    from topo_mi.circuits import build_graph
    from topo_mi.models import MLP
    from topo_mi.topology import persistence

    net = MLP(4, [16, 16], 3, seed=0)
    x = torch.randn(2048, 4, generator=torch.Generator().manual_seed(0))
    acts = tm.collect(net, x, layers=["act1"], progress=False)
    sae = train_sae(acts, layer="act1", kind="topk", d_sae=24, k=3, n_steps=40, batch_size=256, seed=0)
    D = sae.decoder_directions()
    G = build_graph(net, layers=["act1", "act2"], features={"act1": D})
    src = [n for n in G.nodes if G.nodes[n].get("layer") == "act1"]
    assert len(src) == 24
    # edge weights are d_j^T W d_i: decoder rows d_i into the neuron basis of act2 through the 2nd Linear
    W2 = [m for m in net.modules() if isinstance(m, torch.nn.Linear)][1].weight.detach().numpy()
    expected = np.sort(np.abs(W2.astype(np.float64) @ D.T.astype(np.float64)).ravel())
    got = np.sort(np.abs([w for _, _, w in G.edges(data="weight")]))
    assert len(got) == 24 * 16
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-7)
    dgm = persistence(D, metric="cosine", max_dim=1)
    assert len(dgm.diagram(0)) == 24  # one H0 bar per decoder direction (the last one infinite)


def test_token_level_profiles_hold_out_whole_texts(toy):
    import topo_mi.pipelines as P
    from topo_mi.pipelines.dictionaries import holdout_rows

    X = toy[0][:3000]
    groups = np.repeat(np.arange(300), np.random.default_rng(0).multinomial(3000 - 300, np.ones(300) / 300) + 1)
    held = holdout_rows(3000, 300, 0, groups=groups)
    np.testing.assert_array_equal(held, holdout_rows(3000, 300, 0, groups=groups))  # seeded
    inside = set(groups[held].tolist())
    assert not inside & set(np.delete(groups, held).tolist())  # every group wholly in or out
    assert 250 < len(held) <= 300 and len(inside) > 1
    assert len(holdout_rows(3000, 300, 0)) == 300 and len(holdout_rows(3000, 1, 0, groups=groups)) >= 1
    ti = np.stack([groups, np.zeros(3000, dtype=np.int64)], axis=1)
    kw = dict(layer="h", kind="topk", d_sae=32, k=3, n_steps=5, batch_size=256, lr=3e-3, seed=0)
    tokens = np.array([f"t{g}" for g in groups])
    prof = P.dictionary_profile(Activations({"h": X}), token_index=ti, tokens=tokens, **kw)
    assert prof.n_eval == len(held) and prof.n_train == 3000 - len(held)
    rows = P.dictionary_profile(Activations({"h": X}), token_index=ti, tokens=tokens, holdout="rows", **kw)
    assert rows.n_eval == 300
    with pytest.raises(InvalidParameterError, match="holdout"):
        P.dictionary_profile(Activations({"h": X}), holdout="texts", **kw)
    with pytest.raises(UnknownNameError, match="holdout"):
        P.dictionary_profile(Activations({"h": X}), token_index=ti, holdout="sentences", **kw)
