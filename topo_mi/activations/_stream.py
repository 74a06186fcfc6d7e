"""Shuffled mini-batches streamed from an :class:`~topo_mi.activations.Activations` in bounded memory.

The shuffle is a *windowed block shuffle*: the rows are cut into blocks of ``block`` consecutive
rows, the blocks are put in a random order, consecutive runs of blocks filling ``buffer`` rows are
read (each block is one contiguous, sequential read from a memory-mapped store) and the rows of
that window are permuted before they are cut into batches. Every row appears exactly once per
epoch, the order depends only on ``seed``, and at most ``buffer`` rows (plus fewer than one batch
carried over between windows) are held at a time. With ``buffer >= n_samples`` the order is a
uniform random permutation of all rows.
"""
from __future__ import annotations

from typing import Iterator

import numpy as np

from topo_mi._validation import check_int, fail


def _block_size(buffer: int) -> int:
    # 16 blocks per window: windows mix rows from 16 random places of the store, each read in one go
    return max(1, buffer // 16)


def plan_epoch(n: int, *, seed, buffer: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield ``(rows, perm)`` per window: the window's row positions in file order and the order
    in which they are served (``rows[perm]``)."""
    rng = np.random.default_rng(seed)
    if buffer >= n:
        yield np.arange(n, dtype=np.int64), rng.permutation(n)
        return
    block = _block_size(buffer)
    n_blocks = -(-n // block)
    order = rng.permutation(n_blocks)
    per_window = max(1, buffer // block)
    for w in range(0, n_blocks, per_window):
        blocks = np.sort(order[w:w + per_window])  # read in file order; the permutation below mixes
        rows = np.concatenate([np.arange(b * block, min(n, (b + 1) * block), dtype=np.int64) for b in blocks])
        yield rows, rng.permutation(len(rows))


def _read_sorted(arr: np.ndarray, srt: np.ndarray, into: np.ndarray) -> np.ndarray:
    """``arr[srt]`` for sorted positions into ``into``, reading each contiguous run once (sequential
    on a memmap)."""
    out = into[:len(srt)]
    breaks = np.flatnonzero(np.diff(srt) != 1) + 1
    starts = np.concatenate([[0], breaks]).astype(np.int64)
    ends = np.concatenate([breaks, [len(srt)]]).astype(np.int64)
    for s, e in zip(starts.tolist(), ends.tolist()):
        out[s:e] = arr[srt[s]:srt[e - 1] + 1]
    return out


def iter_batches(acts, batch_size: int, *, layers=None, shuffle: bool = True, seed=0, buffer: int = 65536,
                 drop_last: bool = False, return_index: bool = False):
    batch_size = check_int("batch_size", batch_size, min_value=1)
    buffer = check_int("buffer", buffer, min_value=1)
    if buffer < batch_size:
        fail("buffer", f"at least batch_size={batch_size} rows", buffer)
    if shuffle and seed is None:
        fail("seed", "an int (the order must be reproducible)", seed)
    names = acts.layers if layers is None else ([layers] if isinstance(layers, str) else list(layers))
    arrays = {name: acts[name] for name in names}
    if not arrays:
        fail("layers", "at least one layer", layers)
    n = acts.n_samples
    return _generate(arrays, n, batch_size, shuffle, seed, buffer, drop_last, return_index)


def _generate(arrays, n, batch_size, shuffle, seed, buffer, drop_last, return_index):
    if not shuffle:  # in order: read-only views of the rows, no copy (a memmap reads them lazily)
        for s in range(0, n - (n % batch_size if drop_last else 0), batch_size):
            idx = np.arange(s, min(n, s + batch_size), dtype=np.int64)
            batch = {k: v[s:s + batch_size] for k, v in arrays.items()}
            yield (idx, batch) if return_index else batch
        return
    # one window buffer per layer, reused: every batch is gathered (copied) out of it
    bufs = {k: np.empty((min(n, buffer), v.shape[1]), dtype=np.float32) for k, v in arrays.items()}
    carry_idx = np.empty(0, dtype=np.int64)
    carry = {k: np.empty((0, v.shape[1]), dtype=np.float32) for k, v in arrays.items()}
    for srt, pos in plan_epoch(n, seed=seed, buffer=buffer):
        # the window is read in file order; ``pos`` is the serving order within it
        window = {k: _read_sorted(v, srt, bufs[k]) for k, v in arrays.items()}
        idx = srt[pos]
        m = len(carry_idx) + len(idx)
        full = m - m % batch_size
        s = 0
        if len(carry_idx):
            if full:  # complete the carried rows with the first rows of this window
                take = batch_size - len(carry_idx)
                sel = pos[:take]
                batch = {k: np.concatenate([carry[k], np.take(w, sel, axis=0)]) for k, w in window.items()}
                yield (np.concatenate([carry_idx, idx[:take]]), batch) if return_index else batch
                s = take
                full -= batch_size
                carry_idx = np.empty(0, dtype=np.int64)
            else:
                carry = {k: np.concatenate([carry[k], np.take(w, pos, axis=0)]) for k, w in window.items()}
                carry_idx = np.concatenate([carry_idx, idx])
                continue
        stop = s + full - len(carry_idx)
        for b in range(s, stop, batch_size):
            sel = pos[b:b + batch_size]
            batch = {k: np.take(w, sel, axis=0) for k, w in window.items()}
            yield (idx[b:b + batch_size], batch) if return_index else batch
        carry_idx = idx[stop:]
        carry = {k: np.take(w, pos[stop:], axis=0) for k, w in window.items()}
    if len(carry_idx) and not drop_last:
        yield (carry_idx, carry) if return_index else carry
