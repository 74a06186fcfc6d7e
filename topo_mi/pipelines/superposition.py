r"""The superposition pipeline: toy models of superposition across sparsity, their feature geometry,
and optionally the n = 2, m = 1 phase diagram, the dimensions-per-feature curve and the
finite-dataset experiment (Elhage et al., 2022; Henighan et al., 2023).

No dataset or model is needed: the models are trained here, all instances of a figure in one
batched run (:mod:`topo_mi.superposition`).
"""
from __future__ import annotations

from typing import Any, ClassVar, Sequence

import numpy as np

from topo_mi._results import Result, result_dataclass
from topo_mi._validation import check_int, fail


@result_dataclass
class SuperpositionProfile(Result):
    """What :func:`superposition_profile` found.

    Attributes
    ----------
    sweep : SuperpositionSweep
        The sparsity sweep (the paper's introduction figure by default).
    phase_diagram : PhaseDiagram or None
    dimensions_curve : SuperpositionSweep or None
        ``D*`` against ``1/(1 − S)``.
    finite : FiniteDatasetResult or None
    params : dict
    """

    sweep: Any
    phase_diagram: Any
    dimensions_curve: Any
    finite: Any
    params: dict

    _plot_function: ClassVar[str] = "topo_mi.plotting.superposition:plot_profile"

    def _rows(self):
        sw = self.sweep
        rows, index = [], []
        for i, s in enumerate(sw.sparsity):
            labels = sw.polytopes[i][0]
            counts: dict[str, int] = {}
            k = sw.best_index(i, 0)
            for name, n in sw.models.geometry.polytope_counts(k).items():
                counts[name] = n
            poly = ", ".join(f"{v} {n}" for n, v in sorted(counts.items()) if n != "not_learned") or "none"
            index.append(f"1-S={1 - s:.3g}")
            rows.append([float(1 - s), float(sw.dimensions_per_feature[i, 0]),
                         int(sum(lab != "not_learned" for lab in labels)), poly,
                         float(sw.final_loss[i, 0].min())])
        return index, rows

    def summary(self) -> dict[str, Any]:
        sw = self.sweep
        out = {"n_features": int(sw.importance.shape[1]), "n_hidden": int(sw.models.W.shape[2]),
               "n_sparsity": int(sw.sparsity.size), "n_seeds": int(sw.seeds.size),
               "superposition_possible": bool(sw.models.superposition_possible),
               "dense_dimensions_per_feature": float(sw.dimensions_per_feature[int(np.argmin(sw.sparsity)), 0]),
               "sparse_dimensions_per_feature": float(sw.dimensions_per_feature[int(np.argmax(sw.sparsity)), 0]),
               "dense_polytopes": _counts_text(sw, int(np.argmin(sw.sparsity))),
               "sparse_polytopes": _counts_text(sw, int(np.argmax(sw.sparsity)))}
        if self.phase_diagram is not None:
            out["phase_diagram"] = " | ".join(self.phase_diagram.table())
        if self.dimensions_curve is not None:
            d = self.dimensions_curve.dimensions_per_feature[:, 0]
            out["dimensions_curve_range"] = [float(d.min()), float(d.max())]
        if self.finite is not None:
            out.update({f"finite_{k}": v for k, v in self.finite.summary().items() if k != "sizes"})
        return out

    def report_section(self) -> dict:
        sw = self.sweep
        n, m = int(sw.importance.shape[1]), int(sw.models.W.shape[2])
        i0, i1 = int(np.argmin(sw.sparsity)), int(np.argmax(sw.sparsity))
        headline = (f"{n} features in {m} dimensions: at density 1 - S = {1 - sw.sparsity[i0]:.3g}, "
                    f"{_counts_text(sw, i0)} (D* = {sw.dimensions_per_feature[i0, 0]:.3g}); at 1 - S = "
                    f"{1 - sw.sparsity[i1]:.3g}, {_counts_text(sw, i1)} (D* = {sw.dimensions_per_feature[i1, 0]:.3g}).")
        if not sw.models.superposition_possible:
            headline += " With m >= n every feature can have its own dimension: no superposition is needed."
        index, rows = self._rows()
        caption = ("Left: each instance's feature dimensionalities D_i stacked (one segment per feature, coloured by "
                   "the polytope it belongs to; height = dimensions filled, dashed line = m), against 1/(1 - S).")
        if self.dimensions_curve is not None:
            caption += (" Next: D* = m/||W||_F^2 (line) and every feature's D_i (dots) across sparsity; dotted lines "
                        "mark the sticky fractions 1, 3/4, 2/3, 1/2, 2/5, 3/8, 1/3.")
        if self.phase_diagram is not None:
            caption += (" Next: the n = 2, m = 1 phase diagram (best of the seeds per cell): X extra feature not "
                        "learned, S antipodal superposition, D extra feature dedicated, ? both sharing a direction.")
        if self.finite is not None:
            caption += (" Right: finite dataset of T points, the largest feature and data-point dimensionality "
                        "against T (memorised points vs learned features) and the test loss.")
        return {"headline": headline,
                "table": {"index": index, "columns": ["density 1 - S", "D*", "features learned", "polytopes",
                                                      "final loss (best seed)"], "rows": rows},
                "caption": caption}


def _counts_text(sw, i: int) -> str:
    counts = sw.models.geometry.polytope_counts(sw.best_index(i, 0))
    parts = [f"{v} {k.replace('_', ' ')}" for k, v in sorted(counts.items()) if k != "not_learned"]
    dropped = counts.get("not_learned", 0)
    text = ", ".join(parts) if parts else "no feature learned"
    return text + (f", {dropped} not learned" if dropped else "")


def superposition_profile(*, n_features: int = 5, n_hidden: int = 2, density: Sequence[float] | None = None,
                          importance: Any = 0.9, seeds: Sequence[int] | None = None, steps: int = 10000,
                          batch_size: int = 1024, lr: float = 1e-3, weight_decay: float = 0.01,
                          activation: str = "relu", bias: bool = True, lr_schedule: str = "constant",
                          phase_diagram: bool = False, phase_steps: int = 5000,
                          dimensions_curve: bool = False, curve_features: int = 100, curve_hidden: int = 10,
                          curve_steps: int = 5000, finite: bool = False, finite_features: int = 100,
                          finite_sparsity: float = 0.97, finite_T: Sequence[int] = (3, 10, 30, 100, 300, 1000),
                          finite_steps: int = 2000, seed: int = 0, progress: bool = False,
                          executor: Any = None) -> SuperpositionProfile:
    r"""Toy models of superposition across sparsity, and optionally the paper's other figures.

    Parameters
    ----------
    n_features, n_hidden : int, default 5, 2
    density : sequence of float in (0, 1], optional
        ``1 − S`` of each instance; default the introduction figure's ``20^(−linspace(0, 1, 10))``.
    importance : float or vector, default 0.9
        A decay ``d`` (``I_i = d**i``) or one importance per feature.
    seeds : sequence of int, optional
        Seeds per density (the best is reported); default ``[seed]``.
    steps, batch_size, lr, weight_decay, activation, bias, lr_schedule
        Training (:func:`topo_mi.superposition.train_toy_models`); the paper's defaults.
    phase_diagram : bool, default False
        Also the n = 2, m = 1 phase diagram (:func:`topo_mi.superposition.phase_diagram`, the
        seeds above, ``phase_steps`` steps).
    dimensions_curve : bool, default False
        Also ``D*`` against ``1/(1 − S)`` for ``curve_features`` features in ``curve_hidden``
        dimensions, ``curve_steps`` steps.
    finite : bool, default False
        Also the finite-dataset experiment (``finite_features`` features in ``n_hidden``
        dimensions, sparsity ``finite_sparsity``, dataset sizes ``finite_T``, ``finite_steps``).
    seed : int, default 0
    progress : bool
    executor : ignored
        (One batched computation per figure; there is nothing to distribute.)

    Returns
    -------
    SuperpositionProfile
    """
    from topo_mi import superposition as sp

    seed = check_int("seed", seed, min_value=0)
    dens = 20.0 ** -np.linspace(0, 1, 10) if density is None else np.asarray(density, dtype=float)
    if dens.ndim != 1 or dens.size == 0 or np.any(~np.isfinite(dens)) or np.any(dens <= 0) or np.any(dens > 1):
        fail("density", "a non-empty list of densities 1 - S in (0, 1]", density)
    seed_list = [seed] if seeds is None else list(seeds)
    train = dict(steps=steps, batch_size=batch_size, lr=lr, weight_decay=weight_decay, activation=activation,
                 bias=bias, lr_schedule=lr_schedule, progress=progress)
    imp = importance if importance is None or np.ndim(importance) == 0 else [importance]
    sweep = sp.sweep(n_features, n_hidden, sparsity=1.0 - dens, importance=imp, seeds=seed_list, **train)
    pd = curve = fin = None
    if phase_diagram:
        pd = sp.phase_diagram(seeds=seed_list, steps=phase_steps, batch_size=batch_size, lr=lr,
                              weight_decay=weight_decay, progress=progress)
    if dimensions_curve:
        curve = sp.dimensions_per_feature_curve(curve_features, curve_hidden, seeds=seed_list, steps=curve_steps,
                                                batch_size=batch_size, lr=lr, weight_decay=weight_decay,
                                                progress=progress)
    if finite:
        fin = sp.finite_dataset(finite_features, n_hidden, T=list(finite_T), sparsity=finite_sparsity,
                                seeds=seed_list, steps=finite_steps, progress=progress)
    params = dict(n_features=n_features, n_hidden=n_hidden, density=dens.tolist(), seeds=seed_list, **train,
                  phase_diagram=bool(phase_diagram), dimensions_curve=bool(dimensions_curve), finite=bool(finite))
    params.pop("progress")
    return SuperpositionProfile(sweep=sweep, phase_diagram=pd, dimensions_curve=curve, finite=fin, params=params)


__all__ = ["SuperpositionProfile", "superposition_profile"]
