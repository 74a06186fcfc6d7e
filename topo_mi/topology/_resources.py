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


# -- the backend's own allocations: measured on pilots, extrapolated --------------------------
# Counting simplices does not predict what a Ripser-style reduction allocates for H1 and above:
# its working coboundaries and the stored reduction columns depend on the data (on the project's
# benchmark, 1,000 points of a noisy circle in R^64 peaked at 0.67 GB and 2,000 Gaussian points
# in R^64 at 0.31 GB, while the edges counted 26 MB and 102 MB). So the backend is run on two
# random subsets of n/8 and n/4 points, its peak resident memory measured on each (the kernel's
# high-water mark, reset through /proc/self/clear_refs), and a power law through the two
# extrapolated to n (exponent clipped to [1, 4]); each pilot runs in a fresh process, since memory
# this process freed earlier would absorb a pilot's allocations without raising the mark.
_PILOT_MIN_N = 400
_PILOT_MIN_SIZE = 100
_PILOT_FACTOR = 50


def _status_kb(key: str) -> int | None:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:  # pragma: no cover - not Linux
        return None
    return None


def _reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:  # pragma: no cover - not Linux, or not allowed
        return False


def measure_peak(fn):
    """``(result, bytes)``: the rise of this process' peak resident memory while ``fn`` runs
    (None when the kernel does not let the peak be reset)."""
    if not _reset_peak():
        return fn(), None
    before = _status_kb("VmRSS")
    out = fn()
    peak = _status_kb("VmHWM")
    if before is None or peak is None:
        return out, None
    return out, max(0, peak - before)


_PILOT_CODE = """
import sys, numpy as np
from topo_mi.topology import _backends as bk, _resources as rs
D = np.load(sys.argv[1])
args = dict(n=D.shape[0], max_dim=int(sys.argv[2]), threshold=float(sys.argv[3]), coeff=int(sys.argv[4]))
bk.run_backend(sys.argv[5], D[:50, :50].copy(), **dict(args, n=50))  # imports and first-call buffers
_, b = rs.measure_peak(lambda: bk.run_backend(sys.argv[5], D, **args))
print(-1 if b is None else b)
"""


def _start_pilot(Ds, *, max_dim, threshold, backend, coeff):
    """Start the backend on ``Ds`` in a fresh process (freed memory of this one would hide what a
    first run allocates); returns ``(process, matrix file)``."""
    import os
    import subprocess
    import sys
    import tempfile

    fd, path = tempfile.mkstemp(suffix=".npy")
    os.close(fd)
    try:
        np.save(path, Ds)
        proc = subprocess.Popen([sys.executable, "-c", _PILOT_CODE, path, str(max_dim), repr(float(threshold)),
                                 str(coeff), backend], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    except BaseException:
        os.unlink(path)
        raise
    return proc, path


def _finish_pilot(proc, path) -> int | None:
    """Peak bytes a started pilot reported (None when it failed or could not measure); the caller
    removes its matrix file."""
    import subprocess

    try:
        out, _ = proc.communicate(timeout=3600)
    except subprocess.TimeoutExpired:  # pragma: no cover - a pilot is a small fraction of the job
        proc.kill()
        proc.communicate()
        return None
    try:
        b = int(out.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return None
    return None if proc.returncode or b < 0 else b


def pilot_backend_bytes(D, *, max_dim: int, threshold: float, backend: str, coeff: int, seed: int = 0):
    """Extrapolated peak bytes of the backend on the dense matrix ``D`` (None when not piloted).

    The two pilots run side by side (each in its own process, so each high-water mark is its own).
    """
    import os

    n = D.shape[0] if isinstance(D, np.ndarray) else 0
    if n < _PILOT_MIN_N or max_dim < 1 or backend == "mst":
        return None
    rng = np.random.default_rng(seed)
    sizes = [max(_PILOT_MIN_SIZE, n // 8), max(2 * _PILOT_MIN_SIZE, n // 4)]
    subsets = [np.sort(rng.choice(n, size=m, replace=False)) for m in sizes]
    started = []
    try:
        for s in subsets[::-1]:  # the larger (slower) pilot first
            started.append(_start_pilot(np.ascontiguousarray(D[np.ix_(s, s)]), max_dim=max_dim,
                                        threshold=threshold, backend=backend, coeff=coeff))
        results = [_finish_pilot(*job) for job in started][::-1]
    finally:
        for proc, path in started:  # finished or interrupted, no pilot or file is left behind
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
            os.unlink(path)
    if any(b is None for b in results):
        return None
    peaks = [max(b, 1 << 16) for b in results]
    alpha = float(np.clip(np.log(peaks[1] / peaks[0]) / np.log(sizes[1] / sizes[0]), 1.0, 4.0))
    return peaks[1] * (n / sizes[1]) ** alpha


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
        options.append("max_relative_error=0.05 (the cheapest route with a certified bound, Euclidean data)")
        options.append("max_dim=0 (exact H0 by single linkage, seconds)" if max_dim >= 1 else "a lower max_dim")
        warnings.warn(f"{what}: {n} points, about {info['n_simplices'][1]:.3g} edges and {cofaces:.3g} "
                      f"{max_dim + 1}-simplices to scan, estimated {_fmt_seconds(fast)} to {_fmt_seconds(slow)} "
                      f"and {_fmt_bytes(info['bytes'])}; cheaper: {'; '.join(options)}",
                      CostWarning, stacklevel=3)
    return fast, slow


def check_complex_fits(D, *, n: int, max_dim: int, threshold: float, backend: str, limit: int,
                       coeff: int = 2, pilot: bool | None = None) -> dict:
    """Estimate the complex and refuse it when it would not fit; returns the estimate.

    The estimate is the larger of the simplex count (edges and, for dimension >= 2, sampled
    cofaces) and, for a dense matrix of at least 400 points with H1 and above, the backend's
    peak measured on two pilot subsets and extrapolated (:func:`pilot_backend_bytes`). The
    pilots run when ``pilot`` is True, or by default when the counted bytes times 50 (beyond
    the largest under-count measured, 25x) would pass the limit: only then can the count be
    wrong about fitting."""
    counts, t_eff = estimate_simplices(D, max_dim, threshold)
    dense = dense_bytes(n, backend) if isinstance(D, np.ndarray) else _BYTES_PER_EDGE * float(D.nnz)
    edges = counts[1] if max_dim >= 1 else 0.0
    need = dense + _BYTES_PER_EDGE * edges + _BYTES_PER_SIMPLEX * float(counts[1:].sum())
    piloted = None
    if pilot is None:
        pilot = _PILOT_FACTOR * need > limit
    if pilot and need <= limit:  # what the counts already refuse needs no pilot
        piloted = pilot_backend_bytes(D, max_dim=max_dim, threshold=threshold, backend=backend, coeff=coeff)
        if piloted is not None:
            need = max(need, dense + piloted)
    info = {"n_simplices": counts, "effective_threshold": t_eff, "bytes": need, "limit": limit,
            "piloted_bytes": piloted}
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
