"""Torch helpers shared by the dynamics modules."""
from __future__ import annotations

import contextlib
import math
from typing import Any

import numpy as np
import torch

from topo_mi._validation import fail
from topo_mi.errors import InvalidParameterError, NonFiniteError

# Problems this small (state dim x directions x trajectories) run single-threaded: intra-op
# threads only add fork/join cost to tiny kernels (and stall badly on a busy machine).
SMALL_PROBLEM = 1 << 15
# Jacobian work (inputs x d_out x d_in elements) below which torch runs single-threaded.
SMALL_WORK = 1 << 22


def num_threads(n: int | None) -> contextlib.AbstractContextManager:
    """Temporarily set torch's intra-op thread count (``None``: leave it); see :func:`topo_mi.parallel.torch_threads`."""
    from topo_mi.parallel import torch_threads

    return torch_threads(n)


def threads_for(work: int, threads: int | None = None) -> contextlib.AbstractContextManager:
    """``num_threads(threads)``, or one thread when ``work`` (elements touched) is small."""
    if threads is None and work <= SMALL_WORK:
        threads = 1
    return num_threads(threads)


def as_state(x: Any, name: str, *, dtype: torch.dtype | None = None) -> torch.Tensor:
    """A finite floating tensor (numpy/array-likes become float64 unless ``dtype`` is given)."""
    if isinstance(x, torch.Tensor):
        t = x.detach()
        if not t.is_floating_point():
            t = t.to(dtype or torch.float64)
        elif dtype is not None:
            t = t.to(dtype)
    else:
        try:
            arr = np.asarray(x)
        except Exception:  # pragma: no cover - exotic inputs
            fail(name, "a tensor or an array of floats", x)
        if arr.dtype == object or arr.dtype.kind not in "biuf":
            fail(name, "a tensor or an array of numbers", x)
        t = torch.as_tensor(arr, dtype=dtype or torch.float64)
    if t.is_complex():
        fail(name, "a real tensor", f"dtype {t.dtype}", raw=True)
    finite = torch.isfinite(t)
    if not bool(finite.all()):
        bad = int((~finite).sum())
        raise NonFiniteError(f"{name}: expected finite values, got {bad} non-finite entries")
    return t


def module_dtype(*objs: Any) -> torch.dtype | None:
    """The dtype of the first floating parameter of any of the modules given (None if none)."""
    for obj in objs:
        if isinstance(obj, torch.nn.Module):
            for p in obj.parameters():
                if p.is_floating_point():
                    return p.dtype
        elif isinstance(obj, (list, tuple)):
            d = module_dtype(*obj)
            if d is not None:
                return d
    return None


def numel(shape) -> int:
    return int(math.prod(shape)) if len(shape) else 1


def randomness_guard(exc: Exception, what: str) -> Exception:
    """Turn vmap's error about random operations into an actionable message."""
    if "randomness" in str(exc) or "random" in str(exc).lower():
        return InvalidParameterError(
            f"{what}: expected a deterministic function, got one with random operations "
            f"(dropout?); call model.eval() first ({exc})")
    return exc


__all__ = ["num_threads", "threads_for", "SMALL_WORK", "as_state", "module_dtype", "numel", "randomness_guard", "SMALL_PROBLEM"]
