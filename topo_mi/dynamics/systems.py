r"""Reference dynamical systems with known Lyapunov exponents (float64 throughout).

- :func:`logistic` — ``x -> r x (1 - x)``; ``lambda = ln 2`` at ``r = 4``.
- :func:`henon` — ``(x, y) -> (1 - a x^2 + y, b x)``; at ``(1.4, 0.3)``: 0.419217, -1.623190
  (the sum is ``ln b`` exactly: the Jacobian's determinant is ``-b`` everywhere).
- :func:`lorenz` — ``dx/dt = sigma (y - x)``, ``dy/dt = x (rho - z) - y``, ``dz/dt = x y - beta z``
  integrated by RK4; at ``(10, 28, 8/3)``: 0.90563, 0, -14.57219 per time unit (the sum is the
  constant divergence ``-(sigma + 1 + beta)``).
- :func:`random_tanh_network` — ``x_{t+1} = tanh(g W x_t)``, ``W_ij ~ N(0, 1/N)`` drawn from a
  seeded generator: ordered (``lambda_max < 0``, ``-> ln g`` for large N) for ``g < 1``, chaotic
  for ``g > 1`` (Sompolinsky, Crisanti & Sommers, PRL 61, 1988; Molgedey, Schuchhardt & Schuster,
  PRL 69, 1992 for the discrete-time map).
- :func:`lyapunov_vs_gain` — the network's ``lambda_max`` across gains (the transition to chaos).

Reference values: J. C. Sprott, "Chaos and time-series analysis" (Oxford, 2003) and his
"Lyapunov exponent spectrum software" (base e).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np
import torch

from topo_mi._validation import check_float, check_int, fail
from topo_mi.dynamics._results import GainSweepResult, LyapunovResult
from topo_mi.dynamics.lyapunov import flow_step, lyapunov_spectrum

#: Known exponents (base e, per step for maps, per time unit for flows).
REFERENCE_EXPONENTS = {
    "logistic": np.array([math.log(2.0)]),
    "henon": np.array([0.419217, -1.623190]),
    "lorenz": np.array([0.90563, 0.0, -14.57219]),
}


# --- the maps and vector fields (batch-friendly: states on the last axis) -------------------------
def logistic_map(x: torch.Tensor, r: float = 4.0) -> torch.Tensor:
    """``r x (1 - x)`` elementwise (state shape ``(..., 1)``)."""
    return r * x * (1.0 - x)


def henon_map(x: torch.Tensor, a: float = 1.4, b: float = 0.3) -> torch.Tensor:
    """``(1 - a x^2 + y, b x)`` for states ``(..., 2)``."""
    u, v = x[..., 0], x[..., 1]
    return torch.stack([1.0 - a * u * u + v, b * u], dim=-1)


def lorenz_field(x: torch.Tensor, sigma: float = 10.0, rho: float = 28.0, beta: float = 8.0 / 3.0) -> torch.Tensor:
    """The Lorenz (1963) vector field for states ``(..., 3)``."""
    u, v, w = x[..., 0], x[..., 1], x[..., 2]
    return torch.stack([sigma * (v - u), u * (rho - w) - v, u * v - beta * w], dim=-1)


class _Partial:
    """``fn(x, **kwargs)`` as a picklable callable with a readable repr."""

    def __init__(self, fn: Callable, **kwargs):
        self.fn, self.kwargs = fn, kwargs
        self.__name__ = fn.__name__

    def __call__(self, x, *args):
        return self.fn(x, *args, **self.kwargs)

    def __repr__(self) -> str:
        kw = ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v!r}" for k, v in self.kwargs.items())
        return f"{self.fn.__name__}({kw})"


class TanhNetworkStep:
    """``x -> tanh(g W x)`` for states ``(..., N)``; ``gW`` is stored premultiplied."""

    def __init__(self, W: torch.Tensor, gain: float):
        self.W = W
        self.gain = float(gain)
        self.gW = W * self.gain

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(x @ self.gW.T)

    def jacobian(self, x: torch.Tensor) -> torch.Tensor:
        """Closed form ``diag(1 - tanh^2(g W x)) g W`` (for checks)."""
        y = torch.tanh(x @ self.gW.T)
        return (1.0 - y * y)[..., :, None] * self.gW

    def __repr__(self) -> str:
        return f"TanhNetworkStep(N={self.W.shape[0]}, gain={self.gain:g})"


@dataclass(frozen=True)
class ReferenceSystem:
    """A system to test Lyapunov estimators on.

    Attributes
    ----------
    name : str
    step : callable
        The map ``x -> x'`` (an integrator step for a flow), float64 tensors of shape ``(dim,)``
        (also batch-friendly: ``(..., dim)``).
    x0 : Tensor of shape (dim,)
        A starting point in the basin of the attractor.
    dt : float
        Time per step (1 for maps).
    reference : ndarray or None
        Known exponents (per time unit), descending.
    params : dict
    """

    name: str
    step: Callable
    x0: torch.Tensor
    dt: float
    reference: np.ndarray | None
    params: dict = field(default_factory=dict)

    @property
    def dim(self) -> int:
        return int(self.x0.numel())

    def initial_states(self, n: int, *, seed: int = 0, burn_in: int = 0) -> torch.Tensor:
        """``n`` random starting points in the basin, shape ``(n, dim)`` (for ``ensemble=True``).

        ``burn_in`` steps of the map are applied to the whole batch first (state only, no
        tangents: cheap), so the points are spread over the attractor by its invariant measure
        rather than clustered where they started. Ensemble estimates over short windows are
        biased by ``O(1 / n_steps)`` until the states are stationary (Lorenz needs tens of
        time units).
        """
        n = check_int("n", n, min_value=1)
        burn_in = check_int("burn_in", burn_in, min_value=0)
        g = torch.Generator().manual_seed(check_int("seed", seed, min_value=0))
        if self.name == "logistic":
            x = 0.05 + 0.9 * torch.rand((n, 1), generator=g, dtype=torch.float64)
        elif self.name == "henon":
            x = 0.2 * torch.rand((n, 2), generator=g, dtype=torch.float64) - 0.1
        elif self.name == "lorenz":
            x = self.x0 + 10.0 * torch.randn((n, 3), generator=g, dtype=torch.float64)
        else:
            x = torch.randn((n, self.dim), generator=g, dtype=self.x0.dtype)
        with torch.no_grad():
            for _ in range(burn_in):
                x = self.step(x)
        return x

    def spectrum(self, n_steps: int, **kwargs) -> LyapunovResult:
        """:func:`lyapunov_spectrum` of this system from ``x0`` (``dt`` and ``label`` filled in).

        With ``n_members=m`` in ``kwargs``, runs an ensemble from :meth:`initial_states` (with
        ``burn_in`` from ``kwargs``, default 0).
        """
        m = kwargs.pop("n_members", None)
        burn_in = kwargs.pop("burn_in", 0)
        if m is None and burn_in:
            fail("burn_in", "0 without n_members (use transient for one trajectory)", burn_in)
        kwargs.setdefault("dt", self.dt)
        kwargs.setdefault("label", self.name)
        if m is not None:
            x0 = self.initial_states(m, seed=kwargs.get("seed", 0), burn_in=burn_in)
            return lyapunov_spectrum(self.step, x0, n_steps, ensemble=True, **kwargs)
        return lyapunov_spectrum(self.step, self.x0, n_steps, **kwargs)


def logistic(r: float = 4.0, *, x0: float = 0.3) -> ReferenceSystem:
    """The logistic map ``x -> r x (1 - x)`` on ``[0, 1]`` (``lambda = ln 2`` at ``r = 4``)."""
    r = check_float("r", r, min_value=0.0, max_value=4.0)
    x0 = check_float("x0", x0, min_value=0.0, max_value=1.0)
    ref = REFERENCE_EXPONENTS["logistic"] if r == 4.0 else None
    return ReferenceSystem("logistic", _Partial(logistic_map, r=r), torch.tensor([x0], dtype=torch.float64),
                           1.0, ref, {"r": r})


def henon(a: float = 1.4, b: float = 0.3, *, x0: Sequence[float] = (0.1, 0.1)) -> ReferenceSystem:
    """The Hénon map ``(x, y) -> (1 - a x^2 + y, b x)`` (Hénon, Commun. Math. Phys. 50, 1976)."""
    a = check_float("a", a)
    b = check_float("b", b)
    ref = REFERENCE_EXPONENTS["henon"] if (a, b) == (1.4, 0.3) else None
    return ReferenceSystem("henon", _Partial(henon_map, a=a, b=b), torch.tensor(list(x0), dtype=torch.float64),
                           1.0, ref, {"a": a, "b": b})


def lorenz(sigma: float = 10.0, rho: float = 28.0, beta: float = 8.0 / 3.0, *, dt: float = 0.01,
           method: str = "rk4", x0: Sequence[float] = (1.0, 1.0, 20.0)) -> ReferenceSystem:
    """The Lorenz (1963) flow, one ``method`` step of length ``dt`` per map step."""
    sigma, rho, beta = check_float("sigma", sigma), check_float("rho", rho), check_float("beta", beta)
    step = flow_step(_Partial(lorenz_field, sigma=sigma, rho=rho, beta=beta), dt, method)
    ref = REFERENCE_EXPONENTS["lorenz"] if (sigma, rho, beta) == (10.0, 28.0, 8.0 / 3.0) else None
    return ReferenceSystem("lorenz", step, torch.tensor(list(x0), dtype=torch.float64), step.dt, ref,
                           {"sigma": sigma, "rho": rho, "beta": beta, "method": method})


def random_tanh_network(n_units: int, gain: float, *, seed: int = 0, dtype: torch.dtype = torch.float64,
                        W: torch.Tensor | None = None) -> ReferenceSystem:
    """The random network ``x_{t+1} = tanh(g W x_t)``, ``W_ij ~ N(0, 1/N)`` (seeded).

    Parameters
    ----------
    n_units : int
        ``N``.
    gain : float
        ``g >= 0``.
    seed : int, default 0
        Seeds ``W`` and ``x0 ~ N(0, 1)`` (a local ``torch.Generator``): the same seed gives the
        same ``W`` for every gain.
    dtype : torch dtype, default float64
    W : Tensor of shape (N, N), optional
        Use this coupling matrix instead of drawing one.

    Notes
    -----
    The large-N theory gives ``lambda_max = ln g`` for ``g < 1`` (the origin is the attractor and
    ``g W`` has spectral radius ``g``); finite N shifts it by ``O(N^{-1/2})``.
    """
    n_units = check_int("n_units", n_units, min_value=1)
    gain = check_float("gain", gain, min_value=0.0)
    seed = check_int("seed", seed, min_value=0)
    g = torch.Generator().manual_seed(seed)
    if W is None:
        W = torch.randn((n_units, n_units), generator=g, dtype=torch.float64) / math.sqrt(n_units)
    elif not isinstance(W, torch.Tensor) or tuple(W.shape) != (n_units, n_units):
        fail("W", f"a tensor of shape ({n_units}, {n_units})", W)
    else:
        torch.randn((n_units, n_units), generator=g, dtype=torch.float64)  # keep x0 the same stream
    x0 = torch.randn((n_units,), generator=g, dtype=torch.float64)
    step = TanhNetworkStep(W.to(dtype), gain)
    ref = np.array([math.log(gain)]) if 0 < gain < 1 else None
    return ReferenceSystem("random_tanh_network", step, x0.to(dtype), 1.0, ref,
                           {"n_units": n_units, "gain": gain, "seed": seed})


# --- the transition to chaos ------------------------------------------------------------------------
def _gain_point(item: dict) -> LyapunovResult:
    sys_ = random_tanh_network(item["n_units"], item["gain"], seed=item["seed"])
    return lyapunov_spectrum(sys_.step, sys_.x0, item["n_steps"], k=item["k"], transient=item["transient"],
                             seed=item["seed"], label=f"g={item['gain']:g}")


DEFAULT_GAINS = (0.5, 0.75, 0.9, 1.0, 1.1, 1.25, 1.5, 2.0, 2.5, 3.0)


def lyapunov_vs_gain(gains: Sequence[float] | None = None, *, n_units: int = 500, n_steps: int = 600,
                     transient: int = 200, k: int = 1, seed: int = 0, executor: Any = None,
                     progress: bool = False) -> GainSweepResult:
    """``lambda_max`` of :func:`random_tanh_network` for each gain (one ``W``, scaled by ``g``).

    Parameters
    ----------
    gains : sequence of float, optional
        Default ``(0.5, 0.75, 0.9, 1.0, 1.1, 1.25, 1.5, 2.0, 2.5, 3.0)``.
    n_units : int, default 500
    n_steps, transient : int
        Measured and discarded steps per gain.
    k : int, default 1
        Exponents per gain (the largest is reported).
    seed : int, default 0
        Seeds ``W``, ``x0`` and the initial frame (the same for every gain).
    executor : optional
        ``None``/"serial"/"process"/"dask" or an Executor: gains run independently.
    progress : bool, default False

    Returns
    -------
    GainSweepResult
        ``lambda_max`` and ``stderr`` per gain, every spectrum, ``critical_gain``.
    """
    from topo_mi.parallel import get_executor

    if gains is None:
        gains = DEFAULT_GAINS
    gains = np.asarray([check_float(f"gains[{i}]", g, min_value=0.0) for i, g in enumerate(gains)], dtype=np.float64)
    if gains.size == 0:
        fail("gains", "at least one gain", list(gains))
    n_units = check_int("n_units", n_units, min_value=1)
    n_steps = check_int("n_steps", n_steps, min_value=1)
    transient = check_int("transient", transient, min_value=0)
    k = check_int("k", k, min_value=1, max_value=n_units)
    seed = check_int("seed", seed, min_value=0)
    items = [dict(gain=float(g), n_units=n_units, n_steps=n_steps, transient=transient, k=k, seed=seed)
             for g in gains]
    spectra = get_executor(executor).map(_gain_point, items, desc="gains", progress=progress)
    return GainSweepResult(gains=gains, lambda_max=np.array([s.exponents[0] for s in spectra]),
                           stderr=np.array([s.stderr[0] for s in spectra]), spectra=list(spectra),
                           n_units=n_units, n_steps=n_steps, transient=transient, k=k, seed=seed)


__all__ = ["REFERENCE_EXPONENTS", "ReferenceSystem", "logistic", "henon", "lorenz", "random_tanh_network",
           "logistic_map", "henon_map", "lorenz_field", "TanhNetworkStep", "lyapunov_vs_gain", "DEFAULT_GAINS"]
