"""Activations.iter_batches: every row once per epoch, deterministic order, bounded memory."""
import tracemalloc

import numpy as np
import pytest

from topo_mi.activations import Activations
from topo_mi.errors import InvalidParameterError, UnknownNameError


def _acts(n=1000, seed=0):
    rng = np.random.default_rng(seed)
    # row i of layer "a" starts with i, so a batch names its own rows
    a = rng.normal(size=(n, 3)).astype(np.float32)
    a[:, 0] = np.arange(n)
    return Activations({"a": a, "b": rng.normal(size=(n, 2)).astype(np.float32)})


@pytest.mark.parametrize("n,batch,buffer", [(1000, 64, 256), (1000, 64, 5000), (999, 100, 100), (10, 3, 4)])
def test_every_row_once_and_rows_stay_together(n, batch, buffer):
    acts = _acts(n)
    seen = []
    sizes = []
    for idx, b in acts.iter_batches(batch, buffer=buffer, seed=3, return_index=True):
        np.testing.assert_array_equal(b["a"][:, 0], idx)  # the rows served are the rows named
        np.testing.assert_array_equal(b["a"], acts["a"][idx])
        np.testing.assert_array_equal(b["b"], acts["b"][idx])
        assert b["a"].dtype == np.float32
        seen.append(idx)
        sizes.append(len(idx))
    allrows = np.concatenate(seen)
    assert sorted(allrows.tolist()) == list(range(n))
    assert all(s == batch for s in sizes[:-1]) and 0 < sizes[-1] <= batch
    assert not np.array_equal(allrows, np.arange(n))  # actually shuffled
    dropped = list(acts.iter_batches(batch, buffer=buffer, seed=3, drop_last=True))
    assert len(dropped) == n // batch and all(len(b["a"]) == batch for b in dropped)


def test_same_seed_same_order_other_seed_other_order_and_unshuffled():
    acts = _acts(500)
    first = np.concatenate([i for i, _ in acts.iter_batches(32, buffer=128, seed=7, return_index=True)])
    again = np.concatenate([i for i, _ in acts.iter_batches(32, buffer=128, seed=7, return_index=True)])
    other = np.concatenate([i for i, _ in acts.iter_batches(32, buffer=128, seed=8, return_index=True)])
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)
    ordered = [b["a"] for b in acts.iter_batches(32, shuffle=False, buffer=100)]
    np.testing.assert_array_equal(np.concatenate(ordered), acts["a"])
    only_b = next(iter(acts.iter_batches(8, layers="b", seed=0)))
    assert list(only_b) == ["b"]


def test_whole_buffer_shuffle_is_uniform():
    # buffer >= n: a uniform permutation, so each row lands in each position with probability 1/n
    acts = _acts(6)
    counts = np.zeros((6, 6))
    for seed in range(3000):
        order = np.concatenate([i for i, _ in acts.iter_batches(6, buffer=6, seed=seed, return_index=True)])
        counts[order, np.arange(6)] += 1
    # each cell ~ Binomial(3000, 1/6): mean 500, sd 20.4; 5 sd bounds
    assert counts.min() > 500 - 5 * 20.4 and counts.max() < 500 + 5 * 20.4


def test_memory_bounded_on_a_store_larger_than_the_buffer(tmp_path):
    n, d = 60_000, 32
    rng = np.random.default_rng(0)
    Activations({"x": rng.normal(size=(n, d)).astype(np.float32)}).save(tmp_path / "s")
    acts = Activations.load(tmp_path / "s")  # memory-mapped
    store_bytes = n * d * 4
    buffer = 2048
    window_bytes = buffer * d * 4
    tracemalloc.start()
    try:
        total = 0
        checksum = 0.0
        for b in acts.iter_batches(256, buffer=buffer, seed=0):
            total += len(b["x"])
            checksum += float(b["x"].sum(dtype=np.float64))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert total == n
    np.testing.assert_allclose(checksum, float(np.asarray(acts["x"]).sum(dtype=np.float64)), rtol=1e-9)
    # one window, one batch and the index arrays: a few windows at most, far below the store's 7.7 MB
    assert peak < 4 * window_bytes, (peak, window_bytes)
    assert peak < store_bytes / 10


def test_bad_arguments():
    acts = _acts(20)
    with pytest.raises(InvalidParameterError, match="batch_size"):
        acts.iter_batches(0)
    with pytest.raises(InvalidParameterError, match="buffer: expected at least batch_size=16"):
        acts.iter_batches(16, buffer=8)
    with pytest.raises(UnknownNameError, match="closest valid names: 'a'"):
        acts.iter_batches(4, layers=["aa"])
    with pytest.raises(InvalidParameterError, match="seed"):
        acts.iter_batches(4, seed=None)
