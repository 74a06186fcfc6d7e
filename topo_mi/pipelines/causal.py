r"""The causal pipeline: a concept's direction, variance share, sensitivity and causal effect layer by layer.

:func:`concept_profile` takes a model, inputs and a concept (labels, a predicate on sample ids,
or ``"labels"`` / ``"parity"`` of the given labels) and reports for each layer: the concept
direction ``v_c`` with its in-sample and held-out accuracy, ``R_c`` with a bootstrap interval,
``τ_c`` (the sup over inputs of the derivative of the logits along the unit ``v_c``), and the
effect ``ΔN`` of three interventions along ``v_c``:

- *ablation*: ``ProjectOut(v_c)`` removes the component along ``v_c``;
- *steering*: ``Steer(v_c, alpha)`` adds ``alpha`` times the raw mean difference to every sample;
- *counterfactual*: ``Project(v_c, value=m_other)`` sets each sample's coordinate along ``v_c`` to
  the mean coordinate of the *other* class (an interchange intervention on the concept variable),
  with the fraction of predictions it flips.

Baselines: ``R_c`` and the held-out accuracy with the concept labels permuted (``n_permutations``
times; a permutation p-value for ``R_c``), and the counterfactual and ablation along a random
unit direction.

>>> from topo_mi.pipelines import concept_profile                             # doctest: +SKIP
>>> prof = concept_profile(net, X, concept="parity", labels=y, layers=["act1", "act2"])  # doctest: +SKIP
>>> prof.plot()                                                               # doctest: +SKIP
"""
from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from topo_mi._results import Result, result_dataclass
from topo_mi._validation import check_choice, check_float, check_int, fail

CONCEPT_NAMES = ("labels", "parity")


@result_dataclass
class ConceptProfile(Result):
    """A concept across layers (see :func:`concept_profile`).

    Per-layer arrays (one entry per layer): ``accuracy``, ``cv_accuracy`` (held-out),
    ``r_c``, ``r_c_low``, ``r_c_high``, ``r_c_p_value`` (permutation) and ``r_c_p_adjusted`` (across
    layers, by ``correction``), ``tau``, ``ablation_delta``,
    ``steering_delta``, ``counterfactual_delta`` (mean ΔN of the logits), ``counterfactual_flip``
    (fraction of predictions flipped), and the baselines ``perm_r_c`` (n_layers, n_permutations),
    ``perm_cv_accuracy``, ``random_flip``, ``random_ablation_delta``. ``directions``, ``ratios``,
    ``sensitivities``, ``ablations``, ``steerings``, ``counterfactuals`` hold the full per-layer
    results (per-sample distributions included).
    """

    layers: list
    concept: str
    method: str
    n_samples: int
    n_positive: int
    alpha: float
    accuracy: np.ndarray
    cv_accuracy: np.ndarray
    majority_rate: float
    r_c: np.ndarray
    r_c_low: np.ndarray
    r_c_high: np.ndarray
    r_c_p_value: np.ndarray
    r_c_p_adjusted: np.ndarray
    correction: str
    tau: np.ndarray
    ablation_delta: np.ndarray
    steering_delta: np.ndarray
    counterfactual_delta: np.ndarray
    counterfactual_flip: np.ndarray
    perm_r_c: np.ndarray
    perm_cv_accuracy: np.ndarray
    random_flip: np.ndarray
    random_ablation_delta: np.ndarray
    directions: list
    ratios: list
    sensitivities: list
    ablations: list
    steerings: list
    counterfactuals: list
    seed: int

    _plot_function: ClassVar[str] = "topo_mi.plotting.causal:plot_concept_profile"

    def summary(self) -> dict:
        i = int(np.argmax(self.r_c))
        j = int(np.argmax(self.counterfactual_flip))
        return {"concept": self.concept, "method": self.method, "n_layers": len(self.layers),
                "n_samples": self.n_samples, "best_layer_r_c": self.layers[i], "r_c_max": float(self.r_c[i]),
                "r_c_max_ci": [float(self.r_c_low[i]), float(self.r_c_high[i])],
                "cv_accuracy_max": float(np.max(self.cv_accuracy)), "majority_rate": self.majority_rate,
                "tau_max": float(np.max(self.tau)), "flip_max": float(self.counterfactual_flip[j]),
                "flip_max_layer": self.layers[j], "random_flip_max": float(np.max(self.random_flip))}

    def table(self) -> dict:
        cols = ["accuracy", "cv_accuracy", "r_c", "r_c_low", "r_c_high", "r_c_p_value", "r_c_p_adjusted", "tau", "ablation_delta",
                "steering_delta", "counterfactual_flip", "perm_cv_accuracy", "random_flip"]
        rows = [[float(getattr(self, c)[i]) for c in cols] for i in range(len(self.layers))]
        return {"index": list(self.layers), "columns": cols, "rows": rows}

    def report_section(self) -> dict:
        s = self.summary()
        return {"headline": (f"The concept {self.concept!r} explains R_c = {s['r_c_max']:.2f} of the variance at "
                             f"{s['best_layer_r_c']} (95% CI {s['r_c_max_ci'][0]:.2f}-{s['r_c_max_ci'][1]:.2f}); "
                             f"setting its coordinate to the other class's flips {s['flip_max']:.0%} of the "
                             f"predictions at {s['flip_max_layer']} (a random direction: "
                             f"{s['random_flip_max']:.0%})."),
                "table": self.table(),
                "caption": ("Per layer: accuracy of the concept direction (in-sample, held-out, and held-out with "
                            "permuted labels), R_c with its bootstrap interval and the permutation null, τ_c "
                            "(largest derivative of the logits along the unit direction), and the fraction of "
                            "predictions flipped by the counterfactual intervention along v_c versus a random "
                            "direction.")}


def _concept_codes(concept, labels, n, ids, positive):
    from topo_mi.causal import concept_mask

    if isinstance(concept, str):
        check_choice("concept", concept, CONCEPT_NAMES)
        if labels is None:
            fail("labels", f"per-sample labels for concept={concept!r}", None)
        lab = np.asarray(labels)
        if lab.shape != (n,):
            fail("labels", f"{n} labels (one per input)", f"shape {lab.shape}", raw=True)
        if concept == "parity":
            if lab.dtype.kind not in "iu":
                fail("labels", "integer labels for concept='parity'", f"dtype {lab.dtype}", raw=True)
            return concept_mask((lab % 2 == 0).astype(np.int64), n), "even label"
        return concept_mask(lab, n, positive=positive), ("labels" if positive is None else f"label == {positive}")
    return concept_mask(concept, n, sample_ids=ids, positive=positive), "given"


def _point_r_c(X, z):
    from topo_mi.causal.quantities import _between_within

    k = int(z.max()) + 1
    counts = np.bincount(z, minlength=k).astype(np.float64)
    sums = np.stack([X[z == c].sum(0) for c in range(k)])
    sq = np.array([(X[z == c] ** 2).sum() for c in range(k)])
    b, w, _ = _between_within(sums, sq, counts, len(z))
    return float(b / (b + w))


def _layer_profile(model, x, name, z, ids, *, method, alpha, n_boot, n_perm, cv, seed, position, batch_size):
    from topo_mi.causal import (ProjectOut, Project, Steer, cache_outputs, concept_direction, delta_n, sensitivity,
                                variance_ratio)

    h = cache_outputs(model, x, name, batch_size=batch_size)[name]
    seq = h.ndim >= 3
    if h.ndim > 3:
        fail("layers", "layers with outputs (batch, features) or (batch, positions, features)",
             f"{name!r} of shape {tuple(h.shape)}", raw=True)
    X = (h[:, position] if seq else h).double().cpu().numpy()
    pos = None if not seq else [position % h.shape[1]]
    cd = concept_direction(X, z, method=method, cv=cv, seed=seed)
    rc = variance_ratio(X, z, n_boot=n_boot, seed=seed)
    tau = sensitivity(model, x, layer=name, direction=cd.direction, at_positions=pos, sample_ids=ids,
                      batch_size=batch_size, position=-1)
    kw = dict(positions=pos)
    abl = delta_n(model, x, {name: ProjectOut(cd.direction, **kw)}, sample_ids=ids, batch_size=batch_size)
    steer = delta_n(model, x, {name: Steer(cd.raw, alpha, **kw)}, sample_ids=ids, batch_size=batch_size)

    def counterfactual(u):
        coord = X @ u
        m = np.array([coord[z == 0].mean(), coord[z == 1].mean()])
        return delta_n(model, x, {name: Project(u, value=m[1 - z], **kw)}, sample_ids=ids, batch_size=len(z))

    cf = counterfactual(cd.direction)
    rng = np.random.default_rng(seed)
    u = rng.normal(size=X.shape[1])
    u /= np.linalg.norm(u)
    rand_cf = counterfactual(u)
    rand_abl = delta_n(model, x, {name: ProjectOut(u, **kw)}, sample_ids=ids, batch_size=batch_size)
    perm_r, perm_acc = [], []
    for _ in range(n_perm):
        zp = rng.permutation(z)
        perm_r.append(_point_r_c(X, zp))
        perm_acc.append(concept_direction(X, zp, method=method, cv=cv, seed=seed).cv_accuracy)
    perm_r = np.asarray(perm_r)
    p_value = float((1 + np.sum(perm_r >= rc.r_c)) / (1 + n_perm)) if n_perm else float("nan")
    return dict(cd=cd, rc=rc, tau=tau, abl=abl, steer=steer, cf=cf, rand_flip=rand_cf.fraction_changed,
                rand_abl=float(rand_abl.values.mean()), perm_r=perm_r,
                perm_acc=float(np.mean(perm_acc)) if perm_acc else float("nan"), p=p_value)


def concept_profile(model, inputs, *, concept: Any, layers: Any = None, labels=None, sample_ids=None,
                    positive=None, method: str = "mean_diff", alpha: float = 1.0, n_boot: int = 200,
                    n_permutations: int = 20, cv: int = 5, position: int = -1, batch_size: int = 1024,
                    correction: str = "holm", seed: int = 0, progress: bool = False) -> ConceptProfile:
    """Per layer: v_c with probe accuracy, R_c with CI, τ_c, and ΔN of ablating and steering along v_c.

    Parameters
    ----------
    model : torch.nn.Module
    inputs : tensor, array or dict of tensors
        One batch of inputs (rows = samples).
    concept : labels, predicate on sample ids, "labels" or "parity"
        ``"labels"``: the binary ``labels`` (or ``labels == positive``); ``"parity"``: even labels.
    layers : names or patterns, optional
        Default: the model's ``hidden_names``.
    method : {"mean_diff", "probe", "lda"}
        How v_c is found (:func:`~topo_mi.causal.concept_direction`).
    alpha : float, default 1.0
        Steering strength (times the raw mean difference).
    n_boot, n_permutations, cv : int
        Bootstrap resamples for R_c, label permutations for the baselines, folds of the held-out
        accuracy.
    position : int, default -1
        For (batch, positions, d) layers: the position read and intervened on.
    correction : {"holm", "bh", "bonferroni", "none"}, default "holm"
        Multiple-comparison correction of the per-layer permutation p-values of R_c
        (:func:`topo_mi.compare.adjust_pvalues`).
    seed : int, default 0

    Returns
    -------
    ConceptProfile
    """
    import torch

    from topo_mi.activations import resolve_layers
    from topo_mi.causal._intervene import _as_inputs, _n_rows
    from topo_mi.compare import adjust_pvalues

    if not isinstance(model, torch.nn.Module):
        fail("model", "a torch.nn.Module", type(model).__name__, raw=True)
    check_choice("method", method, ("mean_diff", "probe", "lda"))
    check_choice("correction", correction, ("holm", "bh", "bonferroni", "none"))
    alpha = check_float("alpha", alpha)
    n_boot = check_int("n_boot", n_boot, min_value=10)
    n_permutations = check_int("n_permutations", n_permutations, min_value=0)
    seed = check_int("seed", seed, min_value=0)
    if layers is None:
        layers = getattr(model, "hidden_names", None)
        if not layers:
            fail("layers", "layer names (the model has no hidden_names)", None)
    names = [n for n, _ in resolve_layers(model, layers)]
    x = _as_inputs(model, inputs)
    n = _n_rows(x)
    ids = np.arange(n) if sample_ids is None else np.asarray(sample_ids)
    if ids.shape != (n,):
        fail("sample_ids", f"{n} ids (one per input)", f"shape {ids.shape}", raw=True)
    z, cname = _concept_codes(concept, labels, n, ids, positive)
    it = names
    if progress:
        from tqdm.auto import tqdm

        it = tqdm(names, desc="concept_profile", unit="layer", leave=False, disable=None)
    per = [_layer_profile(model, x, nm, z, ids, method=method, alpha=alpha, n_boot=n_boot, n_perm=n_permutations,
                          cv=cv, seed=seed, position=position, batch_size=batch_size) for nm in it]

    def arr(key, attr=None):
        return np.array([getattr(p[key], attr) if attr else p[key] for p in per], dtype=np.float64)

    return ConceptProfile(
        layers=names, concept=cname, method=method, n_samples=n, n_positive=int(z.sum()), alpha=alpha,
        accuracy=arr("cd", "accuracy"), cv_accuracy=arr("cd", "cv_accuracy"),
        majority_rate=float(max(z.mean(), 1 - z.mean())), r_c=arr("rc", "r_c"), r_c_low=arr("rc", "ci_low"),
        r_c_high=arr("rc", "ci_high"), r_c_p_value=arr("p"), r_c_p_adjusted=adjust_pvalues(arr("p"), correction),
        correction=correction, tau=arr("tau", "tau"),
        ablation_delta=np.array([p["abl"].values.mean() for p in per]),
        steering_delta=np.array([p["steer"].values.mean() for p in per]),
        counterfactual_delta=np.array([p["cf"].values.mean() for p in per]),
        counterfactual_flip=arr("cf", "fraction_changed"),
        perm_r_c=np.stack([p["perm_r"] for p in per]) if n_permutations else np.zeros((len(names), 0)),
        perm_cv_accuracy=arr("perm_acc"), random_flip=arr("rand_flip"), random_ablation_delta=arr("rand_abl"),
        directions=[p["cd"] for p in per], ratios=[p["rc"] for p in per], sensitivities=[p["tau"] for p in per],
        ablations=[p["abl"] for p in per], steerings=[p["steer"] for p in per],
        counterfactuals=[p["cf"] for p in per], seed=seed)


__all__ = ["concept_profile", "ConceptProfile"]
