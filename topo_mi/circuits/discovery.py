"""Learned sparse circuits: hard-concrete L0 masks over edges or nodes, and how faithful they are.

The framework's subnetwork mask ``min_M ‖N(x) − M ⊙ A(x)‖ + λ‖M‖₀``: every unit (an edge — one
weight entry — or a node) gets a gate ``z ∈ [0, 1]`` drawn from the hard-concrete distribution of
Louizos, Welling & Kingma, "Learning sparse neural networks through L0 regularization" (ICLR
2018), whose expected L0 norm is differentiable in the gates' ``log α``. A closed gate replaces
the unit's input with its *ablated* value — zero, the mean over the data, or the value on another
input (resample ablation) — so the loss measures what the rest of the network loses without it.

The circuit (gates with ``log α > 0``, i.e. deterministic gate ``> 0.5``) is scored with a metric;
α-compressibility = circuit score / full score. The faithfulness curve compares, at each size,
the mask's own ranking (by ``log α``) with magnitude pruning and with first-order activation
patching (attribution patching: Nanda, "Attribution patching", 2023; Syed, Rager & Conmy,
"Attribution patching outperforms automated circuit discovery", 2023).
"""
from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np

from topo_mi._validation import check_choice, check_float, check_int, fail
from topo_mi.circuits import _stack
from topo_mi.circuits._threads import intra_op_threads
from topo_mi.circuits.graph import as_input_tensor, split_data, stack_graph
from topo_mi.circuits.result import CircuitResult
from topo_mi.errors import InvalidParameterError, NonFiniteError

# Hard-concrete stretch interval and temperature (Louizos et al. 2018, section 4).
GAMMA, ZETA, BETA = -0.1, 1.1, 2.0 / 3.0
METRICS = ("r2", "accuracy", "neg_mse")
OBJECTIVES = ("auto", "mse", "kl", "metric")


# -- metrics -----------------------------------------------------------------------------------

def _metric_fn(metric) -> tuple[Callable, str]:
    import torch

    if callable(metric):
        return metric, getattr(metric, "__name__", "custom")
    check_choice("metric", metric, METRICS)
    if metric == "r2":
        def r2(out, target):
            t = target.reshape(out.shape).to(out.dtype)
            sse = ((out - t) ** 2).sum()
            sst = ((t - t.mean(dim=0, keepdim=True)) ** 2).sum()
            return 1.0 - sse / sst.clamp_min(torch.finfo(out.dtype).tiny)
        return r2, "r2"
    if metric == "neg_mse":
        def neg_mse(out, target):
            return -((out - target.reshape(out.shape).to(out.dtype)) ** 2).mean()
        return neg_mse, "neg_mse"

    def accuracy(out, target):
        labels = target.argmax(dim=-1) if target.is_floating_point() and target.ndim == 2 else target.long()
        return (out.argmax(dim=-1) == labels.reshape(-1)).to(out.dtype).mean()
    return accuracy, "accuracy"


def _as_scalar(value, what: str = "metric") -> float:
    import torch

    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            fail(what, "a function returning a scalar (a number or a one-element tensor)",
                 f"an output of shape {tuple(value.shape)}", raw=True)
        value = float(value.detach().reshape(()))
    elif isinstance(value, np.ndarray):
        if value.size != 1:
            fail(what, "a function returning a scalar (a number or a one-element tensor)",
                 f"an output of shape {value.shape}", raw=True)
        value = float(value.reshape(()))
    else:
        try:
            value = float(value)
        except (TypeError, ValueError):
            fail(what, "a function returning a scalar (a number or a one-element tensor)", value)
    if not math.isfinite(value):
        raise NonFiniteError(f"{what}: expected a finite score, got {value}")
    return value


# -- hard-concrete gates ----------------------------------------------------------------------------

def hard_concrete_sample(log_alpha, generator):
    """A differentiable sample of hard-concrete gates in [0, 1] (Louizos et al. 2018, eq. 10)."""
    import torch

    u = torch.rand(log_alpha.shape, generator=generator, dtype=log_alpha.dtype).clamp(1e-6, 1 - 1e-6)
    s = torch.sigmoid((torch.log(u) - torch.log1p(-u) + log_alpha) / BETA)
    return (s * (ZETA - GAMMA) + GAMMA).clamp(0.0, 1.0)


def hard_concrete_open_probability(log_alpha):
    """``P(z > 0)``: the expected L0 norm per gate (Louizos et al. 2018, eq. 12)."""
    import torch

    return torch.sigmoid(log_alpha - BETA * math.log(-GAMMA / ZETA))


# -- the masked network --------------------------------------------------------------------------

class _Masked:
    """A stack whose units in the window carry gates; forward with gates and ablated values."""

    def __init__(self, stack: _stack.Stack, idx: list[int], granularity: str, dtype):
        import torch

        self.stack, self.granularity, self.dtype = stack, granularity, dtype
        window = set(idx)
        self.W, self.b = stack.tensors(dtype)
        self.gated_maps = [mi for mi, m in enumerate(stack.maps) if m.src in window and m.dst in window]
        self.supports = {mi: torch.as_tensor(stack.maps[mi].support) for mi in self.gated_maps}
        self.gated_layers = [l for l in idx if stack.layers[l].kind != "output"]
        if granularity == "edges":
            self.shapes = {mi: tuple(stack.maps[mi].weight.shape) for mi in self.gated_maps}
        else:
            self.shapes = {l: (stack.layers[l].dim,) for l in self.gated_layers}
        self.keys = list(self.shapes)

    def new_logits(self, init: float):
        import torch

        return {k: torch.full(self.shapes[k], float(init), dtype=self.dtype, requires_grad=True)
                for k in self.keys}

    def flat(self, per_key: dict) -> "Any":
        """Concatenate per-key tensors over the gated units (support entries for edges)."""
        import torch

        parts = []
        for k in self.keys:
            t = per_key[k]
            parts.append(t[self.supports[k]] if self.granularity == "edges" else t)
        return torch.cat(parts) if parts else torch.zeros(0, dtype=self.dtype)

    def unflat(self, vec) -> dict:
        import torch

        out, pos = {}, 0
        for k in self.keys:
            if self.granularity == "edges":
                sup = self.supports[k]
                n = int(sup.sum())
                t = torch.zeros(self.shapes[k], dtype=vec.dtype)
                t[sup] = vec[pos:pos + n]
            else:
                n = self.shapes[k][0]
                t = vec[pos:pos + n]
            out[k] = t
            pos += n
        return out

    def forward(self, x, z: dict | None, abl: list | None):
        """Masked forward; ``abl`` holds per-layer ablation values (None: zero ablation)."""
        stack = self.stack
        values = [x]
        if z is not None and self.granularity == "nodes" and 0 in z:
            values[0] = self._mix(x, z[0], None if abl is None else abl[0])
        for li in range(1, len(stack.layers)):
            pre = None
            for mi, m in enumerate(stack.maps):
                if m.dst != li:
                    continue
                W = self.W[mi]
                if z is not None and self.granularity == "edges" and mi in z:
                    zm = z[mi]
                    term = values[m.src] @ (zm * W).T
                    if abl is not None:
                        term = term + abl[m.src] @ ((1.0 - zm) * W).T
                else:
                    term = values[m.src] @ W.T
                pre = term if pre is None else pre + term
            if self.b[li] is not None:
                pre = pre + self.b[li]
            v = _stack.apply_act(stack.layers[li], pre)
            if z is not None and self.granularity == "nodes" and li in z:
                v = self._mix(v, z[li], None if abl is None else abl[li])
            values.append(v)
        return values[-1]

    @staticmethod
    def _mix(v, zl, ab):
        return v * zl if ab is None else v * zl + ab * (1.0 - zl)


# -- rankings --------------------------------------------------------------------------------------

def _magnitude_scores(masked: _Masked) -> np.ndarray:
    stack = masked.stack
    if masked.granularity == "edges":
        return np.concatenate([np.abs(stack.maps[mi].weight[stack.maps[mi].support])
                               for mi in masked.gated_maps]) if masked.gated_maps else np.zeros(0)
    parts = []
    for l in masked.gated_layers:
        d = stack.layers[l].dim
        sin = np.zeros(d)
        sout = np.zeros(d)
        for m in stack.maps:
            if m.dst == l:
                sin += (m.weight ** 2).sum(axis=1)
            if m.src == l:
                sout += (m.weight ** 2).sum(axis=0)
        parts.append(np.sqrt(sout) * (np.sqrt(sin) if l > 0 else 1.0))
    return np.concatenate(parts) if parts else np.zeros(0)


def _patching_scores(masked: _Masked, x, abl_for) -> np.ndarray:
    """First-order E_x ‖Δ output‖² when one unit alone is ablated (attribution patching)."""
    import torch

    stack = masked.stack
    xg = x.detach().clone().requires_grad_(True)
    values, pres = stack.forward(xg, return_pre=True)
    out = values[-1]
    n_out = out.shape[1]
    pres[0] = xg
    gsq_pre = [torch.zeros_like(p) for p in pres]
    gsq_val = [torch.zeros_like(v) for v in values]
    want_pre = masked.granularity == "edges"
    targets = pres if want_pre else values
    # Only layers that matter need gradients.
    if want_pre:
        layers = sorted({stack.maps[mi].dst for mi in masked.gated_maps})
    else:
        layers = list(masked.gated_layers)
    inputs = [targets[l] for l in layers]
    for o in range(n_out):
        grads = torch.autograd.grad(out[:, o].sum(), inputs, retain_graph=o < n_out - 1, allow_unused=True)
        for l, g in zip(layers, grads):
            if g is not None:
                (gsq_pre if want_pre else gsq_val)[l] += g.detach() ** 2
    abl = abl_for(x)
    with torch.no_grad():
        vals = [v.detach() for v in values]
        if want_pre:
            parts = []
            for mi in masked.gated_maps:
                m = stack.maps[mi]
                ref = torch.zeros_like(vals[m.src]) if abl is None else abl[m.src].expand_as(vals[m.src])
                dh2 = (vals[m.src] - ref) ** 2                            # (n, d_src)
                s = (gsq_pre[m.dst].T @ dh2) * masked.W[mi] ** 2          # (d_dst, d_src)
                parts.append(s[masked.supports[mi]].numpy() / x.shape[0])
            return np.concatenate(parts) if parts else np.zeros(0)
        parts = []
        for l in masked.gated_layers:
            ref = torch.zeros_like(vals[l]) if abl is None else abl[l].expand_as(vals[l])
            parts.append(((gsq_val[l] * (vals[l] - ref) ** 2).sum(dim=0) / x.shape[0]).numpy())
        return np.concatenate(parts) if parts else np.zeros(0)


def _rank_mask(scores: np.ndarray, size: int) -> np.ndarray:
    keep = np.zeros(scores.size, bool)
    if size > 0:
        order = np.argsort(-scores, kind="stable")
        keep[order[:size]] = True
    return keep


def _curve_sizes(n: int, n_kept: int, points: int) -> np.ndarray:
    if n == 0:
        return np.zeros(0, np.int64)
    grid = np.unique(np.round(np.geomspace(1, n, max(points, 2))).astype(np.int64))
    return np.unique(np.concatenate([grid, [max(n_kept, 0)], [0]])).astype(np.int64)


# -- the public function ---------------------------------------------------------------------------

def find_circuit(model, data, *, metric: Any = "r2", granularity: str = "edges", ablation: str = "zero",
                 l0: float = 0.5, steps: int = 1000, lr: float = 0.1, batch_size: int | None = None,
                 objective: str = "auto", layers=None, init: float = 3.0, curve_points: int = 12,
                 patching_samples: int = 2048, seed: int = 0, dtype: str = "float32",
                 n_threads: int | str | None = "auto", progress: bool = False) -> CircuitResult:
    r"""Learn a sparse circuit with hard-concrete L0 gates (Louizos et al. 2018) and score it.

    Parameters
    ----------
    model : torch.nn.Module
        An MLP / ``nn.Sequential`` of linear layers and elementwise activations, or a residual MLP
        stack (see :func:`build_graph`).
    data : array of shape (n_samples, in_dim), or a tuple (x, y)
        Inputs, and optionally targets for the metric (labels for ``"accuracy"``, values for
        ``"r2"``). Without ``y`` the target is the full model's own output, so the metric measures
        faithfulness to the model.
    metric : {"r2", "accuracy", "neg_mse"} or callable, default "r2"
        ``metric(output, target) -> scalar`` (higher is better); a callable returning anything but
        a scalar raises :class:`~topo_mi.errors.InvalidParameterError`.
    granularity : {"edges", "nodes"}, default "edges"
        Gate every weight entry (edge) of the maps between the chosen layers, or every unit of
        the non-output layers (input features included).
    ablation : {"zero", "mean", "resample"}, default "zero"
        What a closed gate substitutes: zero, the unit's mean over ``data`` (of the full model), or
        its value on another input drawn from ``data`` (resample ablation).
    l0 : float, default 0.5
        λ, multiplying the expected *fraction* of units kept.
    steps : int, default 1000
        Adam steps on the gates' ``log α``.
    lr : float, default 0.1
    batch_size : int, optional
        Minibatch size per step (default: all of ``data`` up to 4096 samples, else 1024).
    objective : {"auto", "mse", "kl", "metric"}, default "auto"
        The faithfulness loss: ``"mse"`` — mean squared difference from the full model's output
        divided by the output variance; ``"kl"`` — KL(full ‖ circuit) of the softmax outputs;
        ``"metric"`` — minus the (differentiable) metric. ``"auto"``: ``"kl"`` with
        ``metric="accuracy"``, else ``"mse"``.
    layers : list of str, optional
        Consecutive layers whose units are gated (default all); others stay intact.
    init : float, default 3.0
        Initial ``log α`` (gates start open).
    curve_points : int, default 12
        Sizes of the faithfulness curve (log-spaced, plus the learned circuit's size).
    patching_samples : int, default 2048
        Samples used for the activation-patching ranking.
    seed : int, default 0
        Seeds the gate noise, minibatches and resample permutations (a local torch.Generator).
    dtype : {"float32", "float64"}, default "float32"
    n_threads : int, "auto" or None, default "auto"
        Torch intra-op threads while the gates train (restored afterwards). ``"auto"`` uses one
        thread when every weight matrix is small (under 65,536 entries), where thread start-up
        costs more than it saves, and leaves torch's setting otherwise; ``None`` never changes it.
    progress : bool, default False
        Show a progress bar.

    Returns
    -------
    CircuitResult
        Kept units, circuit / full score, α-compressibility, the faithfulness curve, and the
        network's graph (neuron basis) with attributions from ``data``.
    """
    import torch

    granularity = check_choice("granularity", granularity, ("edges", "nodes"))
    ablation = check_choice("ablation", ablation, ("zero", "mean", "resample"))
    objective = check_choice("objective", objective, OBJECTIVES)
    l0 = check_float("l0", l0, min_value=0.0)
    steps = check_int("steps", steps, min_value=1)  # 0 steps would return the initial (all-kept) mask
    lr = check_float("lr", lr, min_value=0.0, min_inclusive=False)
    init = check_float("init", init)
    curve_points = check_int("curve_points", curve_points, min_value=2)
    patching_samples = check_int("patching_samples", patching_samples, min_value=1)
    seed = check_int("seed", seed, min_value=0)
    check_choice("dtype", dtype, ("float32", "float64"))
    tdtype = torch.float32 if dtype == "float32" else torch.float64
    if n_threads is not None and n_threads != "auto":
        n_threads = check_int("n_threads", n_threads, min_value=1)
    metric_fn, metric_name = _metric_fn(metric)
    if _stack.is_transformer(model):
        raise _stack.unsupported("the attention-only transformer: find_circuit masks MLPs and residual MLP "
                                 "stacks; analyse the transformer with build_graph / attention_circuits")
    stack = _stack.extract(model)
    if n_threads == "auto":
        n_threads = 1 if max(m.weight.size for m in stack.maps) < 65536 else None
    with intra_op_threads(n_threads):
        return _find(model, stack, layers, data, metric_fn, metric_name, granularity, ablation, objective, l0,
                     steps, lr, batch_size, init, curve_points, patching_samples, seed, dtype, tdtype, progress)


def _find(model, stack, layers, data, metric_fn, metric_name, granularity, ablation, objective, l0, steps, lr,
          batch_size, init, curve_points, patching_samples, seed, dtype, tdtype, progress) -> CircuitResult:
    import torch

    idx = _stack.window(stack, layers)
    x_raw, y_raw = split_data(data)
    x64 = as_input_tensor(x_raw, stack.layers[0].dim)
    n = x64.shape[0]
    if n < 2:
        fail("data", "at least 2 samples", n)
    _stack.check_matches_model(stack, model, x64)
    if batch_size is None:
        batch_size = n if n <= 4096 else 1024
    batch_size = check_int("batch_size", batch_size, min_value=1)
    x = x64.to(tdtype)

    with torch.no_grad():
        clean = [v.detach() for v in stack.forward(x)]
    full_out = clean[-1]
    if y_raw is None:
        target = full_out
    else:
        target = torch.as_tensor(np.asarray(y_raw.detach().cpu() if hasattr(y_raw, "detach") else y_raw))
        if target.shape[0] != n:
            fail("data", f"targets y with {n} rows (one per input)", f"shape {tuple(target.shape)}", raw=True)
        if target.is_floating_point():
            target = target.to(tdtype)
        elif metric_name in ("r2", "neg_mse") and target.ndim == 1 and full_out.ndim == 2 and full_out.shape[1] > 1:
            fail("metric", f"metric='accuracy' for integer class labels y with a {full_out.shape[1]}-output model "
                 f"({metric_name!r} compares the outputs with y as values)", metric_name)
    try:
        full_score = _as_scalar(metric_fn(full_out, target))
    except InvalidParameterError:
        raise
    except Exception as exc:
        raise InvalidParameterError(f"metric: expected a function metric(output, target) -> scalar; calling it "
                                    f"on the full model's output failed: {exc}") from exc
    if objective == "auto":
        objective = "kl" if metric_name == "accuracy" else "mse"

    masked = _Masked(stack, idx, granularity, tdtype)
    g = torch.Generator().manual_seed(seed)
    mean_vals = [v.mean(dim=0, keepdim=True) for v in clean]
    eval_perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed + 1))

    def abl_values(rows, perm_rows=None):
        if ablation == "zero":
            return None
        if ablation == "mean":
            return mean_vals
        return [v[perm_rows] for v in clean]

    out_var = full_out.var(unbiased=False).clamp_min(1e-12)

    def faith_loss(out, rows):
        ref = full_out[rows]
        if objective == "mse":
            return ((out - ref) ** 2).mean() / out_var
        if objective == "kl":
            p = torch.log_softmax(ref, dim=-1)
            q = torch.log_softmax(out, dim=-1)
            return (p.exp() * (p - q)).sum(dim=-1).mean()
        return -metric_fn(out, target[rows])

    logits = masked.new_logits(init)
    opt = torch.optim.Adam(list(logits.values()), lr=lr)
    n_units = int(sum(int(masked.supports[k].sum()) if granularity == "edges" else masked.shapes[k][0]
                      for k in masked.keys))
    loss_hist = np.zeros(steps)
    size_hist = np.zeros(steps)
    it = range(steps)
    if progress:
        from tqdm.auto import tqdm

        it = tqdm(it, desc="find_circuit", leave=False)
    for step in it:
        if batch_size >= n:
            rows = torch.arange(n)
        else:
            rows = torch.randint(0, n, (batch_size,), generator=g)
        perm_rows = rows[torch.randperm(rows.numel(), generator=g)] if ablation == "resample" else None
        z = {k: hard_concrete_sample(v, g) for k, v in logits.items()}
        out = masked.forward(x[rows], z, abl_values(rows, perm_rows))
        faith = faith_loss(out, rows)
        p_open = masked.flat({k: hard_concrete_open_probability(v) for k, v in logits.items()})
        expected = p_open.sum()
        loss = faith + l0 * expected / max(n_units, 1)
        if not torch.isfinite(loss):
            raise NonFiniteError(f"find_circuit: the loss became {float(loss)} at step {step} "
                                 "(lower lr or check the metric)")
        opt.zero_grad()
        loss.backward()
        opt.step()
        loss_hist[step] = float(loss.detach())
        size_hist[step] = float(expected.detach())

    with torch.no_grad():
        la = masked.flat({k: v.detach() for k, v in logits.items()})
    gate_logits = la.numpy().astype(np.float64)
    kept = gate_logits > 0

    eval_abl = abl_values(None, eval_perm)

    def score_of(keep: np.ndarray) -> float:
        zvec = torch.as_tensor(keep, dtype=tdtype)
        zd = masked.unflat(zvec)
        with torch.no_grad():
            outs = []
            for s in range(0, n, 8192):
                rows = torch.arange(s, min(s + 8192, n))
                ab = None if eval_abl is None else (eval_abl if ablation == "mean" else [v[rows] for v in eval_abl])
                outs.append(masked.forward(x[rows], zd, ab))
            return _as_scalar(metric_fn(torch.cat(outs), target))

    circuit_score = score_of(kept)
    mag = _magnitude_scores(masked)
    sub = torch.randperm(n, generator=g)[:min(patching_samples, n)]

    def abl_for(_x):
        if ablation == "zero":
            return None
        if ablation == "mean":
            return mean_vals
        return [v[eval_perm[sub]] for v in clean]

    patch = _patching_scores(masked, x[sub], abl_for)
    n_kept = int(kept.sum())
    sizes = _curve_sizes(n_units, n_kept, curve_points)
    rankings = {"mask": gate_logits, "magnitude": mag, "patching": patch}
    curves = {name: np.array([score_of(_rank_mask(sc, int(s))) for s in sizes]) for name, sc in rankings.items()}
    at = int(np.searchsorted(sizes, n_kept))
    mag_score = float(curves["magnitude"][at])
    patch_score = float(curves["patching"][at])
    alpha = circuit_score / full_score if full_score > 0 else float("nan")

    gd = stack_graph(stack, idx=idx, x=x64, dense=True, max_edges=1 << 62)
    if granularity == "edges":
        unit_gated = np.ones(gd.edge_src.size, bool)
        full_logits, full_kept = gate_logits, kept
        full_mag, full_patch = mag, patch
    else:
        unit_gated = np.zeros(int(gd.layer_sizes.sum()), bool)
        offsets = np.concatenate([[0], np.cumsum(gd.layer_sizes)])
        local = {li: k for k, li in enumerate(idx)}
        for l in masked.gated_layers:
            unit_gated[offsets[local[l]]:offsets[local[l] + 1]] = True
        full_logits = np.full(unit_gated.size, np.nan)
        full_logits[unit_gated] = gate_logits
        full_kept = np.ones(unit_gated.size, bool)
        full_kept[unit_gated] = kept
        full_mag = np.full(unit_gated.size, np.nan)
        full_mag[unit_gated] = mag
        full_patch = np.full(unit_gated.size, np.nan)
        full_patch[unit_gated] = patch
    params = dict(l0=l0, steps=steps, lr=lr, batch_size=batch_size, init=init, seed=seed, dtype=dtype,
                  n_samples=int(n), layers=[stack.names[i] for i in idx])
    return CircuitResult.from_graph_data(
        gd, granularity=granularity, ablation=ablation, metric=metric_name, objective=objective,
        unit_gated=unit_gated, gate_logits=full_logits, kept=full_kept,
        unit_scores={"magnitude": full_mag, "patching": full_patch}, full_score=float(full_score),
        circuit_score=float(circuit_score), alpha=float(alpha), magnitude_score=mag_score,
        patching_score=patch_score, curve_sizes=sizes, curve_scores=curves, loss_history=loss_hist,
        size_history=size_hist, params=params)


__all__ = ["find_circuit", "hard_concrete_sample", "hard_concrete_open_probability", "METRICS"]
