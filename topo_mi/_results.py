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

    def report_section(self) -> dict[str, Any]:
        """What the report shows for this result: ``{"headline", "table", "caption"}``.

        ``headline``: one sentence of the main finding; ``table``: ``{"index": [row names],
        "columns": [names], "rows": [[values]]}`` (per-layer tables: layers as rows);
        ``caption``: what the figure shows and how to read it. This default derives them from
        :meth:`summary`: ``"metric[layer]"`` entries become a layers x metrics table, the other
        entries the headline. Results override it with words of their own.
        """
        return default_section(self)

    def to_frame(self):
        """The table of :meth:`report_section` as a ``pandas.DataFrame`` (pandas is optional)."""
        try:
            import pandas as pd
        except ImportError as exc:  # pragma: no cover - pandas is installed with the dev extra
            from topo_mi.errors import DependencyError

            raise DependencyError("to_frame needs pandas: pip install pandas") from exc
        table = self.report_section()["table"]
        return pd.DataFrame(table["rows"], index=table["index"], columns=table["columns"])

    def plot(self, ax=None, **kwargs):
        """Draw the result on ``ax`` (a new figure when None); returns the Axes.

        Every ``.plot`` returns a matplotlib Axes; panels of several plots (``plot_panel``) return
        the Figure."""
        if self._plot_function is None:
            raise TypeError(f"{type(self).__name__} has no plot")
        module, _, func = self._plot_function.partition(":")
        fn = getattr(importlib.import_module(module), func)
        return fn(self, ax=ax, **kwargs)

    def _repr_summary(self) -> str:
        items = ", ".join(f"{k}={_fmt(v)}" for k, v in self.summary().items())
        return f"{type(self).__name__}({items})"


def _cell(v: Any) -> Any:
    """A table cell: numbers and strings as they are, sequences as short text."""
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, (tuple, list, np.ndarray)):
        return ", ".join(str(_cell(x)) for x in np.asarray(v).ravel().tolist()) if len(v) <= 12 else f"{len(v)} values"
    if v is None or isinstance(v, (bool, int, float, str)):
        return v
    return str(v)


def per_layer_table(summary: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """Split a summary into its scalar entries and a layers x metrics table of ``metric[layer]`` keys."""
    import re

    scalars: dict[str, Any] = {}
    cells: dict[str, dict[str, Any]] = {}
    layers: list[str] = []
    metrics: list[str] = []
    for key, value in summary.items():
        m = re.fullmatch(r"(.+)\[(.+)\]", str(key))
        if m is None:
            scalars[str(key)] = value
            continue
        metric, layer = m.group(1), m.group(2)
        if layer not in cells:
            cells[layer] = {}
            layers.append(layer)
        if metric not in metrics:
            metrics.append(metric)
        cells[layer][metric] = _cell(value)
    if not layers:
        return scalars, None
    return scalars, {"index": layers, "columns": metrics,
                     "rows": [[cells[layer].get(mm) for mm in metrics] for layer in layers]}


def _words(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(_cell(v))


def default_section(result: Result) -> dict[str, Any]:
    """:meth:`Result.report_section` from ``summary()`` alone."""
    summary = result.summary()
    scalars, table = per_layer_table(summary)
    name = type(result).__name__
    facts = ", ".join(f"{k.replace('_', ' ')} {_words(v)}" for k, v in list(scalars.items())[:6])
    headline = f"{name}: {facts}." if facts else f"{name}."
    if table is None:
        table = {"index": list(scalars), "columns": ["value"], "rows": [[_cell(v)] for v in scalars.values()]}
    doc = (type(result).__doc__ or "").strip().splitlines()
    caption = doc[0].strip() if doc else name
    return {"headline": headline, "table": table, "caption": caption}


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
