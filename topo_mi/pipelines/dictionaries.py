"""Pipeline: train a sparse dictionary on one layer and profile it (metrics, loss recovered, examples)."""
from __future__ import annotations

import numpy as np

from topo_mi._results import Result, result_dataclass
from topo_mi._validation import check_choice, check_float, check_int, fail, unknown_name


@result_dataclass
class DictionaryProfile(Result):
    """A dictionary trained on one layer, evaluated on held-out rows.

    ``metrics``: :class:`~topo_mi.dictionaries.DictionaryMetrics` on the held-out rows;
    ``loss``: :class:`~topo_mi.dictionaries.LossRecovered` when a model and its inputs were given
    (else None); ``examples``: max-activating held-out rows of the most frequent latents;
    ``history``: training curves; ``state``: the weights (rebuild with :meth:`dictionary`).
    """

    layer: str
    cfg: dict
    metrics: Result
    loss: object
    examples: Result
    history: dict
    state: dict
    n_train: int
    n_eval: int

    _plot_function = "topo_mi.plotting.dictionaries:plot_profile"

    def dictionary(self):
        """The trained :class:`~topo_mi.dictionaries.SparseDictionary`."""
        import torch

        from topo_mi.dictionaries import SparseDictionary

        d = SparseDictionary(self.cfg, meta={"layer": self.layer})
        d.load_state_dict({k: torch.as_tensor(np.asarray(v)) for k, v in self.state.items()})
        d.eval()
        return d

    def summary(self) -> dict:
        m = self.metrics
        out = {"layer": self.layer, "kind": self.cfg["kind"], "d_sae": self.cfg["d_sae"], "l0": m.l0,
               "ev_ratio_of_sums_centred": m.explained_variance["ratio_of_sums_centred"],
               "ev_per_token_centred": m.explained_variance["per_token_centred"],
               "ev_ratio_of_sums_uncentred": m.explained_variance["ratio_of_sums_uncentred"],
               "mse": m.mse, "dead_fraction": m.dead_fraction, "dense_fraction": m.dense_fraction,
               "n_train": self.n_train, "n_eval": self.n_eval}
        if self.loss is not None:
            out["loss_recovered"] = self.loss.fraction_recovered
            out["kl"] = self.loss.kl
        return out

    def report_section(self) -> dict:
        s = self.summary()
        head = (f"A {s['kind']} dictionary of {s['d_sae']} latents on {self.layer} explains "
                f"{s['ev_ratio_of_sums_centred']:.3f} of the variance (ratio of sums, centred) of held-out "
                f"activations at L0 {s['l0']:.1f}, with {100 * s['dead_fraction']:.1f}% dead latents")
        cols = ["L0", "EV ratio-of-sums centred", "EV per-token centred", "EV ratio-of-sums uncentred", "MSE",
                "dead fraction", "dense fraction"]
        row = [s["l0"], s["ev_ratio_of_sums_centred"], s["ev_per_token_centred"], s["ev_ratio_of_sums_uncentred"],
               s["mse"], s["dead_fraction"], s["dense_fraction"]]
        if self.loss is not None:
            head += f"; spliced into the model it recovers {self.loss.fraction_recovered:.3f} of the loss " \
                    f"({self.loss.baseline}-ablation baseline)"
            cols += ["loss recovered", "KL"]
            row += [s["loss_recovered"], s["kl"]]
        cap = ("Histogram of log10 feature density (the fraction of held-out samples each latent fires on; "
               "dead latents are not drawn). A healthy dictionary has one broad mode well below 0 and few "
               "latents near 0 (dense).")
        if self.examples is not None and self.examples.contexts:
            tops = []
            for i, lat in enumerate(self.examples.latents[:3]):
                ctx = [c for c in self.examples.contexts[i][:3] if c]
                tops.append(f"latent {int(lat)}: " + " | ".join(ctx))
            cap += " Top examples: " + "; ".join(tops) + "."
        return {"headline": head + ".", "table": {"index": [self.layer], "columns": cols, "rows": [row]},
                "caption": cap}


def holdout_rows(n: int, n_eval: int, seed: int, groups=None) -> np.ndarray:
    """The sorted held-out rows of :func:`dictionary_profile`.

    Without ``groups``: ``n_eval`` rows drawn without replacement by ``default_rng([seed, 2024])``.
    With ``groups`` (one group id per row, e.g. the text id of every token): whole groups, taken
    in the seeded random order of ``default_rng([seed, 2024]).permutation(unique groups)`` while
    the held-out rows stay at most ``n_eval`` (at least one group).
    """
    rng = np.random.default_rng([seed, 2024])
    if groups is None:
        return np.sort(rng.choice(n, size=n_eval, replace=False))
    groups = np.asarray(groups)
    if groups.shape != (n,):
        fail("groups", f"one group id per row ({n})", groups.shape, raw=True)
    uniq, inv, counts = np.unique(groups, return_inverse=True, return_counts=True)
    order = rng.permutation(len(uniq))
    total = np.cumsum(counts[order])
    take = order[:max(1, int(np.searchsorted(total, n_eval, side="right")))]
    return np.flatnonzero(np.isin(inv, take))


_SET_BY_PROFILE = {"data", "layer", "target", "target_layer", "kind", "d_sae", "expansion", "k", "l1_coefficient",
                   "l0_coefficient", "n_steps", "batch_size", "lr", "seed", "dead_after", "resample_at",
                   "checkpoint_dir", "resume", "progress"}


def _train_options(options) -> dict:
    """``train_options`` checked against :func:`train_sae`'s parameters (not those set by name here)."""
    import inspect
    from collections.abc import Mapping

    from topo_mi.dictionaries import train_sae

    if options is None:
        return {}
    if not isinstance(options, Mapping):
        fail("train_options", "a mapping of train_sae parameters", options)
    valid = set(inspect.signature(train_sae).parameters) - _SET_BY_PROFILE
    for key in options:
        if key in _SET_BY_PROFILE:
            fail("train_options", f"parameters other than dictionary_profile's own (give {key!r} directly)", key)
        if key not in valid:
            raise unknown_name("train_options key", key, sorted(valid))
    return dict(options)


def dictionary_profile(acts, *, layer: str | None = None, kind: str = "topk", d_sae: int | None = None,
                       expansion: float = 8.0, k: int | None = 32, l1_coefficient: float | None = None,
                       l0_coefficient: float | None = None, n_steps: int = 2000, batch_size: int = 1024,
                       lr: float = 1e-3, eval_fraction: float = 0.1, max_eval: int = 50_000, holdout: str = "auto",
                       dead_after: int = 1_000_000, resample_at=None, model=None, inputs=None,
                       splice: bool = True, splice_layer: str | None = None, splice_loss: str = "auto",
                       baseline: str = "zero", n_latents: int = 8,
                       n_examples: int = 10, tokens=None, token_index=None, tokenizer=None,
                       checkpoint_dir=None, resume: bool = False, seed: int = 0,
                       progress: bool = False, train_options=None) -> DictionaryProfile:
    """Train a dictionary on ``layer`` of ``acts`` and profile it on held-out rows.

    A seeded ``eval_fraction`` of the rows (at most ``max_eval``) is held out — with ``holdout``
    'texts' (the default 'auto' when the activations are token-level, i.e. carry a ``token_index``)
    whole texts, so that no held-out token shares a sentence with a training token (see
    :func:`holdout_rows`); with 'rows' single rows. The dictionary is
    trained on the rest with :func:`topo_mi.dictionaries.train_sae` (``kind``, ``d_sae`` or
    ``expansion`` x width, ``k``, coefficients, ``n_steps``...), then evaluated
    (:func:`~topo_mi.dictionaries.evaluate`), its top examples found
    (:func:`~topo_mi.dictionaries.top_examples`, token contexts when ``acts`` are token-level),
    and — with ``model`` and ``inputs`` — spliced into the model at ``splice_layer`` (default
    ``layer``) for the loss recovered (:func:`~topo_mi.dictionaries.loss_recovered`; ``splice_loss``
    'auto' is the next-token cross-entropy for language models and the distance to the clean output
    otherwise; ``splice=False`` skips it). ``train_options`` (a mapping; a TOML table in a spec)
    passes any other :func:`~topo_mi.dictionaries.train_sae` parameter, e.g.
    ``{"aux_coefficient": 0.0625, "auxk_normalization": "residual_variance",
    "project_decoder_grad": True}``.

    Returns
    -------
    DictionaryProfile
    """
    from topo_mi.dictionaries import evaluate, loss_recovered, top_examples, train_sae
    from topo_mi.dictionaries._train import RowView, _layer_array, _open

    acts = _open(acts)
    eval_fraction = check_float("eval_fraction", eval_fraction, min_value=0.0, max_value=0.5, min_inclusive=False)
    max_eval = check_int("max_eval", max_eval, min_value=1)
    if layer is None:
        layers = list(acts) if hasattr(acts, "keys") else []
        if len(layers) != 1:
            fail("layer", f"one of the layers {layers[:8]}", None)
        layer = layers[0]
    X = _layer_array(acts, layer, "acts")
    n = int(X.shape[0])
    n_eval = min(max_eval, max(1, int(round(eval_fraction * n))))
    if n - n_eval < batch_size:
        fail("acts", f"at least batch_size + held-out = {batch_size + n_eval} rows", f"{n} rows", raw=True)
    from topo_mi.dictionaries._examples import token_attr

    ti = token_index if token_index is not None else token_attr(acts, "token_index")
    check_choice("holdout", holdout, ("auto", "texts", "rows"))
    if holdout == "texts" and ti is None:
        fail("holdout", "'rows' for activations without a token_index (or pass token_index=)", holdout)
    groups = None if holdout == "rows" or ti is None else np.asarray(ti)[:, 0]
    held = holdout_rows(n, n_eval, seed, groups=groups)
    n_eval = int(len(held))
    if n - n_eval < batch_size:
        fail("acts", f"at least batch_size + held-out = {batch_size + n_eval} rows", f"{n} rows", raw=True)
    mask = np.ones(n, dtype=bool)
    mask[held] = False
    train_rows = np.flatnonzero(mask)
    kk = k if kind in ("topk", "batchtopk") else None
    extra = _train_options(train_options)
    sae = train_sae(RowView(X, train_rows), kind=kind, d_sae=d_sae, expansion=None if d_sae else expansion, k=kk,
                    l1_coefficient=l1_coefficient, l0_coefficient=l0_coefficient, n_steps=n_steps,
                    batch_size=batch_size, lr=lr, seed=seed, dead_after=dead_after, resample_at=resample_at,
                    checkpoint_dir=checkpoint_dir, resume=resume, progress=progress, **extra)
    sae.meta["layer"] = layer
    Xe = np.asarray(X[held], dtype=np.float32)
    metrics = evaluate(sae, Xe)
    tk = tokens if tokens is not None else token_attr(acts, "tokens")
    n_latents = check_int("n_latents", n_latents, min_value=1)
    order = np.argsort(-metrics.density, kind="stable")[:n_latents]
    examples = top_examples(sae, Xe, latents=order, n=n_examples, tokens=tk, token_index=ti,
                            token_rows=None if ti is None else held, tokenizer=tokenizer)
    loss = None
    if model is not None and splice:
        if inputs is None:
            fail("inputs", "the model inputs to splice over (with model=...)", None)
        loss = loss_recovered(model, sae, inputs, layer=splice_layer or layer, baseline=baseline, loss=splice_loss)
    state = {k_: v.detach().numpy().copy() for k_, v in sae.state_dict().items()}
    return DictionaryProfile(layer=layer, cfg=dict(sae.cfg), metrics=metrics, loss=loss, examples=examples,
                             history={k_: np.asarray(v) for k_, v in sae.history.items()}, state=state,
                             n_train=int(len(train_rows)), n_eval=int(n_eval))


__all__ = ["dictionary_profile", "DictionaryProfile", "holdout_rows"]
