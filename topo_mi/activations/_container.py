"""The :class:`Activations` container."""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np

from topo_mi._validation import as_array, check_choice, check_finite, fail, unknown_name
from topo_mi.errors import InvalidParameterError


def _strictly_increasing(ids: np.ndarray) -> bool:
    """Sorted, distinct numeric ids (the default ``0..n-1``, or ids read back in order): unique
    without sorting a copy (one comparison pass instead of ``np.unique``'s sort)."""
    return ids.dtype.kind in "iu" and bool(np.all(ids[1:] > ids[:-1]))


class Activations(Mapping):
    """Activations of several layers over one shared sample axis.

    A read-only mapping ``layer name -> ndarray (n_samples, n_features)`` (float32; in memory or
    memory-mapped from an on-disk store; the arrays are not writeable, :meth:`copy` gives writeable
    ones), with ``labels`` (optional), stable ``sample_ids`` (default ``0..n-1``; two models'
    activations are aligned by id, never silently by position) and ``meta`` (model and dataset ids,
    reduction, seed, versions). Per-token activations (``reduce="tokens"``) also carry
    ``token_index`` (n, 2) = (sequence id, position) and, when a tokenizer was given, ``tokens``.
    It holds no reference to the model it came from.

    Parameters
    ----------
    data : mapping of str to array of shape (n_samples, n_features)
    labels : array of shape (n_samples,), optional
    sample_ids : array of shape (n_samples,), optional
        Unique ids (ints or strings).
    meta : dict, optional
    check_finite : bool, default True
        Raise on NaN/inf, naming the layer and the count.
    token_index : int array of shape (n_samples, 2), optional
        (sequence id, token position) of each row.
    tokens : str array of shape (n_samples,), optional
        The token string of each row.
    """

    def __init__(self, data: Mapping[str, Any], *, labels=None, sample_ids=None, meta: dict | None = None,
                 check_finite: bool = True, token_index=None, tokens=None, _path: Path | None = None):
        if not isinstance(data, Mapping) or len(data) == 0:
            fail("data", "a non-empty mapping of layer name -> (n_samples, n_features) array", data)
        layers: dict[str, np.ndarray] = {}
        n = None
        for name, arr in data.items():
            if not isinstance(name, str):
                fail("data", "string layer names", name)
            arr = as_array(arr, f"data[{name!r}]")
            if arr.ndim != 2:
                fail(f"data[{name!r}]", "a 2-D array (n_samples, n_features); reduce token/spatial axes first",
                     f"shape {arr.shape}", raw=True)
            if arr.dtype != np.float32:
                arr = arr.astype(np.float32)
            if n is None:
                n = arr.shape[0]
            elif arr.shape[0] != n:
                fail(f"data[{name!r}]", f"{n} rows like the other layers", f"{arr.shape[0]} rows", raw=True)
            if check_finite and not isinstance(arr, np.memmap):
                _check_layer_finite(name, arr)
            layers[name] = _readonly(arr)
        if n == 0:
            fail("data", "at least one sample", "0 rows", raw=True)
        self._data = layers
        self._n = int(n)
        if sample_ids is None:
            sample_ids = np.arange(self._n, dtype=np.int64)
        sample_ids = np.asarray(sample_ids)
        if sample_ids.shape != (self._n,):
            fail("sample_ids", f"an array of shape ({self._n},)", f"shape {sample_ids.shape}", raw=True)
        if not _strictly_increasing(sample_ids):
            n_unique = len(np.unique(sample_ids))
            if n_unique != self._n:
                fail("sample_ids", "unique ids", f"{self._n - n_unique} duplicates", raw=True)
        self._ids = _readonly(sample_ids)
        if labels is not None:
            labels = as_array(labels, "labels")
            if labels.shape[:1] != (self._n,):
                fail("labels", f"an array with {self._n} rows", f"shape {labels.shape}", raw=True)
            labels = _readonly(labels)
        self._labels = labels
        if token_index is not None:
            token_index = np.asarray(token_index)
            if token_index.shape != (self._n, 2) or token_index.dtype.kind not in "iu":
                fail("token_index", f"an integer array of shape ({self._n}, 2) (sequence id, position)",
                     f"{token_index.dtype} of shape {token_index.shape}", raw=True)
            token_index = _readonly(token_index.astype(np.int64, copy=False))
        self._token_index = token_index
        if tokens is not None:
            tokens = np.asarray(tokens)
            if tokens.shape != (self._n,):
                fail("tokens", f"one token string per row, shape ({self._n},)", f"shape {tokens.shape}", raw=True)
            tokens = _readonly(tokens)
        self._tokens = tokens
        self.meta: dict = dict(meta or {})
        self._path = _path

    # -- mapping -------------------------------------------------------------------------------
    def __getitem__(self, name: str) -> np.ndarray:
        try:
            return self._data[name]
        except KeyError:
            raise unknown_name("layer", name, self._data) from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    # -- properties ----------------------------------------------------------------------------
    @property
    def layers(self) -> list[str]:
        return list(self._data)

    @property
    def n_samples(self) -> int:
        return self._n

    @property
    def labels(self):
        return self._labels

    @property
    def sample_ids(self) -> np.ndarray:
        return self._ids

    @property
    def token_index(self) -> np.ndarray | None:
        """(sequence id, position) of each row for per-token activations, else None."""
        return self._token_index

    @property
    def tokens(self) -> np.ndarray:
        """The token string of each row (``collect(..., tokenizer=...)`` or :func:`collect_text`)."""
        if self._tokens is None:
            raise InvalidParameterError(
                "tokens: expected activations collected with a tokenizer (collect(..., reduce='tokens', "
                "tokenizer=tok) or collect_text), got none" + ("" if self._token_index is not None else
                                                               " and no per-token rows"))
        return self._tokens

    @property
    def has_tokens(self) -> bool:
        return self._tokens is not None

    def _extras(self, idx=None) -> dict:
        """labels, sample_ids, token_index and tokens (restricted to rows ``idx``)."""
        pick = (lambda a: a) if idx is None else (lambda a: None if a is None else a[idx])
        return {"labels": pick(self._labels), "sample_ids": pick(self._ids),
                "token_index": pick(self._token_index), "tokens": pick(self._tokens)}

    @property
    def path(self) -> Path | None:
        """The store folder when the arrays are memory-mapped from disk."""
        return self._path

    @property
    def shapes(self) -> dict[str, tuple[int, int]]:
        return {k: tuple(v.shape) for k, v in self._data.items()}

    def __repr__(self) -> str:
        parts = [f"{k} ({v.shape[1]})" for k, v in list(self._data.items())[:8]]
        if len(self._data) > 8:
            parts.append(f"... {len(self._data) - 8} more")
        where = f", store={str(self._path)!r}" if self._path else ""
        labels = "yes" if self._labels is not None else "no"
        return (f"Activations(n_samples={self._n}, layers=[{', '.join(parts)}], labels={labels}{where})")

    # -- selection -----------------------------------------------------------------------------
    def select(self, layers: Iterable[str]) -> "Activations":
        """A new Activations with only ``layers`` (in the given order)."""
        layers = [layers] if isinstance(layers, str) else list(layers)
        return Activations({name: self[name] for name in layers}, **self._extras(), meta=self.meta,
                           check_finite=False, _path=self._path)

    def take(self, indices) -> "Activations":
        """A new in-memory Activations with the given rows (positions), ids and labels kept."""
        idx = np.asarray(indices)
        if idx.dtype == bool:
            idx = np.flatnonzero(idx)
        if idx.ndim != 1 or (idx.size and (idx.min() < -self._n or idx.max() >= self._n)):
            fail("indices", f"1-D positions in [0, {self._n})", idx)
        return Activations({k: np.asarray(v[idx]) for k, v in self._data.items()}, **self._extras(idx),
                           meta=self.meta, check_finite=False)

    def subsample(self, n: int, *, method: str = "random", seed=None, layer: str | None = None) -> "Activations":
        """``n`` samples drawn at random or by max–min (farthest-point) on ``layer``.

        Max–min uses ``layer`` (default: the first layer) and records its cover radius in
        ``meta["subsample"]``; random sampling keeps the original order of the rows.
        """
        from topo_mi._sampling import maxmin_landmarks, random_subsample

        check_choice("method", method, ("random", "maxmin"))
        info: dict[str, Any] = {"n": int(n), "method": method, "seed": seed}
        if method == "random":
            idx = random_subsample(self._n, n, seed=seed)
        else:
            layer = layer or self.layers[0]
            idx, radius = maxmin_landmarks(np.asarray(self[layer]), n, seed=seed)
            idx = np.sort(idx)
            info.update(layer=layer, cover_radius=radius)
        out = self.take(idx)
        out.meta = {**self.meta, "subsample": info}
        return out

    def align(self, other: "Activations") -> tuple["Activations", "Activations", dict]:
        """Restrict both to their common ``sample_ids`` in this object's order.

        Returns the two aligned objects and a report of what was dropped from each.
        """
        common, ia, ib = np.intersect1d(self._ids, other._ids, assume_unique=True, return_indices=True)
        order = np.argsort(ia)
        ia, ib = ia[order], ib[order]
        report = {"n_common": int(len(common)), "dropped_from_first": int(self._n - len(ia)),
                  "dropped_from_second": int(other._n - len(ib))}
        return self.take(ia), other.take(ib), report

    # -- streaming -----------------------------------------------------------------------------
    def iter_batches(self, batch_size: int, *, layers=None, shuffle: bool = True, seed=0, buffer: int = 65536,
                     drop_last: bool = False, return_index: bool = False):
        """Mini-batches of rows, shuffled in bounded memory (what dictionary/SAE training reads).

        Yields ``{layer: float32 array (b, d)}`` (or ``(row_positions, {layer: ...})`` with
        ``return_index=True``; positions index this object's rows, ``sample_ids[pos]`` gives ids).
        Every row appears exactly once per epoch and the order depends only on ``seed``: pass
        ``seed=epoch`` for a new order each epoch.

        Parameters
        ----------
        batch_size : int
        layers : str or list of str, optional
            Default: every layer (the same rows of each).
        shuffle : bool, default True
            False: rows in stored order, as read-only views (no copy; a memmap reads them lazily).
        seed : int, default 0
        buffer : int, default 65536
            Rows held at a time. The rows are cut into ``buffer // 16``-row blocks whose order is
            permuted; each window of ``buffer`` rows (16 blocks, each one sequential read from a
            memory-mapped store) is permuted before batching. ``buffer >= n_samples`` gives a
            uniform random permutation of all rows. Memory: one window of every requested layer
            plus one batch, never the whole store.
        drop_last : bool, default False
            Drop the final batch when it has fewer than ``batch_size`` rows.
        """
        from topo_mi.activations._stream import iter_batches

        return iter_batches(self, batch_size, layers=layers, shuffle=shuffle, seed=seed, buffer=buffer,
                            drop_last=drop_last, return_index=return_index)

    # -- persistence ---------------------------------------------------------------------------
    def save(self, path, *, overwrite: bool = False) -> Path:
        """Write an on-disk store (one ``.npy`` per layer + a JSON manifest), atomically per file."""
        from topo_mi.activations._store import write_store

        return write_store(path, self._data, **self._extras(), meta=self.meta, overwrite=overwrite)

    @classmethod
    def load(cls, path, *, mmap: bool = True, verify: bool = True) -> "Activations":
        """Open a store written by :meth:`save` or by ``collect(..., store=path)``, lazily by default.

        ``verify`` (default True) checks every byte against the store's CRC-32 checksums first (one
        streaming read, ~4 GB/s) and raises :class:`~topo_mi.errors.StoreCorruptedError` naming the
        damaged files; ``verify=False`` skips it for a trusted store.
        """
        from topo_mi.activations._store import open_store

        return cls._from_opened(open_store(path, mmap=mmap, verify=verify), path if mmap else None)

    @classmethod
    def _from_opened(cls, st: dict, path) -> "Activations":
        return cls(st["data"], labels=st["labels"], sample_ids=st["sample_ids"], meta=st["meta"],
                   token_index=st["token_index"], tokens=st["tokens"], check_finite=path is None,
                   _path=None if path is None else Path(path))

    def to_memory(self) -> "Activations":
        """A copy with every layer loaded into RAM (read-only like every Activations)."""
        return Activations({k: np.array(v) for k, v in self._data.items()}, **self._extras(), meta=self.meta,
                           check_finite=False)

    def copy(self) -> "Activations":
        """A copy in RAM whose arrays are writeable (the original is untouched)."""
        fresh = {k: None if v is None else np.array(v) for k, v in self._extras().items()}
        out = Activations({k: np.array(v) for k, v in self._data.items()}, **fresh, meta=dict(self.meta),
                          check_finite=False)

        def owned(a):  # the fresh copy behind the read-only view: only ``out`` refers to it
            return a if a is None or a.flags.writeable else a.base

        out._data = {k: owned(v) for k, v in out._data.items()}
        out._labels, out._ids = owned(out._labels), owned(out._ids)
        out._token_index, out._tokens = owned(out._token_index), owned(out._tokens)
        return out

    # -- adapters ------------------------------------------------------------------------------
    @classmethod
    def from_mapping(cls, mapping: Any, *, reduce: Any = "last", attention_mask=None, labels=None,
                     sample_ids=None, meta: dict | None = None, prefix: str | None = None,
                     names: list[str] | None = None) -> "Activations":
        """Build from any mapping of tensors/arrays, a TransformerLens cache or HuggingFace outputs.

        Accepts

        - ``Mapping[str, Tensor | ndarray]``;
        - a TransformerLens ``ActivationCache`` (its ``cache_dict`` is used); entries that are
          aliases of an earlier entry (same storage, shape and strides) are dropped and recorded
          in ``meta["aliases"]``;
        - a HuggingFace model output with ``hidden_states`` (``output_hidden_states=True``), or the
          tuple of hidden states itself: layers are named as :func:`topo_mi.collect` names the
          modules that produce them in BERT-style encoders (MiniLM): ``embeddings``,
          ``encoder.layer.0`` ... (``names=`` gives other names, ``prefix="h."`` gives ``h.0``, ...).

        Outputs with token axes are reduced like :func:`topo_mi.collect` (``reduce``, including
        ``"tokens"``). HuggingFace hidden states of a padded batch hold padding positions, so
        ``"last"``, ``"mean"`` and ``"tokens"`` on them need the tokenizer's ``attention_mask``
        (``attention_mask=False`` says the batch has no padding).
        """
        from topo_mi.activations._reduce import check_reduce, describe_reduce, reduce_output, token_rows

        reduce = check_reduce(reduce)
        hf = False
        if hasattr(mapping, "cache_dict"):
            items = list(mapping.cache_dict.items())
        elif not isinstance(mapping, Mapping) and getattr(mapping, "hidden_states", None) is not None:
            items, hf = list(mapping.hidden_states), True
        elif isinstance(mapping, Mapping) and "hidden_states" in mapping and not all(
                hasattr(v, "shape") for v in mapping.values()):
            items, hf = list(mapping["hidden_states"]), True
        elif isinstance(mapping, Mapping):
            items = list(mapping.items())
        elif isinstance(mapping, (list, tuple)):
            items, hf = list(mapping), True
        else:
            fail("mapping", "a mapping of tensors, a TransformerLens ActivationCache or HuggingFace outputs",
                 type(mapping).__name__, raw=True)
        if hf:
            if names is not None:
                if len(names) != len(items):
                    fail("names", f"{len(items)} layer names (one per hidden state)", f"{len(names)}", raw=True)
                layer_names = [str(n) for n in names]
            elif prefix is not None:
                layer_names = [f"{prefix}{i}" for i in range(len(items))]
            else:
                layer_names = ["embeddings"] + [f"encoder.layer.{i}" for i in range(len(items) - 1)]
            items = list(zip(layer_names, items))
            if attention_mask is None and reduce in ("last", "mean", "tokens") and any(
                    len(getattr(t, "shape", ())) == 3 for _, t in items):
                raise InvalidParameterError(
                    f"attention_mask: expected the tokenizer's attention_mask for reduce={reduce!r} on HuggingFace "
                    "hidden states (the padding positions of a padded batch would be read as tokens), got None; "
                    "pass attention_mask=batch['attention_mask'], or attention_mask=False when nothing is padded")
        mask = None if attention_mask is None or attention_mask is False else _as_tensor(attention_mask)
        data: dict[str, np.ndarray] = {}
        aliases: dict[str, str] = {}
        seen: dict[tuple, str] = {}
        token_index = None
        import torch

        for name, value in items:
            name = str(name)
            if hasattr(value, "data_ptr"):
                key = (value.data_ptr(), tuple(value.shape), tuple(value.stride()), str(value.dtype))
                if value.numel() and key in seen:
                    aliases[name] = seen[key]
                    continue
                seen[key] = name
                t = value.detach()
            else:
                t = torch.from_numpy(np.ascontiguousarray(as_array(value, name)))
            if reduce == "tokens":
                t, index = token_rows(t, mask, layer=name)
                index = index.numpy()
                if token_index is None:
                    token_index = index
                elif not np.array_equal(index, token_index):
                    fail(f"mapping[{name!r}]", f"the token positions of the other layers ({len(token_index)} rows)",
                         f"{len(index)} rows", raw=True)
            elif t.ndim != 2:
                t = reduce_output(t, reduce, layer=name, attention_mask=mask)
            data[name] = t.to("cpu").float().numpy()
        meta = {**(meta or {}), "reduce": describe_reduce(reduce), "source": type(mapping).__name__}
        if aliases:
            meta["aliases"] = aliases
        if token_index is not None:  # per-sequence labels / integer ids, as collect takes them
            from topo_mi.activations._collect import _per_row

            n_seq = next(int(v.shape[0]) for _, v in items if len(getattr(v, "shape", ())) == 3)
            labels, sample_ids, token_index = _per_row(labels, sample_ids, [], len(token_index), n_seq, token_index)
        return cls(data, labels=labels, sample_ids=sample_ids, meta=meta, token_index=token_index)


def _readonly(arr: np.ndarray) -> np.ndarray:
    """A non-writeable view (the caller's own array keeps its flags)."""
    if not arr.flags.writeable:
        return arr
    view = arr.view()
    view.flags.writeable = False
    return view


def _as_tensor(mask):
    if mask is None:
        return None
    if hasattr(mask, "detach"):
        return mask
    import torch

    return torch.as_tensor(np.asarray(mask))


def _check_layer_finite(name: str, arr: np.ndarray) -> None:
    try:
        check_finite(f"layer {name!r}", arr, what="activations")
    except InvalidParameterError:
        raise
