"""The fast training paths of the dictionaries equal the plain formulas they replace: the L1 from
column sums, the one-node ReLU dictionary (values, gradients, buffer reuse, gradient layout), the
centred encoder, and a few training steps against a hand-written loop of the written-out losses."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from topo_mi.dictionaries import SparseDictionary, make_config, toy_features, train_sae  # noqa: E402
from topo_mi.dictionaries import _losses as L  # noqa: E402


def _close(a, b, **kw):
    torch.testing.assert_close(a, b, rtol=kw.get("rtol", 1e-5), atol=kw.get("atol", 1e-6))


@pytest.mark.parametrize("n_src", [1, 2])
def test_l1_from_column_sums_equals_the_l1_penalty(n_src):
    g = torch.Generator().manual_seed(0)
    pre = torch.randn(7, 5, generator=g)
    W1 = torch.randn(5, n_src, 3, generator=g, requires_grad=True)
    W2 = W1.detach().clone().requires_grad_(True)
    z1 = pre.relu().requires_grad_(True)
    z2 = z1.detach().clone().requires_grad_(True)
    ref = L.l1_penalty(z1, W1)
    got = L.l1_penalty_from_sums(z2.sum(dim=0), W2, 7)
    _close(got, ref)
    ref.backward()
    got.backward()
    _close(W2.grad, W1.grad)
    on = z1.detach() > 0  # |z| has no gradient at 0; ReLU zeroes it there anyway
    _close(z2.grad[on], z1.grad[on])


def _plain(x, c, W_enc, b_enc, W_dec, b_dec):
    xc = x if c is None else x - c
    z = (xc @ W_enc + b_enc).relu()
    return z @ W_dec + b_dec, z


@pytest.mark.parametrize("centred", [True, False])
@pytest.mark.parametrize("column_major", [True, False])
def test_relu_dictionary_equals_autograd_of_the_formulas(centred, column_major):
    g = torch.Generator().manual_seed(1)
    d, s, b = 6, 20, 9
    W_enc = torch.randn(s, d, generator=g).t() if column_major else torch.randn(d, s, generator=g)
    params = [W_enc, torch.randn(s, generator=g) * 0.3, torch.randn(s, d, generator=g),
              torch.randn(d, generator=g)]
    assert params[0].stride(0) == (1 if column_major else s)
    ref_p = [p.clone().requires_grad_(True) for p in params]
    got_p = [p.clone().requires_grad_(True) for p in params]
    assert got_p[0].stride() == params[0].stride()  # clone keeps the layout
    ws: dict = {}
    for trial in range(2):  # the second call reuses the workspace buffers
        x = torch.randn(b, d, generator=g) + 0.5
        for p in ref_p + got_p:
            p.grad = None
        W_e, b_e, W_d, b_d = ref_p
        x_hat, z = _plain(x, b_d if centred else None, W_e, b_e, W_d, b_d)
        loss = L.reconstruction_loss(x, x_hat) + 0.3 * L.l1_penalty(z, W_d.unsqueeze(1))
        loss.backward()
        W_e2, b_e2, W_d2, b_d2 = got_p
        x_hat2, z_sum2, z2 = L.relu_dictionary(x, b_d2 if centred else None, W_e2, b_e2, W_d2, b_d2, ws)
        loss2 = L.reconstruction_loss(x, x_hat2) + 0.3 * L.l1_penalty_from_sums(z_sum2, W_d2.unsqueeze(1), b)
        loss2.backward()
        assert not z2.requires_grad
        _close(z2, z.detach())  # addmm and matmul + add may round differently per CPU kernel
        _close(x_hat2, x_hat)
        _close(z_sum2, z.detach().sum(0))
        _close(loss2, loss)
        for got, ref in zip(got_p, ref_p):
            _close(got.grad, ref.grad, rtol=1e-4, atol=1e-5)  # float32 sums in another order
        assert got_p[0].grad.stride() == got_p[0].stride()  # stored as laid out: no copy
        assert ws["z"].data_ptr() == z2.data_ptr()
    # only the reconstruction used (no L1): the code's gradient is absent, the result the same
    for p in got_p:
        p.grad = None
    x_hat3, _, _ = L.relu_dictionary(x, None, *got_p, None)
    L.reconstruction_loss(x, x_hat3).backward()
    for p in ref_p:
        p.grad = None
    L.reconstruction_loss(x, _plain(x, None, *ref_p)[0]).backward()
    for got, ref in zip(got_p, ref_p):
        _close(got.grad, ref.grad, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("x_grad", [False, True])
def test_centred_linear_equals_autograd(x_grad):
    g = torch.Generator().manual_seed(2)
    x = torch.randn(8, 5, generator=g, requires_grad=x_grad)
    c, W, bias = (torch.randn(5, generator=g, requires_grad=True), torch.randn(5, 11, generator=g,
                  requires_grad=True), torch.randn(11, generator=g, requires_grad=True))
    w_out = torch.randn(8, 11, generator=g)
    out = L.centred_linear(x, c, W, bias)
    assert torch.equal(out, torch.addmm(bias, x - c, W))  # the same arithmetic, bit for bit
    (out * w_out).sum().backward()
    got = [t.grad.clone() for t in (x, c, W, bias) if t.requires_grad]
    for t in (x, c, W, bias):
        t.grad = None
    (((x - c) @ W + bias) * w_out).sum().backward()
    for a, t in zip(got, [t for t in (x, c, W, bias) if t.requires_grad]):
        _close(a, t.grad)


@pytest.mark.parametrize("normalize", [False, True])
def test_relu_training_steps_equal_a_loop_of_the_written_out_losses(normalize):
    """``train_sae(kind='relu')`` (fused forward, L1 from column sums, foreach Adam) takes the same
    steps as a loop of ``SparseDictionary.encode/decode``, ``l1_penalty`` and a default Adam."""
    from topo_mi.dictionaries._train import _Source

    X = toy_features(2048, d=12, n_features=24, mean_active=3, seed=4)[0]
    kw = dict(kind="relu", d_sae=32, n_steps=12, batch_size=128, lr=3e-3, seed=5, l1_coefficient=0.1,
              b_dec_init="mean", normalize_decoder=normalize)
    fast = train_sae(X, **kw)
    ref = SparseDictionary(fast.cfg, seed=5)
    src = _Source([X], None, 128, 5)
    with torch.no_grad():
        ref.b_dec[0] = torch.as_tensor(src.batch("init", src.sample(4096, [5, 10**6]))[0][:, 0].mean(0))
    opt = torch.optim.Adam(ref.parameters(), lr=3e-3)
    ref.train()
    l0s, mses = [], []
    for step in range(12):
        x = torch.from_numpy(src.batch(step)[0])
        z = ref.encode(x)
        mse = L.reconstruction_loss(x, ref.decode(z, squeeze=False))
        loss = mse + 0.1 * L.l1_penalty(z, ref.W_dec)
        l0s.append(float((z > 0).sum(dim=1).double().mean()))
        mses.append(float(mse.detach()))
        opt.zero_grad()
        loss.backward()
        opt.step()
        if normalize:
            ref.normalize_decoder_()
    for (n, p), q in zip(fast.state_dict().items(), ref.state_dict().values()):
        np.testing.assert_allclose(p.detach().numpy(), q.detach().numpy(), rtol=1e-4, atol=1e-5, err_msg=n)
    np.testing.assert_array_equal(fast.history["step"], np.arange(12))  # logged every step here
    np.testing.assert_allclose(fast.history["l0"], l0s, atol=0.05)  # counts: equal unless a value sits at 0
    np.testing.assert_allclose(fast.history["mse"], mses, rtol=1e-4)


def test_topk_encode_with_auxk_selection_equals_the_dense_formulas():
    """One encoder pass gives the TopK code and AuxK's selection; with the sparse AuxK decode the
    loss and every gradient equal ``auxk_loss`` on dense pre-activations with the centring fixed."""
    g = torch.Generator().manual_seed(3)
    b, d, s, k, k_aux = 10, 6, 24, 3, 4
    x = torch.randn(b, d, generator=g)
    c0 = torch.randn(d, generator=g)
    W0, b0 = torch.randn(d, s, generator=g), torch.randn(s, generator=g) * 0.5
    Wd0 = torch.randn(s, 1, d, generator=g)
    since = torch.randint(0, 3, (s,), generator=g) * b  # tokens since each latent fired
    dead_after = 2 * b

    def run(fast):
        c, W, bias, Wd = (t.clone().requires_grad_(True) for t in (c0, W0, b0, Wd0))
        xin = x - c
        if fast:
            def dead_of(idx, vals):
                fired = torch.zeros(s, dtype=torch.bool)
                fired[idx[vals > 0]] = True
                return (since + b >= dead_after) & ~fired
            vals, idx, av, ai = L.topk_encode(xin, W, bias, k, k_aux=k_aux, dead_of=dead_of)
            dead = dead_of(idx, vals)
        else:
            pre = xin @ W + bias
            vals, idx = pre.topk(k, dim=1)
            vals = vals.relu()
            fired = torch.zeros(s, dtype=torch.bool)
            fired[idx[vals > 0]] = True
            dead = (since + b >= dead_after) & ~fired
        y_hat = torch.nn.functional.embedding_bag(idx, Wd.flatten(1), per_sample_weights=vals, mode="sum")
        y_hat = y_hat.view(b, 1, d) + c
        y = x.unsqueeze(1)
        if fast:
            aux = L.auxk_loss_sparse(av, ai, int(dead.sum()), y - y_hat, Wd, k_aux)
        else:
            pre_fixed = (x - c.detach()) @ W + bias  # AuxK leaves the centring alone
            aux = L.auxk_loss(pre_fixed, dead, y - y_hat, Wd, k_aux)
        loss = L.reconstruction_loss(y, y_hat) + 0.5 * aux
        loss.backward()
        return aux.detach(), dead, [t.grad for t in (c, W, bias, Wd)]

    a_fast, dead_fast, g_fast = run(True)
    a_ref, dead_ref, g_ref = run(False)
    assert torch.equal(dead_fast, dead_ref) and 0 < int(dead_ref.sum()) < s
    assert float(a_ref) > 0
    _close(a_fast, a_ref)
    for got, ref in zip(g_fast, g_ref):
        _close(got, ref)


def test_topk_training_with_auxk_equals_a_loop_of_the_written_out_losses():
    """``train_sae(kind='topk')`` with AuxK active (one encoder pass, sparse AuxK decode) takes the
    same steps as a loop of dense pre-activations, ``auxk_loss`` and the counters updated first."""
    from topo_mi.dictionaries._train import _Source, _aux_pre_activations

    X = toy_features(2048, d=12, n_features=24, mean_active=3, seed=4)[0]
    kw = dict(kind="topk", d_sae=48, k=3, n_steps=15, batch_size=128, lr=3e-3, seed=2, b_dec_init="mean",
              dead_after=256)
    fast = train_sae(X, **kw)
    assert max(fast.history["aux"]) > 0  # AuxK was active
    ref = SparseDictionary(fast.cfg, seed=2)
    src = _Source([X], None, 128, 2)
    with torch.no_grad():
        ref.b_dec[0] = torch.as_tensor(src.batch("init", src.sample(4096, [2, 10**6]))[0][:, 0].mean(0))
    opt = torch.optim.Adam(ref.parameters(), lr=3e-3)
    since = torch.zeros(48, dtype=torch.long)
    ref.train()
    for step in range(15):
        x = torch.from_numpy(src.batch(step)[0])
        pre = ref.pre_activations(x)
        vals, idx = pre.topk(3, dim=1)
        vals = vals.relu()
        y_hat = ref.decode(torch.zeros_like(pre).scatter(1, idx, vals), squeeze=False)
        since += 128
        since[idx[vals > 0]] = 0
        loss = L.reconstruction_loss(x, y_hat)
        dead = since >= 256
        if dead.any():
            aux = L.auxk_loss(_aux_pre_activations(ref, x), dead, x - y_hat, ref.W_dec, ref.cfg["k_aux"])
            loss = loss + aux / 32
        opt.zero_grad()
        loss.backward()
        opt.step()
        ref.normalize_decoder_()
    for (n, p), q in zip(fast.state_dict().items(), ref.state_dict().values()):
        np.testing.assert_allclose(p.detach().numpy(), q.detach().numpy(), rtol=1e-4, atol=1e-5, err_msg=n)
    np.testing.assert_array_equal(fast.history["tokens_since_fired"], since.numpy())
