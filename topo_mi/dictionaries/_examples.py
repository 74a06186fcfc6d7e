"""Max-activating examples of dictionary latents (with token strings and context for text)."""
from __future__ import annotations

import numpy as np

from topo_mi._results import Result, result_dataclass
from topo_mi._validation import check_int, fail


@result_dataclass
class TopExamples(Result):
    """The ``n`` samples on which each latent fires most.

    ``values[i, j]``/``rows[i, j]``: the j-th largest activation of ``latents[i]`` and its row in the
    evaluated data (``-1`` and NaN pad latents that fired on fewer than ``n`` rows); ``sample_ids``:
    the rows' ids; ``contexts[i][j]``: for token-level text activations, the preceding ``context``
    tokens and the token itself in ``[[ ]]``; ``histograms``: per latent the counts of its non-zero
    activations over ``bin_edges[i]``.
    """

    latents: np.ndarray
    values: np.ndarray
    rows: np.ndarray
    sample_ids: np.ndarray
    contexts: list
    histograms: np.ndarray
    bin_edges: np.ndarray

    _plot_function = "topo_mi.plotting.dictionaries:plot_top_examples"

    def summary(self) -> dict:
        return {"n_latents": int(len(self.latents)), "n_per_latent": int(self.values.shape[1]),
                "max_activation": float(np.nanmax(self.values)) if np.isfinite(self.values).any() else float("nan")}

    def table(self, latent: int) -> list[tuple]:
        """``[(value, row, sample_id, context)]`` of one latent (by latent id)."""
        where = np.flatnonzero(self.latents == latent)
        if not len(where):
            fail("latent", f"one of {self.latents.tolist()[:12]}", latent)
        i = int(where[0])
        return [(float(v), int(r), self.sample_ids[i, j].item(), self.contexts[i][j] if self.contexts else None)
                for j, (v, r) in enumerate(zip(self.values[i], self.rows[i])) if r >= 0]


def token_attr(data, name: str):
    """``data.tokens`` / ``data.token_index`` when the activations carry them, else None."""
    try:
        return getattr(data, name, None)
    except (ValueError, AttributeError):  # the property explains itself when absent; here it is optional
        return None


def _context(tokens, token_index, row: int, context: int, tokenizer) -> str:
    """The token of ``row`` in ``[[ ]]`` after up to ``context`` preceding tokens of its sequence.

    ``tokens`` is either per row (1-D, as ``collect_text`` stores them: rows of one sequence are
    consecutive) or per sequence (2-D ``(n_sequences, T)``, indexed by ``token_index``).
    """
    seq, pos = (int(v) for v in token_index[row])

    def s(t):
        if tokenizer is not None and not isinstance(t, str):
            return tokenizer.convert_ids_to_tokens([int(t)])[0]
        return str(t)

    if np.ndim(tokens) == 1:
        prev = []
        for j in range(1, context + 1):
            r = row - j
            if r < 0 or int(token_index[r][0]) != seq or int(token_index[r][1]) != pos - j:
                break
            prev.append(s(tokens[r]))
        before = " ".join(reversed(prev))
        here = s(tokens[row])
    else:
        toks = list(tokens[seq])
        before = " ".join(s(t) for t in toks[max(0, pos - context):pos])
        here = s(toks[pos])
    return (before + " " if before else "") + f"[[{here}]]"


def top_examples(dictionary, data, *, layer: str | None = None, latents=None, n: int = 10, batch_size: int = 4096,
                 tokens=None, token_index=None, token_rows=None, tokenizer=None, context: int = 8,
                 bins: int = 30) -> TopExamples:
    """Max-activating rows of ``latents`` (default: the 8 most often firing), streamed in batches.

    Parameters
    ----------
    data : Activations / store path / array (as for training)
    tokens, token_index
        For token-level text activations: ``tokens`` (n_sequences, T) token strings or ids and
        ``token_index`` (n_rows, 2) ``[sequence, position]`` of every row; read from ``data`` when it
        carries them (``data.tokens``, ``data.token_index``). ``tokenizer`` turns ids into strings.
    context : int
        Tokens shown before the max-activating one.
    """
    import torch

    from topo_mi.dictionaries._metrics import _targets_and_inputs
    from topo_mi.dictionaries._train import _open, _Source

    n = check_int("n", n, min_value=1)
    context = check_int("context", context, min_value=0)
    data = _open(data)
    inputs, _ = _targets_and_inputs(dictionary, data, layer, None, None, None)
    m = int(inputs[0].shape[0])
    ids = getattr(data, "sample_ids", None)
    ids = np.arange(m) if ids is None else np.asarray(ids)
    tokens = tokens if tokens is not None else token_attr(data, "tokens")
    token_index = token_index if token_index is not None else token_attr(data, "token_index")
    if token_rows is not None:
        token_rows = np.asarray(token_rows, dtype=np.int64)
        if token_rows.shape != (m,):
            fail("token_rows", f"an array of shape ({m},)", f"shape {token_rows.shape}", raw=True)
    if token_index is not None:
        token_index = np.asarray(token_index)
        n_tok = m if token_rows is None else None
        if token_index.ndim != 2 or token_index.shape[1] != 2 or (n_tok is not None and len(token_index) != n_tok):
            fail("token_index", f"an array of shape ({m}, 2)", f"shape {token_index.shape}", raw=True)
        if tokens is None:
            fail("tokens", "the token sequences that token_index points into", None)
    src = _Source(inputs, None, 1, 0)
    chunks = [np.arange(i, min(i + batch_size, m)) for i in range(0, m, batch_size)]
    was = dictionary.training
    dictionary.eval()
    try:
        with torch.no_grad():
            if latents is None:
                counts = np.zeros(dictionary.d_sae, dtype=np.int64)
                for i, idx in enumerate(chunks):
                    counts += (dictionary.encode(torch.from_numpy(src.batch(f"batch {i}", idx)[0])) > 0).sum(0).numpy()
                latents = np.argsort(-counts, kind="stable")[:8]
            latents = np.asarray(latents, dtype=np.int64).reshape(-1)
            if latents.size == 0 or latents.min() < 0 or latents.max() >= dictionary.d_sae:
                fail("latents", f"latent ids in [0, {dictionary.d_sae})", latents)
            L = len(latents)
            best_v = np.full((L, 0), -np.inf)
            best_r = np.zeros((L, 0), dtype=np.int64)
            vmax = np.zeros(L)
            allz = []
            for i, idx in enumerate(chunks):
                z = dictionary.encode(torch.from_numpy(src.batch(f"batch {i}", idx)[0])).numpy()[:, latents].T
                vmax = np.maximum(vmax, z.max(axis=1))
                allz.append(z.astype(np.float32))
                cand_v = np.concatenate([best_v, np.where(z > 0, z, -np.inf)], axis=1)
                cand_r = np.concatenate([best_r, np.broadcast_to(idx, z.shape)], axis=1)
                order = np.argsort(-cand_v, axis=1, kind="stable")[:, :n]
                best_v = np.take_along_axis(cand_v, order, 1)
                best_r = np.take_along_axis(cand_r, order, 1)
    finally:
        dictionary.train(was)
    pad = n - best_v.shape[1]
    if pad > 0:
        best_v = np.concatenate([best_v, np.full((L, pad), -np.inf)], axis=1)
        best_r = np.concatenate([best_r, np.zeros((L, pad), dtype=np.int64)], axis=1)
    empty = ~np.isfinite(best_v)
    values = np.where(empty, np.nan, best_v)
    rows = np.where(empty, -1, best_r)
    sids = np.where(empty, -1, ids[np.clip(rows, 0, None)]) if ids.dtype.kind in "iu" else ids[np.clip(rows, 0, None)]
    contexts = []
    if token_index is not None:
        where = (lambda r: r) if token_rows is None else (lambda r: int(token_rows[r]))
        contexts = [[_context(tokens, token_index, where(int(r)), context, tokenizer) if r >= 0 else "" for r in rr]
                    for rr in rows]
    Z = np.concatenate(allz, axis=1)
    hists = np.zeros((L, bins), dtype=np.int64)
    edges = np.zeros((L, bins + 1))
    for i in range(L):
        pos = Z[i][Z[i] > 0]
        hists[i], edges[i] = np.histogram(pos, bins=bins, range=(0.0, float(vmax[i]) or 1.0))
    return TopExamples(latents=latents, values=values, rows=rows, sample_ids=np.asarray(sids), contexts=contexts,
                       histograms=hists, bin_edges=edges)


__all__ = ["top_examples", "TopExamples"]
