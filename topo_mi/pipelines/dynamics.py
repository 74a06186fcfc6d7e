r"""The dynamics pipeline: a network's stability from Jacobian products and Lyapunov spectra.

:func:`stability_profile` treats a feed-forward network as a non-autonomous map with depth as
time (per-layer expansion, finite-time Lyapunov exponents over the inputs, and for residual
stacks how well ``h + dt sigma(W h + b)`` describes each block) and a recurrent network as the map
``h_{t+1} = step(h_t, x_t)`` (its Lyapunov spectrum with error bars, and the spread of the
per-trajectory exponents).
"""
from __future__ import annotations

from typing import Any, ClassVar, Sequence

import numpy as np

from topo_mi._results import Result, result_dataclass
from topo_mi._validation import check_int, fail


@result_dataclass
class StabilityResult(Result):
    """Stability of a network as a dynamical system (see :func:`stability_profile`).

    Attributes
    ----------
    kind : str
        ``"feedforward"`` or ``"recurrent"``.
    model : str
        The model's class name.
    layers : list of str
        States analysed (feed-forward), or ``["h"]`` (recurrent).
    ftle : FTLEResult or None
        Finite-time exponents and per-layer singular values (feed-forward).
    residual_fit : ResidualFitResult or None
        For residual stacks (blocks with ``linear``/``act``/``dt``).
    spectrum : LyapunovResult or None
        Recurrent models: the ``k`` largest exponents per step with standard errors; with several
        input sequences, one trajectory per sequence (``spectrum.member_exponents``).
    n_inputs : int
    seed : int
    """

    kind: str
    model: str
    layers: list
    ftle: Any
    residual_fit: Any
    spectrum: Any
    n_inputs: int
    seed: int

    _plot_function: ClassVar[str] = "topo_mi.plotting.dynamics:plot_stability"

    def report_section(self) -> dict:
        """Headline (stable or chaotic), the spectrum or a per-map expansion table, caption."""
        return _stability_section(self)

    def summary(self):
        out: dict = {"kind": self.kind, "model": self.model, "n_inputs": self.n_inputs}
        if self.ftle is not None:
            s = self.ftle.summary()
            out.update({key: s[key] for key in ("depth", "ftle_max_mean", "ftle_max_std", "fraction_expanding",
                                                "most_expanding_map", "mean_layer_expansion")})
        if self.residual_fit is not None:
            r = self.residual_fit.summary()
            out.update({"euler_error_mean": r["euler_error_mean"], "flow_error_mean": r["flow_error_mean"]})
        if self.spectrum is not None:
            sp = self.spectrum
            out.update({"lambda_max": float(sp.exponents[0]), "lambda_max_stderr": float(sp.stderr[0]),
                        "n_positive": int(np.sum(sp.exponents > 0)), "k": sp.k, "dim": sp.dim,
                        "kaplan_yorke_dimension": sp.kaplan_yorke_dimension})
        return out


def _stability_section(res: StabilityResult) -> dict:
    import warnings

    if res.spectrum is not None:
        sp = res.spectrum
        lam = np.asarray(sp.exponents, dtype=np.float64)
        se = np.asarray(sp.stderr, dtype=np.float64)
        verdict = "chaotic (λ_max > 0)" if lam[0] > 2 * se[0] else ("stable (λ_max < 0)" if lam[0] < -2 * se[0]
                                                                 else "marginal (λ_max within 2 s.e. of 0)")
        headline = (f"The recurrent {res.model} is {verdict}: λ_max = {lam[0]:.3g} ± {se[0]:.2g} per step, "
                    f"{int(np.sum(lam > 0))} of {sp.k} exponents positive.")
        table = {"index": [f"λ{i + 1}" for i in range(lam.size)], "columns": ["exponent (per step)", "std. error"],
                 "rows": [[float(a), float(b)] for a, b in zip(lam, se)]}
        caption = ("Lyapunov spectrum: the average exponential growth rate per step of perturbations along each "
                   "direction (QR method); > 0 stretches (chaos), < 0 contracts. Error bars: standard errors from "
                   "block averages.")
        return {"headline": headline, "table": table, "caption": caption}
    f = res.ftle
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        exp = np.nanmean(np.where(np.isfinite(f.layer_expansion), f.layer_expansion, np.nan), axis=0)
        vol = np.nanmean(np.where(np.isfinite(f.layer_log_volume), f.layer_log_volume, np.nan), axis=0)
        lam = f.exponents[:, 0]
        lam = lam[np.isfinite(lam)]
    s = f.summary()
    headline = (f"Across {s['depth']} maps from {f.layers[0]} to {f.layers[-1]}, the finite-time exponent "
                f"λ_max averages {s['ftle_max_mean']:.3g} ± {s['ftle_max_std']:.2g} over {s['n_inputs']} inputs "
                f"({100 * s['fraction_expanding']:.0f} % expanding); the most expanding map is "
                f"{s['most_expanding_map']}.")
    rank = None if f.layer_rank is None else np.median(np.asarray(f.layer_rank), axis=0)
    table = {"index": list(f.maps), "columns": ["mean ln σ_max", "mean log-volume", "median rank"],
             "rows": [[float(exp[i]), float(vol[i]), None if rank is None else float(rank[i])]
                      for i in range(len(f.maps))]}
    caption = ("Singular values of each layer map's Jacobian (natural log, quantiles over inputs): ln σ > 0 "
               "stretches a direction, < 0 contracts it; rank loss shows dead units. λ_max of the end-to-end "
               "Jacobian is (1/depth)·ln σ_max.")
    return {"headline": headline, "table": table, "caption": caption}


def default_states(model) -> list[str] | None:
    """Input, hidden states and output of a chain model (None: not a chain of named modules)."""
    from topo_mi.dynamics.jacobians import _chain

    chain = _chain(model)
    if chain is None:
        return None
    names = [n for n, _ in chain]
    hidden = [h for h in (getattr(model, "hidden_names", None) or []) if h in names]
    if hidden and names[-1] not in hidden:
        return ["input", *hidden, names[-1]]
    return ["input", *names]


def _is_recurrent(model) -> bool:
    return callable(getattr(model, "step", None)) and isinstance(getattr(model, "hidden_dim", None), int)


def _is_residual(model) -> bool:
    blocks = getattr(model, "blocks", None)
    return blocks is not None and hasattr(model, "embed") and len(blocks) > 0 and all(
        hasattr(b, "linear") and hasattr(b, "act") for b in blocks)


class _RecurrentStep:
    """``h -> model.step(h, u)`` with ``u`` a drive value or a fixed zero input."""

    def __init__(self, model, zero_input=None):
        self.model, self.zero = model, zero_input

    def __call__(self, h, u=None):
        return self.model.step(h, self.zero if u is None else u)


def stability_profile(model: Any, inputs: Any = None, *, layers: Sequence | None = None, k: int | None = None,
                      seed: int = 0, n_steps: int = 1000, transient: int = 200, n_iter: int = 4,
                      executor: Any = None, progress: bool = False) -> StabilityResult:
    r"""Per-layer expansion, finite-time Lyapunov exponents, and Lyapunov spectra of recurrent models.

    Parameters
    ----------
    model : nn.Module
        Feed-forward: a chain model (``nn.Sequential`` such as ``topo_mi.models.MLP``, or a
        residual stack with ``embed``/``blocks``/``out``) or any model with callable ``layers``
        (see :mod:`topo_mi.dynamics`). Recurrent: a model with ``step(h, x)`` and an integer
        ``hidden_dim`` (``topo_mi.models.TanhRNN``).
    inputs : tensor or array
        Feed-forward: a batch of inputs ``(n_inputs, ...)``. Recurrent: ``None`` (the
        autonomous network, zero input), one sequence ``(T, input_dim)`` or a batch
        ``(B, T, input_dim)`` (one trajectory per sequence, run as an ensemble); with sequences
        the first ``transient`` steps are discarded and the rest measured.
    layers : sequence, optional
        Feed-forward only (ignored for recurrent models): the states, as in
        :func:`topo_mi.dynamics.layer_jacobians`. Default: from the input to the output, through
        every hidden state (``["input", *model.hidden_names, "out"]`` for ``topo_mi.models.MLP``;
        ``["input", *children]`` for other chains), so every map of the network is measured.
    k : int, optional
        Feed-forward: ``None`` computes every singular value (Jacobians formed chunk by chunk);
        an integer only the top ``k`` by JVPs/VJPs. Recurrent: number of exponents (default
        ``min(hidden_dim, 32)``).
    seed : int, default 0
        Seeds the random frames/starts and the initial hidden states ``h_0 ~ N(0, 1)``.
    n_steps, transient : int
        Recurrent, autonomous case: measured and discarded steps.
    n_iter : int, default 4
        Power iterations of the randomized top-k singular values.
    executor : optional
        Runs chunks of inputs of the finite-time analysis (see :mod:`topo_mi.parallel`).
    progress : bool, default False

    Returns
    -------
    StabilityResult
    """
    import torch

    from topo_mi.dynamics import finite_time_lyapunov, lyapunov_spectrum, residual_ode_fit
    from topo_mi.dynamics._common import as_state, module_dtype

    seed = check_int("seed", seed, min_value=0)
    name = type(model).__name__
    if _is_recurrent(model):
        dim = int(model.hidden_dim)
        k = min(dim, 32) if k is None else check_int("k", k, min_value=1)
        dtype = module_dtype(model) or torch.float32
        input_dim = int(getattr(model, "input_dim", 0) or 0)
        gen = torch.Generator().manual_seed(seed)
        step = _RecurrentStep(model, torch.zeros(input_dim, dtype=dtype) if input_dim else None)
        if inputs is None:
            h0 = torch.randn((dim,), generator=gen, dtype=torch.float64).to(dtype)
            spec = lyapunov_spectrum(lambda h: step(h), h0, n_steps, k=k, transient=transient, seed=seed,
                                     progress=progress, label=name)
            n_in = 0
        else:
            u = as_state(inputs, "inputs", dtype=dtype)
            if u.ndim == 2:
                u = u[None]
            if u.ndim != 3 or (input_dim and u.shape[2] != input_dim):
                fail("inputs", f"None, a sequence (T, {input_dim or 'input_dim'}) or a batch (B, T, "
                               f"{input_dim or 'input_dim'})", f"shape {tuple(u.shape)}", raw=True)
            B, T = int(u.shape[0]), int(u.shape[1])
            transient = check_int("transient", transient, min_value=0)
            if T - transient < 2:
                fail("transient", f"fewer than T - 1 = {T - 1} steps (the sequences have T = {T})", transient)
            h0 = torch.randn((B, dim), generator=gen, dtype=torch.float64).to(dtype)
            spec = lyapunov_spectrum(step, h0, T - transient, k=k, transient=transient, drive=u, ensemble=True,
                                     seed=seed, progress=progress, label=name)
            n_in = B
        return StabilityResult(kind="recurrent", model=name, layers=["h"], ftle=None, residual_fit=None,
                               spectrum=spec, n_inputs=n_in, seed=seed)
    if inputs is None:
        fail("inputs", "a batch of inputs for a feed-forward model", None)
    if layers is None:
        layers = default_states(model)
    ftle = finite_time_lyapunov(model, inputs, layers=layers, k=k, n_iter=n_iter, seed=seed, executor=executor,
                                progress=progress)
    fit = residual_ode_fit(model, inputs) if _is_residual(model) else None
    return StabilityResult(kind="feedforward", model=name, layers=list(ftle.layers), ftle=ftle, residual_fit=fit,
                           spectrum=None, n_inputs=int(ftle.exponents.shape[0]), seed=seed)


__all__ = ["stability_profile", "StabilityResult"]
