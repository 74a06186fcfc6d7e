"""Evaluation of a dictionary: sparsity, density, reconstruction under named conventions.

Explained variance (EV = 1 − FVU) conventions, for targets ``x_b`` (rows, all sources
concatenated), reconstructions ``x̂_b``, the per-dimension mean ``μ`` over the evaluated set, and
residuals ``r_b = x_b − x̂_b``:

- ``ratio_of_sums_centred``   1 − Σ_b‖r_b‖² / Σ_b‖x_b − μ‖²          (sparsify's form, centred on the set)
- ``ratio_of_sums_uncentred`` 1 − Σ_b‖r_b‖² / Σ_b‖x_b‖²              (normalised MSE about zero)
- ``per_token_centred``       1 − mean_b ‖r_b‖² / ‖x_b − μ‖²          (a per-token mean of ratios)
- ``per_token_uncentred``     1 − mean_b ‖r_b‖² / ‖x_b‖²              (OpenAI's per-sample normalised MSE)
- ``residual_centred``        1 − Σ_j Var_b(r_bj) / Σ_j Var_b(x_bj)    (dictionary_learning's: the residual's
  own mean is removed, so a constant offset costs nothing)

Identities (tested): the identity map gives 1 under every convention; predicting ``μ`` gives exactly
0 under the three centred ones (the uncentred ones then give ``‖μ‖²``-dependent positive values,
which is why they flatter SAEs on activations with a large mean).
"""
from __future__ import annotations

import numpy as np

from topo_mi._results import Result, result_dataclass
from topo_mi._validation import check_float, check_int, fail

CONVENTIONS = ("ratio_of_sums_centred", "ratio_of_sums_uncentred", "per_token_centred", "per_token_uncentred",
               "residual_centred")


class _Accumulator:
    """Streaming sums for every convention; ``mu`` (the per-dimension mean of x) is given up front."""

    def __init__(self, mu: np.ndarray):
        self.mu = np.asarray(mu, dtype=np.float64)
        self.n = 0
        self.sse = 0.0
        self.ss_c = 0.0
        self.ss_u = 0.0
        self.tok_c = 0.0
        self.tok_u = 0.0
        self.n_tok_c = 0
        self.n_tok_u = 0
        self.r_sum = np.zeros_like(self.mu)
        self.r_sq = np.zeros_like(self.mu)

    def add(self, x: np.ndarray, x_hat: np.ndarray) -> None:
        x = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
        r = x - np.asarray(x_hat, dtype=np.float64).reshape(len(x), -1)
        e = (r * r).sum(axis=1)
        c = ((x - self.mu) ** 2).sum(axis=1)
        u = (x * x).sum(axis=1)
        self.n += len(x)
        self.sse += e.sum()
        self.ss_c += c.sum()
        self.ss_u += u.sum()
        with np.errstate(divide="ignore", invalid="ignore"):
            okc, oku = c > 0, u > 0  # a row equal to the mean (or zero) has no ratio; it is skipped
            self.tok_c += (e[okc] / c[okc]).sum()
            self.tok_u += (e[oku] / u[oku]).sum()
        self.n_tok_c += int(okc.sum())
        self.n_tok_u += int(oku.sum())
        self.r_sum += r.sum(axis=0)
        self.r_sq += (r * r).sum(axis=0)

    def result(self) -> dict[str, float]:
        def ratio(a, b):
            return float("nan") if b <= 0 else float(1.0 - a / b)

        var_r = (self.r_sq - self.r_sum ** 2 / self.n).sum()
        return {
            "ratio_of_sums_centred": ratio(self.sse, self.ss_c),
            "ratio_of_sums_uncentred": ratio(self.sse, self.ss_u),
            "per_token_centred": float("nan") if self.n_tok_c == 0 else float(1 - self.tok_c / self.n_tok_c),
            "per_token_uncentred": float("nan") if self.n_tok_u == 0 else float(1 - self.tok_u / self.n_tok_u),
            "residual_centred": ratio(max(var_r, 0.0), self.ss_c),
        }


def explained_variance(x, x_hat) -> dict[str, float]:
    """Explained variance of ``x_hat`` for ``x`` (arrays ``(n, d)``) under every named convention.

    See the module docstring for the formulas; ``μ`` is the mean of ``x`` over its rows.
    """
    x = np.asarray(x, dtype=np.float64)
    x_hat = np.asarray(x_hat, dtype=np.float64)
    if x.shape != x_hat.shape or x.ndim < 2:
        fail("x_hat", f"an array of shape {x.shape} like x", f"shape {x_hat.shape}", raw=True)
    x2 = x.reshape(len(x), -1)
    acc = _Accumulator(x2.mean(axis=0))
    acc.add(x2, x_hat.reshape(len(x), -1))
    return acc.result()


@result_dataclass
class DictionaryMetrics(Result):
    """Sparsity and reconstruction of a dictionary on a set of activations.

    ``l0``: mean number of active latents per sample; ``density``: per latent, the fraction of
    samples on which it fires; ``dead_fraction``: latents that never fired here;
    ``dense_fraction``: latents firing on more than ``dense_threshold`` of the samples; ``mse``:
    mean over samples of the summed squared error; ``explained_variance``: every convention of
    :mod:`topo_mi.dictionaries._metrics` (by name).
    """

    n_samples: int
    d_sae: int
    l0: float
    mse: float
    explained_variance: dict
    dead_fraction: float
    dense_fraction: float
    dense_threshold: float
    density: np.ndarray
    kind: str

    _plot_function = "topo_mi.plotting.dictionaries:plot_density"

    def summary(self) -> dict:
        out = {"kind": self.kind, "d_sae": self.d_sae, "n_samples": self.n_samples, "l0": self.l0, "mse": self.mse}
        out.update({f"ev_{k}": v for k, v in self.explained_variance.items()})
        out.update(dead_fraction=self.dead_fraction, dense_fraction=self.dense_fraction)
        return out

    def density_histogram(self, bins: int = 30) -> tuple[np.ndarray, np.ndarray]:
        """Counts and edges of ``log10(density)`` over the latents that fired (dead ones excluded)."""
        d = self.density[self.density > 0]
        if d.size == 0:
            return np.zeros(bins, dtype=np.int64), np.linspace(-1, 0, bins + 1)
        lo = min(np.log10(d).min(), np.log10(1.0 / max(self.n_samples, 1)))
        return np.histogram(np.log10(d), bins=bins, range=(lo, 0.0))


def _targets_and_inputs(dictionary, data, layer, target, target_layer, layers):
    from topo_mi.dictionaries._train import _is_acts, _layer_array, _open

    c = dictionary.cfg
    data = _open(data)
    if c["n_in"] > 1:
        if _is_acts(data):
            names = layers or (dictionary.meta.get("sources"))
            inputs = [data[n] for n in names]
        else:
            inputs = [_layer_array(d, layer, f"data[{i}]") for i, d in enumerate(data)]
    else:
        layer = layer or (dictionary.meta.get("layer") if _is_acts(data) and dictionary.meta.get("layer") in data
                          else None)
        inputs = [_layer_array(data, layer, "data")]
    targets = None
    tl = target_layer or (dictionary.meta.get("target_layer") if target is None else None)
    if tl is not None:
        targets = [_layer_array(data, tl, "target_layer")]
    elif target is not None:
        targets = [_layer_array(target, None, "target")]
    for i, a in enumerate(inputs):
        if a.shape[1] != c["d_in"]:
            fail("data", f"activations of width d_in = {c['d_in']}", f"width {a.shape[1]} (source {i})", raw=True)
    return inputs, targets


def evaluate(dictionary, data, *, layer: str | None = None, layers=None, target=None, target_layer=None,
             batch_size: int = 4096, max_samples: int | None = None, dense_threshold: float = 0.1,
             seed: int = 0) -> DictionaryMetrics:
    """L0, densities, dead/dense fractions, MSE and every explained-variance convention.

    Parameters
    ----------
    dictionary : SparseDictionary
    data : Activations / store path / array, as for training (same ``layer`` defaults).
    max_samples : int, optional
        Evaluate on a seeded random subset of this many rows (default: all), read in batches.
    dense_threshold : float
        A latent firing on more than this fraction of samples counts as dense.
    """
    import torch

    from topo_mi.dictionaries._train import _Source

    batch_size = check_int("batch_size", batch_size, min_value=1)
    dense_threshold = check_float("dense_threshold", dense_threshold, min_value=0.0, max_value=1.0)
    inputs, targets = _targets_and_inputs(dictionary, data, layer, target, target_layer, layers)
    n = int(inputs[0].shape[0])
    src = _Source(inputs, targets, 1, seed)
    rows = np.arange(n)
    if max_samples is not None:
        max_samples = check_int("max_samples", max_samples, min_value=1)
        if max_samples < n:
            rows = src.sample(max_samples, [seed, 3])
    chunks = [rows[i:i + batch_size] for i in range(0, len(rows), batch_size)]
    # pass 1: the mean of the targets
    s = None
    for i, idx in enumerate(chunks):
        x, y = src.batch(f"evaluation batch {i}", idx)
        t = (x if y is None else y).reshape(len(idx), -1).astype(np.float64)
        s = t.sum(axis=0) if s is None else s + t.sum(axis=0)
    acc = _Accumulator(s / len(rows))
    fired = np.zeros(dictionary.d_sae, dtype=np.int64)
    l0 = 0.0
    was = dictionary.training
    dictionary.eval()
    try:
        with torch.no_grad():
            for i, idx in enumerate(chunks):
                x, y = src.batch(f"evaluation batch {i}", idx)
                xt = torch.from_numpy(x)
                z = dictionary.encode(xt)
                y_hat = dictionary.decode(z, squeeze=False).numpy()
                active = (z > 0).numpy()
                fired += active.sum(axis=0)
                l0 += float(active.sum())
                acc.add(x if y is None else y, y_hat)
    finally:
        dictionary.train(was)
    m = len(rows)
    density = fired / m
    return DictionaryMetrics(n_samples=m, d_sae=dictionary.d_sae, l0=l0 / m, mse=float(acc.sse / m),
                             explained_variance=acc.result(), dead_fraction=float((fired == 0).mean()),
                             dense_fraction=float((density > dense_threshold).mean()),
                             dense_threshold=dense_threshold, density=density.astype(np.float64),
                             kind=dictionary.kind)


# ---------------------------------------------------------------------------------------------
# feature recovery against planted directions
# ---------------------------------------------------------------------------------------------
def _cosines(true_dirs, learned) -> np.ndarray:
    A = np.asarray(true_dirs, dtype=np.float64)
    B = np.asarray(learned, dtype=np.float64)
    if A.ndim != 2 or B.ndim != 2 or A.shape[1] != B.shape[1]:
        fail("learned", f"an array (n_atoms, {A.shape[1] if A.ndim == 2 else '?'})", f"shape {B.shape}", raw=True)
    A = A / np.maximum(np.linalg.norm(A, axis=1, keepdims=True), 1e-300)
    B = B / np.maximum(np.linalg.norm(B, axis=1, keepdims=True), 1e-300)
    return np.abs(A @ B.T)


def mmcs(true_dirs, learned) -> float:
    """Mean max cosine similarity: for each true direction its best ``|cos|`` with a learned row, averaged."""
    return float(_cosines(true_dirs, learned).max(axis=1).mean())


def matched_mcs(true_dirs, learned) -> float:
    """One-to-one (Hungarian) matched mean ``|cos|`` (≤ :func:`mmcs`); unmatched true directions count 0."""
    from scipy.optimize import linear_sum_assignment

    C = _cosines(true_dirs, learned)
    r, c = linear_sum_assignment(-C)
    return float(C[r, c].sum() / C.shape[0])


__all__ = ["CONVENTIONS", "explained_variance", "DictionaryMetrics", "evaluate", "mmcs", "matched_mcs"]
