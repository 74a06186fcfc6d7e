r"""An exact H0–H1 computation that stops the complex early, with a certificate.

Every Vietoris–Rips backend builds the complex up to the enclosing radius (beyond it every
complex is a cone). On a cloud whose cycles all die far earlier, most of that complex is wasted:
4,000 points of a torus have every H1 death below 1.75 and an enclosing radius of 4.0, and the
whole filtration needs 9.3 GB. Two facts let the computation stop early and stay exact.

**No H1 class is born after the longest witness-free edge.** Call ``w`` a strict witness of the
edge ``uv`` when ``max(d(u, w), d(w, v)) < d(u, v)`` (``w`` lies in the open lune of ``uv``).
Then at the scale ``s = d(u, v)`` the edges ``uw`` and ``wv`` are already present and the
triangle ``uvw`` arrives with ``uv``, so any cycle through ``uv`` is homologous to one through
``u w v``: the map ``H1(K_{<s}) → H1(K_s)`` stays onto and no class of positive persistence is
born at ``s``. Hence every H1 birth is at most

    ``L = max { d(u, v) : uv has no strict witness }``,

the longest edge of the relative neighbourhood graph (Toussaint, 1980) — defined from the
matrix alone, so it holds for any dissimilarity (cosine, hop counts), ties included. The minimum
spanning tree is a subgraph of it, so every finite H0 death is at most ``L`` as well.

**A class dead before the cut is dead in the whole filtration.** The complex at threshold
``t`` is a prefix of the full filtration, and the persistence pairs of a filtration that fall in
a prefix are those of the prefix. So if the complex up to ``t >= L`` leaves no H1 class alive,
its H0 and H1 diagrams are those of the whole filtration, exactly.

:func:`cut_persistence` computes ``L`` (a k-nearest-neighbour pass finds a witness for almost
every edge; the few edges left are checked against every point), runs the backend at ``t = L``
and, while some H1 class is still alive at ``t``, doubles the number of edges and runs again
(the work of all the runs is then a small multiple of the last one); at the enclosing radius it
runs the whole filtration. Each run is checked by the memory guard at its own threshold.
"""
from __future__ import annotations

import numpy as np

from topo_mi.errors import ResourceError

# Points from which the cut is tried (below, the whole filtration costs well under a second).
CUT_MIN_POINTS = 1000
# Nearest neighbours tried as witnesses per vertex, and rows per block of that pass.
_WITNESS_NEIGHBOURS = 16
_BLOCK_ELEMENTS = 4_000_000
# Pairs sampled to pick the next threshold (a schedule only: correctness does not depend on it).
_SCHEDULE_SAMPLE = 200_000


def witness_free_edges(D: np.ndarray, *, m: int = _WITNESS_NEIGHBOURS) -> tuple[np.ndarray, np.ndarray]:
    """The edges ``u < v`` of the dissimilarity matrix ``D`` with no strict witness ``w``
    (``max(D[u, w], D[w, v]) < D[u, v]``, ``w != u, v``): the relative neighbourhood graph.

    Exact: the ``m`` nearest neighbours of ``u`` are tried first (blockwise, O(n² m)); every
    edge they leave unwitnessed is checked against all points.
    """
    n = D.shape[0]
    m = max(1, min(m, n - 2)) if n > 2 else 0
    if n < 2:
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)
    if m == 0:  # two points: their edge has no witness
        return np.array([0]), np.array([1])
    nbr = np.argpartition(D, m, axis=1)[:, :m + 1]          # the m nearest and (usually) the point itself
    us, vs = [], []
    block = max(1, _BLOCK_ELEMENTS // (n * (m + 1)))
    for s in range(0, n, block):
        rows = np.arange(s, min(n, s + block))
        cand = nbr[rows]                                     # (b, m + 1)
        du = np.take_along_axis(D[rows], cand, axis=1)       # d(u, w)
        du = np.where(cand == rows[:, None], np.inf, du)     # w = u is no witness
        best = np.maximum(D[cand], du[:, :, None]).min(axis=1)   # (b, n): min_w max(d(u,w), d(w,v))
        u, v = np.nonzero(best >= D[rows])
        u = rows[u]
        keep = u < v                                         # each edge once, from its lower end
        us.append(u[keep])
        vs.append(v[keep])
    u, v = np.concatenate(us), np.concatenate(vs)
    # exact check of what the neighbours did not witness (w = v gives max(d(u,v), 0) = d(u,v): never strict)
    free = np.zeros(u.size, dtype=bool)
    step = max(1, _BLOCK_ELEMENTS // n)
    for s in range(0, u.size, step):
        uu, vv = u[s:s + step], v[s:s + step]
        M = np.maximum(D[uu], D[vv])
        r = np.arange(uu.size)
        M[r, uu] = np.inf
        M[r, vv] = np.inf
        free[s:s + step] = M.min(axis=1) >= D[uu, vv]
    return u[free], v[free]


def h1_birth_bound(D: np.ndarray) -> float:
    """``L``: the longest edge with no strict witness; no H1 class (and no finite H0 class) of the
    Rips filtration of ``D`` is born (dies, for H0) after it."""
    u, v = witness_free_edges(D)
    return float(D[u, v].max()) if u.size else 0.0


def next_threshold(D: np.ndarray, t: float, sample: np.ndarray) -> float:
    """The scale at which the complex has about twice the edges it has at ``t`` (from a sorted
    sample of the pair lengths), and at least 5 % beyond ``t``."""
    frac = np.searchsorted(sample, t, side="right") / sample.size
    q = min(1.0, max(2.0 * frac, frac + 1.0 / sample.size))
    return max(float(np.quantile(sample, q)), 1.05 * t if t > 0 else float(sample[sample > 0].min(initial=1.0)))


def pair_sample(D: np.ndarray, seed: int = 0) -> np.ndarray:
    n = D.shape[0]
    rng = np.random.default_rng(seed)
    k = min(_SCHEDULE_SAMPLE, n * (n - 1) // 2)
    i = rng.integers(0, n, size=2 * k)
    j = rng.integers(0, n, size=2 * k)
    keep = i != j
    return np.sort(D[i[keep][:k], j[keep][:k]])


def cut_persistence(D: np.ndarray, *, n: int, coeff: int, backend: str, limit: int, check, run):
    """H0 and H1 of the whole Rips filtration of ``D`` through the smallest certified prefix.

    ``check(threshold)`` is the memory guard (raises before a run that would not fit);
    ``run(threshold)`` returns the backend's raw diagrams. Returns the raw diagrams and a dict:
    ``birth_bound`` (L), ``cut`` (the threshold of the last run; inf: the whole filtration),
    ``thresholds`` (every run's).
    """
    cone = float(np.min(np.max(D, axis=1)))
    L = h1_birth_bound(D)
    sample = None
    t = L
    thresholds = []
    while True:
        if t >= cone:
            t = float("inf")
        try:
            check(t)
        except ResourceError as exc:
            if not thresholds:
                raise
            alive = int(np.isinf(h1[:, 1]).sum())
            raise ResourceError(f"{exc} [exact H0-H1 through the certified cut: {alive} H1 classes were still "
                                f"alive at scale {thresholds[-1]:.4g}, so the complex up to {t:.4g} was "
                                "needed next]") from None
        raw = run(t)
        thresholds.append(t)
        if np.isinf(t):
            break
        h1 = np.asarray(raw[1]).reshape(-1, 2) if len(raw) > 1 else np.empty((0, 2))
        if not np.isinf(h1[:, 1]).any():
            break
        if sample is None:
            sample = pair_sample(D)
        t = next_threshold(D, t, sample)
    return raw, {"birth_bound": L, "cut": t, "thresholds": thresholds, "enclosing_radius": cone}


__all__ = ["witness_free_edges", "h1_birth_bound", "cut_persistence", "CUT_MIN_POINTS"]
