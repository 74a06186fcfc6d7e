"""Per-input discrepancy δ_I(x), explanatory coverage with bootstrap intervals, consistency K.

Definitions (as implemented):

- δ_I(x) = ‖N(x) − I(x)‖ in a stated space (``"logits"``, ``"probs"`` — the softmax of the
  output — or a layer's output) and norm (l2, l1, linf over every non-sample axis). With
  ``relative=True`` it is divided by the scale s = sqrt(mean_x ‖N(x) − N̄‖²), the RMS distance of
  N to its own mean on the same inputs (recorded in the result).
- coverage(ε) = #{x : δ_I(x) < ε} / n — strict, as in the framework's μ({x : δ_I(x) < ε}) / μ(X)
  with μ the empirical measure of the inputs; the curve is evaluated on a grid of ε in
  (0, ε_max].
- area = (1/ε_max) ∫_0^ε_max coverage(ε) dε = 1 − mean_x min(δ_I(x), ε_max) / ε_max (exact).
- ε_target: the largest δ among the ⌈target·n⌉ smallest; coverage(ε) ≥ target exactly for ε > ε_target.
- K = sup_x δ_I(x) / δ_I for a stated budget δ_I (the interpretation's own, a number given by the
  user, or ``"rms"``: the RMS of δ_I(x) itself, which makes K the peak-to-RMS ratio), in absolute
  units; the sup's input is reported (index and sample id). K = 0 when both are 0, inf when only
  the budget is.
- Intervals: percentile bootstrap over inputs (``n_boot`` resamples, one set of resamples shared by
  every ε, the area and the coverage at ε), pointwise; ε_max and the grid are held fixed. An
  interval is widened to include its estimate if Monte Carlo noise would leave it outside.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from topo_mi._results import Result, result_dataclass
from topo_mi._validation import check_choice, check_float, check_int, check_random_state, fail
from topo_mi.errors import InvalidParameterError, NonFiniteError, ResourceError
from topo_mi.synthesis import _forward as F
from topo_mi.synthesis._interpretation import NORMS, Interpretation

# Largest N(x) array kept to compute the relative scale.
_MAX_REFERENCE_BYTES = 4 * 2 ** 30
# Bootstrap resamples are drawn in chunks of at most this many indices (memory stays small).
_BOOT_CHUNK = 1 << 22


# ---------------------------------------------------------------------------------------------
# statistics on precomputed discrepancies
# ---------------------------------------------------------------------------------------------
def check_delta(delta) -> np.ndarray:
    from topo_mi._validation import as_array

    d = np.asarray(as_array(delta, "delta"), dtype=np.float64)
    if d.ndim != 1:
        fail("delta", "a 1-D array of per-input discrepancies", d)
    if d.size == 0:
        fail("delta", "at least one input", "an empty array", raw=True)
    if not np.isfinite(d).all():
        raise NonFiniteError(f"delta: expected finite discrepancies, got {int((~np.isfinite(d)).sum())} "
                             "non-finite values")
    if (d < 0).any():
        fail("delta", "non-negative discrepancies (norms)", f"minimum {d.min():g}", raw=True)
    return d


def check_eps(eps, name: str = "eps") -> float:
    return check_float(name, eps, min_value=0.0, min_inclusive=False)


def coverage_curve(delta, eps_grid) -> np.ndarray:
    """coverage(ε) = #{δ < ε} / n for each ε of the grid."""
    d = np.sort(check_delta(delta))
    return np.searchsorted(d, np.asarray(eps_grid, np.float64), side="left") / d.size


def default_grid(eps_max: float, n_grid: int) -> np.ndarray:
    """``n_grid`` log-spaced values from ε_max·1e-4 to ε_max."""
    return np.geomspace(eps_max * 1e-4, eps_max, n_grid)


def _boot_counts(n: int, n_boot: int, rng, order_inv: np.ndarray):
    """Yield chunks of bootstrap counts (chunk, n) in the sorted order of δ."""
    per = max(1, _BOOT_CHUNK // max(n, 1))
    done = 0
    while done < n_boot:
        b = min(per, n_boot - done)
        draws = rng.integers(0, n, size=(b, n))
        pos = order_inv[draws] + (np.arange(b)[:, None] * n)
        yield np.bincount(pos.ravel(), minlength=b * n).reshape(b, n)
        done += b


def _interval(samples: np.ndarray, est, level: float):
    lo, hi = np.quantile(samples, [(1 - level) / 2, (1 + level) / 2], axis=0)
    return np.minimum(lo, est), np.maximum(hi, est)


def coverage_stats(delta, *, eps: float | None = None, eps_max: float | None = None,
                   eps_grid=None, n_grid: int = 100, n_boot: int = 1000, ci: float = 0.95,
                   target: float = 0.8, seed: Any = 0) -> dict:
    """Coverage curve, area, coverage at ε, ε_target and their bootstrap intervals from δ alone.

    Returns a dict of arrays and numbers (see :class:`CoverageResult` for their meaning).
    """
    d = check_delta(delta)
    n = d.size
    n_boot = check_int("n_boot", n_boot, min_value=0)
    ci = check_float("ci", ci, min_value=0.0, max_value=1.0, min_inclusive=False, max_inclusive=False)
    target = check_float("target", target, min_value=0.0, max_value=1.0, min_inclusive=False)
    if eps_grid is not None:
        grid = np.asarray(eps_grid, np.float64)
        if grid.ndim != 1 or grid.size == 0 or not np.isfinite(grid).all() or (grid <= 0).any() \
                or (np.diff(grid) <= 0).any():
            fail("eps_grid", "an increasing 1-D array of positive numbers", eps_grid)
        eps_max = float(grid[-1])
    else:
        n_grid = check_int("n_grid", n_grid, min_value=2)
        if eps_max is None:
            eps_max = float(d.max()) * (1 + 1e-9) if d.max() > 0 else 1.0
        eps_max = check_eps(eps_max, "eps_max")
        grid = default_grid(eps_max, n_grid)
    if eps is None:
        eps = float(eps_max) / 10
    eps = check_eps(eps)
    order = np.argsort(d, kind="stable")
    ds = d[order]
    order_inv = np.empty(n, np.int64)
    order_inv[order] = np.arange(n)
    idx_grid = np.searchsorted(ds, grid, side="left")
    idx_eps = int(np.searchsorted(ds, eps, side="left"))
    a_sorted = 1.0 - np.minimum(ds, eps_max) / eps_max
    curve = idx_grid / n
    cov_eps = idx_eps / n
    area = float(a_sorted.mean())
    k_target = int(math.ceil(target * n - 1e-12))
    eps_target = float(ds[k_target - 1])
    out = dict(eps_grid=grid, curve=curve, eps=float(eps), coverage=float(cov_eps), area=area,
               eps_max=float(eps_max), target=float(target), eps_target=eps_target, n_boot=n_boot, ci=ci)
    if n_boot == 0:
        nan = np.full(grid.size, np.nan)
        out.update(curve_low=nan, curve_high=nan.copy(), coverage_low=np.nan, coverage_high=np.nan,
                   area_low=np.nan, area_high=np.nan, eps_target_low=np.nan, eps_target_high=np.nan)
        return out
    rng = check_random_state(seed)
    curves, covs, areas, eps_ts = [], [], [], []
    for counts in _boot_counts(n, n_boot, rng, order_inv):
        cum = np.concatenate([np.zeros((counts.shape[0], 1), np.int64), np.cumsum(counts, axis=1)], axis=1)
        curves.append(cum[:, idx_grid] / n)
        covs.append(cum[:, idx_eps] / n)
        areas.append(counts @ a_sorted / n)
        eps_ts.append(ds[np.argmax(cum[:, 1:] >= k_target, axis=1)])
    curves, covs, areas, eps_ts = map(np.concatenate, (curves, covs, areas, eps_ts))
    out["curve_low"], out["curve_high"] = _interval(curves, curve, ci)
    lo, hi = _interval(covs, cov_eps, ci)
    out["coverage_low"], out["coverage_high"] = float(lo), float(hi)
    lo, hi = _interval(areas, area, ci)
    out["area_low"], out["area_high"] = float(lo), float(hi)
    lo, hi = _interval(eps_ts, eps_target, ci)
    out["eps_target_low"], out["eps_target_high"] = float(lo), float(hi)
    return out


def consistency(delta, budget: float) -> tuple[float, float, int]:
    """``(K, sup δ, argmax)`` with K = sup_x δ(x) / budget (0 when both vanish, inf when only budget does)."""
    d = check_delta(delta)
    budget = check_float("budget", budget, min_value=0.0)
    i = int(np.argmax(d))
    sup = float(d[i])
    if budget == 0:
        return (0.0 if sup == 0 else math.inf), sup, i
    return sup / budget, sup, i


# ---------------------------------------------------------------------------------------------
# the result
# ---------------------------------------------------------------------------------------------
@result_dataclass
class CoverageResult(Result):
    """How well one interpretation reproduces the network, input by input.

    Attributes
    ----------
    name, method, kind, replaces, ablation, baseline : str
        What the interpretation is (see :class:`~topo_mi.synthesis.Interpretation`).
    space, norm : str
        Where and how δ is measured (``"logits"``, ``"probs"`` or a layer; l2, l1, linf).
    relative : bool
        Whether δ is divided by ``scale``.
    scale : float
        sqrt(mean_x ‖N(x) − N̄‖²) on the evaluation inputs (1 when ``relative`` is False).
    delta : ndarray of shape (n,)
        δ_I(x) per input (divided by ``scale`` when relative).
    sample_ids : ndarray of shape (n,)
    eps_grid, curve, curve_low, curve_high : ndarray of shape (n_grid,)
        coverage(ε) = #{δ < ε}/n and its pointwise bootstrap interval.
    eps, coverage, coverage_low, coverage_high : float
        The coverage at the chosen ε and its interval.
    area, area_low, area_high : float
        Normalised area under the curve on (0, eps_max].
    eps_max : float
    target, eps_target, eps_target_low, eps_target_high : float
        Coverage reaches ``target`` for every ε > ``eps_target`` (the ⌈target·n⌉-th smallest δ).
    budget : float
        δ_I used by K (absolute units; NaN when none was stated).
    budget_definition : str
    K, sup_delta : float
        K = sup_delta / budget, sup_delta = max_x δ_I(x) in absolute units.
    argmax : int
        Index (into the inputs) of the worst-explained input; ``argmax_id`` its sample id.
    argmax_id : int
    n_boot : int
    ci : float
    seed : int
    fingerprint : str
        The model's fingerprint.
    """

    name: str
    method: str
    kind: str
    replaces: str
    ablation: str
    baseline: str
    space: str
    norm: str
    relative: bool
    scale: float
    delta: np.ndarray
    sample_ids: np.ndarray
    eps_grid: np.ndarray
    curve: np.ndarray
    curve_low: np.ndarray
    curve_high: np.ndarray
    eps: float
    coverage: float
    coverage_low: float
    coverage_high: float
    area: float
    area_low: float
    area_high: float
    eps_max: float
    target: float
    eps_target: float
    eps_target_low: float
    eps_target_high: float
    budget: float
    budget_definition: str
    K: float
    sup_delta: float
    argmax: int
    argmax_id: int
    n_boot: int
    ci: float
    seed: int
    fingerprint: str = ""

    _plot_function = "topo_mi.plotting.synthesis:plot_coverage"

    @property
    def n_samples(self) -> int:
        return int(self.delta.size)

    def explained(self, eps: float | None = None) -> np.ndarray:
        """Boolean mask of the inputs with δ < ε (default: the result's ε)."""
        eps = self.eps if eps is None else check_eps(eps)
        return self.delta < eps

    def coverage_at(self, eps: float) -> float:
        return float(np.mean(self.delta < check_eps(eps)))

    def summary(self) -> dict[str, Any]:
        return {"name": self.name, "space": self.space, "norm": self.norm, "eps": self.eps,
                "coverage": self.coverage, "coverage_low": self.coverage_low, "coverage_high": self.coverage_high,
                "area": self.area, "eps_target": self.eps_target, "K": self.K, "sup_delta": self.sup_delta,
                "n_samples": self.n_samples}


# ---------------------------------------------------------------------------------------------
# computing δ
# ---------------------------------------------------------------------------------------------
def _norm(diff, norm: str):
    import torch

    flat = diff.reshape(diff.shape[0], -1)
    if norm == "l2":
        return torch.linalg.vector_norm(flat, ord=2, dim=1)
    if norm == "l1":
        return flat.abs().sum(dim=1)
    return flat.abs().amax(dim=1) if flat.shape[1] else torch.zeros(flat.shape[0], dtype=flat.dtype)


def _surrogate_in(interp: Interpretation, pred, space: str):
    import torch

    pred = (pred.detach() if isinstance(pred, torch.Tensor) else torch.as_tensor(np.asarray(pred))).to(torch.float64)
    own = interp.space
    if own == space:
        return pred
    if own == "logits" and space == "probs":
        return torch.softmax(pred, dim=-1)
    fail(f"interpretation {interp.name!r}", f"an interpretation predicting {space!r} (or logits, for probs)",
         f"one predicting {own!r}", raw=True)


def _check_interpretation(model, interp, fp: str):
    if not isinstance(interp, Interpretation):
        fail("interpretations", "Interpretation objects (topo_mi.synthesis.circuit, projection, function, ...)",
             interp)
    if interp.fingerprint and interp.fingerprint != fp:
        raise InvalidParameterError(
            f"interpretation {interp.name!r}: expected one built on this model (fingerprint {fp}), got one "
            f"built on a model with fingerprint {interp.fingerprint}")


def discrepancies(model, interpretations, inputs, *, space: str = "logits", norm: str = "l2",
                  batch_size: int = 1024, return_reference: bool = False):
    """δ_I(x) = ‖N(x) − I(x)‖ for each interpretation, in absolute units.

    Returns
    -------
    dict name -> ndarray of shape (n,) (and the reference outputs N(x), float64 tensor, when
    ``return_reference``).
    """
    import torch

    from topo_mi.activations import model_fingerprint

    check_choice("norm", norm, NORMS)
    if not isinstance(space, str) or not space:
        fail("space", "'logits', 'probs' or a layer name", space)
    batch_size = check_int("batch_size", batch_size, min_value=1)
    interps = list(interpretations)
    if not interps:
        fail("interpretations", "at least one interpretation", interps)
    names = [i.name if isinstance(i, Interpretation) else None for i in interps]
    fp = model_fingerprint(model)
    for i in interps:
        _check_interpretation(model, i, fp)
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        fail("interpretations", "distinct names", f"repeated names {dup}", raw=True)
    x = F.as_model_input(inputs, model)
    n = F.n_inputs(x)
    if n == 0:
        fail("inputs", "at least one input", "an empty input set", raw=True)
    states = [i.prepare(model, x) for i in interps]
    deltas = {nm: np.empty(n) for nm in names}
    refs = [] if return_reference else None
    for rows in F.batches(n, batch_size):
        xb = F.take_rows(x, rows)
        ref = F.run_space(model, xb, space)
        if refs is not None:
            if not refs:
                need = ref.element_size() * ref.numel() / len(rows) * n
                if need > _MAX_REFERENCE_BYTES:
                    raise ResourceError(
                        f"inputs: keeping N(x) of {n} inputs in space {space!r} for the relative scale needs "
                        f"{need / 2**30:.1f} GiB (limit {_MAX_REFERENCE_BYTES / 2**30:.0f} GiB); use relative=False, "
                        "a smaller space or fewer inputs")
            refs.append(ref)
        for interp, st in zip(interps, states):
            if interp.kind == "surrogate":
                with torch.no_grad():
                    pred = _surrogate_in(interp, interp.predict(st, rows, xb), space)
            else:
                pred = F.run_space(model, xb, space, interp.ops(model, st, rows, xb))
            if tuple(pred.shape) != tuple(ref.shape):
                fail(f"interpretation {interp.name!r}", f"outputs of the network's shape {tuple(ref.shape)} in "
                     f"space {space!r}", f"shape {tuple(pred.shape)}", raw=True)
            dlt = _norm(ref - pred, norm)
            if not torch.isfinite(dlt).all():
                raise NonFiniteError(f"interpretation {interp.name!r}: expected finite outputs, got "
                                     f"{int((~torch.isfinite(dlt)).sum())} non-finite discrepancies")
            deltas[interp.name][rows] = dlt.numpy()
    if return_reference:
        return deltas, torch.cat(refs)
    return deltas


def _scale_of(ref, norm: str) -> float:
    mean = ref.mean(dim=0, keepdim=True)
    d = _norm(ref - mean, norm).numpy()
    return float(np.sqrt(np.mean(d ** 2)))


def _resolve_budget(interp, delta_abs, space, norm, budget):
    if budget is None or budget == "auto":
        b = interp.budget(space, norm)
        if b is None:
            return float("nan"), "none stated for this space and norm"
        return float(b[0]), b[1]
    if budget == "rms":
        return float(np.sqrt(np.mean(delta_abs ** 2))), "rms: sqrt(mean_x δ(x)²) on the evaluation inputs"
    if isinstance(budget, dict):
        if interp.name not in budget:
            return _resolve_budget(interp, delta_abs, space, norm, None)
        return _resolve_budget(interp, delta_abs, space, norm, budget[interp.name])
    b = check_float("budget", budget, min_value=0.0)
    return b, "given by the user"


def evaluate(model, interpretations, inputs, *, space: str = "logits", norm: str = "l2", eps: float = 0.1,
             relative: bool = False, eps_max: float | None = None, n_grid: int = 100, budget: Any = "auto",
             n_boot: int = 1000, ci: float = 0.95, target: float = 0.8, sample_ids=None, batch_size: int = 1024,
             seed: int = 0) -> list[CoverageResult]:
    """Coverage and consistency of each interpretation on the same inputs (one shared ε grid).

    Parameters
    ----------
    model : torch.nn.Module
        The network N.
    interpretations : Interpretation or list of Interpretation
    inputs : array, tensor or dict of tensors
        The evaluation inputs (their empirical measure is μ).
    space : {"logits", "probs"} or a layer name, default "logits"
    norm : {"l2", "l1", "linf"}, default "l2"
    eps : float > 0, default 0.1
        The ε of the headline coverage (in the units of δ: relative when ``relative``).
    relative : bool, default False
        Divide δ by sqrt(mean ‖N(x) − N̄‖²) (so ε is a fraction of the network's own spread).
    eps_max : float, optional
        Upper end of the ε grid (default: the largest δ of all interpretations, so every curve
        reaches 1).
    n_grid : int, default 100
    budget : "auto", "rms", a number, or a dict name -> any of these, default "auto"
        δ_I for the consistency constant: the interpretation's own (``"auto"``), the RMS of δ
        (``"rms"``), or a number in absolute units.
    n_boot : int, default 1000
        Bootstrap resamples (0: no intervals).
    ci : float, default 0.95
    target : float, default 0.8
        Coverage level whose ε is reported (``eps_target``).
    sample_ids : array of shape (n,), optional
        Ids of the inputs (default 0..n−1), reported for the worst input.
    seed : int, default 0
        Seeds the bootstrap (and resample ablations through the interpretations' own seeds).

    Returns
    -------
    list of CoverageResult, in the order given.
    """
    from topo_mi.activations import model_fingerprint

    if isinstance(interpretations, Interpretation):
        interpretations = [interpretations]
    interps = list(interpretations)
    eps = check_eps(eps)
    if not isinstance(relative, (bool, np.bool_)):
        fail("relative", "True or False", relative)
    seed = check_int("seed", seed, min_value=0)
    if relative:
        deltas, ref = discrepancies(model, interps, inputs, space=space, norm=norm, batch_size=batch_size,
                                    return_reference=True)
    else:
        deltas, ref = discrepancies(model, interps, inputs, space=space, norm=norm, batch_size=batch_size), None
    n = next(iter(deltas.values())).size
    if sample_ids is None:
        ids = np.arange(n)
    else:
        ids = np.asarray(sample_ids)
        if ids.shape != (n,):
            fail("sample_ids", f"one id per input ({n})", ids)
    scale = _scale_of(ref, norm) if relative else 1.0
    if relative and scale == 0:
        fail("relative", "False for a network whose outputs do not vary over the inputs (scale 0)", relative)
    rel = {k: v / scale for k, v in deltas.items()}
    if eps_max is None:
        top = max(float(v.max()) for v in rel.values())
        eps_max = top * (1 + 1e-9) if top > 0 else max(eps, 1.0)
    eps_max = check_eps(eps_max, "eps_max")
    grid = default_grid(eps_max, check_int("n_grid", n_grid, min_value=2))
    fp = model_fingerprint(model)
    out = []
    for k, interp in enumerate(interps):
        st = coverage_stats(rel[interp.name], eps=eps, eps_grid=grid, n_boot=n_boot, ci=ci, target=target,
                            seed=np.random.SeedSequence([seed, k]))
        b, bdef = _resolve_budget(interp, deltas[interp.name], space, norm, budget)
        if math.isnan(b):
            K, sup, i = float("nan"), float(deltas[interp.name].max()), int(np.argmax(deltas[interp.name]))
        else:
            K, sup, i = consistency(deltas[interp.name], b)
        info = interp.info()
        out.append(CoverageResult(
            name=interp.name, method=info["method"], kind=info["kind"], replaces=info["replaces"],
            ablation=info["ablation"], baseline=info["baseline"], space=space, norm=norm, relative=bool(relative),
            scale=float(scale), delta=rel[interp.name], sample_ids=ids, budget=b, budget_definition=bdef, K=K,
            sup_delta=sup, argmax=i, argmax_id=int(ids[i]) if ids.dtype.kind in "iu" else i, seed=seed,
            fingerprint=fp, **st))
    return out


def coverage(model, interpretation, inputs, **kw) -> CoverageResult:
    """:func:`evaluate` for one interpretation."""
    if not isinstance(interpretation, Interpretation):
        fail("interpretation", "an Interpretation", interpretation)
    return evaluate(model, [interpretation], inputs, **kw)[0]


__all__ = ["CoverageResult", "coverage", "evaluate", "discrepancies", "coverage_stats", "coverage_curve",
           "consistency"]
