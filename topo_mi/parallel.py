"""One executor interface for independent work (layers x models x seeds x bootstrap resamples).

``executor.map(fn, items, desc=...)`` returns ``[fn(item) for item in items]`` in order, whatever
the backend, with a progress bar. Backends:

- ``"serial"``: in this process;
- ``"process"``: a local process pool (``forkserver`` start method on Linux: workers start from a
  clean process, so threads of torch/numba/TBB in the parent cannot deadlock them);
- ``"dask"``: a ``dask.distributed`` cluster given by its scheduler address (tasks are retried
  when a worker dies).

Functions and items must be picklable (module-level functions, arrays, dataclasses). Seeds are
part of the items, never drawn inside a worker, so results are identical across backends.
"""
from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import sys
from typing import Any, Callable, Iterable, Sequence

from topo_mi._validation import check_choice, check_int
from topo_mi.errors import DependencyError, InvalidParameterError, WorkerError


def _progress(iterable, *, total, desc, enabled):
    if not enabled:
        return iterable
    from tqdm.auto import tqdm

    return tqdm(iterable, total=total, desc=desc, leave=False, disable=None)



class Executor:
    """Base class: ``map(fn, items, *, desc=None, progress=True) -> list``."""

    name = "base"

    def map(self, fn: Callable[[Any], Any], items: Iterable[Any], *, desc: str | None = None,
            progress: bool = True) -> list:  # pragma: no cover - interface
        raise TypeError("Executor.map is abstract: use SerialExecutor, ProcessExecutor or DaskExecutor")

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class SerialExecutor(Executor):
    """Runs the items one after the other in this process (the default; no pickling needed)."""
    name = "serial"

    def map(self, fn, items, *, desc=None, progress=True):
        items = list(items)
        return [fn(it) for it in _progress(items, total=len(items), desc=desc, enabled=progress)]


_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS")


def _limit_threads(k: int) -> None:
    """Worker initializer: at most ``k`` threads for BLAS, OpenMP and torch in this worker (the
    libraries loaded later read the variables; those already loaded are limited through
    threadpoolctl)."""
    for var in _THREAD_VARS:
        os.environ[var] = str(k)
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(limits=k)
    except Exception:  # pragma: no cover - threadpoolctl comes with scikit-learn
        pass
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(k)


class ProcessExecutor(Executor):
    """A local process pool; ``n_workers`` defaults to the number of cores.

    ``threads_per_worker`` (default: the cores divided among the workers, at least 1) caps the
    BLAS/OpenMP/torch threads of each worker, so that the workers do not oversubscribe the cores
    (as joblib's workers do). Two workers on 2 cores with 2 BLAS threads each took 63 s of wall
    time for the MiniLM token job (7 layers of ``persistence(max_error=2.0)``), against 58 s with
    one thread each (``benchmarks/bench_hotpaths.py --rows minilm``)."""

    name = "process"

    def __init__(self, n_workers: int | None = None, *, mp_context: str | None = None, retries: int = 1,
                 threads_per_worker: int | None = None):
        if n_workers is None:
            n_workers = os.cpu_count() or 1
        self.n_workers = check_int("n_workers", n_workers, min_value=1)
        self.retries = check_int("retries", retries, min_value=0)
        if threads_per_worker is not None:
            check_int("threads_per_worker", threads_per_worker, min_value=1)
        self._threads = threads_per_worker
        if mp_context is None:
            mp_context = os.environ.get("TOPO_MI_MP_CONTEXT") or ("forkserver" if sys.platform.startswith("linux") else None)
        self.mp_context = mp_context

    @property
    def threads_per_worker(self) -> int:
        """Threads of each worker of a full pool (a pool of fewer workers, for fewer tasks, gives
        each its share of the cores)."""
        return self._threads_for(self.n_workers)

    def _threads_for(self, workers: int) -> int:
        return self._threads if self._threads is not None else max(1, (os.cpu_count() or 1) // workers)

    def map(self, fn, items, *, desc=None, progress=True):
        from concurrent.futures import ProcessPoolExecutor

        items = list(items)
        if len(items) <= 1 or self.n_workers == 1:
            return SerialExecutor().map(fn, items, desc=desc, progress=progress)
        ctx = mp.get_context(self.mp_context) if self.mp_context else None
        results: list = [None] * len(items)
        pending = list(range(len(items)))
        bar = _progress(None, total=len(items), desc=desc, enabled=progress) if progress else None
        try:
            for attempt in range(self.retries + 1):
                pending = self._run_pool(fn, items, pending, results, ctx, bar)
                if not pending:
                    return results
            label = f" of {desc!r}" if desc else ""
            raise WorkerError(
                f"executor: a worker process died (killed, or out of memory) while running task(s) "
                f"{', '.join(map(str, pending[:10]))}{' ...' if len(pending) > 10 else ''}{label}, "
                f"after {self.retries} retr{'y' if self.retries == 1 else 'ies'}; run with "
                f"executor='serial' to see the failure in this process, or lower the memory per task")
        finally:
            if bar is not None:
                bar.close()

    def _run_pool(self, fn, items, pending, results, ctx, bar) -> list[int]:
        """Run ``pending`` tasks in a fresh pool; return those lost to a dead worker."""
        from concurrent.futures import ProcessPoolExecutor, as_completed
        from concurrent.futures.process import BrokenProcessPool

        lost: list[int] = []
        workers = min(self.n_workers, len(pending))
        with ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_limit_threads,
                                 initargs=(self._threads_for(workers),)) as pool:
            futures = {pool.submit(fn, items[i]): i for i in pending}
            for fut in as_completed(futures):
                i = futures[fut]
                try:
                    results[i] = fut.result()
                except BrokenProcessPool:
                    lost.append(i)
                    continue
                if bar is not None:
                    bar.update(1)
        return sorted(lost)

    def __repr__(self) -> str:
        return f"ProcessExecutor(n_workers={self.n_workers})"


class DaskExecutor(Executor):
    """Fan out to a ``dask.distributed`` cluster (``address`` of its scheduler, or a ``Client``)."""

    name = "dask"

    def __init__(self, address: Any = None, *, retries: int = 3):
        try:
            from dask.distributed import Client
        except ImportError as exc:  # pragma: no cover - extra not installed
            raise DependencyError("the dask executor needs the 'dask' extra: pip install 'topo_mi[dask]'") from exc
        self._own = not isinstance(address, Client)
        self.client = address if not self._own else Client(address)
        self.retries = check_int("retries", retries, min_value=0)

    def map(self, fn, items, *, desc=None, progress=True):
        from dask.distributed import as_completed

        items = list(items)
        if not items:
            return []
        futures = self.client.map(fn, items, pure=False, retries=self.retries)
        index = {f.key: i for i, f in enumerate(futures)}
        results: list = [None] * len(items)
        for fut in _progress(as_completed(futures), total=len(items), desc=desc, enabled=progress):
            results[index[fut.key]] = fut.result()
        return results

    def close(self) -> None:
        if self._own:
            self.client.close()

    def __repr__(self) -> str:
        return f"DaskExecutor({self.client.scheduler.address!r})"


@contextlib.contextmanager
def torch_threads(n: int | None):
    """Temporarily set torch's intra-op thread count, restored afterwards (``None`` leaves it).

    Small tensor work runs faster on one thread: waking and synchronising threads costs more than
    it saves, and a count raised elsewhere oversubscribes a loaded machine.
    """
    import torch

    if n is None or int(n) == torch.get_num_threads():
        yield
        return
    old = torch.get_num_threads()
    torch.set_num_threads(int(n))
    try:
        yield
    finally:
        torch.set_num_threads(old)


def get_executor(executor: Any = None, *, n_workers: int | None = None, address: Any = None) -> Executor:
    """Resolve ``None`` / ``"serial"`` / ``"process"`` / ``"dask"`` / an Executor instance.

    ``None`` means serial: library calls are predictable by default; pass ``"process"`` (or the
    CLI's ``--workers``) to fan out.
    """
    if isinstance(executor, Executor):
        return executor
    if executor is None:
        executor = "serial"
    check_choice("executor", executor, ("serial", "process", "dask"))
    if executor == "serial":
        return SerialExecutor()
    if executor == "process":
        if n_workers is not None:
            check_int("n_workers", n_workers, min_value=1)
        return ProcessExecutor(n_workers)
    if address is None:
        raise InvalidParameterError("address: expected a Dask scheduler address (e.g. 'tcp://host:8786') "
                                    "with executor='dask', got None")
    return DaskExecutor(address)


__all__ = ["Executor", "SerialExecutor", "ProcessExecutor", "DaskExecutor", "get_executor", "torch_threads"]
