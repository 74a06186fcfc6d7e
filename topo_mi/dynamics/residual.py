r"""Residual stacks as discretised ODEs: how well ``h_{t+1} = h_t + dt sigma(W h_t + b)`` holds.

A residual block ``h -> h + dt f_t(h)`` is one explicit Euler step of ``dh/dt = f_t(h)`` (Chen,
Rubanova, Bettencourt & Duvenaud, "Neural ordinary differential equations", NeurIPS 2018; Haber &
Ruthotto, "Stable architectures for deep neural networks", Inverse Problems 34, 2018). Two
questions, answered per block and per input:

1. Is the block of the form ``h + dt sigma(W h + b)``? (``euler_error``: with the block's own
   ``linear``/``act``/``dt`` when it has them, else with ``W, b`` fitted by least squares.)
2. Is the step a faithful discretisation of the continuous flow of that vector field?
   (``flow_error``: distance to the exact flow over ``dt``, integrated with substeps of RK4;
   ``O(dt ||J||)`` for a smooth field, large when one step jumps far.)

Plus the relative size of each update and how much ``W`` changes from block to block (a
continuous-time limit needs slowly varying weights).
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from topo_mi._validation import check_choice, check_float, check_int, fail
from topo_mi.dynamics._common import as_state, module_dtype
from topo_mi.dynamics._results import ResidualFitResult

FIT_ACTIVATIONS = ("identity", "tanh")


def _blocks_of(block: Any) -> tuple[list, Any]:
    """``(blocks, embed)``: a residual model (``embed`` + ``blocks``), a list of blocks or one block."""
    if isinstance(getattr(block, "blocks", None), (nn.ModuleList, nn.Sequential)) \
            and callable(getattr(block, "embed", None)):
        return list(block.blocks), block.embed
    if isinstance(block, (nn.ModuleList, list, tuple)) or (isinstance(block, nn.Sequential)):
        blocks = list(block)
        if not blocks or not all(callable(b) for b in blocks):
            fail("block", "a non-empty sequence of callable blocks", block)
        return blocks, None
    if callable(block):
        return [block], None
    fail("block", "a residual block, a list of blocks, or a model with embed and blocks", block)


def _act_name(act) -> str:
    return type(act).__name__ if isinstance(act, nn.Module) else getattr(act, "__name__", repr(act))


def _rk4_flow(f, h, dt: float, n_sub: int):
    s = dt / n_sub
    for _ in range(n_sub):
        k1 = f(h)
        k2 = f(h + 0.5 * s * k1)
        k3 = f(h + 0.5 * s * k2)
        k4 = f(h + s * k3)
        h = h + (s / 6.0) * (k1 + 2 * k2 + 2 * k3 + k4)
    return h


def residual_ode_fit(block: Any, inputs: Any, *, dt: float | None = None, activation: str = "tanh",
                     n_substeps: int = 16) -> ResidualFitResult:
    r"""How well a residual stack follows ``h_{t+1} = h_t + dt sigma(W h_t + b)``, block by block.

    Parameters
    ----------
    block : module, callable or sequence of them
        A residual model with ``embed`` and ``blocks`` (``topo_mi.models.ResidualMLP``: the
        inputs go through ``embed`` first), a ``ModuleList``/list of blocks, or one block. Blocks
        with attributes ``linear`` (an ``nn.Linear``), ``act`` and ``dt`` (the
        ``topo_mi.models.ResidualBlock`` contract) are checked against their own weights;
        others against ``W, b`` fitted by least squares.
    inputs : tensor or array of shape (n_inputs, ...)
        Model inputs (with ``embed``) or the first block's input states ``(n_inputs, d)``.
    dt : float, optional
        Step size; default: each block's ``dt`` attribute, else 1.
    activation : {"tanh", "identity"}, default "tanh"
        ``sigma`` for blocks without ``linear``/``act``: the fit solves
        ``sigma^{-1}((h_{t+1} - h_t) / dt) ~ W h_t + b`` (for tanh, updates with ``|.| >= 1`` are
        clipped to just inside, and such a block is far from the form anyway).
    n_substeps : int, default 16
        RK4 substeps for the exact flow over ``dt``.

    Returns
    -------
    ResidualFitResult
        ``euler_error``, ``flow_error``, ``relative_update`` (n_inputs, L), ``weight_change``.

    Notes
    -----
    A fitted ``W`` has ``d^2 + d`` unknowns: with fewer than ``d + 1`` inputs the fit interpolates
    and its ``euler_error`` is meaningless (the result still reports it).
    """
    blocks, embed = _blocks_of(block)
    check_choice("activation", activation, FIT_ACTIVATIONS)
    n_substeps = check_int("n_substeps", n_substeps, min_value=1)
    if dt is not None:
        dt = check_float("dt", dt, min_value=0.0, min_inclusive=False)
    dtype = module_dtype(embed, blocks)
    h = as_state(inputs, "inputs", dtype=dtype)
    names, euler, flow, upd, dts, sources, acts, Ws = [], [], [], [], [], [], [], []
    with torch.no_grad():
        if embed is not None:
            h = embed(h)
        if h.ndim != 2:
            fail("inputs", "states of shape (n_inputs, d) at the first block", f"shape {tuple(h.shape)}", raw=True)
        for i, blk in enumerate(blocks):
            h_next = blk(h)
            if not isinstance(h_next, torch.Tensor) or h_next.shape != h.shape:
                fail("block", "residual blocks that keep the state's shape",
                     f"block {i} mapping {tuple(h.shape)} to {tuple(getattr(h_next, 'shape', ()))}", raw=True)
            step = dt if dt is not None else float(getattr(blk, "dt", 1.0))
            hd, hn = h.to(torch.float64), h_next.to(torch.float64)
            delta = hn - hd
            lin, act = getattr(blk, "linear", None), getattr(blk, "act", None)
            if isinstance(lin, nn.Linear) and callable(act):
                W = lin.weight.detach().to(torch.float64)
                b = lin.bias.detach().to(torch.float64) if lin.bias is not None else torch.zeros(W.shape[0], dtype=torch.float64)

                def field(z, W=W, b=b, act=act):
                    return act(z @ W.T + b)

                sources.append("weights")
                acts.append(_act_name(act))
            else:
                target = delta / step
                if activation == "tanh":
                    target = torch.atanh(target.clamp(-1 + 1e-9, 1 - 1e-9))
                X = torch.cat([hd, torch.ones(hd.shape[0], 1, dtype=torch.float64)], dim=1)
                sol = torch.linalg.lstsq(X, target, driver="gelsd").solution  # (d + 1, d)
                W, b = sol[:-1].T.contiguous(), sol[-1]
                sig = torch.tanh if activation == "tanh" else (lambda z: z)

                def field(z, W=W, b=b, sig=sig):
                    return sig(z @ W.T + b)

                sources.append("fit")
                acts.append(activation)
            pred = hd + step * field(hd)
            exact = _rk4_flow(field, hd, step, n_substeps)
            dn = delta.norm(dim=1)
            with np.errstate(divide="ignore", invalid="ignore"):
                euler.append(((hn - pred).norm(dim=1) / dn).numpy())
                flow.append(((hn - exact).norm(dim=1) / dn).numpy())
                upd.append((dn / hd.norm(dim=1)).numpy())
            Ws.append(W)
            dts.append(step)
            names.append(f"blocks.{i}")
            h = h_next
    wc = [float(torch.linalg.norm(Ws[i + 1] - Ws[i]) / torch.linalg.norm(Ws[i])) if Ws[i + 1].shape == Ws[i].shape
          else float("nan") for i in range(len(Ws) - 1)]
    stack = (lambda arrs: np.stack(arrs, axis=1)) if blocks else (lambda arrs: np.zeros((h.shape[0], 0)))
    return ResidualFitResult(blocks=names, euler_error=stack(euler), flow_error=stack(flow),
                             relative_update=stack(upd), weight_change=np.asarray(wc, dtype=np.float64),
                             dt=np.asarray(dts, dtype=np.float64), source=sources, activation=acts)


__all__ = ["residual_ode_fit", "FIT_ACTIVATIONS"]
