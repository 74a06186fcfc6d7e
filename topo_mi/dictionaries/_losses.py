"""Every loss term of the dictionaries, written out as plain functions of tensors.

Shapes: a batch ``x`` is ``(b, n, d)`` — ``n`` sources (1 for an SAE or a transcoder, the layers
or models of a crosscoder), ``d`` features; latents ``z`` and pre-activations are ``(b, s)``;
decoder weights ``W_dec`` are ``(s, n, d)``. Each term is averaged over the batch and *summed*
over sources and features (so a term's scale does not depend on ``d``).
"""
from __future__ import annotations

import torch


def reconstruction_loss(x: torch.Tensor, x_hat: torch.Tensor) -> torch.Tensor:
    """``mean_b sum_{n,d} (x - x_hat)^2``."""
    diff = (x - x_hat).reshape(x.shape[0], -1)
    return diff.pow(2).sum(dim=1).mean()


def decoder_norms(W_dec: torch.Tensor) -> torch.Tensor:
    """``(s, n)``: the L2 norm of every latent's decoder vector into every source."""
    return W_dec.norm(dim=-1)


def l1_penalty(z: torch.Tensor, W_dec: torch.Tensor) -> torch.Tensor:
    """Decoder-norm-weighted L1: ``mean_b sum_s |z_bs| * sum_n ||W_dec[s, n]||``.

    Weighting by the decoder norm stops the optimiser from shrinking latents and growing decoder
    rows (Anthropic 2023/2024); for a crosscoder the weight is the sum over sources (Anthropic's
    crosscoder loss), so a latent pays once per source it writes to.
    """
    w = decoder_norms(W_dec).sum(dim=1)
    return (z.abs() * w).sum(dim=1).mean()


def l1_penalty_from_sums(z_sum: torch.Tensor, W_dec: torch.Tensor, batch: int) -> torch.Tensor:
    """:func:`l1_penalty` of a non-negative code (ReLU) from its column sums ``z_sum = sum_b z_b``.

    ``mean_b sum_s z_bs * w_s = (1 / b) sum_s w_s * sum_b z_bs`` when ``z >= 0`` (so ``|z| = z``):
    the same value and gradients, read from one column sum of ``z`` (which training also uses to
    find the latents that fired) instead of ``|z| * w`` over the whole batch.
    """
    w = decoder_norms(W_dec).sum(dim=1)
    return (z_sum @ w) / batch


def _auxk_error(e: torch.Tensor, e_hat: torch.Tensor, normalization: str) -> torch.Tensor:
    """``mean_b sum (e - e_hat)^2`` ('none'), or that over ``mean_b sum (e - mean_b e)^2``
    ('residual_variance': OpenAI's ``normalized_mse`` of the residual; 0 when the residual is constant)."""
    err = reconstruction_loss(e, e_hat)
    if normalization == "none":
        return err
    flat = e.reshape(e.shape[0], -1)
    var = (flat - flat.mean(dim=0, keepdim=True)).pow(2).sum(dim=1).mean()
    return err / var if float(var) > 0 else err * 0.0


def auxk_loss(pre: torch.Tensor, dead: torch.Tensor, residual: torch.Tensor, W_dec: torch.Tensor,
              k_aux: int, normalization: str = "none") -> torch.Tensor:
    """AuxK (Gao et al. 2024): the top-``k_aux`` *dead* latents reconstruct the detached residual.

    ``e = (x - x_hat).detach()``; ``z_aux`` keeps the ``k_aux`` largest pre-activations among the
    dead latents (then ReLU); ``e_hat = z_aux @ W_dec`` *without* the decoder bias;
    loss ``= min(n_dead / k_aux, 1) * mean_b sum (e - e_hat)^2``; zero when nothing is dead.
    With ``normalization='residual_variance'`` the error is divided by the residual's own
    variance over the batch, ``mean_b sum (e - mean_b e)^2`` (OpenAI's reference code), which makes
    the term scale-free (an AuxK weight then means the same at any activation scale).
    The caller multiplies by the AuxK weight (1/32 by default).
    """
    n_dead = int(dead.sum())
    if n_dead == 0:
        return pre.new_zeros(())
    e = residual.detach()
    k = min(int(k_aux), n_dead)
    masked = pre.masked_fill(~dead.unsqueeze(0), float("-inf"))
    vals, idx = masked.topk(k, dim=1)
    z_aux = torch.zeros_like(pre).scatter(1, idx, vals.relu())
    e_hat = torch.einsum("bs,snd->bnd", z_aux, W_dec)
    scale = min(n_dead / float(k_aux), 1.0)
    return scale * _auxk_error(e, e_hat, normalization)


# ---------------------------------------------------------------------------------------------
# JumpReLU (Rajamanoharan et al. 2024): straight-through gradients through the threshold
# ---------------------------------------------------------------------------------------------
def rectangle(u: torch.Tensor) -> torch.Tensor:
    """The rectangle kernel ``K(u) = 1{-1/2 < u < 1/2}``."""
    return ((u > -0.5) & (u < 0.5)).to(u.dtype)


class _JumpReLU(torch.autograd.Function):
    """``z = pre * H(pre - theta)``; d/dpre = H(pre - theta); d/dtheta = -(theta/eps) K((pre - theta)/eps)."""

    @staticmethod
    def forward(ctx, pre, theta, bandwidth):
        ctx.save_for_backward(pre, theta)
        ctx.bandwidth = bandwidth
        return pre * (pre > theta).to(pre.dtype)

    @staticmethod
    def backward(ctx, grad):
        pre, theta = ctx.saved_tensors
        eps = ctx.bandwidth
        g_pre = grad * (pre > theta).to(pre.dtype)
        g_theta = -(theta / eps) * rectangle((pre - theta) / eps) * grad
        return g_pre, g_theta.sum(dim=0), None


class _Step(torch.autograd.Function):
    """``H(pre - theta)``; no gradient to pre; d/dtheta = -(1/eps) K((pre - theta)/eps)."""

    @staticmethod
    def forward(ctx, pre, theta, bandwidth):
        ctx.save_for_backward(pre, theta)
        ctx.bandwidth = bandwidth
        return (pre > theta).to(pre.dtype)

    @staticmethod
    def backward(ctx, grad):
        pre, theta = ctx.saved_tensors
        eps = ctx.bandwidth
        g_theta = -(1.0 / eps) * rectangle((pre - theta) / eps) * grad
        return torch.zeros_like(pre), g_theta.sum(dim=0), None


def jumprelu(pre: torch.Tensor, theta: torch.Tensor, bandwidth: float) -> torch.Tensor:
    """JumpReLU with the rectangle-kernel straight-through estimator for ``theta`` (per latent)."""
    return _JumpReLU.apply(pre, theta, float(bandwidth))


def l0_penalty(pre: torch.Tensor, theta: torch.Tensor, bandwidth: float) -> torch.Tensor:
    """``mean_b sum_s H(pre_bs - theta_s)``, differentiable in ``theta`` through the same estimator."""
    return _Step.apply(pre, theta, float(bandwidth)).sum(dim=1).mean()


__all__ = ["reconstruction_loss", "decoder_norms", "l1_penalty", "l1_penalty_from_sums", "auxk_loss", "rectangle",
           "jumprelu", "l0_penalty"]


# ---------------------------------------------------------------------------------------------
# TopK encoder with a sparse backward (only the k selected pre-activations carry gradient)
# ---------------------------------------------------------------------------------------------
class _TopKEncode(torch.autograd.Function):
    """``vals, idx = ReLU(topk(x @ W + b, k))`` with the backward computed on the k selected entries.

    Same gradients as autograd through the dense pre-activations (the others get zero there too),
    at O(b·k·d) instead of O(b·d·d_sae) for the two backward matmuls.

    With ``dead_of`` (a function of ``(idx, vals)`` giving the ``(d_sae,)`` dead mask after this
    batch) the same pre-activations also give AuxK's selection: ``aux_vals, aux_idx = ReLU(top-k_aux
    over the dead latents)`` (as :func:`auxk_loss` selects them; empty when none is dead), and its
    gradient reaches ``W`` and ``b`` but not ``x`` (so not an input centring subtracted from ``x``,
    as :func:`topo_mi.dictionaries._train._aux_pre_activations` arranges on the dense path).
    """

    @staticmethod
    def forward(ctx, x, W, b, k, k_aux, dead_of):
        pre = torch.addmm(b, x, W)
        vals, idx = pre.topk(k, dim=1, sorted=False)  # the set, in no order: 1.5x faster than sorted
        vals = vals.relu()
        aux_vals = aux_idx = None
        if dead_of is not None:
            dead = dead_of(idx, vals)
            n_dead = int(dead.sum())
            if n_dead:
                masked = pre.masked_fill_(~dead.unsqueeze(0), float("-inf"))
                aux_vals, aux_idx = masked.topk(min(k_aux, n_dead), dim=1, sorted=False)
                aux_vals = aux_vals.relu()
            else:
                aux_vals, aux_idx = vals.new_zeros(len(x), 0), idx.new_zeros(len(x), 0)
        ctx.save_for_backward(x, W, vals, idx, aux_vals, aux_idx)
        ctx.mark_non_differentiable(idx)
        if aux_idx is None:
            return vals, idx
        ctx.mark_non_differentiable(aux_idx)
        return vals, idx, aux_vals, aux_idx

    @staticmethod
    def backward(ctx, g_vals, _g_idx, g_aux=None, _g_aux_idx=None):
        import torch.nn.functional as F

        x, W, vals, idx, aux_vals, aux_idx = ctx.saved_tensors
        g = g_vals * (vals > 0).to(g_vals.dtype)
        g_x = g_W = g_b = None
        if ctx.needs_input_grad[0]:  # the main code only: AuxK never moves the input
            g_x = F.embedding_bag(idx, W.t(), per_sample_weights=g, mode="sum")
        if g_aux is not None and aux_idx.shape[1]:  # both selections in one sparse product
            idx = torch.cat([idx, aux_idx], dim=1)
            g = torch.cat([g, g_aux * (aux_vals > 0).to(g_aux.dtype)], dim=1)
        if ctx.needs_input_grad[1]:
            g_W = _sparse_outer(x, idx, g, W)
        if ctx.needs_input_grad[2]:
            g_b = torch.zeros(W.shape[1], dtype=W.dtype).index_add_(0, idx.reshape(-1), g.reshape(-1))
        return g_x, g_W, g_b, None, None, None


def topk_encode(x: torch.Tensor, W: torch.Tensor, b: torch.Tensor, k: int, *, k_aux: int = 0, dead_of=None):
    """``(vals, idx)`` of ``ReLU(topk(x @ W + b))`` with a sparse backward (see :class:`_TopKEncode`);
    with ``dead_of``, ``(vals, idx, aux_vals, aux_idx)`` including AuxK's selection."""
    return _TopKEncode.apply(x, W, b, int(k), int(k_aux), dead_of)


def auxk_loss_sparse(aux_vals: torch.Tensor, aux_idx: torch.Tensor, n_dead: int, residual: torch.Tensor,
                     W_dec: torch.Tensor, k_aux: int, normalization: str = "none") -> torch.Tensor:
    """:func:`auxk_loss` from the selection :func:`topk_encode` made (``aux_vals``, ``aux_idx``:
    ``(b, min(k_aux, n_dead))``): ``e_hat`` is decoded from those rows of ``W_dec`` only (an
    ``embedding_bag``, no decoder bias); the same value and gradients."""
    import torch.nn.functional as F

    if n_dead == 0 or aux_idx.shape[1] == 0:
        return residual.new_zeros(())
    e = residual.detach()
    e_hat = F.embedding_bag(aux_idx, W_dec.flatten(1), per_sample_weights=aux_vals, mode="sum")
    scale = min(n_dead / float(k_aux), 1.0)
    return scale * _auxk_error(e, e_hat.view_as(e), normalization)


def project_out_parallel_(grad: torch.Tensor | None, W_dec: torch.Tensor) -> None:
    """Remove from each latent's decoder gradient its component along the (unit-norm) decoder row.

    Rows are flattened over sources, as :meth:`SparseDictionary.normalize_decoder_` normalises
    them: ``g_i <- g_i - <g_i, w_i> w_i``. With ``||w_i|| = 1`` this is the gradient's projection on
    the sphere's tangent space (OpenAI's ``unit_norm_decoder_grad_adjustment_``, SAELens's
    ``remove_gradient_parallel_to_decoder_directions``): Adam then spends no step on growing or
    shrinking the norm that the projection after the step would undo. In place; no-op without a
    gradient.
    """
    if grad is None:
        return
    g = grad.view(grad.shape[0], -1)
    w = W_dec.reshape(W_dec.shape[0], -1)
    g.sub_(w * (g * w).sum(dim=1, keepdim=True))


# ---------------------------------------------------------------------------------------------
# the centred encoder (x - c) @ W + b, without the input-gradient matmul when only c needs one
# ---------------------------------------------------------------------------------------------
class _CentredLinear(torch.autograd.Function):
    """``(x - c) @ W + b`` (``c``: one vector subtracted from every row, an SAE's ``b_dec``).

    Autograd would back-propagate to ``c`` through the full ``(b, s) @ (s, d)`` input gradient and
    then sum it over the batch; here ``d/dc = -(sum_b g_b) @ W^T`` (one vector-matrix product), and
    the input gradient is formed only when ``x`` itself needs one. Same values and gradients.
    """

    @staticmethod
    def forward(ctx, x, c, W, b):
        xc = x - c
        ctx.save_for_backward(xc, W)
        return torch.addmm(b, xc, W)

    @staticmethod
    def backward(ctx, g):
        xc, W = ctx.saved_tensors
        need_x, need_c, need_W, need_b = ctx.needs_input_grad
        g_x = g_c = g_W = g_b = None
        g_sum = g.sum(dim=0) if (need_c or need_b) else None
        if need_x:
            g_x = g @ W.t()
        if need_c:
            g_c = -(g_sum @ W.t())
        if need_W:
            g_W = _outer_grad(xc, g, W)
        if need_b:
            g_b = g_sum
        return g_x, g_c, g_W, g_b


def centred_linear(x: torch.Tensor, c: torch.Tensor, W: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``(x - c) @ W + b`` with the cheap gradient for ``c`` (see :class:`_CentredLinear`)."""
    return _CentredLinear.apply(x, c, W, b)


# ---------------------------------------------------------------------------------------------
# a ReLU dictionary's training forward in one node: (x_hat, column sums of z, z)
# ---------------------------------------------------------------------------------------------
class _ReLUDictionary(torch.autograd.Function):
    """``z = ReLU((x - c) @ W_enc + b_enc)``, ``x_hat = z @ W_dec + b_dec`` and ``z_sum = sum_b z_b``.

    One autograd node with a written-out backward (the chain rule of the three lines above):
    ``g_z = g_xhat @ W_dec^T + g_zsum`` in one ``addmm``, the ReLU mask applied in place,
    ``d/dc = -(sum_b g_pre) @ W_enc^T``; the only ``(b, d_sae)`` tensors are ``z`` and its gradient,
    written into the buffers of ``workspace`` (a dict kept across steps; fresh memory costs a page
    fault per 4 KiB on first touch, as much as the arithmetic here). ``z`` is returned for metrics
    only (no gradient flows into it; losses of the code go through ``z_sum``, as
    :func:`l1_penalty_from_sums` does) and is overwritten by the next call with the same workspace.
    ``c`` may be ``None`` (no input centring).
    """

    @staticmethod
    def forward(ctx, x, c, W_enc, b_enc, W_dec, b_dec, workspace):
        ctx.set_materialize_grads(False)
        xc = x if c is None else x - c
        z = _buffer(workspace, "z", (x.shape[0], W_enc.shape[1]), x.dtype)
        torch.addmm(b_enc, xc, W_enc, out=z).relu_()
        x_hat = torch.addmm(b_dec, z, W_dec)
        z_sum = z.sum(dim=0)
        ctx.save_for_backward(xc, z, W_enc, W_dec)
        ctx.workspace = workspace
        ctx.mark_non_differentiable(z)
        return x_hat, z_sum, z

    @staticmethod
    def backward(ctx, g_hat, g_sum, _g_z):
        xc, z, W_enc, W_dec = ctx.saved_tensors
        need_x, need_c, need_We, need_be, need_Wd, need_bd, _ = ctx.needs_input_grad
        g_x = g_c = g_We = g_be = g_Wd = g_bd = None
        if g_hat is None:
            g_hat = z.new_zeros(z.shape[0], W_dec.shape[1])
        if need_Wd:
            g_Wd = z.t() @ g_hat
        if need_bd:
            g_bd = g_hat.sum(dim=0)
        g_pre = _buffer(ctx.workspace, "g", z.shape, z.dtype)  # dL/dz, then dL/dpre
        if g_sum is None:
            torch.mm(g_hat, W_dec.t(), out=g_pre)
        else:
            torch.addmm(g_sum, g_hat, W_dec.t(), out=g_pre)
        # ReLU: no gradient where the latent is off (threshold_backward written into g_pre itself)
        torch.ops.aten.threshold_backward.grad_input(g_pre, z, 0, grad_input=g_pre)
        g_pre_sum = g_pre.sum(dim=0)
        if need_We:
            g_We = _outer_grad(xc, g_pre, W_enc)
        if need_be:
            g_be = g_pre_sum
        if need_x:
            g_x = g_pre @ W_enc.t()
        if need_c:
            g_c = -(g_pre_sum @ W_enc.t())
        return g_x, g_c, g_We, g_be, g_Wd, g_bd, None


def _sparse_outer(a: torch.Tensor, idx: torch.Tensor, g: torch.Tensor, W: torch.Tensor) -> torch.Tensor:
    """``a^T @ G`` for the sparse ``G`` (rows of ``a``, ``W.shape[1]`` columns) holding ``g[b, s]`` at
    ``(b, idx[b, s])``, laid out like ``W``.

    Column ``j`` is the sum of ``g[b, s] * a[b]`` over the entries selecting ``j``: the entries are
    sorted by column (stably, so each sum runs in batch order: deterministic) and summed by one
    ``embedding_bag`` over ``a`` with per-entry weights — O(nnz * d) with no ``(b * k, d)``
    temporary (20x faster than gathering the rows and ``index_add_``, 7x faster than a dense
    matmul, at TopK's k = 32 of 3,072).
    """
    import torch.nn.functional as F

    flat = idx.reshape(-1)
    order = torch.argsort(flat, stable=True)
    counts = torch.bincount(flat, minlength=W.shape[1])
    offsets = torch.zeros(W.shape[1], dtype=torch.long)
    torch.cumsum(counts[:-1], dim=0, out=offsets[1:])
    rows = torch.div(order, idx.shape[1], rounding_mode="floor")
    out = F.embedding_bag(rows, a, offsets, mode="sum", per_sample_weights=g.reshape(-1)[order])  # (d_sae, d)
    return out.t() if _column_major(W) else out.t().contiguous()  # W's layout: stored without a copy


def _column_major(W: torch.Tensor) -> bool:
    """Whether the 2-D weight ``W`` is laid out column by column (e.g. the transpose of a tied
    initialisation): its gradient is then formed in that layout too."""
    return W.dim() == 2 and W.stride(0) == 1 and W.shape[1] > 1


def _outer_grad(a: torch.Tensor, g: torch.Tensor, W: torch.Tensor) -> torch.Tensor:
    """``a^T @ g`` laid out like ``W`` (see :func:`_column_major`), so the gradient is stored
    without a copy."""
    if _column_major(W):
        return torch.mm(g.t(), a).t()
    return torch.mm(a.t(), g)


def _buffer(workspace: dict | None, name: str, shape, dtype) -> torch.Tensor:
    """``workspace[name]`` when it has this shape and dtype, else a new tensor stored there."""
    buf = None if workspace is None else workspace.get(name)
    if buf is None or tuple(buf.shape) != tuple(shape) or buf.dtype != dtype:
        buf = torch.empty(shape, dtype=dtype)
        if workspace is not None:
            workspace[name] = buf
    return buf


def relu_dictionary(x: torch.Tensor, c: torch.Tensor | None, W_enc: torch.Tensor, b_enc: torch.Tensor,
                    W_dec: torch.Tensor, b_dec: torch.Tensor, workspace: dict | None = None):
    """``(x_hat, z_sum, z)`` of a one-source ReLU dictionary (see :class:`_ReLUDictionary`)."""
    return _ReLUDictionary.apply(x, c, W_enc, b_enc, W_dec, b_dec, workspace)
