"""Lazy package exports: names are imported from their modules on first use (``import topo_mi`` stays light)."""
from __future__ import annotations

import importlib
from typing import Callable, Iterable, Mapping


def lazy_exports(package: str, attrs: Mapping[str, str], submodules: Iterable[str] = (), *,
                 prefix: str = "") -> tuple[Callable, Callable, list[str]]:
    """``(__getattr__, __dir__, __all__)`` for a package.

    ``attrs`` maps each exported name to the module defining it (``prefix + module``);
    ``submodules`` are imported as ``package.name`` on first access.
    """
    submodules = tuple(submodules)
    names = sorted([*attrs, *submodules])

    def __getattr__(name: str):
        if name in attrs:
            return getattr(importlib.import_module(prefix + attrs[name]), name)
        if name in submodules:
            return importlib.import_module(f"{package}.{name}")
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__():
        return names

    return __getattr__, __dir__, names


__all__ = ["lazy_exports"]
