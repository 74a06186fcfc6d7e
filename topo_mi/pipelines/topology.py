"""``betti_profile``: persistence layer by layer on one shared scale grid."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from topo_mi._results import Result, result_dataclass
from topo_mi._validation import as_array, check_float, check_int, fail, unknown_name
from topo_mi.pipelines._layers import pick_layers
from topo_mi.topology._persistence import persistence
from topo_mi.topology._result import PersistenceResult
from topo_mi.topology._vectorize import betti_curve


@result_dataclass
class BettiProfile(Result):
    """Persistence of every layer, Betti curves on one shared grid, Betti numbers across depth.

    Attributes
    ----------
    layers : list of str
    results : list of PersistenceResult
        One per layer (all points or landmarks, the seed given).
    grid : ndarray of shape (n_grid,)
        The shared scales ε (for ``knn_geodesic``: the integers 0, 1, 2, ... hops).
    betti_curves : ndarray of shape (n_layers, max_dim + 1, n_grid), int64
        ``β_k(ε)`` with the ``b <= ε < d`` convention.
    scale : float
        The scale of ``betti_numbers`` when one scale serves every layer; NaN when each layer has
        its own (``scales``).
    betti_numbers : ndarray of shape (n_layers, max_dim + 1), int64
    complexity : ndarray of shape (n_layers,)
        Topological complexity ``Σ_k β_k`` at ``scale`` (Naitzat et al., JMLR 2020).
    n_boot, ci : int, float
        Bootstrap resamples and the confidence level of the bands.
    boot_betti_numbers : ndarray of shape (n_boot, n_layers, max_dim + 1) or None
    betti_numbers_lo, betti_numbers_hi : ndarray of shape (n_layers, max_dim + 1) or None
        Percentile bands of the bootstrap (float).
    complexity_lo, complexity_hi : ndarray of shape (n_layers,) or None
    betti_curves_lo, betti_curves_hi : ndarray like ``betti_curves`` or None
    params : dict
        The arguments (metric, k, landmarks, backend, coefficient field, threshold, class, seed,
        the rule that chose ``scale``).
    """

    layers: list
    results: list
    grid: np.ndarray
    betti_curves: np.ndarray
    scale: float
    betti_numbers: np.ndarray
    complexity: np.ndarray
    n_boot: int = 0
    ci: float = 0.95
    boot_betti_numbers: Any = None
    betti_numbers_lo: Any = None
    betti_numbers_hi: Any = None
    complexity_lo: Any = None
    complexity_hi: Any = None
    betti_curves_lo: Any = None
    betti_curves_hi: Any = None
    params: dict = None
    scales: Any = None

    _plot_function = "topo_mi.plotting.topology:plot_betti_profile"

    def __getitem__(self, layer: str) -> PersistenceResult:
        if layer not in self.layers:
            raise unknown_name("layer", layer, self.layers)
        return self.results[self.layers.index(layer)]

    def summary(self) -> dict[str, Any]:
        per_layer = bool(np.isnan(self.scale))  # each layer at its own scale (never NaN in a summary)
        out: dict[str, Any] = {"n_layers": len(self.layers)}
        if not per_layer:
            out["scale"] = float(self.scale)
        out.update({"scale_rule": (self.params or {}).get("scale_rule"), "metric": (self.params or {}).get("metric")})
        for name, b, c, sc in zip(self.layers, self.betti_numbers, self.complexity, layer_scales(self)):
            out[f"betti[{name}]"] = tuple(int(v) for v in b)
            out[f"complexity[{name}]"] = float(c)
            if per_layer:
                out[f"scale[{name}]"] = float(sc)
        return out

    def report_section(self) -> dict[str, Any]:
        """Headline (β across depth), a layers x (ε, β_k, complexity, points, certified error) table, caption."""
        params = self.params or {}
        scales = layer_scales(self)
        B = np.asarray(self.betti_numbers)
        seq = ", ".join(str(int(v)) for v in B[:, 0])
        cls = params.get("class_label")
        who = f"class {cls}" if cls is not None else "all samples"
        headline = (f"β0 of {who} goes {seq} from {self.layers[0]} to {self.layers[-1]}"
                    + (f"; β1 goes {', '.join(str(int(v)) for v in B[:, 1])}" if B.shape[1] > 1 else "")
                    + f"; {params.get('metric')} distance, scale rule: {params.get('scale_rule')}.")
        cols = ["scale ε"] + [f"β{k}" for k in range(B.shape[1])] + ["complexity Σβ", "points", "landmarks",
                                                                     "certified error"]
        rows = []
        for i, r in enumerate(self.results):
            rows.append([float(scales[i]), *[int(v) for v in B[i]], float(self.complexity[i]), int(r.n_points),
                         int(r.n_landmarks) if r.landmark_indices is not None else None,
                         float(r.bottleneck_bound)])
        bands = f" Shaded bands: {int(round(100 * self.ci))} % intervals over {self.n_boot} resamples." if self.n_boot else ""
        err = max(float(r.bottleneck_bound) for r in self.results)
        routes = sorted({r.route for r in self.results if getattr(r, "route", None)})
        caption = (f"Betti numbers β_k (counts of components and loops) of {who} at each layer, read at the scale "
                   f"ε in the table ({params.get('metric')} distance; rule: {params.get('scale_rule')}); the dashed "
                   f"line is the complexity Σβ. Falling β0 means the layer merges clusters." + bands
                   + (" All points were used: no approximation error." if err <= 0 else
                      f" Landmark diagrams are within a bottleneck distance of {err:.3g} of the full ones "
                      "(certified)." if routes in ([], ["landmarks"]) else
                      f" The diagrams (certified routes: {', '.join(routes)}) are within a bottleneck distance "
                      f"of {err:.3g} of the exact ones of all points."))
        return {"headline": headline, "table": {"index": list(self.layers), "columns": cols, "rows": rows},
                "caption": caption}

    def distance_matrix(self, metric: str = "bottleneck", dim: int | None = None, p: float = 2.0,
                        executor=None) -> np.ndarray:
        """Layer × layer diagram distances (see :func:`topo_mi.topology.distance_matrix`)."""
        from topo_mi.topology._distances import distance_matrix

        return distance_matrix(self.results, metric=metric, dim=dim, p=p, executor=executor)

    def plot(self, ax=None, *, kind: str = "depth", layer: str | None = None, **kwargs):
        """``kind``: ``"depth"`` (Betti numbers across depth with bands, default), ``"curves"``
        (β_dim(ε) heatmap, ``dim=``), ``"distances"`` (layer × layer heatmap, ``metric=``), or
        one layer's ``"diagram"`` / ``"barcode"`` (``layer=``, default the first). Returns the Axes."""
        from topo_mi._validation import check_choice
        from topo_mi.plotting import topology as tp

        kind = check_choice("kind", kind, ("depth", "curves", "distances", "diagram", "barcode"))
        if kind in ("diagram", "barcode"):
            return self[self.layers[0] if layer is None else layer].plot(ax=ax, kind=kind, **kwargs)
        if layer is not None:
            fail("layer", f"None unless kind is 'diagram' or 'barcode', with kind={kind!r}", layer)
        fn = {"depth": tp.plot_betti_profile, "curves": tp.plot_profile_curves,
              "distances": tp.plot_layer_distances}[kind]
        return fn(self, ax=ax, **kwargs)


# Progress lines appear by default once a call has run this long (seconds).
PROGRESS_AFTER_S = 3.0


# Points sampled by :func:`_cost_hint`.
_HINT_SAMPLE = 256


def _cost_hint(X, rows, *, max_dim, metric, threshold, max_error, max_relative_error, n_landmarks) -> float:
    """A rough relative cost of one layer's persistence (its rows ``rows``, or all of them), used
    only to hand the costliest layers to a pool first (each worker takes the next task when free:
    the longest task started last leaves the others idle). Never changes a result. From a fixed
    subsample: the fraction ``f`` of its pairs within the scale the complex is built to (the
    threshold, or the enclosing radius minus twice the asked error), and ``n^(k+2) f^(k+1)`` for
    ``max_dim = k`` (the cofaces scanned)."""
    from topo_mi.topology._metrics import distance_matrix_of

    n = len(X) if rows is None else len(rows)
    if max_dim == 0 or metric != "euclidean" or n_landmarks is not None or n < 3:
        return float(n)
    pick = np.sort(np.random.default_rng(0).choice(n, size=min(n, _HINT_SAMPLE), replace=False))
    try:
        S = np.asarray(X[pick if rows is None else rows[pick]], dtype=np.float64).reshape(len(pick), -1)
    except (TypeError, ValueError, IndexError):  # an input without fancy indexing: no hint
        return float(n)
    if not np.isfinite(S).all():
        return float(n)
    D = distance_matrix_of(S, "euclidean")
    R = float(D.max(axis=1).min())
    t = float(threshold) if threshold is not None else np.inf
    if max_error is not None:
        t = min(t, R - 2.0 * float(max_error))
    elif max_relative_error is not None:
        t = min(t, R * (1.0 - 2.0 * float(max_relative_error)))
    f = float((D[np.triu_indices(len(pick), 1)] <= t).mean())
    return float(n) ** (max_dim + 2) * f ** (max_dim + 1)


def _persistence_task(item: dict) -> PersistenceResult:
    """One layer (or one bootstrap resample of it): module level, so process pools can run it.

    ``item["report"]`` (optional): ``{"label", "t0", "mode"}`` prints a progress line with the
    elapsed time when done (``mode`` True: always; None: once the call has run a few seconds)."""
    import time

    X = item["X"]
    rows = item.get("rows")
    if rows is not None:
        X = np.asarray(X)[rows]
    t = time.perf_counter()
    if item.get("quiet_cost"):  # a resample: the layer's own run has already warned
        import warnings

        from topo_mi.errors import CostWarning

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", CostWarning)
            res = persistence(X, **item["kwargs"])
    else:
        res = persistence(X, **item["kwargs"])
    report = item.get("report")
    if report is not None:
        total = time.time() - report["t0"]
        if report["mode"] is True or total > PROGRESS_AFTER_S:
            import sys

            print(f"betti_profile: {report['label']} done in {time.perf_counter() - t:.1f} s "
                  f"({total:.1f} s elapsed)", file=sys.stderr, flush=True)
    return res


SCALE_RULES = ("auto", "quantile", "per_layer", "first_layer", "hops")


def layer_scales(profile) -> np.ndarray:
    """The scale each layer's Betti numbers were read at (n_layers,)."""
    if profile.scales is not None:
        return np.asarray(profile.scales, dtype=np.float64)
    return np.full(len(profile.layers), float(profile.scale))


def _distance_quantile(X, rows, res: PersistenceResult, metric: str, q: float, seed) -> float:
    """``q``-quantile of the pairwise distances of the points a layer's complex was built on (at
    most 2,000 of them, a seeded random subset beyond that)."""
    from scipy.spatial.distance import pdist

    X = np.asarray(X)
    if rows is not None and metric != "precomputed":
        X = X[rows]
    idx = np.arange(X.shape[0]) if res.landmark_indices is None else np.asarray(res.landmark_indices)
    if metric == "precomputed":
        if rows is not None:
            X = X[np.ix_(rows, rows)]
        if idx.size > 2000:
            idx = np.sort(np.random.default_rng(seed).choice(idx, 2000, replace=False))
        D = X[np.ix_(idx, idx)]
        d = D[np.triu_indices(len(idx), 1)]
    else:
        if idx.size > 2000:
            idx = np.sort(np.random.default_rng(seed).choice(idx, 2000, replace=False))
        d = pdist(np.asarray(X[idx], dtype=np.float64), metric=metric)
    d = d[np.isfinite(d)]
    return float(np.quantile(d, q)) if d.size else 0.0


def _default_scale(first: PersistenceResult, metric: str, what_layer: str = "the first layer's") -> tuple[float, str]:
    if metric == "knn_geodesic":
        return 2.0, "knn_geodesic: 2 hops (Naitzat et al.)"
    for dims, what in ((range(1, len(first.diagrams)), "H>=1"), ((0,), "H0")):
        best = None
        for k in dims:
            d = first.diagrams[k]
            fin = d[np.isfinite(d[:, 1])]
            if len(fin):
                j = int(np.argmax(fin[:, 1] - fin[:, 0]))
                if best is None or fin[j, 1] - fin[j, 0] > best[1] - best[0]:
                    best = fin[j]
        if best is not None:
            return float(0.5 * (best[0] + best[1])), f"midpoint of {what_layer} most persistent finite {what} bar"
    return 0.0, f"no finite bar in {what_layer} diagram"


def betti_profile(acts, *, layers=None, max_dim: int = 1, metric: str = "euclidean", k: int | None = None,
                  n_landmarks: int | None = None, landmarks: str = "maxmin", backend: str = "auto",
                  coeff: int = 2, threshold: float | None = None, grid=None, n_grid: int = 128,
                  scale: float | None = None, scale_rule: str = "auto", scale_quantile: float = 0.2,
                  n_boot: int = 0, ci: float = 0.95, boot_fraction: float = 0.8,
                  class_label=None, labels=None, seed: int | None = 0, executor=None,
                  memory_limit: int | None = None, progress: bool | None = None, max_error: float | None = None,
                  max_relative_error: float | None = None) -> BettiProfile:
    """Vietoris–Rips persistence of each layer, compared on one shared scale grid.

    Follows Naitzat, Zhitnikov & Lim ("Topology of deep neural networks", JMLR 2020): the Betti
    numbers of every layer's activations at one scale chosen once and fixed for all layers, and
    the topological complexity ``Σ_k β_k`` across depth.

    Parameters
    ----------
    acts : Activations or mapping of layer name -> array of shape (n_samples, n_features)
    layers : list of str, optional
        Default: every layer, in order.
    max_dim, metric, k, n_landmarks, landmarks, backend, coeff, threshold, memory_limit
        As in :func:`topo_mi.topology.persistence`, applied to every layer.
    max_error, max_relative_error : float, optional
        Certified diagrams of every layer within this bottleneck distance of the exact ones of
        all its points (:func:`topo_mi.topology.persistence`'s routes; not with ``n_landmarks``
        or ``threshold``); each layer's route and bounds are in ``results[i]``.
    grid : array of shape (n_grid,), optional
        Shared scales. Default: ``n_grid`` points from 0 to 1.05 × the largest finite birth or
        death over all layers (the threshold if finite); for ``knn_geodesic`` the integers
        0, 1, ..., largest hop value.
    scale : float, optional
        One scale for the ``betti_numbers`` of every layer (overrides ``scale_rule``).
    scale_rule : {"auto", "quantile", "per_layer", "first_layer", "hops"}, default "auto"
        How the scale is chosen when ``scale`` is None. Layers of a network live on very
        different distance scales, so one ε taken from the first layer can leave every point of a
        later layer isolated (β0 = n). ``"quantile"``: each layer at its own ε, the
        ``scale_quantile`` quantile of that layer's pairwise distances (scale-free: multiplying a
        layer by a constant does not change its Betti numbers); ``"per_layer"``: each layer at the
        midpoint of its own most persistent finite bar of dimension >= 1 (H0 if none);
        ``"first_layer"``: that midpoint on the first layer, for all layers (only meaningful when
        layers share units); ``"hops"``: 2 hops for ``knn_geodesic`` (Naitzat et al.'s protocol,
        comparable across layers). ``"auto"``: ``"hops"`` for ``knn_geodesic``, else
        ``"quantile"``. The rule and the scales are recorded in ``params["scale_rule"]`` and
        ``scales``; a :class:`~topo_mi.errors.TopoMIWarning` names the layers where more than half
        of the points are components of their own at their scale.
    scale_quantile : float in (0, 1), default 0.2
        The quantile of the ``"quantile"`` rule.
    n_boot : int, default 0
        Bootstrap resamples per layer: each draws ``boot_fraction`` of the samples without
        replacement (and fresh landmarks) with its own seed; the bands are percentile intervals at
        level ``ci``.
    class_label : optional
        Keep only the samples whose label equals this (e.g. 0 for Naitzat's class a).
    labels : array of shape (n_samples,), optional
        Labels for ``class_label`` (default: ``acts.labels``).
    seed : int or None
        Landmark and bootstrap seeds derive from it.
    executor : None, "serial", "process", "dask" or an Executor
        Layers and resamples run through ``topo_mi.parallel.get_executor(executor).map``.
    progress : bool or None, default None
        Per-layer progress with elapsed time on stderr (None: on when the work is estimated to
        take more than a few seconds).

    Returns
    -------
    BettiProfile
    """
    from topo_mi.parallel import SerialExecutor, get_executor

    if not isinstance(acts, Mapping) or len(acts) == 0:
        fail("acts", "an Activations or a non-empty mapping of layer name -> (n_samples, n_features) array", acts)
    layers = pick_layers(acts, layers)
    n_boot = check_int("n_boot", n_boot, min_value=0)
    ci = check_float("ci", ci, min_value=0, max_value=1, min_inclusive=False, max_inclusive=False)
    boot_fraction = check_float("boot_fraction", boot_fraction, min_value=0, max_value=1, min_inclusive=False)
    n_grid = check_int("n_grid", n_grid, min_value=2)
    from topo_mi._validation import check_choice

    scale_rule = check_choice("scale_rule", scale_rule, SCALE_RULES)
    scale_quantile = check_float("scale_quantile", scale_quantile, min_value=0, max_value=1, min_inclusive=False,
                                 max_inclusive=False)
    if scale_rule == "auto":
        scale_rule = "hops" if metric == "knn_geodesic" else "quantile"
    if scale_rule == "hops" and metric != "knn_geodesic":
        fail("scale_rule", "'hops' only with metric='knn_geodesic'", scale_rule)
    if seed is not None:
        seed = check_int("seed", seed, min_value=0)

    n_samples = as_array(acts[layers[0]]).shape[0]
    rows = None
    if class_label is not None:
        if labels is None:
            labels = getattr(acts, "labels", None)
        if labels is None:
            fail("labels", "labels (or an Activations with labels) when class_label is given", None)
        labels = as_array(labels, "labels")
        if labels.shape[:1] != (n_samples,):
            fail("labels", f"an array of {n_samples} labels", f"shape {labels.shape}", raw=True)
        rows = np.flatnonzero(labels == class_label)
        if rows.size < 2:
            present = np.unique(labels)[:10].tolist()
            fail("class_label", f"a label with at least 2 samples (labels present: {present})", class_label)
    elif labels is not None:
        fail("labels", "None unless class_label is given", "an array", raw=True)
    n_used = n_samples if rows is None else rows.size

    kwargs = dict(max_dim=max_dim, metric=metric, backend=backend, coeff=coeff, threshold=threshold,
                  n_landmarks=n_landmarks, landmarks=landmarks, k=k, memory_limit=memory_limit)
    if max_error is not None or max_relative_error is not None:  # persistence() checks what they exclude
        kwargs.update(max_error=max_error, max_relative_error=max_relative_error)
    if seed is None:
        main_seed = boot_root = None
    else:  # independent streams for the main run and the resamples, both fixed by ``seed``
        main_seed, boot_root = (int(c.generate_state(1)[0] & 0x7FFFFFFF)
                                for c in np.random.SeedSequence(seed).spawn(2))
    if progress is not None and not isinstance(progress, bool):
        fail("progress", "True, False or None", progress)
    import time

    t_start = time.time()
    L = len(layers)

    def report(label):
        return None if progress is False else {"label": label, "t0": t_start, "mode": progress}

    items = [{"X": acts[name], "rows": rows, "report": report(f"layer {name!r} ({i + 1}/{L})"),
              "kwargs": {**kwargs, "seed": main_seed, "label": f"layer {name!r}"}}
             for i, name in enumerate(layers)]
    boot_rng = np.random.default_rng(boot_root)
    m = max(2, int(round(boot_fraction * n_used)))
    if n_landmarks is not None and m < n_landmarks:
        fail("boot_fraction", f"a fraction keeping at least n_landmarks={n_landmarks} of the {n_used} samples",
             boot_fraction)
    from topo_mi._resources import check_allocation

    # every resample's task holds its row indices and returns its diagrams and Betti curves
    check_allocation("n_boot: the bootstrap resamples' indices and results",
                     8.0 * n_boot * len(layers) * (m + (max_dim + 1) * (n_grid + m)),
                     hint=f"lower n_boot (now {n_boot}) or boot_fraction")
    for b in range(n_boot):
        pick = np.sort(boot_rng.choice(n_used, size=m, replace=False))
        sub = pick if rows is None else rows[pick]
        s_b = int(boot_rng.integers(0, 2**31 - 1))
        items += [{"X": acts[name], "rows": sub, "kwargs": {**kwargs, "seed": s_b}, "quiet_cost": True,
                   "report": report(f"resample {b + 1}/{n_boot}") if i == L - 1 else None}
                  for i, name in enumerate(layers)]
    ex = get_executor(executor)
    order = list(range(len(items)))
    if not isinstance(ex, SerialExecutor) and len(items) > 1:  # the costliest first (results stay in order)
        hint_kw = {k: kwargs.get(k) for k in ("max_dim", "metric", "threshold", "max_error",
                                              "max_relative_error", "n_landmarks")}
        base = [_cost_hint(as_array(acts[name]), rows, **hint_kw) for name in layers]
        hints = base + [h * (m / n_used) ** (max_dim + 2) for _ in range(n_boot) for h in base]
        order = sorted(order, key=lambda i: -hints[i])
    done = ex.map(_persistence_task, [items[i] for i in order], desc="betti_profile", progress=False)
    out: list = [None] * len(items)
    for i, r in zip(order, done):
        out[i] = r
    results, boot = out[:L], out[L:]

    # -- shared grid and scale ---------------------------------------------------------------------
    thr = results[0].threshold
    if grid is None:
        vals = [d[np.isfinite(d)] for r in out for d in r.diagrams]
        hi = max([float(v.max()) for v in vals if v.size] + [0.0])
        if np.isfinite(thr):
            hi = float(thr) if metric != "knn_geodesic" else max(hi, float(thr))
        if metric == "knn_geodesic":
            grid = np.arange(0.0, max(np.floor(hi), 2.0) + 1.0)
            if np.isfinite(thr):
                grid = grid[grid <= thr]
        else:
            hi = hi if hi > 0 else 1.0
            grid = np.linspace(0.0, hi if np.isfinite(thr) else 1.05 * hi, n_grid)
    grid = np.asarray(grid, dtype=np.float64)
    if grid.ndim != 1 or grid.size == 0 or not np.isfinite(grid).all():
        fail("grid", "a non-empty 1-D array of finite scales", grid)
    if scale is not None:
        scales, rule = np.full(L, check_float("scale", scale, min_value=0)), "given"
    elif scale_rule == "hops":
        scales, rule = np.full(L, 2.0), "knn_geodesic: 2 hops (Naitzat et al.)"
    elif scale_rule == "first_layer":
        s0, rule = _default_scale(results[0], metric)
        scales = np.full(L, s0)
    elif scale_rule == "per_layer":
        scales = np.array([_default_scale(r, metric, "each layer's")[0] for r in results])
        rule = "per layer: midpoint of each layer's most persistent finite bar"
    else:
        scales = np.array([_distance_quantile(acts[name], rows, r, metric, scale_quantile, seed)
                           for name, r in zip(layers, results)])
        rule = f"per layer: {scale_quantile:g} quantile of the layer's pairwise {metric} distances"
    if np.isfinite(thr):
        clipped = scales > thr
        if clipped.any():
            scales = np.minimum(scales, thr)
            rule += f" (clipped to the threshold {thr:g} in {int(clipped.sum())} layers)"
    scale = float(scales[0]) if np.all(scales == scales[0]) else float("nan")
    curves = np.stack([r.betti_curve(grid) for r in results])
    betti = np.stack([r.betti_numbers(s) for r, s in zip(results, scales)])
    isolated = [f"{name} (β0 = {int(b[0])} of {r.n_points} points at ε = {s:.3g})"
                for name, b, r, s in zip(layers, betti, results, scales) if b[0] > 0.5 * r.n_points]
    if isolated:
        import warnings

        from topo_mi.errors import TopoMIWarning

        warnings.warn(f"betti_profile: most points are isolated at the chosen scale ({rule}) in layers "
                      f"{', '.join(isolated)}; choose a larger scale, scale_rule='quantile' or a larger "
                      "scale_quantile", TopoMIWarning, stacklevel=2)
    complexity = betti.sum(axis=1).astype(np.float64)

    extra: dict[str, Any] = {}
    if n_boot:
        q = [(1 - ci) / 2 * 100, (1 + ci) / 2 * 100]
        bb = np.stack([np.stack([boot[b * L + i].betti_numbers(scales[i]) for i in range(L)])
                       for b in range(n_boot)])
        bc = np.stack([np.stack([boot[b * L + i].betti_curve(grid) for i in range(L)]) for b in range(n_boot)])
        cx = bb.sum(axis=2).astype(np.float64)
        extra = dict(
            boot_betti_numbers=bb,
            betti_numbers_lo=np.percentile(bb, q[0], axis=0), betti_numbers_hi=np.percentile(bb, q[1], axis=0),
            complexity_lo=np.percentile(cx, q[0], axis=0), complexity_hi=np.percentile(cx, q[1], axis=0),
            betti_curves_lo=np.percentile(bc, q[0], axis=0), betti_curves_hi=np.percentile(bc, q[1], axis=0),
        )
    params = {"metric": metric, "k": k, "max_dim": max_dim, "n_landmarks": n_landmarks, "landmarks": landmarks,
              "backend": results[0].backend, "coeff": coeff, "threshold": float(thr),
              "class_label": None if class_label is None else (class_label.item() if hasattr(class_label, "item")
                                                               else class_label),
              "n_samples": int(n_used), "seed": seed, "boot_fraction": boot_fraction if n_boot else None,
              "scale_rule": rule, "scale_quantile": scale_quantile if scale_rule == "quantile" and scale is None
              else None}
    return BettiProfile(layers=layers, results=results, grid=grid, betti_curves=curves, scale=float(scale),
                        betti_numbers=betti, complexity=complexity, n_boot=n_boot, ci=ci, params=params,
                        scales=np.asarray(scales, dtype=np.float64), **extra)
