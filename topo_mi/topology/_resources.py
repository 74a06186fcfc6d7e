"""Size and memory estimates of a Vietoris–Rips computation, checked before running it."""
from __future__ import annotations

import math

import numpy as np

from topo_mi.errors import ResourceError

# Bytes per stored simplex in the reduction (a Ripser-style pivot hash map entry and column
# bookkeeping); per edge of a sparse edge list (two int32 indices and a float64 length).
_BYTES_PER_SIMPLEX = 24
_BYTES_PER_EDGE = 16
_SAMPLE_ROWS = 256


def available_memory() -> int:
    """Bytes of memory this process can still allocate (see :func:`topo_mi._resources.available_memory`)."""
    from topo_mi._resources import available_memory as _available

    return _available()


def default_memory_limit() -> int:
    """75 % of the memory available now."""
    return int(0.75 * available_memory())


def dense_bytes(n: int, backend: str) -> int:
    """Memory of the distance matrix and the copies the backend makes of it."""
    base = 8 * n * n  # our float64 matrix
    if backend in ("ripser", "giotto-ph"):
        base += 2 * n * n + 8 * n * n  # float32 triangle + float64 values for snapping
    return base


def _fmt_bytes(b: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if b < 1024 or unit == "TiB":
            return f"{b:.1f} {unit}" if unit != "B" else f"{int(b)} B"
        b /= 1024.0
    return f"{b:.1f} TiB"  # pragma: no cover


def estimate_simplices(D, max_dim: int, threshold: float, *, seed: int = 0) -> tuple[np.ndarray, float]:
    """Estimated number of simplices of each dimension 0..max_dim in the Rips complex.

    Counts edges exactly (dense or sparse ``D``) up to ``min(threshold, enclosing radius)``
    (beyond the enclosing radius every complex is a cone and the backends stop there). For
    dimension j >= 2 it sums ``C(deg_v, j) / (j + 1)`` over a sample of vertices ``v`` (deg_v:
    neighbours within the threshold), which over-counts (neighbours of v need not be mutual
    neighbours): a conservative estimate.

    Returns the counts and the effective threshold.
    """
    if isinstance(D, np.ndarray):
        n = D.shape[0]
        enclosing = float(np.min(np.max(D, axis=1))) if n else 0.0
        t = min(threshold, enclosing)
        deg = np.count_nonzero(D <= t, axis=1) - 1
    else:
        n = D.shape[0]
        t = threshold
        keep = D.data <= t
        deg = (np.bincount(D.row[keep], minlength=n) + np.bincount(D.col[keep], minlength=n))
    counts = np.zeros(max_dim + 1)
    counts[0] = n
    if max_dim >= 1:
        counts[1] = deg.sum() / 2.0
    if max_dim >= 2:
        rng = np.random.default_rng(seed)
        sample = deg if n <= _SAMPLE_ROWS else deg[rng.choice(n, _SAMPLE_ROWS, replace=False)]
        for j in range(2, max_dim + 1):
            per_vertex = np.array([math.comb(int(g), j) for g in sample], dtype=np.float64)
            counts[j] = per_vertex.mean() * n / (j + 1)
    return counts, t


def check_dense_fits(n: int, *, backend: str, limit: int, extra: int = 0, what: str = "") -> None:
    """Refuse before building an ``n x n`` matrix that would not fit."""
    need = dense_bytes(n, backend) + extra
    if need > limit:
        raise ResourceError(
            f"persistence: the {n} x {n} distance matrix{what} needs about {_fmt_bytes(need)} "
            f"(limit {_fmt_bytes(limit)}); pass n_landmarks=... (max-min landmarks, e.g. "
            f"n_landmarks={suggest_landmarks(limit, backend)}, with a certified bottleneck bound) "
            "or subsample the points")


def suggest_landmarks(limit: int, backend: str) -> int:
    """A number of landmarks whose distance matrix takes about a quarter of ``limit``."""
    n = math.sqrt(max(limit, 1) / (4 * dense_bytes(1, backend)))
    if n < 100:
        return 100
    digits = 10 ** math.floor(math.log10(n))
    return int(min(5000, digits * math.floor(n / digits)))


# Seconds per (max_dim + 1)-simplex scanned by the Ripser/gudhi reduction, measured on 2 cores:
# 14-18 ns on Gaussian clouds, 58 ns on a torus, 180 ns on a densely sampled circle.
_SECONDS_PER_COFACE = (1.5e-8, 2.0e-7)
# Warn when the slow end of the estimate exceeds this.
WARN_SECONDS = 60.0


def _fmt_seconds(s: float) -> str:
    if s < 120:
        return f"{s:.0f} s"
    if s < 7200:
        return f"{s / 60:.0f} min"
    return f"{s / 3600:.1f} h"


def estimate_seconds(D, max_dim: int, threshold: float) -> tuple[float, float, float]:
    """(fast, slow) ends of the estimated time of the reduction and the number of cofaces it scans.

    The H_max_dim reduction enumerates the (max_dim + 1)-simplices (the cofaces of the
    max_dim-simplices); their conservative count from :func:`estimate_simplices` times the
    measured cost per coface gives the range."""
    if max_dim == 0:
        return 0.0, 0.0, 0.0
    counts, _ = estimate_simplices(D, max_dim + 1, threshold)
    c = float(counts[max_dim + 1])
    return c * _SECONDS_PER_COFACE[0], c * _SECONDS_PER_COFACE[1], c


def warn_if_expensive(D, *, n: int, max_dim: int, threshold: float, info: dict, label: str | None,
                      has_landmarks: bool) -> tuple[float, float]:
    """Warn (:class:`~topo_mi.errors.CostWarning`) before a reduction estimated to take over a minute."""
    fast, slow, cofaces = estimate_seconds(D, max_dim, threshold)
    if slow > WARN_SECONDS:
        import warnings

        from topo_mi.errors import CostWarning

        what = f"persistence of {label}" if label else "persistence"
        t_eff = info.get("effective_threshold", np.inf)
        options = []
        if not has_landmarks:
            options.append(f"n_landmarks={min(500, max(n // 4, 2))} (fewer points, with a certified bottleneck bound)")
        options.append(f"a smaller threshold=... (the complex now goes up to scale {t_eff:.4g})"
                       if np.isfinite(t_eff) else "a finite threshold=...")
        options.append("max_dim=0 (exact H0 by single linkage, seconds)" if max_dim >= 1 else "a lower max_dim")
        warnings.warn(f"{what}: {n} points, about {info['n_simplices'][1]:.3g} edges and {cofaces:.3g} "
                      f"{max_dim + 1}-simplices to scan, estimated {_fmt_seconds(fast)} to {_fmt_seconds(slow)} "
                      f"and {_fmt_bytes(info['bytes'])}; cheaper: {'; '.join(options)}",
                      CostWarning, stacklevel=3)
    return fast, slow


def check_complex_fits(D, *, n: int, max_dim: int, threshold: float, backend: str, limit: int) -> dict:
    """Estimate the complex and refuse it when it would not fit; returns the estimate."""
    counts, t_eff = estimate_simplices(D, max_dim, threshold)
    dense = dense_bytes(n, backend) if isinstance(D, np.ndarray) else _BYTES_PER_EDGE * float(D.nnz)
    edges = counts[1] if max_dim >= 1 else 0.0
    need = dense + _BYTES_PER_EDGE * edges + _BYTES_PER_SIMPLEX * float(counts[1:].sum())
    info = {"n_simplices": counts, "effective_threshold": t_eff, "bytes": need, "limit": limit}
    if need > limit:
        per_dim = ", ".join(f"{int(c):.3g} {k}-simplices" for k, c in enumerate(counts))
        hint_t = ""
        if np.isfinite(t_eff) and t_eff > 0:
            hint_t = f" (the complex goes up to scale {t_eff:.4g} now)"
        raise ResourceError(
            f"persistence: the Vietoris-Rips complex of {n} points up to dimension {max_dim} has about "
            f"{per_dim} and needs about {_fmt_bytes(need)} (limit {_fmt_bytes(limit)}); pass "
            f"n_landmarks=... (fewer points, with a certified bottleneck bound), a smaller finite "
            f"threshold=...{hint_t}, or a lower max_dim")
    return info
