"""On-disk activation store: one raw float32 file per layer, memory-mapped, every byte checksummed.

Layout of a store folder (format ``topo_mi.activations/2``)::

    activations.json     manifest, written last: layers -> files and shapes, row bounds of the
                         checksummed regions, a CRC-32 per region of every layer file and per small
                         file, what the store was made from (fingerprint, inputs), meta, and a
                         checksum of the manifest itself
    layer_0000.f32 ...   float32 (n_samples, n_features), C order, no header
    sample_ids.npy       int64 or str ids
    labels.npy           optional
    token_index.npy      optional, int64 (n, 2): (sequence id, position) of each token row
    tokens.npy           optional, str: the token of each row

While :func:`topo_mi.collect` streams into a store, each batch's rows are written to the layer
files and then its journal entry (its rows, the hash of its inputs, the CRC of its region of every
layer file, and a checksum of the entry itself) is appended as one line to ``journal/batches.jsonl``;
per-batch token positions sit beside it in ``b000042.npz``. A batch is recorded once its whole line
is there: a last line cut short by an interruption is a batch not recorded, any other line that
fails its checksum is damage. (One file renamed into place per batch, the earlier layout, is still
read on resume.)
A re-run with the same arguments verifies the finished batches, checks that each input batch hashes
the same, and computes the rest; the manifest is written last. The checksums are CRC-32 (ISA-L
where installed, ~24 GB/s; zlib gives the same values, ~4 GB/s): they catch accidental
damage (a flipped byte, a truncated or edited file, a torn write after a power loss), not tampering.
Verifying reads every byte once; ``verify=False`` skips it for trusted stores.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from topo_mi._io import _json_default, atomic_path, libc_function, read_json, write_json, write_npy
from topo_mi.errors import InvalidParameterError, StoreCorruptedError, StoreMismatchError

STORE_FORMAT = "topo_mi.activations/2"
OLD_FORMATS = ("topo_mi.activations/1",)
MANIFEST = "activations.json"
PROGRESS = "collect.json"
JOURNAL = "journal"
LOG = "batches.jsonl"  # the journal's log: one sealed JSON entry per line, appended per batch
REGION_ROWS = 65536  # rows per checksummed region in stores written by Activations.save
SMALL = ("sample_ids", "labels", "token_index", "tokens")
_CHUNK = 1 << 24  # bytes hashed at a time when streaming a file

try:  # the same CRC-32 as zlib's (same polynomial and values), ~6x faster through ISA-L
    from isal.isal_zlib import crc32
except ImportError:  # pragma: no cover - isal is a dependency; zlib gives the same checksums
    crc32 = zlib.crc32


def layer_file(i: int) -> str:
    return f"layer_{i:04d}.f32"


def is_store(path) -> bool:
    return (Path(path) / MANIFEST).is_file()


# ---------------------------------------------------------------------------------------------
# checksums
# ---------------------------------------------------------------------------------------------
def crc_bytes(buf) -> int:
    return crc32(memoryview(buf).cast("B")) if not isinstance(buf, bytes) else crc32(buf)


def crc_array(arr: np.ndarray) -> int:
    """CRC-32 of a C-contiguous array's bytes, streamed in chunks (works on a memmap)."""
    flat = arr.reshape(-1)
    step = max(1, _CHUNK // max(1, flat.itemsize))
    c = 0
    for s in range(0, flat.shape[0], step):
        c = crc32(memoryview(np.ascontiguousarray(flat[s:s + step])).cast("B"), c)
    return c


def crc_file(path) -> int:
    c = 0
    with open(path, "rb") as fh:
        while True:
            b = fh.read(_CHUNK)
            if not b:
                return c
            c = crc32(b, c)


def _body_checksum(doc: dict) -> int:
    body = {k: v for k, v in doc.items() if k != "checksum"}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), default=_json_default, allow_nan=True)
    return crc32(text.encode())


def _sealed(doc: dict) -> dict:
    return {**doc, "checksum": _body_checksum(doc)}


def _check_sealed(doc: dict, where: Path) -> None:
    if doc.get("checksum") != _body_checksum(doc):
        raise StoreCorruptedError(
            f"store: {str(where)!r} fails its checksum (the file was edited or damaged); "
            "re-collect with repair=True, or delete the store", damaged={where.name: None})


def hash_digest(obj: Any) -> str | None:
    """Content hash of labels / sample ids / an input batch (None stays None)."""
    if obj is None:
        return None
    h = hashlib.sha256()
    _update(h, obj)
    return h.hexdigest()[:32]


def hash_batch(batch: Any) -> str:
    """Content hash of an input batch (tensors, arrays, dicts/sequences of them)."""
    h = hashlib.sha256()
    _update(h, batch)
    return h.hexdigest()[:32]


def _update(h, obj):
    if hasattr(obj, "detach") and hasattr(obj, "cpu"):
        t = obj.detach().cpu().contiguous()
        h.update(str(tuple(t.shape)).encode() + str(t.dtype).encode())
        if t.numel():  # the bytes hashed in place (no copy)
            h.update(memoryview(t.view(-1).view(dtype=_byte_dtype()).numpy()))
    elif isinstance(obj, np.ndarray):
        h.update(str(obj.shape).encode() + str(obj.dtype).encode())
        if obj.dtype.hasobject:
            h.update(np.ascontiguousarray(obj).tobytes())
        elif obj.size:
            h.update(memoryview(np.ascontiguousarray(obj).reshape(-1).view(np.uint8)))
    elif isinstance(obj, dict) or (hasattr(obj, "keys") and hasattr(obj, "items")):
        for k in sorted(obj.keys(), key=str):
            h.update(str(k).encode())
            _update(h, obj[k])
    elif isinstance(obj, (list, tuple)):
        h.update(f"seq{len(obj)}".encode())
        for it in obj:
            _update(h, it)
    else:
        h.update(repr(obj).encode())


def _byte_dtype():
    import torch

    return torch.uint8


def combine_hashes(hashes: list[str]) -> str:
    return hashlib.sha256("|".join(hashes).encode()).hexdigest()[:32]


# ---------------------------------------------------------------------------------------------
# complete stores
# ---------------------------------------------------------------------------------------------
def _writable_folder(path: Path) -> None:
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise InvalidParameterError(
            f"store: expected a writable folder, got {str(path)!r} ({exc.strerror or exc}); "
            "choose a folder on a writable filesystem") from exc


def _write_small(path: Path, extras: dict) -> dict:
    files = {}
    for key in SMALL:
        arr = extras.get(key)
        if arr is None:
            continue
        name = f"{key}.npy"
        write_npy(path / name, np.asarray(arr))
        files[key] = {"file": name, "crc": crc_file(path / name)}
    return files


def _region_bounds(n: int) -> list[int]:
    return list(range(0, n, REGION_ROWS)) + [n]


def write_store(path, data: dict[str, np.ndarray], *, labels, sample_ids, meta: dict, token_index=None,
                tokens=None, fingerprint: str | None = None, overwrite: bool = False) -> Path:
    """Write a complete store (used by ``Activations.save``); each file atomically, manifest last."""
    path = Path(path)
    if path.exists() and any(path.iterdir()):
        if not overwrite:
            raise InvalidParameterError(
                f"path: expected a new or empty folder, got {str(path)!r} which is not empty "
                "(pass overwrite=True to replace an existing activation store)")
        if not is_store(path):
            raise InvalidParameterError(f"path: {str(path)!r} is not an activation store; refusing to overwrite it")
        shutil.rmtree(path)
    _writable_folder(path)
    names = list(data)
    n = int(np.shape(data[names[0]])[0])
    bounds = _region_bounds(n)
    layers = []
    for i, name in enumerate(names):
        arr = data[name]
        crcs = []
        with atomic_path(path / layer_file(i)) as tmp:
            with open(tmp, "wb") as fh:
                for s, e in zip(bounds[:-1], bounds[1:]):
                    block = np.ascontiguousarray(arr[s:e], dtype=np.float32)
                    fh.write(memoryview(block).cast("B"))
                    crcs.append(crc_bytes(block))
        layers.append({"name": name, "file": layer_file(i), "shape": [n, int(np.shape(arr)[1])], "crc": crcs})
    files = _write_small(path, {"sample_ids": sample_ids, "labels": labels, "token_index": token_index,
                                "tokens": tokens})
    write_manifest(path, layers=layers, bounds=bounds, files=files, meta=meta, fingerprint=fingerprint)
    return path


def write_manifest(path: Path, *, layers, bounds, files, meta, fingerprint, inputs=None, batched=False):
    write_json(path / MANIFEST, _sealed({
        "format": STORE_FORMAT, "layers": layers, "bounds": [int(b) for b in bounds],
        "bounds_are_batches": bool(batched), "files": files, "meta": meta, "fingerprint": fingerprint,
        "inputs": inputs,
    }))


def read_manifest(path) -> dict:
    path = Path(path)
    if not is_store(path):
        raise InvalidParameterError(f"path: expected an activation store folder with {MANIFEST}, got {str(path)!r}")
    try:
        doc = read_json(path / MANIFEST)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise StoreCorruptedError(f"store: {str(path / MANIFEST)!r} is not valid JSON (damaged): {exc}",
                                  damaged={MANIFEST: None}) from exc
    fmt = doc.get("format") if isinstance(doc, dict) else None
    if fmt in OLD_FORMATS:
        raise StoreMismatchError(
            f"store: {str(path)!r} has the older format {fmt!r} (no checksums); this topo_mi reads "
            f"{STORE_FORMAT!r}: collect again (collect(..., store=path, overwrite=True) rebuilds it)")
    if fmt != STORE_FORMAT:
        raise InvalidParameterError(f"path: expected store format {STORE_FORMAT!r}, got {fmt!r}")
    _check_sealed(doc, path / MANIFEST)
    return doc


def _open_layer(path: Path, entry: dict, mode: str = "r") -> np.ndarray:
    f = path / entry["file"]
    n, d = (int(v) for v in entry["shape"])
    expected = n * d * 4
    size = f.stat().st_size if f.is_file() else None
    if size != expected:
        raise StoreCorruptedError(
            f"store: {str(f)!r} has {size if size is not None else 'no'} bytes, the manifest says {expected} "
            f"({n} x {d} float32): truncated or replaced", damaged={entry["file"]: None})
    if n * d == 0:
        return np.zeros((n, d), dtype=np.float32)
    return np.memmap(f, dtype=np.float32, mode=mode, shape=(n, d))


def verify_layers(path: Path, doc: dict, data: dict[str, np.ndarray]) -> dict[str, list[int]]:
    """``{file: [damaged region numbers]}`` for every layer file whose regions fail their CRC."""
    bounds = doc["bounds"]
    damaged: dict[str, list[int]] = {}
    for entry in doc["layers"]:
        arr = data[entry["name"]]
        bad = [r for r, (s, e) in enumerate(zip(bounds[:-1], bounds[1:]))
               if crc_array(arr[s:e]) != entry["crc"][r]]
        if bad:
            damaged[entry["file"]] = bad
    return damaged


def open_store(path, *, mmap: bool = True, verify: bool = True) -> dict:
    """Open a store; returns a dict with ``data`` (layer -> memmap or array), ``labels``,
    ``sample_ids``, ``token_index``, ``tokens``, ``meta``, ``fingerprint``, ``inputs`` and ``doc``.

    With ``verify`` every layer region and small file is checked against its CRC first; a damaged
    store raises :class:`~topo_mi.errors.StoreCorruptedError` naming the files.
    """
    path = Path(path)
    doc = read_manifest(path)
    data = {entry["name"]: _open_layer(path, entry) for entry in doc["layers"]}
    damaged: dict[str, Any] = {}
    small = {}
    for key in SMALL:
        info = doc["files"].get(key)
        if info is None:
            small[key] = None
            continue
        f = path / info["file"]
        if not f.is_file() or (verify and crc_file(f) != info["crc"]):
            damaged[info["file"]] = None
            continue
        small[key] = np.load(f, allow_pickle=False)
    if verify:
        damaged.update(verify_layers(path, doc, data))
    if damaged:
        unit = "batches" if doc.get("bounds_are_batches") else f"regions of {REGION_ROWS} rows"
        parts = [f if v is None else f"{f} ({unit} {v})" for f, v in damaged.items()]
        raise StoreCorruptedError(
            f"store: {str(path)!r} is damaged: {'; '.join(parts)} fail their checksums; collect with "
            "repair=True recomputes damaged batches (or delete the store)", damaged=damaged)
    if not mmap:
        data = {k: np.array(v) for k, v in data.items()}
    return {"data": data, **small, "meta": doc.get("meta", {}), "fingerprint": doc.get("fingerprint"),
            "inputs": doc.get("inputs"), "doc": doc}


# ---------------------------------------------------------------------------------------------
# streaming writer (collect)
# ---------------------------------------------------------------------------------------------
_NOT_RESERVED = 1 << 62  # the reserved end of a file whose reservation was refused: never asked again


def _keep_size_fallocate(fd: int, offset: int, length: int) -> bool:
    """``fallocate(fd, FALLOC_FL_KEEP_SIZE, offset, length)``; False where it is not available or
    refused (the caller then writes without reserved blocks)."""
    if length <= 0:
        return True
    import ctypes

    fn = libc_function("fallocate", (ctypes.c_int, ctypes.c_int, ctypes.c_longlong, ctypes.c_longlong))
    return fn is not None and fn(fd, 1, offset, length) == 0  # 1: FALLOC_FL_KEEP_SIZE


class StoreWriter:
    """Appends batches to the layer files with a journal entry each; resumes an interrupted run."""

    def __init__(self, path, fingerprint: str, layer_names: list[str], *, repair: bool = False,
                 expected_rows: int | None = None):
        self.path = Path(path)
        self.expected_rows = expected_rows  # rows of the whole collection, where known: preallocated
        self.fingerprint = fingerprint
        self.layer_names = list(layer_names)
        self.journal = self.path / JOURNAL
        self.done: dict[int, dict] = {}
        self.dims: dict[str, int] = {}
        self.next_row = 0
        self.next_seq = 0
        self.repaired: list[int] = []
        if self.path.exists() and any(self.path.iterdir()):
            progress = self.path / PROGRESS
            if not progress.is_file():
                raise InvalidParameterError(
                    f"store: expected a new folder or an activation store, got {str(self.path)!r} which "
                    "holds other files; nothing is overwritten")
            doc = read_json(progress)
            if doc.get("format") != STORE_FORMAT:
                raise StoreMismatchError(
                    f"store: {str(self.path)!r} is an interrupted collection in the format "
                    f"{doc.get('format')!r}, this topo_mi writes {STORE_FORMAT!r}; delete it or pass overwrite=True")
            if doc.get("fingerprint") != fingerprint or doc.get("layers") != self.layer_names:
                raise StoreMismatchError(
                    f"store: {str(self.path)!r} holds a collection made with different arguments "
                    f"(model weights, layers, reduce, select or batch_size differ: stored fingerprint "
                    f"{doc.get('fingerprint')}, this call {fingerprint}); use another folder or pass overwrite=True")
            self._load_journal(repair)
        else:
            _writable_folder(self.path)
            write_json(self.path / PROGRESS, {"fingerprint": fingerprint, "layers": self.layer_names,
                                              "format": STORE_FORMAT})
        self.journal.mkdir(exist_ok=True)
        self._fh: dict[int, int] = {}  # layer index -> file descriptor
        self._reserved: dict[int, int] = {}  # layer index -> end of the blocks reserved for it
        self._log = None  # the journal's log, opened for appending on the first commit

    # -- resume --------------------------------------------------------------------------------
    def _extras_path(self, k: int) -> Path:
        return self.journal / f"b{k:06d}.npz"

    def _read_entries(self) -> tuple[dict[int, dict], dict[str, Any]]:
        """The journal's entries by batch and the damaged ones. A final line without its newline
        is a write cut short by the interruption (its batch is simply not recorded); any other
        line that does not parse or fails its checksum is damage. Entries of the older layout
        (one ``b000042.json`` per batch) are read too."""
        entries: dict[int, dict] = {}
        damaged: dict[str, Any] = {}
        if not self.journal.is_dir():
            return entries, damaged
        for f in sorted(self.journal.iterdir()):
            if f.name.startswith("."):
                f.unlink(missing_ok=True)  # an interrupted, never-renamed file
            elif f.suffix == ".json" and f.stem[:1] == "b":  # the older layout
                try:
                    e = read_json(f)
                    _check_sealed(e, f)
                    entries[int(e["k"])] = e
                except (StoreCorruptedError, json.JSONDecodeError, UnicodeDecodeError, ValueError, KeyError):
                    damaged[f"{JOURNAL}/{f.name}"] = None
        log = self.journal / LOG
        if log.is_file():
            lines = log.read_bytes().split(b"\n")[:-1]  # the last piece: empty, or a line cut short
            for line_no, line in enumerate(lines, start=1):
                try:
                    e = json.loads(line)
                    _check_sealed(e, log)
                    entries[int(e["k"])] = e
                except (StoreCorruptedError, json.JSONDecodeError, UnicodeDecodeError, ValueError, KeyError,
                        TypeError):
                    damaged[f"{JOURNAL}/{LOG} line {line_no}"] = None
                    break
        return entries, damaged

    def _load_journal(self, repair: bool) -> None:
        entries, damaged = self._read_entries()
        # batches are written in order: keep the verified prefix 0..m-1
        good: dict[int, dict] = {}
        row = seq = 0
        first_bad = None
        for k in range(len(entries) + len(damaged) + 1):
            e = entries.get(k)
            if e is None:
                first_bad = k
                break
            problem = self._check_entry(k, e, row, seq)
            if problem:
                damaged.update(problem)
                first_bad = k
                break
            good[k] = e
            row, seq = e["row"] + e["rows"], e["seq"] + e["seqs"]
        if damaged and not repair:
            raise StoreCorruptedError(
                f"store: the interrupted collection in {str(self.path)!r} is damaged: "
                f"{', '.join(damaged)} fail their checksums; collect with repair=True recomputes the damaged "
                "batches (or delete the store)", damaged=damaged)
        later = [k for k in entries if k not in good]
        for k in later:
            self._extras_path(k).unlink(missing_ok=True)
        if damaged and first_bad is not None:
            self.repaired = sorted({first_bad, *later})
        self.done = good
        self.next_row, self.next_seq = row, seq
        if good:
            self.dims = dict(good[0]["dims"])
        # the log from here on holds exactly the verified prefix (older-layout entries moved in)
        self.journal.mkdir(exist_ok=True)
        tmp = self.journal / f".{LOG}"
        with open(tmp, "w") as fh:
            for k in range(len(good)):
                fh.write(json.dumps(good[k]) + "\n")
        os.replace(tmp, self.journal / LOG)
        for f in self.journal.glob("b*.json"):
            f.unlink(missing_ok=True)

    def _check_entry(self, k: int, e: dict, row: int, seq: int) -> dict:
        name = f"{JOURNAL}/{LOG} (batch {k})"
        if e.get("row") != row or e.get("seq") != seq or set(e.get("dims", {})) != set(self.layer_names):
            return {name: None}
        for i, layer in enumerate(self.layer_names):
            f = self.path / layer_file(i)
            d = int(e["dims"][layer])
            start, stop = row * d * 4, (row + e["rows"]) * d * 4
            if not f.is_file() or f.stat().st_size < stop:
                return {layer_file(i): [k]}
            with open(f, "rb") as fh:
                fh.seek(start)
                c = 0
                left = stop - start
                while left:
                    b = fh.read(min(left, _CHUNK))
                    if not b:
                        break
                    c = crc32(b, c)
                    left -= len(b)
            if c != e["crc"][layer]:
                return {layer_file(i): [k]}
        if e.get("extras_crc") is not None:
            x = self._extras_path(k)
            if not x.is_file() or crc_file(x) != e["extras_crc"]:
                return {f"{JOURNAL}/{x.name}": None}
        return {}

    def read_extras(self, k: int) -> dict:
        e = self.done[k]
        if e.get("extras_crc") is None:
            return {}
        with np.load(self._extras_path(k), allow_pickle=False) as z:
            return {key: z[key] for key in z.files}

    # -- writing -------------------------------------------------------------------------------
    def _fd(self, i: int) -> int:
        fd = self._fh.get(i)
        if fd is None:
            fd = self._fh[i] = os.open(self.path / layer_file(i), os.O_RDWR | os.O_CREAT, 0o644)
        return fd

    def begin_batch(self, k: int) -> None:
        if k != len(self.done):  # pragma: no cover - guarded by collect
            raise StoreMismatchError(f"store: batch {k} written out of order")
        self._crcs: dict[str, int] = {}
        self._rows = None

    def write_layer(self, name: str, arr: np.ndarray, fresh: bool = True) -> None:
        """Write one layer's rows of the current batch at its place in the layer file and checksum
        them (called by the hook, before the forward goes on, so the module's own output is written
        as it is: no copy even where a later in-place operation would change it).

        The write is done right here rather than on a writer thread: the forward's own threads
        keep the cores busy (OpenMP's workers spin between operations), so a third thread gets
        its time slices late, and the rows need no copy (``benchmarks/bench_collect.py --cases
        variants`` times both)."""
        i = self.layer_names.index(name)
        d = arr.shape[1]
        if self.dims.setdefault(name, d) != d:
            raise InvalidParameterError(
                f"layer {name!r}: feature dimension changes across batches ({self.dims[name]} then {d}); "
                "use a fixed sequence length or reduce='last'/'mean'/'tokens'")
        self._crcs[name] = self._write(i, self.next_row * d * 4, np.ascontiguousarray(arr))
        self._rows = arr.shape[0]

    def _write(self, i: int, offset: int, data: np.ndarray) -> int:
        """``data``'s bytes at ``offset`` of layer file ``i``; returns their CRC-32."""
        fd, buf, done = self._fd(i), memoryview(data).cast("B"), 0
        if offset + len(buf) > self._reserved.get(i, 0):
            self._reserve(i, fd, offset + len(buf), data.shape[1])
        while done < len(buf):  # pwrite: no file position, no user-space buffer to flush
            done += os.pwrite(fd, buf[done:], offset + done)
        return crc32(buf)

    def _reserve(self, i: int, fd: int, end: int, dim: int) -> None:
        """Reserve the disk blocks of layer file ``i`` ahead of its writes: the whole layer where the
        number of rows is known, else twice what is written so far (at least 64 MiB), without
        changing the file's size (``fallocate(FALLOC_FL_KEEP_SIZE)``: the data, the size and the
        checksums are those of plain writes). Writing into reserved blocks skips the filesystem's
        block reservation per page: 400 MiB in 2 MiB writes took 0.067 s against 0.095 s on ext4
        here (``benchmarks/bench_collect.py --cases pages``). What is not written by the end is
        released (:meth:`close` truncates to the written size). Where the call is refused (another
        OS, a filesystem without it, a disk too full for the whole layer) the writes go on without
        it, and are not asked again for this file."""
        whole = None if self.expected_rows is None else self.expected_rows * dim * 4
        target = whole if whole is not None and whole >= end else max(2 * end, end + (64 << 20))
        start = self._reserved.get(i)
        if start is None:  # what the file already holds (a resumed collection) needs no reservation
            start = os.fstat(fd).st_size
        if not _keep_size_fallocate(fd, start, target - start):
            target = _NOT_RESERVED
        self._reserved[i] = target

    def commit_batch(self, k: int, *, seqs: int, input_hash: str, extras: dict | None = None) -> None:
        """Record batch ``k`` in the journal once all its layers are written (the data reached the
        OS through ``pwrite`` before its entry names it)."""
        rows = self._rows
        extras_crc = None
        extras = {key: np.asarray(v) for key, v in (extras or {}).items() if v is not None}
        if extras:
            tmp = self.journal / f".b{k:06d}.npz"
            with open(tmp, "wb") as fh:
                np.savez(fh, **extras)
            extras_crc = crc_file(tmp)
            os.replace(tmp, self._extras_path(k))
        entry = _sealed({"k": k, "row": self.next_row, "rows": int(rows), "seq": self.next_seq,
                         "seqs": int(seqs), "input_hash": input_hash, "crc": dict(self._crcs),
                         "dims": {n: int(self.dims[n]) for n in self.layer_names},
                         "extras_crc": extras_crc})
        if self._log is None:
            self._log = open(self.journal / LOG, "a", encoding="utf-8")
        self._log.write(json.dumps(entry) + "\n")  # one line per batch, appended: a batch is recorded
        self._log.flush()  # once its whole line (newline included) is in the log
        self.done[k] = entry
        self.next_row += int(rows)
        self.next_seq += int(seqs)

    def close(self) -> None:
        for i, fd in self._fh.items():
            try:
                if self._reserved.get(i, 0) != _NOT_RESERVED:  # release what was reserved and not written
                    os.ftruncate(fd, os.fstat(fd).st_size)
            finally:
                os.close(fd)
        self._fh.clear()
        self._reserved.clear()
        if self._log is not None:
            self._log.close()
            self._log = None

    def finalize(self, n_batches: int, *, extras: dict, meta: dict, inputs: dict) -> None:
        self.close()
        missing = [k for k in range(n_batches) if k not in self.done]
        if missing:  # pragma: no cover - guarded by collect
            raise StoreMismatchError(f"store: batches {missing[:5]} are missing; cannot finalise")
        extra = [k for k in self.done if k >= n_batches]
        if extra:
            raise StoreMismatchError(
                f"store: {str(self.path)!r} holds {len(self.done)} batches but the inputs gave {n_batches}: "
                "the inputs differ from the interrupted collection")
        n = self.next_row
        bounds = [self.done[k]["row"] for k in range(n_batches)] + [n]
        layers = []
        for i, name in enumerate(self.layer_names):
            d = self.dims[name]
            f = self.path / layer_file(i)
            with open(f, "r+b" if f.exists() else "w+b") as fh:
                fh.truncate(n * d * 4)  # drop rows of a batch interrupted after its data was written
            layers.append({"name": name, "file": layer_file(i), "shape": [n, d],
                           "crc": [self.done[k]["crc"][name] for k in range(n_batches)]})
        files = _write_small(self.path, extras)
        write_manifest(self.path, layers=layers, bounds=bounds, files=files, meta=meta,
                       fingerprint=self.fingerprint, inputs=inputs, batched=True)
        shutil.rmtree(self.journal, ignore_errors=True)
        (self.path / PROGRESS).unlink(missing_ok=True)


def rewrite_regions(path: Path, doc: dict, k: int, arrays: dict[str, np.ndarray]) -> None:
    """Write recomputed rows of batch ``k`` of a finished store in place (repair) and check them
    against the manifest's CRCs (a deterministic model gives the same bytes)."""
    s, e = doc["bounds"][k], doc["bounds"][k + 1]
    for entry in doc["layers"]:
        arr = np.ascontiguousarray(arrays[entry["name"]], dtype=np.float32)
        if arr.shape != (e - s, entry["shape"][1]):
            raise StoreMismatchError(
                f"store: recomputed batch {k} of layer {entry['name']!r} has shape {arr.shape}, "
                f"the store holds {(e - s, entry['shape'][1])}; cannot repair, re-collect with overwrite=True")
        if crc_bytes(arr) != entry["crc"][k]:
            raise StoreMismatchError(
                f"store: recomputing batch {k} of layer {entry['name']!r} gives other values than those "
                "originally stored (a non-deterministic model?); cannot repair, re-collect with overwrite=True")
        with open(path / entry["file"], "r+b") as fh:
            fh.seek(s * entry["shape"][1] * 4)
            fh.write(memoryview(arr).cast("B"))
