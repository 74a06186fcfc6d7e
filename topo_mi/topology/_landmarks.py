"""Max–min landmarks (the greedy permutation) of a Euclidean point cloud, blocked through BLAS.

The greedy permutation picks ``l_0 = start`` and then ``l_i = argmax_x min_{j<i} d(x, l_j)``;
its insertion radii ``r_i = min_{j<i} d(l_i, l_j)`` decrease, and after ``k`` landmarks every
point is within ``r_k`` (the cover radius) of one (Gonzalez 1985; Cavanna, Jahanseir & Sheehy,
"A geometric perspective on sparse filtrations", CCCG 2015).

The textbook loop updates the running minimum with one distance row per landmark: a
matrix–vector product that reads all the data once per landmark (memory bound). Here the
landmarks are chosen in *blocks* without giving up exactness of the greedy choice:

1. take the ``B`` points of largest running minimum (the candidates) and ``T``, the largest
   running minimum outside them;
2. pick greedily among the candidates, updating only their minima (a small product per pick),
   as long as the best candidate's value is strictly above ``T``: no point outside can beat it,
   so the pick is the one the textbook loop makes;
3. update the running minimum of all points with the whole block of new landmarks at once, one
   float32 matrix–matrix product (BLAS, all cores) per slab of rows, into the running minimum
   in place.

Distances are computed in float32 from data centred on its mean (slab by slab: no copy of the
input, float32 or float64), by the expansion ``|x|² + |l|² − 2 x·l``. **Tie rule**: among
points of equal running minimum the lowest index is picked (``numpy.argmax``), as in the
float64 reference loop :func:`topo_mi._sampling.maxmin_landmarks`; the indices are those of the
reference except where two candidates' running minima agree to within float32 rounding (a
relative ~1e-6 of the cloud's radius), where either is a valid greedy choice. The reported cover
radius is not taken from float32: it is ``max_x |x − l(x)|`` in float64 with ``l(x)`` the
landmark each point was assigned to, an upper bound on the exact cover radius of the chosen
landmarks (equal to it unless the float32 assignment picked a landmark farther by a rounding
error), so a bound ``2 r`` built on it stays certified.
"""
from __future__ import annotations

import os

import numpy as np

_SLAB = 2048        # rows per slab of the block update (a float32 scratch of _SLAB x d, in cache)
_B0 = 2048          # candidates in the first block (doubled while blocks stay short)
_B_MAX = 16384
_K = 96             # landmarks per block at most


def _gemm_threads() -> int:
    """All cores for the block products when the load average leaves them free, else one: on
    the shared 2-core development machine at load ~14, two BLAS threads ran a float32 GEMM at
    15 GFLOP/s and one at 19-21, and a 6 MB matrix-vector product 10-25x slower."""
    cores = os.cpu_count() or 1
    try:
        load = os.getloadavg()[0]
    except OSError:  # pragma: no cover - not POSIX
        load = 0.0
    return cores if load < cores else 1


def greedy_permutation(X, n: int | None = None, *, start: int = 0, stop_radius: float | None = None,
                       threads: int | None = None):
    """Max–min landmarks of the rows of ``X`` (Euclidean).

    Parameters
    ----------
    X : ndarray (N, d), float32 or float64 (never copied as a whole)
    n : int, optional
        Landmarks to pick (default: until ``stop_radius`` is met, at most ``N``).
    start : int
        The first landmark.
    stop_radius : float, optional
        Stop as soon as every point is within this distance of a landmark (the float32 running
        minimum; the returned float64 radius may exceed it by a rounding error).
    threads : int, optional
        BLAS threads for the block products (default: see :func:`_gemm_threads`).

    Returns
    -------
    indices : int64 (k,), in greedy order
    radii : float64 (k,), the insertion radius of each landmark (``inf`` for the first)
    cover_radius : float, float64 ``max_x |x − l(x)|`` (see the module notes)
    nearest : int64 (N,), the landmark each point is assigned to (an index into ``X``)
    """
    X = np.asarray(X)
    N, d = X.shape
    n = N if n is None else int(n)
    stop = -1.0 if stop_radius is None else float(stop_radius)
    mu = np.zeros(d)
    for s in range(0, N, _SLAB):
        mu += X[s:s + _SLAB].sum(axis=0, dtype=np.float64)
    mu = (mu / N).astype(np.float32)
    sq = np.empty(N, dtype=np.float32)
    for s in range(0, N, _SLAB):
        Y = np.subtract(X[s:s + _SLAB], mu, dtype=np.float32)
        sq[s:s + _SLAB] = np.einsum("ij,ij->i", Y, Y)
    mind = np.full(N, np.inf, dtype=np.float32)
    near = np.zeros(N, dtype=np.int64)
    idx = [int(start)]
    radii = [np.inf]
    B = min(_B0, N)
    from topo_mi.topology._persistence import _blas_threads

    g = threads or _gemm_threads()
    with _blas_threads(g):
        _update(X, mu, sq, mind, near, np.array(idx))
    while len(idx) < n:
        first = int(np.argmax(mind))
        v = float(mind[first])
        if v <= stop or v == 0.0:
            break
        block, brad = [first], [v]
        if N - len(idx) > 1 and n - len(idx) > 1:
            with _blas_threads(1):  # matrix-vector products: memory bound
                _pick_block(X, mu, sq, mind, first, block, brad, min(B, N - len(idx) - 1),
                            min(_K, n - len(idx)), stop)
            if len(block) < _K // 4:  # candidates ran out: look deeper next time
                B = min(2 * B, _B_MAX, N)
            elif len(block) == _K:  # full block: fewer candidates suffice
                B = max(_B0, B // 2)
        idx.extend(block)
        radii.extend(brad)
        with _blas_threads(g):
            _update(X, mu, sq, mind, near, np.array(block))
    idx = np.array(idx, dtype=np.int64)
    near[idx] = idx
    r = 0.0
    for s in range(0, N, _SLAB):
        diff = np.subtract(X[s:s + _SLAB], X[near[s:s + _SLAB]], dtype=np.float64)
        r = max(r, float(np.sqrt(np.einsum("ij,ij->i", diff, diff).max())))
    return idx, np.array(radii, dtype=np.float64), r, near


def _pick_block(X, mu, sq, mind, first, block, brad, Bk, K, stop):
    """Greedy picks among the ``Bk`` points of largest running minimum, while provably the
    global choice (see the module notes); appends to ``block`` / ``brad``."""
    N = X.shape[0]
    part = np.argpartition(mind, N - Bk - 1)
    cand = np.sort(part[N - Bk:])  # index order: argmax picks the lowest index among ties
    T = float(mind[part[N - Bk - 1]])  # no point outside the candidates has a larger minimum
    C = np.subtract(X[cand], mu, dtype=np.float32)
    sqc = sq[cand]
    cm = mind[cand].copy()
    _pick_update(cm, C, sqc, np.subtract(X[first], mu, dtype=np.float32), sq[first])
    cm[cand == first] = 0.0
    while len(block) < K:
        j = int(np.argmax(cm))
        w = float(cm[j])
        if w <= T or w <= stop or w == 0.0:
            break
        block.append(int(cand[j]))
        brad.append(w)
        p, sqp = C[j].copy(), sqc[j]
        cm[j] = 0.0
        alive = cm > T  # only these can still be picked in this block
        if 2 * np.count_nonzero(alive) < len(cm):  # compact: later products get shorter
            cand, C, sqc, cm = cand[alive], C[alive], sqc[alive], cm[alive]
            if not len(cm):
                break
        _pick_update(cm, C, sqc, p, sqp)


def _pick_update(cm, C, sqc, p, sqp):
    d2 = C @ p
    d2 *= -2.0
    d2 += sqc
    d2 += sqp
    np.maximum(d2, 0.0, out=d2)
    np.sqrt(d2, out=d2)
    np.minimum(cm, d2, out=cm)


def _update(X, mu, sq, mind, near, new):
    """``mind = min(mind, d(., new))`` (and the argmin into ``near``), slab by slab, in place."""
    L = np.subtract(X[new], mu, dtype=np.float32)
    sqL = sq[new]
    LT = np.ascontiguousarray(L.T)
    N = X.shape[0]
    for s in range(0, N, _SLAB):
        e = min(N, s + _SLAB)
        Y = np.subtract(X[s:e], mu, dtype=np.float32)
        G = Y @ LT
        G *= -2.0
        G += sqL
        G += sq[s:e, None]
        j = np.argmin(G, axis=1)
        g = G[np.arange(e - s), j]
        np.maximum(g, 0.0, out=g)
        np.sqrt(g, out=g)
        better = g < mind[s:e]
        mind[s:e][better] = g[better]
        near[s:e][better] = new[j[better]]
    mind[new] = 0.0
    near[new] = new
