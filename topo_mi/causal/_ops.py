"""Intervention operations: plain objects that map a layer's output tensor to its replacement.

Every op is applied to the first tensor of a layer's output, of shape ``(batch, features)`` or
``(batch, positions, ..., features)``. ``units`` restricts the op to entries of the last (feature)
axis, ``positions`` to entries of axis 1 (token positions); outside the restriction the output is
left bit for bit as it was. Ops compose left to right with ``a >> b`` (or a list in
:func:`~topo_mi.causal.intervene`).
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

from topo_mi._validation import fail
from topo_mi.errors import InvalidParameterError, NonFiniteError


class _Call:
    """What an op knows about the forward it edits: the layer, the rows' sample ids."""
    __slots__ = ("layer", "sample_ids")

    def __init__(self, layer: str, sample_ids):
        self.layer, self.sample_ids = layer, sample_ids


# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------
def _as_numpy(x, name: str) -> np.ndarray:
    try:
        import torch

        if isinstance(x, torch.Tensor):
            x = x.detach().cpu().numpy()
    except ImportError:  # pragma: no cover
        pass
    arr = np.asarray(x)
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        fail(name, "a numeric array or tensor", f"dtype {arr.dtype}", raw=True)
    return arr


def _finite_vector(v, name: str, *, matrix: bool = False) -> np.ndarray:
    arr = _as_numpy(v, name).astype(np.float64)
    if matrix:
        if arr.ndim == 1:
            arr = arr[None]
        if arr.ndim != 2 or arr.shape[0] == 0 or arr.shape[1] == 0:
            fail(name, "a vector (d,) or a matrix (k, d) of directions", f"shape {arr.shape}", raw=True)
    elif arr.ndim != 1 or arr.shape[0] == 0:
        fail(name, "a non-empty 1-D direction (d,)", f"shape {arr.shape}", raw=True)
    if not np.isfinite(arr).all():
        raise NonFiniteError(f"{name}: expected finite values, got {int((~np.isfinite(arr)).sum())} NaN/inf entries")
    return arr


def _short_vec(arr: np.ndarray) -> str:
    return f"<{'x'.join(map(str, arr.shape))} {arr.dtype}>"


def _check_index(name: str, value):
    if value is None:
        return None
    if isinstance(value, slice):
        return value
    arr = np.asarray(value)
    if arr.ndim == 0:
        arr = arr[None]
    if arr.ndim != 1 or arr.size == 0 or not (arr.dtype == bool or np.issubdtype(arr.dtype, np.integer)):
        fail(name, "None, a slice, an int, a non-empty list of ints or a boolean mask", value)
    return arr


def _mask_1d(index, size: int, name: str, layer: str):
    import torch

    if isinstance(index, slice):
        m = torch.zeros(size, dtype=torch.bool)
        m[index] = True
        return m
    if index.dtype == bool:
        if index.shape[0] != size:
            raise InvalidParameterError(f"{name}: expected a boolean mask of length {size} (layer {layer!r}), "
                                        f"got length {index.shape[0]}")
        return torch.from_numpy(index.copy())
    if index.min() < -size or index.max() >= size:
        raise InvalidParameterError(f"{name}: expected indices in [-{size}, {size}) for layer {layer!r}, got "
                                    f"range [{int(index.min())}, {int(index.max())}]")
    m = torch.zeros(size, dtype=torch.bool)
    m[torch.from_numpy(index.astype(np.int64))] = True
    return m


def _vector_for(t, v: np.ndarray, name: str, layer: str):
    """A direction as a tensor of t's dtype, checked against t's feature width."""
    import torch

    if v.shape[-1] != t.shape[-1]:
        raise InvalidParameterError(f"{name}: expected width {t.shape[-1]} (the last axis of layer {layer!r}, "
                                    f"output shape {tuple(t.shape)}), got a direction of width {v.shape[-1]}")
    return torch.as_tensor(v, dtype=t.dtype, device=t.device)


def _fit_rows(rows, t, name: str, layer: str):
    """Rows (B, *s) shaped to t (B, *t.shape[1:]): same shape, a feature vector per row broadcast over
    positions, or the same number of entries (reduce="flatten" activations)."""
    s, ts = tuple(rows.shape[1:]), tuple(t.shape[1:])
    if s == ts:
        return rows
    if len(s) == 1 and len(ts) > 1 and s[0] == ts[-1]:
        return rows.reshape((rows.shape[0],) + (1,) * (len(ts) - 1) + (s[0],))
    if int(np.prod(s)) == int(np.prod(ts)):
        return rows.reshape((rows.shape[0],) + ts)
    raise InvalidParameterError(f"{name}: rows of shape {s} do not fit layer {layer!r} (per-sample output "
                                f"shape {ts})")


def _reference(acts, name: str, layer: str | None = None) -> np.ndarray | Any:
    """Reference rows from an array/tensor, or a layer of an Activations / dict."""
    from collections.abc import Mapping

    if isinstance(acts, Mapping):
        return acts
    arr = acts
    try:
        import torch

        if isinstance(arr, torch.Tensor):
            arr = arr.detach()
            if arr.ndim < 2 or arr.shape[0] == 0:
                fail(name, "reference activations with a sample axis (n, ...)", f"shape {tuple(arr.shape)}", raw=True)
            return arr
    except ImportError:  # pragma: no cover
        pass
    arr = _as_numpy(arr, name)
    if arr.ndim < 2 or arr.shape[0] == 0:
        fail(name, "reference activations with a sample axis (n, ...)", f"shape {arr.shape}", raw=True)
    return arr


def _layer_rows(ref, name: str, layer: str):
    """The reference for ``layer`` when ``ref`` is a mapping (Activations or {layer: array})."""
    from collections.abc import Mapping

    if isinstance(ref, Mapping):
        if layer not in ref:
            from topo_mi._validation import unknown_name

            raise unknown_name(f"{name} layer", layer, list(ref))
        return _reference(ref[layer], name)
    return ref


def _torch_rows(rows, t):
    import torch

    if isinstance(rows, torch.Tensor):
        return rows.to(device=t.device, dtype=t.dtype)
    return torch.as_tensor(np.ascontiguousarray(rows), device=t.device).to(t.dtype)


# ---------------------------------------------------------------------------------------------
# the ops
# ---------------------------------------------------------------------------------------------
class Op:
    """Base class: ``compute(t, call)`` returns the full replacement of ``t``; the restriction to
    ``units``/``positions`` is applied by :meth:`apply`."""

    def __init__(self, *, units=None, positions=None):
        self.units = _check_index("units", units)
        self.positions = _check_index("positions", positions)

    # subclasses implement this
    def compute(self, t, call: _Call):  # pragma: no cover - abstract
        raise TypeError(f"{type(self).__name__} does not define compute() (the replacement of a layer's output); "
                        "subclass Op and implement it, or use Replace(fn)")

    def _args(self) -> list[str]:
        return []

    def apply(self, t, call: _Call):
        import torch

        new = self.compute(t, call)
        if not isinstance(new, torch.Tensor) or tuple(new.shape) != tuple(t.shape):
            got = tuple(new.shape) if isinstance(new, torch.Tensor) else type(new).__name__
            raise InvalidParameterError(f"{self!r}: expected a replacement of shape {tuple(t.shape)} for layer "
                                        f"{call.layer!r}, got {got}")
        if new.dtype != t.dtype:
            new = new.to(t.dtype)
        if self.units is None and self.positions is None:
            return new
        mask = torch.ones((1,) * t.ndim, dtype=torch.bool, device=t.device)
        if self.units is not None:
            m = _mask_1d(self.units, t.shape[-1], "units", call.layer).to(t.device)
            mask = mask & m.reshape((1,) * (t.ndim - 1) + (-1,))
        if self.positions is not None:
            if t.ndim < 3:
                raise InvalidParameterError(f"positions: layer {call.layer!r} has output shape {tuple(t.shape)} "
                                            "with no position axis (expected (batch, positions, ..., features))")
            m = _mask_1d(self.positions, t.shape[1], "positions", call.layer).to(t.device)
            mask = mask & m.reshape((1, -1) + (1,) * (t.ndim - 2))
        return torch.where(mask, new, t)

    def __rshift__(self, other: "Op") -> "Compose":
        if not isinstance(other, Op):
            return NotImplemented
        return Compose(self, other)

    def __repr__(self) -> str:
        args = self._args()
        if self.units is not None:
            args.append(f"units={_index_repr(self.units)}")
        if self.positions is not None:
            args.append(f"positions={_index_repr(self.positions)}")
        return f"{type(self).__name__}({', '.join(args)})"


def _index_repr(idx) -> str:
    if isinstance(idx, slice):
        return f"slice({idx.start}, {idx.stop}, {idx.step})"
    vals = idx.tolist()
    return repr(vals) if len(vals) <= 6 else f"[{', '.join(map(str, vals[:6]))}, ...] ({len(vals)})"


class Compose(Op):
    """Ops applied left to right (``a >> b``: ``b`` edits what ``a`` produced)."""

    def __init__(self, *ops: Op):
        super().__init__()
        flat: list[Op] = []
        for op in ops:
            if not isinstance(op, Op):
                fail("ops", "topo_mi.causal ops (Zero(), Patch(...), ...)", op)
            flat.extend(op.ops if isinstance(op, Compose) else [op])
        if not flat:
            fail("ops", "at least one op", "none", raw=True)
        self.ops = tuple(flat)

    def apply(self, t, call):
        for op in self.ops:
            t = op.apply(t, call)
        return t

    def __repr__(self) -> str:
        return " >> ".join(map(repr, self.ops))


class Zero(Op):
    """Zero ablation: the output (or its restricted entries) set to 0."""

    def compute(self, t, call):
        import torch

        return torch.zeros_like(t)


class Mean(Op):
    """Mean ablation: each unit set to its mean over reference activations ``acts``.

    ``acts``: an array/tensor (n, ...) (rows of the layer's per-sample shape, or feature vectors
    of its width, which are broadcast over positions), or an :class:`~topo_mi.activations.Activations`
    / ``{layer: array}`` mapping (the intervened layer's entry is used).
    """

    def __init__(self, acts, *, units=None, positions=None):
        super().__init__(units=units, positions=positions)
        self._ref = _reference(acts, "Mean(acts)")
        self._means: dict[str, Any] = {}

    def _args(self):
        return ["<mapping>" if hasattr(self._ref, "keys") else f"acts{tuple(self._ref.shape)}"]

    def compute(self, t, call):
        ref = _layer_rows(self._ref, "Mean(acts)", call.layer)
        key = call.layer
        if key not in self._means:
            arr = ref.detach().cpu().double().numpy() if hasattr(ref, "detach") else np.asarray(ref, np.float64)
            self._means[key] = arr.mean(axis=0, keepdims=True)
        mu = _fit_rows(_torch_rows(self._means[key], t), t, "Mean(acts)", call.layer)
        return mu.expand_as(t).clone()


class Resample(Op):
    """Resample ablation: each row replaced by a random row of reference activations ``acts``
    (drawn with a local generator seeded by ``seed``; each forward draws afresh)."""

    def __init__(self, acts, seed: int = 0, *, units=None, positions=None):
        from topo_mi._validation import check_int

        super().__init__(units=units, positions=positions)
        self._ref = _reference(acts, "Resample(acts)")
        self.seed = check_int("seed", seed, min_value=0)
        self._rng = np.random.default_rng(self.seed)

    def _args(self):
        return ["<mapping>" if hasattr(self._ref, "keys") else f"acts{tuple(self._ref.shape)}", f"seed={self.seed}"]

    def compute(self, t, call):
        ref = _layer_rows(self._ref, "Resample(acts)", call.layer)
        idx = self._rng.integers(0, ref.shape[0], size=t.shape[0])
        rows = ref[idx] if not hasattr(ref, "detach") else ref[np.asarray(idx)]
        return _fit_rows(_torch_rows(rows, t), t, "Resample(acts)", call.layer).expand_as(t).clone()


class Patch(Op):
    """Activation patching: the rows of this forward replaced by a source run's rows with the same
    sample ids.

    ``source``: an array/tensor (n, ...) with the layer's per-sample shape (or its feature width,
    broadcast over positions), an :class:`~topo_mi.activations.Activations` or a ``{layer: tensor}``
    mapping (e.g. from :func:`~topo_mi.causal.cache_outputs`). ``sample_ids`` are the source rows'
    ids (default: an Activations' own ids, else ``0..n-1``); the forward's rows carry the ids given
    to :func:`~topo_mi.causal.intervene` (default ``0..batch-1``). An id missing from the source
    raises.
    """

    def __init__(self, source, *, sample_ids=None, units=None, positions=None):
        super().__init__(units=units, positions=positions)
        self._ref = _reference(source, "Patch(source)")
        if sample_ids is None:
            sample_ids = getattr(source, "sample_ids", None)
        if sample_ids is not None:
            ids = np.asarray(sample_ids)
            if ids.ndim != 1 or len(np.unique(ids)) != len(ids):
                fail("Patch(sample_ids)", "unique ids, one per source row", f"shape {ids.shape}", raw=True)
        self._ids = None if sample_ids is None else np.asarray(sample_ids)
        self._index: dict | None = None

    def _args(self):
        return ["<mapping>" if hasattr(self._ref, "keys") else f"source{tuple(self._ref.shape)}"]

    def _rows_for(self, ref, call, batch: int):
        n = ref.shape[0]
        ids = self._ids
        if ids is not None and len(ids) != n:
            raise InvalidParameterError(f"Patch(sample_ids): expected {n} ids (one per source row of layer "
                                        f"{call.layer!r}), got {len(ids)}")
        target = np.arange(batch) if call.sample_ids is None else np.asarray(call.sample_ids)
        if target.shape != (batch,):
            raise InvalidParameterError(f"sample_ids: expected {batch} ids (the rows of this forward of layer "
                                        f"{call.layer!r}), got shape {target.shape}")
        if ids is None:
            if target.min() < 0 or target.max() >= n:
                raise InvalidParameterError(
                    f"Patch(source): this forward's sample ids span [{int(target.min())}, {int(target.max())}] but "
                    f"the source has rows 0..{n - 1} for layer {call.layer!r}; pass matching sample_ids")
            return target
        if self._index is None:
            self._index = {v: i for i, v in enumerate(ids.tolist())}
        idx = [self._index.get(v, -1) for v in target.tolist()]
        missing = [v for v, i in zip(target.tolist(), idx) if i < 0]
        if missing:
            raise InvalidParameterError(
                f"Patch(source): the source has no rows for sample ids {missing[:8]}"
                f"{' ...' if len(missing) > 8 else ''} of this forward (layer {call.layer!r}); the patch "
                "source must hold the same sample ids")
        return np.asarray(idx)

    def compute(self, t, call):
        ref = _layer_rows(self._ref, "Patch(source)", call.layer)
        idx = self._rows_for(ref, call, t.shape[0])
        if hasattr(ref, "detach"):
            import torch

            rows = ref[torch.as_tensor(idx, device=ref.device)]
        else:
            rows = ref[idx]
        return _fit_rows(_torch_rows(rows, t), t, "Patch(source)", call.layer).expand_as(t).clone()


class Steer(Op):
    """Steering: ``t + alpha * v`` along the feature axis."""

    def __init__(self, v, alpha: float = 1.0, *, units=None, positions=None):
        from topo_mi._validation import check_float

        super().__init__(units=units, positions=positions)
        self.v = _finite_vector(v, "Steer(v)")
        self.alpha = check_float("alpha", alpha)

    def _args(self):
        return [f"v={_short_vec(self.v)}", f"alpha={self.alpha:g}"]

    def compute(self, t, call):
        return t + self.alpha * _vector_for(t, self.v, "Steer(v)", call.layer)


class Project(Op):
    """Directional ablation of one direction: the component of ``t`` along ``v`` (normalised) set to
    ``value`` (0 by default: zero ablation along v; a scalar; or one value per row of the forward)."""

    def __init__(self, v, value=0.0, *, units=None, positions=None):
        super().__init__(units=units, positions=positions)
        v = _finite_vector(v, "Project(v)")
        norm = float(np.linalg.norm(v))
        if norm == 0.0:
            fail("Project(v)", "a non-zero direction", "the zero vector", raw=True)
        self.v = v / norm
        val = _as_numpy(value, "Project(value)").astype(np.float64)
        if val.ndim > 1 or not np.isfinite(val).all():
            fail("Project(value)", "a finite scalar or one value per row (batch,)", value)
        self.value = val

    def _args(self):
        val = f"{float(self.value):g}" if self.value.ndim == 0 else f"<{self.value.shape[0]} values>"
        return [f"v={_short_vec(self.v)}", f"value={val}"]

    def compute(self, t, call):
        import torch

        u = _vector_for(t, self.v, "Project(v)", call.layer)
        coord = (t * u).sum(-1, keepdim=True)
        val = torch.as_tensor(self.value, dtype=t.dtype, device=t.device)
        if val.ndim == 1:
            if val.shape[0] != t.shape[0]:
                raise InvalidParameterError(f"Project(value): expected {t.shape[0]} values (the rows of this forward "
                                            f"of layer {call.layer!r}), got {val.shape[0]}")
            val = val.reshape((-1,) + (1,) * (t.ndim - 1))
        return t + (val - coord) * u


class ProjectOut(Op):
    """Directional ablation of a subspace: ``t`` minus its orthogonal projection onto span(V)
    (``V``: one direction (d,) or several (k, d); orthonormalised by a QR decomposition)."""

    def __init__(self, V, *, units=None, positions=None):
        super().__init__(units=units, positions=positions)
        V = _finite_vector(V, "ProjectOut(V)", matrix=True)
        q, r = np.linalg.qr(V.T)
        diag = np.abs(np.diag(r))
        tol = max(V.shape) * np.finfo(np.float64).eps * (diag.max() if diag.size else 0.0)
        keep = diag > tol
        if not keep.any():
            fail("ProjectOut(V)", "non-zero directions", "only zero vectors", raw=True)
        self.basis = q[:, keep].T  # (rank, d), orthonormal rows
        self.k = int(V.shape[0])

    def _args(self):
        return [f"V=<{self.k} directions of width {self.basis.shape[1]}, rank {self.basis.shape[0]}>"]

    def compute(self, t, call):
        Q = _vector_for(t, self.basis, "ProjectOut(V)", call.layer)
        return t - (t @ Q.T) @ Q


class Erase(Op):
    """Concept erasure with a fitted eraser (:func:`~topo_mi.causal.erase_concept`):
    ``t - (t - mean) P^T``."""

    def __init__(self, eraser, *, units=None, positions=None):
        super().__init__(units=units, positions=positions)
        if not (hasattr(eraser, "projection") and hasattr(eraser, "mean")):
            fail("Erase(eraser)", "a ConceptEraser from topo_mi.causal.erase_concept", type(eraser).__name__, raw=True)
        self.eraser = eraser

    def _args(self):
        return [f"{self.eraser.method}, rank {self.eraser.rank}, width {self.eraser.mean.shape[0]}"]

    def compute(self, t, call):
        P = _vector_for(t, np.asarray(self.eraser.projection), "Erase(eraser)", call.layer)
        mu = _vector_for(t, np.asarray(self.eraser.mean), "Erase(eraser)", call.layer)
        return t - (t - mu) @ P.T


class Replace(Op):
    """A user function ``fn(t) -> tensor of t's shape``."""

    def __init__(self, fn: Callable[[Any], Any], *, units=None, positions=None):
        if not callable(fn):
            fail("Replace(fn)", "a callable mapping the layer output to a same-shape tensor", fn)
        super().__init__(units=units, positions=positions)
        self.fn = fn

    def _args(self):
        return [getattr(self.fn, "__qualname__", type(self.fn).__name__)]

    def compute(self, t, call):
        return self.fn(t)


__all__ = ["Op", "Compose", "Zero", "Mean", "Resample", "Patch", "Steer", "Project", "ProjectOut", "Erase",
           "Replace"]
