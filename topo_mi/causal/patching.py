r"""Activation patching over many sites, many independent sites per forward.

Activation patching (denoising): run the *corrupt* inputs, replace the activations of one site
(a layer, or one position of it) with those of the *clean* run on the same rows, and read a
metric. The normalised effect

.. math:: e = \frac{\bar m_\text{patched} - \bar m_\text{corrupt}}{\bar m_\text{clean} - \bar m_\text{corrupt}}

is 1 for a site that carries everything the metric needs and 0 for one that carries nothing
(means over the rows). TransformerLens' ``patching`` utilities run one forward per site; here the
corrupt batch is repeated once per site along the batch axis and site ``j`` is patched in copy
``j`` only, so many sites share one forward (the rows of a batch are independent in eval mode).
"""
from __future__ import annotations

from typing import Any, Callable, ClassVar

import numpy as np

from topo_mi._results import Result, result_dataclass
from topo_mi._validation import check_int, fail
from topo_mi.causal._intervene import _as_inputs, _cache_run, _forward, _n_rows, _repeat, cache_outputs, intervene
from topo_mi.causal._ops import Op
from topo_mi.errors import InvalidParameterError, ResourceError


@result_dataclass
class PatchSweepResult(Result):
    """Effects of patching clean activations into the corrupt run, per (layer, position) site.

    Attributes
    ----------
    layers : list of str
    positions : list
        Column labels: token positions (ints) or ``"all"`` (the whole layer).
    effect : ndarray (n_layers, n_positions)
        Normalised effect ``(m_patched - m_corrupt) / (m_clean - m_corrupt)`` of the row means.
    metric_patched : ndarray (n_layers, n_positions)
        Mean metric over the rows with the site patched.
    per_sample : ndarray (n_layers, n_positions, n_samples)
        The metric of every row with the site patched.
    metric_clean, metric_corrupt : float
        Mean metric of the clean and the corrupt runs.
    clean_per_sample, corrupt_per_sample : ndarray (n_samples,)
    n_forwards : int
        Patched forwards run (excluding the clean and the corrupt run).
    metric : str
    """

    layers: list
    positions: list
    effect: np.ndarray
    metric_patched: np.ndarray
    per_sample: np.ndarray
    metric_clean: float
    metric_corrupt: float
    clean_per_sample: np.ndarray
    corrupt_per_sample: np.ndarray
    n_forwards: int
    metric: str

    _plot_function: ClassVar[str] = "topo_mi.plotting.causal:plot_patch_sweep"

    def summary(self) -> dict:
        i, j = np.unravel_index(np.nanargmax(self.effect), self.effect.shape)
        return {"n_sites": int(np.isfinite(self.effect).sum()), "metric_clean": self.metric_clean,
                "metric_corrupt": self.metric_corrupt, "max_effect": float(self.effect[i, j]),
                "max_site": f"{self.layers[i]}@{self.positions[j]}", "n_forwards": self.n_forwards}

    def report_section(self) -> dict:
        s = self.summary()
        return {"headline": f"Patching {s['max_site']} restores {s['max_effect']:.0%} of the clean metric.",
                "table": {"index": list(self.layers), "columns": [str(p) for p in self.positions],
                          "rows": [[float(v) for v in row] for row in self.effect]},
                "caption": "Normalised effect of patching each site with clean activations: 1 restores the "
                           "clean metric, 0 leaves the corrupt one."}


class _SitePatch(Op):
    """Copy ``j`` of the repeated batch gets the clean rows at its site (a position, or all)."""

    def __init__(self, clean, n_rows: int):
        super().__init__()
        self.clean, self.n_rows = clean, n_rows
        self.copies: list[int] = []
        self.pos: list[Any] = []

    def __repr__(self):
        return f"_SitePatch({len(self.copies)} sites)"

    def apply(self, t, call):
        import torch

        if not self.copies:
            return t
        B = self.n_rows
        k = t.shape[0] // B
        view = t.clone().reshape((k, B) + tuple(t.shape[1:]))
        clean = self.clean.to(dtype=t.dtype, device=t.device)
        whole = [c for c, p in zip(self.copies, self.pos) if p == "all"]
        if whole:
            view[torch.as_tensor(whole)] = clean
        at = [(c, p) for c, p in zip(self.copies, self.pos) if p != "all"]
        if at:
            c_idx = torch.as_tensor([c for c, _ in at])
            p_idx = torch.as_tensor([p for _, p in at])
            view[c_idx, :, p_idx] = clean.transpose(0, 1)[p_idx]
        return view.reshape(t.shape)


def _default_metric(clean_out):
    """Logit (last position) of the class the clean run predicts, per row."""
    logits = clean_out if clean_out.ndim == 2 else clean_out[:, -1]
    target = logits.argmax(-1)

    def metric(out):
        lo = out if out.ndim == 2 else out[:, -1]
        return lo.gather(-1, target[:, None].to(lo.device))[:, 0]

    metric.__qualname__ = "logit of the clean prediction"
    return metric


def _first_tensor(out):
    import torch

    if isinstance(out, torch.Tensor):
        return out
    for key in ("logits", "last_hidden_state"):
        if hasattr(out, key):
            return getattr(out, key)
    if isinstance(out, (tuple, list)) and out and isinstance(out[0], torch.Tensor):
        return out[0]
    fail("model", "a forward returning a tensor (or an output with .logits)", type(out).__name__, raw=True)


def _metric_values(metric, out, n: int, what: str) -> np.ndarray:
    import torch

    m = metric(out)
    if not isinstance(m, torch.Tensor) or tuple(m.shape) != (n,):
        got = tuple(m.shape) if isinstance(m, torch.Tensor) else type(m).__name__
        raise InvalidParameterError(f"metric: expected a tensor of shape ({n},) (one value per row) on the "
                                    f"{what} outputs, got {got}")
    v = m.detach().double().cpu().numpy()
    if not np.isfinite(v).all():
        from topo_mi.errors import NonFiniteError

        raise NonFiniteError(f"metric: {int((~np.isfinite(v)).sum())} non-finite values on the {what} outputs")
    return v


def _plan_sites(shapes: dict[str, tuple], positions) -> list:
    if isinstance(positions, str):
        if positions != "all":
            fail("positions", "None, 'all' or a list of ints", positions)
        return ["all"]
    has_pos = {name: len(s) >= 3 for name, s in shapes.items()}
    if positions is None:
        if not all(has_pos.values()):
            return ["all"]
        T = {s[1] for s in shapes.values()}
        if len(T) != 1:
            fail("positions", "explicit positions (the layers have different position counts)", sorted(T))
        return list(range(T.pop()))
    pos = [positions] if isinstance(positions, (int, np.integer)) else list(positions)
    if not pos or not all(isinstance(p, (int, np.integer)) and not isinstance(p, bool) for p in pos):
        fail("positions", "None, 'all' or a non-empty list of ints", positions)
    for name, s in shapes.items():
        if not has_pos[name]:
            raise InvalidParameterError(f"positions: layer {name!r} has output shape {s} with no position axis; "
                                        "pass positions='all' or leave it out")
        bad = [p for p in pos if not 0 <= p < s[1]]
        if bad:
            raise InvalidParameterError(f"positions: expected positions in [0, {s[1]}) for layer {name!r}, got {bad}")
    return [int(p) for p in pos]


def patch_sweep(model, clean, corrupt, *, layers, positions: Any = None, metric: Callable | None = None,
                max_rows: int = 8192, progress: bool = False) -> PatchSweepResult:
    """Patch every (layer, position) site with clean activations in the corrupt run.

    Parameters
    ----------
    model : torch.nn.Module
    clean, corrupt : tensor, array or dict of tensors
        Inputs with the same number of rows; row ``i`` of the corrupt run is patched with row ``i``
        of the clean run.
    layers : str, sequence of str
        Names or glob patterns (as in :func:`~topo_mi.activations.collect`).
    positions : None, "all" or list of int
        ``None``: every position when every layer has a position axis (outputs (batch, positions,
        ...)), else the whole layer; ``"all"``: one whole-layer site per layer; a list: those
        positions of every layer.
    metric : callable, optional
        ``metric(outputs) -> tensor (batch,)``. Default: the logit (at the last position) of the class
        the clean run predicts.
    max_rows : int, default 8192
        Rows per forward: ``max_rows // n`` sites share one forward (at least one).
    progress : bool, default False

    Returns
    -------
    PatchSweepResult
    """
    import torch

    if not isinstance(model, torch.nn.Module):
        fail("model", "a torch.nn.Module", type(model).__name__, raw=True)
    max_rows = check_int("max_rows", max_rows, min_value=1)
    xc, xk = _as_inputs(model, clean), _as_inputs(model, corrupt)
    n = _n_rows(xc)
    if _n_rows(xk) != n:
        fail("corrupt", f"{n} rows (as many as clean)", f"{_n_rows(xk)} rows", raw=True)
    cache, (out_clean,) = _cache_run(model, xc, layers)  # the clean cache and output in one forward
    out_clean = _first_tensor(out_clean)
    names = list(cache)
    shapes = {k: tuple(v.shape) for k, v in cache.items()}
    cols = _plan_sites(shapes, positions)
    from topo_mi.activations._hooks import _eval_mode

    with _eval_mode(model), torch.no_grad():
        out_corrupt = _first_tensor(_forward(model, xk))
    if metric is None:
        metric = _default_metric(out_clean)
    elif not callable(metric):
        fail("metric", "a callable outputs -> tensor (batch,)", metric)
    m_clean = _metric_values(metric, out_clean, n, "clean")
    m_corrupt = _metric_values(metric, out_corrupt, n, "corrupt")

    sites = [(li, pj) for li in range(len(names)) for pj in range(len(cols))]
    per_fwd = max(1, max_rows // n)
    per_row_bytes = sum(int(np.prod(s[1:])) * cache[k].element_size() for k, s in shapes.items())
    need = min(per_fwd, len(sites)) * n * per_row_bytes * 2
    if need > 8 * 2**30:
        raise ResourceError(f"max_rows: {min(per_fwd, len(sites))} sites x {n} rows per forward need about "
                            f"{need / 2**30:.1f} GiB of activations; lower max_rows")
    per_sample = np.full((len(names), len(cols), n), np.nan)
    chunks = [sites[i:i + per_fwd] for i in range(0, len(sites), per_fwd)]
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(chunks), desc="patch_sweep", unit="forward", leave=False, disable=None)
    ops = {name: _SitePatch(cache[name], n) for name in names}
    try:
        with intervene(model, ops):
            for chunk in chunks:
                for op in ops.values():
                    op.copies, op.pos = [], []
                for j, (li, pj) in enumerate(chunk):
                    ops[names[li]].copies.append(j)
                    ops[names[li]].pos.append(cols[pj])
                k = len(chunk)
                out = _first_tensor(_forward(model, _repeat(xk, k)))
                for j, (li, pj) in enumerate(chunk):  # the metric sees one copy (n rows) at a time
                    per_sample[li, pj] = _metric_values(metric, out[j * n:(j + 1) * n], n, "patched")
                if bar is not None:
                    bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    mp = per_sample.mean(axis=2)
    mc, mk = float(m_clean.mean()), float(m_corrupt.mean())
    denom = mc - mk
    effect = (mp - mk) / denom if denom != 0 else np.full_like(mp, np.nan)
    return PatchSweepResult(layers=names, positions=cols, effect=effect, metric_patched=mp, per_sample=per_sample,
                            metric_clean=mc, metric_corrupt=mk, clean_per_sample=m_clean,
                            corrupt_per_sample=m_corrupt, n_forwards=len(chunks),
                            metric=getattr(metric, "__qualname__", type(metric).__name__))


def patch_loop(model, clean, corrupt, *, layers, positions: Any = None, metric: Callable | None = None):
    """The same sweep with one forward per site (the reference :func:`patch_sweep` is checked against)."""
    import torch

    from topo_mi.activations._hooks import _eval_mode
    from topo_mi.causal._ops import Patch

    xc, xk = _as_inputs(model, clean), _as_inputs(model, corrupt)
    n = _n_rows(xc)
    cache = cache_outputs(model, xc, layers)
    cols = _plan_sites({k: tuple(v.shape) for k, v in cache.items()}, positions)
    if metric is None:
        with _eval_mode(model), torch.no_grad():
            metric = _default_metric(_first_tensor(_forward(model, xc)))
    out = np.empty((len(cache), len(cols), n))
    for li, name in enumerate(cache):
        for pj, p in enumerate(cols):
            op = Patch(cache[name]) if p == "all" else Patch(cache[name], positions=[p])
            with intervene(model, {name: op}):
                out[li, pj] = _metric_values(metric, _first_tensor(_forward(model, xk)), n, "patched")
    return out


__all__ = ["patch_sweep", "PatchSweepResult", "patch_loop"]
