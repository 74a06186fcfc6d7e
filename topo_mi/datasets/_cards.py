"""Dataset cards as TOML: the files in the repository's ``datasets/`` folder are rendered from
:func:`topo_mi.datasets.card`, so the code stays the single source of truth (a test checks that
they agree). TOML has no null: parameters whose value is None are written as comments."""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from topo_mi._io import write_text

_HEADER = ("# Dataset card of topo_mi.datasets.make({name!r}) at its default parameters.\n"
           "# Rendered from topo_mi.datasets.card({name!r}) by topo_mi.datasets._cards.write_cards;\n"
           "# change the code, then re-render. Betti numbers: keys are prime fields, lists start at H0.\n")


def _key(k: Any) -> str:
    k = str(k)
    return k if k.replace("_", "").replace("-", "").isalnum() and k.isascii() and not k.isdigit() \
        else json.dumps(k)


def _value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    raise TypeError(f"cannot write {type(v).__name__} to a TOML card")


def _table(lines: list[str], prefix: str, table: dict) -> None:
    scalars = {k: v for k, v in table.items() if not isinstance(v, dict)}
    tables = {k: v for k, v in table.items() if isinstance(v, dict)}
    if prefix and (scalars or not tables):
        lines.append("")
        lines.append(f"[{prefix}]")
    for k, v in scalars.items():
        if v is None:
            lines.append(f"# {_key(k)} is unset (None)")
        elif isinstance(v, list) and v and all(isinstance(x, str) for x in v) and sum(map(len, v)) > 80:
            lines.append(f"{_key(k)} = [")
            lines.extend(f"  {_value(x)}," for x in v)
            lines.append("]")
        else:
            lines.append(f"{_key(k)} = {_value(v)}")
    for k, v in tables.items():
        _table(lines, f"{prefix}.{_key(k)}" if prefix else _key(k), v)


def to_toml(card: dict) -> str:
    """The card as TOML text (top-level values first, then one table per dict)."""
    lines = [_HEADER.format(name=card["name"]).rstrip("\n")]
    _table(lines, "", card)
    return "\n".join(lines) + "\n"


def write_cards(folder) -> list[Path]:
    """Write ``<name>.toml`` for every built-in data set into ``folder``; returns the paths."""
    from topo_mi.datasets import card, names

    folder = Path(folder)
    out = []
    for name in names():
        path = folder / f"{name}.toml"
        write_text(path, to_toml(card(name)))
        out.append(path)
    return out
