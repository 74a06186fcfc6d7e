"""Collection overhead: ``topo_mi.collect`` vs a bare forward pass over the same inputs, and
``Activations.iter_batches`` throughput vs reading the memory-mapped array in order.

Cases: a 4 x 512 MLP on 50,000 inputs (all hidden layers); the real MiniLM on sentences (all 7
hidden states, mean-pooled) and per token (``reduce="tokens"`` on the 'text' corpus); each in
memory and streaming to an on-disk store (which includes writing every byte's checksum). Times are
medians of ``--repeat`` rounds, contenders interleaved within each round so that load drifts on a
shared machine hit all alike; a ratio is the median over rounds of the two contenders' times in the
same round. Each contender's result is freed after its timing (as a user's result outlives the
call), and before each timing 1 GB is touched and freed, and 1 GB written to a file and deleted
(``--prime-mb``), so that every contender gets pages its host backs now, anonymous and in the
page cache: on a virtual machine whose balloon reports free memory to the host,
pages left free for ~2 s cost ~9-14x more to touch again (``--cases pages`` measures it here).
Goals: collect <= 1.15x a bare forward in memory, <= 1.3x to disk. ``--cases split`` shows where
collect's time goes: its hooks (populating the result, copying and checking the rows) and the
forward between them, against a collection of the 10-wide output layer alone.

    python benchmarks/bench_collect.py [--quick] [--repeat N] [--cases ...] [--prime-mb MB] [--cpu-time]
"""
from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import torch
from torch import nn

import topo_mi as tm


CLOCK = time.perf_counter
_STORES: list[str] = []


def fresh_store() -> str:
    """A new store folder, deleted right after its timing (deleting 400 MB of files is not part of
    collecting them, and leftover stores would make later rounds wait on their disk writeback)."""
    d = tempfile.mkdtemp()
    _STORES.append(d)
    return os.path.join(d, "s")


def _cleanup():
    for d in _STORES:
        shutil.rmtree(d, ignore_errors=True)
    _STORES.clear()


PRIME_MB = 1024


def prime_pages(mb=None):
    """Map and touch ``mb`` MB of memory and free it again, so that the next allocations get pages
    the host backs now. On a virtual machine whose balloon reports free pages to the host
    (virtio-balloon free page reporting), memory that stays free for ~2 s is handed back and the next
    first touch of it costs ~9-14x more (``--cases pages`` measures it); which contender gets such pages
    would otherwise depend on the order of the rounds."""
    import mmap

    nbytes = (PRIME_MB if mb is None else mb) << 20
    if nbytes <= 0:
        return
    buf = mmap.mmap(-1, nbytes, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    if hasattr(mmap, "MADV_HUGEPAGE"):  # freed as whole 2 MiB blocks, which large results are made of
        buf.madvise(mmap.MADV_HUGEPAGE)
    np.frombuffer(buf, dtype=np.uint8)[::4096] = 1
    buf.close()


def prime_cache(mb=None):
    """Write ``mb`` MB to a file in the temporary folder and delete it, so that the page cache's next
    pages come from memory the host backs now. The page cache takes small pages, which
    :func:`prime_pages` does not reach (it frees whole 2 MiB blocks)."""
    mb = PRIME_MB if mb is None else mb
    if mb <= 0:
        return
    chunk = np.ones(1 << 18, dtype=np.float32)  # 1 MiB
    d = tempfile.mkdtemp()
    try:
        with open(os.path.join(d, "prime"), "wb", buffering=0) as fh:
            for _ in range(mb):
                fh.write(memoryview(chunk).cast("B"))
    finally:
        shutil.rmtree(d, ignore_errors=True)


def interleaved(fns, repeat):
    """Median time of each function over ``repeat`` rounds, measured in alternation so that load
    drifts on a shared machine hit every contender alike (one untimed warm-up round first). Before
    each timing, :func:`prime_pages` and :func:`prime_cache` put host-backed pages first in line for
    every contender alike."""
    for fn in fns:
        fn()
        _cleanup()
    times = [[] for _ in fns]
    for _ in range(repeat):
        for i, fn in enumerate(fns):
            prime_pages()
            prime_cache()
            t0 = CLOCK()
            result = fn()
            times[i].append(CLOCK() - t0)
            # what a contender returns is freed after its timing, as a user's result outlives the call
            # (unmapping 400 MB is not part of collecting it); likewise a store is deleted after its
            # timing, so that each collection starts from an empty disk cache
            del result
            _cleanup()
    return Medians(times)


class Medians(list):
    """The median time of each contender, with its rounds: ``ratio(i)`` is the median over rounds
    of contender ``i``'s time over contender 0's in the same round (paired, so that a slow round
    slows both sides of a ratio alike)."""

    def __init__(self, rounds):
        super().__init__(float(np.median(t)) for t in rounds)
        self.rounds = [np.asarray(t) for t in rounds]

    def ratio(self, i, to=0):
        return float(np.median(self.rounds[i] / self.rounds[to]))

    def ratio_interval(self, i, to=0, level=0.95):
        """:func:`median_interval` of the paired ratios behind :meth:`ratio` (None with too few rounds)."""
        return median_interval(self.rounds[i] / self.rounds[to], level)


def median_interval(x, level=0.95):
    """Distribution-free interval for the median of the population ``x`` is drawn from: the order
    statistics ``[x_(k), x_(n+1-k)]`` with the largest ``k`` such that ``P(Binomial(n, 1/2) < k)``
    is at most ``(1 - level) / 2``, so that it covers the median with probability at least
    ``level`` whatever the distribution (for 9 rounds: the 2nd and 8th smallest, 96.1 %). None when
    ``n`` is too small for the level (fewer than 6 rounds at 95 %)."""
    from math import comb

    x = np.sort(np.asarray(x, dtype=float))
    n = x.size
    tail = (1.0 - level) / 2.0
    k, below = 0, 0  # below: P(Binomial(n, 1/2) <= k - 1) * 2**n
    while k < n and (below + comb(n, k)) / 2 ** n <= tail:
        below += comb(n, k)
        k += 1
    return None if k == 0 else (float(x[k - 1]), float(x[n - k]))


def bare_forward(model, batches, kw=False):
    model.eval()
    with torch.no_grad():
        for b in batches:
            model(**b) if kw else model(b)


def mlp_case(n, repeat):
    model, X, batches, names = _mlp(n)
    bs = batches[0].shape[0]
    def to_disk():
        return tm.collect(model, X, layers=names, batch_size=bs, progress=False, store=fresh_store())

    return f"MLP 4x512, n={n}, 4 layers", interleaved([
        lambda: bare_forward(model, batches),
        lambda: tm.collect(model, X, layers=names, batch_size=bs, progress=False),
        to_disk,
        lambda: hand_collect(model, batches, names, n),
        lambda: hand_collect(model, batches, names, n, folder=os.path.dirname(fresh_store()))], repeat)


def hand_collect(model, batches, names, n, folder=None):
    """The collection a user writes by hand: forward hooks copying each batch's rows into
    preallocated ``np.empty`` arrays — or, with ``folder``, appending them to one raw file per
    layer — with no checks, ids, checksums, journal or metadata. Its excess over the bare forward
    is what keeping the rows costs on this machine (their pages and one copy; the page cache)."""
    mods = dict(model.named_modules())
    out = {}
    pos = [0]
    files = {nm: open(os.path.join(folder, f"{nm}.f32"), "wb") for nm in names} if folder else {}

    def hook_for(name):
        def hook(_m, _i, o):
            if files:
                files[name].write(memoryview(o.numpy()).cast("B"))
                return
            a = out.get(name)
            if a is None:
                a = out[name] = np.empty((n, o.shape[1]), dtype=np.float32)
            a[pos[0]:pos[0] + o.shape[0]] = o.numpy()
        return hook

    handles = [mods[nm].register_forward_hook(hook_for(nm)) for nm in names]
    try:
        model.eval()
        with torch.no_grad():
            for b in batches:
                model(b)
                pos[0] += b.shape[0]
    finally:
        for h in handles:
            h.remove()
        for fh in files.values():
            fh.close()
    return out


def minilm_case(n, repeat):
    from topo_mi.activations.hf import MINILM_LAYERS, load_minilm

    model, tok = load_minilm()
    from topo_mi.datasets import make

    sents = list(make("sentences").X)
    sents = (sents * (n // len(sents) + 1))[:n]
    enc = tok(sents, padding="max_length", truncation=True, max_length=48, return_tensors="pt")
    enc = dict(enc)
    bs = 64
    batches = [{k: v[i:i + bs] for k, v in enc.items()} for i in range(0, n, bs)]
    def to_disk():
        return tm.collect(model, enc, layers=MINILM_LAYERS, reduce="mean", batch_size=bs, progress=False,
                       store=fresh_store())

    return f"MiniLM, {n} sentences x 48 tokens, 7 states", interleaved([
        lambda: bare_forward(model, batches, kw=True),
        lambda: tm.collect(model, enc, layers=MINILM_LAYERS, reduce="mean", batch_size=bs, progress=False),
        to_disk], repeat)


def minilm_tokens_case(n, repeat):
    from topo_mi.activations.hf import MINILM_LAYERS, load_minilm
    from topo_mi.datasets import make

    model, tok = load_minilm()
    texts = [str(t) for t in make("text").X[:n]]
    bs = 64
    batches = [dict(tok(texts[i:i + bs], padding=True, return_tensors="pt")) for i in range(0, len(texts), bs)]
    n_tok = sum(int(b["attention_mask"].sum()) for b in batches)

    def to_disk():
        return tm.collect(model, batches, layers=MINILM_LAYERS, reduce="tokens", progress=False,
                       store=fresh_store())

    return f"MiniLM per token, {n} texts = {n_tok:,} tokens x 7", interleaved([
        lambda: bare_forward(model, batches, kw=True),
        lambda: tm.collect(model, batches, layers=MINILM_LAYERS, reduce="tokens", progress=False),
        to_disk], repeat)


def pages_case(repeat, mb=100):
    """What a collection's result costs per ``mb`` MB before any row is computed: populating and
    filling it in 2 MiB pages (``_empty_prefaulted``) against ``MAP_POPULATE`` (4 KiB pages), and
    the per-batch finiteness check of a (1024 x 512) batch: torch's sum against numpy's."""
    import mmap

    from topo_mi.activations._collect import _empty_prefaulted

    n = mb * (1 << 20) // 4 // 512
    src = np.random.default_rng(0).random((n, 512), dtype=np.float32)

    def huge():
        a = _empty_prefaulted((n, 512))
        a[:] = src

    def small():
        buf = mmap.mmap(-1, n * 512 * 4, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | mmap.MAP_POPULATE)
        np.frombuffer(buf, dtype=np.float32).reshape(n, 512)[:] = src

    t_huge, t_small = interleaved([huge, small], repeat)
    t = torch.relu(torch.randn(1024, 512))
    a = t.numpy()
    reps = 2000

    def torch_sum():
        for _ in range(reps):
            float(t.sum())

    def numpy_sum():
        for _ in range(reps):
            float(a.sum())

    t_t, t_n = interleaved([torch_sum, numpy_sum], repeat)
    return mb, t_huge, t_small, t_t / reps, t_n / reps, host_reclaim(4 * mb)


def reserve_case(repeat, mb=400, piece_mb=2):
    """Seconds to write ``mb`` MiB to a new file in ``piece_mb`` MiB ``pwrite`` calls (a layer file
    of the MLP case), plain and into blocks reserved up front without changing the file's size
    (``fallocate(FALLOC_FL_KEEP_SIZE)``, as the store's writer does), the reservation timed too."""
    from topo_mi.activations._store import _keep_size_fallocate

    piece = memoryview(np.random.default_rng(0).random((piece_mb << 20) // 4, dtype=np.float32)).cast("B")
    count = mb * (1 << 20) // len(piece)

    def write(reserve):
        def go():
            folder = os.path.dirname(fresh_store())
            os.makedirs(folder, exist_ok=True)
            fd = os.open(os.path.join(folder, "f"), os.O_RDWR | os.O_CREAT, 0o644)
            try:
                if reserve and not _keep_size_fallocate(fd, 0, count * len(piece)):
                    raise OSError("fallocate(FALLOC_FL_KEEP_SIZE) refused here")
                for i in range(count):
                    os.pwrite(fd, piece, i * len(piece))
            finally:
                os.close(fd)
        return go

    plain, reserved = interleaved([write(False), write(True)], repeat)
    return count * len(piece) >> 20, plain, reserved


def host_reclaim(mb, waits=(0.0, 3.0)):
    """Seconds to populate ``mb`` MB of fresh result pages right after freeing as much, and after
    leaving it free for each of ``waits`` seconds (median of 3): on a machine whose balloon reports
    free pages, memory left free for ~2 s goes back to the host and costs far more to touch again."""
    import time as _time

    from topo_mi.activations._collect import _empty_prefaulted

    n = mb * (1 << 20) // 4 // 512
    out = []
    for wait in waits:
        ts = []
        for _ in range(3):
            prime_pages(mb)
            _time.sleep(wait)
            t0 = _time.perf_counter()
            a = _empty_prefaulted((n, 512))
            ts.append(_time.perf_counter() - t0)
            del a
        out.append((wait, float(np.median(ts))))
    return mb, out


def _populate_one_call(shape):
    """The result mapping populated in one ``madvise`` call (the GIL held), as before the per-core
    slices of ``_empty_prefaulted``."""
    import mmap

    nbytes = int(np.prod(shape)) * 4
    buf = mmap.mmap(-1, nbytes, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    buf.madvise(mmap.MADV_HUGEPAGE)
    buf.madvise(23)  # MADV_POPULATE_WRITE
    return np.frombuffer(buf, dtype=np.float32).reshape(shape)


def variants_case(n, repeat):
    """The choices inside ``collect``, each against what it replaced, written as hand-made hooks
    on the MLP case so that only the choice differs (contenders interleaved):

    in memory: numpy's assignment or torch's threaded ``copy_`` into the result, the result from
    ``np.empty`` (pages fault in on first touch) or populated up front (``_empty_prefaulted``);
    population in one call or one slice per core. To raw files: the write and its CRC-32 in the
    hook, or on a writer thread whose batch is awaited after the next batch's forward; the
    checksum through zlib or ISA-L; per batch no journal, an entry file renamed into place (the
    earlier layout), or a line appended to one log (``collect``'s)."""
    import json
    import zlib
    from concurrent.futures import ThreadPoolExecutor

    from topo_mi.activations._collect import _empty_prefaulted
    from topo_mi.activations._store import _keep_size_fallocate, crc32 as isal_crc32

    model, X, batches, names = _mlp(n)
    mods = dict(model.named_modules())

    def run(hook_for, after_batch=None, finish=None):
        handles = [mods[nm].register_forward_hook(hook_for(nm)) for nm in names]
        try:
            with torch.no_grad():
                for k, b in enumerate(batches):
                    model(b)
                    if after_batch:
                        after_batch(k, b.shape[0])
        finally:
            for h in handles:
                h.remove()
            if finish:
                finish()

    def in_memory(alloc, copy):
        return lambda: _in_memory(alloc, copy)

    def _in_memory(alloc, copy):
        out, pos = {}, [0]

        def hook_for(name):
            def hook(_m, _i, o):
                a = out.get(name)
                if a is None:
                    a = out[name] = alloc((n, o.shape[1]))
                dst = a[pos[0]:pos[0] + o.shape[0]]
                if copy == "torch":
                    torch.from_numpy(dst).copy_(o)
                else:
                    dst[...] = o.numpy()
            return hook

        run(hook_for, lambda k, rows: pos.__setitem__(0, pos[0] + rows))
        return out

    def to_files(crc, journal=None, thread=False, reserve=False):
        def go():
            folder = os.path.dirname(fresh_store())
            os.makedirs(folder, exist_ok=True)
            fds = {nm: os.open(os.path.join(folder, f"{nm}.f32"), os.O_RDWR | os.O_CREAT, 0o644) for nm in names}
            if reserve:  # the layer files' blocks reserved up front, their size unchanged
                for fd in fds.values():
                    _keep_size_fallocate(fd, 0, n * 512 * 4)
            log = open(os.path.join(folder, "batches.jsonl"), "a") if journal == "append" else None
            pool = ThreadPoolExecutor(1) if thread else None
            state = {"row": 0, "crcs": {}, "pending": [], "prev": []}

            def write(nm, data, off):
                buf = memoryview(data).cast("B")
                os.pwrite(fds[nm], buf, off)
                return nm, crc(buf)

            def hook_for(nm):
                def hook(_m, _i, o):
                    off = state["row"] * o.shape[1] * 4
                    if pool:
                        state["pending"].append(pool.submit(write, nm, o.numpy().copy(), off))
                    else:
                        state["crcs"].update([write(nm, o.numpy(), off)])
                return hook

            def after(k, rows):
                if pool:  # the previous batch's writes are awaited after this batch's forward
                    state["crcs"].update(f.result() for f in state["prev"])
                    state["prev"], state["pending"] = state["pending"], []
                entry = json.dumps({"k": k, "row": state["row"], "crc": state["crcs"]})
                if journal == "rename":
                    tmp = os.path.join(folder, f".b{k:06d}.json")
                    with open(tmp, "w") as fh:
                        fh.write(entry)
                    os.replace(tmp, os.path.join(folder, f"b{k:06d}.json"))
                elif journal == "append":
                    log.write(entry + "\n")
                    log.flush()
                state["row"] += rows

            def finish():
                if pool:
                    for f in state["prev"]:
                        f.result()
                    pool.shutdown()
                for fd in fds.values():
                    os.close(fd)
                if log:
                    log.close()

            run(hook_for, after, finish)
        return go

    def populate(alloc):
        return lambda: [alloc((n, 512)) for _ in names]

    fns = {
        "bare forward": lambda: bare_forward(model, batches),
        "memory: numpy copy into np.empty": in_memory(lambda s: np.empty(s, np.float32), "numpy"),
        "memory: torch copy into np.empty": in_memory(lambda s: np.empty(s, np.float32), "torch"),
        "memory: numpy copy into populated pages": in_memory(_empty_prefaulted, "numpy"),
        "memory: torch copy into populated pages (collect)": in_memory(_empty_prefaulted, "torch"),
        "files: writer thread, zlib, no journal": to_files(zlib.crc32, thread=True),
        "files: writer thread, ISA-L, no journal": to_files(isal_crc32, thread=True),
        "files: in the hook, zlib, no journal": to_files(zlib.crc32),
        "files: in the hook, ISA-L, no journal": to_files(isal_crc32),
        "files: in the hook, ISA-L, entry file renamed per batch": to_files(isal_crc32, "rename"),
        "files: in the hook, ISA-L, line appended per batch": to_files(isal_crc32, "append"),
        "files: the same into reserved blocks (collect)": to_files(isal_crc32, "append", reserve=True),
    }
    from topo_mi.activations._collect import _PREFAULT_MIN_BYTES

    if n * 512 * 4 >= _PREFAULT_MIN_BYTES:  # smaller results are plain np.empty: nothing to populate
        fns["populate the result: one madvise call"] = populate(_populate_one_call)
        fns["populate the result: one slice per core (collect)"] = populate(_empty_prefaulted)
    return n, list(fns), interleaved(list(fns.values()), repeat)


def _mlp(n):
    g = torch.Generator().manual_seed(0)
    layers = []
    d = 64
    for _ in range(4):
        layers += [nn.Linear(d, 512), nn.ReLU()]
        d = 512
    model = nn.Sequential(*layers, nn.Linear(512, 10)).eval()
    X = torch.randn(n, 64, generator=g)
    bs = 1024
    return model, X, [X[i:i + bs] for i in range(0, n, bs)], [str(i) for i in range(1, 8, 2)]


def split_case(n, repeat):
    """Where collect's time goes on the MLP case, against a bare forward in the same round: collect
    of the 10-wide output layer alone (the machinery, no rows worth keeping), and of the 4 hidden
    layers, its hooks timed from inside (populating the result pages; converting, checking and
    copying the rows), the rest being the forward itself. Returns the contenders' labels, their
    Medians, the median seconds of populating, of the other hook work and of the forward in the
    4-layer collection, and each collection's forward as a median paired ratio to the bare one."""
    from topo_mi.activations import _collect

    model, X, batches, names = _mlp(n)
    bs = batches[0].shape[0]
    spent = {"hooks": 0.0, "populate": 0.0}
    record, populate = _collect._Job.record, _collect._populate

    def timed_record(job, name, output):
        t0 = time.perf_counter()
        try:
            return record(job, name, output)
        finally:
            spent["hooks"] += time.perf_counter() - t0

    def timed_populate(buf, nbytes):
        t0 = time.perf_counter()
        try:
            return populate(buf, nbytes)
        finally:
            spent["populate"] += time.perf_counter() - t0

    parts = {"output only": [], "4 layers": []}

    def collect(label, layers):
        def go():
            spent.update(hooks=0.0, populate=0.0)
            t0 = time.perf_counter()
            out = tm.collect(model, X, layers=layers, batch_size=bs, progress=False)
            parts[label].append((time.perf_counter() - t0, spent["populate"], spent["hooks"]))
            return out
        return go

    _collect._Job.record, _collect._populate = timed_record, timed_populate
    try:
        m = interleaved([lambda: bare_forward(model, batches), collect("output only", ["8"]),
                         collect("4 layers", names)], repeat)
    finally:
        _collect._Job.record, _collect._populate = record, populate
    bare = m.rounds[0]
    fwd = {k: np.array([t - h for t, _, h in v[1:]]) for k, v in parts.items()}  # v[0]: the warm-up round
    full = np.array(parts["4 layers"][1:])
    split = (float(np.median(full[:, 1])), float(np.median(full[:, 2] - full[:, 1])), float(np.median(fwd["4 layers"])))
    fwd_ratio = {k: float(np.median(v / bare)) for k, v in fwd.items()}
    return ["bare forward", "collect, the 10-wide output layer only", f"collect, the 4 hidden layers ({n * 512 * 4 * 4 / 1e6:.0f} MB)"], m, \
        split, fwd_ratio


def iter_batches_case(n, d, repeat, batch_size=1024):
    """Rows/s of shuffled and in-order iter_batches over a memory-mapped store, against reading
    the memmap in order in batch-sized slices (the cheapest possible read)."""
    rng = np.random.default_rng(0)
    tmp = tempfile.mkdtemp()
    try:
        tm.Activations({"x": rng.standard_normal((n, d), dtype=np.float32)}).save(os.path.join(tmp, "s"))
        acts = tm.Activations.load(os.path.join(tmp, "s"))
        mm = acts["x"]

        def in_order():
            for i in range(0, n, batch_size):
                np.array(mm[i:i + batch_size]).sum()

        def shuffled():
            for b in acts.iter_batches(batch_size, seed=1):
                b["x"].sum()

        def unshuffled():
            for b in acts.iter_batches(batch_size, shuffle=False):
                b["x"].sum()

        t_ref, t_shuf, t_seq = interleaved([in_order, shuffled, unshuffled], repeat)
    finally:
        shutil.rmtree(tmp)
    return n, d, t_ref, t_shuf, t_seq


def main():
    global CLOCK, PRIME_MB
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small sizes, one repeat")
    ap.add_argument("--repeat", type=int, default=None, help="timed rounds (default 5, 1 with --quick)")
    ap.add_argument("--cases", default="mlp,minilm,tokens,iter,pages,variants,split",
                    help="comma-separated subset of mlp, minilm, tokens, iter, pages, variants, split")
    ap.add_argument("--prime-mb", type=int, default=PRIME_MB,
                    help="MB touched and freed, and MB written to a file and deleted, before each timing "
                         "(see prime_pages, prime_cache; 0: none)")
    ap.add_argument("--cpu-time", action="store_true",
                    help="one thread, and this process's CPU seconds instead of wall seconds (steadier on a "
                         "machine shared with other jobs; excludes time blocked on disk)")
    args = ap.parse_args()
    PRIME_MB = args.prime_mb
    if args.cpu_time:
        CLOCK = time.process_time
        torch.set_num_threads(1)
    else:
        torch.set_num_threads(max(1, os.cpu_count() or 1))
    repeat = args.repeat or (1 if args.quick else 5)
    print(f"load average before: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; median of {repeat} rounds"
          + ("; CPU seconds, 1 thread" if args.cpu_time else "; wall seconds"), flush=True)
    print(f"{'case':<48} {'bare fwd s':>10} {'collect s':>10} {'ratio':>6} {'to disk s':>10} {'ratio':>6}",
          flush=True)

    def show(row):
        """Median times; ratios are medians over rounds of each round's paired ratio (Medians.ratio)."""
        name, m = row
        tb, tmem, tdisk = m[:3]
        print(f"{name:<48} {tb:>10.3f} {tmem:>10.3f} {m.ratio(1):>6.2f} {tdisk:>10.3f} {m.ratio(2):>6.2f}",
              flush=True)
        if len(m) > 3:  # the hand-written collection's times (RAM, raw files)
            th, thd = m[3:5]
            print(f"{'  hand-written hooks (np.empty / raw files)':<48} {tb:>10.3f} {th:>10.3f} {m.ratio(3):>6.2f}"
                  f" {thd:>10.3f} {m.ratio(4):>6.2f}   collect / hand-written {m.ratio(1, 3):.2f}x"
                  f" (disk {m.ratio(2, 4):.2f}x)", flush=True)
        spans = [(label, m.ratio_interval(i, to)) for label, i, to in (
            ("collect", 1, 0), ("to disk", 2, 0), ("hand-written", 3, 0), ("hand-written to disk", 4, 0))
            if i < len(m)]
        if spans[0][1] is not None:
            print("  95% interval of the median ratio (order statistics): " + ", ".join(
                f"{label} {lo:.2f}-{hi:.2f}" for label, (lo, hi) in spans), flush=True)

    import atexit

    atexit.register(_cleanup)
    cases = set(args.cases.split(","))
    if "mlp" in cases:
        show(mlp_case(10_000 if args.quick else 50_000, repeat))
    try:
        if "minilm" in cases:
            show(minilm_case(64 if args.quick else 256, repeat))
        if "tokens" in cases:
            show(minilm_tokens_case(64 if args.quick else 256, repeat))
    except ImportError as exc:
        print(f"(MiniLM skipped: {exc})")
    if "pages" in cases:
        mb, t_huge, t_small, t_t, t_n, (rmb, reclaim) = pages_case(repeat)
        print(f"\nresult pages, {mb} MB populated and filled: 2 MiB pages (MADV_HUGEPAGE + MADV_POPULATE_WRITE) "
              f"{t_huge:.4f} s, MAP_POPULATE (4 KiB) {t_small:.4f} s ({t_small / t_huge:.2f}x); finiteness check of "
              f"a 1024 x 512 batch: torch sum {1e6 * t_t:.0f} us, numpy sum {1e6 * t_n:.0f} us ({t_n / t_t:.1f}x)",
              flush=True)
        try:
            wmb, t_plain, t_res = reserve_case(repeat)
            print(f"writing {wmb} MiB to a new file in 2 MiB pwrites: {t_plain:.3f} s plain, {t_res:.3f} s into "
                  f"blocks reserved up front ({t_res / t_plain:.2f}x)", flush=True)
        except OSError as exc:
            print(f"(reserved blocks not measured: {exc})")
        base = reclaim[0][1]
        print(f"populating {rmb} MB of result pages: " + ", ".join(
            f"{t:.3f} s after {w:g} s free ({t / base:.1f}x)" for w, t in reclaim), flush=True)
    if "variants" in cases:
        for size in ((10_000,) if args.quick else (10_000, 50_000)):
            nv, labels, m = variants_case(size, repeat)
            print(f"\nthe choices inside collect, MLP 4x512, n={nv:,} (hand-made hooks; ratio to the bare forward)")
            for i, (name, t) in enumerate(zip(labels, m)):
                print(f"{name:<64} {t:>8.3f} s {m.ratio(i):>6.2f}")
    if "split" in cases:
        n_split = 10_000 if args.quick else 50_000
        labels, m, (t_pop, t_hooks, t_fwd), fwd_ratio = split_case(n_split, repeat)
        print(f"\nwhere collect's time goes, MLP 4x512, n={n_split:,} (ratio to the bare forward of the same round)")
        for i, (name, t) in enumerate(zip(labels, m)):
            print(f"{name:<64} {t:>8.3f} s {m.ratio(i):>6.2f}")
        print(f"{'  in its hooks: populating the result pages':<64} {t_pop:>8.3f} s")
        print(f"{'  in its hooks: converting, checking and copying the rows':<64} {t_hooks:>8.3f} s")
        print(f"{'  the forward itself, between the hooks':<64} {t_fwd:>8.3f} s {fwd_ratio['4 layers']:>6.2f}"
              f"   (with the output layer only: {fwd_ratio['output only']:.2f})")
    if "iter" not in cases:
        return
    n, d, t_ref, t_shuf, t_seq = iter_batches_case(20_000 if args.quick else 200_000, 384, repeat)
    print(f"\niter_batches over a memory-mapped store, {n:,} x {d} float32, batches of 1024 (buffer 65,536 rows)")
    print(f"{'read':<48} {'s':>10} {'rows/s':>12} {'ratio':>6}")
    for name, t in (("memmap in order (reference)", t_ref), ("iter_batches(shuffle=True)", t_shuf),
                    ("iter_batches(shuffle=False)", t_seq)):
        print(f"{name:<48} {t:>10.3f} {n / t:>12,.0f} {t / t_ref:>6.2f}")
    print(f"load average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
