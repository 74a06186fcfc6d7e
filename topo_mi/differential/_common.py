"""Torch helpers shared by the attribution and curvature modules."""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from topo_mi._validation import fail
from topo_mi.errors import NonFiniteError


def model_dtype(model: Any) -> torch.dtype:
    """The dtype of the model's first floating parameter (float32 when it has none)."""
    if isinstance(model, torch.nn.Module):
        for p in model.parameters():
            if p.is_floating_point():
                return p.dtype
    return torch.float32


def as_tensor(x: Any, name: str, *, dtype: torch.dtype | None = None, floating: bool = True) -> torch.Tensor:
    """A detached, finite tensor (floating point in ``dtype`` when ``floating``)."""
    if isinstance(x, torch.Tensor):
        t = x.detach()
    else:
        try:
            arr = np.asarray(x)
        except Exception:  # pragma: no cover - exotic inputs
            fail(name, "a tensor or an array of numbers", x)
        if arr.dtype == object or arr.dtype.kind not in "biuf":
            fail(name, "a tensor or an array of numbers", x)
        t = torch.as_tensor(arr)
    if t.is_complex():
        fail(name, "a real tensor", f"dtype {t.dtype}", raw=True)
    if floating:
        t = t.to(dtype) if dtype is not None else (t if t.is_floating_point() else t.to(torch.float64))
        finite = torch.isfinite(t)
        if not bool(finite.all()):
            raise NonFiniteError(f"{name}: expected finite values, got {int((~finite).sum())} non-finite entries")
    return t


def select_target(out: torch.Tensor, target: Any, n: int, *, name: str = "target") -> torch.Tensor:
    """The scalar per sample that is attributed: shape ``(n,)``.

    ``target``: None (the output must be one scalar per sample: shape ``(n,)`` or ``(n, 1)``), an
    integer index into the last output dimension (``(n, C)`` outputs; flattened for more dims), a
    sequence/array of ``n`` indices (one per sample), or a callable ``output -> (n,)`` tensor.
    """
    if callable(target):
        val = target(out)
        if not isinstance(val, torch.Tensor) or tuple(val.shape) != (n,):
            got = f"shape {tuple(val.shape)}" if isinstance(val, torch.Tensor) else type(val).__name__
            fail(name, f"a callable returning one scalar per sample (a tensor of shape ({n},))", got, raw=True)
        return val
    flat = out.reshape(n, -1)
    if target is None:
        if flat.shape[1] != 1:
            fail(name, "a class index, one index per sample or a callable output -> (n,) selecting a scalar "
                       f"(the model's output has {flat.shape[1]} values per sample)", None)
        return flat[:, 0]
    if isinstance(target, (int, np.integer)) and not isinstance(target, bool):
        t = int(target)
        if not -flat.shape[1] <= t < flat.shape[1]:
            fail(name, f"an output index in [0, {flat.shape[1]})", t)
        return flat[:, t]
    idx = as_tensor(target, name, floating=False)
    if idx.dtype.is_floating_point or idx.dtype == torch.bool or tuple(idx.shape) != (n,):
        fail(name, f"an integer, {n} integer indices (one per sample) or a callable",
             f"{idx.dtype} of shape {tuple(idx.shape)}", raw=True)
    if int(idx.min()) < 0 or int(idx.max()) >= flat.shape[1]:
        fail(name, f"indices in [0, {flat.shape[1]})", f"range [{int(idx.min())}, {int(idx.max())}]", raw=True)
    return flat.gather(1, idx.long().to(flat.device)[:, None])[:, 0]


def take_target(target: Any, idx: slice) -> Any:
    """The part of a per-sample target that belongs to the rows ``idx`` (scalars/callables unchanged)."""
    if target is None or callable(target) or isinstance(target, (int, np.integer)):
        return target
    return as_tensor(target, "target", floating=False)[idx]


__all__ = ["model_dtype", "as_tensor", "select_target", "take_target"]
