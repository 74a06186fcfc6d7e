"""Pluralism: several interpretations together explain more inputs than any one alone.

An input is explained by member i when δ_i(x) < ε. The combination explains x by a rule over the
members' verdicts: ``"any"`` (the union: some member explains it), ``"all"`` (every member does),
``"majority"`` (more than half do), an integer k (at least k do), or a function
``rule(explained) -> mask`` of the boolean (n_members, n) matrix. The overlap matrix
O[i, j] = #{x explained by both i and j} / n has the members' coverages on its diagonal.
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

from topo_mi._results import Result, result_dataclass
from topo_mi._validation import check_float, check_int, check_random_state, fail
from topo_mi.synthesis._coverage import CoverageResult, _boot_counts, _interval, check_eps


def _rule_fn(rule, m: int) -> tuple[Callable, str]:
    if callable(rule):
        return rule, getattr(rule, "__name__", "custom")
    if rule == "any":
        return (lambda e: e.any(axis=0)), "any"
    if rule == "all":
        return (lambda e: e.all(axis=0)), "all"
    if rule == "majority":
        return (lambda e: e.sum(axis=0) * 2 > e.shape[0]), "majority"
    if isinstance(rule, (int, np.integer)) and not isinstance(rule, bool):
        k = check_int("rule", rule, min_value=1, max_value=m)
        return (lambda e: e.sum(axis=0) >= k), f"at least {k}"
    fail("rule", "'any', 'all', 'majority', an integer k or a function of the (members, n) boolean matrix", rule)


def _apply(fn, explained: np.ndarray, name: str) -> np.ndarray:
    out = np.asarray(fn(explained))
    if out.shape != (explained.shape[1],) or out.dtype != bool:
        fail("rule", f"a function returning a boolean mask of shape ({explained.shape[1]},)",
             f"an array of shape {out.shape} and dtype {out.dtype}", raw=True)
    return out


@result_dataclass
class PluralismResult(Result):
    """Members' coverages, the combination's, and how the members overlap (at one ε).

    Attributes
    ----------
    names : list of str
    eps : float
    rule : str
    explained : ndarray of bool, shape (n_members, n)
        δ_i(x) < ε.
    combined : ndarray of bool, shape (n,)
        The rule's verdict per input.
    member_coverage, member_low, member_high : ndarray of shape (n_members,)
    coverage, coverage_low, coverage_high : float
        The combination's coverage and its bootstrap interval (the same resamples as the members').
    best_member : str
        The member with the highest coverage; ``gain`` = coverage − its coverage.
    gain : float
    overlap : ndarray of shape (n_members, n_members)
        Fraction of inputs explained by both i and j.
    exclusive : ndarray of shape (n_members,)
        Fraction explained by member i and no other.
    eps_grid : ndarray of shape (n_grid,)
    member_curves : ndarray of shape (n_members, n_grid)
    curve : ndarray of shape (n_grid,)
        The combination's coverage at each ε of the grid.
    space, norm : str
    n_boot : int
    ci : float
    """

    names: list
    eps: float
    rule: str
    explained: np.ndarray
    combined: np.ndarray
    member_coverage: np.ndarray
    member_low: np.ndarray
    member_high: np.ndarray
    coverage: float
    coverage_low: float
    coverage_high: float
    best_member: str
    gain: float
    overlap: np.ndarray
    exclusive: np.ndarray
    eps_grid: np.ndarray
    member_curves: np.ndarray
    curve: np.ndarray
    space: str
    norm: str
    n_boot: int
    ci: float

    _plot_function = "topo_mi.plotting.synthesis:plot_pluralism"

    def summary(self) -> dict[str, Any]:
        out = {f"coverage_{n}": float(c) for n, c in zip(self.names, self.member_coverage)}
        out.update(rule=self.rule, eps=self.eps, coverage=self.coverage, coverage_low=self.coverage_low,
                   coverage_high=self.coverage_high, best_member=self.best_member, gain=self.gain)
        return out


def combine(results, *, eps: float | None = None, rule: Any = "any", n_boot: int = 1000, ci: float = 0.95,
            seed: int = 0) -> PluralismResult:
    """Combine interpretations evaluated on the same inputs (:func:`evaluate`'s results).

    Parameters
    ----------
    results : list of CoverageResult
        Same inputs (sample ids), space, norm and scaling.
    eps : float, optional
        Default: the members' common ε.
    rule : "any", "all", "majority", int or callable, default "any"
    n_boot, ci, seed
        Percentile bootstrap over inputs, one set of resamples for every member and the combination.
    """
    results = list(results)
    if not results or not all(isinstance(r, CoverageResult) for r in results):
        fail("results", "a non-empty list of CoverageResult (from topo_mi.synthesis.evaluate)", results)
    r0 = results[0]
    for r in results[1:]:
        same = (r.n_samples == r0.n_samples and np.array_equal(r.sample_ids, r0.sample_ids)
                and (r.space, r.norm, r.relative) == (r0.space, r0.norm, r0.relative)
                and np.isclose(r.scale, r0.scale))
        if not same:
            fail("results", f"interpretations evaluated on the same inputs, space, norm and scale as {r0.name!r}",
                 f"{r.name!r} ({r.n_samples} inputs, space {r.space!r}, norm {r.norm!r}, relative {r.relative})",
                 raw=True)
    names = [r.name for r in results]
    if len(set(names)) != len(names):
        fail("results", "distinct interpretation names", names)
    if eps is None:
        epss = {r.eps for r in results}
        if len(epss) != 1:
            fail("eps", "a value (the members were evaluated at different ε)", sorted(epss))
        eps = epss.pop()
    eps = check_eps(eps)
    n_boot = check_int("n_boot", n_boot, min_value=0)
    ci = check_float("ci", ci, min_value=0.0, max_value=1.0, min_inclusive=False, max_inclusive=False)
    m, n = len(results), r0.n_samples
    fn, rule_name = _rule_fn(rule, m)
    D = np.stack([r.delta for r in results])
    E = D < eps
    comb = _apply(fn, E, rule_name)
    Ef = E.astype(np.float64)
    overlap = Ef @ Ef.T / n
    others = E.sum(axis=0, keepdims=True) - E
    exclusive = (E & (others == 0)).mean(axis=1)
    mem = E.mean(axis=1)
    cov = float(comb.mean())
    grid = r0.eps_grid
    if rule_name == "any":
        curve = np.searchsorted(np.sort(D.min(axis=0)), grid, side="left") / n
    elif rule_name == "all":
        curve = np.searchsorted(np.sort(D.max(axis=0)), grid, side="left") / n
    else:
        curve = np.array([_apply(fn, D < g, rule_name).mean() for g in grid])
    member_curves = np.stack([np.searchsorted(np.sort(d), grid, side="left") / n for d in D])
    if n_boot:
        rng = check_random_state(seed)
        A = np.vstack([Ef, comb[None].astype(np.float64)])  # (m + 1, n)
        S = np.concatenate([counts @ A.T / n for counts in _boot_counts(n, n_boot, rng, np.arange(n))])  # (n_boot, m + 1)
        lo, hi = _interval(S, np.concatenate([mem, [cov]]), ci)
    else:
        lo = hi = np.full(m + 1, np.nan)
    best = int(np.argmax(mem))
    return PluralismResult(names=names, eps=float(eps), rule=rule_name, explained=E, combined=comb,
                           member_coverage=mem, member_low=lo[:m], member_high=hi[:m], coverage=cov,
                           coverage_low=float(lo[m]), coverage_high=float(hi[m]), best_member=names[best],
                           gain=float(cov - mem[best]), overlap=overlap, exclusive=exclusive, eps_grid=grid,
                           member_curves=member_curves, curve=curve, space=r0.space, norm=r0.norm,
                           n_boot=n_boot, ci=ci)


__all__ = ["PluralismResult", "combine"]
