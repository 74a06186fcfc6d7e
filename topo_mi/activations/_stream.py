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


def plan_epoch(n: int, *, shuffle: bool, seed, buffer: int) -> Iterator[np.ndarray]:
    """Yield the row positions of each window, in the order the rows will be served."""
    if not shuffle:
        for start in range(0, n, buffer):
            yield np.arange(start, min(n, start + buffer), dtype=np.int64)
        return
    rng = np.random.default_rng(seed)
    if buffer >= n:
        yield rng.permutation(n).astype(np.int64)
        return
    block = _block_size(buffer)
    n_blocks = -(-n // block)
    order = rng.permutation(n_blocks)
    per_window = max(1, buffer // block)
    for w in range(0, n_blocks, per_window):
        blocks = np.sort(order[w:w + per_window])  # read in file order; the permutation below mixes
        idx = np.concatenate([np.arange(b * block, min(n, (b + 1) * block), dtype=np.int64) for b in blocks])
        yield idx[rng.permutation(len(idx))]


def _read_sorted(arr: np.ndarray, srt: np.ndarray) -> np.ndarray:
    """``arr[srt]`` for sorted positions, reading each contiguous run once (sequential on a memmap)."""
    out = np.empty((len(srt), arr.shape[1]), dtype=np.float32)
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
    carry_idx = np.empty(0, dtype=np.int64)
    carry = {k: np.empty((0, v.shape[1]), dtype=np.float32) for k, v in arrays.items()}
    for idx in plan_epoch(n, shuffle=shuffle, seed=seed, buffer=buffer):
        # the window is read in file order; ``pos`` maps the serving order onto it, and each batch
        # is gathered from it on demand, so one window (not two) is held at a time
        srt = np.sort(idx) if shuffle else idx
        window = {k: _read_sorted(v, srt) for k, v in arrays.items()}
        pos = np.searchsorted(srt, idx)
        m = len(carry_idx) + len(idx)
        full = m - m % batch_size
        s = 0
        if len(carry_idx):
            if full:  # complete the carried rows with the first rows of this window
                take = batch_size - len(carry_idx)
                sel = pos[:take]
                batch = {k: np.concatenate([carry[k], w[sel]]) for k, w in window.items()}
                yield (np.concatenate([carry_idx, idx[:take]]), batch) if return_index else batch
                s = take
                full -= batch_size
                carry_idx = np.empty(0, dtype=np.int64)
            else:
                carry = {k: np.concatenate([carry[k], w[pos]]) for k, w in window.items()}
                carry_idx = np.concatenate([carry_idx, idx])
                continue
        stop = s + full - len(carry_idx)
        for b in range(s, stop, batch_size):
            sel = pos[b:b + batch_size]
            batch = {k: w[sel] for k, w in window.items()}
            yield (idx[b:b + batch_size], batch) if return_index else batch
        carry_idx = idx[stop:]
        carry = {k: w[pos[stop:]] for k, w in window.items()}
        del window
    if len(carry_idx) and not drop_last:
        yield (carry_idx, carry) if return_index else carry
