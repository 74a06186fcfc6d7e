"""The intervention primitive: edit layer outputs during forwards, through the shared hooks."""
from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import Any

import numpy as np

from topo_mi._validation import fail
from topo_mi.activations._hooks import _eval_mode, _recording, resolve_layers
from topo_mi.causal._ops import Compose, Op, _Call
from topo_mi.errors import InvalidParameterError


def _split_output(output, layer: str):
    """``(tensor, rebuild)``: the first tensor of a layer output and a function putting a
    replacement back (tensors, tuples/lists, dicts and HuggingFace ModelOutputs)."""
    import torch

    if isinstance(output, torch.Tensor):
        return output, lambda new: new
    if isinstance(output, (tuple, list)):
        for i, v in enumerate(output):
            if isinstance(v, torch.Tensor):
                def rebuild(new, i=i):
                    items = list(output)
                    items[i] = new
                    return type(output)(items) if isinstance(output, list) else tuple(items)
                return v, rebuild
    if isinstance(output, Mapping) or hasattr(output, "keys"):
        for k in output.keys():
            v = output[k]
            if isinstance(v, torch.Tensor):
                def rebuild(new, k=k):
                    import copy

                    out = copy.copy(output)
                    out[k] = new
                    return out
                return v, rebuild
    raise InvalidParameterError(f"layers: the output of layer {layer!r} holds no tensor to intervene on "
                                f"(got {type(output).__name__})")


class Intervention:
    """The handle ``with intervene(...) as iv`` gives: ``iv.sample_ids`` (settable) are the ids of
    the rows of the next forwards (``None``: ``0..batch-1``); ``iv.calls`` counts edits per layer."""

    def __init__(self, ops: dict[str, Op], sample_ids):
        self.ops = ops
        self.sample_ids = sample_ids
        self.calls = {name: 0 for name in ops}

    def set_sample_ids(self, ids) -> None:
        self.sample_ids = _check_ids(ids)

    def __repr__(self) -> str:
        inner = ", ".join(f"{k!r}: {v!r}" for k, v in self.ops.items())
        return f"Intervention({{{inner}}})"


def _check_ids(ids):
    if ids is None:
        return None
    arr = np.asarray(ids)
    if arr.ndim != 1:
        fail("sample_ids", "a 1-D array of ids, one per row of the forward", f"shape {arr.shape}", raw=True)
    return arr


def _normalise_ops(model, ops) -> tuple[list[tuple[str, Any]], dict[str, Op]]:
    if not isinstance(ops, Mapping) or not ops:
        fail("ops", "a non-empty dict {layer name or pattern: op}", ops)
    named: list[tuple[str, Any]] = []
    table: dict[str, Op] = {}
    for spec, op in ops.items():
        if isinstance(op, (list, tuple)):
            op = Compose(*op)
        if not isinstance(op, Op):
            raise InvalidParameterError(
                f"ops[{spec!r}]: expected a topo_mi.causal op (Zero(), Mean(acts), Resample(acts), Patch(source), "
                f"Steer(v), Project(v), ProjectOut(V), Erase(eraser), Replace(fn)) or a list of them, got "
                f"{type(op).__name__} {op!r}")
        for name, module in resolve_layers(model, spec):
            if name in table:  # two keys reach the same layer: compose in the order given
                table[name] = Compose(table[name], op)
            else:
                table[name] = op
                named.append((name, module))
    return named, table


@contextlib.contextmanager
def intervene(model, ops, *, sample_ids=None, eval_mode: bool = True, grad: bool = False):
    """Edit layer outputs during every forward inside the ``with`` block.

    Parameters
    ----------
    model : torch.nn.Module
        Any module (HuggingFace models included).
    ops : dict
        ``{layer: op}`` with layer names or glob patterns as in :func:`~topo_mi.activations.collect`
        (unknown names raise :class:`~topo_mi.errors.UnknownNameError` with the closest valid ones)
        and ops from :mod:`topo_mi.causal` (``Zero()``, ``Mean(acts)``, ``Resample(acts, seed)``,
        ``Patch(source)``, ``Steer(v, alpha)``, ``Project(v)``, ``ProjectOut(V)``, ``Erase(eraser)``,
        ``Replace(fn)``), a composition ``a >> b`` or a list (applied in order). An op edits the first
        tensor of the layer's output.
    sample_ids : array, optional
        Ids of the rows of the forwards (``Patch`` aligns its source by them); change them between
        forwards with ``iv.set_sample_ids``. Default: ``0..batch-1``.
    eval_mode : bool, default True
        The model in eval mode inside the block (every submodule's flag restored after).
    grad : bool, default False
        False runs the block under ``torch.no_grad()``, like ``collect``.

    Every hook is removed when the block ends, also when a forward raises. After each forward of
    ``model`` a layer of ``ops`` that did not run raises :class:`~topo_mi.errors.InvalidParameterError`
    naming it.

    Examples
    --------
    >>> with intervene(net, {"act2": Zero(), "act3": Steer(v, alpha=2.0)}):     # doctest: +SKIP
    ...     logits = net(x)
    """
    import torch

    if not isinstance(model, torch.nn.Module):
        fail("model", "a torch.nn.Module", type(model).__name__, raw=True)
    named, table = _normalise_ops(model, ops)
    handle = Intervention(table, _check_ids(sample_ids))
    fired: set[str] = set()

    def edit(name, output):
        t, rebuild = _split_output(output, name)
        new = table[name].apply(t, _Call(name, handle.sample_ids))
        fired.add(name)
        handle.calls[name] += 1
        return rebuild(new)

    def root_start(_):  # each forward of the model starts afresh (also after one that raised)
        fired.clear()

    def root_end(_, output):
        missing = [n for n in table if n not in fired]
        if missing:
            raise InvalidParameterError(
                f"ops: layer(s) {', '.join(map(repr, missing))} did not run in the forward pass, so their "
                "intervention had no effect; intervene on layers the forward reaches")
        return None

    with contextlib.ExitStack() as stack:
        if eval_mode:
            stack.enter_context(_eval_mode(model))
        if not grad:
            stack.enter_context(torch.no_grad())
        stack.enter_context(_recording([("", model)], root_end, before=root_start))
        stack.enter_context(_recording(named, edit))
        yield handle


# ---------------------------------------------------------------------------------------------
# running a model over inputs
# ---------------------------------------------------------------------------------------------
def _forward(model, x):
    if isinstance(x, Mapping):
        return model(**x)
    return model(x)


def _n_rows(inputs) -> int:
    if isinstance(inputs, Mapping):
        for v in inputs.values():
            if hasattr(v, "shape") and len(v.shape):
                return int(v.shape[0])
        fail("inputs", "a dict of tensors with a batch axis", inputs)
    if not hasattr(inputs, "shape") or len(inputs.shape) == 0:
        fail("inputs", "a tensor, an array or a dict of tensors with a batch axis", type(inputs).__name__, raw=True)
    n = int(inputs.shape[0])
    if n == 0:
        fail("inputs", "at least one sample", "an empty batch", raw=True)
    return n


def _as_inputs(model, inputs):
    """Arrays to tensors of the model's floating dtype (integer arrays stay integer: token ids)."""
    import torch

    if isinstance(inputs, Mapping):
        return {k: _as_inputs(model, v) for k, v in inputs.items()}
    if isinstance(inputs, np.ndarray):
        t = torch.from_numpy(np.ascontiguousarray(inputs))
    elif isinstance(inputs, torch.Tensor):
        t = inputs
    else:
        return inputs
    if t.is_floating_point():
        for p in model.parameters():
            if p.is_floating_point():
                t = t.to(device=p.device, dtype=p.dtype)
                break
    else:
        for p in model.parameters():
            t = t.to(p.device)
            break
    return t


def _rows(inputs, sl):
    if isinstance(inputs, Mapping):
        return {k: (v[sl] if hasattr(v, "shape") and len(v.shape) else v) for k, v in inputs.items()}
    return inputs[sl]


def _repeat(inputs, k: int):
    """Each input row repeated as ``k`` consecutive blocks (copy j of the batch is rows j*B..(j+1)*B-1)."""
    if isinstance(inputs, Mapping):
        return {key: (_repeat(v, k) if hasattr(v, "shape") and len(v.shape) else v) for key, v in inputs.items()}
    return inputs.repeat((k,) + (1,) * (inputs.ndim - 1))


def cache_outputs(model, inputs, layers, *, batch_size: int | None = None, eval_mode: bool = True) -> dict:
    """Full outputs (first tensor) of ``layers`` on ``inputs``, in the model's own dtype.

    Returns ``{layer: tensor (n, ...)}`` (detached, unreduced), a source for :class:`Patch`.
    """
    return _cache_run(model, inputs, layers, batch_size=batch_size, eval_mode=eval_mode)[0]


def _cache_run(model, inputs, layers, *, batch_size=None, eval_mode=True):
    """``(cache, model outputs of the batches)``: one pass gives both."""
    import torch

    from topo_mi._validation import check_int

    named = resolve_layers(model, layers)
    x = _as_inputs(model, inputs)
    n = _n_rows(x)
    bs = n if batch_size is None else check_int("batch_size", batch_size, min_value=1)
    out: dict[str, list] = {name: [] for name, _ in named}
    outputs = []
    current: dict[str, Any] = {}

    def record(name, output):
        t, _ = _split_output(output, name)
        current[name] = t.detach()

    with contextlib.ExitStack() as stack:
        if eval_mode:
            stack.enter_context(_eval_mode(model))
        stack.enter_context(torch.no_grad())
        stack.enter_context(_recording(named, record))
        for i in range(0, n, bs):
            current.clear()
            outputs.append(_forward(model, _rows(x, slice(i, i + bs))))
            missing = [name for name, _ in named if name not in current]
            if missing:
                raise InvalidParameterError(f"layers: {', '.join(map(repr, missing))} did not run in the forward pass")
            for name in out:
                out[name].append(current[name])
    cache = {name: (torch.cat(chunks) if len(chunks) > 1 else chunks[0]) for name, chunks in out.items()}
    return cache, outputs


__all__ = ["intervene", "Intervention", "cache_outputs"]
