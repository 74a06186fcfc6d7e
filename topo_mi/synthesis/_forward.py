"""Running a model with and without an interpretation, and reading one output space.

Every layer replacement goes through :func:`topo_mi.causal.intervene` (the one hook mechanism that
writes); reading a layer uses the same hook mechanism (:mod:`topo_mi.activations._hooks`), its hooks
registered after the intervention's so they see the replaced output.
"""
from __future__ import annotations

import contextlib
from typing import Any, Callable

import numpy as np

from topo_mi._validation import fail

OUTPUT_SPACES = ("logits", "probs")


def patched(model, ops: dict[str, Any] | None):
    """A context manager replacing layer outputs through :func:`topo_mi.causal.intervene`:
    ``ops[layer]`` is a :mod:`topo_mi.causal` operation or a function mapping the layer's output
    tensor to a same-shape tensor (wrapped in ``Replace``)."""
    if not ops:
        return contextlib.nullcontext()
    from topo_mi.causal import Op, Replace, intervene

    return intervene(model, {name: (op if isinstance(op, Op) else Replace(op)) for name, op in ops.items()})


def _first_tensor(out):
    if isinstance(out, (tuple, list)):
        return out[0]
    if hasattr(out, "last_hidden_state"):
        return out.last_hidden_state
    return out


def model_dtype(model):
    import torch

    for p in model.parameters():
        if p.is_floating_point():
            return p.dtype
    return torch.float32


def as_model_input(inputs, model):
    """A tensor (float inputs take the model's dtype, integers become int64) or a dict of tensors."""
    import torch

    if isinstance(inputs, dict):
        return {k: torch.as_tensor(v) for k, v in inputs.items()}
    if isinstance(inputs, torch.Tensor):
        t = inputs
    else:
        arr = np.asarray(inputs)
        if arr.dtype == object or arr.dtype.kind not in "biuf":
            fail("inputs", "a numeric array, a tensor or a dict of tensors", inputs)
        t = torch.as_tensor(arr)
    if t.is_floating_point():
        return t.to(model_dtype(model))
    return t.long()


def n_inputs(inputs) -> int:
    if isinstance(inputs, dict):
        lens = {int(v.shape[0]) for v in inputs.values()}
        if len(lens) != 1:
            fail("inputs", "a dict of tensors sharing their first (sample) axis", sorted(lens))
        return lens.pop()
    return int(inputs.shape[0])


def take_rows(inputs, rows):
    if isinstance(inputs, dict):
        return {k: v[rows] for k, v in inputs.items()}
    return inputs[rows]


def batches(n: int, batch_size: int):
    for s in range(0, n, batch_size):
        yield np.arange(s, min(s + batch_size, n))


def run_space(model, x, space: str, ops: dict | None = None):
    """``model(x)`` under ``ops``, read at ``space`` ("logits", "probs" or a layer name): a tensor
    of shape (batch, ...), float64."""
    import torch

    from topo_mi.activations._hooks import _eval_mode, _recording, resolve_layers

    seen: dict[str, Any] = {}
    with torch.no_grad(), _eval_mode(model), patched(model, ops):
        if space in OUTPUT_SPACES:
            out = _first_tensor(model(**x) if isinstance(x, dict) else model(x))
            if not isinstance(out, torch.Tensor):
                fail("space", "a layer name for a model whose output is not a tensor", space)
        else:
            mods = resolve_layers(model, [space])

            def record(name, output):
                seen[name] = _first_tensor(output).detach()
                return None

            with _recording(mods, record):
                model(**x) if isinstance(x, dict) else model(x)
            out = seen[space]
    out = out.detach().to(torch.float64).cpu()
    if space == "probs":
        out = torch.softmax(out, dim=-1)
    return out


def layer_values(model, x, layers: list[str]) -> dict:
    """The clean outputs of ``layers`` for inputs ``x`` (float64 tensors)."""
    import torch

    from topo_mi.activations._hooks import _eval_mode, _recording, resolve_layers

    seen: dict[str, Any] = {}

    def record(name, output):
        seen[name] = _first_tensor(output).detach().to(torch.float64)
        return None

    with torch.no_grad(), _eval_mode(model), _recording(resolve_layers(model, layers), record):
        model(**x) if isinstance(x, dict) else model(x)
    return seen


def compose(*fns: Callable) -> Callable:
    fns = [f for f in fns if f is not None]

    def composed(out):
        for f in fns:
            r = f(out)
            out = out if r is None else r
        return out

    return composed
