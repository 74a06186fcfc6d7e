"""Figures of :mod:`topo_mi.dynamics`: spectra, convergence, the transition to chaos, layer stretching."""
from __future__ import annotations

import math

import numpy as np

from topo_mi.plotting import get_ax


def plot_spectrum(result, ax=None, *, color="C0", label=None):
    """Lyapunov exponents (index vs value) with ``±2`` standard-error bars and the zero line."""
    ax = get_ax(ax)
    lam, se = np.asarray(result.exponents), np.asarray(result.stderr)
    idx = np.arange(1, lam.size + 1)
    ax.errorbar(idx, lam, yerr=2 * np.nan_to_num(se), fmt="o", ms=4, capsize=3, color=color,
                label=label or (result.label or None))
    ax.axhline(0.0, color="0.5", lw=0.8, ls="--")
    unit = "per step" if result.dt == 1.0 else "per time unit"
    ax.set_xlabel("index i")
    ax.set_ylabel(f"Lyapunov exponent λ_i ({unit})")
    title = f"Lyapunov spectrum (k={result.k} of {result.dim})"
    if result.label:
        title = f"{result.label}: {title}"
    ax.set_title(title)
    if label or result.label:
        ax.legend(loc="best", fontsize="small")
    return ax


def plot_convergence(result, ax=None, *, n_show: int | None = 8, reference=None):
    """Running estimates of the exponents against time; dashed lines at ``reference`` values."""
    ax = get_ax(ax)
    tr, t = np.asarray(result.trace), np.asarray(result.trace_time)
    n = tr.shape[1] if n_show is None else min(n_show, tr.shape[1])
    for i in range(n):
        ax.plot(t, tr[:, i], lw=1.2, color=f"C{i % 10}", label=f"λ_{i + 1}")
    if reference is not None:
        for i, v in enumerate(np.ravel(reference)[:n]):
            ax.axhline(v, color=f"C{i % 10}", ls="--", lw=0.8)
    if t.size and t[0] > 0 and t[-1] / t[0] > 20:
        ax.set_xscale("log")
    ax.set_xlabel("time after the transient")
    ax.set_ylabel("running estimate")
    ax.set_title("Convergence of the Lyapunov exponents")
    ax.legend(loc="best", fontsize="small", ncol=2 if n > 4 else 1)
    return ax


def plot_gain_sweep(result, ax=None, *, color="C0"):
    """``lambda_max`` against the gain with ``±2`` standard errors, ``ln g`` and the zero line."""
    ax = get_ax(ax)
    g, lam, se = np.asarray(result.gains), np.asarray(result.lambda_max), np.asarray(result.stderr)
    ax.errorbar(g, lam, yerr=2 * np.nan_to_num(se), fmt="o-", ms=4, capsize=3, color=color,
                label=f"N = {result.n_units}")
    gg = np.linspace(max(min(g.min(), 1.0) * 0.95, 1e-3), 1.0, 100)
    ax.plot(gg, np.log(gg), color="0.4", ls=":", label="ln g (large N, g < 1)")
    ax.axhline(0.0, color="0.5", lw=0.8, ls="--")
    ax.axvline(1.0, color="0.7", lw=0.8)
    gc = result.critical_gain
    if math.isfinite(gc):
        ax.axvline(gc, color="C3", lw=0.8, ls="--", label=f"λ_max = 0 at g ≈ {gc:.2f}")
    ax.set_xlabel("gain g")
    ax.set_ylabel("λ_max (per step)")
    ax.set_title("Random tanh network: transition to chaos")
    ax.legend(loc="best", fontsize="small")
    return ax


def _layer_log_svals(result):
    if hasattr(result, "layer_singular_values"):
        return result.layer_singular_values, result.maps
    return result.singular_values(), result.maps  # LayerJacobians


def plot_layer_singular_values(result, ax=None, *, quantiles=(0.1, 0.5, 0.9)):
    """Per layer map: ``ln sigma`` of its Jacobians — the largest (median over inputs, with a band
    from the ``quantiles`` across inputs), the median and the smallest of the numerically
    non-zero ones; the tick labels give the median numerical rank."""
    ax = get_ax(ax, figsize=(6.0, 4.0))
    svals, maps = _layer_log_svals(result)
    L = len(svals)
    x = np.arange(L)
    resolution = getattr(result, "resolution", 0.0) or 0.0
    top, med, low, ranks = np.zeros((L, 3)), np.zeros(L), np.zeros(L), np.zeros(L)
    for i, s in enumerate(svals):
        s = np.asarray(s, dtype=np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            lg = np.where(s > s[:, :1] * resolution, np.log(s), np.nan)
        lg[~np.isfinite(lg)] = np.nan
        top[i] = np.nanquantile(lg[:, 0], quantiles) if np.isfinite(lg[:, 0]).any() else np.nan
        with np.errstate(all="ignore"):
            import warnings

            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                med[i] = np.nanmedian(np.nanmedian(lg, axis=1))
                low[i] = np.nanmedian(np.nanmin(lg, axis=1))
        ranks[i] = np.median(np.isfinite(lg).sum(axis=1))
    ax.fill_between(x, top[:, 0], top[:, 2], color="C0", alpha=0.25, lw=0)
    ax.plot(x, top[:, 1], "o-", color="C0", label="ln σ_max")
    ax.plot(x, med, "s-", color="C1", label="median ln σ (non-zero)")
    ax.plot(x, low, "v-", color="C2", label="smallest non-zero ln σ")
    ax.axhline(0.0, color="0.5", lw=0.8, ls="--")
    ax.set_xticks(x)
    ax.set_xticklabels([f"{m}\nrank {r:g}" for m, r in zip(maps, ranks)], rotation=45, ha="right",
                       fontsize="small")
    ax.set_ylabel("ln singular value of the layer Jacobian")
    ax.set_title("Per-layer expansion (> 0) and contraction (< 0)")
    ax.legend(loc="best", fontsize="small")
    return ax


def plot_product_singular_values(result, ax=None):
    """Singular values of the end-to-end Jacobian: median over inputs with a 10–90% band."""
    ax = get_ax(ax)
    with np.errstate(divide="ignore"):
        lg = np.log(np.asarray(result.singular_values))
    idx = np.arange(1, lg.shape[1] + 1)
    q = np.nanquantile(np.where(np.isfinite(lg), lg, np.nan), [0.1, 0.5, 0.9], axis=0)
    ax.fill_between(idx, q[0], q[2], alpha=0.25, color="C0", lw=0)
    ax.plot(idx, q[1], "o-", color="C0")
    ax.set_xlabel("index i")
    ax.set_ylabel("ln σ_i of the Jacobian product")
    ax.set_title(f"End-to-end Jacobian over {result.depth} maps")
    return ax


def plot_ftle(result, ax=None, *, bins=40, color="C0"):
    """Histogram of the top finite-time exponent ``(1/L) ln sigma_max`` over the inputs."""
    ax = get_ax(ax)
    lam = np.asarray(result.exponents)[:, 0]
    lam = lam[np.isfinite(lam)]
    ax.hist(lam, bins=bins, color=color, alpha=0.8)
    ax.axvline(0.0, color="0.5", lw=0.8, ls="--")
    if lam.size:
        ax.axvline(float(np.mean(lam)), color="C3", lw=1.0, label=f"mean {np.mean(lam):.3f}")
        ax.legend(loc="best", fontsize="small")
    ax.set_xlabel("finite-time exponent (1/L) ln σ_max")
    ax.set_ylabel("inputs")
    ax.set_title(f"FTLE distribution over {result.exponents.shape[0]} inputs (depth {result.depth})")
    return ax


def plot_residual_fit(result, ax=None):
    """Per block: relative Euler-form error, flow (discretisation) error and update size."""
    ax = get_ax(ax)
    x = np.arange(len(result.blocks))
    for arr, lab, mk in ((result.euler_error, "Euler-form error", "o"), (result.flow_error, "flow error", "s"),
                         (result.relative_update, "‖Δh‖ / ‖h‖", "^")):
        ax.plot(x, np.nanmedian(arr, axis=0) if arr.size else [], marker=mk, label=lab)
    ax.set_yscale("symlog", linthresh=1e-6)
    ax.set_xticks(x)
    ax.set_xticklabels(result.blocks, rotation=45, ha="right", fontsize="small")
    ax.set_ylabel("median over inputs")
    ax.set_title("Residual stack as an ODE: h + dt σ(W h + b)")
    ax.legend(loc="best", fontsize="small")
    return ax


def plot_fixed_points(result, ax=None):
    """Eigenvalues of the Jacobian at the distinct converged fixed points (unit circle for maps)."""
    ax = get_ax(ax)
    idx = result.unique()
    for j, i in enumerate(idx[:10]):
        ax.scatter(result.eigenvalues_real[i], result.eigenvalues_imag[i], s=10, color=f"C{j % 10}",
                   label=f"point {i} ({'stable' if result.stable[i] else 'unstable'})")
    if result.kind == "map":
        th = np.linspace(0, 2 * np.pi, 200)
        ax.plot(np.cos(th), np.sin(th), color="0.5", lw=0.8, ls="--")
        ax.set_aspect("equal", adjustable="datalim")
    else:
        ax.axvline(0.0, color="0.5", lw=0.8, ls="--")
    ax.set_xlabel("Re λ")
    ax.set_ylabel("Im λ")
    ax.set_title(f"Jacobian spectra at {idx.size} fixed point(s)")
    if idx.size:
        ax.legend(loc="best", fontsize="small")
    return ax


def plot_stability(result, ax=None, **kwargs):
    """A :class:`StabilityResult`: the spectrum (recurrent models) or per-layer singular values."""
    if result.spectrum is not None:
        return plot_spectrum(result.spectrum, ax=ax, **kwargs)
    if result.ftle is not None:
        return plot_layer_singular_values(result.ftle, ax=ax, **kwargs)
    raise TypeError("StabilityResult holds neither a spectrum nor finite-time exponents")


__all__ = ["plot_spectrum", "plot_convergence", "plot_gain_sweep", "plot_layer_singular_values",
           "plot_product_singular_values", "plot_ftle", "plot_residual_fit", "plot_fixed_points",
           "plot_stability"]
