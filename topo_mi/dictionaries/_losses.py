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


def auxk_loss(pre: torch.Tensor, dead: torch.Tensor, residual: torch.Tensor, W_dec: torch.Tensor,
              k_aux: int) -> torch.Tensor:
    """AuxK (Gao et al. 2024): the top-``k_aux`` *dead* latents reconstruct the detached residual.

    ``e = (x - x_hat).detach()``; ``z_aux`` keeps the ``k_aux`` largest pre-activations among the
    dead latents (then ReLU); ``e_hat = z_aux @ W_dec`` *without* the decoder bias;
    loss ``= min(n_dead / k_aux, 1) * mean_b sum (e - e_hat)^2``; zero when nothing is dead.
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
    return scale * reconstruction_loss(e, e_hat)


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


__all__ = ["reconstruction_loss", "decoder_norms", "l1_penalty", "auxk_loss", "rectangle", "jumprelu",
           "l0_penalty"]


# ---------------------------------------------------------------------------------------------
# TopK encoder with a sparse backward (only the k selected pre-activations carry gradient)
# ---------------------------------------------------------------------------------------------
class _TopKEncode(torch.autograd.Function):
    """``vals, idx = ReLU(topk(x @ W + b, k))`` with the backward computed on the k selected entries.

    Same gradients as autograd through the dense pre-activations (the others get zero there too),
    at O(b·k·d) instead of O(b·d·d_sae) for the two backward matmuls.
    """

    @staticmethod
    def forward(ctx, x, W, b, k):
        pre = torch.addmm(b, x, W)
        vals, idx = pre.topk(k, dim=1)
        vals = vals.relu()
        ctx.save_for_backward(x, W, vals, idx)
        ctx.mark_non_differentiable(idx)
        return vals, idx

    @staticmethod
    def backward(ctx, g_vals, _g_idx):
        import torch.nn.functional as F

        x, W, vals, idx = ctx.saved_tensors
        g = g_vals * (vals > 0).to(g_vals.dtype)
        k = idx.shape[1]
        g_x = g_W = g_b = None
        if ctx.needs_input_grad[0]:
            g_x = F.embedding_bag(idx, W.t(), per_sample_weights=g, mode="sum")
        if ctx.needs_input_grad[1]:
            g_Wt = torch.zeros(W.shape[1], W.shape[0], dtype=W.dtype)
            g_Wt.index_add_(0, idx.reshape(-1), g.reshape(-1, 1) * x.repeat_interleave(k, dim=0))
            g_W = g_Wt.t()
        if ctx.needs_input_grad[2]:
            g_b = torch.zeros(W.shape[1], dtype=W.dtype).index_add_(0, idx.reshape(-1), g.reshape(-1))
        return g_x, g_W, g_b, None


def topk_encode(x: torch.Tensor, W: torch.Tensor, b: torch.Tensor, k: int):
    """``(vals, idx)`` of ``ReLU(topk(x @ W + b))`` with a sparse backward (see :class:`_TopKEncode`)."""
    return _TopKEncode.apply(x, W, b, int(k))
