"""Atomic file writes: write to a temporary name in the same folder, fsync, then rename."""
from __future__ import annotations

import contextlib
import functools
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterator

import numpy as np


@functools.cache
def libc_function(name: str, argtypes: tuple, restype=None):
    """The C library's function ``name`` through ctypes (called without the GIL), with its argument
    types, looked up once; None where there is no such function (another OS or C library)."""
    import ctypes

    try:
        fn = getattr(ctypes.CDLL(None, use_errno=True), name)
    except (OSError, AttributeError):
        return None
    fn.argtypes = list(argtypes)
    fn.restype = ctypes.c_int if restype is None else restype
    return fn


def _read_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _read_umask()


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path`` atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".tmp{suffix}", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600 files; honour the umask like open() does
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_text(path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def _json_default(obj: Any):
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating,)):
        return float(obj)
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, (set, frozenset)):
        return sorted(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


NONFINITE_TAG = "__float__"


def _strict(obj: Any) -> Any:
    """Replace non-finite floats by ``{"__float__": "nan" | "inf" | "-inf"}`` (JSON has no such numbers)."""
    if isinstance(obj, dict):
        return {k: _strict(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_strict(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _strict(obj.tolist()) if obj.dtype.kind in "fc" else obj.tolist()
    if isinstance(obj, (float, np.floating)):
        v = float(obj)
        if v != v:
            return {NONFINITE_TAG: "nan"}
        if v in (float("inf"), float("-inf")):
            return {NONFINITE_TAG: "inf" if v > 0 else "-inf"}
        return v
    return obj


def _decode_nonfinite(d: dict) -> Any:
    if len(d) == 1 and NONFINITE_TAG in d and d[NONFINITE_TAG] in ("nan", "inf", "-inf"):
        return float(d[NONFINITE_TAG])
    return d


def dumps(obj: Any) -> str:
    """Deterministic strict JSON (sorted keys).

    JSON has no NaN or infinity: non-finite numbers are written as ``{"__float__": "nan"}``,
    ``{"__float__": "inf"}`` or ``{"__float__": "-inf"}``, which :func:`read_json` (and
    :func:`topo_mi.load_result`) turn back into floats; any JSON parser reads the file.
    """
    return json.dumps(_strict(obj), indent=2, sort_keys=True, default=_json_default, allow_nan=False)


def write_json(path, obj: Any) -> None:
    write_text(path, dumps(obj) + "\n")


def read_json(path) -> Any:
    """Read JSON written by :func:`write_json` (tagged non-finite numbers become floats again)."""
    with open(path, encoding="utf-8") as fh:
        return json.load(fh, object_hook=_decode_nonfinite)


def write_npz(path, arrays: dict[str, np.ndarray]) -> None:
    with atomic_path(path, suffix=".npz") as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays)


def write_npy(path, array: np.ndarray) -> None:
    with atomic_path(path, suffix=".npy") as tmp:
        with open(tmp, "wb") as fh:
            np.save(fh, array, allow_pickle=False)
