"""The activation store cannot hand back wrong data: each silent case of the old store now raises,
damage is found by checksums and repaired by recomputing, arrays are read-only."""
import json

import numpy as np
import pytest
import torch
from torch import nn

from topo_mi.activations import Activations, collect
from topo_mi.errors import InvalidParameterError, StoreCorruptedError, StoreMismatchError

LAYERS = ["inner.0", "inner.2"]


class Flaky(nn.Module):
    def __init__(self, fail_at=0):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.inner = nn.Sequential(nn.Linear(5, 16), nn.ReLU(), nn.Linear(16, 4))
        with torch.no_grad():
            for p in self.inner.parameters():
                p.copy_(torch.randn(p.shape, generator=g))
        self.fail_at, self.calls = fail_at, 0

    def forward(self, x):
        self.calls += 1
        if self.calls == self.fail_at:
            raise RuntimeError("interrupted")
        return self.inner(x)


X = torch.randn(300, 5, generator=torch.Generator().manual_seed(1))
Y = np.arange(300) % 3


def _collect(store, model=None, inputs=X, **kw):
    return collect(model or Flaky(), inputs, layers=LAYERS, batch_size=64, store=store, progress=False, **kw)


def _flip(path, offset):
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x10
    path.write_bytes(bytes(data))


@pytest.fixture
def ref():
    return collect(Flaky(), X, layers=LAYERS, batch_size=64, progress=False)


@pytest.fixture
def finished(tmp_path):
    _collect(tmp_path / "s")
    return tmp_path / "s"


def _interrupted(path, at=4):
    with pytest.raises(RuntimeError, match="interrupted"):
        _collect(path, Flaky(fail_at=at))


def test_untouched_store_resumes_bit_identically_and_is_reused(tmp_path, ref):
    _interrupted(tmp_path / "s")
    m = Flaky()
    out = _collect(tmp_path / "s", m)
    assert m.calls == 5 - 3  # batches 0-2 were done
    for n in LAYERS:
        assert np.asarray(out[n]).tobytes() == ref[n].tobytes()
    m2 = Flaky()
    again = _collect(tmp_path / "s", m2)
    assert m2.calls == 0
    for n in LAYERS:
        np.testing.assert_array_equal(again[n], ref[n])


def test_finished_store_with_different_inputs_raises(finished):
    with pytest.raises(StoreMismatchError, match="made from different inputs \\(the input batches hash differently\\)"):
        _collect(finished, inputs=X + 1)


def test_finished_store_with_fewer_inputs_raises(finished):
    with pytest.raises(StoreMismatchError, match="inputs \\(4 batches in this call, 5 stored\\)"):
        _collect(finished, inputs=X[:200])


def test_finished_store_with_labels_given_later_raises(finished):
    with pytest.raises(StoreMismatchError, match="labels \\(the store has none\\)"):
        _collect(finished, labels=Y)


def test_finished_store_with_new_sample_ids_raises(tmp_path):
    _collect(tmp_path / "s", sample_ids=np.arange(300) + 1000)
    with pytest.raises(StoreMismatchError, match="sample_ids"):
        _collect(tmp_path / "s", sample_ids=np.arange(300) + 5000)
    got = _collect(tmp_path / "s", sample_ids=np.arange(300) + 1000)
    np.testing.assert_array_equal(got.sample_ids, np.arange(300) + 1000)


def test_overwrite_rebuilds_a_mismatching_store(finished, ref):
    got = _collect(finished, inputs=X[:200], overwrite=True, labels=Y[:200])
    assert got.n_samples == 200
    np.testing.assert_array_equal(got.labels, Y[:200])
    np.testing.assert_array_equal(got["inner.2"], ref["inner.2"][:200])
    assert not list(finished.parent.glob(".s.*"))  # no leftover rebuild/old folders


def test_flipped_byte_in_a_batch_of_an_interrupted_run(tmp_path, ref):
    s = tmp_path / "s"
    _interrupted(s)
    _flip(s / "layer_0001.f32", 64 * 4 * 4 + 7)  # inside batch 1 of the second layer
    with pytest.raises(StoreCorruptedError, match="layer_0001.f32") as info:
        _collect(s)
    assert info.value.damaged == {"layer_0001.f32": [1]}
    m = Flaky()
    fixed = _collect(s, m, repair=True)
    assert m.calls == 5 - 1  # batches 1-4 recomputed
    for n in LAYERS:
        np.testing.assert_array_equal(fixed[n], ref[n])


def test_edited_row_count_of_an_interrupted_run(tmp_path, ref):
    s = tmp_path / "s"
    _interrupted(s)
    log = s / "journal" / "batches.jsonl"
    lines = log.read_text().splitlines()
    doc = json.loads(lines[2])
    doc["rows"] += 2
    lines[2] = json.dumps(doc)
    log.write_text("\n".join(lines) + "\n")
    with pytest.raises(StoreCorruptedError, match="journal/batches.jsonl line 3"):
        _collect(s)
    fixed = _collect(s, repair=True)
    assert fixed.n_samples == 300
    for n in LAYERS:
        np.testing.assert_array_equal(fixed[n], ref[n])


def test_flipped_byte_in_a_final_layer_file(finished, ref):
    _flip(finished / "layer_0000.f32", 200 * 16 * 4 + 3)  # row 200: batch 3
    with pytest.raises(StoreCorruptedError, match="layer_0000.f32 \\(batches \\[3\\]\\)"):
        Activations.load(finished)
    with pytest.raises(StoreCorruptedError, match="layer_0000.f32"):
        _collect(finished)
    assert not np.array_equal(Activations.load(finished, verify=False)["inner.0"], ref["inner.0"])  # verify=False skips
    m = Flaky()
    fixed = _collect(finished, m, repair=True)
    assert m.calls == 1  # only the damaged batch ran
    np.testing.assert_array_equal(fixed["inner.0"], ref["inner.0"])
    Activations.load(finished)  # verifies clean


def test_damaged_small_files_manifest_and_truncation(finished, ref):
    _collect(finished.parent / "l", labels=Y)
    _flip(finished.parent / "l" / "labels.npy", 140)
    with pytest.raises(StoreCorruptedError, match="labels.npy"):
        Activations.load(finished.parent / "l")
    fixed = _collect(finished.parent / "l", labels=Y, repair=True)
    np.testing.assert_array_equal(fixed.labels, Y)
    man = finished / "activations.json"
    doc = json.loads(man.read_text())
    doc["layers"][0]["shape"][0] = 298
    man.write_text(json.dumps(doc))
    with pytest.raises(StoreCorruptedError, match="activations.json.*fails its checksum"):
        Activations.load(finished)
    _collect(finished, repair=True)
    with open(finished / "layer_0001.f32", "r+b") as fh:
        fh.truncate(100)
    with pytest.raises(StoreCorruptedError, match="layer_0001.f32.*100 bytes.*truncated"):
        Activations.load(finished)


def test_older_format_read_only_folder_and_foreign_folder(tmp_path, monkeypatch, finished):
    man = finished / "activations.json"
    doc = json.loads(man.read_text())
    doc["format"] = "topo_mi.activations/1"
    man.write_text(json.dumps(doc))
    with pytest.raises(StoreMismatchError, match="older format 'topo_mi.activations/1'.*overwrite=True"):
        Activations.load(finished)
    with pytest.raises(StoreMismatchError, match="older format"):
        _collect(finished)
    assert _collect(finished, overwrite=True).n_samples == 300
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(InvalidParameterError, match="holds other files; nothing is overwritten"):
        _collect(tmp_path / "other", overwrite=True)
    assert (tmp_path / "other" / "notes.txt").read_text() == "mine"
    import errno
    from pathlib import Path

    def readonly(self, *a, **k):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(Path, "mkdir", readonly)
    with pytest.raises(InvalidParameterError, match="store: expected a writable folder.*Read-only file system"):
        _collect(tmp_path / "ro")


def test_arrays_are_read_only_and_copy_is_writeable(finished, ref):
    mm = Activations.load(finished)
    for acts in (ref, mm, ref.take([0, 1, 2]), ref.to_memory()):
        with pytest.raises(ValueError, match="read-only"):
            acts["inner.0"][0, 0] = 1.0
        with pytest.raises(ValueError, match="read-only"):
            acts.sample_ids[0] = 7
    cp = mm.copy()
    cp["inner.0"][0, 0] = 123.0
    cp.sample_ids[0] = 99
    assert mm["inner.0"][0, 0] != 123.0 and mm.sample_ids[0] == 0
    own = np.zeros((3, 2), dtype=np.float32)
    Activations({"x": own})
    own[0, 0] = 1.0  # the caller's own array keeps its flags


CLI_SPEC = """
name = "cache"
seed = 0

[dataset]
name = "digits"

[model]
architecture = "mlp"
params = { widths = [16] }
train = { epochs = 1 }

[activations]
max_samples = 120

[analyses.geometry]
embed = "pca"
n_boot = 2
"""


def test_cli_cached_activations_altered_on_disk(tmp_path, monkeypatch, capsys):
    from topo_mi.cli import main

    monkeypatch.setenv("TOPO_MI_DATA_HOME", str(tmp_path / "home"))
    spec = tmp_path / "cache.toml"
    spec.write_text(CLI_SPEC)
    assert main(["run", str(spec), "--out", str(tmp_path / "a"), "--quiet"]) == 0
    stores = [p.parent for p in (tmp_path / "home" / "activations").glob("*/activations.json")]
    assert len(stores) == 1
    assert main(["run", str(spec), "--out", str(tmp_path / "b"), "--quiet"]) == 0  # the cache, untouched
    assert (tmp_path / "a" / "results.json").read_bytes() == (tmp_path / "b" / "results.json").read_bytes()
    _flip(stores[0] / "layer_0000.f32", 40)
    capsys.readouterr()
    assert main(["run", str(spec), "--out", str(tmp_path / "c"), "--quiet"]) != 0
    err = capsys.readouterr().err
    assert "layer_0000.f32" in err and "damaged" in err


def test_a_failed_write_is_raised_and_leaves_a_resumable_prefix(tmp_path, ref, monkeypatch):
    """A write that fails (a full disk) is raised by the collection, its batch is not recorded, and
    the next call resumes from the recorded prefix to the same bytes."""
    from topo_mi.activations import _store

    real = _store.StoreWriter._write
    calls = []

    def failing(self, i, offset, data):
        calls.append(offset)
        if len(calls) == 5:  # batch 2's first layer (two layers per batch)
            raise OSError("No space left on device")
        return real(self, i, offset, data)

    monkeypatch.setattr(_store.StoreWriter, "_write", failing)
    with pytest.raises(OSError, match="No space left"):
        _collect(tmp_path / "s")
    log = (tmp_path / "s" / _store.JOURNAL / _store.LOG).read_text().splitlines()
    assert [json.loads(line)["k"] for line in log] == [0, 1]
    monkeypatch.setattr(_store.StoreWriter, "_write", real)
    m = Flaky()
    out = _collect(tmp_path / "s", m)
    assert m.calls == 5 - 2  # batches 0 and 1 were kept
    for n in LAYERS:
        assert np.asarray(out[n]).tobytes() == ref[n].tobytes()


def test_the_store_checksum_is_zlibs_crc32():
    # ISA-L's CRC-32 where installed: the same values as zlib's, so stores stay readable either way
    import zlib

    from topo_mi.activations import _store

    b = np.random.default_rng(0).integers(0, 256, size=1_000_003, dtype=np.uint8).tobytes()
    assert _store.crc32(b) == zlib.crc32(b)
    assert _store.crc32(b[500:], _store.crc32(b[:500])) == zlib.crc32(b)
    assert _store.crc_bytes(np.frombuffer(b[:1_000_000], np.float32)) == zlib.crc32(b[:1_000_000])


def test_a_journal_line_cut_short_is_an_unrecorded_batch(tmp_path, ref):
    # an interruption in the middle of appending batch 3's line: no damage, batch 3 is recomputed
    s = tmp_path / "s"
    _interrupted(s)
    log = s / "journal" / "batches.jsonl"
    lines = log.read_text().splitlines()
    assert len(lines) == 3
    log.write_text("\n".join(lines) + "\n" + lines[0][:17])
    m = Flaky()
    out = _collect(s, m)
    assert m.calls == 5 - 3
    for n in LAYERS:
        assert np.asarray(out[n]).tobytes() == ref[n].tobytes()


def test_an_interrupted_collection_in_the_one_file_per_batch_journal_resumes(tmp_path, ref):
    # the earlier journal layout (journal/b000042.json per batch) is read, and moved into the log
    s = tmp_path / "s"
    _interrupted(s)
    log = s / "journal" / "batches.jsonl"
    for line in log.read_text().splitlines():
        k = json.loads(line)["k"]
        (s / "journal" / f"b{k:06d}.json").write_text(line)
    log.unlink()
    m = Flaky()
    again = Flaky(fail_at=2)  # resumes from batch 3, fails in batch 4: the log now holds 0-3
    with pytest.raises(RuntimeError, match="interrupted"):
        _collect(s, again)
    assert not list((s / "journal").glob("b*.json"))
    assert [json.loads(x)["k"] for x in log.read_text().splitlines()] == [0, 1, 2, 3]
    out = _collect(s, m)
    assert m.calls == 1
    for n in LAYERS:
        assert np.asarray(out[n]).tobytes() == ref[n].tobytes()


def _allocated(path):
    st = path.stat()
    return st.st_blocks * 512, st.st_size


def test_layer_files_reserve_their_blocks_and_release_what_is_not_written(tmp_path, ref, monkeypatch):
    """The writer reserves each layer's blocks ahead of its writes (the whole layer when the rows
    are known) without changing what is written; nothing reserved outlives the call."""
    from topo_mi.activations import _store

    calls = []
    real = _store._keep_size_fallocate
    monkeypatch.setattr(_store, "_keep_size_fallocate", lambda fd, off, n: calls.append((off, n)) or real(fd, off, n))
    out = _collect(tmp_path / "known")
    assert sorted(calls) == [(0, 300 * 4 * 4), (0, 300 * 16 * 4)]  # one call per layer: its whole size
    for n in LAYERS:
        assert np.asarray(out[n]).tobytes() == ref[n].tobytes()
    calls.clear()
    batches = [X[i:i + 64] for i in range(0, 300, 64)]  # a list of batches: the row count is not known
    out = _collect(tmp_path / "unknown", inputs=batches)
    assert len(calls) == 2 and all(n >= 64 << 20 for _, n in calls)  # ahead, by 64 MiB at least
    for n in LAYERS:
        assert np.asarray(out[n]).tobytes() == ref[n].tobytes()
    from topo_mi.activations._store import layer_file

    for i, dim in enumerate((16, 4)):
        allocated, size = _allocated(tmp_path / "unknown" / layer_file(i))
        assert size == 300 * dim * 4
        assert allocated < size + (1 << 20), f"layer {i}: {allocated} bytes allocated for {size}"


def test_an_interrupted_collection_releases_its_reserved_blocks(tmp_path, ref):
    batches = [X[i:i + 64] for i in range(0, 300, 64)]  # 64 MiB reserved ahead per layer file
    with pytest.raises(RuntimeError, match="interrupted"):
        _collect(tmp_path / "s", Flaky(fail_at=4), inputs=batches)
    from topo_mi.activations._store import layer_file

    for i, dim in enumerate((16, 4)):  # batches 0-2 written: 192 rows
        allocated, size = _allocated(tmp_path / "s" / layer_file(i))
        assert size == 192 * dim * 4
        assert allocated < size + (1 << 20), f"layer {i}: {allocated} bytes allocated for {size}"
    out = _collect(tmp_path / "s", inputs=batches)  # and it resumes as before
    for n in LAYERS:
        assert np.asarray(out[n]).tobytes() == ref[n].tobytes()


def test_a_refused_reservation_writes_the_same_store(tmp_path, ref, monkeypatch):
    from topo_mi.activations import _store

    monkeypatch.setattr(_store, "_keep_size_fallocate", lambda fd, off, n: False)
    out = _collect(tmp_path / "s")
    for n in LAYERS:
        assert np.asarray(out[n]).tobytes() == ref[n].tobytes()
