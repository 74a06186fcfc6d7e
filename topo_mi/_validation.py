"""Boundary checks shared by every public function.

One message format: ``<parameter>: expected <what>, got <value>``.
"""
from __future__ import annotations

import difflib
import numbers
from typing import Any, Iterable, Sequence

import numpy as np

from topo_mi.errors import InvalidParameterError, NonFiniteError, UnknownNameError


def _short(value: Any, limit: int = 80) -> str:
    if isinstance(value, np.ndarray):
        return f"array of shape {value.shape} and dtype {value.dtype}"
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def fail(name: str, expected: str, got: Any, *, cls=InvalidParameterError, raw: bool = False):
    """Raise ``cls`` with the standard message."""
    shown = got if raw else _short(got)
    raise cls(f"{name}: expected {expected}, got {shown}")


def closest_names(name: str, valid: Iterable[str], n: int = 5) -> list[str]:
    valid = list(valid)
    close = difflib.get_close_matches(str(name), valid, n=n, cutoff=0.4)
    if not close:  # substring matches help with long dotted module names
        close = [v for v in valid if str(name) in v or v in str(name)][:n]
    return close


def check_choice(name: str, value: Any, options: Sequence[str]) -> str:
    """Check that ``value`` is one of ``options`` (strings); suggest the closest on error."""
    if not isinstance(value, str) or value not in options:
        hint = closest_names(str(value), options, n=3)
        extra = f" (did you mean {', '.join(map(repr, hint))}?)" if hint else ""
        raise UnknownNameError(
            f"{name}: expected one of {', '.join(map(repr, options))}, got {_short(value)}{extra}"
        )
    return value


def unknown_name(kind: str, name: str, valid: Iterable[str]) -> UnknownNameError:
    valid = sorted(valid, key=str)
    close = closest_names(name, valid)
    msg = f"unknown {kind} {name!r}"
    if close:
        msg += f"; closest valid names: {', '.join(map(repr, close))}"
    elif valid:
        shown = ", ".join(map(repr, valid[:12])) + (" ..." if len(valid) > 12 else "")
        msg += f"; valid names: {shown}"
    return UnknownNameError(msg)


def check_int(name: str, value: Any, *, min_value: int | None = None, max_value: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        fail(name, "an integer", value)
    value = int(value)
    if min_value is not None and value < min_value:
        fail(name, f"an integer >= {min_value}", value)
    if max_value is not None and value > max_value:
        fail(name, f"an integer <= {max_value}", value)
    return value


def check_float(name: str, value: Any, *, min_value: float | None = None, max_value: float | None = None,
                min_inclusive: bool = True, max_inclusive: bool = True, allow_inf: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        fail(name, "a real number", value)
    value = float(value)
    if np.isnan(value) or (np.isinf(value) and not allow_inf):
        fail(name, "a finite real number", value)
    if min_value is not None and (value < min_value or (not min_inclusive and value == min_value)):
        fail(name, f"a number {'>=' if min_inclusive else '>'} {min_value}", value)
    if max_value is not None and (value > max_value or (not max_inclusive and value == max_value)):
        fail(name, f"a number {'<=' if max_inclusive else '<'} {max_value}", value)
    return value


def check_random_state(seed: Any) -> np.random.Generator:
    """Turn ``None``/int/Generator into a ``numpy.random.Generator`` (no global state)."""
    if isinstance(seed, numbers.Integral) and not isinstance(seed, bool) and seed < 0:
        fail("seed", "None, a non-negative int or a numpy Generator", seed)
    if seed is None or isinstance(seed, (numbers.Integral, np.random.SeedSequence)) and not isinstance(seed, bool):
        return np.random.default_rng(seed)
    if isinstance(seed, np.random.Generator):
        return seed
    if isinstance(seed, np.random.RandomState):
        return np.random.default_rng(seed.randint(0, 2**31 - 1))
    fail("seed", "None, an int or a numpy Generator", seed)


def check_seed(seed: Any, name: str = "seed") -> int:
    """A seed for torch generators: a non-negative integer."""
    return check_int(name, seed, min_value=0)


def as_array(X: Any, name: str = "X"):
    """Convert numpy arrays, torch tensors and array-likes to a numpy array (no copy when possible).

    Refused with a named error: complex values (never silently cast to their real part), scipy
    sparse matrices (densify explicitly with ``X.toarray()``: the dense copy may not fit), ragged
    nested lists. Torch half/bfloat16 tensors are widened to float32 (numpy has no bfloat16).
    """
    if isinstance(X, np.ndarray):
        if X.dtype.kind == "c":
            fail(name, "real numbers (complex values are not supported: pass X.real or abs(X) explicitly)", X)
        return X
    if hasattr(X, "detach") and hasattr(X, "cpu"):  # torch tensor, without importing torch
        if X.is_complex():
            fail(name, "real numbers (complex values are not supported: pass X.real or X.abs() explicitly)",
                 f"a complex tensor of shape {tuple(X.shape)}", raw=True)
        t = X.detach().cpu()
        if str(t.dtype) in ("torch.bfloat16", "torch.float16"):
            t = t.float()
        return t.numpy()
    if hasattr(X, "toarray") and hasattr(X, "nnz"):  # scipy.sparse, without importing scipy
        fail(name, "a dense array (sparse matrices are refused: call X.toarray() if the dense copy fits)",
             f"a sparse matrix of shape {getattr(X, 'shape', '?')} with {X.nnz} stored values", raw=True)
    try:
        A = np.asarray(X)
    except Exception as exc:
        raise InvalidParameterError(f"{name}: expected an array-like of numbers (equal-length rows), got "
                                    f"{_short(X)} ({type(exc).__name__}: {exc})") from None
    if A.dtype.kind == "c":
        fail(name, "real numbers (complex values are not supported: pass X.real or abs(X) explicitly)", A)
    return A


def check_finite(name: str, X: np.ndarray, *, what: str = "values") -> None:
    if X.dtype.kind in "fc":
        # one cheap reduction first: a finite sum means every entry is finite (a NaN or an inf
        # makes the sum NaN or inf); only a non-finite sum (or an overflow) needs the exact count
        with np.errstate(over="ignore", invalid="ignore"):
            if X.size and np.isfinite(X.sum(dtype=np.float64)):
                return
        finite = np.isfinite(X)
        if not finite.all():
            bad = int((~finite).sum())
            n_nan = int(np.isnan(X).sum())
            rows = ""
            if X.ndim == 2:
                bad_rows = np.flatnonzero(~finite.all(axis=1))
                shown = ", ".join(map(str, bad_rows[:10])) + (", ..." if bad_rows.size > 10 else "")
                rows = f" in {bad_rows.size} of {X.shape[0]} rows (rows {shown})"
            raise NonFiniteError(
                f"{name}: expected finite {what}, got {bad} non-finite entries{rows} "
                f"({n_nan} NaN, {bad - n_nan} inf)"
            )


def check_point_cloud(X: Any, name: str = "X", *, min_points: int = 2, dtype=np.float64,
                      allow_nonfinite: bool = False) -> np.ndarray:
    """Validate a point cloud: 2-D, numeric, at least ``min_points`` rows, finite."""
    # An Activations layer view or anything with __array__ works.
    X = as_array(X, name)
    if X.dtype == object or X.dtype.kind not in "biuf":
        fail(name, "a real numeric array of shape (n_samples, n_features)", X)
    if X.ndim == 1:
        fail(name, "a 2-D array of shape (n_samples, n_features) (use X.reshape(-1, 1) for 1-D data)", X)
    if X.ndim != 2:
        fail(name, "a 2-D array of shape (n_samples, n_features)", X)
    if X.shape[0] < min_points:
        fail(name, f"at least {min_points} points (rows)", f"{X.shape[0]} (shape {X.shape})", raw=True)
    if X.shape[1] < 1:
        fail(name, "at least one feature (column)", X)
    X = np.asarray(X, dtype=dtype)
    if not allow_nonfinite:
        check_finite(name, X)
    return X


def check_distance_matrix(D: Any, name: str = "X", *, atol: float = 1e-8) -> np.ndarray:
    """Validate a precomputed distance matrix: square, symmetric, zero diagonal, non-negative."""
    D = as_array(D, name)
    if D.ndim != 2 or D.shape[0] != D.shape[1]:
        fail(name, "a square distance matrix with metric='precomputed'", D)
    if D.shape[0] < 2:
        fail(name, "a distance matrix of at least 2 points", D)
    if D.dtype == object or D.dtype.kind not in "biuf":
        fail(name, "a real numeric distance matrix", D)
    D = np.asarray(D, dtype=np.float64)
    nan = np.isnan(D)
    if nan.any():
        raise NonFiniteError(f"{name}: expected a distance matrix without NaN, got {int(nan.sum())} NaN entries")
    if (D < 0).any():
        fail(name, "non-negative distances", f"minimum {D.min():g}", raw=True)
    finite = np.isfinite(D)
    asym = np.abs(np.where(finite, D, 0) - np.where(finite.T, D.T, 0)).max()
    if asym > atol * max(1.0, np.abs(D[finite]).max()) or not np.array_equal(finite, finite.T):
        fail(name, "a symmetric distance matrix", f"max |D - D.T| = {asym:g}", raw=True)
    if np.abs(np.diag(D)).max() > atol:
        fail(name, "a zero diagonal", f"max |diag| = {np.abs(np.diag(D)).max():g}", raw=True)
    return D


__all__ = [
    "fail", "closest_names", "check_choice", "unknown_name", "check_int", "check_float",
    "check_random_state", "check_seed", "as_array", "check_finite", "check_point_cloud", "check_distance_matrix",
]
