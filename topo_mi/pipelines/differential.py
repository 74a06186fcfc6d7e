r"""The differential pipeline: attributions layer by layer and the loss Hessian's spectrum.

:func:`sensitivity_profile` answers two questions about a trained classifier: which input features
and which units of each hidden layer the predictions depend on (integrated gradients or another
attribution, with the completeness error of every sample), and how curved the loss is around the
trained weights (the top/bottom Hessian eigenvalues by Lanczos, the condition number with its
convention for indefinite Hessians, Hutchinson's trace with a standard error, and the SLQ density).
"""
from __future__ import annotations

from typing import Any, ClassVar, Sequence

import numpy as np

from topo_mi._results import Result, result_dataclass
from topo_mi._validation import check_choice, check_int, fail

METHODS = ("integrated_gradients", "saliency", "input_x_gradient", "smoothgrad")


@result_dataclass
class SensitivityResult(Result):
    """Attributions per layer and the loss Hessian's spectrum (see :func:`sensitivity_profile`).

    Attributes
    ----------
    model : str
        The model's class name.
    layers : list of str
        ``"input"`` then the hidden layers attributed.
    attributions : dict of str -> AttributionResult
        One per entry of ``layers``.
    spectrum : HessianSpectrum or None
        ``None`` without labels (no loss) or with ``hessian=False``.
    method : str
    target : str
        ``"label"``, ``"predicted"`` or an output index.
    n_attributed, n_hessian : int
        Samples attributed / samples in the loss.
    seed : int
    """

    model: str
    layers: list
    attributions: dict
    spectrum: Any
    method: str
    target: str
    n_attributed: int
    n_hessian: int
    seed: int

    _plot_function: ClassVar[str] = "topo_mi.plotting.differential:plot_sensitivity"

    def max_delta(self) -> float:
        """Largest completeness error over layers and samples (NaN unless integrated gradients)."""
        vals = [float(np.max(a.delta)) for a in self.attributions.values() if np.isfinite(a.delta).all()]
        return max(vals) if vals else float("nan")

    def layer_table(self) -> dict:
        rows = []
        for name in self.layers:
            a = self.attributions[name]
            imp = a.unit_importance().ravel()
            total = float(imp.sum())
            top = np.sort(imp)[::-1]
            rows.append([float(imp.mean()), int(np.argmax(imp)), float(top[:max(1, imp.size // 10)].sum() / total)
                         if total > 0 else float("nan"), float(np.max(a.delta)) if np.isfinite(a.delta).all()
                         else float("nan")])
        return {"index": list(self.layers),
                "columns": ["mean |attribution|", "top unit", "share of top 10% units", "max completeness error"],
                "rows": rows}

    def summary(self) -> dict:
        t = self.layer_table()
        out: dict = {"model": self.model, "method": self.method, "target": self.target,
                     "n_attributed": self.n_attributed, "max_completeness_error": self.max_delta()}
        for name, row in zip(t["index"], t["rows"]):
            out[f"mean_abs_attribution[{name}]"] = row[0]
        if self.spectrum is not None:
            s = self.spectrum.summary()
            out.update({f"hessian_{key}": s[key] for key in (
                "dim", "lambda_max", "lambda_min", "largest_magnitude", "condition_number",
                "condition_number_positive", "n_negative", "n_negative_exact", "loss_value") if key in s})
            if "trace" in s:
                out.update({"hessian_trace": s["trace"], "hessian_trace_stderr": s["trace_stderr"]})
            out["n_hessian"] = self.n_hessian
        return out

    def report_section(self) -> dict:
        t = self.layer_table()
        hidden = [(n, r[0]) for n, r in zip(t["index"], t["rows"]) if n != "input"]
        parts = []
        if hidden:
            top = max(hidden, key=lambda nr: nr[1])[0]
            parts.append(f"attribution per unit is largest at {top}")
        if self.spectrum is not None:
            sp = self.spectrum
            kappa = (f"κ = {sp.condition_number:.3g}" if np.isfinite(sp.condition_number)
                     else f"indefinite ({sp.n_negative}{'' if sp.n_negative_exact else '+'} negative eigenvalues, "
                          + (f"κ over the positive part {sp.condition_number_positive:.3g})" if sp.n_negative_exact
                             else f"κ over the positive eigenvalues found {sp.condition_number_positive:.3g}, a "
                                  "lower bound)"))
            tr = f", trace {sp.trace.trace:.3g} ± {sp.trace.stderr:.2g}" if sp.trace is not None else ""
            parts.append(f"the loss Hessian has λmax = {sp.lambda_max:.3g}, {kappa}{tr}")
        delta = self.max_delta()
        headline = "; ".join(parts) or f"{self.method} attributions of {self.n_attributed} samples"
        headline = headline[0].upper() + headline[1:]
        if np.isfinite(delta):
            headline += f" (completeness error ≤ {delta:.2g})"
        return {"headline": headline + ".", "table": t,
                "caption": "Left: mean absolute attribution per unit of each layer (integrated gradients sum to "
                           "f(x) − f(baseline); the table gives the largest completeness error). Right: the "
                           "loss Hessian's spectral density by stochastic Lanczos quadrature (log scale), with "
                           "the top (red) and bottom (green) eigenvalues found by Lanczos."}


def _default_layers(model) -> list[str]:
    names = getattr(model, "hidden_names", None)
    return list(names) if names else []


def sensitivity_profile(model: Any, data: Any, *, layers: Sequence[str] | None = None,
                        method: str = "integrated_gradients", target: Any = "label", baseline: Any = None,
                        rule: str = "gauss_legendre", steps: int = 32, panels: int = 1, n_samples: int = 20,
                        attribution_samples: int | None = 200, hessian: bool = True, loss: str = "cross_entropy",
                        reduction: str = "mean", params: Any = None, k: int = 5, hessian_method: str = "lanczos",
                        max_iter: int | None = None, trace: bool = True, n_probes: int | None = None,
                        max_probes: int = 100, density: bool = True, slq_vectors: int = 5, slq_steps: int = 60,
                        batch_size: int = 1024, seed: int = 0, executor: Any = None,
                        progress: bool = False) -> SensitivityResult:
    r"""Attributions to the input and to every hidden layer, and the loss Hessian's spectrum.

    Parameters
    ----------
    model : nn.Module
        A classifier (logits out), e.g. ``topo_mi.models.MLP``.
    data : (X, y) or X
        Inputs and labels (the labels define the loss of the Hessian and the ``"label"`` target);
        inputs alone give attributions only (with ``target="predicted"`` or an index).
    layers : sequence of str, optional
        Hidden layers to attribute to (module names); default ``model.hidden_names`` when the
        model has them. The inputs are always attributed (``"input"``).
    method : str, default "integrated_gradients"
        ``"integrated_gradients"``, ``"saliency"``, ``"input_x_gradient"`` or ``"smoothgrad"``.
    target : "label", "predicted" or int
        The logit attributed: each sample's label, its predicted class, or a fixed class.
    baseline, rule, steps, panels
        Integrated gradients (see :func:`topo_mi.differential.integrated_gradients`); with
        ``rule="exact"`` (piecewise-linear models) the inputs get the exact path integral and the
        hidden layers Gauss–Legendre with ``steps`` x ``panels`` nodes.
    n_samples : int
        SmoothGrad's noisy copies.
    attribution_samples : int or None, default 200
        Attribute a seeded random subset of this many samples (None: all).
    hessian : bool, default True
        Compute the loss Hessian's spectrum (needs labels).
    loss, reduction, params, k, hessian_method, max_iter, trace, n_probes, max_probes, density, slq_vectors, slq_steps
        See :func:`topo_mi.differential.hessian_spectrum` (``hessian_method`` is its ``method``).
    batch_size : int
        Rows per forward pass (attributions) and per Hessian-vector product batch.
    seed : int
    executor, progress
        Accepted for the runner; the work here is a few batched torch calls.

    Returns
    -------
    SensitivityResult
    """
    import torch

    from topo_mi import differential as dif
    from topo_mi.differential._common import as_tensor, model_dtype

    method = check_choice("method", method, METHODS)
    seed = check_int("seed", seed, min_value=0)
    if isinstance(data, (tuple, list)) and len(data) == 2:
        X, y = data
    else:
        X, y = data, None
    X = as_tensor(X, "data.X", dtype=model_dtype(model))
    n = int(X.shape[0])
    yt = None if y is None else as_tensor(y, "data.y", floating=False)
    if yt is not None and yt.shape[0] != n:
        fail("data", "X and y with the same number of rows", f"X {tuple(X.shape)} and y {tuple(yt.shape)}", raw=True)
    names = list(layers) if layers is not None else _default_layers(model)
    idx = np.arange(n)
    if attribution_samples is not None and n > check_int("attribution_samples", attribution_samples, min_value=1):
        from topo_mi._sampling import random_subsample

        idx = np.sort(random_subsample(n, attribution_samples, seed=seed))
    Xa = X[torch.as_tensor(idx)]
    if isinstance(target, str):
        target_kind = check_choice("target", target, ("label", "predicted"))
        if target_kind == "label":
            if yt is None:
                fail("target", "'predicted' or an output index when data has no labels", target)
            tgt = yt[torch.as_tensor(idx)].long()
        else:
            from topo_mi.activations._hooks import _eval_mode

            with torch.no_grad(), _eval_mode(model):
                tgt = model(Xa).reshape(len(idx), -1).argmax(1)
    else:
        tgt, target_kind = target, str(target)
    fn = getattr(dif, method)
    kw: dict = {"target": tgt, "batch_size": batch_size}
    if method == "integrated_gradients":
        kw.update(baseline=baseline, rule=rule, steps=steps, panels=panels)
    elif method == "smoothgrad":
        kw.update(n_samples=n_samples, seed=seed)
    attributions = {"input": fn(model, Xa, **kw)}
    if method == "integrated_gradients" and rule == "exact":
        kw["rule"] = "gauss_legendre"  # the exact path is for inputs; layers use the default rule
    for name in names:
        attributions[name] = fn(model, Xa, layer=name, **kw)
    spectrum = None
    if hessian:
        if yt is None:
            fail("data", "(X, y) with labels for the loss Hessian (or hessian=False)", "inputs without labels",
                 raw=True)
        spectrum = dif.hessian_spectrum(model, loss, (X, yt), k=k, method=hessian_method, reduction=reduction,
                                        params=params, batch_size=batch_size, trace=trace, density=density,
                                        max_iter=max_iter, n_probes=n_probes, max_probes=max_probes,
                                        slq_vectors=slq_vectors, slq_steps=slq_steps, seed=seed)
    return SensitivityResult(model=type(model).__name__, layers=["input", *names], attributions=attributions,
                             spectrum=spectrum, method=method, target=target_kind, n_attributed=int(len(idx)),
                             n_hessian=n if hessian else 0, seed=seed)


__all__ = ["sensitivity_profile", "SensitivityResult", "METHODS"]
