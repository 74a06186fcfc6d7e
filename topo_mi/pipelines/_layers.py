"""The layers a layer-by-layer pipeline runs on: all of them, or the ones asked for, checked."""
from __future__ import annotations

from typing import Any

from topo_mi._validation import fail, unknown_name


def layer_names(acts) -> list[str]:
    """The layers of an Activations (``acts.layers``) or of a mapping (its keys), in order."""
    layers = getattr(acts, "layers", None)
    return list(layers) if layers is not None else list(acts.keys())


def pick_layers(acts, layers: Any, *, empty: str = "at least one layer", distinct: bool = False) -> list[str]:
    """The layer names to run on: every layer of ``acts`` in order when ``layers`` is None, else
    ``layers`` (one name or a sequence of names).

    An empty ``layers`` fails with ``expected <empty>``; a name ``acts`` lacks raises
    :class:`~topo_mi.errors.UnknownNameError` (naming the closest layers); with ``distinct``, a name
    given twice fails too.
    """
    available = layer_names(acts)
    if layers is None:
        return available
    if isinstance(layers, str):
        layers = [layers]
    layers = list(layers)
    if not layers:
        fail("layers", empty, layers)
    for name in layers:
        if name not in available:
            raise unknown_name("layer", name, available)
    if distinct and len(set(layers)) != len(layers):
        fail("layers", "distinct layer names", layers)
    return layers


__all__ = ["layer_names", "pick_layers"]
