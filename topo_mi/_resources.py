"""The memory budget every size guard checks against, before anything is allocated.

:func:`available_memory` is the smallest of what the machine has free (``MemAvailable``), what
this process may still map under its address-space limit (``RLIMIT_AS``) and what its control
group may still use (cgroup v2 ``memory.max - memory.current``, or v1 ``limit_in_bytes -
usage_in_bytes``): a job that fits in free RAM but not in a container's limit is refused too.
:func:`check_allocation` raises :class:`~topo_mi.errors.ResourceError` with the estimate and how
to lower it.
"""
from __future__ import annotations

import os
from pathlib import Path

from topo_mi.errors import ResourceError

#: Fraction of the available memory one computation may plan to use.
BUDGET_FRACTION = 0.75


def _meminfo_available() -> int | None:
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:  # pragma: no cover - not Linux
        pass
    try:  # pragma: no cover - not Linux
        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):  # pragma: no cover
        return None


def _rlimit_available() -> int | None:
    try:
        import resource
    except ImportError:  # pragma: no cover - not POSIX
        return None
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    if soft == resource.RLIM_INFINITY or soft <= 0:
        return None
    used = _vm_size()
    return max(0, int(soft) - (used or 0))


def _vm_size() -> int | None:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmSize:"):
                    return int(line.split()[1]) * 1024
    except OSError:  # pragma: no cover
        pass
    return None


def _read_int(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    if not text or text == "max":
        return None
    try:
        return int(text)
    except ValueError:
        return None


def _cgroup_available(root: Path = Path("/sys/fs/cgroup")) -> int | None:
    """Bytes the process' control group may still use (None without a limit)."""
    rel = None
    try:
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            parts = line.split(":", 2)
            if len(parts) == 3 and (parts[0] == "0" or "memory" in parts[1].split(",")):
                rel = parts[2].lstrip("/")
                if parts[0] == "0":
                    break
    except OSError:
        pass
    candidates = []
    for base in ([root / rel] if rel else []) + [root]:
        candidates.append((base / "memory.max", base / "memory.current"))  # v2
        candidates.append((base / "memory" / "memory.limit_in_bytes", base / "memory" / "memory.usage_in_bytes"))
        candidates.append((base / "memory.limit_in_bytes", base / "memory.usage_in_bytes"))  # v1
    for limit_file, usage_file in candidates:
        limit = _read_int(limit_file)
        if limit is None or limit >= 1 << 60:  # no limit (v1 writes a huge number)
            continue
        usage = _read_int(usage_file) or 0
        return max(0, limit - usage)
    return None


def available_memory() -> int:
    """Bytes this process can still allocate: the smallest of free RAM, RLIMIT_AS and cgroup room."""
    values = [v for v in (_meminfo_available(), _rlimit_available(), _cgroup_available()) if v is not None]
    return min(values) if values else 8 << 30


def memory_budget(fraction: float = BUDGET_FRACTION) -> int:
    """The bytes one computation may plan to use (``fraction`` of :func:`available_memory`)."""
    return int(fraction * available_memory())


def fmt_bytes(b: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if b < 1024 or unit == "PiB":
            return f"{b:.1f} {unit}" if unit != "B" else f"{int(b)} B"
        b /= 1024.0
    return f"{b:.1f} PiB"  # pragma: no cover


def check_allocation(what: str, nbytes: float, *, hint: str, budget: int | None = None) -> None:
    """Raise :class:`ResourceError` when ``nbytes`` exceed the memory budget.

    ``what`` names the parameter(s) and the structure (``"n_perm: the permutation indices"``);
    ``hint`` says how to lower the estimate.
    """
    budget = memory_budget() if budget is None else int(budget)
    if nbytes > budget:
        raise ResourceError(f"{what}: needs about {fmt_bytes(nbytes)}, more than the memory budget of "
                            f"{fmt_bytes(budget)} (75 % of what this process can still allocate); {hint}")


__all__ = ["available_memory", "memory_budget", "check_allocation", "fmt_bytes", "BUDGET_FRACTION"]
