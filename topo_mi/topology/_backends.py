"""Vietoris–Rips persistence backends and the canonical diagram format.

Every backend receives the same filtration: a dense float64 distance matrix or a sparse COO
matrix holding each edge ``i < j`` once (missing pairs are never joined), plus a threshold.
Every backend's output goes through :func:`canonical_diagrams`: one ``(n_k, 2)`` float64 array
per dimension ``0..max_dim``, ``inf`` deaths for classes that never die (or are still alive at
the threshold), zero-length bars removed, rows sorted by decreasing persistence then birth (so
the essential H0 bar is first, whatever the backend put it: ripser appends it last, gudhi's
order depends on the code path).

ripser and giotto-ph compute in float32. Every birth and death of a Rips filtration is a
distance of the input (or 0), so :func:`snap_to_distances` maps each float32 value back to the
float64 distance it came from; the result then agrees with gudhi's float64 computation to the
last bit (up to float32 ties between distances closer than one float32 ulp).
"""
from __future__ import annotations

import math
import os

import numpy as np

from topo_mi.errors import DependencyError, InvalidParameterError
from topo_mi.topology._metrics import upper_edges

BACKENDS = ("auto", "gudhi", "ripser", "giotto-ph", "mst")

# --- the ``auto`` rule ----------------------------------------------------------------------
# Measured with ``benchmarks/bench_topology.py --sweep`` on the 2-core development machine
# (shared, load ~1-3; one run each, backends interleaved; seconds through persistence(), same
# distance matrix for every backend; giotto-ph 0.2.4 with both cores):
#
#   data          n     H      mst     gudhi   ripser  giotto-ph
#   circle R^64   200   0-0    0.002   0.004   0.008   0.005
#   circle R^64   1000  0-0    0.036   0.105   0.339   0.160
#   sphere R^3    1000  0-0    0.025   0.119   0.362   0.138
#   circle R^64   200   0-1    -       0.096   0.177   0.083
#   circle R^64   500   0-1    -       1.330   2.251   1.324
#   circle R^64   1000  0-1    -       15.02   26.75   19.96
#   gauss R^64    500   0-1    -       0.151   0.369   0.108
#   gauss R^64    1000  0-1    -       0.741   1.457   1.038
#   sphere R^3    1000  0-1    -       0.847   1.529   0.739
#   circle R^64   200   0-2    -       0.093   1.558   0.304
#   gauss R^64    200   0-2    -       0.157   1.071   0.536
#   sphere R^3    200   0-2    -       1.138   4.223   2.868
#   (and the cases: 500 points of S^2, H0-H2: gudhi 88 s, giotto-ph 123 s, ripser 154 s)
#
# Rule: max_dim == 0 -> "mst" (H0 of a Rips filtration is single linkage: an exact O(n^2)
# minimum spanning tree, 3-14x faster than any Rips backend from 500 points on); otherwise
# "gudhi" (its Ripser fork: always faster than ripser, 3-10x faster than giotto-ph for H2 thanks
# to edge collapse, and for H1 within +-30 % of giotto-ph either way, with no consistent winner;
# giotto-ph is optional and AGPL, so it runs only when asked for).


def choose_backend(n: int, max_dim: int, sparse: bool) -> str:
    """The backend ``backend="auto"`` runs (see the measurements above)."""
    if max_dim == 0:
        return "mst"
    return "gudhi"


def check_backend_available(name: str) -> None:
    if name == "giotto-ph":
        try:
            import gph  # noqa: F401
        except ImportError as exc:
            raise DependencyError("backend='giotto-ph' needs the optional giotto-ph package "
                                  "(pip install giotto-ph; AGPL-3.0, wheels for Python <= 3.12); "
                                  "backend='gudhi' computes the same diagrams") from exc


# --- backends -------------------------------------------------------------------------------
def run_backend(name: str, D, *, n: int, max_dim: int, threshold: float, coeff: int) -> list:
    """Raw diagrams (list of (m, 2) arrays) of the Rips filtration given by ``D``.

    ``D`` is a dense ``(n, n)`` float64 matrix or a scipy COO matrix of the edges ``i < j``.
    Edges longer than ``threshold`` are left out.
    """
    if name == "gudhi":
        return _run_gudhi(D, n=n, max_dim=max_dim, threshold=threshold, coeff=coeff)
    if name == "ripser":
        return _run_ripser(D, n=n, max_dim=max_dim, threshold=threshold, coeff=coeff)
    if name == "giotto-ph":
        return _run_gph(D, n=n, max_dim=max_dim, threshold=threshold, coeff=coeff)
    if name == "mst":
        return _run_mst(D, n=n, threshold=threshold)
    raise InvalidParameterError(f"backend: expected one of {BACKENDS}, got {name!r}")  # pragma: no cover


def _is_sparse(D) -> bool:
    return not isinstance(D, np.ndarray)


def _run_gudhi(D, *, n, max_dim, threshold, coeff):
    """gudhi's Ripser fork (float64), with one round of edge collapse for max_dim >= 2.

    Calls the compiled core that ``gudhi.sklearn.RipsPersistence`` wraps, which spares importing
    scikit-learn (seconds); falls back to that class when the core's layout changes or the
    simplices would not fit its 128-bit encoding. ``D`` must be exactly symmetric: the full-matrix
    reader uses both triangles, and a 1-ulp asymmetry (``1 - np.corrcoef``) changed an H1 diagram
    by 0.058 in bottleneck distance on 40 points (every matrix here is symmetrised first).
    """
    try:
        from gudhi._ripser_ext import _full, _sparse
        from gudhi.flag_filtration.edge_collapse import reduce_graph
    except ImportError:  # pragma: no cover - another gudhi layout
        return _run_gudhi_public(D, n=n, max_dim=max_dim, threshold=threshold, coeff=coeff)
    top = min(max_dim, max(0, n - 3))  # no homology above n - 3 for n points: nothing to compute
    if math.comb(n, min(n // 2, top + 2)) >= 1 << (128 - (coeff - 2).bit_length()):
        return _run_gudhi_public(D, n=n, max_dim=max_dim, threshold=threshold, coeff=coeff)
    from scipy.sparse import coo_matrix

    if _is_sparse(D):
        keep = D.data <= threshold
        edges = coo_matrix((D.data[keep], (D.row[keep], D.col[keep])), shape=(n, n))
        t = threshold
    else:
        cone = float(np.min(np.max(D, axis=1)))  # beyond it every complex is a cone
        t = min(threshold, cone)
        edges = None
        if top >= 2 or t < cone:
            i, j, w = upper_edges(D, t)
            edges = coo_matrix((w, (i, j)), shape=(n, n))
    if edges is not None:
        if top >= 2:
            edges = reduce_graph(edges, 1)
        row, col = sparse_degree_order(edges.row, edges.col, n)
        dgm = _sparse(row, col, np.ascontiguousarray(edges.data, dtype=np.float64), n, max_dimension=top,
                      max_edge_length=t, homology_coeff_field=coeff)
    else:
        dgm = _full(np.ascontiguousarray(D), max_dimension=top, max_edge_length=t, homology_coeff_field=coeff)
    return [np.asarray(d, dtype=np.float64).reshape(-1, 2) for d in dgm]


def sparse_degree_order(row: np.ndarray, col: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The edge list relabelled so that vertices are numbered by increasing degree (stably), each
    edge as (lower, higher) label, int32.

    The reduction's work depends on how simplices of equal diameter are ordered, and that order
    is the vertex labels' (a triangle's diameter is that of its longest edge, shared by all the
    triangles on that edge that it dominates). Numbering the dense part of the graph last makes
    far more of the pairs apparent: on 10,451 MiniLM token vectors (last layer, 10.1 M edges at
    scale 8.3) the H0-H1 reduction takes 14 s against 30 s in the input's order and 126 s in the
    reverse (densest first). The diagrams do not
    depend on it: the persistence pairs of positive length are the filtration's, however its
    ties are broken (tested against the input order).
    """
    row = np.asarray(row)
    col = np.asarray(col)
    deg = np.bincount(row, minlength=n) + np.bincount(col, minlength=n)
    label = np.empty(n, dtype=np.int32)
    label[np.argsort(deg, kind="stable")] = np.arange(n, dtype=np.int32)
    a, b = label[row], label[col]
    return np.minimum(a, b), np.maximum(a, b)


def _run_gudhi_public(D, *, n, max_dim, threshold, coeff):
    from gudhi.sklearn.rips_persistence import RipsPersistence

    dims = list(range(max_dim + 1))
    if _is_sparse(D):
        # RipsPersistence ignores the threshold for COO input: filter here.
        keep = D.data <= threshold
        from scipy.sparse import coo_matrix

        D = coo_matrix((D.data[keep], (D.row[keep], D.col[keep])), shape=(n, n))
        rp = RipsPersistence(dims, input_type="distance coo_matrix", homology_coeff_field=coeff)
    else:
        # Its own default field is Z/11: always pass the coefficient field.
        rp = RipsPersistence(dims, threshold=threshold, input_type="full distance matrix",
                             homology_coeff_field=coeff)
    return list(rp.fit_transform([D])[0])


def lower_float32(D: np.ndarray) -> np.ndarray:
    """The strict upper triangle of ``D`` row by row as float32 (ripser's compressed format)."""
    n = D.shape[0]
    out = np.empty(n * (n - 1) // 2, dtype=np.float32)
    pos = 0
    for i in range(n - 1):
        m = n - 1 - i
        out[pos:pos + m] = D[i, i + 1:]
        pos += m
    return out


def _run_ripser(D, *, n, max_dim, threshold, coeff):
    try:  # the compiled core of ripser.py: avoids its two n x n int64 index grids
        from pyRipser import doRipsFiltrationDM, doRipsFiltrationDMSparse
    except ImportError:  # pragma: no cover - layout of another ripser release
        from ripser import ripser

        return list(ripser(D, maxdim=max_dim, thresh=threshold, coeff=coeff, distance_matrix=True)["dgms"])
    if _is_sparse(D):
        order = np.lexsort((D.col, D.row))
        res = doRipsFiltrationDMSparse(D.row[order].astype(np.int32), D.col[order].astype(np.int32),
                                       np.asarray(D.data[order], dtype=np.float32), n, max_dim,
                                       threshold, coeff, False)
    else:
        res = doRipsFiltrationDM(lower_float32(D), max_dim, threshold, coeff, False)
    return [np.reshape(np.asarray(d, dtype=np.float64), (-1, 2)) for d in res["births_and_deaths_by_dim"]]


def _run_gph(D, *, n, max_dim, threshold, coeff):
    check_backend_available("giotto-ph")
    from gph import ripser_parallel

    res = ripser_parallel(D, metric="precomputed", maxdim=max_dim, thresh=threshold, coeff=coeff,
                          collapse_edges=max_dim >= 2, n_threads=os.cpu_count() or 1)
    return [np.asarray(d, dtype=np.float64) for d in res["dgms"]]


def _run_mst(D, *, n, threshold):
    """H0 by Prim's algorithm on the dense matrix (or scipy's MST on the sparse edges)."""
    if _is_sparse(D):
        from scipy.sparse.csgraph import minimum_spanning_tree

        keep = D.data <= threshold
        from scipy.sparse import coo_matrix

        # scipy reads stored zeros as missing edges: shift by one (all weights >= 0), shift back.
        G = coo_matrix((D.data[keep] + 1.0, (D.row[keep], D.col[keep])), shape=(n, n))
        T = minimum_spanning_tree(G.tocsr()).tocoo()
        deaths = np.sort(T.data - 1.0)
    else:
        deaths = prim_mst_lengths(D)
        deaths = deaths[deaths <= threshold]
    n_inf = n - len(deaths)
    out = np.zeros((n, 2))
    out[: len(deaths), 1] = deaths
    out[len(deaths):, 1] = np.inf
    return [out]


def prim_mst_lengths(D: np.ndarray) -> np.ndarray:
    """Edge lengths of a minimum spanning tree of the complete graph ``D`` (O(n²), numpy)."""
    n = D.shape[0]
    if n == 1:
        return np.zeros(0)
    best = np.array(D[0], dtype=np.float64)
    done = np.zeros(n, dtype=bool)
    done[0] = True
    best[0] = np.inf
    out = np.empty(n - 1)
    for t in range(n - 1):
        j = int(np.argmin(best))
        out[t] = best[j]
        done[j] = True
        best[j] = np.inf
        np.minimum(best, D[j], out=best, where=~done)
    return np.sort(out)


# --- canonical format -----------------------------------------------------------------------
def canonical_diagrams(dgms: list, max_dim: int) -> list:
    """One float64 ``(n_k, 2)`` array per dimension 0..max_dim, zero-length bars removed,
    sorted by decreasing persistence (essential classes first), then by birth."""
    out = []
    for k in range(max_dim + 1):
        d = np.asarray(dgms[k], dtype=np.float64).reshape(-1, 2) if k < len(dgms) else np.zeros((0, 2))
        d = d[d[:, 1] > d[:, 0]]
        pers = d[:, 1] - d[:, 0]
        order = np.lexsort((d[:, 1], d[:, 0], -pers))
        out.append(np.ascontiguousarray(d[order]))
    return out


def snap_to_distances(dgms: list, D) -> list:
    """Replace float32-rounded births/deaths by the float64 distances they round from."""
    finite_vals = np.concatenate([d[np.isfinite(d)] for d in dgms]) if dgms else np.zeros(0)
    if finite_vals.size == 0:
        return dgms
    if _is_sparse(D):
        ref = np.unique(np.concatenate([[0.0], np.asarray(D.data, dtype=np.float64)]))
    else:
        n = D.shape[0]
        ref = np.unique(np.concatenate([[0.0]] + [D[i, i + 1:] for i in range(n - 1)]))
    ref32 = ref.astype(np.float32)  # monotone, so sorted too
    out = []
    for d in dgms:
        d = np.array(d, dtype=np.float64, copy=True)
        fin = np.isfinite(d)
        v = d[fin]
        v32 = v.astype(np.float32)
        lo = np.searchsorted(ref32, v32, side="left")
        hi = np.searchsorted(ref32, v32, side="right")
        ok = hi > lo
        # nearest float64 candidate among those rounding to the same float32
        j = np.clip(np.searchsorted(ref, v), lo, np.maximum(hi - 1, lo))
        jm = np.maximum(j - 1, lo)
        pick = np.where(np.abs(ref[np.minimum(jm, len(ref) - 1)] - v) < np.abs(ref[np.minimum(j, len(ref) - 1)] - v),
                        jm, j)
        v = np.where(ok, ref[np.minimum(pick, len(ref) - 1)], v)
        d[fin] = v
        out.append(d)
    return out
