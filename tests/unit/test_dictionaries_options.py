"""Training options of the dictionaries against hand computations: AuxK's residual-variance
normalisation, the decoder gradient's projection on the tangent space of the unit sphere, the
shuffle window of streamed stores, and ``dictionary_profile``'s ``train_options``."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from topo_mi.activations import Activations  # noqa: E402
from topo_mi.dictionaries import SparseDictionary, mmcs, toy_features, train_sae  # noqa: E402
from topo_mi.dictionaries import _losses as L  # noqa: E402
from topo_mi.errors import InvalidParameterError, StoreMismatchError, UnknownNameError  # noqa: E402


@pytest.fixture(scope="module")
def toy():
    return toy_features(4096, d=12, n_features=24, mean_active=3, seed=4)


def test_auxk_residual_variance_normalisation_by_hand():
    pre = torch.tensor([[0.5, 2.0, -1.0, 3.0], [1.0, -2.0, 4.0, 0.5], [0.2, 0.1, 0.3, 0.4]])
    dead = torch.tensor([False, True, True, True])
    W = torch.eye(4)[:, None, :3].clone()  # (latents, 1 source, 3): latent j writes e_j, the last nothing
    resid = torch.tensor([[1.0, 2.0, 0.0], [0.0, 1.0, 3.0], [2.0, 0.0, 1.0]])
    # k_aux = 2 among latents 1..3: row 0 keeps 3.0 (latent 3) and 2.0 (latent 1); row 1 keeps 4.0
    # (latent 2) and 0.5 (latent 3); row 2 keeps 0.4 (latent 3) and 0.3 (latent 2)
    e_hat = torch.tensor([[0.0, 2.0, 0.0], [0.0, 0.0, 4.0], [0.0, 0.0, 0.3]])
    err = ((resid - e_hat) ** 2).sum(dim=1).mean()
    var = ((resid - resid.mean(dim=0)) ** 2).sum(dim=1).mean()
    scale = min(3 / 2, 1.0)
    plain = L.auxk_loss(pre, dead, resid[:, None], W, k_aux=2)
    normed = L.auxk_loss(pre, dead, resid[:, None], W, k_aux=2, normalization="residual_variance")
    assert plain.item() == pytest.approx(scale * err.item())
    assert normed.item() == pytest.approx(scale * err.item() / var.item())
    # scale-free: multiplying the residual and the decoder by 10 leaves the normalised term unchanged
    normed10 = L.auxk_loss(pre, dead, 10 * resid[:, None], 10 * W, k_aux=2, normalization="residual_variance")
    assert normed10.item() == pytest.approx(normed.item(), rel=1e-5)
    # a constant residual has no variance: the normalised term is 0, not a division by zero
    const = resid[:1].repeat(3, 1)
    assert L.auxk_loss(pre, dead, const[:, None], W, 2, normalization="residual_variance").item() == 0.0
    # the sparse decode gives the same value
    vals, idx = pre.masked_fill(~dead, float("-inf")).topk(2, dim=1)
    sparse = L.auxk_loss_sparse(vals.relu(), idx, 3, resid[:, None], W, 2, normalization="residual_variance")
    assert sparse.item() == pytest.approx(normed.item())


def test_the_projection_removes_the_gradient_component_along_each_row():
    g = torch.Generator().manual_seed(3)
    W = torch.randn(6, 2, 5, generator=g)
    W /= W.flatten(1).norm(dim=1)[:, None, None]
    grad = torch.randn(6, 2, 5, generator=g, dtype=torch.float32)
    ref = grad.double().flatten(1)
    w = W.double().flatten(1)
    ref = ref - (ref * w).sum(dim=1, keepdim=True) * w  # by hand, in float64
    L.project_out_parallel_(grad, W)
    np.testing.assert_allclose(grad.flatten(1).numpy(), ref.numpy(), atol=1e-6)
    np.testing.assert_allclose((grad.flatten(1) * W.flatten(1)).sum(dim=1).numpy(), 0.0, atol=1e-6)
    L.project_out_parallel_(None, W)  # no gradient: nothing to do


def _reference_topk(X, *, d_sae, k, n_steps, batch_size, lr, seed, dead_after, normalization, project):
    """The TopK run written out: dense pre-activations, counters first, the dense AuxK formula."""
    from topo_mi.dictionaries._train import _aux_pre_activations, _Source

    fast = train_sae(X, kind="topk", d_sae=d_sae, k=k, n_steps=n_steps, batch_size=batch_size, lr=lr, seed=seed,
                     b_dec_init="mean", dead_after=dead_after, auxk_normalization=normalization,
                     project_decoder_grad=project)
    ref = SparseDictionary(fast.cfg, seed=seed)
    src = _Source([X], None, batch_size, seed)
    with torch.no_grad():
        ref.b_dec[0] = torch.as_tensor(src.batch("init", src.sample(4096, [seed, 10**6]))[0][:, 0].mean(0))
    opt = torch.optim.Adam(ref.parameters(), lr=lr)
    since = torch.zeros(d_sae, dtype=torch.long)
    ref.train()
    for step in range(n_steps):
        x = torch.from_numpy(src.batch(step)[0])
        pre = ref.pre_activations(x)
        vals, idx = pre.topk(k, dim=1)
        vals = vals.relu()
        y_hat = ref.decode(torch.zeros_like(pre).scatter(1, idx, vals), squeeze=False)
        since += batch_size
        since[idx[vals > 0]] = 0
        loss = L.reconstruction_loss(x, y_hat)
        dead = since >= dead_after
        if dead.any():
            aux = L.auxk_loss(_aux_pre_activations(ref, x), dead, x - y_hat, ref.W_dec, ref.cfg["k_aux"],
                              normalization=normalization)
            loss = loss + aux / 32
        opt.zero_grad()
        loss.backward()
        if project:
            gW = ref.W_dec.grad.flatten(1)
            w = ref.W_dec.detach().flatten(1)
            ref.W_dec.grad.copy_((gW - (gW * w).sum(dim=1, keepdim=True) * w).view_as(ref.W_dec))
        opt.step()
        ref.normalize_decoder_()
    return fast, ref


@pytest.mark.parametrize("normalization,project", [("residual_variance", False), ("none", True),
                                                   ("residual_variance", True)])
def test_topk_options_equal_the_written_out_run(toy, normalization, project):
    X = toy[0]
    fast, ref = _reference_topk(X, d_sae=48, k=3, n_steps=15, batch_size=128, lr=3e-3, seed=2, dead_after=256,
                                normalization=normalization, project=project)
    assert max(fast.history["aux"]) > 0  # AuxK was active
    for (n, p), q in zip(fast.state_dict().items(), ref.state_dict().values()):
        np.testing.assert_allclose(p.detach().numpy(), q.detach().numpy(), rtol=1e-4, atol=1e-5, err_msg=n)
    assert fast.meta["train"].get("auxk_normalization", "none") == normalization
    assert fast.meta["train"].get("project_decoder_grad", False) is project
    off = train_sae(X, kind="topk", d_sae=48, k=3, n_steps=15, batch_size=128, lr=3e-3, seed=2, b_dec_init="mean",
                    dead_after=256)
    assert not np.allclose(off.W_dec.detach().numpy(), fast.W_dec.detach().numpy())  # the option did something


def test_projected_decoder_gradient_still_recovers_the_planted_features():
    X, dirs, _ = toy_features(16384, d=16, n_features=32, mean_active=3, seed=1)
    for project in (False, True):
        sae = train_sae(X, kind="topk", k=3, d_sae=64, n_steps=800, batch_size=512, lr=3e-3, seed=0,
                        project_decoder_grad=project)
        assert mmcs(dirs, sae.decoder_directions()) >= 0.99, project
        np.testing.assert_allclose(np.linalg.norm(sae.decoder_directions(), axis=1), 1.0, atol=1e-5)


def test_relu_with_the_projection_keeps_unit_rows_and_needs_them(toy):
    X = toy[0]
    sae = train_sae(X, kind="relu", d_sae=32, n_steps=10, batch_size=256, normalize_decoder=True,
                    project_decoder_grad=True)
    np.testing.assert_allclose(np.linalg.norm(sae.decoder_directions(), axis=1), 1.0, atol=1e-5)
    with pytest.raises(InvalidParameterError, match="project_decoder_grad.*normalize_decoder=True"):
        train_sae(X, kind="relu", d_sae=32, n_steps=2, batch_size=256, project_decoder_grad=True)
    with pytest.raises(InvalidParameterError, match="project_decoder_grad"):
        train_sae(X, kind="topk", k=2, d_sae=32, n_steps=2, batch_size=256, project_decoder_grad="yes")
    with pytest.raises(UnknownNameError, match="auxk_normalization: expected one of .none., .residual_variance."):
        train_sae(X, kind="topk", k=2, d_sae=32, n_steps=2, batch_size=256, auxk_normalization="openai")


def test_shuffle_buffer_sets_the_window_of_a_streamed_store(toy, tmp_path):
    X = toy[0]
    acts = Activations({"h": X})
    small = train_sae(acts, layer="h", kind="topk", k=3, d_sae=24, n_steps=6, batch_size=256, seed=1,
                      shuffle_buffer=512)
    default = train_sae(acts, layer="h", kind="topk", k=3, d_sae=24, n_steps=6, batch_size=256, seed=1)
    assert small.meta["train"]["shuffle_buffer"] == 512 and "shuffle_buffer" not in default.meta["train"]
    assert not np.allclose(small.W_dec.detach().numpy(), default.W_dec.detach().numpy())
    # the batches are iter_batches' with that window: the same run from the batches written out
    seen = []
    cb_run = train_sae(acts, layer="h", kind="topk", k=3, d_sae=24, n_steps=2, batch_size=256, seed=1,
                       shuffle_buffer=512, callback=lambda s, m: seen.append(s))
    assert seen == [1, 2] and cb_run.meta["n_samples"] == len(X)
    it = acts.iter_batches(256, layers=["h"], shuffle=True, seed=[1, 0], drop_last=True, buffer=512,
                           return_index=True)
    first = next(it)[0]
    from topo_mi.dictionaries._train import _Source

    src = _Source([X], None, 256, 1, acts, ["h"], buffer=512)
    np.testing.assert_array_equal(src._stream(0)[0], first)
    with pytest.raises(InvalidParameterError, match="shuffle_buffer: expected at least batch_size=256 rows, got 100"):
        train_sae(acts, layer="h", kind="topk", k=3, d_sae=24, n_steps=2, batch_size=256, shuffle_buffer=100)
    with pytest.raises(InvalidParameterError, match="shuffle_buffer: expected None here"):
        train_sae(X, kind="topk", k=3, d_sae=24, n_steps=2, batch_size=256, shuffle_buffer=1024)
    # resuming with another window is refused, and the checkpoint is left alone
    ck = tmp_path / "ck"
    train_sae(acts, layer="h", kind="topk", k=3, d_sae=24, n_steps=4, batch_size=256, seed=1, shuffle_buffer=512,
              checkpoint_dir=ck, checkpoint_every=2)
    before = (ck / "checkpoint.safetensors").read_bytes()
    with pytest.raises(StoreMismatchError, match="shuffle_buffer"):
        train_sae(acts, layer="h", kind="topk", k=3, d_sae=24, n_steps=6, batch_size=256, seed=1,
                  shuffle_buffer=1024, checkpoint_dir=ck, resume=True)
    assert (ck / "checkpoint.safetensors").read_bytes() == before


def test_dictionary_profile_passes_train_options(toy):
    from topo_mi.pipelines import dictionary_profile

    X = toy[0]
    prof = dictionary_profile({"h": X}, layer="h", kind="topk", k=3, d_sae=24, n_steps=5, batch_size=256,
                              splice=False, train_options={"auxk_normalization": "residual_variance",
                                                           "project_decoder_grad": True})
    assert prof.summary() is not None
    with pytest.raises(UnknownNameError, match="auxk_normalisation.*auxk_normalization"):
        dictionary_profile({"h": X}, layer="h", kind="topk", k=3, d_sae=24, n_steps=5, batch_size=256,
                           splice=False, train_options={"auxk_normalisation": "none"})
    with pytest.raises(InvalidParameterError, match="give 'lr' directly"):
        dictionary_profile({"h": X}, layer="h", kind="topk", k=3, d_sae=24, n_steps=5, batch_size=256,
                           splice=False, train_options={"lr": 0.1})
    with pytest.raises(InvalidParameterError, match="train_options: expected a mapping"):
        dictionary_profile({"h": X}, layer="h", kind="topk", k=3, d_sae=24, n_steps=5, batch_size=256,
                           splice=False, train_options=["project_decoder_grad"])
