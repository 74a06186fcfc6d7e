r"""Per-instance feature geometry of toy models of superposition (Elhage et al., 2022).

For one model, ``W`` has the layout of the paper's notebook: shape (n_features, n_hidden), row
``W_i`` the direction of feature i in the hidden space (``h = Σ_i x_i W_i``). The figures:

- ``‖W_i‖`` — whether feature i is represented at all;
- ``D_i = ‖W_i‖² / Σ_j (Ŵ_i · W_j)²`` (j = i included) — the fraction of a dimension feature i gets:
  1 dedicated, 1/2 an antipodal pair, 2/3 a triangle, 2/5 a pentagon, 3/4 a tetrahedron, 3/8 a
  square antiprism, 0 not learned;
- ``D* = m / ‖W‖²_F`` — hidden dimensions per (effectively) represented feature;
- interference ``Σ_{j≠i} (Ŵ_i · W_j)²``;
- the rank of the ``n × n`` Gram matrix ``W Wᵀ`` (``WᵀW`` in the paper's ``m × n`` notation): it is
  invertible only when ``m >= n`` and every feature has its own direction — without superposition;
- the polytope each learned feature belongs to (see :func:`classify_polytopes`).
"""
from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from topo_mi._results import Result, result_dataclass
from topo_mi._validation import as_array, check_finite, check_float, fail

#: Labels of :func:`classify_polytopes`, with the (features, dimensions) of each uniform polytope.
POLYTOPES: dict[str, tuple[int, int] | None] = {
    "dedicated": (1, 1),
    "antipodal": (2, 1),
    "triangle": (3, 2),
    "pentagon": (5, 2),
    "tetrahedron": (4, 3),
    "square_antiprism": (8, 3),
    "other": None,
    "not_learned": None,
}
_BY_SHAPE = {v: k for k, v in POLYTOPES.items() if v is not None}


def _as_weights(W: Any, name: str = "W") -> np.ndarray:
    """(n_instances, n_features, n_hidden) float64 from an array, tensor or ToySuperposition."""
    if hasattr(W, "W") and hasattr(W, "n_features") and hasattr(W, "m"):  # a ToySuperposition (m, n)
        W = as_array(W.W).T
    arr = np.asarray(as_array(W, name))
    if arr.dtype.kind not in "biuf":
        fail(name, "a real array of shape (n_features, n_hidden) or (n_instances, n_features, n_hidden)", arr)
    arr = np.asarray(arr, dtype=np.float64)
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3 or min(arr.shape) < 1:
        fail(name, "a real array of shape (n_features, n_hidden) or (n_instances, n_features, n_hidden)", arr)
    check_finite(name, arr)
    return arr


def feature_dimensionality(W: Any) -> np.ndarray:
    r"""``D_i = ‖W_i‖² / Σ_j (Ŵ_i · W_j)²`` per instance and feature (0 for a zero row).

    Parameters
    ----------
    W : array of shape (n_features, n_hidden) or (n_instances, n_features, n_hidden)

    Returns
    -------
    ndarray of shape (n_instances, n_features)
    """
    return _overlaps(_as_weights(W))[1]


def _overlaps(W: np.ndarray):
    norms2 = np.einsum("inm,inm->in", W, W)
    nz = norms2 > 1e-24
    unit = np.where(nz[..., None], W / np.sqrt(np.where(nz, norms2, 1.0))[..., None], 0.0)
    overlap2 = np.einsum("inm,ijm->inj", unit, W) ** 2  # (Ŵ_i · W_j)²
    total = overlap2.sum(axis=-1)
    D = np.where(nz, norms2 / np.where(nz, total, 1.0), 0.0)
    return norms2, D, total - np.where(nz, norms2, 0.0), unit


def _component_labels(W_inst: np.ndarray, norms: np.ndarray, D: np.ndarray, *, norm_threshold: float,
                      cos_tol: float, d_tol: float, angle_tol: float):
    n = W_inst.shape[0]
    labels = ["not_learned"] * n
    group = np.full(n, -1, dtype=np.int64)
    learned = np.flatnonzero(norms > norm_threshold)
    if learned.size == 0:
        return labels, group
    unit = W_inst[learned] / norms[learned, None]
    cos = unit @ unit.T
    adj = np.abs(cos) > cos_tol
    seen = np.zeros(learned.size, dtype=bool)
    gid = 0
    for start in range(learned.size):
        if seen[start]:
            continue
        stack, comp = [start], []
        seen[start] = True
        while stack:
            a = stack.pop()
            comp.append(a)
            for b in np.flatnonzero(adj[a] & ~seen):
                seen[b] = True
                stack.append(b)
        comp = sorted(comp)
        members = learned[comp]
        k = len(comp)
        sv = np.linalg.svd(W_inst[members], compute_uv=False)
        d = int(np.sum(sv > 0.2 * sv[0]))
        name = _BY_SHAPE.get((k, d), "other")
        if name != "other" and not np.all(np.abs(D[members] - d / k) <= d_tol):
            name = "other"
        if name == "antipodal" and cos[comp[0], comp[1]] > -0.9:
            name = "other"
        if name in ("triangle", "pentagon") and W_inst.shape[1] >= 2:
            # the polygon's plane: its top two right singular vectors; consecutive angles 360°/k
            _, _, vt = np.linalg.svd(W_inst[members], full_matrices=False)
            xy = W_inst[members] @ vt[:2].T
            ang = np.sort(np.mod(np.arctan2(xy[:, 1], xy[:, 0]), 2 * np.pi))
            gaps = np.degrees(np.diff(np.append(ang, ang[0] + 2 * np.pi)))
            if np.max(np.abs(gaps - 360.0 / k)) > angle_tol:
                name = "other"
        for mbr in members:
            labels[mbr] = name
            group[mbr] = gid
        gid += 1
    return labels, group


def classify_polytopes(W: Any, *, norm_threshold: float = 0.5, cos_tol: float = 0.15, d_tol: float = 0.08,
                       angle_tol: float = 10.0) -> tuple[list[list[str]], np.ndarray]:
    r"""Label every feature with the polytope it belongs to.

    Features with ``‖W_i‖ <= norm_threshold`` are ``"not_learned"``. The others are grouped into
    the connected components of the graph ``|cos(W_i, W_j)| > cos_tol`` (features in mutually
    orthogonal subspaces do not interfere, so each component is one polytope). A component of ``k``
    features spanning ``d`` dimensions (singular values above 0.2 times the largest) is named by
    ``(k, d)``: (1, 1) dedicated, (2, 1) antipodal (cosine < −0.9), (3, 2) triangle, (5, 2)
    pentagon, (4, 3) tetrahedron, (8, 3) square antiprism (an octahedron is three orthogonal
    antipodal pairs) — provided every
    member's ``D_i`` is within ``d_tol`` of the uniform value ``d / k`` and, for polygons, the
    consecutive angles in the polygon's plane are within ``angle_tol`` degrees of ``360° / k``.
    Anything else is ``"other"``.

    Parameters
    ----------
    W : array of shape (n_features, n_hidden) or (n_instances, n_features, n_hidden)
    norm_threshold, cos_tol, d_tol, angle_tol : float

    Returns
    -------
    labels : list (one per instance) of lists of n_features labels from :data:`POLYTOPES`
    groups : ndarray of shape (n_instances, n_features), int64
        Component index of each feature within its instance (−1 for not learned).
    """
    Wa = _as_weights(W)
    norm_threshold = check_float("norm_threshold", norm_threshold, min_value=0.0)
    cos_tol = check_float("cos_tol", cos_tol, min_value=0.0, max_value=1.0, max_inclusive=False)
    d_tol = check_float("d_tol", d_tol, min_value=0.0)
    angle_tol = check_float("angle_tol", angle_tol, min_value=0.0)
    norms2, D, _, _ = _overlaps(Wa)
    norms = np.sqrt(norms2)
    labels, groups = [], np.empty(norms.shape, dtype=np.int64)
    for i in range(Wa.shape[0]):
        lab, grp = _component_labels(Wa[i], norms[i], D[i], norm_threshold=norm_threshold, cos_tol=cos_tol,
                                     d_tol=d_tol, angle_tol=angle_tol)
        labels.append(lab)
        groups[i] = grp
    return labels, groups


@result_dataclass
class FeatureGeometry(Result):
    """Feature geometry of one or many toy models (see :func:`feature_geometry`).

    Attributes
    ----------
    W : ndarray of shape (n_instances, n_features, n_hidden)
    b : ndarray of shape (n_instances, n_features) or None
    norms : ndarray (n_instances, n_features)
        ``‖W_i‖``.
    dimensionality : ndarray (n_instances, n_features)
        ``D_i``.
    dimensions_per_feature : ndarray (n_instances,)
        ``D* = m / ‖W‖²_F`` (inf for W = 0).
    interference : ndarray (n_instances, n_features)
        ``Σ_{j≠i} (Ŵ_i · W_j)²``.
    gram_rank : ndarray (n_instances,), int
        Numerical rank of the ``n × n`` Gram matrix ``W Wᵀ``.
    gram_invertible : ndarray (n_instances,), bool
        ``gram_rank == n_features`` (possible only when ``n_hidden >= n_features``).
    polytopes : list of lists of str
        Per instance, the label of each feature (:func:`classify_polytopes`).
    groups : ndarray (n_instances, n_features), int
        The polytope component of each feature (−1 not learned).
    superposition_possible : bool
        ``n_hidden < n_features``; when False every feature can have its own dimension and the
        model has no reason to superpose.
    """

    W: np.ndarray
    b: Any
    norms: np.ndarray
    dimensionality: np.ndarray
    dimensions_per_feature: np.ndarray
    interference: np.ndarray
    gram_rank: np.ndarray
    gram_invertible: np.ndarray
    polytopes: list
    groups: np.ndarray
    superposition_possible: bool

    _plot_function: ClassVar[str] = "topo_mi.plotting.superposition:plot_feature_geometry"

    @property
    def n_instances(self) -> int:
        return int(self.W.shape[0])

    @property
    def n_features(self) -> int:
        return int(self.W.shape[1])

    @property
    def n_hidden(self) -> int:
        return int(self.W.shape[2])

    def polytope_counts(self, instance: int = 0) -> dict[str, int]:
        """How many polytopes of each kind instance ``instance`` has (``not_learned``: features)."""
        labels, groups = self.polytopes[instance], self.groups[instance]
        out: dict[str, int] = {}
        seen = set()
        for lab, g in zip(labels, groups):
            if g >= 0 and g in seen:
                continue
            seen.add(int(g))
            out[lab] = out.get(lab, 0) + 1
        return out

    def summary(self) -> dict[str, Any]:
        learned = self.norms > 0.5
        out = {"n_instances": self.n_instances, "n_features": self.n_features, "n_hidden": self.n_hidden,
               "superposition_possible": self.superposition_possible,
               "mean_features_learned": float(learned.sum(axis=1).mean()),
               "mean_dimensions_per_feature": float(np.mean(self.dimensions_per_feature)),
               "mean_interference": float(np.mean(self.interference))}
        if self.n_instances == 1:
            out["polytopes"] = ", ".join(f"{k}: {v}" for k, v in sorted(self.polytope_counts(0).items()))
        return out


def feature_geometry(W: Any, b: Any = None, *, norm_threshold: float = 0.5, cos_tol: float = 0.15,
                     d_tol: float = 0.08, angle_tol: float = 10.0, rank_tol: float = 1e-6) -> FeatureGeometry:
    r"""Every per-instance figure of feature geometry at once.

    Parameters
    ----------
    W : array of shape (n_features, n_hidden) or (n_instances, n_features, n_hidden), or a
        :class:`topo_mi.models.ToySuperposition` (its ``W`` of shape (m, n) is transposed).
    b : array of shape (n_features,) or (n_instances, n_features), optional
        The output biases (kept in the result for the figures).
    norm_threshold, cos_tol, d_tol, angle_tol : float
        Of :func:`classify_polytopes`.
    rank_tol : float, default 1e-6
        Singular values of ``W`` above ``rank_tol`` times the largest count toward the Gram rank.

    Returns
    -------
    FeatureGeometry
    """
    model_b = getattr(W, "b", None) if b is None and hasattr(W, "n_features") else None
    Wa = _as_weights(W)
    if model_b is not None:
        b = as_array(model_b)
    I, n, m = Wa.shape
    if b is not None:
        ba = np.asarray(as_array(b, "b"), dtype=np.float64)
        if ba.ndim == 1:
            ba = ba[None]
        if ba.shape != (I, n):
            fail("b", f"an array of shape ({n},) or ({I}, {n})", ba)
        check_finite("b", ba)
        b = ba
    rank_tol = check_float("rank_tol", rank_tol, min_value=0.0)
    norms2, D, interference, _ = _overlaps(Wa)
    total = norms2.sum(axis=1)
    with np.errstate(divide="ignore"):
        dstar = np.where(total > 0, m / np.where(total > 0, total, 1.0), np.inf)
    sv = np.linalg.svd(Wa, compute_uv=False)  # (I, min(n, m)); W Wᵀ has eigenvalues sv²
    rank = np.sum(sv > rank_tol * np.maximum(sv[:, :1], 1e-300), axis=1) * (sv[:, 0] > 0)
    labels, groups = classify_polytopes(Wa, norm_threshold=norm_threshold, cos_tol=cos_tol, d_tol=d_tol,
                                        angle_tol=angle_tol)
    return FeatureGeometry(W=Wa, b=b, norms=np.sqrt(norms2), dimensionality=D, dimensions_per_feature=dstar,
                           interference=interference, gram_rank=rank.astype(np.int64),
                           gram_invertible=rank == n, polytopes=labels, groups=groups,
                           superposition_possible=bool(m < n))


__all__ = ["POLYTOPES", "FeatureGeometry", "feature_geometry", "feature_dimensionality", "classify_polytopes"]
