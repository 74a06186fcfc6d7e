"""Collect activations from any ``torch.nn.Module`` with forward hooks."""
from __future__ import annotations

import contextlib
import hashlib
import math
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from topo_mi._validation import check_int, fail
from topo_mi.activations._container import Activations
from topo_mi.activations._hooks import _eval_mode, _recording, resolve_layers
from topo_mi.activations._reduce import (check_reduce, describe_reduce, describe_select, first_tensor,
                                          reduce_output, token_rows)
from topo_mi.errors import InvalidParameterError, NonFiniteError, StoreMismatchError



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
    """Inputs to the model's device; floating inputs (any precision) to the model's float dtype.

    Integer and bool tensors pass unchanged (token ids, masks); complex and object inputs are
    refused with a named error.
    """
    import torch

    if isinstance(x, np.ndarray):
        if x.dtype == object or x.dtype.kind not in "biuf":
            fail("inputs", "numeric arrays (real numbers, integer ids or booleans)", x)
        x = torch.from_numpy(np.ascontiguousarray(x))
    if isinstance(x, torch.Tensor):
        if x.is_complex():
            fail("inputs", "real-valued tensors (complex inputs are not supported)",
                 f"a {x.dtype} tensor of shape {tuple(x.shape)}", raw=True)
        if x.is_floating_point() and dtype is not None and x.dtype != dtype:
            x = x.to(dtype)
        return x.to(device)
    if isinstance(x, dict) or hasattr(x, "keys"):
        return {k: _to_device(v, device, dtype) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return type(x)(_to_device(v, device, dtype) for v in x)
    return x


def _looks_like_input_error(exc: BaseException) -> bool:
    text = str(exc)
    return any(t in text for t in ("must have the same dtype", "shapes cannot be multiplied", "expected scalar type",
                                   "size of tensor", "Expected input", "expected input", "not implemented for",
                                   "Given groups", "Expected all tensors"))


def _input_error_message(model, xb, exc: BaseException) -> str:
    """``inputs: expected ..., got ...`` for a first forward that failed on the inputs' shape or dtype."""
    first = next(((n, m) for n, m in model.named_modules()
                  if hasattr(m, "in_features") and hasattr(m, "weight")), None)
    expected = "inputs the model accepts"
    if first is not None:
        name, m = first
        expected = (f"rows of width {m.in_features} and dtype {m.weight.dtype} (the input of the model's first "
                    f"linear layer {name!r})")
    shown = (f"shape {tuple(xb.shape)} and dtype {xb.dtype}" if hasattr(xb, "shape")
             else type(xb).__name__)
    return f"inputs: expected {expected}, got {shown}; the forward of the first batch failed: {exc}"


def _batch_rows(x) -> int:
    if hasattr(x, "shape"):
        return int(x.shape[0])
    if isinstance(x, dict) or hasattr(x, "keys"):
        for v in x.values():
            if hasattr(v, "shape") and len(v.shape):
                return int(v.shape[0])
    if isinstance(x, (list, tuple)) and x:
        return _batch_rows(x[0])
    fail("inputs", "batches with a leading batch axis (a list of rows is read as a list of batches: "
         "pass np.asarray(rows) or a tensor)", type(x).__name__, raw=True)


def model_fingerprint(model) -> str:
    """Hash of the model's class and every parameter and buffer (names, shapes, values)."""
    import torch

    h = hashlib.sha256(f"{type(model).__module__}.{type(model).__qualname__}".encode())
    for name, t in model.state_dict().items():
        t = t.detach().cpu().contiguous()
        h.update(name.encode() + str(tuple(t.shape)).encode() + str(t.dtype).encode())
        if t.numel():
            h.update(memoryview(t.view(-1).view(torch.uint8).numpy()))  # hashed in place, no copy
    return h.hexdigest()[:32]


def _model_dtype(model):
    for p in model.parameters():
        if p.is_floating_point():
            return p.dtype
    return None


def _check_device(model, device):
    import torch

    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        fail("device", "a torch device such as 'cpu', 'cuda', 'cuda:0' or 'mps'", device)
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
            dataset_id: str | None = None, seed: int | None = None, tokenizer=None, overwrite: bool = False,
            verify: bool = True, repair: bool = False) -> Activations:
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
        ``attention_mask`` is used by the "last"/"mean"/"tokens" reductions). A list of tensors is a
        list of batches.
    layers : str, sequence of str, or callable
        Module names (``model.named_modules()``), glob patterns (``"blocks.*.mlp"``; ``*`` matches
        one dotted component, ``**`` several) or a predicate ``f(name, module) -> bool``. Unknown
        names raise :class:`~topo_mi.errors.UnknownNameError` with the closest valid names.
    reduce : {"last", "mean", "flatten", "tokens"}, None, int or callable, default "last"
        How (batch, tokens, d) or (batch, channels, ...) outputs become (samples, features); 2-D
        outputs pass through. ``"tokens"`` (or None: keep every position) gives one sample per
        real token (padding dropped through the ``attention_mask``), in (sequence, position)
        order, with ``.token_index`` = (sequence id, position); sequence labels are broadcast to
        their tokens.
    batch_size : int, default 256
    device : str, default "cpu"
        Where the inputs are sent; the model must already be there.
    store : path, optional
        Stream batches to an on-disk store (see :mod:`topo_mi.activations._store`) instead of
        RAM; the result is memory-mapped. Re-running an interrupted collection with the same
        arguments resumes it (finished batches are verified against their checksums and their
        inputs' hashes). A finished store is returned as is when it was made with the same
        arguments from the same inputs, labels and sample ids; otherwise
        :class:`~topo_mi.errors.StoreMismatchError` names what differs.
    progress : bool, default True
        A tqdm bar over batches.
    select : callable, int or str, optional
        Picks the tensor from tuple/dict/model-output outputs (default: the first tensor).
    labels, sample_ids : array, optional
        Per-sample labels and stable ids (default ids ``0..n-1``). With ``reduce="tokens"`` they may
        be given per sequence: labels are broadcast to the tokens, integer sequence ids become
        ``token_index[:, 0]`` (the token rows then get ids ``0..n_tokens-1``).
    dataset_id, seed : optional
        Recorded in ``meta``.
    tokenizer : HuggingFace tokenizer, optional
        With ``reduce="tokens"`` and dict inputs holding ``input_ids``: the token string of each
        row in ``.tokens``.
    overwrite : bool, default False
        A store made with other arguments or inputs (or in an older format) is rebuilt beside the
        old one and swapped in when complete, instead of raising.
    verify : bool, default True
        Check a reused store's checksums (one streaming read of the files).
    repair : bool, default False
        Recompute the batches of a store that fail their checksums instead of raising
        :class:`~topo_mi.errors.StoreCorruptedError`.

    Returns
    -------
    Activations
    """
    import torch

    from topo_mi import __version__

    if not isinstance(model, torch.nn.Module):
        fail("model", "a torch.nn.Module", type(model).__name__, raw=True)
    batch_size = check_int("batch_size", batch_size, min_value=1)
    reduce = check_reduce(reduce)
    tokens_mode = reduce == "tokens"
    if tokenizer is not None:
        if not tokens_mode:
            fail("tokenizer", "reduce='tokens' (token strings label per-token rows)", f"reduce={reduce!r}", raw=True)
        if not hasattr(tokenizer, "convert_ids_to_tokens"):
            fail("tokenizer", "a HuggingFace tokenizer (with convert_ids_to_tokens)", type(tokenizer).__name__,
                 raw=True)
    named = resolve_layers(model, layers)
    names = [n for n, _ in named]
    dev = _check_device(model, device)
    job = _Job(model, named, names, reduce, select, dev, _model_dtype(model), tokenizer)

    fp_model = model_fingerprint(model)
    fingerprint = hashlib.sha256("|".join([
        fp_model, ",".join(names), describe_reduce(reduce), describe_select(select), str(batch_size),
        "tokens" if tokenizer is not None else "",
    ]).encode()).hexdigest()[:32]
    meta = {
        "model": f"{type(model).__module__}.{type(model).__qualname__}", "model_fingerprint": fp_model,
        "layers": names, "reduce": describe_reduce(reduce), "select": describe_select(select),
        "batch_size": batch_size, "dataset_id": dataset_id, "seed": seed,
        "versions": {"topo_mi": __version__, "torch": torch.__version__, "numpy": np.__version__},
    }
    args = dict(batch_size=batch_size, progress=progress, labels=labels, sample_ids=sample_ids)
    if store is None:
        return _run(job, inputs, None, meta, fingerprint, **args)
    from topo_mi.activations._store import is_store

    store = Path(store)
    if is_store(store):
        return _reuse(job, inputs, store, meta, fingerprint, args, overwrite=overwrite, verify=verify,
                      repair=repair)
    try:
        return _run(job, inputs, store, meta, fingerprint, repair=repair, **args)
    except StoreMismatchError:
        if not overwrite or not (store / "collect.json").is_file():
            raise
    return _rebuild(job, inputs, store, meta, fingerprint, args)


def _rebuild(job, inputs, store: Path, meta, fingerprint, args) -> Activations:
    """Collect into a sibling folder, then swap it in (the old store stays whole until then)."""
    import os
    import shutil

    tmp = store.parent / f".{store.name}.rebuild-{os.getpid()}"
    old = store.parent / f".{store.name}.old-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        _run(job, inputs, tmp, meta, fingerprint, **args)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    os.replace(store, old)
    os.replace(tmp, store)
    shutil.rmtree(old, ignore_errors=True)
    return Activations.load(store, verify=False)


def _reuse(job, inputs, store: Path, meta, fingerprint, args, *, overwrite, verify, repair) -> Activations:
    """A finished store: the same arguments and inputs give it back (verified); anything else raises."""
    from topo_mi.activations._store import open_store, read_manifest
    from topo_mi.errors import StoreCorruptedError

    try:
        doc = read_manifest(store)
    except StoreMismatchError:  # an older format
        if overwrite:
            return _rebuild(job, inputs, store, meta, fingerprint, args)
        raise
    except StoreCorruptedError:  # a damaged manifest: nothing in it can be trusted
        if repair:
            return _rebuild(job, inputs, store, meta, fingerprint, args)
        raise
    if hasattr(inputs, "__next__"):
        fail("inputs", "a re-iterable (tensor, dict, list of batches, DataLoader) to check against the finished "
             f"store {str(store)!r}", "a one-shot iterator", raw=True)
    differs = []
    if doc.get("fingerprint") != fingerprint:
        differs.append("arguments (model weights, layers, reduce, select, batch_size or tokenizer)")
    else:
        mine = _describe_inputs(inputs, args["batch_size"], args["labels"], args["sample_ids"])
        theirs = doc.get("inputs") or {}
        if mine["n_batches"] != theirs.get("n_batches"):
            differs.append(f"inputs ({mine['n_batches']} batches in this call, {theirs.get('n_batches')} stored)")
        elif mine["batches"] != theirs.get("batches"):
            differs.append("inputs (the input batches hash differently)")
        if mine["labels"] != theirs.get("labels"):
            differs.append("labels" + (" (the store has none)" if theirs.get("labels") is None else ""))
        if mine["sample_ids"] != theirs.get("sample_ids"):
            differs.append("sample_ids")
    if differs:
        if overwrite:
            return _rebuild(job, inputs, store, meta, fingerprint, args)
        raise StoreMismatchError(
            f"store: {str(store)!r} is a finished collection made from different {'; '.join(differs)}; "
            "use another folder, or pass overwrite=True to rebuild it")
    try:
        return Activations._from_opened(open_store(store, verify=verify), store)
    except StoreCorruptedError as exc:
        if not repair:
            raise
        damage = exc.damaged
    layer_files = {e["file"] for e in doc["layers"]}
    if doc.get("bounds_are_batches") and all(f in layer_files and v is not None for f, v in damage.items()):
        _repair(job, inputs, store, doc, sorted({k for v in damage.values() for k in v}), args["batch_size"])
        return Activations._from_opened(open_store(store, verify=True), store)
    return _rebuild(job, inputs, store, meta, fingerprint, args)


def _describe_inputs(inputs, batch_size, labels, sample_ids) -> dict:
    """What a store records of its inputs: the hash of every batch, of the labels and of the ids."""
    from topo_mi.activations._store import combine_hashes, hash_batch, hash_digest

    batches, _, _ = _iter_batches(inputs, batch_size)
    hashes, ys = [], []
    for x, y in batches:
        hashes.append(hash_batch(x))
        ys.append(_labels_of(y))
    return {"n_batches": len(hashes), "batches": combine_hashes(hashes),
            "labels": _labels_hash(labels, ys), "sample_ids": hash_digest(_ids_array(sample_ids))}


def _labels_of(y):
    return None if y is None else (y.detach().cpu().numpy() if hasattr(y, "detach") else np.asarray(y))


def _labels_hash(labels, ys):
    from topo_mi.activations._store import hash_digest

    if labels is not None:
        return hash_digest(np.asarray(labels.detach().cpu().numpy() if hasattr(labels, "detach") else labels))
    if ys and all(y is not None for y in ys):
        return hash_digest(np.concatenate(ys))
    return None


def _ids_array(sample_ids):
    return None if sample_ids is None else np.asarray(sample_ids)


class _Job:
    """The per-batch forward of a collection. Each hook converts, checks and hands its layer's
    rows to ``sink(name, array)`` at once: the sink copies them where they belong (the result, a
    store file) before the forward goes on, so one copy is made, and an in-place operation later
    in the forward (``ReLU(inplace=True)``) cannot alter what was recorded."""

    def __init__(self, model, named, names, reduce, select, dev, dtype, tokenizer):
        self.model, self.named, self.names = model, named, names
        self.reduce, self.select, self.dev, self.dtype = reduce, select, dev, dtype
        self.tokenizer = tokenizer
        self.tokens_mode = reduce == "tokens"
        self.seen: set[str] = set()
        self.mask = None
        self.index = None
        self.rows = None
        self.k = self.row = 0
        self.sink = None

    def record(self, name, output):
        import torch

        if name in self.seen:
            raise InvalidParameterError(
                f"layers: module {name!r} ran more than once in one forward pass (a shared module); "
                "collect from modules that run once, or pass select/reduce on a wrapper module")
        self.seen.add(name)
        t = first_tensor(output, self.select, layer=name).detach()
        if self.tokens_mode:
            out, index = token_rows(t, self.mask, layer=name)
            if self.index is None:
                self.index = index.to("cpu").numpy()
                self.rows = self.index.shape[0]
        else:
            out = reduce_output(t, self.reduce, layer=name, attention_mask=self.mask)
        fresh = out.untyped_storage().data_ptr() != t.untyped_storage().data_ptr()
        if out.dtype != torch.float32 or out.device.type != "cpu":
            out, fresh = out.to("cpu", torch.float32), True
        arr = out.numpy()
        if arr.ndim != 2 or arr.shape[0] != self.rows:
            what = "the number of real tokens" if self.tokens_mode else "the batch size"
            raise InvalidParameterError(
                f"layer {name!r}: expected {self.rows} rows ({what} of batch {self.k}), got output of shape "
                f"{arr.shape}; its first axis is not the batch axis" + (
                    " (or its token axis differs from the other layers')" if self.tokens_mode else ""))
        # one cheap reduction (torch's: vectorised and threaded, 8x numpy's here); the exact count
        # only when something is off (a NaN or an inf makes the sum non-finite; so can an overflow)
        if not math.isfinite(float(out.sum())) and not np.isfinite(arr).all():
            finite = np.isfinite(arr)
            bad = int((~finite).sum())
            bad_rows = np.flatnonzero(~finite.all(axis=1)) + self.row
            shown = ", ".join(map(str, bad_rows[:10])) + (", ..." if bad_rows.size > 10 else "")
            raise NonFiniteError(
                f"layer {name!r}: {bad} non-finite activation values (NaN/inf) in batch {self.k}, "
                f"in {bad_rows.size} row(s): {shown}")
        self.sink(name, arr, fresh)

    @contextlib.contextmanager
    def hooks(self):
        import torch

        with _eval_mode(self.model), torch.no_grad(), _recording(self.named, self.record):
            yield

    def forward(self, k: int, x, row: int, sink):
        """Run batch ``k``, each layer's rows going to ``sink``; returns (token index in the batch
        (n, 2) or None, rows)."""
        self.seen.clear()
        self.index = None
        self.k, self.row, self.sink = k, row, sink
        self.rows = None if self.tokens_mode else _batch_rows(x)
        xb = _to_device(x, self.dev, self.dtype)
        self.mask = xb.get("attention_mask") if isinstance(xb, dict) else None
        try:
            if isinstance(xb, dict):
                self.model(**xb)
            else:
                self.model(xb)
        except RuntimeError as exc:
            if k == 0 and _looks_like_input_error(exc):
                raise InvalidParameterError(_input_error_message(self.model, xb, exc)) from exc
            raise
        finally:
            self.sink = self.mask = None
        missing = [n for n in self.names if n not in self.seen]
        if missing:
            raise InvalidParameterError(
                f"layers: {', '.join(map(repr, missing))} did not run in the forward pass of batch {k}")
        return self.index, self.rows

    def token_strings(self, x, index):
        if "input_ids" not in getattr(x, "keys", lambda: ())():
            fail("tokenizer", "dict batches holding 'input_ids' to read the tokens from", type(x).__name__, raw=True)
        ids = x["input_ids"]
        ids = ids.detach().cpu().numpy() if hasattr(ids, "detach") else np.asarray(ids)
        return np.array(self.tokenizer.convert_ids_to_tokens(ids[index[:, 0], index[:, 1]].tolist()), dtype=str)


def _known_rows(inputs, n_rows, tokens_mode):
    """Rows of the result when known before running: the sample count, or the real tokens (from
    the attention mask of a dict, or of every batch of a list of dict batches), so that the rows
    go straight into their result instead of being concatenated at the end."""
    if not tokens_mode:
        return n_rows
    if n_rows is not None:
        return _real_tokens(inputs)
    if not isinstance(inputs, (list, tuple)):
        return None
    counts = [_real_tokens(item[0] if isinstance(item, (list, tuple)) and item else item) for item in inputs]
    return None if any(c is None for c in counts) else sum(counts)


def _real_tokens(x) -> int | None:
    """The number of ones in a dict batch's ``attention_mask`` (None without one)."""
    mask = x.get("attention_mask") if hasattr(x, "get") else None
    if mask is None:
        return None
    return int(mask.sum() if hasattr(mask, "sum") else np.asarray(mask).sum())


class _MemorySink:
    """Rows into preallocated result arrays (size known) or a list of owned chunks."""

    def __init__(self, names, total):
        self.total = total
        self.out: dict[str, list[np.ndarray]] = {n: [] for n in names}
        self.row = 0

    def __call__(self, name, arr, fresh):
        chunks = self.out[name]
        if chunks and chunks[0].shape[1] != arr.shape[1]:
            _dim_changed(name, chunks[0].shape[1], arr.shape[1])
        if self.total is not None:
            if not chunks:
                chunks.append(_empty_prefaulted((self.total, arr.shape[1])))
            if self.row + arr.shape[0] > self.total:
                raise InvalidParameterError(
                    f"inputs: more rows than the {self.total} expected (from the attention mask) at layer {name!r}")
            dst = chunks[0][self.row:self.row + arr.shape[0]]
            if _populated(chunks[0]):
                # into populated pages torch's copy (on the intra-op threads) beats numpy's (on one);
                # into pages that fault in on first touch it does not: the threads' faults contend
                # (benchmarks/bench_collect.py --cases variants)
                import torch

                torch.from_numpy(dst).copy_(torch.from_numpy(arr))
            else:
                dst[...] = arr
        else:
            chunks.append(arr if fresh else arr.copy())

    def result(self, names):
        return {n: (np.concatenate(self.out[n]) if len(self.out[n]) > 1 else self.out[n][0]) for n in names}


_PREFAULT_MIN_BYTES = 64 << 20  # smaller results: np.empty (the allocator's pages are as good)
_MADV_POPULATE_WRITE = 23  # Linux >= 5.14; older kernels refuse it (EINVAL) and pages fault in on use


def _populated(a: np.ndarray) -> bool:
    """Whether ``a`` is a mapping of :func:`_empty_prefaulted` (its pages mapped up front), not the
    ``np.empty`` it falls back to."""
    import mmap

    base = a.base
    while isinstance(base, np.ndarray):  # views (the reshape) down to the buffer
        base = base.base
    return isinstance(base, memoryview) and isinstance(base.obj, mmap.mmap)


def _empty_prefaulted(shape) -> np.ndarray:
    """``np.empty(shape, float32)`` whose pages are mapped up front, in 2 MiB pages where the kernel
    allows, when large.

    The rows are copied in once per batch; letting each 4 KiB page fault in on first touch costs
    more than the copy itself (measured: ~2 us a page, 0.8 s for the 400 MB of a 4 x 512 MLP on
    50,000 inputs, against 0.17 s populated up front). The mapping asks for transparent huge pages
    (``MADV_HUGEPAGE``: one fault per 2 MiB) and is then populated for writing
    (``MADV_POPULATE_WRITE``); where either is refused the mapping is populated at creation
    (``MAP_POPULATE``, 4 KiB pages). Measured per 100 MB: 0.026 s to populate and fill against
    0.041 s with ``MAP_POPULATE`` alone. The kernel zeroes the pages as it maps them; that is split
    across the cores (``benchmarks/bench_collect.py --cases variants``).
    """
    import mmap

    nbytes = int(np.prod(shape)) * 4
    populate = getattr(mmap, "MAP_POPULATE", None)
    if nbytes < _PREFAULT_MIN_BYTES or populate is None or not hasattr(mmap, "MAP_ANONYMOUS"):
        return np.empty(shape, dtype=np.float32)
    base = mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS
    buf = None
    if hasattr(mmap, "MADV_HUGEPAGE"):
        try:
            buf = mmap.mmap(-1, nbytes, flags=base)
            buf.madvise(mmap.MADV_HUGEPAGE)
        except OSError:  # no huge pages here: the 4 KiB route below
            if buf is not None:
                buf.close()
            buf = None
        if buf is not None:
            _populate(buf, nbytes)
    try:
        if buf is None:
            buf = mmap.mmap(-1, nbytes, flags=base | populate)
    except OSError:  # pragma: no cover - no overcommit room: the plain allocation says so
        return np.empty(shape, dtype=np.float32)
    return np.frombuffer(buf, dtype=np.float32).reshape(shape)


def _populate(buf, nbytes: int) -> None:
    """``MADV_POPULATE_WRITE`` over ``buf``, in one slice (2 MiB aligned) per core, each on its own
    thread: libc's ``madvise`` through ctypes runs without the GIL (``mmap.madvise`` holds it).
    Where the kernel refuses (older than 5.14), the pages fault in as the rows arrive."""
    import ctypes
    import os
    import threading

    from topo_mi._io import libc_function

    madvise = libc_function("madvise", (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int))
    if madvise is None:  # pragma: no cover - no libc symbol: one call, holding the GIL
        try:
            buf.madvise(_MADV_POPULATE_WRITE)
        except OSError:
            pass
        return
    addr = ctypes.addressof(ctypes.c_char.from_buffer(buf))
    step = -(-nbytes // max(1, min(os.cpu_count() or 1, 8)))
    step = -(-step // (2 << 20)) * (2 << 20)
    parts = [(addr + o, min(step, nbytes - o), _MADV_POPULATE_WRITE) for o in range(0, nbytes, step)]
    threads = [threading.Thread(target=madvise, args=a, daemon=True) for a in parts[1:]]
    for t in threads:
        t.start()
    madvise(*parts[0])
    for t in threads:
        t.join()


def _repair(job, inputs, store: Path, doc: dict, damaged: list[int], batch_size: int) -> None:
    from topo_mi.activations._store import rewrite_regions

    todo = set(damaged)
    batches, _, _ = _iter_batches(inputs, batch_size)
    with job.hooks():
        for k, (x, _y) in enumerate(batches):
            if k in todo:
                arrays: dict[str, np.ndarray] = {}
                job.forward(k, x, doc["bounds"][k], lambda name, arr, fresh: arrays.__setitem__(name, arr.copy()))
                rewrite_regions(store, doc, k, arrays)


def _run(job, inputs, store, meta, fingerprint, *, batch_size, progress, labels, sample_ids,
         repair=False) -> Activations:
    from topo_mi.activations._store import StoreWriter, combine_hashes, hash_batch, hash_digest, open_store

    batches, n_batches, n_rows = _iter_batches(inputs, batch_size)
    total = _known_rows(inputs, n_rows, job.tokens_mode)
    writer = None if store is None else StoreWriter(store, fingerprint, job.names, repair=repair,
                                                        expected_rows=total)
    mem = _MemorySink(job.names, total) if writer is None else None
    ys: list[Any] = []
    index_chunks: list[np.ndarray] = []
    token_chunks: list[np.ndarray] = []
    hashes: list[str] = []
    row = seq = 0
    k = -1
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=n_batches, desc="collect", unit="batch", leave=False, disable=None)
    try:
        with job.hooks():
            for k, (x, y) in enumerate(batches):
                seqs = _batch_rows(x)
                ylab = _labels_of(y)
                if ylab is not None and ylab.shape[:1] != (seqs,):
                    raise InvalidParameterError(
                        f"inputs: labels of batch {k} have shape {ylab.shape}, expected {seqs} rows")
                ys.append(ylab)
                index = None
                if writer is not None:
                    h = hash_batch(x)
                    hashes.append(h)
                    if k in writer.done:
                        e = writer.done[k]
                        if e["input_hash"] != h:
                            raise StoreMismatchError(
                                f"store: input batch {k} differs from the one stored by the interrupted "
                                "collection (shuffled or changed inputs); cannot resume")
                        if job.tokens_mode:
                            index = writer.read_extras(k)["index"]
                        rows = e["rows"]
                    else:
                        writer.begin_batch(k)
                        index, rows = job.forward(k, x, row, writer.write_layer)
                        writer.commit_batch(k, seqs=seqs, input_hash=h,
                                            extras=None if index is None else {"index": index})
                else:
                    mem.row = row
                    index, rows = job.forward(k, x, row, mem)
                if index is not None:
                    index_chunks.append(index + np.array([seq, 0]))
                    if job.tokenizer is not None:
                        token_chunks.append(job.token_strings(x, index))
                row += rows
                seq += seqs
                if bar is not None:
                    bar.update(1)
    finally:
        if writer is not None:
            writer.close()
        if bar is not None:
            bar.close()
    if row == 0:
        fail("inputs", "at least one sample", "no batches" if k < 0 else "no rows", raw=True)
    token_index = np.concatenate(index_chunks).astype(np.int64) if job.tokens_mode else None
    tokens = np.concatenate(token_chunks) if token_chunks else None
    final_labels, final_ids, token_index = _per_row(labels, sample_ids, ys, row, seq, token_index)
    meta = {**meta, "n_samples": row}
    if job.tokens_mode:
        meta["n_sequences"] = seq
    if writer is not None:
        inputs_doc = {"n_batches": k + 1, "batches": combine_hashes(hashes), "labels": _labels_hash(labels, ys),
                      "sample_ids": hash_digest(_ids_array(sample_ids))}
        writer.finalize(k + 1, extras={"sample_ids": final_ids, "labels": final_labels,
                                       "token_index": token_index, "tokens": tokens},
                        meta=meta, inputs=inputs_doc)
        return Activations._from_opened(open_store(store, verify=False), store)
    if total is not None and total != row:
        raise InvalidParameterError(f"inputs: expected {total} rows from the attention mask, got {row}")
    return Activations(mem.result(job.names), labels=final_labels, sample_ids=final_ids, meta=meta,
                       check_finite=False, token_index=token_index, tokens=tokens)


def _dim_changed(name, before, after):
    raise InvalidParameterError(
        f"layer {name!r}: feature dimension changes across batches ({before} then {after}); "
        "use a fixed sequence length or reduce='last'/'mean'/'tokens'")


def _per_row(labels, sample_ids, ys, n_rows: int, n_seq: int, token_index):
    """Labels and ids per row; in token mode per-sequence ones are broadcast / moved to token_index."""
    if labels is None and ys and all(y is not None for y in ys):
        labels = np.concatenate(ys)
    elif labels is not None:
        labels = np.asarray(labels.detach().cpu().numpy() if hasattr(labels, "detach") else labels)
    ids = _ids_array(sample_ids)
    if token_index is not None:
        seq_pos = token_index[:, 0]
        if labels is not None and labels.shape[:1] == (n_seq,) and n_seq != n_rows:
            labels = labels[seq_pos]
        if ids is not None and ids.shape == (n_seq,) and n_seq != n_rows:
            if ids.dtype.kind not in "iu":
                fail("sample_ids", "integer sequence ids with reduce='tokens' (they become token_index[:, 0])",
                     f"dtype {ids.dtype}", raw=True)
            token_index = np.stack([ids.astype(np.int64)[seq_pos], token_index[:, 1]], axis=1)
            ids = None
    if labels is not None and labels.shape[:1] != (n_rows,):
        expected = f"{n_rows} rows" + (f" (tokens) or {n_seq} (sequences)" if token_index is not None else "")
        fail("labels", expected, f"shape {labels.shape}", raw=True)
    if ids is None:
        ids = np.arange(n_rows, dtype=np.int64)
    elif ids.shape != (n_rows,):
        expected = f"{n_rows} ids (one per sample)" + (f" or {n_seq} (one per sequence)" if token_index is not None
                                                       else "")
        fail("sample_ids", expected, f"shape {ids.shape}", raw=True)
    return labels, ids, token_index


def collect_text(model, tokenizer, texts, *, layers, reduce: Any = "tokens", batch_size: int = 32,
                 max_length: int | None = 128, labels=None, sample_ids=None, **kwargs) -> Activations:
    """Tokenise ``texts`` batch by batch (padded to each batch's longest text) and :func:`collect`.

    With the default ``reduce="tokens"`` every real token of every text is one sample, with
    ``.token_index`` = (text id, position) and the token strings in ``.tokens``; per-text
    ``labels`` are broadcast to the tokens and integer per-text ``sample_ids`` become the text ids.
    Texts longer than ``max_length`` tokens are truncated (None: no truncation).

    Other keyword arguments (``store``, ``device``, ``progress``, ``select``, ...) go to :func:`collect`.
    """
    if isinstance(texts, (str, bytes)):
        fail("texts", "a sequence of strings", "a single string", raw=True)
    texts = [t for t in texts]
    if not texts or not all(isinstance(t, str) for t in texts):
        fail("texts", "a non-empty sequence of strings", f"{len(texts)} items" if texts else "none", raw=True)
    batch_size = check_int("batch_size", batch_size, min_value=1)
    reduce = check_reduce(reduce)
    trunc = {"truncation": True, "max_length": int(max_length)} if max_length is not None else {}
    batches = [dict(tokenizer(texts[i:i + batch_size], padding=True, return_tensors="pt", **trunc))
               for i in range(0, len(texts), batch_size)]
    tok = tokenizer if reduce == "tokens" else None
    return collect(model, batches, layers=layers, reduce=reduce, batch_size=batch_size, labels=labels,
                   sample_ids=sample_ids, tokenizer=tok, **kwargs)
