"""One exception family for topo_mi.

Every error subclasses :class:`TopoMIError` *and* the built-in type a user would expect, so
``except ValueError`` keeps working while ``except topo_mi.errors.TopoMIError`` catches them all.
"""
from __future__ import annotations


class TopoMIError(Exception):
    """Base class of every error raised by topo_mi."""


class InvalidParameterError(TopoMIError, ValueError):
    """A parameter has the wrong value, type or shape (the message names it)."""


class NonFiniteError(InvalidParameterError):
    """NaN or inf values where finite numbers are required."""


class UnknownNameError(TopoMIError, KeyError):
    """A name (layer, dataset, model, method, backend...) that does not exist.

    The message lists the closest valid names.
    """

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


class ResourceError(TopoMIError, MemoryError):
    """The requested computation would not fit in memory (the message says what to change)."""


class StoreMismatchError(TopoMIError, ValueError):
    """An on-disk activation store was written with different arguments."""


class StoreCorruptedError(TopoMIError, ValueError):
    """An on-disk activation store fails its checksums (the message names the file; ``damaged``
    maps each damaged file to the damaged batch numbers, or None for the whole file)."""

    def __init__(self, message: str, damaged: dict | None = None):
        super().__init__(message)
        self.damaged = dict(damaged or {})


class DependencyError(TopoMIError, ImportError):
    """An optional dependency is missing (the message names the extra to install)."""


class DivergenceError(TopoMIError, FloatingPointError):
    """A trajectory or an iteration produced non-finite values (the message gives the step)."""


class WorkerError(TopoMIError, RuntimeError):
    """A worker process of an executor died (killed, out of memory) and its task could not be rerun."""


class SpecError(InvalidParameterError):
    """A pipeline spec is invalid; ``.problems`` lists every (key path, message)."""

    def __init__(self, problems):
        self.problems = list(problems)
        lines = [f"  {path}: {msg}" for path, msg in self.problems]
        super().__init__("invalid pipeline spec:\n" + "\n".join(lines))


class TopoMIWarning(UserWarning):
    """A result is valid but likely not what was wanted (the message names the call and the layer).

    Silence them with ``warnings.simplefilter("ignore", TopoMIWarning)`` (``topo-mi -q`` does)."""


class CostWarning(TopoMIWarning):
    """A computation is estimated to take long or much memory (the message gives the estimate and
    cheaper options)."""


__all__ = [
    "TopoMIWarning", "CostWarning", "TopoMIError", "InvalidParameterError", "NonFiniteError",
    "UnknownNameError", "ResourceError", "StoreMismatchError", "StoreCorruptedError", "DependencyError",
    "DivergenceError", "SpecError", "WorkerError",
]
