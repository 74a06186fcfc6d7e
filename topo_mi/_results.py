"""A small base for typed result objects.

Results are (frozen) dataclasses. ``to_dict()`` gives plain JSON-able data (arrays become lists);
``save(dir)`` writes ``result.json`` (scalars, strings, nested results) and ``arrays.npz`` (every
numpy array, exactly), atomically; ``Result.load(dir)`` (or ``topo_mi.load_result``) rebuilds the
object with the right class. Subclasses only declare fields and implement ``summary()`` and
``plot()``; the plotting code itself lives in ``topo_mi.plotting``.
"""
from __future__ import annotations

import dataclasses
import importlib
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from topo_mi import __version__
from topo_mi._io import read_json, write_json, write_npz
from topo_mi.errors import InvalidParameterError

_REGISTRY: dict[str, type] = {}

_FORMAT = "topo_mi.result/1"


def _qualname(cls: type) -> str:
    return f"{cls.__module__}:{cls.__qualname__}"


def _encode(value: Any, arrays: dict[str, np.ndarray], path: str) -> Any:
    if isinstance(value, Result):
        return {"__result__": _qualname(type(value)), "fields": value._encode_fields(arrays, path)}
    if isinstance(value, np.ndarray):
        if value.dtype == object:
            raise TypeError(f"{path}: object arrays cannot be saved")
        key = path or "root"
        arrays[key] = value
        return {"__array__": key}
    if isinstance(value, dict):
        return {"__dict__": [[_encode(k, arrays, f"{path}.k{i}"), _encode(v, arrays, f"{path}.{i}")]
                             for i, (k, v) in enumerate(value.items())]}
    if isinstance(value, tuple):
        return {"__tuple__": [_encode(v, arrays, f"{path}.{i}") for i, v in enumerate(value)]}
    if isinstance(value, list):
        return [_encode(v, arrays, f"{path}.{i}") for i, v in enumerate(value)]
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    if isinstance(value, np.bool_):
        return bool(value)
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"{path}: cannot save a value of type {type(value).__name__}")


def _decode(value: Any, arrays) -> Any:
    if isinstance(value, list):
        return [_decode(v, arrays) for v in value]
    if isinstance(value, dict):
        if "__array__" in value:
            return np.asarray(arrays[value["__array__"]])
        if "__tuple__" in value:
            return tuple(_decode(v, arrays) for v in value["__tuple__"])
        if "__dict__" in value:
            return {_decode(k, arrays): _decode(v, arrays) for k, v in value["__dict__"]}
        if "__result__" in value:
            cls = _resolve(value["__result__"])
            fields = {k: _decode(v, arrays) for k, v in value["fields"].items()}
            return cls._from_fields(fields)
        raise ValueError(f"unrecognised saved value: {sorted(value)}")
    return value


def _resolve(name: str) -> type:
    if name in _REGISTRY:
        return _REGISTRY[name]
    module, _, qual = name.partition(":")
    if not module.startswith("topo_mi."):
        raise InvalidParameterError(f"saved result: expected a topo_mi result type, got {name!r}")
    obj: Any = importlib.import_module(module)
    for part in qual.split("."):
        obj = getattr(obj, part)
    return obj


def _plain(value: Any) -> Any:
    """JSON-able view: arrays to lists, non-finite floats kept (json writes Infinity)."""
    if isinstance(value, Result):
        return value.to_dict()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    return value


class Result:
    """Mixin for result dataclasses: ``to_dict``, ``save``/``load``, ``summary``, ``plot``."""

    _plot_function: ClassVar[str | None] = None  # "module:function" in topo_mi.plotting

    def __init_subclass__(cls, **kw):
        super().__init_subclass__(**kw)
        _REGISTRY[_qualname(cls)] = cls

    # -- serialisation -------------------------------------------------------------------------
    def _encode_fields(self, arrays, path):
        return {f.name: _encode(getattr(self, f.name), arrays, f"{path}/{f.name}" if path else f.name)
                for f in dataclasses.fields(self)}

    @classmethod
    def _from_fields(cls, fields: dict[str, Any]):
        return cls(**fields)

    def to_dict(self) -> dict[str, Any]:
        """Every field as plain Python data (arrays become nested lists)."""
        out = {f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self)}
        out["type"] = type(self).__name__
        return out

    def save(self, path) -> Path:
        """Write ``result.json`` and ``arrays.npz`` into the folder ``path`` (atomic writes)."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        arrays: dict[str, np.ndarray] = {}
        doc = {"format": _FORMAT, "topo_mi_version": __version__,
               "result": _encode(self, arrays, "")}
        write_npz(path / "arrays.npz", arrays)
        write_json(path / "result.json", doc)
        return path

    @classmethod
    def load(cls, path):
        """Read a result written by :meth:`save` (no pickle: JSON and plain ``.npz`` arrays)."""
        path = Path(path)
        if not (path / "result.json").is_file():
            raise InvalidParameterError(f"path: expected a folder written by Result.save, got {str(path)!r} "
                                        "(no result.json in it)")
        doc = read_json(path / "result.json")
        if doc.get("format") != _FORMAT:
            raise InvalidParameterError(f"path: expected a {_FORMAT} file, got format {doc.get('format')!r}")
        with np.load(path / "arrays.npz", allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
        obj = _decode(doc["result"], arrays)
        if cls is not Result and not isinstance(obj, cls):
            raise InvalidParameterError(f"path: expected a saved {cls.__name__}, got {type(obj).__name__}")
        return obj

    # -- display -------------------------------------------------------------------------------
    def summary(self) -> dict[str, Any]:
        """A small table of the headline figures (name -> value)."""
        return {}

    def plot(self, ax=None, **kwargs):
        """Draw the result on ``ax`` (a new figure when None); returns the Axes."""
        if self._plot_function is None:
            raise TypeError(f"{type(self).__name__} has no plot")
        module, _, func = self._plot_function.partition(":")
        fn = getattr(importlib.import_module(module), func)
        return fn(self, ax=ax, **kwargs)

    def _repr_summary(self) -> str:
        items = ", ".join(f"{k}={_fmt(v)}" for k, v in self.summary().items())
        return f"{type(self).__name__}({items})"


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return repr(v)


def load_result(path) -> Result:
    """Load any saved result, whatever its type."""
    return Result.load(path)


def result_dataclass(cls=None, **kw):
    """``dataclasses.dataclass(frozen=True, eq=False)`` plus a compact repr from ``summary()``."""
    def wrap(c):
        c = dataclasses.dataclass(frozen=True, eq=False, repr=False, **kw)(c)
        if "__repr__" not in c.__dict__:
            c.__repr__ = Result._repr_summary
        return c
    return wrap(cls) if cls is not None else wrap
