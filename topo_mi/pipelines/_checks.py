"""Checks of a validated spec against what exists, before anything runs.

:func:`validate_spec` checks the spec's shape (keys and types of its own tables);
:func:`spec_problems` checks what the names refer to: the dataset, the zoo model, the layers of
the model (built untrained, which takes milliseconds), the metric and method names, and the
types of analysis parameters against the defaults of the pipeline functions. Every problem is
returned at once as ``(key path, message)``.
"""
from __future__ import annotations

import inspect
from typing import Any

from topo_mi._validation import closest_names


def _unknown(kind: str, value: Any, options) -> str:
    options = list(options)
    close = closest_names(str(value), options, n=3)
    hint = f" (did you mean {', '.join(map(repr, close))}?)" if close else ""
    return f"unknown {kind} {value!r}; expected one of {', '.join(map(repr, options))}{hint}"


# analysis -> parameter -> (what, options) for the names the pipelines would reject at run time
def _name_tables() -> dict[str, dict[str, tuple[str, Any]]]:
    from topo_mi.compare._registry import METHODS
    from topo_mi.compare._stats import CORRECTIONS
    from topo_mi.geometry._embed import EMBED_METHODS
    from topo_mi.geometry._intrinsic import ID_METHODS
    from topo_mi.topology._backends import BACKENDS
    from topo_mi.topology._metrics import METRICS

    from topo_mi.pipelines.topology import SCALE_RULES

    return {
        "topology": {"metric": ("metric", METRICS), "backend": ("backend", BACKENDS),
                     "scale_rule": ("scale rule", SCALE_RULES)},
        "geometry": {"id_method": ("intrinsic-dimension method", ID_METHODS),
                     "embed": ("embedding method", EMBED_METHODS)},
        "compare": {"methods": ("comparison method", sorted(METHODS)), "correction": ("correction", CORRECTIONS)},
        "circuits": {"metric": ("circuit metric", ("r2", "accuracy", "neg_mse"))},
    }


def _type_problem(value: Any, default: Any) -> str | None:
    """Compare a value with the type of a parameter's default (None and other defaults: anything)."""
    if isinstance(default, bool):
        return None if isinstance(value, bool) else "true/false"
    if isinstance(default, int):
        return None if isinstance(value, int) and not isinstance(value, bool) else "an integer"
    if isinstance(default, float):
        return None if isinstance(value, (int, float)) and not isinstance(value, bool) else "a number"
    if isinstance(default, str):
        return None if isinstance(value, (str, list)) else "a string"
    if isinstance(default, (tuple, list)):
        return None if isinstance(value, (list, str)) else "a list"
    return None


# Parameters whose default is None but whose type is fixed: (kind, key) -> an example value.
_NONE_DEFAULT_TYPES = {("compare", "n_perm"): 0, ("compare", "n_boot"): 0, ("topology", "k"): 0,
                       ("topology", "n_landmarks"): 0, ("topology", "threshold"): 0.0, ("topology", "scale"): 0.0}


def _model_skeleton(model_spec: dict, dataset_spec: dict | None):
    """The model's module tree without weights or training, or None when it cannot be known cheaply."""
    from topo_mi import models as zoo_mod

    if model_spec.get("zoo"):
        from topo_mi.models import zoo

        return zoo._build(zoo._entry(model_spec["zoo"]), 0)
    if model_spec.get("hf"):
        return None  # a transformers model: its names are checked when it is loaded
    arch = model_spec.get("architecture")
    cls = {"mlp": zoo_mod.MLP, "residual_mlp": zoo_mod.ResidualMLP,
           "attention_only": zoo_mod.AttentionOnlyTransformer, "rnn": zoo_mod.TanhRNN}.get(arch)
    if cls is None:
        return None
    params = dict(model_spec.get("params", {}))
    if arch in ("mlp", "residual_mlp"):  # module names do not depend on the data's dimensions
        params.setdefault("in_dim", 2)
        params.setdefault("out_dim", 2)
    try:
        return cls(**params)
    except Exception:  # wrong architecture parameters: reported when the model is built
        return None


def spec_problems(spec: dict, analysis_function=None) -> list[tuple[str, str]]:
    """Every problem of a validated spec that can be found without running it."""
    problems: list[tuple[str, str]] = []
    ds = spec.get("dataset")
    if ds:
        from topo_mi import datasets

        if ds["name"] not in datasets.names():
            problems.append(("dataset.name", _unknown("dataset", ds["name"], datasets.names())))
    model = spec.get("model") or {}
    skeleton = None
    if model.get("zoo"):
        from topo_mi.models.zoo import zoo_names

        if model["zoo"] not in zoo_names():
            problems.append(("model.zoo", _unknown("zoo model", model["zoo"], zoo_names())))
    if model and not any(p[0] == "model.zoo" for p in problems):
        skeleton = _model_skeleton(model, ds)
    layers = (spec.get("activations") or {}).get("layers")
    if skeleton is not None and layers:
        from topo_mi.activations._hooks import resolve_layers
        from topo_mi.errors import TopoMIError

        for i, layer in enumerate([layers] if isinstance(layers, str) else layers):
            try:
                resolve_layers(skeleton, [layer])
            except (TopoMIError, KeyError, ValueError) as exc:
                msg = str(exc.args[0]) if exc.args else str(exc)
                problems.append((f"activations.layers[{i}]", msg))
    tables = _name_tables()
    for kind, params in (spec.get("analyses") or {}).items():
        for key, value in params.items():
            rule = tables.get(kind, {}).get(key)
            if rule is not None:
                what, options = rule
                for v in ([value] if not isinstance(value, list) else value):
                    if isinstance(v, str) and v not in options:
                        problems.append((f"analyses.{kind}.{key}", _unknown(what, v, options)))
        if analysis_function is None:
            continue
        try:
            sig = inspect.signature(analysis_function(kind)).parameters
        except Exception:
            continue
        for key, value in params.items():
            if key in sig and sig[key].default is not inspect.Parameter.empty:
                default = sig[key].default
                if default is None:
                    default = _NONE_DEFAULT_TYPES.get((kind, key))
                expected = _type_problem(value, default)
                if expected:
                    problems.append((f"analyses.{kind}.{key}",
                                     f"expected {expected}, got {type(value).__name__} {value!r}"))
    return problems


__all__ = ["spec_problems"]
