"""Training from an on-disk store holds one shuffle window in memory, not the store."""
import gc
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from topo_mi.activations import Activations  # noqa: E402
from topo_mi.dictionaries import train_sae  # noqa: E402

_STATUS = Path("/proc/self/status")


def _rss_anon() -> int:
    """Resident anonymous memory of this process in bytes (heap, torch and numpy buffers; not the
    page cache behind a memory-mapped store, which the kernel can drop)."""
    for line in _STATUS.read_text().splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1]) * 1024
    pytest.skip("no RssAnon in /proc/self/status")


@pytest.mark.skipif(not _STATUS.exists(), reason="needs /proc/self/status (Linux)")
def test_training_from_a_store_holds_a_window_not_the_store(tmp_path):
    n, d, batch = 3 * 2**19, 64, 4096  # a 384 MiB store; one shuffle window is 65,536 rows = 16 MiB
    raw = np.lib.format.open_memmap(tmp_path / "raw.npy", mode="w+", dtype=np.float32, shape=(n, d))
    rng = np.random.default_rng(0)
    for s in range(0, n, 65536):  # written in pieces, never whole in memory
        raw[s:s + 65536] = rng.standard_normal((65536, d), dtype=np.float32) * np.linspace(2, 0.1, d, dtype=np.float32)
    store = Activations({"h": raw}, check_finite=False).save(tmp_path / "store")
    del raw
    (tmp_path / "raw.npy").unlink()
    store_bytes = n * d * 4
    kw = dict(layer="h", kind="relu", d_sae=2 * d, batch_size=batch, lr=1e-3, seed=0, l1_coefficient=0.01)
    train_sae(store, n_steps=2, **kw)  # imports, thread pools and allocator arenas settle first
    gc.collect()
    base = _rss_anon()
    peak = [base]
    n_steps = n // batch + 40  # a whole epoch (24 windows) and into the next
    sae = train_sae(store, n_steps=n_steps, callback=lambda step, model: peak.append(_rss_anon()), **kw)
    growth = max(peak) - base
    assert len(peak) == n_steps + 1 and sae.meta["n_samples"] == n
    assert sae.history["mse"][-1] < sae.history["mse"][0]
    # measured 14-52 MiB (the 16 MiB window, a batch, the model, Adam and the allocator's slack,
    # which depends on what ran before in the process) against the 384 MiB store
    assert growth < store_bytes / 4, f"anonymous memory grew by {growth / 2**20:.0f} MiB"
