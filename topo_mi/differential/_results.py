"""Result types of :mod:`topo_mi.differential` (numpy only: loading a saved result needs no torch)."""
from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from topo_mi._results import Result, result_dataclass
from topo_mi.errors import InvalidParameterError


@result_dataclass
class AttributionResult(Result):
    """Attributions of one scalar per sample to the input features or to a layer's units.

    Attributes
    ----------
    method : str
        ``"saliency"``, ``"input_x_gradient"``, ``"smoothgrad"`` or ``"integrated_gradients"``.
    attributions : ndarray of shape (n, *unit_shape)
        One map per sample (input features, or the units of ``layer``'s output).
    f_inputs : ndarray of shape (n,)
        The attributed scalar ``f(x)`` at each sample.
    f_baseline : ndarray of shape (n,)
        ``f(x')`` at the baseline (integrated gradients; NaN otherwise).
    delta : ndarray of shape (n,)
        Completeness error ``|sum(attributions) - (f(x) - f(x'))|`` per sample (integrated
        gradients; NaN otherwise).
    rule : str
        Integrated gradients: ``"gauss_legendre"``, ``"trapezoid"``, ``"riemann_left"``,
        ``"riemann_right"``, ``"riemann_middle"`` or ``"exact"`` (the piecewise-linear path);
        ``""`` otherwise.
    steps : int
        Quadrature nodes (integrated gradients) or noisy samples (smoothgrad); 0 otherwise.
    n_segments : ndarray of shape (n,)
        The exact path: number of linear pieces of the straight path per sample (empty otherwise).
    layer : str
        Module whose output is attributed (``""``: the inputs).
    target : str
        What was attributed (the ``target`` argument, as text).
    """

    method: str
    attributions: np.ndarray
    f_inputs: np.ndarray
    f_baseline: np.ndarray
    delta: np.ndarray
    rule: str
    steps: int
    n_segments: np.ndarray
    layer: str
    target: str

    _plot_function: ClassVar[str] = "topo_mi.plotting.differential:plot_attributions"

    @property
    def n(self) -> int:
        return int(self.attributions.shape[0])

    def unit_importance(self) -> np.ndarray:
        """Mean absolute attribution of each unit over the samples (shape ``unit_shape``)."""
        return np.mean(np.abs(self.attributions), axis=0)

    def summary(self) -> dict[str, Any]:
        imp = self.unit_importance().ravel()
        out: dict[str, Any] = {"method": self.method, "layer": self.layer or "input", "n": self.n,
                               "n_units": int(imp.size), "mean_abs": float(imp.mean()),
                               "top_unit": int(np.argmax(imp))}
        if self.method == "integrated_gradients":
            out.update({"rule": self.rule, "steps": self.steps, "max_delta": float(np.max(self.delta)),
                        "mean_delta": float(np.mean(self.delta)),
                        "mean_f_difference": float(np.mean(self.f_inputs - self.f_baseline))})
            if self.rule == "exact":
                out["mean_segments"] = float(np.mean(self.n_segments))
        return out


@result_dataclass
class HessianTrace(Result):
    """Hutchinson estimate of ``tr(H)`` (see :func:`topo_mi.differential.hutchinson_trace`).

    Attributes
    ----------
    trace : float
        Mean of the probe values ``v^T H v``.
    stderr : float
        Standard error: sample standard deviation of the probe values over ``sqrt(n_probes)``.
    samples : ndarray of shape (n_probes,)
        Every ``v^T H v``.
    n_probes : int
    converged : bool
        Whether ``stderr <= rtol * |trace|`` (or ``atol``) was reached before ``max_probes``.
    distribution : str
        ``"rademacher"`` or ``"gaussian"``.
    dim : int
    seed : int
        The seed given (-1 when a Generator was passed).
    """

    trace: float
    stderr: float
    samples: np.ndarray
    n_probes: int
    converged: bool
    distribution: str
    dim: int
    seed: int

    _plot_function: ClassVar[str] = "topo_mi.plotting.differential:plot_trace"

    def summary(self) -> dict[str, Any]:
        return {"trace": self.trace, "stderr": self.stderr, "n_probes": self.n_probes,
                "converged": self.converged, "dim": self.dim}


@result_dataclass
class SpectralDensity(Result):
    """Spectral density of a symmetric operator by stochastic Lanczos quadrature.

    Attributes
    ----------
    nodes : ndarray of shape (n_vectors, m)
        Ritz values of each probe's Lanczos run (Gauss quadrature nodes).
    weights : ndarray of shape (n_vectors, m)
        Squared first components of the Ritz vectors (quadrature weights; each row sums to 1).
    grid : ndarray of shape (n_grid,)
    density : ndarray of shape (n_grid,)
        ``(1/n_vectors) sum_v sum_i w_vi N(t; theta_vi, sigma^2)``: integrates to about 1 over the
        grid (a density of eigenvalues per unit, normalised by the dimension).
    sigma : float
        Gaussian kernel width.
    dim, n_vectors, m : int
    seed : int
        The seed given (-1 when a Generator was passed).
    """

    nodes: np.ndarray
    weights: np.ndarray
    grid: np.ndarray
    density: np.ndarray
    sigma: float
    dim: int
    n_vectors: int
    m: int
    seed: int

    _plot_function: ClassVar[str] = "topo_mi.plotting.differential:plot_density"

    def moment(self, j: int) -> float:
        """Quadrature estimate of ``tr(H^j) / dim``."""
        return float(np.mean(np.sum(self.weights * self.nodes ** j, axis=1)))

    def fraction_below(self, t: float = 0.0) -> float:
        """Quadrature estimate of the fraction of eigenvalues below ``t``."""
        return float(np.mean(np.sum(self.weights * (self.nodes < t), axis=1)))

    def summary(self) -> dict[str, Any]:
        return {"dim": self.dim, "n_vectors": self.n_vectors, "m": self.m,
                "trace_estimate": self.moment(1) * self.dim, "fraction_negative": self.fraction_below(0.0),
                "min_node": float(self.nodes.min()), "max_node": float(self.nodes.max())}


@result_dataclass
class HessianSpectrum(Result):
    r"""Extreme eigenvalues of a loss Hessian (see :func:`topo_mi.differential.hessian_spectrum`).

    Eigenvalues are signed. ``lambda_max`` is the largest algebraic eigenvalue, ``lambda_min`` the
    smallest algebraic one, ``largest_magnitude`` the eigenvalue of largest ``|lambda|`` with its
    sign (what power iteration converges to).

    Condition number. ``condition_number = lambda_max / lambda_min`` when ``lambda_min > 0`` (a
    positive-definite Hessian) and NaN otherwise: an indefinite or singular Hessian has no
    condition number, and none is made up with absolute values. ``n_negative`` counts the negative
    eigenvalues (exact when ``n_negative_exact``: the exact method, or Lanczos runs that converged
    the whole spectrum; otherwise the number among the computed ones, a lower bound), and
    ``condition_number_positive = lambda_max / lambda_min_positive`` is the condition number over
    the positive part of the spectrum, ``lambda_min_positive`` being the smallest positive eigenvalue
    computed (exact with the exact method; otherwise the smallest positive Ritz value found, so an
    upper bound of the true one and a lower bound of the true positive-part condition number).

    Attributes
    ----------
    top : ndarray of shape (k,)
        The ``k`` largest eigenvalues, descending (empty when not asked).
    bottom : ndarray of shape (k,)
        The ``k`` smallest eigenvalues, ascending (empty when not asked).
    largest_magnitude : float
    top_vectors, bottom_vectors : ndarray of shape (dim, k)
        Eigenvectors (unit columns, in the order of ``top``/``bottom``; shape ``(0, 0)`` unless
        asked for).
    residuals : ndarray of shape (len(top) + len(bottom),)
        ``||H q - theta q||`` bounds of the Ritz pairs (``top`` first), zero for the exact method.
    n_negative : int
    n_negative_exact : bool
    lambda_min_positive : float
    trace : HessianTrace or None
    density : SpectralDensity or None
    method : str
        ``"lanczos"`` or ``"exact"``.
    n_matvecs : int
        Hessian-vector products used by the eigenvalue computation.
    dim : int
        Number of parameters.
    params : list of str
        Names of the parameters the Hessian is taken over.
    reduction : str
    loss : str
    loss_value : float
    seed : int
    """

    top: np.ndarray
    bottom: np.ndarray
    largest_magnitude: float
    top_vectors: np.ndarray
    bottom_vectors: np.ndarray
    residuals: np.ndarray
    n_negative: int
    n_negative_exact: bool
    lambda_min_positive: float
    trace: Any
    density: Any
    method: str
    n_matvecs: int
    dim: int
    params: list
    reduction: str
    loss: str
    loss_value: float
    seed: int

    _plot_function: ClassVar[str] = "topo_mi.plotting.differential:plot_spectrum"

    @property
    def lambda_max(self) -> float:
        return float(self.top[0]) if self.top.size else float("nan")

    @property
    def lambda_min(self) -> float:
        return float(self.bottom[0]) if self.bottom.size else float("nan")

    @property
    def condition_number(self) -> float:
        """``lambda_max / lambda_min`` for a positive-definite Hessian, NaN otherwise."""
        lo, hi = self.lambda_min, self.lambda_max
        return float(hi / lo) if lo > 0 and np.isfinite(hi) else float("nan")

    @property
    def condition_number_positive(self) -> float:
        """``lambda_max / lambda_min_positive``: the condition number of the positive part."""
        lo = self.lambda_min_positive
        return float(self.lambda_max / lo) if np.isfinite(lo) and lo > 0 else float("nan")

    def require_positive_definite(self, what: str = "this quantity") -> None:
        """Raise when the Hessian is not positive definite (for Cholesky-type quantities)."""
        if not self.bottom.size:
            raise InvalidParameterError(f"which: expected the bottom eigenvalues to be computed for {what}, "
                                        "got which='top' (use which='both')")
        if self.lambda_min <= 0:
            raise InvalidParameterError(
                f"hessian: expected a positive-definite Hessian for {what}, got lambda_min = {self.lambda_min:.6g} "
                f"({self.n_negative} negative eigenvalue(s){'' if self.n_negative_exact else ' at least'}); "
                "add damping or use condition_number_positive")

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {"method": self.method, "dim": self.dim, "lambda_max": self.lambda_max,
                               "lambda_min": self.lambda_min, "largest_magnitude": self.largest_magnitude,
                               "condition_number": self.condition_number,
                               "condition_number_positive": self.condition_number_positive,
                               "n_negative": self.n_negative, "n_negative_exact": self.n_negative_exact,
                               "n_matvecs": self.n_matvecs, "loss_value": self.loss_value,
                               "reduction": self.reduction}
        if self.trace is not None:
            out.update({"trace": self.trace.trace, "trace_stderr": self.trace.stderr})
        if self.density is not None:
            out["fraction_negative_slq"] = self.density.fraction_below(0.0)
        return out


__all__ = ["AttributionResult", "HessianTrace", "SpectralDensity", "HessianSpectrum"]
