r"""Sweeps of toy models of superposition: sparsity × importance grids, the n = 2, m = 1 phase
diagram and the dimensions-per-feature plateaus (Elhage et al., 2022).

Every grid is trained as one batched run (:func:`~topo_mi.superposition.train_toy_models`), each
cell with several seeds; a cell reports its best seed (lowest final loss), as the paper does.
"""
from __future__ import annotations

import numbers
from typing import Any, ClassVar, Sequence

import numpy as np

from topo_mi._results import Result, result_dataclass
from topo_mi._validation import as_array, check_float, check_int, fail

#: Phases of the n = 2, m = 1 model (the extra feature is feature 1).
PHASES = ("not_learned", "antipodal", "dedicated", "confused")
_PHASE_LETTER = {"not_learned": "X", "antipodal": "S", "dedicated": "D", "confused": "?"}


def _check_values(name: str, values: Any, *, low: float, high: float | None, high_inclusive: bool) -> np.ndarray:
    arr = np.atleast_1d(np.asarray(values, dtype=object))
    if arr.ndim != 1 or arr.size == 0:
        fail(name, "a non-empty 1-D sequence of numbers", values)
    return np.array([check_float(f"{name}[{k}]", v, min_value=low, max_value=high, max_inclusive=high_inclusive)
                     for k, v in enumerate(arr)])


def _check_seeds(seeds: Any) -> list[int]:
    if isinstance(seeds, numbers.Integral) and not isinstance(seeds, bool):
        seeds = [seeds]
    if not isinstance(seeds, (list, tuple, np.ndarray)) or len(seeds) == 0:
        fail("seeds", "an int or a non-empty sequence of ints", seeds)
    return [check_int(f"seeds[{k}]", s, min_value=0) for k, s in enumerate(seeds)]


def _importance_rows(importance: Any, n_features: int) -> np.ndarray:
    """None or one decay -> one column; a sequence -> one column per item (decay, None or vector)."""
    from topo_mi.superposition.training import check_importance

    if importance is None or isinstance(importance, numbers.Real):
        items = [importance]
    elif isinstance(importance, (list, tuple, np.ndarray)) and len(importance) > 0:
        items = list(importance)
    else:
        fail("importance", "a decay, or a non-empty sequence of decays or importance vectors", importance)
    return np.stack([check_importance(v, n_features, 1, name=f"importance[{k}]")[0] for k, v in enumerate(items)])


@result_dataclass
class SuperpositionSweep(Result):
    """A sparsity × importance grid of toy models, several seeds per cell (see :func:`sweep`).

    Attributes
    ----------
    sparsity : ndarray (n_sparsity,)
    importance : ndarray (n_importance, n_features)
        The importance vector of each column of the grid.
    seeds : ndarray (n_seeds,)
    models : ToyModels
        Every instance, in the order (sparsity, importance, seed).
    best_seed : ndarray (n_sparsity, n_importance), int
        Index into ``seeds`` of the cell's lowest final loss.
    final_loss : ndarray (n_sparsity, n_importance, n_seeds)
    norms, dimensionality : ndarray (n_sparsity, n_importance, n_features)
        ``‖W_i‖`` and ``D_i`` of each cell's best seed.
    dimensions_per_feature : ndarray (n_sparsity, n_importance)
        ``D*`` of each cell's best seed.
    polytopes : list of lists of lists of str
        ``[sparsity][importance]``: the best seed's polytope labels per feature.
    """

    sparsity: np.ndarray
    importance: np.ndarray
    seeds: np.ndarray
    models: Any
    best_seed: np.ndarray
    final_loss: np.ndarray
    norms: np.ndarray
    dimensionality: np.ndarray
    dimensions_per_feature: np.ndarray
    polytopes: list

    _plot_function: ClassVar[str] = "topo_mi.plotting.superposition:plot_dimensionality_bars"

    @property
    def density(self) -> np.ndarray:
        return 1.0 - self.sparsity

    def best_index(self, i: int, j: int) -> int:
        """Index into ``models`` of cell (sparsity i, importance j)'s best seed."""
        return (i * self.importance.shape[0] + j) * self.seeds.size + int(self.best_seed[i, j])

    def summary(self) -> dict[str, Any]:
        n = self.importance.shape[1]
        m = self.models.W.shape[2]
        return {"n_features": n, "n_hidden": m, "n_sparsity": int(self.sparsity.size),
                "n_importance": int(self.importance.shape[0]), "n_seeds": int(self.seeds.size),
                "n_instances": int(self.models.n_instances),
                "dimensions_per_feature_min": float(np.min(self.dimensions_per_feature)),
                "dimensions_per_feature_max": float(np.max(self.dimensions_per_feature)),
                "mean_features_learned": float((self.norms > 0.5).sum(axis=-1).mean()),
                "steps": int(self.models.losses.shape[0]), "seconds": self.models.seconds}


def sweep(n_features: int = 5, n_hidden: int = 2, *, sparsity: Sequence[float] = (0.0, 0.7, 0.9, 0.95),
          importance: Any = (0.9,), seeds: Any = (0,), **train_options) -> SuperpositionSweep:
    r"""Train every (sparsity, importance, seed) combination in one batched run.

    Parameters
    ----------
    n_features, n_hidden : int
    sparsity : sequence of float in [0, 1)
    importance : sequence of (float decay | vector of n_features importances) or a single one
        A float ``d`` is the vector ``d**i``; None is all ones.
    seeds : int or sequence of int
        Seeds of each cell (the same seeds in every cell: the same initial weights and uniform draws).
    **train_options
        Passed to :func:`~topo_mi.superposition.train_toy_models` (``steps``, ``batch_size``, ``lr``,
        ``activation``, ``bias``, ``lr_schedule``, ``max_bytes``, ...).

    Returns
    -------
    SuperpositionSweep
    """
    from topo_mi.superposition.training import train_toy_models

    n_features = check_int("n_features", n_features, min_value=1)
    S = _check_values("sparsity", sparsity, low=0.0, high=1.0, high_inclusive=False)
    imp = _importance_rows(importance, n_features)
    seed_list = _check_seeds(seeds)
    for key in ("sparsity", "importance", "seeds", "n_instances"):
        if key in train_options:
            fail(key, "no such option here (the grid sets it)", train_options[key])
    a, b, c = S.size, imp.shape[0], len(seed_list)
    models = train_toy_models(n_features, n_hidden, sparsity=np.repeat(S, b * c),
                              importance=np.tile(np.repeat(imp, c, axis=0), (a, 1)),
                              seeds=seed_list * (a * b), **train_options)
    loss = models.final_loss.reshape(a, b, c)
    best = np.argmin(loss, axis=2)
    flat = ((np.arange(a)[:, None] * b + np.arange(b)[None, :]) * c + best).ravel()
    g = models.geometry
    return SuperpositionSweep(
        sparsity=S, importance=imp, seeds=np.asarray(seed_list, dtype=np.int64), models=models,
        best_seed=best.astype(np.int64), final_loss=loss,
        norms=g.norms[flat].reshape(a, b, n_features), dimensionality=g.dimensionality[flat].reshape(a, b, n_features),
        dimensions_per_feature=g.dimensions_per_feature[flat].reshape(a, b),
        polytopes=[[g.polytopes[flat[i * b + j]] for j in range(b)] for i in range(a)])


# -- the n = 2, m = 1 phase diagram ---------------------------------------------------------------

def classify_2_1(W: Any, *, threshold: float = 0.3) -> str:
    r"""Phase of an n = 2, m = 1 model from its weights ``(w_0, w_1)`` (feature 1 the extra one).

    ``|w_1| <= threshold`` → ``"not_learned"``; else ``|w_0| <= threshold`` → ``"dedicated"`` (the
    extra feature has the dimension); else opposite signs → ``"antipodal"`` (superposition,
    ``W ≈ ±(1, −1)``) and equal signs → ``"confused"`` (both share one direction).
    """
    w = np.asarray(as_array(W, "W"), dtype=np.float64).ravel()
    if w.size != 2:
        fail("W", "two weights (n = 2 features, m = 1 hidden dimension)", np.asarray(W))
    threshold = check_float("threshold", threshold, min_value=0.0)
    if abs(w[1]) <= threshold:
        return "not_learned"
    if abs(w[0]) <= threshold:
        return "dedicated"
    return "antipodal" if w[0] * w[1] < 0 else "confused"


@result_dataclass
class PhaseDiagram(Result):
    """The n = 2, m = 1 phase diagram (see :func:`phase_diagram`).

    Attributes
    ----------
    density : ndarray (n_density,)
        ``1 − S`` of each row.
    ratio : ndarray (n_ratio,)
        Importance of the extra feature (feature 0 has importance 1), per column.
    phases : list of lists of str
        ``phases[i][j]`` from :data:`PHASES` for the best seed of the cell.
    W : ndarray (n_density, n_ratio, 2)
        The best seed's weights ``(w_0, w_1)``.
    final_loss : ndarray (n_density, n_ratio)
    sweep : SuperpositionSweep
    """

    density: np.ndarray
    ratio: np.ndarray
    phases: list
    W: np.ndarray
    final_loss: np.ndarray
    sweep: Any

    _plot_function: ClassVar[str] = "topo_mi.plotting.superposition:plot_phase_diagram"

    def table(self) -> list[str]:
        """One line per density, a letter per ratio (X not learned, S antipodal, D dedicated, ? confused)."""
        return [f"{d:g}: " + " ".join(_PHASE_LETTER[p] for p in row) for d, row in zip(self.density, self.phases)]

    def summary(self) -> dict[str, Any]:
        flat = [p for row in self.phases for p in row]
        out = {f"n_{p}": flat.count(p) for p in PHASES}
        out.update({"n_density": int(self.density.size), "n_ratio": int(self.ratio.size),
                    "steps": int(self.sweep.models.losses.shape[0]), "seeds": int(self.sweep.seeds.size)})
        return out


def phase_diagram(*, density: Sequence[float] = (1.0, 0.3, 0.1, 0.03, 0.01),
                  ratio: Sequence[float] = (0.1, 0.3, 0.5, 1.0, 2.0, 5.0), seeds: Any = (0, 1, 2),
                  steps: int = 5000, threshold: float = 0.3, **train_options) -> PhaseDiagram:
    r"""The n = 2, m = 1 phase diagram of Elhage et al. (2022): the extra feature's importance × density.

    Feature 0 has importance 1 and feature 1 (the extra) importance ``r``; both have density
    ``1 − S``. Each cell is trained with every seed (one batched run, ReLU with bias, the paper's
    AdamW) and labelled by its best seed with :func:`classify_2_1`.

    Parameters
    ----------
    density : sequence of float in (0, 1]
    ratio : sequence of float > 0
    seeds : sequence of int
    steps : int, default 5000
    threshold : float, default 0.3
        Of :func:`classify_2_1`.
    **train_options
        Passed to :func:`~topo_mi.superposition.train_toy_models`.

    Returns
    -------
    PhaseDiagram
    """
    dens = _check_values("density", density, low=0.0, high=1.0, high_inclusive=True)
    if np.any(dens <= 0):
        fail("density", "values in (0, 1]", density)
    ratios = _check_values("ratio", ratio, low=0.0, high=None, high_inclusive=True)
    if np.any(ratios <= 0):
        fail("ratio", "importances > 0", ratio)
    threshold = check_float("threshold", threshold, min_value=0.0)
    res = sweep(2, 1, sparsity=1.0 - dens, importance=[np.array([1.0, r]) for r in ratios], seeds=seeds,
                steps=steps, **train_options)
    a, b = dens.size, ratios.size
    W = np.stack([[res.models.W[res.best_index(i, j), :, 0] for j in range(b)] for i in range(a)])
    phases = [[classify_2_1(W[i, j], threshold=threshold) for j in range(b)] for i in range(a)]
    best_loss = np.take_along_axis(res.final_loss, res.best_seed[..., None], axis=2)[..., 0]
    return PhaseDiagram(density=dens, ratio=ratios, phases=phases, W=W, final_loss=best_loss, sweep=res)


# -- D* against 1/(1 − S) -----------------------------------------------------------------------

def dimensions_per_feature_curve(n_features: int = 100, n_hidden: int = 10, *, density: Any = None,
                                 seeds: Any = (0,), steps: int = 5000, **train_options) -> SuperpositionSweep:
    r"""``D* = m / ‖W‖²_F`` across sparsity, uniform importance (the paper's "sticky" plateaus).

    Elhage et al. (2022, "Feature dimensionality") find ``D*`` stays near 1 (no superposition) for
    dense features, then sticks at fractions such as 1/2 (antipodal pairs) and 2/5 (pentagons) as
    ``1/(1 − S)`` grows. Uniform importance, ReLU with bias.

    Parameters
    ----------
    n_features, n_hidden : int, default 100, 10
    density : sequence of float in (0, 1], optional
        Default 16 log-spaced values from 1 to 1/100.
    seeds, steps, **train_options
        As in :func:`sweep`.

    Returns
    -------
    SuperpositionSweep
        One importance column; plot it with
        :func:`topo_mi.plotting.superposition.plot_dimensions_per_feature`.
    """
    dens = np.geomspace(1.0, 0.01, 16) if density is None else _check_values(
        "density", density, low=0.0, high=1.0, high_inclusive=True)
    if np.any(dens <= 0):
        fail("density", "values in (0, 1]", density)
    return sweep(n_features, n_hidden, sparsity=1.0 - dens, importance=None, seeds=seeds, steps=steps,
                 **train_options)


__all__ = ["PHASES", "SuperpositionSweep", "sweep", "classify_2_1", "PhaseDiagram", "phase_diagram",
           "dimensions_per_feature_curve"]
