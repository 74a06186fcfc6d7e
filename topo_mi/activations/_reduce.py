"""Reductions of layer outputs to (batch, features)."""
from __future__ import annotations

from typing import Any, Callable

from topo_mi.errors import InvalidParameterError

REDUCTIONS = ("last", "mean", "flatten", "tokens")


def describe_reduce(reduce: Any) -> str:
    """A stable text form of a reduction (used in metadata and store fingerprints)."""
    if reduce is None:
        reduce = "tokens"
    if isinstance(reduce, (str, int)) and not isinstance(reduce, bool):
        return repr(reduce)
    if callable(reduce):
        return f"callable:{getattr(reduce, '__module__', '?')}.{getattr(reduce, '__qualname__', type(reduce).__name__)}"
    raise InvalidParameterError(
        f"reduce: expected 'last', 'mean', 'flatten', 'tokens' (or None), an int token position or a callable, "
        f"got {reduce!r}")


def check_reduce(reduce: Any) -> Any:
    """Validate a reduction; returns it with ``None`` (keep every position) spelled ``"tokens"``."""
    describe_reduce(reduce)
    if reduce is None:
        return "tokens"
    if isinstance(reduce, str) and reduce not in REDUCTIONS:
        raise InvalidParameterError(
            f"reduce: expected one of {', '.join(map(repr, REDUCTIONS))}, an int or a callable, got {reduce!r}")
    return reduce


def reduce_output(t, reduce: Any, *, layer: str, attention_mask=None):
    """Turn a torch tensor of shape (B, ...) into (B, F).

    - ``"tokens"`` (or None): one row per real token (see :func:`token_rows`); the rows are
      (n_tokens, F), not (B, F).
    - 2-D outputs pass through unchanged.
    - 3-D outputs (batch, tokens, d): ``"last"`` takes the last token (the last *non-padding*
      token when an ``attention_mask`` is known), ``"mean"`` averages over tokens (masked mean
      with an ``attention_mask``), an int takes that token position, ``"flatten"`` concatenates.
    - 4-D and higher (batch, channels, ...): ``"mean"`` averages the trailing (spatial) axes,
      ``"flatten"`` concatenates; token reductions are refused.
    - A callable receives the raw tensor and must return (B, F).
    - 1-D outputs (batch,) need a callable.
    """
    import torch

    if callable(reduce) and not isinstance(reduce, str):
        out = reduce(t)
        if not isinstance(out, torch.Tensor) or out.ndim != 2 or out.shape[0] != t.shape[0]:
            got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise InvalidParameterError(
                f"reduce: the callable must return a tensor of shape (batch={t.shape[0]}, features) "
                f"for layer {layer!r}, got {got}")
        return out
    if t.ndim == 0 or t.ndim == 1:
        raise InvalidParameterError(
            f"layer {layer!r}: expected an output with a batch and a feature axis, got shape "
            f"{tuple(t.shape)}; pass reduce=callable to turn it into (batch, features)")
    if reduce is None or reduce == "tokens":
        return token_rows(t, attention_mask, layer=layer)[0]
    if t.ndim == 2:
        return t
    if reduce == "flatten":
        return t.reshape(t.shape[0], -1)
    if t.ndim == 3:
        mask = None
        if attention_mask is not None and attention_mask.shape == t.shape[:2]:
            mask = attention_mask.to(device=t.device)
        if reduce == "last":
            if mask is None:
                return t[:, -1, :]
            idx = _last_index(mask)
            return t[torch.arange(t.shape[0], device=t.device), idx]
        if reduce == "mean":
            if mask is None:
                return t.mean(dim=1)
            m = mask.to(t.dtype).unsqueeze(-1)
            return (t * m).sum(dim=1) / m.sum(dim=1).clamp_min(1)
        if isinstance(reduce, int):
            if not -t.shape[1] <= reduce < t.shape[1]:
                raise InvalidParameterError(
                    f"reduce: token position {reduce} is out of range for layer {layer!r} with "
                    f"{t.shape[1]} tokens")
            return t[:, reduce, :]
    if reduce == "mean":
        return t.flatten(2).mean(dim=2)
    raise InvalidParameterError(
        f"reduce: {reduce!r} applies to (batch, tokens, d) outputs; layer {layer!r} has shape "
        f"{tuple(t.shape)}: use 'mean' (average the trailing axes), 'flatten' or a callable")


def token_rows(t, mask, *, layer: str):
    """One row per real token of a (batch, tokens, d) output.

    Returns ``(rows, index)``: ``rows`` (n_tokens, d) is ``t[mask.bool()]`` (every position when
    ``mask`` is None), ``index`` (n_tokens, 2) the (sequence in batch, position) of each row, in
    the same row-major order.
    """
    import torch

    if t.ndim != 3:
        what = "it has no token axis" if t.ndim == 2 else "it is not (batch, tokens, d)"
        raise InvalidParameterError(
            f"reduce: 'tokens' needs a (batch, tokens, d) output; layer {layer!r} has shape {tuple(t.shape)} "
            f"({what}); use reduce='last'/'mean'/'flatten' or a callable for this layer")
    if mask is None:
        B, T = t.shape[:2]
        index = torch.stack(torch.meshgrid(torch.arange(B), torch.arange(T), indexing="ij"), -1).reshape(-1, 2)
        return t.reshape(B * T, t.shape[2]), index
    if tuple(mask.shape) != tuple(t.shape[:2]):
        raise InvalidParameterError(
            f"attention_mask: expected shape {tuple(t.shape[:2])} (batch, tokens) of layer {layer!r}, "
            f"got {tuple(mask.shape)}")
    keep = mask.to(device=t.device).bool()
    return t[keep], keep.nonzero()


def _last_index(mask):
    """Index of the last non-zero entry of each row of a (B, T) mask (works for left and right padding)."""
    import torch

    T = mask.shape[1]
    pos = torch.arange(T, device=mask.device).expand_as(mask)
    return torch.where(mask.bool(), pos, torch.full_like(pos, -1)).max(dim=1).values.clamp_min(0)


def first_tensor(output: Any, select: Any = None, *, layer: str):
    """Pick the tensor to record from a module output (tensor, tuple, dict or model-output object)."""
    import torch

    if select is not None:
        if callable(select):
            out = select(output)
        elif isinstance(select, int):
            out = output[select]
        elif isinstance(select, str):
            out = output[select] if isinstance(output, dict) or hasattr(output, "keys") else getattr(output, select)
        else:
            raise InvalidParameterError(f"select: expected a callable, an int or a str, got {select!r}")
        if not isinstance(out, torch.Tensor):
            raise InvalidParameterError(f"select: expected it to return a tensor for layer {layer!r}, "
                                        f"got {type(out).__name__}")
        return out
    if isinstance(output, torch.Tensor):
        return output
    found = _find_tensor(output)
    if found is None:
        raise InvalidParameterError(
            f"layer {layer!r}: its output ({type(output).__name__}) holds no tensor; pass select=callable")
    return found


def _find_tensor(obj: Any, depth: int = 0):
    import torch

    if isinstance(obj, torch.Tensor):
        return obj
    if depth > 3:
        return None
    if isinstance(obj, dict) or (hasattr(obj, "keys") and hasattr(obj, "values") and callable(obj.values)):
        items = list(obj.values())
    elif isinstance(obj, (tuple, list)):
        items = list(obj)
    else:
        return None
    for it in items:
        t = _find_tensor(it, depth + 1)
        if t is not None:
            return t
    return None


def describe_select(select: Any) -> str:
    if select is None:
        return "first-tensor"
    if callable(select):
        return f"callable:{getattr(select, '__module__', '?')}.{getattr(select, '__qualname__', '?')}"
    return repr(select)


Reducer = Callable[[Any], Any]
