"""Saving and loading models: safetensors files that rebuild themselves, never pickle."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn

from topo_mi._io import atomic_path
from topo_mi._validation import fail
from topo_mi.errors import InvalidParameterError

FORMAT = "topo_mi.model/1"


def _classes() -> dict[str, type]:
    from topo_mi.models.mlp import MLP, ResidualMLP
    from topo_mi.models.rnn import TanhRNN
    from topo_mi.models.superposition import ToySuperposition
    from topo_mi.models.transformer import AttentionOnlyTransformer
    return {c.__name__: c for c in (MLP, ResidualMLP, AttentionOnlyTransformer, TanhRNN, ToySuperposition)}


def _check_path(path, name: str = "path") -> Path:
    if not isinstance(path, (str, os.PathLike)):
        fail(name, "a file path (str or os.PathLike)", path)
    return Path(path)


def save_model(model: nn.Module, path, *, metadata: Mapping[str, Any] | None = None) -> Path:
    """Write a :mod:`topo_mi.models` model to a ``.safetensors`` file that ``load_model`` rebuilds.

    The weights are the model's ``state_dict`` (exact, in the model's dtype); the file's
    safetensors metadata holds ``{"format": "topo_mi.model/1", "class": <class name>, "config":
    <JSON of the constructor arguments>, "dtype": <e.g. "float32">, "info": <JSON of metadata>}``.
    The write is atomic.

    Parameters
    ----------
    model : MLP, ResidualMLP, AttentionOnlyTransformer, TanhRNN or ToySuperposition
        Other modules are refused: save their ``state_dict`` with ``safetensors.torch.save_file``
        and read it back with :func:`load_checkpoint`.
    path : str or PathLike
        Conventionally ending in ``.safetensors``.
    metadata : mapping, optional
        Extra JSON-able information stored with the weights (read back by :func:`read_metadata`).

    Returns
    -------
    Path
    """
    from safetensors.torch import save_file

    path = _check_path(path)
    classes = _classes()
    name = type(model).__name__
    if classes.get(name) is not type(model):
        fail("model", f"an instance of one of {', '.join(sorted(classes))} (other modules: save their "
             "state_dict with safetensors.torch.save_file and use load_checkpoint)", type(model).__name__, raw=True)
    try:
        info = json.dumps(dict(metadata or {}), sort_keys=True)
    except TypeError as exc:
        raise InvalidParameterError(f"metadata: expected JSON-able values, got {exc}") from exc
    dtypes = {p.dtype for p in model.parameters() if p.is_floating_point()}
    if len(dtypes) > 1:
        fail("model", "parameters of one floating-point dtype", sorted(map(str, dtypes)))
    dtype = str(dtypes.pop()).removeprefix("torch.") if dtypes else "float32"
    header = {"format": FORMAT, "class": name, "config": json.dumps(model.config, sort_keys=True),
              "dtype": dtype, "info": info}
    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}
    with atomic_path(path, suffix=".safetensors") as tmp:
        save_file(tensors, str(tmp), metadata=header)
    return path


def _header(path: Path) -> dict[str, str]:
    from safetensors import safe_open

    if not path.is_file():
        fail("path", "an existing .safetensors file", str(path))
    try:
        with safe_open(str(path), framework="pt") as fh:
            return dict(fh.metadata() or {})
    except Exception as exc:
        raise InvalidParameterError(f"path: expected a safetensors file, got {str(path)!r} ({exc})") from exc


def read_metadata(path) -> dict[str, Any]:
    """The class name, constructor arguments and extra ``info`` stored by :func:`save_model`."""
    path = _check_path(path)
    header = _header(path)
    if header.get("format") != FORMAT:
        fail("path", f"a model file written by topo_mi.models.save_model (format {FORMAT!r}); for plain "
             "state dicts use load_checkpoint(path, model)", f"{str(path)!r} with format {header.get('format')!r}",
             raw=True)
    try:
        return {"class": header["class"], "config": json.loads(header["config"]),
                "dtype": header.get("dtype", "float32"), "info": json.loads(header.get("info", "{}"))}
    except (KeyError, json.JSONDecodeError) as exc:
        raise InvalidParameterError(f"path: expected valid topo_mi model metadata, got {str(path)!r} ({exc})") from exc


def load_model(path) -> nn.Module:
    """Rebuild a model written by :func:`save_model` (class and arguments from the file's metadata).

    Only the classes of :mod:`topo_mi.models` are rebuilt; any other class name raises
    ``InvalidParameterError``. No pickle is involved. The model is returned in eval mode.
    """
    from safetensors.torch import load_file

    path = _check_path(path)
    meta = read_metadata(path)
    classes = _classes()
    cls = classes.get(meta["class"])
    if cls is None:
        fail("path", f"a saved model of one of the topo_mi.models classes {', '.join(sorted(classes))}",
             f"class {meta['class']!r} in {str(path)!r}", raw=True)
    if not isinstance(meta["config"], dict):
        fail("path", "constructor arguments stored as a JSON object", meta["config"])
    model = cls(**meta["config"])
    dtype = getattr(torch, str(meta["dtype"]), None)
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        fail("path", "a floating-point dtype in the model metadata", meta["dtype"])
    model = model.to(dtype)
    _load_state(model, load_file(str(path)), strict=True, path=path)
    return model.eval()


def _load_state(model: nn.Module, state: Mapping[str, Any], *, strict: bool, path: Path) -> None:
    try:
        model.load_state_dict(state, strict=strict)
    except RuntimeError as exc:
        raise InvalidParameterError(f"path: expected weights matching {type(model).__name__}, got "
                                    f"{str(path)!r}: {exc}") from exc


_STATE_KEYS = ("state_dict", "model_state_dict", "model")


def _load_failure(exc: BaseException) -> str:
    """What torch.load refused, without its advice to retry with weights_only=False."""
    import re

    text = str(exc)
    m = re.search(r"Unsupported global: GLOBAL ([\w.]+)", text)
    if m:
        return f"it holds a pickled object of type {m.group(1)}"
    if "weights_only" in text.lower() or "Weights only load failed" in text:
        return "it holds pickled objects other than tensors"
    first = text.splitlines()[0] if text else ""
    return f"{type(exc).__name__}: {first}"


def load_checkpoint(path, model: nn.Module, *, strict: bool = True) -> nn.Module:
    """Load a user checkpoint's weights into ``model`` (in place) and return it.

    ``.safetensors`` files are read with safetensors; ``.pt``, ``.pth``, ``.bin`` and ``.ckpt`` files
    with ``torch.load(path, map_location="cpu", weights_only=True)`` (no arbitrary pickle). A
    checkpoint dictionary holding the weights under ``"state_dict"``, ``"model_state_dict"`` or
    ``"model"`` is unwrapped.

    Parameters
    ----------
    path : str or PathLike
    model : nn.Module
        The architecture the weights belong to.
    strict : bool, default True
        Passed to ``load_state_dict``: missing or unexpected keys raise.
    """
    path = _check_path(path)
    if not isinstance(model, nn.Module):
        fail("model", "a torch.nn.Module", model)
    if not path.is_file():
        fail("path", "an existing checkpoint file", str(path))
    suffix = path.suffix.lower()
    if suffix == ".safetensors":
        from safetensors.torch import load_file
        try:
            state = load_file(str(path))
        except Exception as exc:
            raise InvalidParameterError(f"path: expected a safetensors file, got {str(path)!r} ({exc})") from exc
    elif suffix in (".pt", ".pth", ".bin", ".ckpt"):
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:
            raise InvalidParameterError(
                f"path: expected a checkpoint readable with torch.load(weights_only=True) (tensors and "
                f"plain containers only), got {str(path)!r}: {_load_failure(exc)}; topo_mi never unpickles "
                "arbitrary objects — save the weights as a state_dict or with safetensors"
            ) from None
    else:
        fail("path", "a .safetensors, .pt, .pth, .bin or .ckpt file", str(path))
    if isinstance(state, Mapping):
        for key in _STATE_KEYS:
            if isinstance(state.get(key), Mapping):
                state = state[key]
                break
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        fail("path", "a state dict (a mapping of names to tensors)", f"{type(state).__name__} in {str(path)!r}",
             raw=True)
    _load_state(model, state, strict=strict, path=path)
    return model


__all__ = ["save_model", "load_model", "load_checkpoint", "read_metadata"]
