"""``persistence(X, max_error=...)``: the cheapest route whose diagrams are certified to be
within the asked bottleneck distance of the exact Vietoris–Rips diagrams of all the points.

Routes (Euclidean point clouds):

- ``"exact"`` — all points; bound 0.
- ``"landmarks"`` — the greedy permutation, grown until its cover radius ``r`` satisfies
  ``2 r <= max_error`` (it yields the radius as it goes). Guarantee: ``d_B <= 2 d_GH(X, L) <= 2 r``
  for the Rips filtrations of ``X`` and the landmarks ``L`` (Chazal, de Silva & Oudot,
  "Persistence stability for geometric complexes", Geom. Dedicata 2014, Thm. 5.2).
- ``"sparse"`` — gudhi's sparse Rips complex with parameter ε (Sheehy, "Linear-size
  approximations to the Vietoris–Rips filtration", DCG 2013; the construction of Buchet,
  Chazal, Oudot & Sheehy, "Efficient and robust persistent homology for measures", CGTA 2016,
  which gudhi's ``RipsComplex(sparse=ε)`` implements). Its filtration is multiplicatively
  interleaved with the Rips filtration with factor ``c = 1 / (1 − ε)``, so the log-scale
  diagrams are within bottleneck ``log c``. In absolute terms: every finite value of both
  diagrams lies below ``V`` (the exact Rips filtration is a cone from the enclosing radius on,
  which is at most ``max_u |u − x_c|`` for any point ``x_c``; the sparse values are read off its
  diagram), a matched pair moves by at most ``(1 − 1/c) V = ε V`` and an unmatched point is
  within ``(1 − 1/c²) V / 2 <= ε V`` of the diagonal: ``d_B <= ε V``.
- ``"truncated"`` — the exact Rips filtration of all points up to ``t = R − 2 max_error``
  (``R``: the collapse radius, :func:`topo_mi.topology._cut.collapse_radius` — at most the
  enclosing radius, from which on every complex is a cone — from which on every complex is
  contractible, so that every class of dimension >= 1 dies by ``R`` and none is born after it),
  through the certified cut's schedule where it applies (which may finish below ``t`` with the
  exact diagrams: the route is then ``"exact"``). The pairs inside the prefix are the
  filtration's own; a class still alive at ``t`` dies in ``(t, R]`` and is given the death
  ``(t + R) / 2``; a class born after ``t`` lies within ``(R − t) / 2`` of the diagonal:
  ``d_B <= (R − t) / 2 = max_error`` in every dimension >= 1, and H0 is exact (below).
  In high dimension, where landmarks cover poorly and the cut finds no early stop, this prefix is
  what makes a small bound affordable (MiniLM tokens: the complex below ``R − 2`` is a fraction of
  the whole one). ``"auto"`` takes it whenever landmarks do not meet the target, unless the whole
  filtration is estimated to take under :data:`EXACT_IF_UNDER_S` seconds (then bound 0).
- Exact duplicate points are merged for dimensions >= 1 on the ``"exact"`` and ``"truncated"``
  routes (a twin is dominated by its copy at every scale: the same diagrams); the rounding by
  which the matrix's rows of twins may differ is added to the bound.
- ``H0`` is exact on all points whenever their distance matrix fits: H0 of a Rips filtration
  is single linkage, whose deaths are the edge lengths of a minimum spanning tree (Gower &
  Ross, "Minimum spanning trees and single linkage cluster analysis", JRSS C 1969); bound 0.

Bars longer than twice the bound are *certified as real*: the matched bar of the exact diagram
has positive length (a bar within ``δ`` of the diagonal is at most ``2 δ`` long).
"""
from __future__ import annotations

import numpy as np

from topo_mi._validation import check_choice, check_float, fail
from topo_mi.errors import ResourceError
from topo_mi.topology import _backends as bk
from topo_mi.topology import _metrics as mt
from topo_mi.topology import _resources as rs

ROUTES = ("auto", "exact", "truncated", "landmarks", "sparse")
# ``auto`` computes the whole filtration instead of a truncated prefix when the slow end of its
# time estimate is below this many seconds.
EXACT_IF_UNDER_S = 5.0


def parse_target(max_error, max_relative_error, route):
    """Validated ``(kind, value, route)``; ``kind`` is ``"absolute"`` or ``"relative"``."""
    route = check_choice("route", route, ROUTES)
    if max_error is not None and max_relative_error is not None:
        fail("max_relative_error", "None when max_error is given (one target, absolute or relative)",
             max_relative_error)
    if max_error is not None:
        return "absolute", check_float("max_error", max_error, min_value=0), route
    if max_relative_error is not None:
        return "relative", check_float("max_relative_error", max_relative_error, min_value=0,
                                       max_value=1), route
    if route != "auto":
        fail("route", "'auto' unless max_error or max_relative_error is given", route)
    return None, None, route


def central_radius(X) -> float:
    """``max_u |u − x_c|`` with ``x_c`` the point nearest the mean (float64): an upper bound on
    the enclosing radius and a lower bound on the diameter (which it at least halves)."""
    mu = X.mean(axis=0, dtype=np.float64)
    d0 = np.linalg.norm(np.asarray(X, dtype=np.float64) - mu, axis=1)
    c = int(np.argmin(d0))
    return float(np.linalg.norm(np.asarray(X, dtype=np.float64) - np.asarray(X[c], dtype=np.float64), axis=1).max())


def _unique_rows(X) -> tuple[np.ndarray, np.ndarray]:
    """Sorted indices of the first occurrence of each distinct row of ``X`` (bytewise), and for
    every row the index of that first occurrence."""
    A = np.ascontiguousarray(X)
    view = A.view(np.dtype((np.void, A.dtype.itemsize * A.shape[1]))).ravel()
    _, first, inverse = np.unique(view, return_index=True, return_inverse=True)
    return np.sort(first), first[inverse.ravel()]


def _twin_spread(D: np.ndarray, rep: np.ndarray) -> float:
    """``max`` over rows ``i`` with a twin ``rep[i] != i`` of ``max(D[i, rep[i]], |D[i] − D[rep[i]]|_∞)``."""
    dup = np.flatnonzero(rep != np.arange(rep.size))
    out = 0.0
    step = max(1, 4_000_000 // max(D.shape[0], 1))
    for s in range(0, dup.size, step):
        i = dup[s:s + step]
        out = max(out, float(np.abs(D[i] - D[rep[i]]).max()), float(D[i, rep[i]].max()))
    return out


def greedy_from_matrix(D: np.ndarray, n: int, *, start: int = 0, stop_radius: float = 0.0):
    """Max–min landmarks read off a distance matrix: ``(indices, cover radius)``, stopping at ``n``
    landmarks or once every point is within ``stop_radius`` of one (the first index of the
    largest distance on ties). The radius is the matrix's own (float64), as the bound needs."""
    mind = np.array(D[start], dtype=np.float64)
    idx = [int(start)]
    while len(idx) < n:
        j = int(np.argmax(mind))
        if mind[j] <= stop_radius:
            break
        idx.append(j)
        np.minimum(mind, D[j], out=mind)
    return np.asarray(idx, dtype=np.int64), float(mind.max())


def certified_persistence(X, *, max_dim, coeff, target, kind, route, limit):
    """Diagrams, per-dimension bounds, the route and the landmarks (or None)."""
    N = X.shape[0]
    R = central_radius(X)
    tau = target if kind == "absolute" else target * R
    dense_ok = rs.dense_bytes(N, "gudhi") <= limit
    D = None
    info = {"target": float(tau), "central_radius": R}
    h0 = None
    if dense_ok:
        D = mt.distance_matrix_of(X, "euclidean")
        h0 = bk.canonical_diagrams(bk._run_mst(D, n=N, threshold=np.inf), 0)[0]
    # the longest edge of a minimum spanning tree (twins add only zero-length edges: the same for
    # the merged matrix), a lower bound of the cut's birth bound
    finite = np.empty(0) if h0 is None else h0[np.isfinite(h0[:, 1]), 1]
    longest_tree_edge = float(finite.max()) if finite.size else None
    if max_dim == 0 and h0 is not None:
        return [h0], [0.0], "mst", None, 0.0, info

    chosen = route
    idx = None
    cover = 0.0
    if route in ("auto", "landmarks"):
        cap = N if route == "landmarks" else max(2, N // 2)
        if D is not None:  # the matrix is there: one row per landmark, no distances recomputed
            idx, cover = greedy_from_matrix(D, cap, stop_radius=0.5 * tau)
        else:
            from topo_mi.topology._landmarks import greedy_permutation

            idx, _, cover, _ = greedy_permutation(X, cap, start=0, stop_radius=0.5 * tau)
        if route == "auto":
            met = 2.0 * cover <= tau * (1 + 1e-9)
            chosen = "landmarks" if met and len(idx) < N else None

    from topo_mi.topology import _cut

    # Exact duplicates are merged for dimensions >= 1: at every scale a duplicate vertex has its
    # twin's neighbours and the twin itself, so it is dominated and removing it changes no complex's
    # homotopy type, compatibly with the inclusions: the same diagrams (H0 comes from all points).
    # The matrix's rows of twins can differ by rounding (~1e-7 of the scale): ``delta``, the largest
    # such difference, is added to the bound (stability: it is how far the matrix is from one whose
    # twins are exact copies).
    DU, delta = D, 0.0
    if D is not None and max_dim >= 1 and chosen in (None, "exact", "truncated"):  # not for the landmarks
        keep, rep = _unique_rows(X)
        if keep.size < N:
            DU = np.ascontiguousarray(D[np.ix_(keep, keep)])
            delta = 2.0 * _twin_spread(D, rep)  # a pair of twins of two points moves by up to twice that
            info["n_unique"], info["duplicate_spread"] = int(keep.size), float(delta)

    def exact(truncate: bool):  # the memory guard at each complex that runs, H0-H1 through the certified cut
        def check(t):
            rs.check_complex_fits(DU, n=len(DU), max_dim=max_dim, threshold=t, backend="gudhi", limit=limit,
                                  coeff=coeff)

        def run(t):
            return bk.run_backend("gudhi", DU, n=len(DU), max_dim=max_dim, threshold=t, coeff=coeff)

        # capped from the collapse radius of the matrix the prefix is built on, so the bound is tau
        margin = 2.0 * tau if truncate and tau > 0 else None
        raw, info["cut"] = _cut.exact_persistence(DU, max_dim=max_dim, threshold=np.inf, backend="gudhi",
                                                  check=check, run=run, margin=margin,
                                                  longest_tree_edge=longest_tree_edge)
        return raw

    raw = None
    if chosen in (None, "truncated") and D is not None:
        # auto: the whole filtration when even its slow estimate is a few seconds (bound 0 for free)
        cheap = chosen is None and rs.estimate_seconds(DU, max_dim, np.inf)[1] <= EXACT_IF_UNDER_S
        try:
            raw = exact(truncate=not cheap)
            chosen = "exact"
        except ResourceError:
            if route == "truncated":
                raise
            chosen = "sparse"
    elif chosen is None:
        chosen = "sparse"
    elif chosen == "truncated":
        rs.check_dense_fits(N, backend="gudhi", limit=limit)

    if chosen == "exact":
        if D is None:
            rs.check_dense_fits(N, backend="gudhi", limit=limit)
        if raw is None:
            raw = exact(truncate=False)
        rec = info.get("cut")
        if rec is not None and rec.get("truncated"):
            b = _cut.truncation_bound(rec["cut"], rec["collapse_radius"])
            mid = 0.5 * (rec["cut"] + rec["collapse_radius"])
            raw = [np.asarray(d, dtype=np.float64).reshape(-1, 2).copy() for d in raw]
            for d in raw[1:]:
                d[np.isinf(d[:, 1]), 1] = mid
            dgms = bk.canonical_diagrams(raw, max_dim)
            dgms[0] = h0  # exact on all points (the prefix may stop before the longest tree edge)
            return dgms, [0.0] + [b + delta] * max_dim, "truncated", None, 0.0, info
        dgms = bk.canonical_diagrams(raw, max_dim)
        if DU is not D:
            dgms[0] = h0  # all points, twins included
        return dgms, [0.0] + [delta] * max_dim, "exact", None, 0.0, info
    if chosen == "landmarks":
        if len(idx) >= N:  # every point is a landmark: the exact diagrams
            idx = None
        if D is not None:  # the landmarks' rows and columns of the matrix already computed
            DL = D if idx is None else np.ascontiguousarray(D[np.ix_(idx, idx)])
        else:
            DL = mt.distance_matrix_of(X if idx is None else X[idx], "euclidean")
        del D
        rs.check_complex_fits(DL, n=len(DL), max_dim=max_dim, threshold=np.inf, backend="gudhi", limit=limit,
                              coeff=coeff)
        dgms = bk.canonical_diagrams(bk.run_backend("gudhi", DL, n=len(DL), max_dim=max_dim, threshold=np.inf,
                                                    coeff=coeff), max_dim)
        b = 0.0 if idx is None else 2.0 * cover
        bounds = [b] * (max_dim + 1)
        if h0 is not None:
            dgms[0], bounds[0] = h0, 0.0
        return dgms, bounds, "landmarks", idx, cover, info
    # sparse Rips
    del D
    eps = min(0.999, tau / R) if R > 0 else 0.5
    dgms, vmax = _sparse_rips(X, eps, max_dim, coeff)
    b = eps * max(R, vmax)
    bounds = [b] * (max_dim + 1)
    if h0 is not None:
        dgms[0], bounds[0] = h0, 0.0
    info["epsilon"] = float(eps)
    return dgms, bounds, "sparse", None, 0.0, info


def _sparse_rips(X, eps, max_dim, coeff):
    import gudhi

    st = gudhi.RipsComplex(points=np.asarray(X, dtype=np.float64), sparse=float(eps)).create_simplex_tree(
        max_dimension=max_dim + 1)
    st.compute_persistence(homology_coeff_field=coeff, persistence_dim_max=True)
    raw = [np.asarray(st.persistence_intervals_in_dimension(k), dtype=np.float64).reshape(-1, 2)
           for k in range(max_dim + 1)]
    vals = np.concatenate([d[np.isfinite(d)] for d in raw] + [np.zeros(1)])
    return bk.canonical_diagrams(raw, max_dim), float(vals.max())
