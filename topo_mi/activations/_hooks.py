"""One hook mechanism for reading and editing layer outputs, and the layer-name resolution.

:func:`resolve_layers` turns names, glob patterns or a predicate into modules (unknown names get the
closest valid ones); :func:`_recording` registers forward hooks that are removed in ``finally``;
:func:`_eval_mode` puts a model in eval mode and restores every submodule's flag afterwards.
"""
from __future__ import annotations

import contextlib
import re
from typing import Any, Callable

from topo_mi._validation import closest_names, fail
from topo_mi.errors import UnknownNameError


# ---------------------------------------------------------------------------------------------
# layer resolution
# ---------------------------------------------------------------------------------------------
def _glob_to_regex(pattern: str) -> re.Pattern:
    """``*`` matches one dotted component, ``**`` any number of them, ``?`` one character."""
    out = []
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if pattern.startswith("**", i):
            out.append(".*")
            i += 2
            continue
        if c == "*":
            out.append(r"[^.]*")
        elif c == "?":
            out.append(r"[^.]")
        elif c == "[":
            j = pattern.find("]", i)
            if j == -1:
                out.append(re.escape(c))
            else:
                out.append(pattern[i:j + 1])  # a character class, copied as is
                i = j + 1
                continue
        else:
            out.append(re.escape(c))
        i += 1
    return re.compile("^" + "".join(out) + "$")


def resolve_layers(model, layers: Any) -> list[tuple[str, Any]]:
    """Resolve names, glob patterns or a predicate to ``[(name, module), ...]``.

    Explicit names keep the given order; each pattern expands in the model's module order.
    """
    modules = dict(model.named_modules())
    modules.pop("", None)
    if layers is None:
        fail("layers", "module names, glob patterns or a predicate (see model.named_modules())", None)
    if callable(layers) and not isinstance(layers, str):
        chosen = [n for n, m in modules.items() if layers(n, m)]
        if not chosen:
            raise UnknownNameError("layers: the predicate selected no module of the model")
        return [(n, modules[n]) for n in chosen]
    if isinstance(layers, str):
        layers = [layers]
    layers = list(layers)
    if not layers:
        fail("layers", "at least one layer name or pattern", layers)
    out: list[str] = []
    for spec in layers:
        if not isinstance(spec, str):
            fail("layers", "strings (module names or glob patterns)", spec)
        if any(ch in spec for ch in "*?["):
            rx = _glob_to_regex(spec)
            matched = [n for n in modules if rx.match(n)]
            if not matched:
                close = closest_names(spec.replace("*", ""), modules)
                raise UnknownNameError(f"layers: pattern {spec!r} matches no module"
                                       + (f"; closest valid names: {', '.join(map(repr, close))}" if close else ""))
            out.extend(matched)
        elif spec in modules:
            out.append(spec)
        else:
            close = closest_names(spec, modules)
            shown = close or list(modules)[:10]
            raise UnknownNameError(f"layers: unknown layer {spec!r}; closest valid names: "
                                   f"{', '.join(map(repr, shown))}")
    seen: set[str] = set()
    uniq = [n for n in out if not (n in seen or seen.add(n))]
    return [(n, modules[n]) for n in uniq]


# ---------------------------------------------------------------------------------------------
# hooks
# ---------------------------------------------------------------------------------------------
@contextlib.contextmanager
def _recording(named_modules: list[tuple[str, Any]], record: Callable[[str, Any], Any], *,
               before: Callable[[str], None] | None = None):
    """Register one forward hook per module; always removed, even when the forward raises.

    ``record(name, output)`` reads the output (return None) or edits it (return the replacement):
    :func:`topo_mi.activations.collect` reads, :func:`topo_mi.causal.intervene` writes.
    ``before(name)``, when given, runs as a forward pre-hook (when each module's forward starts).
    """
    handles = []
    try:
        for name, module in named_modules:
            if before is not None:
                handles.append(module.register_forward_pre_hook(_PreHook(name, before)))
            handles.append(module.register_forward_hook(_Hook(name, record)))
        yield
    finally:
        for h in handles:
            h.remove()


class _Hook:
    """A forward hook calling ``record(name, output)``; a non-None return value replaces the output."""
    __slots__ = ("name", "record")

    def __init__(self, name, record):
        self.name, self.record = name, record

    def __call__(self, module, args, output):
        return self.record(self.name, output)


class _PreHook:
    """A forward pre-hook calling ``before(name)``; the inputs are left unchanged."""
    __slots__ = ("name", "before")

    def __init__(self, name, before):
        self.name, self.before = name, before

    def __call__(self, module, args):
        self.before(self.name)


@contextlib.contextmanager
def _eval_mode(model):
    """Eval mode during collection; every submodule's own training flag is restored after."""
    flags = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for m, flag in flags:
            m.training = flag
