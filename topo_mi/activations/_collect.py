"""Collect activations from any ``torch.nn.Module`` with forward hooks."""
from __future__ import annotations

import hashlib
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from topo_mi._validation import check_int, fail
from topo_mi.activations._container import Activations
from topo_mi.activations._hooks import _eval_mode, _recording, resolve_layers
from topo_mi.activations._reduce import (check_reduce, describe_reduce, describe_select, first_tensor,
                                          reduce_output)
from topo_mi.errors import InvalidParameterError, NonFiniteError

LayerSpec = "str | Sequence[str] | Callable[[str, Module], bool]"


# ---------------------------------------------------------------------------------------------
# inputs
# ---------------------------------------------------------------------------------------------
def _n_rows(x) -> int:
    return int(x.shape[0])


def _iter_batches(inputs: Any, batch_size: int) -> tuple[Iterator[tuple[Any, Any]], int | None, int | None]:
    """Yield ``(model_input, labels_or_None)``; returns the iterator, the number of batches and the
    number of rows when known."""
    import torch

    if isinstance(inputs, (np.ndarray, torch.Tensor)):
        n = _n_rows(inputs)
        if n == 0:
            fail("inputs", "at least one sample", "an empty array", raw=True)
        return ((inputs[i:i + batch_size], None) for i in range(0, n, batch_size)), -(-n // batch_size), n
    if isinstance(inputs, dict) or (hasattr(inputs, "keys") and hasattr(inputs, "items") and not hasattr(inputs, "__next__")):
        d = dict(inputs.items())
        sizes = {k: _n_rows(v) for k, v in d.items() if hasattr(v, "shape") and len(getattr(v, "shape", ())) > 0}
        if not sizes:
            fail("inputs", "a dict of tensors sharing the batch axis", inputs)
        if len(set(sizes.values())) != 1:
            fail("inputs", "dict entries with the same number of rows", sizes)
        n = next(iter(sizes.values()))
        if n == 0:
            fail("inputs", "at least one sample", "empty tensors", raw=True)

        def gen():
            for i in range(0, n, batch_size):
                yield {k: (v[i:i + batch_size] if k in sizes else v) for k, v in d.items()}, None

        return gen(), -(-n // batch_size), n
    if isinstance(inputs, (str, bytes)):
        fail("inputs", "tensors (tokenise text first)", inputs)
    try:
        total = len(inputs)  # DataLoader, list of batches
    except TypeError:
        total = None
    if total == 0:
        fail("inputs", "at least one batch", "an empty sequence", raw=True)

    def gen_items():
        for item in inputs:
            yield _split_item(item)

    return gen_items(), total, None


def _split_item(item):
    import torch

    if isinstance(item, (torch.Tensor, np.ndarray)) or isinstance(item, dict) or hasattr(item, "keys"):
        return item, None
    if isinstance(item, (tuple, list)):
        if len(item) == 0:
            fail("inputs", "non-empty batches", item)
        if len(item) == 1:
            return item[0], None
        return item[0], item[1]
    fail("inputs", "batches that are tensors, (input, label) pairs or dicts", type(item).__name__, raw=True)


def _to_device(x, device, dtype):
    import torch

    if isinstance(x, np.ndarray):
        x = torch.from_numpy(np.ascontiguousarray(x))
        if x.is_floating_point() and dtype is not None:
            x = x.to(dtype)
    if isinstance(x, torch.Tensor):
        return x.to(device)
    if isinstance(x, dict) or hasattr(x, "keys"):
        return {k: _to_device(v, device, dtype) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return type(x)(_to_device(v, device, dtype) for v in x)
    return x


def _batch_rows(x) -> int:
    if hasattr(x, "shape"):
        return int(x.shape[0])
    if isinstance(x, dict) or hasattr(x, "keys"):
        for v in x.values():
            if hasattr(v, "shape") and len(v.shape):
                return int(v.shape[0])
    if isinstance(x, (list, tuple)) and x:
        return _batch_rows(x[0])
    fail("inputs", "batches with a leading batch axis", type(x).__name__, raw=True)


def model_fingerprint(model) -> str:
    """Hash of the model's class and every parameter and buffer (names, shapes, values)."""
    import torch

    h = hashlib.sha256(f"{type(model).__module__}.{type(model).__qualname__}".encode())
    for name, t in model.state_dict().items():
        t = t.detach().cpu().contiguous()
        h.update(name.encode() + str(tuple(t.shape)).encode() + str(t.dtype).encode())
        if t.numel():
            h.update(t.view(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:32]


def _model_dtype(model):
    for p in model.parameters():
        if p.is_floating_point():
            return p.dtype
    return None


def _check_device(model, device):
    import torch

    dev = torch.device(device)
    for p in model.parameters():
        if p.device.type != dev.type:
            raise InvalidParameterError(
                f"device: expected the model's parameters on {dev}, got them on {p.device}; "
                f"call model.to({str(dev)!r}) or pass device={str(p.device)!r}")
        break
    return dev


# ---------------------------------------------------------------------------------------------
# collect
# ---------------------------------------------------------------------------------------------
def collect(model, inputs, *, layers, reduce: Any = "last", batch_size: int = 256, device: str = "cpu",
            store=None, progress: bool = True, select: Any = None, labels=None, sample_ids=None,
            dataset_id: str | None = None, seed: int | None = None) -> Activations:
    """Run ``model`` over ``inputs`` and record the outputs of ``layers``.

    Parameters
    ----------
    model : torch.nn.Module
        Any module (HuggingFace models included). It is put in eval mode for the collection
        (every submodule's flag restored after) and run under ``torch.no_grad()``.
    inputs : tensor, ndarray, dict of tensors, DataLoader, or iterable of batches
        A tensor/array/dict is split into batches of ``batch_size`` along axis 0. A DataLoader or
        any iterable yields batches: a tensor, an ``(input, label, ...)`` pair/tuple (labels are
        recorded), or a dict passed as ``model(**batch)`` (HuggingFace tokenizer output; its
        ``attention_mask`` is used by the "last"/"mean" reductions). A list of tensors is a list
        of batches.
    layers : str, sequence of str, or callable
        Module names (``model.named_modules()``), glob patterns (``"blocks.*.mlp"``; ``*`` matches
        one dotted component, ``**`` several) or a predicate ``f(name, module) -> bool``. Unknown
        names raise :class:`~topo_mi.errors.UnknownNameError` with the closest valid names.
    reduce : {"last", "mean", "flatten"}, int or callable, default "last"
        How (batch, tokens, d) or (batch, channels, ...) outputs become (batch, features); 2-D
        outputs pass through.
    batch_size : int, default 256
    device : str, default "cpu"
        Where the inputs are sent; the model must already be there.
    store : path, optional
        Stream batches to an on-disk store (see :mod:`topo_mi.activations._store`) instead of
        RAM; the result is memory-mapped. Re-running an interrupted collection with the same
        arguments resumes it; a store written with different arguments raises
        :class:`~topo_mi.errors.StoreMismatchError`. A finished store with the same arguments is
        returned as is (a cache).
    progress : bool, default True
        A tqdm bar over batches.
    select : callable, int or str, optional
        Picks the tensor from tuple/dict/model-output outputs (default: the first tensor).
    labels, sample_ids : array, optional
        Per-sample labels and stable ids (default ids ``0..n-1``).
    dataset_id, seed : optional
        Recorded in ``meta``.

    Returns
    -------
    Activations
    """
    import torch

    from topo_mi import __version__

    if not isinstance(model, torch.nn.Module):
        fail("model", "a torch.nn.Module", type(model).__name__, raw=True)
    batch_size = check_int("batch_size", batch_size, min_value=1)
    check_reduce(reduce)
    named = resolve_layers(model, layers)
    names = [n for n, _ in named]
    dev = _check_device(model, device)
    dtype = _model_dtype(model)
    batches, n_batches, n_rows = _iter_batches(inputs, batch_size)

    fp_model = model_fingerprint(model)
    fingerprint = hashlib.sha256("|".join([
        fp_model, ",".join(names), describe_reduce(reduce), describe_select(select), str(batch_size),
    ]).encode()).hexdigest()[:32]
    meta = {
        "model": f"{type(model).__module__}.{type(model).__qualname__}", "model_fingerprint": fp_model,
        "layers": names, "reduce": describe_reduce(reduce), "select": describe_select(select),
        "batch_size": batch_size, "dataset_id": dataset_id, "seed": seed,
        "versions": {"topo_mi": __version__, "torch": torch.__version__, "numpy": np.__version__},
    }

    writer = None
    if store is not None:
        from topo_mi.activations._store import StoreWriter, hash_batch, is_store, open_store

        if is_store(store):
            data, st_labels, ids, st_meta, st_fp = open_store(store)
            if st_fp != fingerprint:
                from topo_mi.errors import StoreMismatchError

                raise StoreMismatchError(
                    f"store: {str(store)!r} is a finished collection made with different arguments "
                    f"(stored fingerprint {st_fp}, this call {fingerprint}); use another folder")
            return Activations.load(store)
        writer = StoreWriter(store, fingerprint, names)

    current: dict[str, Any] = {}
    mask_holder: dict[str, Any] = {"mask": None}
    out_chunks: dict[str, list[np.ndarray]] = {n: [] for n in names}
    label_chunks: list[Any] = []
    dims: dict[str, int] = {}
    row = 0

    def record(name, output):
        if name in current:
            raise InvalidParameterError(
                f"layers: module {name!r} ran more than once in one forward pass (a shared module); "
                "collect from modules that run once, or pass select/reduce on a wrapper module")
        t = first_tensor(output, select, layer=name)
        current[name] = reduce_output(t.detach(), reduce, layer=name, attention_mask=mask_holder["mask"])

    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=n_batches, desc="collect", unit="batch", leave=False, disable=None)
    try:
        with _eval_mode(model), torch.no_grad(), _recording(named, record):
            for k, (x, y) in enumerate(batches):
                rows = _batch_rows(x)
                if writer is not None:
                    h = hash_batch(x)
                    if k in writer.done:
                        if writer.done[k]["input_hash"] != h:
                            from topo_mi.errors import StoreMismatchError

                            raise StoreMismatchError(
                                f"store: input batch {k} differs from the one stored by the interrupted "
                                "collection (shuffled or changed inputs); cannot resume")
                        row += writer.done[k]["rows"]
                        if bar is not None:
                            bar.update(1)
                        continue
                current.clear()
                xb = _to_device(x, dev, dtype)
                mask_holder["mask"] = xb.get("attention_mask") if isinstance(xb, dict) else None
                if isinstance(xb, dict):
                    model(**xb)
                else:
                    model(xb)
                missing = [n for n in names if n not in current]
                if missing:
                    raise InvalidParameterError(
                        f"layers: {', '.join(map(repr, missing))} did not run in the forward pass of batch {k}")
                arrays = {}
                for n in names:
                    arr = current[n].to("cpu", torch.float32).numpy()
                    if arr.shape[0] != rows:
                        raise InvalidParameterError(
                            f"layer {n!r}: expected {rows} rows (the batch size of batch {k}), got output "
                            f"of shape {arr.shape}; its first axis is not the batch axis")
                    # one cheap reduction; the exact count only when something is off
                    if not np.isfinite(arr.sum()) and not np.isfinite(arr).all():
                        bad = int((~np.isfinite(arr)).sum())
                        raise NonFiniteError(
                            f"layer {n!r}: {bad} non-finite activation values (NaN/inf) in batch {k} "
                            f"(rows {row}-{row + rows - 1})")
                    arrays[n] = arr
                ylab = None if y is None else (y.detach().cpu().numpy() if hasattr(y, "detach") else np.asarray(y))
                if ylab is not None and ylab.shape[:1] != (rows,):
                    raise InvalidParameterError(
                        f"inputs: labels of batch {k} have shape {ylab.shape}, expected {rows} rows")
                if writer is not None:
                    writer.write_batch(k, arrays, ylab, h)
                else:
                    for n in names:
                        d = arrays[n].shape[1]
                        if k == 0:
                            dims[n] = d
                            if n_rows is not None:  # known size: write straight into the result
                                out_chunks[n] = [np.empty((n_rows, d), dtype=np.float32)]
                        elif d != dims[n]:
                            raise InvalidParameterError(
                                f"layer {n!r}: feature dimension changes across batches "
                                f"({dims[n]} then {d}); use a fixed sequence length or reduce='last'/'mean'")
                        if n_rows is not None:
                            out_chunks[n][0][row:row + rows] = arrays[n]
                        else:
                            out_chunks[n].append(arrays[n])
                    label_chunks.append(ylab)
                row += rows
                if bar is not None:
                    bar.update(1)
    finally:
        current.clear()
        if bar is not None:
            bar.close()
    if row == 0:
        fail("inputs", "at least one sample", "no batches", raw=True)

    n_done = k + 1
    if sample_ids is None:
        sample_ids = np.arange(row, dtype=np.int64)
    if writer is not None:
        ids = np.asarray(sample_ids)
        if ids.shape != (row,):
            fail("sample_ids", f"{row} ids (one per sample)", f"shape {ids.shape}", raw=True)
        meta["n_samples"] = row
        writer.finalize(n_done, sample_ids=ids, meta=meta)
        acts = Activations.load(store)
        if labels is not None:
            acts = Activations(dict(acts.items()), labels=labels, sample_ids=acts.sample_ids, meta=acts.meta,
                               check_finite=False, _path=acts.path)
        return acts
    data = {n: (np.concatenate(out_chunks[n]) if len(out_chunks[n]) > 1 else out_chunks[n][0]) for n in names}
    if labels is None and label_chunks and all(c is not None for c in label_chunks):
        labels = np.concatenate(label_chunks)
    meta["n_samples"] = row
    return Activations(data, labels=labels, sample_ids=sample_ids, meta=meta, check_finite=False)
