"""On-disk activation store: one ``.npy`` file per layer, opened lazily (memory-mapped).

Layout of a store folder::

    activations.json     manifest: format, layer names -> files, shapes, meta, fingerprint
    layer_0000.npy ...   float32 (n_samples, n_features), one per layer
    sample_ids.npy       int64 or str ids
    labels.npy           optional

While :func:`topo_mi.collect` streams into a store, each finished batch is a folder
``parts/b000042/`` renamed into place atomically (a half-written batch is never visible), and
``collect.json`` records the collection's fingerprint. A re-run with the same arguments reuses the
finished batches (checking that each input batch hashes the same) and computes the rest; the
parts are then consolidated into the layer files and the manifest is written last.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from topo_mi._io import atomic_path, read_json, write_json, write_npy
from topo_mi.errors import InvalidParameterError, StoreMismatchError

STORE_FORMAT = "topo_mi.activations/1"
MANIFEST = "activations.json"
PROGRESS = "collect.json"


def layer_file(i: int) -> str:
    return f"layer_{i:04d}.npy"


def is_store(path) -> bool:
    return (Path(path) / MANIFEST).is_file()


def write_store(path, data: dict[str, np.ndarray], *, labels, sample_ids, meta: dict,
                fingerprint: str | None = None, overwrite: bool = False) -> Path:
    """Write a complete store (used by ``Activations.save``)."""
    path = Path(path)
    if path.exists() and any(path.iterdir()):
        if not overwrite:
            raise InvalidParameterError(
                f"path: expected a new or empty folder, got {str(path)!r} which is not empty "
                "(pass overwrite=True to replace an existing activation store)")
        if not is_store(path):
            raise InvalidParameterError(f"path: {str(path)!r} is not an activation store; refusing to overwrite it")
        shutil.rmtree(path)
    path.mkdir(parents=True, exist_ok=True)
    names = list(data)
    for i, name in enumerate(names):
        write_npy(path / layer_file(i), np.ascontiguousarray(data[name], dtype=np.float32))
    write_npy(path / "sample_ids.npy", np.asarray(sample_ids))
    if labels is not None:
        write_npy(path / "labels.npy", np.asarray(labels))
    _write_manifest(path, names, {n: tuple(np.shape(data[n])) for n in names}, labels is not None,
                    meta, fingerprint)
    return path


def _write_manifest(path: Path, names, shapes, has_labels, meta, fingerprint):
    write_json(path / MANIFEST, {
        "format": STORE_FORMAT,
        "layers": [{"name": n, "file": layer_file(i), "shape": list(shapes[n])} for i, n in enumerate(names)],
        "has_labels": bool(has_labels),
        "meta": meta,
        "fingerprint": fingerprint,
    })


def read_manifest(path) -> dict:
    path = Path(path)
    if not is_store(path):
        raise InvalidParameterError(f"path: expected an activation store folder with {MANIFEST}, got {str(path)!r}")
    doc = read_json(path / MANIFEST)
    if doc.get("format") != STORE_FORMAT:
        raise InvalidParameterError(f"path: expected format {STORE_FORMAT!r}, got {doc.get('format')!r}")
    return doc


def open_store(path, *, mmap: bool = True):
    """Open a store lazily; returns (data, labels, sample_ids, meta, fingerprint)."""
    path = Path(path)
    doc = read_manifest(path)
    mode = "r" if mmap else None
    data = {}
    for entry in doc["layers"]:
        arr = np.load(path / entry["file"], mmap_mode=mode, allow_pickle=False)
        if list(arr.shape) != list(entry["shape"]):
            raise InvalidParameterError(f"store {str(path)!r}: layer {entry['name']!r} has shape {arr.shape}, "
                                        f"manifest says {tuple(entry['shape'])} (corrupt store)")
        data[entry["name"]] = arr
    ids = np.load(path / "sample_ids.npy", allow_pickle=False)
    labels = np.load(path / "labels.npy", allow_pickle=False) if doc.get("has_labels") else None
    return data, labels, ids, doc.get("meta", {}), doc.get("fingerprint")


def hash_batch(batch: Any) -> str:
    """Content hash of an input batch (tensors, arrays, dicts/sequences of them)."""
    h = hashlib.sha256()
    _update(h, batch)
    return h.hexdigest()[:32]


def _update(h, obj):
    if hasattr(obj, "detach") and hasattr(obj, "cpu"):
        t = obj.detach().cpu().contiguous()
        h.update(str(tuple(t.shape)).encode() + str(t.dtype).encode())
        h.update(t.view(-1).view(dtype=_byte_dtype()).numpy().tobytes() if t.numel() else b"")
    elif isinstance(obj, np.ndarray):
        h.update(str(obj.shape).encode() + str(obj.dtype).encode())
        h.update(np.ascontiguousarray(obj).tobytes())
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


class StoreWriter:
    """Streams batches into ``parts/`` and consolidates them; resumes an interrupted run."""

    def __init__(self, path, fingerprint: str, layer_names: list[str]):
        self.path = Path(path)
        self.fingerprint = fingerprint
        self.layer_names = list(layer_names)
        self.parts = self.path / "parts"
        self.done: dict[int, dict] = {}
        if self.path.exists() and any(self.path.iterdir()):
            progress = self.path / PROGRESS
            if not progress.is_file():
                raise InvalidParameterError(
                    f"store: expected a new folder or an activation store, got {str(self.path)!r} which "
                    "holds other files; nothing is overwritten")
            doc = read_json(progress)
            if doc.get("fingerprint") != fingerprint or doc.get("layers") != self.layer_names:
                raise StoreMismatchError(
                    f"store: {str(self.path)!r} holds a collection made with different arguments "
                    f"(model weights, layers, reduce, select or batch_size differ: stored fingerprint "
                    f"{doc.get('fingerprint')}, this call {fingerprint}); use another folder or delete it")
            if self.parts.is_dir():
                for d in sorted(self.parts.iterdir()):
                    if d.is_dir() and d.name.startswith("b") and (d / "batch.json").is_file():
                        info = read_json(d / "batch.json")
                        self.done[int(d.name[1:])] = info
                    elif d.name.startswith("."):
                        shutil.rmtree(d, ignore_errors=True)  # an interrupted, never-renamed batch
        else:
            self.path.mkdir(parents=True, exist_ok=True)
            write_json(self.path / PROGRESS, {"fingerprint": fingerprint, "layers": self.layer_names,
                                              "format": STORE_FORMAT})
        self.parts.mkdir(exist_ok=True)

    def write_batch(self, k: int, arrays: dict[str, np.ndarray], labels, input_hash: str) -> None:
        final = self.parts / f"b{k:06d}"
        tmp = self.parts / f".b{k:06d}.tmp"
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir()
        rows = None
        for i, name in enumerate(self.layer_names):
            arr = arrays[name]
            rows = arr.shape[0]
            with open(tmp / layer_file(i), "wb") as fh:
                np.save(fh, arr, allow_pickle=False)
        if labels is not None:
            with open(tmp / "labels.npy", "wb") as fh:
                np.save(fh, np.asarray(labels), allow_pickle=False)
        info = {"rows": int(rows), "input_hash": input_hash, "has_labels": labels is not None,
                "dims": {n: int(arrays[n].shape[1]) for n in self.layer_names}}
        with open(tmp / "batch.json", "w") as fh:
            json.dump(info, fh)
        os.replace(tmp, final)  # atomic: a batch is either complete or absent
        self.done[k] = info

    def read_labels(self, k: int):
        f = self.parts / f"b{k:06d}" / "labels.npy"
        return np.load(f, allow_pickle=False) if f.is_file() else None

    def finalize(self, n_batches: int, *, sample_ids, meta: dict) -> None:
        missing = [k for k in range(n_batches) if k not in self.done]
        if missing:  # pragma: no cover - guarded by collect
            raise StoreMismatchError(f"store: batches {missing[:5]} are missing; cannot finalise")
        extra = [k for k in self.done if k >= n_batches]
        if extra:
            raise StoreMismatchError(
                f"store: {str(self.path)!r} holds {len(self.done)} batches but the inputs gave {n_batches}: "
                "the inputs differ from the interrupted collection")
        n = sum(self.done[k]["rows"] for k in range(n_batches))
        shapes = {}
        for i, name in enumerate(self.layer_names):
            dims = {self.done[k]["dims"][name] for k in range(n_batches)}
            if len(dims) != 1:
                raise InvalidParameterError(f"layer {name!r}: feature dimension changes across batches {sorted(dims)}")
            d = dims.pop()
            shapes[name] = (n, d)
            with atomic_path(self.path / layer_file(i), suffix=".npy") as tmp:
                out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(n, d))
                row = 0
                for k in range(n_batches):
                    part = np.load(self.parts / f"b{k:06d}" / layer_file(i), allow_pickle=False)
                    out[row:row + part.shape[0]] = part
                    row += part.shape[0]
                out.flush()
                del out
        has_labels = all(self.done[k].get("has_labels") for k in range(n_batches))
        if has_labels:
            write_npy(self.path / "labels.npy", np.concatenate([self.read_labels(k) for k in range(n_batches)]))
        write_npy(self.path / "sample_ids.npy", np.asarray(sample_ids))
        _write_manifest(self.path, self.layer_names, shapes, has_labels, meta, self.fingerprint)
        shutil.rmtree(self.parts, ignore_errors=True)
        (self.path / PROGRESS).unlink(missing_ok=True)
