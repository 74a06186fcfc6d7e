"""Circuits of the one-layer attention-only transformer: EQKE, EVOU, the direct path, brute force.

Following Gross et al., "Compact proofs of model performance via mechanistic interpretability"
(2024; code ``JasonGross/guarantees-based-mechanistic-interpretability``), for the max-of-K model
(no layer norm, no biases) the logits at the last position split into token-by-token matrices:

- QK circuit ``EQKE = (W_E + W_pos[-1]) W_Q W_Kᵀ W_Eᵀ / sqrt(d_head)`` (d_vocab_q, d_vocab_k): the
  attention score from the query token (at the last position) to a key token, and
  ``EQKP = (W_E + W_pos[-1]) W_Q W_Kᵀ W_posᵀ / sqrt(d_head)`` its positional part;
- OV circuit ``EVOU = W_E W_V W_O W_U`` (d_vocab, d_vocab): what attending to a token adds to each
  logit, and ``PVOU = W_pos W_V W_O W_U`` its positional part;
- direct path ``EU = (W_E + W_pos[-1]) W_U``: the query token's own contribution.

A model that computes the maximum attends to the largest token (EQKE increases along each row)
and copies it (EVOU is diagonally dominant).

Two conventions live here; say which one a number comes from:

- :func:`attention_circuits` (also :func:`scaled_attention_circuits`): the matrices above, with the
  ``1/sqrt(d_head)`` of the forward pass folded into EQKE/EQKP and *no* positional term on the
  key/value side (the positional parts are EQKP and PVOU on their own);
- :func:`seed_circuits`: the definitions of the paper's code (``gbmi/exp_max_of_n``) that its
  proofs use, unscaled (``attn_scale = sqrt(d_head)`` is kept apart) and with the *mean*
  positional embedding ``P̄ = mean_p W_pos[p]`` moved into the token part on the key/value side::

      EQKE = (W_E + W_pos[-1]) W_Q W_Kᵀ (W_E + P̄)ᵀ      EQKP = (W_E + W_pos[-1]) W_Q W_Kᵀ (W_pos - P̄)ᵀ
      EVOU = (W_E + P̄) W_V W_O W_U                      PVOU = (W_pos - P̄) W_V W_O W_U
      EUPU = (W_E + W_pos[-1]) W_U

  Both decompositions are exact: ``score(q, p, t) = (EQKE[q, t] + EQKP[q, p]) / attn_scale`` and
  ``value(p, t) = EVOU[t] + PVOU[p]``.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from topo_mi._results import Result, result_dataclass
from topo_mi._validation import check_choice, check_int, fail
from topo_mi.circuits._graphdata import EDGE_KINDS, GraphData
from topo_mi.errors import ResourceError


def _check_transformer(model) -> None:
    from topo_mi.circuits._stack import is_transformer, unsupported

    if not is_transformer(model):
        raise unsupported(f"a {type(model).__name__} where the attention-only transformer "
                          "(parameters W_E, W_pos, W_Q, W_K, W_V, W_O, W_U) was expected")


def _weights(model, head: int) -> dict[str, np.ndarray]:
    import torch

    _check_transformer(model)
    n_heads = int(model.W_Q.shape[0])
    head = check_int("head", head, min_value=0, max_value=n_heads - 1)

    def g(t):
        return t.detach().cpu().to(torch.float64).numpy()

    return dict(E=g(model.W_E), P=g(model.W_pos), Q=g(model.W_Q)[head], K=g(model.W_K)[head],
                V=g(model.W_V)[head], O=g(model.W_O)[head], U=g(model.W_U), n_heads=n_heads)


def _all_heads(model) -> dict[str, np.ndarray]:
    import torch

    def g(t):
        return t.detach().cpu().to(torch.float64).numpy()

    return dict(E=g(model.W_E), P=g(model.W_pos), Q=g(model.W_Q), K=g(model.W_K), V=g(model.W_V),
                O=g(model.W_O), U=g(model.W_U))


@result_dataclass
class AttentionCircuits(Result):
    """The token-level circuits of one head of a one-layer attention-only transformer.

    Attributes
    ----------
    eqke : ndarray of shape (d_vocab, d_vocab)
        Attention score from a query token at the last position (rows) to a key token (columns),
        scaled by ``1/sqrt(d_head)`` as in the forward pass.
    eqkp : ndarray of shape (d_vocab, n_ctx)
        Positional part of the score from a query token to each key position.
    evou : ndarray of shape (d_vocab, d_vocab)
        Logit change (columns) from fully attending to a token (rows).
    pvou : ndarray of shape (n_ctx, d_vocab)
        Logit change from the positional embedding of an attended position.
    direct : ndarray of shape (d_vocab, d_vocab)
        The direct path ``(W_E + W_pos[-1]) W_U``: logits (columns) from the query token (rows).
    head : int
    """

    eqke: np.ndarray
    eqkp: np.ndarray
    evou: np.ndarray
    pvou: np.ndarray
    direct: np.ndarray
    head: int = 0

    _plot_function = "topo_mi.plotting.circuits:plot_attention_circuits"

    @property
    def evou_diagonal_dominance(self) -> float:
        """Share of rows of EVOU whose largest entry is on the diagonal (copying)."""
        return float(np.mean(np.argmax(self.evou, axis=1) == np.arange(self.evou.shape[0])))

    @property
    def evou_diagonal_margin(self) -> np.ndarray:
        """Per row: diagonal minus the largest off-diagonal entry (> 0: the row copies)."""
        off = self.evou.copy()
        np.fill_diagonal(off, -np.inf)
        return np.diag(self.evou) - off.max(axis=1)

    @property
    def eqke_monotonicity(self) -> float:
        """Mean over query tokens of the Spearman correlation of EQKE's row with the key token."""
        from scipy.stats import spearmanr

        keys = np.arange(self.eqke.shape[1])
        rhos = [spearmanr(row, keys).statistic for row in self.eqke]
        return float(np.nanmean(rhos))

    @property
    def eqke_increasing_fraction(self) -> float:
        """Share of adjacent key pairs (k, k+1), over all query rows, where EQKE increases."""
        return float(np.mean(np.diff(self.eqke, axis=1) > 0))

    def summary(self) -> dict[str, Any]:
        return {"evou_diagonal_dominance": self.evou_diagonal_dominance,
                "eqke_monotonicity": self.eqke_monotonicity,
                "eqke_increasing_fraction": self.eqke_increasing_fraction,
                "d_vocab": int(self.eqke.shape[0]), "head": self.head}


def attention_circuits(model, *, head: int = 0) -> AttentionCircuits:
    """EQKE, EQKP, EVOU, PVOU and the direct path of one head, scaled convention (Gross et al., 2024).

    EQKE and EQKP include the forward pass's ``1/sqrt(d_head)``; the key/value token terms carry no
    positional embedding. For the paper code's definitions (unscaled, mean positional term on the
    key/value side), which the proofs of :mod:`topo_mi.guarantees` use, see :func:`seed_circuits`.

    Parameters
    ----------
    model : AttentionOnlyTransformer
        A one-layer attention-only transformer with parameters ``W_E`` (d_vocab, d_model),
        ``W_pos`` (n_ctx, d_model), ``W_Q``/``W_K``/``W_V`` (n_heads, d_model, d_head),
        ``W_O`` (n_heads, d_head, d_model), ``W_U`` (d_model, d_vocab).
    head : int, default 0

    Returns
    -------
    AttentionCircuits
    """
    w = _weights(model, head)
    E, P, Q, K, V, O, U = (w[k] for k in "EPQKVOU")
    scale = 1.0 / math.sqrt(Q.shape[1])
    Eq = E + P[-1]
    qk = Eq @ Q @ K.T
    return AttentionCircuits(eqke=qk @ E.T * scale, eqkp=qk @ P.T * scale, evou=E @ V @ O @ U,
                             pvou=P @ V @ O @ U, direct=Eq @ U, head=int(head))


scaled_attention_circuits = attention_circuits  # the explicit name of the scaled convention


@result_dataclass
class SeedCircuits(Result):
    """Path matrices of one head in the convention of the paper's code (see the module docstring).

    Attributes
    ----------
    eqke : ndarray (d_vocab, d_vocab)
        ``(W_E + W_pos[-1]) W_Q W_Kᵀ (W_E + P̄)ᵀ``, unscaled: query token (rows) by key token.
    eqkp : ndarray (d_vocab, n_ctx)
        ``(W_E + W_pos[-1]) W_Q W_Kᵀ (W_pos - P̄)ᵀ``: query token by key position.
    evou : ndarray (d_vocab, d_vocab)
        ``(W_E + P̄) W_V W_O W_U``: attended token (rows) by output logit.
    pvou : ndarray (n_ctx, d_vocab)
        ``(W_pos - P̄) W_V W_O W_U``: attended position by output logit.
    eupu : ndarray (d_vocab, d_vocab)
        ``(W_E + W_pos[-1]) W_U``: the direct path of the query token.
    attn_scale : float
        ``sqrt(d_head)``; the attention score is ``(EQKE[q, t] + EQKP[q, p]) / attn_scale``.
    head : int
    """

    eqke: np.ndarray
    eqkp: np.ndarray
    evou: np.ndarray
    pvou: np.ndarray
    eupu: np.ndarray
    attn_scale: float
    head: int = 0

    def summary(self) -> dict[str, Any]:
        return {"d_vocab": int(self.eqke.shape[0]), "n_ctx": int(self.eqkp.shape[1]),
                "attn_scale": float(self.attn_scale), "head": self.head}


def seed_circuits(model, *, head: int = 0) -> SeedCircuits:
    """EQKE, EQKP, EVOU, PVOU and EUPU exactly as the paper's code defines them (float64).

    Unlike :func:`attention_circuits`, EQKE is not divided by ``sqrt(d_head)`` and the mean
    positional embedding is part of the key/value token term (module docstring).
    """
    w = _weights(model, head)
    E, P, Q, K, V, O, U = (w[k] for k in "EPQKVOU")
    pbar = P.mean(axis=0)
    Eq = E + P[-1]
    qk = Eq @ Q @ K.T
    vou = V @ O @ U
    return SeedCircuits(eqke=qk @ (E + pbar).T, eqkp=qk @ (P - pbar).T, evou=(E + pbar) @ vou,
                        pvou=(P - pbar) @ vou, eupu=Eq @ U, attn_scale=math.sqrt(Q.shape[1]), head=int(head))


# -- graph ----------------------------------------------------------------------------------------

def _last_position_pattern(model, tokens: np.ndarray) -> np.ndarray:
    """Attention pattern of the last position, summed over heads: (n, n_heads, T)."""
    w = _all_heads(model)
    E, P, Q, K = w["E"], w["P"], w["Q"], w["K"]
    T = tokens.shape[1]
    resid = E[tokens] + P[:T][None]                                    # (n, T, d)
    q = np.einsum("nd,hde->nhe", resid[:, -1], Q)
    k = np.einsum("ntd,hde->nhte", resid, K)
    scores = np.einsum("nhe,nhte->nht", q, k) / math.sqrt(Q.shape[2])
    scores -= scores.max(axis=-1, keepdims=True)
    p = np.exp(scores)
    return p / p.sum(axis=-1, keepdims=True)


def _check_tokens(model, tokens) -> np.ndarray:
    from topo_mi._validation import as_array

    t = as_array(tokens, "data")
    d_vocab, n_ctx = int(model.W_E.shape[0]), int(model.W_pos.shape[0])
    if t.dtype.kind not in "iu":
        fail("data", f"integer token ids of shape (n_samples, T), 1 <= T <= {n_ctx}", t)
    if t.ndim != 2 or not 1 <= t.shape[1] <= n_ctx or t.shape[0] < 1:
        fail("data", f"token ids of shape (n_samples, T), 1 <= T <= {n_ctx}", f"shape {t.shape}", raw=True)
    if t.min() < 0 or t.max() >= d_vocab:
        fail("data", f"token ids in [0, {d_vocab})", f"range [{t.min()}, {t.max()}]", raw=True)
    return np.asarray(t, dtype=np.int64)


def transformer_graph(model, *, data=None, top_k=None, threshold=None, by="weight",
                      max_edges: int = 2_000_000, head: int | None = None) -> GraphData:
    """Token graph ``query -> key`` (EQKE), ``key -> logits`` (EVOU), ``query -> logits`` (direct)."""
    from topo_mi.circuits.graph import _select, _too_large, split_data

    _check_transformer(model)
    n_heads = int(model.W_Q.shape[0])
    heads = range(n_heads) if head is None else [head]
    circ = [attention_circuits(model, head=h) for h in heads]
    eqke = sum(c.eqke for c in circ) / len(circ) if len(circ) > 1 else circ[0].eqke
    evou = sum(c.evou for c in circ)
    direct = circ[0].direct
    dv = eqke.shape[0]
    # rows of each matrix below are targets, columns sources
    blocks = [("qk", 0, 1, eqke.T), ("ov", 1, 2, evou.T), ("direct", 0, 2, direct.T)]
    est = sum(dv * (min(top_k, dv) if top_k else dv) for _ in blocks)
    if threshold is None and est > max_edges:
        raise _too_large(est, max_edges, 3 * dv, "token graph")

    tokens = None
    if data is not None:
        x, _ = split_data(data)
        tokens = _check_tokens(model, x)
    src_act = {}
    if tokens is not None:
        n = tokens.shape[0]
        query = np.zeros((n, dv))
        query[np.arange(n), tokens[:, -1]] = 1.0
        pattern = _last_position_pattern(model, tokens).mean(axis=1)   # (n, T) averaged over heads
        key = np.zeros((n, dv))
        np.add.at(key, (np.repeat(np.arange(n), tokens.shape[1]), tokens.ravel()), pattern.ravel())
        src_act = {0: query, 1: key}

    offsets = [0, dv, 2 * dv, 3 * dv]
    srcs, dsts, ws, kinds, attr, attr_var = [], [], [], [], [], []
    for kind, s, d, M in blocks:
        key_m = M if not (by == "attribution" and src_act) else M * src_act[s].mean(axis=0)[None, :]
        keep = _select(M, None, key_m, top_k, threshold)
        j, i = np.nonzero(keep)
        w = M[j, i]
        srcs.append(offsets[s] + i)
        dsts.append(offsets[d] + j)
        ws.append(w)
        kinds.append(np.full(j.size, EDGE_KINDS.index(kind), np.int8))
        if src_act:
            mu, var_a = src_act[s].mean(axis=0), src_act[s].var(axis=0)
            attr.append(w * mu[i])
            attr_var.append(w ** 2 * var_a[i])
        else:
            attr.append(np.full(j.size, np.nan))
            attr_var.append(np.full(j.size, np.nan))
    total = sum(len(x) for x in srcs)
    if total > max_edges:
        raise _too_large(total, max_edges, 3 * dv, "after top_k/threshold")
    mean = np.full(3 * dv, np.nan)
    var = np.full(3 * dv, np.nan)
    if src_act:
        for s in (0, 1):
            mean[offsets[s]:offsets[s + 1]] = src_act[s].mean(axis=0)
            var[offsets[s]:offsets[s + 1]] = src_act[s].var(axis=0)
    return GraphData(
        model_kind="attention_only_transformer", layer_names=["query", "key", "logits"],
        layer_sizes=np.array([dv, dv, dv], np.int64), layer_basis=["token", "token", "token"],
        layer_kinds=["input", "hidden", "output"],
        edge_src=np.concatenate(srcs).astype(np.int64), edge_dst=np.concatenate(dsts).astype(np.int64),
        edge_weight=np.concatenate(ws), edge_kind=np.concatenate(kinds),
        edge_attribution=np.concatenate(attr), edge_attribution_var=np.concatenate(attr_var),
        node_bias=np.full(3 * dv, np.nan), node_mean=mean, node_var=var)


# -- brute force -----------------------------------------------------------------------------------

def _tables(model):
    """Everything the last-position logits need, by token and position (float64)."""
    w = _all_heads(model)
    E, P, Q, K, V, O, U = (w[k] for k in "EPQKVOU")
    scale = 1.0 / math.sqrt(Q.shape[2])
    Eq = E + P[-1]                                                   # (dv, d)
    q = np.einsum("td,hde->hte", Eq, Q)                              # (H, dv, dh)
    resid = E[None, :, :] + P[:, None, :]                            # (n_ctx, dv, d)
    k = np.einsum("ptd,hde->hpte", resid, K)                         # (H, n_ctx, dv, dh)
    scores = np.einsum("hqe,hpte->hqpt", q, k) * scale               # (H, dv_q, n_ctx, dv_k)
    VOU = np.einsum("hde,hef->hdf", V, O) @ U                        # (H, d, dv_out)
    ovu = np.einsum("ptd,hdu->hptu", resid, VOU)                     # (H, n_ctx, dv, dv_out)
    direct = Eq @ U                                                  # (dv, dv_out)
    return scores, ovu, direct


def last_position_logits(model, tokens, *, tables=None):
    """Logits at the last position of full-length sequences, from per-token tables (torch, float64).

    Exactly the forward pass of :class:`~topo_mi.models.AttentionOnlyTransformer` at the last
    position, reorganised: ``logits = EU[t_last] + Σ_h Σ_p pattern[h, p] · OVU[h, p, t_p]`` with
    ``pattern = softmax_p(scores[h, t_last, p, t_p])``.
    """
    import torch

    scores, ovu, direct = tables if tables is not None else [torch.as_tensor(a) for a in _tables(model)]
    tokens = torch.as_tensor(tokens, dtype=torch.long)
    n_ctx = ovu.shape[1]
    pos = torch.arange(n_ctx)
    q = tokens[:, -1]
    s = scores[:, q[:, None], pos[None, :], tokens]                  # (H, B, n_ctx)
    p = torch.softmax(s, dim=-1)
    v = ovu[:, pos[None, :], tokens]                                 # (H, B, n_ctx, dv_out)
    return direct[q] + torch.einsum("hbp,hbpu->bu", p, v)


def brute_force_accuracy(model, *, task: str = "max", batch_size: int = 1 << 16, method: str = "tables",
                         max_sequences: int = 1 << 26, n_threads: int | None = 1,
                         progress: bool = False) -> float:
    """Accuracy at the last position over *every* input sequence (d_vocab ** n_ctx of them).

    The brute-force baseline of Gross et al. (2024): for max-of-K (``task="max"``) a sequence is
    right when the argmax of the last-position logits is the largest token. All
    ``d_vocab ** n_ctx`` sequences (16,777,216 for d_vocab 64, n_ctx 4) are enumerated in batches.

    Parameters
    ----------
    model : AttentionOnlyTransformer
    task : {"max"}, default "max"
    batch_size : int, default 65536
    method : {"tables", "forward"}, default "tables"
        ``"tables"`` evaluates the last position from per-token tables (embedding, score and OV
        tables; float64, a few seconds for 64⁴ inputs); ``"forward"`` calls ``model(tokens)`` on
        every batch (the model's own float32 arithmetic; slower).
    max_sequences : int, default 2**26
        Refuse (:class:`~topo_mi.errors.ResourceError`) larger enumerations.
    n_threads : int or None, default 1
        Torch intra-op threads while enumerating (restored afterwards): the work is many small
        tensors, where one thread is fastest on a shared machine; None keeps torch's setting.
    progress : bool, default False
        Show a progress bar (tqdm).

    Returns
    -------
    float
        The exact accuracy over all sequences.
    """
    import torch

    _check_transformer(model)
    check_choice("task", task, ("max",))
    check_choice("method", method, ("tables", "forward"))
    batch_size = check_int("batch_size", batch_size, min_value=1)
    d_vocab, n_ctx = int(model.W_E.shape[0]), int(model.W_pos.shape[0])
    total = d_vocab ** n_ctx
    if total > check_int("max_sequences", max_sequences, min_value=1):
        raise ResourceError(f"model: brute force needs {total:,} sequences (d_vocab={d_vocab}, n_ctx={n_ctx}), "
                            f"over max_sequences={max_sequences:,}; raise max_sequences or estimate on samples")
    if n_threads is not None:
        n_threads = check_int("n_threads", n_threads, min_value=1)
    from topo_mi.circuits._threads import intra_op_threads

    with intra_op_threads(n_threads):
        return _brute_force(model, method, batch_size, progress, d_vocab, n_ctx, total)


def _brute_force(model, method, batch_size, progress, d_vocab, n_ctx, total) -> float:
    import torch

    if method == "tables" and int(model.W_Q.shape[0]) == 1 and n_ctx >= 2:
        fast = _brute_force_one_head(model, progress)
        if fast is not None:
            return fast / total
    tables = [torch.as_tensor(a) for a in _tables(model)] if method == "tables" else None
    powers = torch.tensor([d_vocab ** (n_ctx - 1 - p) for p in range(n_ctx)], dtype=torch.long)
    correct = 0
    starts = range(0, total, batch_size)
    if progress:
        from tqdm.auto import tqdm

        starts = tqdm(starts, desc="brute force", leave=False)
    with torch.no_grad():
        for start in starts:
            idx = torch.arange(start, min(start + batch_size, total), dtype=torch.long)
            tokens = (idx[:, None] // powers[None, :]) % d_vocab
            if method == "tables":
                logits = last_position_logits(model, tokens, tables=tables)
            else:
                logits = model(tokens)[:, -1]
            correct += int((logits.argmax(dim=-1) == tokens.max(dim=1).values).sum())
    return correct / total


def free_grid_max(d_vocab: int, n_free: int):
    """``out[t_1, .., t_f] = max(t_1, .., t_f)`` over a (d_vocab,) * n_free grid (torch long)."""
    import torch

    grid_max = torch.zeros((d_vocab,) * n_free, dtype=torch.long)
    for f in range(n_free):
        shape = [1] * n_free
        shape[f] = d_vocab
        grid_max = torch.maximum(grid_max, torch.arange(d_vocab).reshape(shape))
    return grid_max


def _brute_force_one_head(model, progress: bool) -> int | None:
    """Count correct sequences for one head without materialising per-sequence logits.

    With one head, ``logits = EU[q] + Σ_p a_p · OVU[p, t_p]`` and ``a_p = e_p / Σ_r e_r`` with
    ``e_p = exp(score(q, p, t_p))``; multiplying by the positive ``Σ_r e_r`` keeps the argmax, so
    the argmax of ``Σ_p e_p · (OVU[p, t_p] + EU[q])`` decides — a sum of one vector per position,
    which broadcasts over the last two free positions. Returns None when the scores spread too
    far for ``exp`` in float64 (the caller falls back to batched tables).
    """
    import itertools

    import torch

    scores, ovu, direct = (torch.as_tensor(a) for a in _tables(model))
    scores, ovu = scores[0], ovu[0]                                   # (dv, n_ctx, dv), (n_ctx, dv, dv_out)
    dv, n_ctx = scores.shape[0], scores.shape[1]
    keys = n_ctx - 1                                                  # positions before the query
    n_free = min(2, keys)
    rest = keys - n_free
    grid_max = free_grid_max(dv, n_free)
    correct = 0
    queries = range(dv)
    if progress:
        from tqdm.auto import tqdm

        queries = tqdm(queries, desc="brute force", leave=False)
    with torch.no_grad():
        for q in queries:
            s_q = scores[q]                                           # (n_ctx, dv)
            s_all = torch.cat([s_q[:keys].reshape(-1), s_q[keys, q].reshape(1)])
            shift = s_all.max()
            if float(shift - s_all.min()) > 600.0:
                return None
            e = torch.exp(s_q - shift)                                # (n_ctx, dv)
            b = e[:, :, None] * (ovu + direct[q][None, None, :])      # (n_ctx, dv, dv_out)
            self_term = b[keys, q]
            free = [b[rest + f] for f in range(n_free)]
            X_free = None
            for f, bf in enumerate(free):
                shape = [1] * n_free + [bf.shape[-1]]
                shape[f] = dv
                X_free = bf.reshape(shape) if X_free is None else X_free + bf.reshape(shape)
            for combo in itertools.product(range(dv), repeat=rest):
                c = self_term.clone()
                for p, t in enumerate(combo):
                    c = c + b[p, t]
                pred = (X_free + c).argmax(dim=-1)
                base = max((q, *combo))
                target = torch.clamp(grid_max, min=base)
                correct += int((pred == target).sum())
    return correct


def sampled_accuracy(model, *, n_samples: int = 100_000, seed: int = 0, batch_size: int = 1 << 16) -> float:
    """Max-of-K accuracy of ``model(tokens)`` on ``n_samples`` uniform random sequences (seeded)."""
    import torch

    _check_transformer(model)
    n_samples = check_int("n_samples", n_samples, min_value=1)
    d_vocab, n_ctx = int(model.W_E.shape[0]), int(model.W_pos.shape[0])
    g = torch.Generator().manual_seed(check_int("seed", seed, min_value=0))
    correct = 0
    with torch.no_grad():
        for start in range(0, n_samples, batch_size):
            b = min(batch_size, n_samples - start)
            tokens = torch.randint(0, d_vocab, (b, n_ctx), generator=g)
            correct += int((model(tokens)[:, -1].argmax(-1) == tokens.max(1).values).sum())
    return correct / n_samples


__all__ = ["AttentionCircuits", "attention_circuits", "scaled_attention_circuits", "SeedCircuits", "seed_circuits", "transformer_graph", "brute_force_accuracy",
           "sampled_accuracy", "last_position_logits"]
