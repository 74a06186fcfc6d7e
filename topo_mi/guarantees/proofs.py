"""Compact proofs of max-of-K accuracy: brute force, the cubic proof and subcubic proofs.

Gross et al., "Compact proofs of model performance via mechanistic interpretability" (2024; code
``JasonGross/guarantees-based-mechanistic-interpretability``). A proof here is a computation on the
model's weights whose output is a lower bound on the share of all ``d_vocab ** n_ctx`` input
sequences on which the argmax of the last-position logits is the largest token. The proofs are
*argued* computations: the argument for each step is written below and in the docstrings and the
code is tested against brute force, but nothing is machine-checked, and float64 rounding is not
bounded formally (a ``margin`` is required on every certified logit gap instead).

Notation (seed convention, :func:`topo_mi.circuits.transformer.seed_circuits`): for a sequence
``t_0 .. t_{n-1}`` with query ``q = t_{n-1}`` and maximum ``m``, exactly::

    logits = EUPU[q] + Σ_i a_i (EVOU[t_i] + PVOU[i]),   a = softmax_i((EQKE[q, t_i] + EQKP[q, i]) / attn_scale)

Centering on the column ``m`` (``X_c[., x] = X[., x] - X[., m]``) the sequence is right when every
``Δ_x = EUPU_c[q, x] + Σ_i a_i (EVOU_c[t_i, x] + PVOU_c[i, x]) < 0`` for ``x ≠ m``.

Shared argument (both the cubic and the subcubic proofs):

1. Values. ``Σ_i a_i PVOU_c[i, x] <= P*[m, x] = max_p PVOU_c[p, x]`` (the weights are a convex
   combination), so ``Δ_x <= Σ_i a_i g(t_i)`` with ``g(t) = E*[q] + V*[t]``, ``E*[q] = max_{x≠m}
   EUPU_c[q, x]`` and ``V*[t] = max_{x≠m} (EVOU_c[t, x] + P*[m, x])``.
2. Sign. ``Σ_i a_i g(t_i) < 0`` iff ``S = Σ_i e^{s_i} g(t_i) < 0`` (multiply by the positive
   softmax denominator). With scores ``s_i = s(t_i) + p_i`` (token part plus positional part) each
   term is ``e^{p_i} · e^{s(t_i)} g(t_i)``: separable.
3. Mixed non-max tokens. Among the ``c`` non-max key positions, ``Σ_j e^{p_j} h(t_j) <= Σ_j e^{p_j}
   h(k*)`` with ``h(t) = e^{s(t)} g(t)`` and ``k*`` the present token of largest ``h``: a sequence
   passes if the sequence with every non-max token replaced by ``k*`` passes at the same positions.
4. Positions. With the tokens fixed, ``S`` is linear in ``P_M = Σ_{i ∈ max slots} e^{p_i}`` (the
   slots' total is fixed), so the two extreme arrangements (max tokens in the lowest-score slots,
   or in the highest) bound every arrangement.
"""
from __future__ import annotations

import math
import time
from typing import Any

import numpy as np

from topo_mi._results import Result, result_dataclass
from topo_mi._validation import check_choice, check_float, check_int, fail
from topo_mi.errors import ResourceError
from topo_mi.guarantees._model import Flops, check_proof_model

STRATEGIES = ("brute_force", "cubic", "subcubic", "subcubic_rank1_svd", "subcubic_rank1_rowdiff")

_COMMON = ("one layer, one head, attention only, no biases, no layer norm (checked on the model)",
           "correct = the argmax of the last-position logits is the largest token; every certified "
           "sequence has a strictly largest correct logit",
           "float64 arithmetic on the weights; rounding is not bounded formally")


@result_dataclass
class Proof(Result):
    """A certified lower bound on max-of-K accuracy and what it cost.

    Attributes
    ----------
    strategy : str
        ``"brute_force"``, ``"cubic"``, ``"subcubic"``, ``"subcubic_rank1_svd"`` or
        ``"subcubic_rank1_rowdiff"``.
    bound : float
        ``n_certified / n_total``: the accuracy lower bound.
    n_certified, n_total : int
        Sequences certified correct, out of ``d_vocab ** n_ctx``.
    n_dropped, n_failed : int
        Sequences the proof set aside without trying (subcubic: a non-max token in the gap
        ``(m - g, m)``) and sequences whose case the proof tried and could not certify (brute
        force: the wrong ones). ``n_certified + n_dropped + n_failed == n_total``.
    flops_formula, flops_counted : float
        The cost by the closed-form formula of the strategy and by counting the operations as they
        were performed.
    complexity : str
        Asymptotic cost.
    wall_time_s : float
    assumptions : tuple of str
        What the proof assumed beyond the weights.
    d_vocab, n_ctx : int
    margin : float
        The required gap: a case passes only when its bound on the largest wrong logit minus the
        correct one is below ``-margin``.
    certificate : dict
        What the proof certified, for :func:`certified_sequences`: cubic ``pass_k`` (q, m, k, c)
        and ``pass_c0`` (q, m); subcubic ``j_max`` (q, m, c), the largest non-max token allowed
        (-1: failed), and ``pass_c0``; brute force nothing.
    """

    strategy: str
    bound: float
    n_certified: int
    n_total: int
    n_dropped: int
    n_failed: int
    flops_formula: float
    flops_counted: float
    complexity: str
    wall_time_s: float
    assumptions: tuple
    d_vocab: int
    n_ctx: int
    margin: float = 0.0
    certificate: dict | None = None

    _plot_function = "topo_mi.plotting.guarantees:plot_proof"

    def summary(self) -> dict[str, Any]:
        return {"strategy": self.strategy, "bound": self.bound, "n_certified": self.n_certified,
                "n_total": self.n_total, "n_dropped": self.n_dropped, "n_failed": self.n_failed,
                "flops_counted": self.flops_counted, "flops_formula": self.flops_formula,
                "log2_flops": math.log2(max(self.flops_counted, 1.0)), "complexity": self.complexity,
                "wall_time_s": self.wall_time_s}


# -- circuits with counted operations ------------------------------------------------------------

def _circuits(w: dict, ops: Flops, *, exact_qk: bool = True) -> dict[str, np.ndarray]:
    """Seed-convention path matrices (see :func:`~topo_mi.circuits.transformer.seed_circuits`)."""
    E, P, Q, K, V, O, U = (w[k] for k in ("E", "P", "Q", "K", "V", "O", "U"))
    n, dm = P.shape
    pbar = ops.ew(P.mean(axis=0), n)
    Eq = ops.ew(E + P[-1])
    Ek = ops.ew(E + pbar)
    Pc = ops.ew(P - pbar)
    EQ = ops.mm(Eq, Q)
    KE = ops.mm(Ek, K)
    PK = ops.mm(Pc, K)
    vou = ops.mm(ops.mm(V, O), U)
    out = dict(EQ=EQ, KE=KE, eqkp=ops.mm(EQ, PK.T), evou=ops.mm(Ek, vou), pvou=ops.mm(Pc, vou),
               eupu=ops.mm(Eq, U))
    if exact_qk:
        out["eqke"] = ops.mm(EQ, KE.T)
    return out


def _circuit_flops(d, dm, dh, n, exact_qk=True) -> float:
    f = n * dm + 2 * d * dm + n * dm                       # mean position, E + P[-1], E + P̄, W_pos - P̄
    f += 2 * (2 * d * dm * dh + n * dm * dh + d * n * dh)  # EQ, KE, PK, EQKP
    f += 2 * (dm * dh * dm + dm * dm * d)                  # V O U
    f += 2 * (2 * d * dm * d + n * dm * d)                 # EVOU, EUPU, PVOU
    if exact_qk:
        f += 2 * d * d * dh
    return float(f)


def _valid(d: int, n: int) -> np.ndarray:
    """Boolean (q, m, c): the cases that exist (q <= m; c <= n - 2 when q < m, since m occurs)."""
    q = np.arange(d)[:, None, None]
    m = np.arange(d)[None, :, None]
    c = np.arange(n)[None, None, :]
    ok = (q <= m) & (c <= n - 1)
    ok &= (q == m) | (c <= n - 2)
    ok &= (c == 0) | (m >= 1)          # c >= 1 needs a non-max token below m
    return ok


def _binom(n: int, c: int) -> int:
    return math.comb(n, c)


# -- counting ------------------------------------------------------------------------------------

def count_cubic(pass_k: np.ndarray, pass_c0: np.ndarray, n_ctx: int) -> int:
    """Sequences certified by the cubic proof's case table (exact integers).

    ``pass_k[q, m, k, c]`` (c >= 1): the case with ``c`` non-query copies of the non-max token
    ``k < m`` passes; ``pass_c0[q, m]``: the sequence with every non-query token equal to ``m``
    passes. A sequence is certified when every non-max token it holds passes (argument 3 of the
    module docstring), so a (q, m, c) case contributes ``C(n - 1, c) · t^c`` with ``t`` the number
    of passing ``k``. Cases that do not exist are ignored, so all-True tables give ``d ** n``.
    """
    d = pass_c0.shape[0]
    valid = _valid(d, n_ctx)
    kk = np.arange(d)[None, None, :]
    mm = np.arange(d)[None, :, None]
    total = int(np.sum(np.asarray(pass_c0, bool) & valid[:, :, 0]))
    for c in range(1, n_ctx):
        ok = np.asarray(pass_k[:, :, :, c], bool) & (kk < mm) & valid[:, :, c][:, :, None]
        t = ok.sum(axis=2)
        total += _binom(n_ctx - 1, c) * sum(int(x) ** c for x in t[t > 0].ravel())
    return total


def count_gap(j_max: np.ndarray, pass_c0: np.ndarray, n_ctx: int) -> tuple[int, int, int]:
    """(certified, dropped, failed) for a subcubic case table (exact integers).

    ``j_max[q, m, c]`` (c >= 1) is the largest non-max token the case certifies (every non-max
    token in ``[0, j_max]``: ``j_max + 1`` choices each), or -1 when no gap passes. Certified
    ``C(n - 1, c) (j + 1)^c``; dropped ``C(n - 1, c) (m^c - (j + 1)^c)``; failed ``C(n - 1, c) m^c``
    when ``j = -1``; the all-``m`` sequences (c = 0) are certified or failed. The three sum to
    ``d ** n`` (checked).
    """
    d = pass_c0.shape[0]
    valid = _valid(d, n_ctx)
    counted = failed = dropped = 0
    c0 = np.asarray(pass_c0, bool) & valid[:, :, 0]
    counted += int(c0.sum())
    failed += int(valid[:, :, 0].sum() - c0.sum())
    for c in range(1, n_ctx):
        b = _binom(n_ctx - 1, c)
        qs, ms = np.nonzero(valid[:, :, c])
        js = np.minimum(np.asarray(j_max)[qs, ms, c], ms - 1)
        for m, j in zip(ms.tolist(), js.tolist()):
            if j < 0:
                failed += b * m ** c
            else:
                counted += b * (j + 1) ** c
                dropped += b * (m ** c - (j + 1) ** c)
    if counted + dropped + failed != d ** n_ctx:  # pragma: no cover - an accounting bug
        raise AssertionError(f"accounting: {counted} + {dropped} + {failed} != {d}^{n_ctx}")
    return counted, dropped, failed


# -- shared pieces -------------------------------------------------------------------------------

def _check_margin(margin) -> float:
    return check_float("margin", margin, min_value=0.0)


def _slot_sums(ps_sorted: np.ndarray, ops: Flops) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each query row and c: Σ e^{p} over the max slots and over the non-max slots, in the two
    extreme arrangements (row 0: max tokens in the lowest-score slots; row 1: in the highest).

    Returns ``SM, SX`` of shape (d, n, 2), relative to ``e^{max p}``, and ``psmax`` (d,).
    """
    d, k = ps_sorted.shape                                   # k = n - 1 key positions
    psmax = ps_sorted[:, -1]
    e = ops.ew(np.exp(ps_sorted - psmax[:, None]), 2)
    cs = np.concatenate([np.zeros((d, 1)), np.cumsum(e, axis=1)], axis=1)   # cs[:, j] = Σ of the j lowest
    ops.add(d * k)
    tot = cs[:, -1]
    SM = np.empty((d, k + 1, 2))
    SX = np.empty((d, k + 1, 2))
    for c in range(k + 1):
        SM[:, c, 0] = cs[:, k - c]                # max tokens in the k - c lowest slots
        SX[:, c, 0] = tot - cs[:, k - c]
        SX[:, c, 1] = cs[:, c]                    # non-max tokens in the c lowest slots
        SM[:, c, 1] = tot - cs[:, c]
    ops.add(4 * d * (k + 1))
    return SM, SX, psmax


def _check_memory(what: str, n_bytes: float, max_bytes) -> None:
    max_bytes = check_int("max_bytes", max_bytes, min_value=1)
    if n_bytes > max_bytes:
        raise ResourceError(f"model: the {what} needs about {n_bytes / 2 ** 30:.2f} GiB of working arrays, over "
                            f"max_bytes={max_bytes:,}; raise max_bytes or use a cheaper strategy")


def _elapsed(t0: float) -> float:
    return round(time.perf_counter() - t0, 6)


# -- brute force ---------------------------------------------------------------------------------

def _brute_force_flops(d, dm, dh, n) -> float:
    k = n - 1
    n_free = min(2, k)
    rest = k - n_free
    per_q = 2 * n * d + 2 * n * d * d + (n_free - 1) * d ** n_free * d
    per_q += d ** rest * (rest * d + d + 2 * d ** (n_free + 1) + 2 * d ** n_free)
    return _circuit_flops(d, dm, dh, n) + 3.0 * d * d * n + float(d) * per_q


def brute_force_proof(model, *, max_sequences: int = 1 << 26, n_threads: int | None = 1) -> Proof:
    """Brute force as a proof: the argmax of the last-position logits of every sequence (float64).

    Every one of the ``d_vocab ** n_ctx`` sequences is decided from the seed-convention tables
    (``score[q, p, t] = (EQKE[q, t] + EQKP[q, p]) / attn_scale``, ``value[p, t] = EVOU[t] +
    PVOU[p]``, ``EUPU``). With one head, ``logits = Σ_p a_p (value[p, t_p] + EUPU[q])`` and
    ``a_p = e^{score_p} / Σ_r e^{score_r}``; the positive denominator does not move the argmax, so
    the argmax of ``Σ_p e^{score_p} (value[p, t_p] + EUPU[q])`` decides: one vector per position,
    summed by broadcasting over the last two key positions. A sequence is certified when the
    argmax is its maximum. Cost ``O(d_vocab^(n_ctx + 1))``: each sequence's ``d_vocab`` logits
    once. When a query row's scores spread over more than 600 (``exp`` would underflow) the
    sequences are evaluated with an explicit softmax instead (same count of logits).

    Parameters
    ----------
    model : AttentionOnlyTransformer
        One layer, one head, no biases or layer norm.
    max_sequences : int, default 2**26
        Refuse larger enumerations up front (:class:`~topo_mi.errors.ResourceError` with the
        estimated cost); the cubic and subcubic proofs still run on such models.
    n_threads : int or None, default 1
        Torch intra-op threads while enumerating (restored afterwards).
    """
    import itertools

    import torch

    from topo_mi.parallel import torch_threads as intra_op_threads
    from topo_mi.circuits.transformer import free_grid_max

    t0 = time.perf_counter()
    w = check_proof_model(model)
    d, n, dm, dh = w["d_vocab"], w["n_ctx"], w["d_model"], w["d_head"]
    max_sequences = check_int("max_sequences", max_sequences, min_value=1)
    total = d ** n
    if total > max_sequences:
        raise ResourceError(
            f"model: brute force needs {total:,} sequences (d_vocab={d}, n_ctx={n}; about "
            f"{_brute_force_flops(d, dm, dh, n):.3g} FLOPs), over max_sequences={max_sequences:,}; raise "
            "max_sequences, or use the cubic or subcubic proofs, which still run")
    ops = Flops()
    c = _circuits(w, ops)
    scale = math.sqrt(dh)
    score = torch.as_tensor(ops.ew((c["eqke"][:, None, :] + c["eqkp"][:, :, None]) / scale, 2))   # (q, p, t)
    value = torch.as_tensor(ops.ew(c["evou"][None, :, :] + c["pvou"][:, None, :]))                 # (p, t, x)
    eupu = torch.as_tensor(c["eupu"])
    k = n - 1
    n_free = min(2, k)
    rest = k - n_free
    grid_max = free_grid_max(d, n_free)
    correct = 0
    with intra_op_threads(n_threads), torch.no_grad():
        for q in range(d):
            s_q = score[q]                                                            # (n, d)
            s_all = torch.cat([s_q[:k].reshape(-1), s_q[k, q].reshape(1)])
            shift = s_all.max()
            ops.add(2 * n * d)
            if float(shift - s_all.min()) > 600.0:
                correct += _softmax_rows(score, value, eupu, q, d, n, ops)
                continue
            e = torch.exp(s_q - shift)
            b = e[:, :, None] * (value + eupu[q][None, None, :])                      # (n, d, x)
            ops.add(2 * n * d + 2 * b.numel())
            x_free = None
            for f in range(n_free):
                shape = [1] * n_free + [d]
                shape[f] = d
                bf = b[rest + f].reshape(shape)
                x_free = bf if x_free is None else x_free + bf
            ops.add((n_free - 1) * d ** n_free * d)
            for combo in itertools.product(range(d), repeat=rest):
                cvec = b[k, q].clone()
                for p, t in enumerate(combo):
                    cvec += b[p, t]
                pred = (x_free + cvec).argmax(dim=-1)
                target = torch.clamp(grid_max, min=max((q, *combo)))
                correct += int((pred == target).sum())
                ops.add(rest * d + d + 2 * pred.numel() * d + 2 * pred.numel())
    return Proof(strategy="brute_force", bound=correct / total, n_certified=correct, n_total=total, n_dropped=0,
                 n_failed=total - correct, flops_formula=_brute_force_flops(d, dm, dh, n),
                 flops_counted=float(ops.total), complexity="O(d_vocab^(n_ctx + 1))",
                 wall_time_s=_elapsed(t0), assumptions=_COMMON[:2] + (
                     "float64 arithmetic on the weights (the model's own float32 forward pass may differ "
                     "on near-ties)",), d_vocab=d, n_ctx=n, margin=0.0, certificate={})


def _softmax_rows(score, value, eupu, q, d, n, ops) -> int:
    """Correct sequences with query ``q``, by an explicit softmax (scores too spread for exp)."""
    import torch

    count = 0
    pos = torch.arange(n)
    rows = d ** (n - 1)
    powers = torch.tensor([d ** (n - 2 - p) for p in range(n - 1)], dtype=torch.long)
    for start in range(0, rows, 1 << 14):
        idx = torch.arange(start, min(start + (1 << 14), rows))
        keys = (idx[:, None] // powers[None, :]) % d
        tokens = torch.cat([keys, torch.full((keys.shape[0], 1), q)], dim=1)
        a = torch.softmax(score[q][pos[None, :], tokens], dim=-1)
        logits = eupu[q] + torch.einsum("bp,bpx->bx", a, value[pos[None, :], tokens])
        count += int((logits.argmax(dim=-1) == tokens.max(dim=1).values).sum())
        ops.add(tokens.shape[0] * (5 * n + 2 * n * d + 2 * d + n + 1))
    return count


# -- the cubic proof -----------------------------------------------------------------------------

def _cubic_flops(d, dm, dh, n) -> float:
    d3 = float(d) ** 3
    f = _circuit_flops(d, dm, dh, n)
    f += 2 * n * d * d + n * d * d                    # P*
    f += 4 * d3 + 2 * d3                              # V*, E*
    f += d3                                           # g table
    f += (n - 1) * (2 * 10 * d3 + 2 * d3)             # two rows per copy count, compare
    f += 8 * d3                                       # c = 0
    return f


def cubic_proof(model, *, margin: float = 1e-9, max_bytes: int = 4 << 30) -> Proof:
    """The cubic proof: one case per (query q, max m, non-max token k, copies c), positions pessimised.

    Steps (module docstring for the argument):

    1. ``P*[m, x] = max_p PVOU_c[p, x]``, ``V*[m, t] = max_{x≠m} (EVOU_c[t, x] + P*[m, x])`` and
       ``E*[m, q] = max_{x≠m} EUPU_c[q, x]`` (centred on column ``m``); ``g = E* + V*``.
    2. For every q <= m, k < m and c >= 1 copies of k among the n - 1 key positions (c <= n - 2
       when q ≠ m), the largest wrong logit minus the correct one is at most
       ``R = max over the two extreme rows of w_q g(q) + w_max g(m) + w_nonmax g(k)``, the weights
       the softmax of the query slot and the sorted key-position scores with the max token in the
       ``n - 1 - c`` lowest slots, or the highest. The case passes when ``R < -margin``.
    3. The all-``m`` sequences (c = 0) use their exact weights and the rows directly:
       ``max_{x≠m} EUPU_c[q, x] + P*[m, x] + w_max EVOU_c[m, x] + w_q EVOU_c[q, x]``.
    4. Counting (:func:`count_cubic`): ``C(n - 1, c) · t^c`` per (q, m, c), ``t`` the passing ``k``.

    Vectorised over (q, m, k); Python loops only over c and the two rows. Cost
    ``O(d_vocab^3 · n_ctx + d_vocab^2 · d_model)``.

    Parameters
    ----------
    model : AttentionOnlyTransformer
    margin : float, default 1e-9
        Required gap below zero for a case to pass.
    max_bytes : int, default 4 GiB
        Refuse (:class:`~topo_mi.errors.ResourceError`) when the (q, m, k) working arrays would
        exceed this, before allocating them.
    """
    t0 = time.perf_counter()
    w = check_proof_model(model)
    margin = _check_margin(margin)
    d, n, dm, dh = w["d_vocab"], w["n_ctx"], w["d_model"], w["d_head"]
    _check_memory("cubic proof", 10.0 * 8 * d ** 3 + d ** 3 * n, max_bytes)
    ops = Flops()
    C = _circuits(w, ops)
    eqke, eqkp, evou, pvou, eupu = C["eqke"], C["eqkp"], C["evou"], C["pvou"], C["eupu"]
    scale = math.sqrt(dh)
    ar = np.arange(d)
    # (1) largest wrong logit pieces
    pstar = ops.ew(pvou[:, None, :] - pvou[:, :, None]).max(axis=0)                 # (m, x)
    ops.add(n * d * d)
    evou_c = ops.ew(evou[None, :, :] - evou.T[:, :, None])                          # (m, t, x)
    tmp = ops.ew(evou_c + pstar[:, None, :])
    tmp[ar, :, ar] = -np.inf
    vstar = tmp.max(axis=2)                                                         # (m, t)
    ops.add(tmp.size)
    eupu_c = ops.ew(eupu[:, None, :] - eupu[:, :, None])                            # (q, m, x)
    tmp = eupu_c.copy()
    tmp[:, ar, ar] = -np.inf
    estar = tmp.max(axis=2)                                                         # (q, m)
    ops.add(tmp.size)
    g = ops.ew(estar[:, :, None] + vstar[None, :, :])                               # (q, m, t)
    g_q = g[ar, :, ar]                                                              # (q, m): g(q)
    g_m = g[:, ar, ar]                                                              # (q, m): g(m)
    # (2) attention extremes
    sq = ops.ew((eqke[ar, ar] + eqkp[:, n - 1]) / scale, 2)
    sk = ops.ew(eqke / scale)
    ps = np.sort(eqkp[:, :n - 1], axis=1) / scale
    ops.add(d * n * max(1, math.ceil(math.log2(n))))
    SM, SX, psmax = _slot_sums(ps, ops)
    shift = np.maximum(sq, sk.max(axis=1) + psmax)
    ops.add(2 * d * d)
    uq = ops.ew(np.exp(sq - shift), 2)                                              # (q,)
    ut = ops.ew(np.exp(sk + (psmax - shift)[:, None]), 2)                           # (q, t)
    valid = _valid(d, n)
    kk, mm = ar[None, None, :], ar[None, :, None]
    pass_k = np.zeros((d, d, d, n), bool)
    for c in range(1, n):
        R = None
        for row in (0, 1):
            uM = ut * SM[:, c, row][:, None]                                        # (q, m)
            uX = ut * SX[:, c, row][:, None]                                        # (q, k)
            num = (uq[:, None] * g_q + uM * g_m)[:, :, None] + uX[:, None, :] * g
            den = (uq[:, None] + uM)[:, :, None] + uX[:, None, :]
            r = num / den
            ops.add(2 * d * d + 3 * d * d + 2 * r.size + 2 * r.size + r.size + r.size)
            R = r if R is None else np.maximum(R, r)
        pass_k[:, :, :, c] = (R < -margin) & (kk < mm) & valid[:, :, c][:, :, None]
        ops.add(2 * R.size)
    # (3) all-m sequences: exact weights, rows directly
    SA = SM[:, 0, 0]                                                                # every key slot
    uM0 = ut * SA[:, None]                                                          # (q, m)
    wq0 = uq[:, None] / (uq[:, None] + uM0)
    wm0 = 1.0 - wq0
    b0 = (eupu_c + pstar[None, :, :] + wm0[:, :, None] * evou_c[ar, ar, :][None, :, :]
          + wq0[:, :, None] * evou_c.transpose(1, 0, 2))
    b0[:, ar, ar] = -np.inf
    pass_c0 = (b0.max(axis=2) < -margin) & valid[:, :, 0]
    ops.add(8 * b0.size)
    n_cert = count_cubic(pass_k, pass_c0, n)
    total = d ** n
    return Proof(strategy="cubic", bound=n_cert / total, n_certified=n_cert, n_total=total, n_dropped=0,
                 n_failed=total - n_cert, flops_formula=_cubic_flops(d, dm, dh, n), flops_counted=float(ops.total),
                 complexity="O(d_vocab^3 · n_ctx + d_vocab^2 · d_model)", wall_time_s=_elapsed(t0),
                 assumptions=_COMMON + (
                     f"margin {margin:g} on every certified case",
                     "a sequence is certified when every non-max token it holds passes its (q, m, k, c) case",
                     "key positions pessimised by the two extreme arrangements of max and non-max tokens"),
                 d_vocab=d, n_ctx=n, margin=margin, certificate={"pass_k": pass_k, "pass_c0": pass_c0})


# -- subcubic proofs -----------------------------------------------------------------------------

def _subcubic_flops(d, dm, dh, n, qk: str) -> float:
    d2 = float(d) ** 2
    f = _circuit_flops(d, dm, dh, n, exact_qk=(qk == "exact"))
    if qk != "exact":
        f += 2 * 2 * d * dh * dh + 2 * d * dh + 4 * d * dh + 3 * d2 + 4 * d2
        if qk == "rowdiff":
            f += 8 * d * dh
    f += 2 * d2                                       # prefix extremes of the key scores
    f += 2 * n * d + 10 * d2                          # P extremes, V* and E* by top-2, prefix max
    f += 6 * d2                                       # g(q), g(m), query and max scores
    n_cases = d * (d + 1) / 2 * (n - 1)               # (q, m, c) cases with c >= 1, roughly
    f += n_cases * (math.floor(math.log2(d)) + 1) * 40
    f += 20 * d2                                      # the all-m sequences
    return f


def _top2_excluding(A: np.ndarray, ops: Flops) -> np.ndarray:
    """``out[r, m] = max_{x ≠ m} A[r, x]`` for every row r and column m, in O(rows · cols)."""
    rows = np.arange(A.shape[0])
    i1 = A.argmax(axis=1)
    v1 = A[rows, i1]
    B = A.copy()
    B[rows, i1] = -np.inf
    v2 = B.max(axis=1)
    ops.add(2 * A.size)
    out = np.where(i1[:, None] == np.arange(A.shape[1])[None, :], v2[:, None], v1[:, None])
    ops.add(out.size)
    return out


def subcubic_proof(model, *, qk: str = "exact", margin: float = 1e-9, max_bytes: int = 4 << 30) -> Proof:
    """A subcubic proof: one case per (query q, max m, copies c) with a searched gap g.

    The case assumes every non-max token is at most ``j = m - g`` and pessimises over all of them
    at once: the non-max score is the running maximum (or minimum, by the sign of its value term)
    of the key score over tokens ``<= j`` and the value term the running maximum of ``V*``. The
    largest passing ``j`` is found by bisection (the bound grows with ``j``). Sequences with a
    non-max token in ``(j, m)`` are dropped and counted as such (:func:`count_gap`: ``j + 1``
    token choices per non-max position, ``counted + dropped + failed = d_vocab ** n_ctx``).

    The value bounds avoid the cubic ``V*``: ``Σ_i a_i PVOU_c[i, x] <= max_p PVOU[p, x] -
    min_p PVOU[p, m]`` and ``max_{x≠m}`` of a row is read from its two largest entries.

    Parameters
    ----------
    model : AttentionOnlyTransformer
    qk : {"exact", "svd", "rowdiff"}, default "exact"
        The key scores. ``"exact"``: EQKE computed (``d_vocab^2 · d_head``). ``"svd"`` and
        ``"rowdiff"``: never form EQKE (``d_vocab^2 · d_head``). With the factors
        ``EQ = (W_E + W_pos[-1]) W_Q`` and ``KE = (W_E + P̄) W_K`` and their rank-1 parts
        ``EQ1 = σ1 u1 v1ᵀ`` (the query direction) and ``KE1`` (the size direction),
        ``EQKE = EQ1 KEᵀ + EQres KE1ᵀ + EQres KEresᵀ``: the "size × query" term ``EQ1 KEᵀ``, its
        first correction (both rank 1, formed in ``O(d_vocab^2)``) and a residual whose within-row
        spread is bounded: ``"svd"`` by ``√2 σ2(EQ) σ2(KE)`` (an entry difference in a row is
        ``e_qᵀ R (e_k - e_k')`` and ``|e_k - e_k'| = √2``), ``"rowdiff"`` per row by
        ``Σ_l |EQres[q, l]| (max_k KEres[k, l] - min_k KEres[k, l])``. Softmax is invariant to a
        shift per query row, so each token's score lies in ``[lo[q, t], lo[q, t] + δ_q]`` up to
        that shift and is pessimised within it by the sign of its value term.
    margin : float, default 1e-9
    max_bytes : int, default 4 GiB
        Refuse (:class:`~topo_mi.errors.ResourceError`) larger working arrays, before allocating.
    """
    t0 = time.perf_counter()
    w = check_proof_model(model)
    qk = check_choice("qk", qk, ("exact", "svd", "rowdiff"))
    margin = _check_margin(margin)
    d, n, dm, dh = w["d_vocab"], w["n_ctx"], w["d_model"], w["d_head"]
    _check_memory("subcubic proof", 30.0 * 8 * d * d * n, max_bytes)
    ops = Flops()
    C = _circuits(w, ops, exact_qk=(qk == "exact"))
    eqkp, evou, pvou, eupu = C["eqkp"], C["evou"], C["pvou"], C["eupu"]
    scale = math.sqrt(dh)
    ar = np.arange(d)
    # key-score intervals, unscaled: lo[q, t] <= score (up to a per-row shift) <= hi[q, t]
    if qk == "exact":
        lo = hi = C["eqke"]
        xhi = np.maximum.accumulate(hi, axis=1)
        xlo = np.minimum.accumulate(lo, axis=1)
        ops.add(2 * d * d)
        name, complexity = "subcubic", "O(d_vocab^2 · (d_model + n_ctx · log d_vocab))"
        qk_note = "key scores EQKE computed exactly"
    else:
        EQ, KE = C["EQ"], C["KE"]
        U_, S_, Vt = ops.svd(EQ)
        Uk, Sk, Vkt = ops.svd(KE)
        a, v1 = S_[0] * U_[:, 0], Vt[0]                  # EQ1 = a v1ᵀ: the query direction
        bk, vk1 = Sk[0] * Uk[:, 0], Vkt[0]               # KE1 = bk vk1ᵀ: the size direction
        eq_res = ops.ew(EQ - np.outer(a, v1), 2)
        # EQKE = EQ1 KEᵀ + EQres KE1ᵀ + EQres KEresᵀ: two rank-1 terms, formed in O(d_vocab^2)
        lo = ops.ew(np.outer(a, ops.mm(KE, v1)) + np.outer(ops.mm(eq_res, vk1), bk), 3)
        if qk == "svd":
            s2 = S_[1] if S_.size > 1 else 0.0
            sk2 = Sk[1] if Sk.size > 1 else 0.0
            delta = np.full(d, math.sqrt(2.0) * s2 * sk2)
            ops.add(3)
            qk_note = ("EQKE = EQ1 KEᵀ + EQres KE1ᵀ (rank-1 query and key directions) + residual with row "
                       "spread <= √2 σ2(EQ) σ2(KE)")
        else:
            ke_res = ops.ew(KE - np.outer(bk, vk1), 2)
            rng = ke_res.max(axis=0) - ke_res.min(axis=0)
            ops.add(3 * ke_res.size)
            delta = ops.mm(np.abs(eq_res), rng)
            ops.add(eq_res.size)
            qk_note = ("EQKE = EQ1 KEᵀ + EQres KE1ᵀ (rank-1 query and key directions) + residual with row "
                       "spread <= Σ_l |EQres[q, l]| range_k KEres[k, l]")
        hi = ops.ew(lo + delta[:, None])
        xhi = ops.ew(np.maximum.accumulate(lo, axis=1) + delta[:, None], 2)
        xlo = ops.ew(np.minimum.accumulate(lo, axis=1))
        name = f"subcubic_rank1_{qk}"
        complexity = "O(d_vocab^2 · (d_model + n_ctx · log d_vocab) + d_vocab · d_model^2)"
    # value bounds in O(d^2)
    pmax, pmin = pvou.max(axis=0), pvou.min(axis=0)
    ops.add(2 * pvou.size)
    Wv = ops.ew(evou + pmax[None, :])
    vs = ops.ew(_top2_excluding(Wv, ops).T - evou.T - pmin[:, None], 2)              # (m, t)
    es = ops.ew(_top2_excluding(eupu, ops) - eupu)                                     # (q, m)
    vpre = np.maximum.accumulate(vs, axis=1)                                           # (m, j)
    ops.add(vs.size)
    g_q = ops.ew(es + vs.T)                                                            # (q, m)
    g_m = ops.ew(es + vs[ar, ar][None, :])
    # scores pessimised by the sign of their value term
    sq = np.where(g_q > 0, hi[ar, ar][:, None], lo[ar, ar][:, None]) + eqkp[:, n - 1][:, None]
    sm = np.where(g_m > 0, hi, lo)
    ops.add(4 * d * d)
    ps = np.sort(eqkp[:, :n - 1], axis=1)
    ops.add(d * n * max(1, math.ceil(math.log2(n))))
    SM, SX, psmax = _slot_sums(ps / scale, ops)
    shift = np.maximum(sq.max(axis=1), hi.max(axis=1) + eqkp[:, :n - 1].max(axis=1))   # unscaled
    ops.add(3 * d * d)
    uq = ops.ew(np.exp((sq - shift[:, None]) / scale), 3)                               # (q, m)
    um = ops.ew(np.exp((sm - shift[:, None]) / scale + psmax[:, None]), 3)              # (q, m)
    valid = _valid(d, n)
    # all-m sequences: every key slot holds m
    num0 = uq * g_q + um * SM[:, 0, 0][:, None] * g_m
    den0 = uq + um * SM[:, 0, 0][:, None]
    pass_c0 = (num0 / den0 < -margin) & valid[:, :, 0]
    ops.add(8 * d * d)

    def bound(Q, M, Cc, J):
        gx = es[Q, M] + vpre[M, J]
        sx = np.where(gx > 0, xhi[Q, J], xlo[Q, J])
        ux = np.exp((sx - shift[Q]) / scale + psmax[Q])
        r = None
        for row in (0, 1):
            uM = um[Q, M] * SM[Q, Cc, row]
            uX = ux * SX[Q, Cc, row]
            rr = (uq[Q, M] * g_q[Q, M] + uM * g_m[Q, M] + uX * gx) / (uq[Q, M] + uM + uX)
            r = rr if r is None else np.maximum(r, rr)
        ops.add(40 * Q.size)
        return r

    Q, M, Cc = np.nonzero(valid & (np.arange(n)[None, None, :] >= 1))
    lo_j = np.full(Q.size, -1)
    hi_j = M.copy()                      # j = m would not be a non-max token: an exclusive end
    while True:
        active = hi_j - lo_j > 1
        if not active.any():
            break
        ia = np.nonzero(active)[0]
        mid = (lo_j[ia] + hi_j[ia]) // 2
        ok = bound(Q[ia], M[ia], Cc[ia], mid) < -margin
        lo_j[ia[ok]] = mid[ok]
        hi_j[ia[~ok]] = mid[~ok]
    j_max = np.full((d, d, n), -1, np.int64)
    j_max[Q, M, Cc] = lo_j
    counted, dropped, failed = count_gap(j_max, pass_c0, n)
    total = d ** n
    return Proof(strategy=name, bound=counted / total, n_certified=counted, n_total=total, n_dropped=dropped,
                 n_failed=failed, flops_formula=_subcubic_flops(d, dm, dh, n, qk), flops_counted=float(ops.total),
                 complexity=complexity, wall_time_s=_elapsed(t0),
                 assumptions=_COMMON + (
                     f"margin {margin:g} on every certified case", qk_note,
                     "a (q, m, c) case certifies the sequences whose non-max tokens are all <= m - g for its "
                     "searched gap g; the others are dropped",
                     "value terms bounded with max_p PVOU[p, x] - min_p PVOU[p, m]",
                     "key positions pessimised by the two extreme arrangements of max and non-max tokens"),
                 d_vocab=d, n_ctx=n, margin=margin, certificate={"j_max": j_max, "pass_c0": pass_c0})


def prove(model, strategy: str = "cubic", **kwargs) -> Proof:
    """Run one proof strategy by name (:data:`STRATEGIES`)."""
    strategy = check_choice("strategy", strategy, STRATEGIES)
    if strategy == "brute_force":
        return brute_force_proof(model, **kwargs)
    if strategy == "cubic":
        return cubic_proof(model, **kwargs)
    qk = {"subcubic": "exact", "subcubic_rank1_svd": "svd", "subcubic_rank1_rowdiff": "rowdiff"}[strategy]
    return subcubic_proof(model, qk=qk, **kwargs)


def certified_sequences(proof: Proof, tokens) -> np.ndarray:
    """Which of ``tokens`` (int array (N, n_ctx)) the cubic or subcubic ``proof`` certifies correct."""
    if not isinstance(proof, Proof):
        fail("proof", "a Proof", proof)
    if proof.strategy == "brute_force":
        fail("proof", "a cubic or subcubic proof (brute force keeps no per-case certificate)",
             "strategy 'brute_force'", raw=True)
    t = np.asarray(tokens)
    d, n = proof.d_vocab, proof.n_ctx
    if t.dtype.kind not in "iu" or t.ndim != 2 or t.shape[1] != n:
        fail("tokens", f"an integer array of shape (N, {n})", f"{t.dtype} array of shape {t.shape}", raw=True)
    if t.size and (t.min() < 0 or t.max() >= d):
        fail("tokens", f"token ids in [0, {d})", f"range [{t.min()}, {t.max()}]", raw=True)
    t = t.astype(np.int64)
    q, m, pre = t[:, -1], t.max(axis=1), t[:, :-1]
    nonmax = pre < m[:, None]
    c = nonmax.sum(axis=1)
    cert = proof.certificate
    c0 = cert["pass_c0"][q, m]
    if proof.strategy == "cubic":
        ok_pos = cert["pass_k"][q[:, None], m[:, None], pre, c[:, None]] | ~nonmax
        ok = ok_pos.all(axis=1)
    else:
        jm = cert["j_max"][q, m, c]
        ok = (jm >= 0) & ((pre <= jm[:, None]) | ~nonmax).all(axis=1)
    return np.where(c == 0, c0, ok)


__all__ = ["Proof", "STRATEGIES", "brute_force_proof", "cubic_proof", "subcubic_proof", "prove",
           "certified_sequences", "count_cubic", "count_gap"]
