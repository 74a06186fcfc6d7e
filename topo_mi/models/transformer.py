"""A one-layer attention-only transformer: the max-of-K model of Gross et al. (2024)."""
from __future__ import annotations

import math

import torch
from torch import nn

from topo_mi._validation import fail
from topo_mi.models._common import ConfigMixin, check_parameter_budget, check_seed, generator, positive_int


class AttentionOnlyTransformer(ConfigMixin, nn.Module):
    r"""One attention layer, no MLP, no layer norm, no biases; causal; logits at every position.

    The configuration of Gross et al., "Compact proofs of model performance via mechanistic
    interpretability" (2024; code ``JasonGross/guarantees-based-mechanistic-interpretability``,
    ``gbmi/exp_max_of_n``): a TransformerLens ``HookedTransformer`` with ``n_layers=1``,
    ``attn_only=True``, ``normalization_type=None`` and biases fixed at zero. For tokens ``t`` of
    shape (B, T), T <= n_ctx, the forward pass is exactly::

        resid_pre[b, p]   = W_E[t[b, p]] + W_pos[p]                                  (B, T, d_model)
        q[b, h, p]        = resid_pre[b, p] @ W_Q[h]     (likewise k with W_K, v with W_V)
        scores[b, h, p, s] = q[b, h, p] . k[b, h, s] / sqrt(d_head),  -inf where s > p (causal)
        pattern           = softmax(scores, over s)                                 (B, H, T, T)
        z[b, h, p]        = sum_s pattern[b, h, p, s] * v[b, h, s]                  (B, H, T, d_head)
        attn_out[b, p]    = sum_h z[b, h, p] @ W_O[h]                               (B, T, d_model)
        resid_post        = resid_pre + attn_out
        logits            = resid_post @ W_U                                        (B, T, d_vocab)

    Every intermediate passes through an ``nn.Identity`` hook module so that activations can be
    collected by name: ``hook_embed`` (W_E[t]), ``hook_pos`` (W_pos[p], broadcast to (B, T,
    d_model)), ``hook_resid_pre``, ``hook_q``, ``hook_k``, ``hook_v`` (B, H, T, d_head),
    ``hook_attn_scores`` (masked scores) and ``hook_pattern`` (B, H, T, T), ``hook_z``,
    ``hook_attn_out``, ``hook_resid_post`` (B, T, d_model).

    Parameters
    ----------
    d_vocab : int, default 64
    d_model : int, default 32
    n_ctx : int, default 4
        Longest sequence the positional embedding covers.
    d_head : int, default 32
    n_heads : int, default 1
    seed : int, default 0
        Every weight is drawn from N(0, (0.8 / sqrt(d_model))²), TransformerLens's "gpt2"
        initialisation, with a local ``torch.Generator`` seeded by ``seed``.
    """

    def __init__(self, d_vocab: int = 64, d_model: int = 32, n_ctx: int = 4, d_head: int = 32,
                 n_heads: int = 1, seed: int = 0):
        d_vocab = positive_int("d_vocab", d_vocab)
        d_model = positive_int("d_model", d_model)
        n_ctx = positive_int("n_ctx", n_ctx)
        d_head = positive_int("d_head", d_head)
        n_heads = positive_int("n_heads", n_heads)
        seed = check_seed(seed)
        check_parameter_budget("d_vocab, d_model, d_head", 2 * d_vocab * d_model + n_ctx * d_model
                               + 4 * n_heads * d_head * d_model)
        super().__init__()
        self._config = dict(d_vocab=d_vocab, d_model=d_model, n_ctx=n_ctx, d_head=d_head,
                            n_heads=n_heads, seed=seed)
        self.d_vocab, self.d_model, self.n_ctx = d_vocab, d_model, n_ctx
        self.d_head, self.n_heads = d_head, n_heads
        g = generator(seed)
        std = 0.8 / math.sqrt(d_model)

        def param(*shape):
            return nn.Parameter(torch.randn(*shape, generator=g) * std)

        self.W_E = param(d_vocab, d_model)
        self.W_pos = param(n_ctx, d_model)
        self.W_Q = param(n_heads, d_model, d_head)
        self.W_K = param(n_heads, d_model, d_head)
        self.W_V = param(n_heads, d_model, d_head)
        self.W_O = param(n_heads, d_head, d_model)
        self.W_U = param(d_model, d_vocab)
        for name in self.hook_names:
            self.add_module(name, nn.Identity())
        self.register_buffer("_causal", torch.triu(torch.ones(n_ctx, n_ctx, dtype=torch.bool), diagonal=1),
                             persistent=False)

    hook_names = ("hook_embed", "hook_pos", "hook_resid_pre", "hook_q", "hook_k", "hook_v",
                  "hook_attn_scores", "hook_pattern", "hook_z", "hook_attn_out", "hook_resid_post")

    def _check_tokens(self, tokens) -> torch.Tensor:
        if not isinstance(tokens, torch.Tensor):
            fail("tokens", "an int64 torch.Tensor of shape (batch, n_ctx)", tokens)
        if tokens.dtype not in (torch.int64, torch.int32, torch.int16, torch.uint8):
            fail("tokens", "an integer tensor of token ids", f"dtype {tokens.dtype}", raw=True)
        if tokens.ndim != 2 or not 1 <= tokens.shape[1] <= self.n_ctx:
            fail("tokens", f"a tensor of shape (batch, T) with 1 <= T <= n_ctx = {self.n_ctx}",
                 f"shape {tuple(tokens.shape)}", raw=True)
        if tokens.numel() and (int(tokens.min()) < 0 or int(tokens.max()) >= self.d_vocab):
            fail("tokens", f"token ids in [0, {self.d_vocab})",
                 f"range [{int(tokens.min())}, {int(tokens.max())}]", raw=True)
        return tokens.long()

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """Logits of shape (B, T, d_vocab) for int tokens of shape (B, T)."""
        tokens = self._check_tokens(tokens)
        T = tokens.shape[1]
        embed = self.hook_embed(self.W_E[tokens])                                  # (B, T, d)
        pos = self.hook_pos(self.W_pos[:T].unsqueeze(0).expand(tokens.shape[0], -1, -1))
        resid_pre = self.hook_resid_pre(embed + pos)
        q = self.hook_q(torch.einsum("btd,hde->bhte", resid_pre, self.W_Q))
        k = self.hook_k(torch.einsum("btd,hde->bhte", resid_pre, self.W_K))
        v = self.hook_v(torch.einsum("btd,hde->bhte", resid_pre, self.W_V))
        scores = torch.einsum("bhpe,bhse->bhps", q, k) / math.sqrt(self.d_head)
        scores = self.hook_attn_scores(scores.masked_fill(self._causal[:T, :T], float("-inf")))
        pattern = self.hook_pattern(torch.softmax(scores, dim=-1))
        z = self.hook_z(torch.einsum("bhps,bhse->bhpe", pattern, v))
        attn_out = self.hook_attn_out(torch.einsum("bhpe,hed->bpd", z, self.W_O))
        resid_post = self.hook_resid_post(resid_pre + attn_out)
        return resid_post @ self.W_U

    def extra_repr(self) -> str:
        return self.extra_repr_config()


__all__ = ["AttentionOnlyTransformer"]
