"""topo_mi: topology, geometry, circuits and dynamics of neural-network representations.

Importing ``topo_mi`` is cheap: torch, gudhi, ripser, umap, matplotlib and transformers are
imported only when a function that needs them is called.

>>> import topo_mi as tm
>>> acts = tm.collect(model, inputs, layers=["fc1", "fc2"])          # doctest: +SKIP
>>> res = tm.topology.persistence(acts["fc1"], max_dim=1)            # doctest: +SKIP
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

__version__ = "0.1.0"

_SUBMODULES = (
    "activations", "datasets", "models", "topology", "geometry", "dynamics", "circuits",
    "compare", "pipelines", "plotting", "report", "parallel", "errors", "cli", "differential",
)
_ATTRS = {
    "collect": "topo_mi.activations",
    "collect_text": "topo_mi.activations",
    "Activations": "topo_mi.activations",
    "load_result": "topo_mi._results",
}

__all__ = ["__version__", *_SUBMODULES, *_ATTRS]

if TYPE_CHECKING:  # pragma: no cover
    from topo_mi._results import load_result  # noqa: F401
    from topo_mi.activations import Activations, collect  # noqa: F401


def __getattr__(name: str):
    if name in _ATTRS:
        return getattr(importlib.import_module(_ATTRS[name]), name)
    if name in _SUBMODULES:
        return importlib.import_module(f"topo_mi.{name}")
    raise AttributeError(f"module 'topo_mi' has no attribute {name!r}")


def __dir__():
    return sorted(__all__)
