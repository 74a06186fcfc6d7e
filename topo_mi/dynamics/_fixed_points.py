r"""Fixed points of maps (``F(x) = x``) and zeros of vector fields (``f(x) = 0``), with stability.

Newton's method on ``G(x) = F(x) - x`` (or ``f(x)``) with a backtracking line search, from many
initial guesses at once (``torch.func.vmap`` over guesses, ``jacfwd`` for the Jacobian), or plain
iteration ``x <- F(x)`` (finds attracting points only). Stability from the Jacobian's spectrum at
the point: a map's fixed point is linearly stable when the spectral radius ``rho(DF) < 1``; a
flow's equilibrium when ``max Re eig(Df) < 0``. (Sussillo & Barak, "Opening the black box:
low-dimensional dynamics in high-dimensional recurrent neural networks", Neural Computation 25,
2013, use the same analysis on trained RNNs, with slow points by minimisation.)
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np
import torch
from torch.func import jacfwd, vmap

from topo_mi._validation import check_choice, check_float, check_int, fail
from topo_mi.dynamics._common import as_state, num_threads
from topo_mi.dynamics._results import FixedPointResult

KINDS = ("map", "flow")
METHODS = ("newton", "iterate")


def fixed_points(step: Callable, x0: Any, *, kind: str = "map", method: str = "newton", tol: float | None = None,
                 max_iter: int = 100, params: Any = None, threads: int | None = None) -> FixedPointResult:
    """Fixed points of ``step`` from each initial guess, with the Jacobian's spectrum there.

    Parameters
    ----------
    step : callable
        ``step(x) -> x'`` for ``kind="map"`` (an RNN cell with fixed input, one residual block),
        or the vector field ``f(x) -> dx/dt`` for ``kind="flow"``. Called as ``step(x, params)``
        when ``params`` is given. Torch tensors of shape ``(dim,)``.
    x0 : tensor or array of shape (m, dim) or (dim,)
        Initial guesses (e.g. states visited by a trajectory).
    kind : {"map", "flow"}, default "map"
    method : {"newton", "iterate"}, default "newton"
        Damped Newton (finds saddles and repellers too) or iteration of the map (attracting
        fixed points only; ``kind="map"``).
    tol : float, optional
        Converged when the residual ``||step(x) - x||`` (``||f(x)||``) is at most
        ``tol * max(1, ||x||)``. Default: ``max(1e-10, 100 eps)`` of the state's dtype (1e-10 in
        float64, about 1.2e-5 in float32).
    max_iter : int, default 100
    params : optional
        Extra argument of ``step``.
    threads : int, optional
        Torch threads during the search (default 1 for small problems).

    Returns
    -------
    FixedPointResult
        One row per guess: ``points``, ``converged``, ``residual``, the Jacobian's eigenvalues,
        ``spectral_radius``, ``max_real_part`` and ``stable``; ``.unique()`` merges duplicates.
    """
    if not callable(step):
        fail("step", "a callable step(x) -> x (or a vector field with kind='flow')", step)
    check_choice("kind", kind, KINDS)
    check_choice("method", method, METHODS)
    if method == "iterate" and kind == "flow":
        fail("method", "'newton' for kind='flow' (iteration finds fixed points of maps)", method)
    max_iter = check_int("max_iter", max_iter, min_value=1)
    x = as_state(x0, "x0")
    if tol is None:
        tol = max(1e-10, 100 * torch.finfo(x.dtype).eps)
    tol = check_float("tol", tol, min_value=0.0, min_inclusive=False)
    if x.ndim == 1:
        x = x[None]
    if x.ndim != 2 or x.shape[0] < 1 or x.shape[1] < 1:
        fail("x0", "initial guesses of shape (m, dim) or (dim,)", f"shape {tuple(x.shape)}", raw=True)
    m, dim = x.shape
    args = () if params is None else (params,)

    def G(z):
        out = step(z, *args)
        return out - z if kind == "map" else out

    if threads is None and m * dim * dim <= (1 << 20):
        threads = 1
    with num_threads(threads), torch.no_grad():
        probe = step(x[0], *args)
        if not isinstance(probe, torch.Tensor) or tuple(probe.shape) != (dim,):
            fail("step", f"a function from states of shape ({dim},) to the same shape",
                 f"shape {tuple(getattr(probe, 'shape', ()))}", raw=True)
        Gb = vmap(G)
        JGb = vmap(jacfwd(G))
        converged = torch.zeros(m, dtype=torch.bool)
        n_iter = torch.zeros(m, dtype=torch.int64)

        def res_of(z):
            r = Gb(z).norm(dim=1)
            return torch.where(torch.isfinite(r), r, torch.full_like(r, float("inf")))

        res = res_of(x)
        for it in range(max_iter):
            thresh = tol * torch.clamp(x.norm(dim=1), min=1.0)
            converged = res <= thresh
            active = ~converged & torch.isfinite(res)
            if not bool(active.any()):
                break
            n_iter = n_iter + active.to(torch.int64)
            if method == "iterate":
                x_new = torch.where(active[:, None], vmap(lambda z: step(z, *args))(x), x)
                res = res_of(x_new)
                x = x_new
                continue
            xa = x[active]
            Ja = JGb(xa).to(xa.dtype)  # forward-mode AD may promote 0-d intermediates
            Ga = Gb(xa).to(xa.dtype)
            try:
                delta = torch.linalg.solve(Ja, -Ga.unsqueeze(-1)).squeeze(-1)
            except RuntimeError:  # singular Jacobian somewhere: least squares for the batch
                delta = torch.linalg.lstsq(Ja, -Ga.unsqueeze(-1)).solution.squeeze(-1)
            r0 = res[active]
            step_len = torch.ones(xa.shape[0], dtype=x.dtype)
            new = xa + delta
            r_new = res_of(new)
            for _ in range(30):  # backtracking: halve until the residual decreases
                worse = ~(r_new < r0)
                if not bool(worse.any()):
                    break
                step_len = torch.where(worse, step_len * 0.5, step_len)
                new = torch.where(worse[:, None], xa + step_len[:, None] * delta, new)
                r_new = torch.where(worse, res_of(new), r_new)
            x = x.clone()
            x[active] = torch.where(torch.isfinite(new), new, xa)
            res = res.clone()
            res[active] = torch.minimum(r_new, r0)
        thresh = tol * torch.clamp(x.norm(dim=1), min=1.0)
        converged = res <= thresh
        # spectrum of the Jacobian of the map (or of the field) at every point
        J = vmap(jacfwd(lambda z: step(z, *args)))(x).to(torch.float64)
        finite = torch.isfinite(J).reshape(m, -1).all(dim=1)
        eig = torch.full((m, dim), complex("nan"), dtype=torch.complex128)
        if bool(finite.any()):
            eig[finite] = torch.linalg.eigvals(J[finite])
    ev = eig.numpy()
    key = np.abs(ev) if kind == "map" else ev.real
    order = np.argsort(-np.nan_to_num(key, nan=-np.inf), axis=1, kind="stable")
    ev = np.take_along_axis(ev, order, axis=1)
    conv = converged.numpy()
    with np.errstate(invalid="ignore"):
        if kind == "map":
            rho = np.abs(ev).max(axis=1)
            max_re = (ev.real - 1.0).max(axis=1)
            stable = conv & (rho < 1.0)
        else:
            rho = np.full(m, np.nan)
            max_re = ev.real.max(axis=1)
            stable = conv & (max_re < 0.0)
    return FixedPointResult(points=x.detach().to(torch.float64).numpy(), converged=conv,
                            residual=res.to(torch.float64).numpy(), n_iter=n_iter.numpy(),
                            eigenvalues_real=ev.real.copy(), eigenvalues_imag=ev.imag.copy(),
                            spectral_radius=rho, max_real_part=max_re, stable=stable,
                            kind=kind, method=method, tol=tol)


__all__ = ["fixed_points", "KINDS", "METHODS"]
