"""Splicing a dictionary's reconstruction into a model's forward pass; loss recovered and KL."""
from __future__ import annotations

import contextlib
from typing import Any, Callable

import numpy as np

from topo_mi._results import Result, result_dataclass
from topo_mi._validation import check_choice, check_int, fail


def _reconstruction_fn(dictionary) -> Callable:
    """A map (..., d) tensor -> same-shape tensor from a SparseDictionary or any callable."""
    from topo_mi.dictionaries._model import SparseDictionary

    if isinstance(dictionary, SparseDictionary):
        c = dictionary.cfg
        if c["n_in"] != 1 or c["n_out"] != 1:
            fail("dictionary", "a single-source SAE or transcoder to splice into one layer", repr(dictionary), raw=True)

        def fn(t):
            if t.shape[-1] != c["d_in"]:
                fail("dictionary", f"a dictionary of width d_in = {t.shape[-1]} for this layer",
                     f"d_in = {c['d_in']}", raw=True)
            flat = t.reshape(-1, t.shape[-1]).to(dictionary.W_enc.dtype)
            return dictionary(flat).reshape(*t.shape[:-1], c["d_out"]).to(t.dtype)

        fn.d_out = c["d_out"]
        return fn
    if callable(dictionary):
        return dictionary
    fail("dictionary", "a SparseDictionary or a callable mapping the layer output to its replacement", dictionary)


def _checked(fn):
    """``fn`` with the shape of its output checked against the layer output it replaces."""

    def replace(t):
        new = fn(t)
        if tuple(new.shape) != tuple(t.shape):
            fail("reconstruction", f"a tensor of the layer's shape {tuple(t.shape)}", f"shape {tuple(new.shape)}",
                 raw=True)
        return new

    return replace


def _intervening(model, layer, fn, *, grad=False):
    from topo_mi.causal import Replace, intervene

    return intervene(model, {layer: Replace(_checked(fn))}, grad=grad)


@contextlib.contextmanager
def splice(model, dictionary, *, layer: str, grad: bool = False):
    """Inside the block, ``layer``'s output is replaced by ``dictionary(output)`` on every forward.

    ``dictionary``: a SparseDictionary (applied to the last axis) or a callable tensor -> tensor of
    the same shape. Built on :func:`topo_mi.causal.intervene` with a ``Replace`` op (eval mode, no
    gradients unless ``grad=True``; hooks removed on exit, even on error). A transcoder spliced at
    the layer it predicts maps the *input* it was trained on: pass a callable for that case.
    """
    fn = _reconstruction_fn(dictionary)
    with _intervening(model, layer, fn, grad=grad) as handle:
        yield handle


@result_dataclass
class LossRecovered(Result):
    """Model loss with the layer clean, spliced with the reconstruction, and ablated.

    ``fraction_recovered = (loss_ablated − loss_spliced) / (loss_ablated − loss_clean)``: 1 when the
    reconstruction is as good as the clean activations, 0 when it is no better than the ablation
    (``baseline`` 'zero' or 'mean' — the per-feature mean of the layer over the inputs).
    ``kl``: mean over tokens of KL(clean ‖ spliced) of the output distributions (logits only).
    """

    layer: str
    baseline: str
    loss_clean: float
    loss_spliced: float
    loss_ablated: float
    fraction_recovered: float
    kl: float
    n_samples: int

    def summary(self) -> dict:
        return {"layer": self.layer, "baseline": self.baseline, "loss_clean": self.loss_clean,
                "loss_spliced": self.loss_spliced, "loss_ablated": self.loss_ablated,
                "fraction_recovered": self.fraction_recovered, "kl": self.kl}


def next_token_ce(output, batch) -> "Any":
    """Mean next-token cross-entropy of logits ``(B, T, V)`` for int tokens ``(B, T)``."""
    import torch.nn.functional as F

    logits = output[0] if isinstance(output, tuple) else output
    tokens = batch["input_ids"] if isinstance(batch, dict) else batch
    return F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]).float(), tokens[:, 1:].reshape(-1))


def _slice(inputs, i, j):
    if isinstance(inputs, dict):
        return {k: v[i:j] for k, v in inputs.items()}
    return inputs[i:j]


def _size(inputs) -> int:
    if isinstance(inputs, dict):
        return len(next(iter(inputs.values())))
    return len(inputs)


def _call(model, batch):
    return model(**batch) if isinstance(batch, dict) else model(batch)


def _logits(out):
    import torch

    if isinstance(out, torch.Tensor):
        return out
    if isinstance(out, tuple) and out and isinstance(out[0], torch.Tensor):
        return out[0]
    return getattr(out, "logits", None)


def _output_tensor(out):
    import torch

    t = _logits(out)
    if t is None:
        t = getattr(out, "last_hidden_state", None)
    if not isinstance(t, torch.Tensor):
        fail("loss", "a model output that is a tensor, a tuple of tensors, or has logits/last_hidden_state "
             "(else pass loss=callable)", type(out).__name__, raw=True)
    return t.double()


def loss_recovered(model, dictionary, inputs, *, layer: str, loss="auto",
                   baseline: str = "zero", mean=None, batch_size: int = 32, kl: bool | None = None) -> LossRecovered:
    """CE (or any loss) recovered by splicing a reconstruction into ``layer``.

    Parameters
    ----------
    model : torch.nn.Module
    dictionary : SparseDictionary or callable
        What replaces the layer output (see :func:`splice`).
    inputs : tensor (n, ...) or dict of tensors
        Model inputs, run in batches of ``batch_size``.
    loss : 'auto', 'next_token_ce', 'output_mse' or callable(output, batch) -> scalar tensor
        Mean loss of a batch. ``next_token_ce``: language models with logits (:func:`next_token_ce`);
        ``output_mse``: the mean over output positions of the squared distance of the output
        (logits, a tensor or ``last_hidden_state``) to the clean output of the same batch (clean loss
        0) — for models without a loss of their own, e.g. sentence encoders; 'auto' picks
        ``next_token_ce`` when the inputs are token ids and the output logits of a matching length,
        else ``output_mse``.
    baseline : {'zero', 'mean'}
        Zero-ablation, or replacement by the per-feature mean of the layer's clean output over
        ``inputs`` (or by ``mean``, shape (d,)).
    kl : bool, optional
        Also report KL(clean ‖ spliced) of the outputs' softmax (default: when the output is logits).

    Returns
    -------
    LossRecovered
    """
    import torch

    from topo_mi.activations._hooks import _eval_mode, _recording, resolve_layers

    check_choice("baseline", baseline, ("zero", "mean"))
    batch_size = check_int("batch_size", batch_size, min_value=1)
    loss = "auto" if loss is None else loss
    if isinstance(loss, str):
        check_choice("loss", loss, ("auto", "next_token_ce", "output_mse"))
    elif not callable(loss):
        fail("loss", "'auto', 'next_token_ce', 'output_mse' or a callable(output, batch)", loss)
    fn = _reconstruction_fn(dictionary)
    mods = resolve_layers(model, [layer])
    n = _size(inputs)
    batches = [_slice(inputs, i, i + batch_size) for i in range(0, n, batch_size)]
    totals = {"clean": 0.0, "spliced": 0.0, "ablated": 0.0}
    kl_sum, kl_n = 0.0, 0
    with torch.no_grad(), _eval_mode(model):
        mu = None
        if baseline == "mean":
            if mean is not None:
                mu = torch.as_tensor(np.asarray(mean), dtype=torch.float32)
            else:
                acc = {"s": None, "n": 0}

                def read(name, out):
                    t = out[0] if isinstance(out, tuple) else out
                    flat = t.reshape(-1, t.shape[-1]).double()
                    acc["s"] = flat.sum(0) if acc["s"] is None else acc["s"] + flat.sum(0)
                    acc["n"] += flat.shape[0]

                with _recording(mods, read):
                    for b in batches:
                        _call(model, b)
                mu = (acc["s"] / acc["n"]).float()

        def ablate(t):
            if mu is None:
                return torch.zeros_like(t)
            if mu.shape != t.shape[-1:]:
                fail("mean", f"an array of shape ({t.shape[-1]},)", f"shape {tuple(mu.shape)}", raw=True)
            return mu.to(t.dtype).expand_as(t).clone()

        for b in batches:
            w = _size(b)
            clean = _call(model, b)
            lf = loss
            if loss == "auto":
                lg = _logits(clean)
                toks = b.get("input_ids") if isinstance(b, dict) else b
                lm = (lg is not None and isinstance(toks, torch.Tensor) and not toks.is_floating_point()
                      and lg.ndim == 3 and tuple(lg.shape[:2]) == tuple(toks.shape))
                lf = "next_token_ce" if lm else "output_mse"
            if lf == "next_token_ce":
                lf = next_token_ce
            elif lf == "output_mse":
                ref = _output_tensor(clean)
                lf = (lambda out, _b, ref=ref: (_output_tensor(out) - ref).pow(2).sum(-1).mean())
            totals["clean"] += float(lf(clean, b)) * w
            with _intervening(model, layer, fn):
                spliced = _call(model, b)
            totals["spliced"] += float(lf(spliced, b)) * w
            with _intervening(model, layer, ablate):
                totals["ablated"] += float(lf(_call(model, b), b)) * w
            lc, ls = _logits(clean), _logits(spliced)
            if (kl is None and lc is not None) or kl:
                if lc is None:
                    fail("kl", "a model whose output is logits", type(clean).__name__, raw=True)
                p = torch.log_softmax(lc.double(), -1)
                q = torch.log_softmax(ls.double(), -1)
                kl_tok = (p.exp() * (p - q)).sum(-1)
                kl_sum += float(kl_tok.sum())
                kl_n += kl_tok.numel()
    lc_, ls_, la_ = (totals[k] / n for k in ("clean", "spliced", "ablated"))
    denom = la_ - lc_
    frac = float("nan") if denom == 0 else (la_ - ls_) / denom
    return LossRecovered(layer=layer, baseline=baseline, loss_clean=lc_, loss_spliced=ls_, loss_ablated=la_,
                         fraction_recovered=float(frac), kl=float(kl_sum / kl_n) if kl_n else float("nan"),
                         n_samples=n)


__all__ = ["splice", "loss_recovered", "LossRecovered", "next_token_ce"]
