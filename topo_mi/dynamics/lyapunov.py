r"""Lyapunov spectra of maps and flows by tangent propagation and QR re-orthonormalisation.

For a map ``x_{t+1} = F(x_t)`` with Jacobian ``J_t = DF(x_t)``, ``k`` orthonormal tangent
vectors ``Q_t`` (a ``dim x k`` frame) are pushed forward, ``J_t Q_t = Q_{t+1} R_{t+1}``
(reduced QR), and the exponents are the time averages of ``ln |R_ii|``:
``lambda_i = lim (1/T) sum_t ln |R_{t, ii}|`` (Benettin, Galgani, Giorgilli & Strelcyn,
Meccanica 15, 1980; Shimada & Nagashima, Prog. Theor. Phys. 61, 1979). The largest is the
framework's ``lambda_max = lim (1/T) sum_t ln ||J_t v_t||``. For a flow, ``F`` is one integrator
step of length ``dt`` (:func:`flow_step`) and the sums are divided by the elapsed time.

``J_t Q_t`` is computed with ``k`` Jacobian-vector products (``torch.func.jvp`` vmapped over the
directions), so the ``dim x dim`` Jacobian is never formed when ``k < dim``; with ``k == dim`` the
full Jacobian (``torch.func.jacrev``) costs the same and is used by default (``tangent="auto"``).
"""
from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np
import torch
from torch.func import jacrev, jvp, vmap

from topo_mi._validation import check_choice, check_float, check_int, fail
from topo_mi.dynamics._common import SMALL_PROBLEM, as_state, num_threads, numel
from topo_mi.dynamics._results import LyapunovResult
from topo_mi.errors import DivergenceError, InvalidParameterError

FLOW_METHODS = ("rk4", "euler")
TANGENT_METHODS = ("auto", "jvp", "jacobian")


class FlowStep:
    """One integrator step ``x -> Phi_dt(x)`` of the autonomous flow ``dx/dt = f(x, *args)``.

    Callable as ``step(x, *args)``; extra arguments are passed on to ``f`` unchanged. Picklable
    when ``f`` is. Attributes ``f``, ``dt`` and ``method``; :func:`lyapunov_spectrum` reads ``dt``
    from it so the exponents come out per time unit.
    """

    def __init__(self, f: Callable, dt: float, method: str = "rk4"):
        if not callable(f):
            fail("f", "a callable vector field f(x) -> dx/dt", f)
        self.f = f
        self.dt = check_float("dt", dt, min_value=0.0, min_inclusive=False)
        self.method = check_choice("method", method, FLOW_METHODS)

    def __call__(self, x, *args):
        f, h = self.f, self.dt
        if self.method == "euler":
            return x + h * f(x, *args)
        k1 = f(x, *args)
        k2 = f(x + (0.5 * h) * k1, *args)
        k3 = f(x + (0.5 * h) * k2, *args)
        k4 = f(x + h * k3, *args)
        return x + (h / 6.0) * (k1 + 2.0 * k2 + 2.0 * k3 + k4)

    def __repr__(self) -> str:
        name = getattr(self.f, "__name__", type(self.f).__name__)
        return f"FlowStep({name}, dt={self.dt:g}, method={self.method!r})"


def flow_step(f: Callable, dt: float, method: str = "rk4") -> FlowStep:
    """Turn a vector field ``f`` into the map of one integration step of length ``dt``.

    Parameters
    ----------
    f : callable
        ``f(x, *args) -> dx/dt`` on torch tensors, same shape as ``x``.
    dt : float
        Step length (> 0).
    method : {"rk4", "euler"}, default "rk4"
        Classical fourth-order Runge–Kutta, or explicit Euler ``x + dt f(x)`` (the residual-block
        form ``h + dt sigma(W h + b)``).

    Returns
    -------
    FlowStep
        ``step(x, *args)``; pass it to :func:`lyapunov_spectrum` (``dt`` is taken from it).

    Examples
    --------
    >>> from topo_mi.dynamics import systems, flow_step, lyapunov_spectrum   # doctest: +SKIP
    >>> step = flow_step(systems.lorenz_field, 0.01)                        # doctest: +SKIP
    >>> lyapunov_spectrum(step, [1.0, 1.0, 20.0], 100_000, transient=1000)   # doctest: +SKIP
    """
    return FlowStep(f, dt, method)


# ---------------------------------------------------------------------------------------------


def _qr_indices(n_steps: int, qr_every: int) -> list[int]:
    """Measured-phase step indices (0-based) after which a QR is taken."""
    idx = list(range(qr_every - 1, n_steps, qr_every))
    if not idx or idx[-1] != n_steps - 1:
        idx.append(n_steps - 1)
    return idx


def _check_drive(drive, *, ensemble: bool, n_members: int, total: int):
    if drive is None:
        return None
    if isinstance(drive, torch.Tensor):
        d = drive.detach()
    else:
        d = torch.as_tensor(np.asarray(drive))
    time_axis = 1 if ensemble else 0
    if d.ndim < time_axis + 1:
        fail("drive", "a tensor of shape (n_members, T, ...)" if ensemble else "a tensor of shape (T, ...)",
             f"shape {tuple(d.shape)}", raw=True)
    if ensemble and d.shape[0] != n_members:
        fail("drive", f"one drive sequence per trajectory (leading axis {n_members})",
             f"shape {tuple(d.shape)}", raw=True)
    if d.shape[time_axis] < total:
        fail("drive", f"at least transient + n_steps = {total} time steps along axis {time_axis}",
             f"shape {tuple(d.shape)}", raw=True)
    return d


def lyapunov_spectrum(step: Callable, x0: Any, n_steps: int, *, k: int | None = None, transient: int = 0,
                      dt: float | None = None, qr_every: int = 1, params: Any = None, drive: Any = None,
                      ensemble: bool = False, n_blocks: int | None = None, tangent: str = "auto",
                      seed: int = 0, n_trace: int = 500, threads: int | None = None,
                      progress: bool = False, label: str = "") -> LyapunovResult:
    r"""The ``k`` largest Lyapunov exponents of ``x_{t+1} = step(x_t)`` (Benettin et al. 1980).

    Parameters
    ----------
    step : callable
        ``step(x) -> x'`` on torch tensors, the same shape and dtype in and out (an RNN cell with
        fixed input, a residual block, a :func:`flow_step`). Called as ``step(x, u_t)`` when
        ``drive`` is given, ``step(x, params)`` when ``params`` is, ``step(x, u_t, params)`` with
        both. Differentiated with respect to ``x`` only; must be deterministic.
    x0 : tensor or array-like
        Initial state, any shape (``dim`` = its number of elements). With ``ensemble=True`` the
        first axis indexes independent trajectories: shape ``(n_members, *state_shape)``. Arrays
        become float64 tensors; tensors keep their floating dtype (use float64 for reference
        values: rounding in float32 limits the exponents to about 1e-4).
    n_steps : int
        Measured steps after the transient.
    k : int, optional
        Number of exponents (tangent directions), ``1 <= k <= dim``; default: all ``dim``.
    transient : int, default 0
        Steps run first and discarded; the tangent frame is evolved (and re-orthonormalised)
        during them too, so it starts the measurement aligned with the Oseledets directions.
    dt : float, optional
        Time per step: exponents are per time unit (``ln|R_ii|`` sums divided by
        ``n_steps * dt``). Default: ``step.dt`` for a :func:`flow_step`, else 1.
    qr_every : int, default 1
        Re-orthonormalise every this many steps (and after the last). Larger values save QR
        decompositions but let the directions align and the norms grow between them.
    params : optional
        Passed unchanged as the last argument of ``step`` (not differentiated).
    drive : tensor, optional
        Per-step input, shape ``(transient + n_steps, ...)`` (``(n_members, T, ...)`` for an
        ensemble); ``step`` receives ``drive[t]``. The spectrum is then that of the driven
        (non-autonomous) system.
    ensemble : bool, default False
        Run the trajectories of ``x0``'s first axis together (``step`` is vmapped over them);
        the exponents are their mean. Many short trajectories are much cheaper per sample than
        one long one for small systems.
    n_blocks : int, optional
        Contiguous time blocks per trajectory for the standard error. Default:
        ``ceil(20 / n_members)`` (20 blocks for one trajectory, one block per trajectory for
        ensembles of 20 or more), at most the number of QR steps. Needs at least two blocks in
        all, each of at least one QR step.
    tangent : {"auto", "jvp", "jacobian"}, default "auto"
        ``"jvp"``: ``k`` Jacobian-vector products per step (vmapped ``torch.func.jvp``; the
        Jacobian is never formed). ``"jacobian"``: the full ``dim x dim`` Jacobian
        (``torch.func.jacrev``) times the frame. ``"auto"``: ``"jvp"`` when ``k < dim``.
    seed : int, default 0
        Seeds the random orthonormal initial frame (a local ``torch.Generator``).
    n_trace : int, default 500
        At most this many rows in the convergence trace.
    threads : int, optional
        Torch intra-op threads during the run; default: 1 for small problems
        (``n_members * dim * k <= 32768``), where threads only add overhead, else unchanged.
    progress : bool, default False
        Show a progress bar.
    label : str
        Stored in the result (e.g. the system's name).

    Returns
    -------
    LyapunovResult
        ``exponents`` (k,) descending, ``stderr`` (k,), the convergence ``trace``, per-block and
        per-trajectory estimates.

    Raises
    ------
    InvalidParameterError
        ``k`` larger than the state dimension, ``step`` changing the state's shape or dtype,
        too few steps for the blocks of the standard error.
    DivergenceError
        The state (or the tangent vectors) became non-finite; the message gives the step
        (counted from 1, transient included; also in the exception's ``step`` attribute).

    Notes
    -----
    Cost per step: one evaluation of ``step`` plus ``k`` JVPs (about ``k`` evaluations,
    batched) plus a ``dim x k`` QR. The standard error treats block estimates as independent:
    blocks should be longer than the correlation time (a few Lyapunov times).

    References
    ----------
    Benettin, Galgani, Giorgilli & Strelcyn, "Lyapunov characteristic exponents for smooth
    dynamical systems and for Hamiltonian systems", Meccanica 15, 1980.
    Engelken, Wolf & Abbott, "Lyapunov spectra of chaotic recurrent neural networks",
    Phys. Rev. Research 5, 2023.
    """
    if not callable(step):
        fail("step", "a callable step(x) -> x", step)
    if not isinstance(ensemble, bool):
        fail("ensemble", "True or False", ensemble)
    x = as_state(x0, "x0")
    if ensemble:
        if x.ndim < 2 or x.shape[0] < 1:
            fail("x0", "a tensor of shape (n_members, *state_shape) with ensemble=True",
                 f"shape {tuple(x.shape)}", raw=True)
        n_members, shape = int(x.shape[0]), tuple(x.shape[1:])
    else:
        n_members, shape = 1, tuple(x.shape)
    dim = numel(shape)
    if dim < 1:
        fail("x0", "a non-empty state", f"shape {tuple(x.shape)}", raw=True)
    n_steps = check_int("n_steps", n_steps, min_value=1)
    transient = check_int("transient", transient, min_value=0)
    k = dim if k is None else check_int("k", k, min_value=1)
    if k > dim:
        fail("k", f"at most the state dimension {dim} (state shape {shape})", k)
    qr_every = check_int("qr_every", qr_every, min_value=1)
    if qr_every > n_steps:
        fail("qr_every", f"at most n_steps = {n_steps}", qr_every)
    if dt is None:
        dt = step.dt if isinstance(step, FlowStep) else 1.0
    dt = check_float("dt", dt, min_value=0.0, min_inclusive=False)
    check_choice("tangent", tangent, TANGENT_METHODS)
    if tangent == "auto":
        tangent = "jvp" if k < dim else "jacobian"
    seed = check_int("seed", seed, min_value=0)
    n_trace = check_int("n_trace", n_trace, min_value=1)
    qr_steps = _qr_indices(n_steps, qr_every)
    n_qr = len(qr_steps)
    if n_blocks is None:
        n_blocks = min(max(1, math.ceil(20 / n_members)), n_qr)
        if n_blocks * n_members < 2:
            n_blocks = 2
    n_blocks = check_int("n_blocks", n_blocks, min_value=1)
    if n_blocks * n_members < 2:
        fail("n_blocks", "at least 2 blocks in all (n_blocks x n_members) for a standard error", n_blocks)
    if n_qr < n_blocks:
        raise InvalidParameterError(
            f"n_steps: expected at least {n_blocks * qr_every} measured steps for a standard error "
            f"from {n_blocks} block averages of at least one QR step each (qr_every={qr_every}), "
            f"got {n_steps}; run more steps or pass a smaller n_blocks (>= 2)")
    total = transient + n_steps
    drive_t = _check_drive(drive, ensemble=ensemble, n_members=n_members, total=total)
    if threads is None and n_members * dim * k <= SMALL_PROBLEM:
        threads = 1
    if threads is not None:
        threads = check_int("threads", threads, min_value=1)

    def call(xs, *args):
        return step(xs, *args)

    def extra_args(t: int) -> tuple:
        out = []
        if drive_t is not None:
            out.append(drive_t[:, t] if ensemble else drive_t[t])
        if params is not None:
            out.append(params)
        return tuple(out)

    with num_threads(threads), torch.no_grad():
        # one plain call: the map must keep the state's shape and dtype
        probe_x = x[0] if ensemble else x
        probe_args = tuple(a[0] if (ensemble and drive_t is not None and i == 0) else a
                           for i, a in enumerate(extra_args(0)))
        out = call(probe_x, *probe_args)
        if not isinstance(out, torch.Tensor):
            fail("step", "a function returning a torch tensor", type(out).__name__, raw=True)
        if tuple(out.shape) != shape:
            fail("step", f"a map that keeps the state's shape {shape}", f"a state of shape {tuple(out.shape)}",
                 raw=True)
        if out.dtype != x.dtype:
            fail("step", f"a map that keeps the state's dtype {x.dtype}", f"dtype {out.dtype}", raw=True)

        def advance(xs, Q, *args):
            def f(y):
                return call(y, *args)

            if tangent == "jvp":
                x_next = f(xs)
                JQ = vmap(lambda v: jvp(f, (xs,), (v,))[1])(Q)
                # forward-mode AD may promote 0-d intermediates times Python floats to float64
                # (pytorch/pytorch#90065): keep the frame's dtype
                return x_next, JQ.to(Q.dtype)

            def f_aux(y):
                o = f(y)
                return o, o

            J, x_next = jacrev(f_aux, has_aux=True)(xs)
            J = J.reshape(dim, dim).to(Q.dtype)
            JQ = (Q.reshape(k, dim) @ J.T).reshape(Q.shape)
            return x_next, JQ

        if ensemble:
            n_args = len(extra_args(0))
            in_dims = (0, 0) + tuple(0 if (drive_t is not None and i == 0) else None for i in range(n_args))
            advance_fn = vmap(advance, in_dims=in_dims)
        else:
            advance_fn = advance

        gen = torch.Generator().manual_seed(check_int("seed", seed, min_value=0))
        frame = torch.randn((n_members, dim, k), generator=gen, dtype=torch.float64)
        frame = torch.linalg.qr(frame).Q.transpose(1, 2).to(x.dtype)  # (m, k, dim)
        Q = frame.reshape((n_members, k) + shape) if ensemble else frame[0].reshape((k,) + shape)

        sums = np.zeros((n_members, n_blocks, k))
        block_steps = np.zeros(n_blocks)
        cum = np.zeros((n_members, k))
        trace_at = set(np.unique(np.linspace(0, n_qr - 1, min(n_trace, n_qr)).round().astype(int)).tolist())
        trace, trace_time = [], []
        qr_set = set(qr_steps)
        qr_count = 0
        last_qr_step = -1
        measured_steps_done = 0

        iterator = range(total)
        if progress:
            from tqdm.auto import tqdm

            iterator = tqdm(iterator, total=total, desc="lyapunov", leave=False)
        for t in iterator:
            x, Q = advance_fn(x, Q, *extra_args(t))
            if not bool(torch.isfinite(x).all()):
                phase = f"transient step {t + 1}" if t < transient else f"measured step {t - transient + 1}"
                err = DivergenceError(
                    f"step: the trajectory became non-finite at step {t + 1} of {total} ({phase}; steps "
                    "counted from 1); the system diverges from x0 (pick another x0, a smaller dt, or check "
                    "the map)")
                err.step = t + 1
                raise err
            in_transient = t < transient
            s = t - transient
            if in_transient:
                do_qr = (t + 1) % qr_every == 0 or t == transient - 1
            else:
                do_qr = s in qr_set
            if not do_qr:
                continue
            M = Q.reshape(n_members, k, dim).transpose(1, 2)
            q, r = torch.linalg.qr(M)
            logs = torch.log(torch.abs(torch.diagonal(r, dim1=-2, dim2=-1))).to(torch.float64).numpy()
            if np.isnan(logs).any() or np.isposinf(logs).any():
                err = DivergenceError(
                    f"step: the tangent vectors became non-finite at step {t + 1} (qr_every={qr_every}); "
                    "re-orthonormalise more often (smaller qr_every) or check the map's derivative")
                err.step = t + 1
                raise err
            Q = q.transpose(1, 2).reshape(Q.shape)
            if in_transient:
                continue
            steps_in_chunk = s - last_qr_step
            last_qr_step = s
            measured_steps_done += steps_in_chunk
            b = qr_count * n_blocks // n_qr
            sums[:, b, :] += logs
            block_steps[b] += steps_in_chunk
            cum += logs
            if qr_count in trace_at:
                trace.append(cum.mean(axis=0) / (measured_steps_done * dt))
                trace_time.append(measured_steps_done * dt)
            qr_count += 1

    with np.errstate(invalid="ignore", divide="ignore"):
        member = sums.sum(axis=1) / (n_steps * dt)                       # (m, k)
        cells = (sums / (block_steps[None, :, None] * dt)).reshape(n_members * n_blocks, k)
        exponents = member.mean(axis=0)
        stderr = cells.std(axis=0, ddof=1) / math.sqrt(cells.shape[0])
    order = np.argsort(-exponents, kind="stable")
    final = x.detach().cpu().numpy()
    return LyapunovResult(
        exponents=exponents[order], stderr=stderr[order],
        trace=np.asarray(trace).reshape(-1, k)[:, order], trace_time=np.asarray(trace_time, dtype=np.float64),
        block_exponents=cells[:, order], member_exponents=member[:, order], final_state=final,
        n_steps=n_steps, transient=transient, dt=dt, qr_every=qr_every, k=k, dim=dim,
        n_members=n_members, n_blocks=n_blocks, ensemble=ensemble, tangent=tangent, seed=seed, label=str(label))


__all__ = ["lyapunov_spectrum", "flow_step", "FlowStep", "FLOW_METHODS"]
