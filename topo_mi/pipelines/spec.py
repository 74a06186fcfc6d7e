"""Declarative pipeline specs (TOML): schema, validation, defaults.

A spec is data, never code: it is parsed with ``tomllib`` and checked against :data:`SCHEMA`
before anything runs. Every problem is reported at once with its key path, what was expected
and what was given (:class:`~topo_mi.errors.SpecError`).

Example (``pipelines/demo.toml``)::

    name = "demo"
    seed = 0

    [dataset]
    name = "naitzat_d1"
    params = { resolution = 0.38 }

    [model]
    zoo = "mlp-naitzat-d1-relu"

    [activations]
    layers = ["act*"]
    reduce = "last"

    [analyses.topology]
    max_dim = 1
    n_landmarks = 400
"""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from topo_mi._validation import closest_names
from topo_mi.errors import InvalidParameterError, SpecError

try:  # Python >= 3.11
    import tomllib
except ImportError:  # pragma: no cover
    import tomli as tomllib

ANALYSES = ("topology", "geometry", "dynamics", "circuits", "compare", "lyapunov_gain", "guarantees")

# key -> (types, required, default, check) ; check(value) -> error text or None
_num = (int, float)


def _pos_int(v):
    return None if isinstance(v, int) and not isinstance(v, bool) and v >= 1 else "an integer >= 1"


def _nonneg_int(v):
    return None if isinstance(v, int) and not isinstance(v, bool) and v >= 0 else "an integer >= 0"


def _str_or_list(v):
    if isinstance(v, str) or (isinstance(v, list) and v and all(isinstance(x, str) for x in v)):
        return None
    return "a string or a non-empty list of strings"


def _int_list(v):
    if isinstance(v, list) and v and all(isinstance(x, int) and not isinstance(x, bool) for x in v):
        return None
    return "a non-empty list of integers"


def _reduce(v):
    if v in ("last", "mean", "flatten") or (isinstance(v, int) and not isinstance(v, bool)):
        return None
    return "'last', 'mean', 'flatten' or an integer token position"


def _choice(*opts):
    def check(v):
        return None if v in opts else "one of " + ", ".join(map(repr, opts))
    return check


SCHEMA: dict[str, Any] = {
    "name": (str, False, "run", None),
    "description": (str, False, "", None),
    "seed": (int, False, 0, _nonneg_int),
    "out": (str, False, None, None),
    "dataset": {
        "name": (str, True, None, None),
        "n": (int, False, None, _pos_int),
        "seed": (int, False, None, _nonneg_int),
        "params": (dict, False, {}, None),
    },
    "model": {
        "zoo": (str, False, None, None),
        "checkpoint": (str, False, None, None),
        "architecture": (str, False, None, _choice("mlp", "residual_mlp", "attention_only", "rnn")),
        "params": (dict, False, {}, None),
        "hf": (str, False, None, None),
        "seeds": (list, False, None, _int_list),
        "train": (dict, False, {}, None),
    },
    "activations": {
        "layers": ((str, list), False, None, _str_or_list),
        "reduce": ((str, int), False, "last", _reduce),
        "batch_size": (int, False, 256, _pos_int),
        "max_samples": (int, False, None, _pos_int),
        "cache": (bool, False, True, None),
    },
    "executor": {
        "kind": (str, False, "serial", _choice("serial", "process", "dask")),
        "workers": (int, False, None, _pos_int),
        "address": (str, False, None, None),
    },
    "analyses": {name: (dict, False, None, None) for name in ANALYSES},
}


def _typename(t) -> str:
    if isinstance(t, tuple):
        return " or ".join(_typename(x) for x in t)
    return {str: "a string", int: "an integer", float: "a number", bool: "true/false", dict: "a table",
            list: "a list"}.get(t, t.__name__)


def _check_table(doc: dict, schema: dict, path: str, problems: list, out: dict) -> None:
    for key, value in doc.items():
        kp = f"{path}.{key}" if path else key
        if key not in schema:
            close = closest_names(key, schema, n=2)
            hint = f" (did you mean {', '.join(map(repr, close))}?)" if close else ""
            problems.append((kp, f"unknown key; expected one of {', '.join(sorted(schema))}{hint}"))
            continue
        rule = schema[key]
        if isinstance(rule, dict):
            if not isinstance(value, dict):
                problems.append((kp, f"expected a table, got {type(value).__name__} {value!r}"))
                continue
            sub: dict = {}
            _check_table(value, rule, kp, problems, sub)
            out[key] = sub
            continue
        types, _, _, check = rule
        ok_types = types if isinstance(types, tuple) else (types,)
        if float in ok_types:
            ok_types = ok_types + (int,)
        if isinstance(value, bool) and bool not in ok_types:
            problems.append((kp, f"expected {_typename(types)}, got {value!r}"))
            continue
        if not isinstance(value, ok_types):
            problems.append((kp, f"expected {_typename(types)}, got {type(value).__name__} {value!r}"))
            continue
        if check is not None:
            msg = check(value)
            if msg:
                problems.append((kp, f"expected {msg}, got {value!r}"))
                continue
        out[key] = value
    for key, rule in schema.items():
        if isinstance(rule, dict):
            continue
        types, required, default, _ = rule
        if key not in doc:
            if required:
                problems.append((f"{path}.{key}" if path else key, "required key is missing"))
            elif default is not None or key in ("out",):
                out.setdefault(key, copy.deepcopy(default))


def validate_spec(doc: dict, *, base_dir: Path | None = None) -> dict:
    """Check a parsed spec; return it resolved with defaults, or raise SpecError listing every problem."""
    if not isinstance(doc, dict):
        raise SpecError([("<root>", f"expected a table, got {type(doc).__name__}")])
    problems: list[tuple[str, str]] = []
    out: dict = {}
    _check_table(doc, SCHEMA, "", problems, out)
    model = out.get("model")
    if model is not None:
        sources = [k for k in ("zoo", "checkpoint", "hf") if model.get(k)]
        if not sources and model.get("architecture"):
            sources = ["architecture"]  # built from params and trained on the dataset
        if len(sources) != 1:
            problems.append(("model", "expected exactly one of 'zoo', 'checkpoint', 'hf', or 'architecture' "
                             "(trained from scratch), got " + (", ".join(sources) if sources else "none")))
        if model.get("seeds") and not (model.get("architecture") and not model.get("checkpoint")):
            problems.append(("model.seeds", "only with 'architecture' (one model trained per seed)"))
        if model.get("checkpoint") and not model.get("architecture"):
            problems.append(("model.architecture", "required with 'checkpoint' (mlp, residual_mlp, "
                             "attention_only or rnn) so the weights can be loaded into a known class"))
        if model.get("checkpoint") and base_dir is not None:
            p = Path(model["checkpoint"])
            if not p.is_absolute():
                p = base_dir / p
            if not p.is_file():
                problems.append(("model.checkpoint", f"expected an existing .safetensors or .pt file, got {str(p)!r}"))
    analyses = out.get("analyses") or {}
    if not analyses:
        problems.append(("analyses", f"expected at least one analysis table among {', '.join(ANALYSES)}"))
    needs_acts = {"topology", "geometry", "compare"} & set(analyses)
    needs_model = {"dynamics", "circuits"} & set(analyses)
    if (needs_acts or needs_model) and "model" not in out:
        problems.append(("model", f"required by analyses {', '.join(sorted(needs_acts | needs_model))}"))
    if (needs_acts or needs_model) and "dataset" not in out:
        problems.append(("dataset", f"required by analyses {', '.join(sorted(needs_acts | needs_model))}"))
    ex = out.get("executor", {})
    if ex.get("kind") == "dask" and not ex.get("address"):
        problems.append(("executor.address", "required when executor.kind = 'dask' (a scheduler address)"))
    if problems:
        raise SpecError(problems)
    out.setdefault("executor", {"kind": "serial"})
    out.setdefault("activations", {"reduce": "last", "batch_size": 256, "cache": True})
    return out


def load_spec(path_or_text: str | Path | dict, *, base_dir: Path | None = None) -> dict:
    """Parse and validate a spec from a path, a TOML string or an already-parsed dict."""
    if isinstance(path_or_text, dict):
        return validate_spec(path_or_text, base_dir=base_dir)
    text = None
    p = Path(path_or_text) if isinstance(path_or_text, (str, Path)) else None
    if p is not None and (isinstance(path_or_text, Path) or (len(str(path_or_text)) < 4096 and "\n" not in str(path_or_text))):
        if p.is_dir():
            raise InvalidParameterError(f"spec: expected a TOML file, got {str(p)!r}, which is a folder")
        if not p.is_file():
            raise InvalidParameterError(f"spec: expected a TOML file, got {str(p)!r} which does not exist")
        raw = p.read_bytes()
        if b"\x00" in raw[:8192]:
            raise InvalidParameterError(f"spec: expected a TOML text file, got {str(p)!r}, which is a binary file")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidParameterError(f"spec: expected a UTF-8 TOML text file, got {str(p)!r}, which is not "
                                        f"UTF-8 text ({exc.reason} at byte {exc.start})") from None
        base_dir = base_dir or p.resolve().parent
    else:
        text = str(path_or_text)
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SpecError([("<toml>", f"not valid TOML: {exc}")]) from None
    return validate_spec(doc, base_dir=base_dir)


__all__ = ["SCHEMA", "ANALYSES", "validate_spec", "load_spec"]
