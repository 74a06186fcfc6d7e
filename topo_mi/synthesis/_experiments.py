"""The framework's claims as experiments. Each reports what comes out; none asserts the outcome.

- :func:`single_method_coverage` — "no single method reaches coverage above 0.8": the coverage of
  each single interpretation method, and of their union, on the shipped models.
- :func:`fidelity_vs_depth` — interpretation fidelity against depth L on a family of MLPs, with
  the fit fidelity ≈ c·L^(−1/2) (and its residual) beside a free power law c·L^β.
- :func:`decision_regions_vs_betti` — "for ReLU networks there is a scale ε* with
  b_1(S_ε*) = the number of disconnected decision regions": the regions of a 2-D classifier
  counted on a fine grid, and ε* searched over the Betti curves of every layer.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from topo_mi._results import Result, result_dataclass
from topo_mi._validation import check_float, check_int, fail
from topo_mi.synthesis import _forward as F


# ---------------------------------------------------------------------------------------------
# 1. coverage of single methods on the shipped models
# ---------------------------------------------------------------------------------------------
@result_dataclass
class MethodCoverageResult(Result):
    """Coverage at ε of each single method (rows: models, columns: methods) and of their union.

    Attributes
    ----------
    models, methods : list of str
    coverage, low, high : ndarray of shape (n_models, n_methods)
        Coverage at ``eps`` and its bootstrap interval (NaN where a method does not apply).
    eps_target : ndarray of shape (n_models, n_methods)
        The ε above which each method's coverage reaches ``target``.
    union, union_low, union_high : ndarray of shape (n_models,)
        The union of the methods (the constant-mean baseline left out).
    above_target : ndarray of bool, shape (n_models, n_methods)
        coverage > target (what the claim is about; reported, not asserted).
    profiles : list of SynthesisResult
    eps, target : float
    space, norm : str
    """

    models: list
    methods: list
    coverage: np.ndarray
    low: np.ndarray
    high: np.ndarray
    eps_target: np.ndarray
    union: np.ndarray
    union_low: np.ndarray
    union_high: np.ndarray
    above_target: np.ndarray
    profiles: list
    eps: float
    target: float
    space: str
    norm: str

    _plot_function = "topo_mi.plotting.synthesis:plot_method_coverage"

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {"eps": self.eps, "target": self.target}
        for i, m in enumerate(self.models):
            for j, meth in enumerate(self.methods):
                if np.isfinite(self.coverage[i, j]):
                    out[f"{m}/{meth}"] = float(self.coverage[i, j])
            out[f"{m}/union"] = float(self.union[i])
        out["single_methods_above_target"] = int(np.nansum(self.above_target))
        return out


def _zoo_data(name: str, n_samples: int, seed: int):
    from topo_mi import models as zoo
    from topo_mi._sampling import random_subsample
    from topo_mi.datasets import make

    info = zoo.zoo_info(name)
    ds = make(info["dataset"], **(info.get("dataset_params") or {}))
    X = np.asarray(ds.X)
    idx = random_subsample(len(X), min(n_samples, len(X)), seed=seed) if len(X) > n_samples else np.arange(len(X))
    return zoo.pretrained(name), X[idx]


def single_method_coverage(models=("mlp-naitzat-d1-relu", "mlp-naitzat-d1-tanh", "mlp-digits"), *,
                           methods=("circuit", "magnitude", "projection", "dictionary", "mean"), eps: float = 0.1,
                           target: float = 0.8, space: str = "probs", norm: str = "l1", relative: bool = False,
                           n_samples: int = 1000,
                           n_boot: int = 500, steps: int = 300, l0: float = 0.5, variance: float = 0.9,
                           seed: int = 0, progress: bool = False) -> MethodCoverageResult:
    """Coverage of each single interpretation method vs ``target`` on shipped (zoo) models.

    For each model, ``n_samples`` inputs of its training set are drawn (seeded) and
    :func:`topo_mi.synthesis.profile` builds and judges the methods (a circuit needs an MLP; a
    method that does not apply to a model is reported as NaN).
    """
    from topo_mi.synthesis._profile import profile

    models = [models] if isinstance(models, str) else list(models)
    if not models:
        fail("models", "at least one zoo model name", models)
    methods = list(methods)
    shape = (len(models), len(methods))
    cov, lo, hi, et = (np.full(shape, np.nan) for _ in range(4))
    un, ul, uh = (np.full(len(models), np.nan) for _ in range(3))
    profiles = []
    for i, name in enumerate(models):
        model, x = _zoo_data(name, n_samples, seed)
        res = profile(model, x, methods=methods, space=space, norm=norm, relative=relative, eps=eps, target=target,
                      n_boot=n_boot,
                      steps=steps, l0=l0, variance=variance, seed=seed, progress=progress)
        profiles.append(res)
        by_method = {m.method if m.method != "circuit" else ("circuit" if "magnitude" not in m.name else "magnitude"):
                     m for m in res.members}
        for j, meth in enumerate(methods):
            key = {"mean": "constant"}.get(meth, meth)
            m = by_method.get(key)
            if m is not None:
                cov[i, j], lo[i, j], hi[i, j], et[i, j] = m.coverage, m.coverage_low, m.coverage_high, m.eps_target
        p = res.pluralism
        un[i], ul[i], uh[i] = p.coverage, p.coverage_low, p.coverage_high
    above = np.where(np.isfinite(cov), cov > target, False)
    return MethodCoverageResult(models=models, methods=methods, coverage=cov, low=lo, high=hi, eps_target=et,
                                union=un, union_low=ul, union_high=uh, above_target=above, profiles=profiles,
                                eps=float(eps), target=float(target), space=space, norm=norm)


# ---------------------------------------------------------------------------------------------
# 2. fidelity against depth
# ---------------------------------------------------------------------------------------------
@result_dataclass
class FidelityDepthResult(Result):
    """Fidelity of one interpretation method across depth, and power-law fits.

    Attributes
    ----------
    depths : ndarray of shape (n_depths,)
    seeds : list of int
    fidelity : ndarray of shape (n_depths, n_seeds)
        Coverage at ``eps`` of the interpretation of each trained MLP.
    accuracy : ndarray of shape (n_depths, n_seeds)
        Training accuracy of each MLP.
    mean, sem : ndarray of shape (n_depths,)
    c_half : float
        Least-squares c in fidelity ≈ c·L^(−1/2) (fitted to the means).
    residual_half : float
        RMS of mean − c·L^(−1/2); ``r2_half`` its coefficient of determination.
    r2_half : float
    beta, beta_se, c_free : float
        The free fit log fidelity = log c + β log L (means > 0 only) and β's standard error.
    residual_free : float
    method, space, norm : str
    eps : float
    """

    depths: np.ndarray
    seeds: list
    fidelity: np.ndarray
    accuracy: np.ndarray
    mean: np.ndarray
    sem: np.ndarray
    c_half: float
    residual_half: float
    r2_half: float
    beta: float
    beta_se: float
    c_free: float
    residual_free: float
    method: str
    space: str
    norm: str
    eps: float
    params: dict

    _plot_function = "topo_mi.plotting.synthesis:plot_fidelity_depth"

    def summary(self) -> dict[str, Any]:
        return {"method": self.method, "c_half": self.c_half, "residual_half": self.residual_half,
                "r2_half": self.r2_half, "beta": self.beta, "beta_se": self.beta_se,
                "fidelity_first": float(self.mean[0]), "fidelity_last": float(self.mean[-1])}


def power_fits(depths, values) -> dict:
    """c·L^(−1/2) by least squares (residual, R²) and the free log-log fit (β, its s.e.)."""
    L = np.asarray(depths, np.float64)
    f = np.asarray(values, np.float64)
    g = L ** -0.5
    c = float(f @ g / (g @ g))
    res = f - c * g
    ss_tot = float(((f - f.mean()) ** 2).sum())
    out = {"c_half": c, "residual_half": float(np.sqrt(np.mean(res ** 2))),
           "r2_half": float(1 - (res ** 2).sum() / ss_tot) if ss_tot > 0 else float("nan")}
    pos = f > 0
    if pos.sum() >= 3:
        X = np.column_stack([np.ones(pos.sum()), np.log(L[pos])])
        y = np.log(f[pos])
        coef, *_ = np.linalg.lstsq(X, y, rcond=None)
        r = y - X @ coef
        dof = pos.sum() - 2
        s2 = float(r @ r / dof) if dof > 0 else float("nan")
        cov = s2 * np.linalg.inv(X.T @ X)
        out.update(beta=float(coef[1]), beta_se=float(np.sqrt(cov[1, 1])), c_free=float(np.exp(coef[0])),
                   residual_free=float(np.sqrt(np.mean((f[pos] - np.exp(X @ coef)) ** 2))))
    else:
        out.update(beta=float("nan"), beta_se=float("nan"), c_free=float("nan"), residual_free=float("nan"))
    return out


def fidelity_vs_depth(depths=(1, 2, 4, 8, 16), *, width: int = 16, dataset: str = "naitzat_d1",
                      dataset_params: dict | None = None, n_samples: int = 2000, epochs: int = 60,
                      method: str = "projection", rank: int = 2, eps: float = 0.1, space: str = "probs",
                      norm: str = "l1", activation: str = "relu", seeds=(0, 1), l0: float = 0.5,
                      steps: int = 200, n_boot: int = 0, progress: bool = False) -> FidelityDepthResult:
    """Fidelity (coverage at ε) of an interpretation of MLPs of depth L = ``depths``.

    For each depth and seed an ``MLP(in, [width] * L, classes)`` is trained on ``n_samples``
    points of ``dataset`` (Adam, ``epochs``); its interpretation is ``method``:
    ``"projection"`` — every hidden layer replaced by its rank-``rank`` PCA projection at once
    (errors compound with depth), or ``"circuit"`` — the learned circuit
    (:func:`topo_mi.circuits.find_circuit`, ``l0``, ``steps``). The fits of the mean fidelity are
    :func:`power_fits`: fidelity ≈ c·L^(−1/2) with its residual, and the free exponent β.
    """
    import torch

    from topo_mi import models as zoo
    from topo_mi._sampling import random_subsample
    from topo_mi.datasets import make
    from topo_mi.synthesis import _interpretation as I
    from topo_mi.synthesis._coverage import evaluate

    depths = np.asarray([check_int("depths", d, min_value=1) for d in depths], np.int64)
    if depths.size < 2:
        fail("depths", "at least two depths", list(depths))
    if method not in ("projection", "circuit"):
        fail("method", "'projection' or 'circuit'", method)
    seeds = [check_int("seeds", s, min_value=0) for s in seeds]
    ds = make(dataset, **(dataset_params or {}))
    X, y = np.asarray(ds.X, np.float32), np.asarray(ds.y)
    idx = random_subsample(len(X), min(n_samples, len(X)), seed=0) if len(X) > n_samples else np.arange(len(X))
    X, y = X[idx], y[idx]
    n_cls = int(y.max()) + 1
    fid = np.zeros((depths.size, len(seeds)))
    acc = np.zeros_like(fid)
    for a, L in enumerate(depths):
        for b, s in enumerate(seeds):
            net = zoo.MLP(X.shape[1], [width] * int(L), n_cls, activation=activation, seed=s)
            rep = zoo.train_classifier(net, torch.as_tensor(X), torch.as_tensor(y), epochs=epochs, seed=s)
            acc[a, b] = float(rep.final_accuracy)
            if method == "projection":
                interp = _multi_projection(net, net.hidden_names, rank, X)
            else:
                from topo_mi.circuits import find_circuit

                res = find_circuit(net, X, metric="accuracy", l0=l0, steps=steps, seed=s, curve_points=2)
                interp = I.circuit(net, res, data=X)
            fid[a, b] = evaluate(net, [interp], X, eps=eps, space=space, norm=norm, n_boot=n_boot)[0].coverage
    mean = fid.mean(axis=1)
    sem = fid.std(axis=1, ddof=1) / math.sqrt(len(seeds)) if len(seeds) > 1 else np.zeros(depths.size)
    fits = power_fits(depths, mean)
    return FidelityDepthResult(depths=depths, seeds=seeds, fidelity=fid, accuracy=acc, mean=mean, sem=sem,
                               method=method, space=space, norm=norm, eps=float(eps),
                               params={"width": width, "dataset": dataset, "n_samples": int(len(X)),
                                       "epochs": epochs, "rank": rank, "activation": activation},
                               **fits)


def _multi_projection(model, layers, rank, data):
    """Every layer of ``layers`` replaced by its own rank-``rank`` projection (fitted on clean data)."""
    from topo_mi.synthesis import _interpretation as I

    parts = [I.projection(model, layer, min(rank, _width(model, layer, data)), data) for layer in layers]
    ops = {}
    for p in parts:
        ops.update(p.ops(model, None, None, None))
    return I.replace(model, ops, name=f"rank-{rank} projection of {len(layers)} layers",
                     ablation=f"rank-{rank} projection of every hidden layer")


def _width(model, layer, data):
    x = F.as_model_input(data[:2], model)
    return int(F.layer_values(model, x, [layer])[layer].shape[-1])


# ---------------------------------------------------------------------------------------------
# 3. decision regions of a 2-D classifier vs b_1 of the layers' activation complexes
# ---------------------------------------------------------------------------------------------
@result_dataclass
class RegionsBettiResult(Result):
    """Decision regions counted on a grid, and where b_1(S_ε) of each layer equals that count.

    Attributes
    ----------
    n_regions : int
        Connected components of all decision regions on the grid (every class).
    regions_per_class : ndarray of shape (n_classes,)
    labels_grid : ndarray of shape (grid, grid)
        The predicted class at each grid point; ``extent`` = (xmin, xmax, ymin, ymax).
    extent : ndarray of shape (4,)
    layers : list of str
        "input" then the hidden layers.
    eps_grid : ndarray of shape (n_layers, n_eps)
        Each layer's scales (0 to its largest finite death).
    betti1 : ndarray of shape (n_layers, n_eps)
        b_1(S_ε) of the layer's activations on the sampled points.
    match_fraction : ndarray of shape (n_layers,)
        Share of each layer's scales with b_1 = n_regions.
    eps_star : ndarray of shape (n_layers,)
        The smallest such scale (NaN when there is none).
    max_betti1 : ndarray of shape (n_layers,)
    points : str
        Which point cloud ("data", "grid") the complexes are built on; ``n_points`` its size.
    n_points : int
    """

    n_regions: int
    regions_per_class: np.ndarray
    labels_grid: np.ndarray
    extent: np.ndarray
    layers: list
    eps_grid: np.ndarray
    betti1: np.ndarray
    match_fraction: np.ndarray
    eps_star: np.ndarray
    max_betti1: np.ndarray
    points: str
    n_points: int

    _plot_function = "topo_mi.plotting.synthesis:plot_regions_betti"

    def summary(self) -> dict[str, Any]:
        found = np.isfinite(self.eps_star)
        return {"n_regions": self.n_regions, "regions_per_class": self.regions_per_class.tolist(),
                "layers_with_eps_star": int(found.sum()), "n_layers": len(self.layers),
                "best_match_fraction": float(self.match_fraction.max()) if self.match_fraction.size else 0.0}


def count_regions(labels: np.ndarray) -> tuple[int, np.ndarray]:
    """Connected components (4-connectivity) of each class's region in a 2-D label image."""
    from scipy import ndimage

    classes = np.unique(labels)
    per = np.zeros(int(labels.max()) + 1, np.int64)
    for c in classes:
        _, k = ndimage.label(labels == c)
        per[int(c)] = k
    return int(per.sum()), per


def decision_regions_vs_betti(model=None, *, data=None, extent=None, grid: int = 200, points: str = "data",
                              n_points: int = 400, n_eps: int = 200, layers=None, seed: int = 0,
                              batch_size: int = 8192) -> RegionsBettiResult:
    """Count a 2-D classifier's decision regions and search ε* with b_1(S_ε*) = that count, per layer.

    Parameters
    ----------
    model : nn.Module, optional
        A classifier of 2-D inputs (default: the zoo's ``mlp-naitzat-d1-relu`` and its data).
    data : array of shape (n, 2), optional
        Inputs whose activations form the complexes (``points="data"``); default the model's
        training data for the zoo model.
    extent : (xmin, xmax, ymin, ymax), optional
        The grid's box (default: the data's bounding box).
    grid : int, default 200
        Grid points per side; regions are the 4-connected components of each class.
    points : {"data", "grid"}
        Build the complexes on ``n_points`` max–min landmarks of the data or of the grid points.
    n_points : int, default 400
    n_eps : int, default 200
        Scales per layer at which b_1 is read (0 to the largest finite H1 death).
    layers : list of str, optional
        Hidden layers (default ``model.hidden_names`` or every activation module).
    """
    from topo_mi.topology import betti_curve, persistence

    if model is None:
        model, zx = _zoo_data("mlp-naitzat-d1-relu", 10 ** 9, seed)
        data = zx if data is None else data
    grid = check_int("grid", grid, min_value=2)
    n_points = check_int("n_points", n_points, min_value=3)
    if points not in ("data", "grid"):
        fail("points", "'data' or 'grid'", points)
    if data is None and (extent is None or points == "data"):
        fail("data", "2-D inputs (or an extent with points='grid')", None)
    D = None if data is None else np.asarray(data, np.float64)
    if D is not None and (D.ndim != 2 or D.shape[1] != 2):
        fail("data", "an array of shape (n, 2): a classifier of 2-D inputs", D)
    if extent is None:
        extent = (D[:, 0].min(), D[:, 0].max(), D[:, 1].min(), D[:, 1].max())
    extent = np.asarray(extent, np.float64)
    if extent.shape != (4,) or not (extent[0] < extent[1] and extent[2] < extent[3]):
        fail("extent", "(xmin, xmax, ymin, ymax) with xmin < xmax and ymin < ymax", extent)
    if grid * grid > 4 * 10 ** 6:
        from topo_mi.errors import ResourceError

        raise ResourceError(f"grid: expected at most 2000 points per side, got {grid}")
    gx = np.linspace(extent[0], extent[1], grid)
    gy = np.linspace(extent[2], extent[3], grid)
    G = np.stack(np.meshgrid(gx, gy), axis=-1).reshape(-1, 2)
    xg = F.as_model_input(G, model)
    preds = []
    for rows in F.batches(len(G), batch_size):
        out = F.run_space(model, F.take_rows(xg, rows), "logits")
        if out.ndim != 2 or out.shape[0] != len(rows):
            fail("model", "a classifier returning logits of shape (n, n_classes) for 2-D inputs", tuple(out.shape))
        preds.append(out.argmax(dim=1).numpy())
    labels = np.concatenate(preds).reshape(grid, grid)
    n_regions, per = count_regions(labels)
    if layers is None:
        from topo_mi.synthesis._profile import _representation_layers

        layers = _representation_layers(model)
    cloud = D if points == "data" else G
    x = F.as_model_input(cloud, model)
    vals = {}
    for rows in F.batches(len(cloud), batch_size):
        v = F.layer_values(model, F.take_rows(x, rows), list(layers))
        for k, t in v.items():
            vals.setdefault(k, []).append(t.numpy())
    clouds = [("input", cloud)] + [(k, np.concatenate(vals[k])) for k in layers]
    names, grids, b1s, frac, star, mx = [], [], [], [], [], []
    for name, A in clouds:
        pr = persistence(A, max_dim=1, n_landmarks=min(n_points, len(A)), seed=seed)
        dg = pr.diagrams[1]
        finite = dg[np.isfinite(dg[:, 1]), 1] if len(dg) else np.zeros(0)
        top = float(finite.max()) if finite.size else 1.0
        g = np.linspace(0, top, n_eps)
        b1 = betti_curve(pr, g)[1]
        hit = b1 == n_regions
        names.append(name)
        grids.append(g)
        b1s.append(b1)
        frac.append(float(hit.mean()))
        star.append(float(g[np.argmax(hit)]) if hit.any() else float("nan"))
        mx.append(int(b1.max()))
    return RegionsBettiResult(n_regions=n_regions, regions_per_class=per, labels_grid=labels.astype(np.int64),
                              extent=extent, layers=names, eps_grid=np.stack(grids), betti1=np.stack(b1s),
                              match_fraction=np.asarray(frac), eps_star=np.asarray(star),
                              max_betti1=np.asarray(mx), points=points, n_points=int(min(n_points, len(cloud))))


__all__ = ["single_method_coverage", "MethodCoverageResult", "fidelity_vs_depth", "FidelityDepthResult",
           "power_fits", "decision_regions_vs_betti", "RegionsBettiResult", "count_regions"]
