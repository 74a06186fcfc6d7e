"""Result types of :mod:`topo_mi.dynamics` (numpy only: loading a saved result needs no torch)."""
from __future__ import annotations

import warnings
from typing import ClassVar

import numpy as np

from topo_mi._results import Result, result_dataclass
from topo_mi._validation import check_int, fail
from topo_mi.errors import NonFiniteError


def kaplan_yorke(exponents: np.ndarray, dim: int | None = None) -> float:
    """Kaplan–Yorke (Lyapunov) dimension ``j + S_j / |lambda_{j+1}|`` of a descending spectrum.

    ``j`` is the largest index with ``S_j = lambda_1 + ... + lambda_j >= 0``. Returns 0 when
    ``lambda_1 < 0``, ``dim`` when every partial sum is non-negative and the spectrum is complete
    (``len(exponents) == dim``), and NaN when it is not complete (the dimension is not determined
    by the exponents computed) or ``lambda_1 = +inf``. Empty input or NaN exponents raise
    :class:`~topo_mi.errors.InvalidParameterError`.
    """
    raw = np.asarray(exponents, dtype=np.float64)
    if raw.ndim != 1 or raw.size == 0:
        fail("exponents", "a non-empty 1-D array of Lyapunov exponents", raw)
    if np.isnan(raw).any():
        raise NonFiniteError(f"exponents: expected no NaN, got {int(np.isnan(raw).sum())} NaN of {raw.size}")
    if dim is not None:
        dim = check_int("dim", dim, min_value=raw.size)
    lam = np.sort(raw)[::-1]
    if not np.isfinite(lam[0]):  # +inf: an unbounded expansion rate, no finite dimension
        return float("nan")
    if lam[0] < 0:
        return 0.0
    with np.errstate(invalid="ignore"):
        csum = np.cumsum(lam)
    nonneg = np.nonzero(csum >= 0)[0]
    j = int(nonneg[-1]) + 1  # number of exponents in the non-negative partial sum
    if j == lam.size:
        return float(dim) if dim is not None and dim == lam.size else float("nan")
    return float(j + csum[j - 1] / abs(lam[j]))


@result_dataclass
class LyapunovResult(Result):
    """Lyapunov spectrum of a map (or of one integrator step of a flow), see :func:`lyapunov_spectrum`.

    Attributes
    ----------
    exponents : ndarray of shape (k,)
        The ``k`` largest exponents per time unit (per step divided by ``dt``), descending; the
        mean over trajectories for an ensemble.
    stderr : ndarray of shape (k,)
        Standard error of each exponent: standard deviation of the block estimates divided by
        the square root of their number (blocks are contiguous time windows of each trajectory).
    trace : ndarray of shape (n_trace, k)
        Running estimate after each recorded QR step of the measured phase (convergence trace).
    trace_time : ndarray of shape (n_trace,)
        Time (steps x dt) since the end of the transient for each row of ``trace``.
    block_exponents : ndarray of shape (n_members * n_blocks, k)
        The estimate from each block (the samples behind ``stderr``).
    member_exponents : ndarray of shape (n_members, k)
        The estimate from each trajectory (one row without an ensemble).
    final_state : ndarray
        State after the last step (``x0``'s shape).
    n_steps, transient, qr_every, k, dim, n_members, n_blocks : int
    dt : float
    ensemble : bool
    tangent : str
        ``"jvp"`` (k tangent vectors pushed by Jacobian-vector products) or ``"jacobian"``
        (the full Jacobian formed at each step).
    seed : int
        Seed of the random initial frame.
    label : str
    """

    exponents: np.ndarray
    stderr: np.ndarray
    trace: np.ndarray
    trace_time: np.ndarray
    block_exponents: np.ndarray
    member_exponents: np.ndarray
    final_state: np.ndarray
    n_steps: int
    transient: int
    dt: float
    qr_every: int
    k: int
    dim: int
    n_members: int
    n_blocks: int
    ensemble: bool
    tangent: str
    seed: int
    label: str = ""

    _plot_function: ClassVar[str] = "topo_mi.plotting.dynamics:plot_spectrum"

    @property
    def lambda_max(self) -> float:
        return float(self.exponents[0])

    @property
    def kaplan_yorke_dimension(self) -> float:
        """Kaplan–Yorke dimension (NaN when the k exponents computed do not determine it)."""
        lam = np.asarray(self.exponents, dtype=np.float64)
        if lam.size == 0 or np.isnan(lam).any():
            return float("nan")
        return kaplan_yorke(lam, self.dim if self.dim is None or self.dim >= lam.size else None)

    def summary(self):
        out = {"lambda_max": float(self.exponents[0]), "lambda_max_stderr": float(self.stderr[0]),
               "n_positive": int(np.sum(self.exponents > 0)), "sum": float(np.sum(self.exponents)),
               "kaplan_yorke_dimension": self.kaplan_yorke_dimension, "k": self.k, "dim": self.dim,
               "n_steps": self.n_steps, "dt": self.dt, "n_members": self.n_members}
        if self.label:
            out = {"label": self.label, **out}
        return out

    def plot_convergence(self, ax=None, **kwargs):
        """The running estimates against time (see :func:`topo_mi.plotting.dynamics.plot_convergence`)."""
        from topo_mi.plotting.dynamics import plot_convergence

        return plot_convergence(self, ax=ax, **kwargs)


@result_dataclass
class LayerJacobians(Result):
    """Per-input Jacobians of each layer map, see :func:`layer_jacobians`.

    Attributes
    ----------
    layers : list of str
        Names of the states ``h_0 .. h_L``.
    maps : list of str
        ``"h_l->h_{l+1}"`` for each of the ``L`` maps.
    jacobians : list of L ndarrays of shape (n_inputs, d_{l+1}, d_l)
        ``d h_{l+1} / d h_l`` at each input (float64; per-sample states flattened).
    n_inputs : int
    """

    layers: list
    maps: list
    jacobians: list
    n_inputs: int

    _plot_function: ClassVar[str] = "topo_mi.plotting.dynamics:plot_layer_singular_values"

    def __len__(self) -> int:
        return len(self.jacobians)

    def singular_values(self) -> list:
        """Singular values of each layer's Jacobians: a list of ``(n_inputs, min(d_out, d_in))``."""
        return [np.linalg.svd(J, compute_uv=False) for J in self.jacobians]

    def summary(self):
        return {"n_inputs": self.n_inputs, "n_maps": len(self.maps),
                "shapes": ", ".join("x".join(map(str, J.shape[1:])) for J in self.jacobians)}


@result_dataclass
class JacobianProduct(Result):
    """The end-to-end Jacobian ``J_{L-1} ... J_0`` per input, see :func:`jacobian_product`.

    Attributes
    ----------
    layers : list of str
    singular_values : ndarray of shape (n_inputs, r)
        Descending; ``r = min(d_L, d_0)`` (method ``"full"``) or ``k`` (``"randomized"``).
    products : ndarray of shape (n_inputs, d_L, d_0) or None
        The products themselves when ``keep_products=True`` (method ``"full"`` only).
    method : str
        ``"full"`` (layer Jacobians multiplied in float64, then an SVD) or ``"randomized"``
        (subspace iteration with Jacobian-vector and vector-Jacobian products of the composed map).
    depth : int
        Number of maps ``L``.
    """

    layers: list
    singular_values: np.ndarray
    products: object
    method: str
    depth: int

    _plot_function: ClassVar[str] = "topo_mi.plotting.dynamics:plot_product_singular_values"

    def summary(self):
        s = self.singular_values
        with np.errstate(divide="ignore"):
            return {"n_inputs": int(s.shape[0]), "depth": self.depth, "method": self.method,
                    "sigma_max_median": float(np.median(s[:, 0])),
                    "log_sigma_max_mean": float(np.mean(np.log(s[:, 0])))}


@result_dataclass
class FTLEResult(Result):
    """Finite-time Lyapunov exponents of a deep network with depth as time, see :func:`finite_time_lyapunov`.

    Attributes
    ----------
    layers : list of str
        States ``h_0 .. h_L``.
    maps : list of str
        The ``L`` maps ``"h_l->h_{l+1}"``.
    exponents : ndarray of shape (n_inputs, r)
        ``(1/L) ln sigma_i`` of the end-to-end Jacobian at each input, descending; ``-inf`` for
        numerically singular directions (``sigma_i < resolution * L * sigma_1``, e.g. behind
        dead ReLU units).
    layer_singular_values : list of L ndarrays of shape (n_inputs, r_l)
        Singular values of each layer map's Jacobian at each input, descending (raw).
    layer_expansion : ndarray of shape (n_inputs, L)
        ``ln sigma_max`` of each layer map: > 0 where the layer stretches some direction.
    layer_log_volume : ndarray of shape (n_inputs, L)
        Mean ``ln sigma_i`` over the numerically non-zero singular values computed: < 0 where
        the layer contracts on average within the subspace it keeps (for a square, non-singular
        map with every value computed, ``ln|det J| / d``).
    depth : int
    method : str
        ``"full"`` or ``"randomized"`` (top ``k`` singular values only).
    k : int or None
    rank : int ndarray of shape (n_inputs,)
        Numerical rank of the end-to-end Jacobian (among the values computed).
    layer_rank : int ndarray of shape (n_inputs, L)
        Numerical rank of each layer map's Jacobian.
    resolution : float
        ``10 eps width`` in float64: a layer's singular values below
        ``resolution * sigma_max(J_l)`` count as zero (the product's below
        ``resolution * L * sigma_1``).
    """

    layers: list
    maps: list
    exponents: np.ndarray
    layer_singular_values: list
    layer_expansion: np.ndarray
    layer_log_volume: np.ndarray
    depth: int
    method: str
    k: object = None
    rank: object = None
    layer_rank: object = None
    resolution: float = 0.0

    _plot_function: ClassVar[str] = "topo_mi.plotting.dynamics:plot_layer_singular_values"

    @property
    def lambda_max(self) -> np.ndarray:
        """The top finite-time exponent of each input, shape ``(n_inputs,)``."""
        return self.exponents[:, 0]

    def summary(self):
        """Headline figures; the FTLE statistics are over inputs whose Jacobian is not numerically
        zero (``n_singular_inputs`` counts the others)."""
        lam_all = self.exponents[:, 0]
        lam = lam_all[np.isfinite(lam_all)]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            mean_exp = np.where(np.isfinite(self.layer_expansion), self.layer_expansion, np.nan)
            mean_exp = np.nanmean(mean_exp, axis=0) if mean_exp.size else mean_exp
        stat = (lambda f: float(f(lam))) if lam.size else (lambda f: float("nan"))
        return {"n_inputs": int(lam_all.size), "depth": self.depth,
                "ftle_max_mean": stat(np.mean), "ftle_max_std": stat(np.std),
                "ftle_max_median": stat(np.median), "n_singular_inputs": int(lam_all.size - lam.size),
                "fraction_expanding": float(np.mean(lam_all > 0)),
                "most_expanding_map": self.maps[int(np.nanargmax(mean_exp))] if self.maps and np.isfinite(mean_exp).any() else "",
                "mean_layer_expansion": float(np.nanmean(mean_exp)) if np.isfinite(mean_exp).any() else float("nan"),
                "median_rank": float(np.median(self.rank)) if self.rank is not None else float("nan")}

    def plot_distribution(self, ax=None, **kwargs):
        from topo_mi.plotting.dynamics import plot_ftle

        return plot_ftle(self, ax=ax, **kwargs)


@result_dataclass
class ResidualFitResult(Result):
    """How well a residual stack follows ``h_{t+1} = h_t + dt sigma(W h_t + b)``, see :func:`residual_ode_fit`.

    Attributes
    ----------
    blocks : list of str
    euler_error : ndarray of shape (n_inputs, L)
        ``||h_{t+1} - (h_t + dt sigma(W h_t + b))|| / ||h_{t+1} - h_t||`` with the block's own
        ``W, b`` (``source == "weights"``) or least-squares ones (``"fit"``).
    flow_error : ndarray of shape (n_inputs, L)
        ``||h_{t+1} - Phi_dt(h_t)|| / ||h_{t+1} - h_t||`` with ``Phi_dt`` the exact flow of
        ``dh/dt = sigma(W h + b)`` over ``dt`` (RK4 with ``n_substeps`` substeps): small when the
        block is a good discretisation of a continuous-time flow.
    relative_update : ndarray of shape (n_inputs, L)
        ``||h_{t+1} - h_t|| / ||h_t||``.
    weight_change : ndarray of shape (L - 1,)
        ``||W_{t+1} - W_t||_F / ||W_t||_F`` between consecutive blocks (an ODE needs slowly
        varying weights).
    dt : ndarray of shape (L,)
    source : list of str
    activation : list of str
    """

    blocks: list
    euler_error: np.ndarray
    flow_error: np.ndarray
    relative_update: np.ndarray
    weight_change: np.ndarray
    dt: np.ndarray
    source: list
    activation: list

    _plot_function: ClassVar[str] = "topo_mi.plotting.dynamics:plot_residual_fit"

    def summary(self):
        e = np.nanmean(self.euler_error, axis=0) if self.euler_error.size else np.array([np.nan])
        f = np.nanmean(self.flow_error, axis=0) if self.flow_error.size else np.array([np.nan])
        return {"n_blocks": len(self.blocks), "euler_error_mean": float(np.nanmean(e)),
                "euler_error_max": float(np.nanmax(e)), "flow_error_mean": float(np.nanmean(f)),
                "flow_error_max": float(np.nanmax(f)),
                "relative_update_mean": float(np.nanmean(self.relative_update)) if self.relative_update.size else float("nan"),
                "weight_change_mean": float(np.mean(self.weight_change)) if self.weight_change.size else float("nan")}


@result_dataclass
class FixedPointResult(Result):
    """Fixed points of a map (``step(x) = x``) or zeros of a vector field, see :func:`fixed_points`.

    Attributes
    ----------
    points : ndarray of shape (m, dim)
        Where each search ended (one row per initial guess).
    converged : bool ndarray of shape (m,)
    residual : ndarray of shape (m,)
        ``||step(x) - x||`` (map) or ``||f(x)||`` (flow) at the end.
    n_iter : int ndarray of shape (m,)
    eigenvalues_real, eigenvalues_imag : ndarray of shape (m, dim)
        Eigenvalues of the Jacobian at each point, by decreasing modulus (map) or real part (flow).
    spectral_radius : ndarray of shape (m,)
        ``max |eig|`` of the Jacobian of the map (NaN for a flow).
    max_real_part : ndarray of shape (m,)
        ``max Re eig`` of the Jacobian (for a map: of ``J - I``).
    stable : bool ndarray of shape (m,)
        Linearly stable: spectral radius < 1 (map), max real part < 0 (flow); False where not
        converged.
    kind, method : str
    tol : float
    """

    points: np.ndarray
    converged: np.ndarray
    residual: np.ndarray
    n_iter: np.ndarray
    eigenvalues_real: np.ndarray
    eigenvalues_imag: np.ndarray
    spectral_radius: np.ndarray
    max_real_part: np.ndarray
    stable: np.ndarray
    kind: str
    method: str
    tol: float

    _plot_function: ClassVar[str] = "topo_mi.plotting.dynamics:plot_fixed_points"

    def unique(self, *, atol: float | None = None) -> np.ndarray:
        """Indices of distinct converged points (the first of each cluster).

        Two points are the same when ``max |p_i - p_j| <= atol * max(1, max |p_j|)``; default
        ``atol = sqrt(tol)`` (the accuracy Newton's residual guarantees near a regular point).
        """
        atol = float(np.sqrt(self.tol)) if atol is None else float(atol)
        keep: list[int] = []
        for i in np.nonzero(self.converged)[0]:
            if all(np.max(np.abs(self.points[i] - self.points[j])) > atol * max(1.0, np.max(np.abs(self.points[j])))
                   for j in keep):
                keep.append(int(i))
        return np.asarray(keep, dtype=np.int64)

    def summary(self):
        u = self.unique()
        return {"n_guesses": int(self.points.shape[0]), "n_converged": int(self.converged.sum()),
                "n_unique": int(u.size), "n_stable_unique": int(self.stable[u].sum()) if u.size else 0,
                "kind": self.kind}


@result_dataclass
class GainSweepResult(Result):
    """Largest Lyapunov exponent of the random tanh network against its gain, see :func:`lyapunov_vs_gain`.

    Attributes
    ----------
    gains : ndarray of shape (n_gains,)
    lambda_max, stderr : ndarray of shape (n_gains,)
        Per step (the network is a map).
    spectra : list of LyapunovResult
    n_units, n_steps, transient, k, seed : int
    """

    gains: np.ndarray
    lambda_max: np.ndarray
    stderr: np.ndarray
    spectra: list
    n_units: int
    n_steps: int
    transient: int
    k: int
    seed: int

    _plot_function: ClassVar[str] = "topo_mi.plotting.dynamics:plot_gain_sweep"

    @property
    def critical_gain(self) -> float:
        """First gain where ``lambda_max`` crosses zero (linear interpolation; NaN if it never does)."""
        g, lam = self.gains, self.lambda_max
        for i in range(len(g) - 1):
            if lam[i] < 0 <= lam[i + 1]:
                return float(g[i] + (g[i + 1] - g[i]) * (-lam[i]) / (lam[i + 1] - lam[i]))
        return float("nan")

    def summary(self):
        return {"n_gains": int(self.gains.size), "n_units": self.n_units,
                "critical_gain": self.critical_gain,
                "lambda_max_min": float(np.min(self.lambda_max)),
                "lambda_max_max": float(np.max(self.lambda_max))}


__all__ = ["LyapunovResult", "LayerJacobians", "JacobianProduct", "FTLEResult", "ResidualFitResult",
           "FixedPointResult", "GainSweepResult", "kaplan_yorke"]
