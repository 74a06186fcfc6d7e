r"""Toy models trained on a finite dataset: memorisation versus generalisation.

Henighan et al., "Superposition, Memorization, and Double Descent" (Transformer Circuits Thread,
2023): the toy model ``x' = ReLU(Wᵀ W x + b)`` trained on ``T`` fixed points ``x_t``. With few
points the model stores the *data points* in superposition (their hidden vectors ``h_t = W x_t``
form a polygon, feature directions are scattered); with many it learns the *features*. The data
points' dimensionality is the features' formula applied to the hidden vectors,
``D_{x_t} = ‖h_t‖² / Σ_s (ĥ_t · h_s)²``; both totals ``Σ_i D_i`` and ``Σ_t D_{x_t}`` lie in [0, m],
and which of them fills the ``m`` dimensions tells memorisation from generalisation.

The models of all dataset sizes and seeds are trained at once, full batch (padded datasets with
per-instance weights ``1/T``); each seed's datasets are nested (the first T points of one stream).
"""
from __future__ import annotations

from typing import Any, ClassVar, Sequence

import numpy as np

from topo_mi._results import Result, result_dataclass
from topo_mi._validation import check_choice, check_float, check_int, fail
from topo_mi.superposition.geometry import feature_dimensionality


def data_dimensionality(H: Any) -> np.ndarray:
    r"""``D_{x_t} = ‖h_t‖² / Σ_s (ĥ_t · h_s)²`` of hidden vectors ``H`` of shape (T, m) or (k, T, m)."""
    D = feature_dimensionality(H)
    return D[0] if np.ndim(H) == 2 else D


@result_dataclass
class FiniteDatasetResult(Result):
    """Toy models trained on ``T`` points each (see :func:`finite_dataset`).

    Attributes
    ----------
    T : ndarray (n_sizes,)
    seeds : ndarray (n_seeds,)
    train_loss, test_loss : ndarray (n_sizes, n_seeds)
        Mean loss on the training points and on ``n_test`` fresh samples.
    feature_dim_total : ndarray (n_sizes, n_seeds)
        ``Σ_i D_i`` over the features.
    data_dim_total : ndarray (n_sizes, n_seeds)
        ``Σ_t D_{x_t}`` over the training points (both totals are near m for any spread-out
        configuration; the maxima tell which side forms the polytopes).
    feature_dim_max, data_dim_max : ndarray (n_sizes, n_seeds)
        ``max_i D_i`` and ``max_t D_{x_t}``.
    W : ndarray (n_sizes * n_seeds, n_features, n_hidden)
        In the order (size, seed).
    hidden : list of ndarray
        The training points' hidden vectors ``h_t`` (T, n_hidden) of each instance.
    n_hidden : int
    params : dict
    seconds : float
    """

    T: np.ndarray
    seeds: np.ndarray
    train_loss: np.ndarray
    test_loss: np.ndarray
    feature_dim_total: np.ndarray
    data_dim_total: np.ndarray
    feature_dim_max: np.ndarray
    data_dim_max: np.ndarray
    W: np.ndarray
    hidden: list
    n_hidden: int
    params: dict
    seconds: float

    _plot_function: ClassVar[str] = "topo_mi.plotting.superposition:plot_finite_dataset"

    @property
    def generalisation_gap(self) -> np.ndarray:
        """``(test − train) / test`` per size and seed: near 1 when the training points are memorised."""
        return (self.test_loss - self.train_loss) / np.maximum(self.test_loss, 1e-300)

    @property
    def memorising(self) -> np.ndarray:
        """Per size and seed: the training loss is under half the test loss."""
        return self.generalisation_gap > 0.5

    def summary(self) -> dict[str, Any]:
        mem = self.memorising.mean(axis=1)
        gen_T = [int(t) for t, f in zip(self.T, mem) if f < 0.5]
        return {"n_features": int(self.W.shape[1]), "n_hidden": self.n_hidden, "sizes": self.T.tolist(),
                "largest_T_memorising": int(max([t for t, f in zip(self.T, mem) if f >= 0.5], default=0)),
                "smallest_T_generalising": int(min(gen_T)) if gen_T else None,
                "test_loss_min": float(self.test_loss.mean(axis=1).min()), "seconds": self.seconds}


def finite_dataset(n_features: int = 200, n_hidden: int = 2, *, T: Sequence[int] = (3, 5, 10, 30, 100, 300, 1000),
                   sparsity: float = 0.95, seeds: Any = (0,), steps: int = 5000, lr: float = 1e-3,
                   weight_decay: float = 1e-2, lr_schedule: str = "cosine", n_test: int = 10000,
                   max_bytes: int | None = None, progress: bool = False,
                   num_threads: int | None = 1) -> FiniteDatasetResult:
    r"""Train one toy model per dataset size ``T`` (and seed), full batch, and measure what it stores.

    Parameters
    ----------
    n_features, n_hidden : int, default 200, 2
    T : sequence of int >= 1
        Dataset sizes.
    sparsity : float in [0, 1), default 0.95
        Uniform importance; about ``n (1 − S)`` features active per point.
    seeds : int or sequence of int
    steps, lr, weight_decay, lr_schedule
        AdamW, full batch (Henighan et al. train much longer, 50,000 steps, with warm-up).
    n_test : int, default 10000
        Fresh samples for the test loss.
    max_bytes, progress, num_threads
        As in :func:`~topo_mi.superposition.train_toy_models`.

    Returns
    -------
    FiniteDatasetResult
    """
    import torch

    from topo_mi.models._common import check_threads, generator
    from topo_mi.models.training import _optimizer, _step_loop, _sub_seed
    from topo_mi.superposition.sweeps import _check_seeds
    from topo_mi.superposition.training import (
        LR_SCHEDULES, ToyModelInstances, _lr_factor, check_fits, feature_batch,
    )

    n_features = check_int("n_features", n_features, min_value=1)
    n_hidden = check_int("n_hidden", n_hidden, min_value=1)
    if isinstance(T, (int, np.integer)):
        T = [T]
    if not isinstance(T, (list, tuple, np.ndarray)) or len(T) == 0:
        fail("T", "a non-empty sequence of dataset sizes", T)
    sizes = [check_int(f"T[{k}]", t, min_value=1) for k, t in enumerate(T)]
    sparsity = check_float("sparsity", sparsity, min_value=0.0, max_value=1.0, max_inclusive=False)
    seed_list = _check_seeds(seeds)
    steps = check_int("steps", steps, min_value=1)
    lr = check_float("lr", lr, min_value=0.0, min_inclusive=False)
    weight_decay = check_float("weight_decay", weight_decay, min_value=0.0)
    lr_schedule = check_choice("lr_schedule", lr_schedule, LR_SCHEDULES)
    n_test = check_int("n_test", n_test, min_value=1)
    threads = check_threads(num_threads)
    t_max = max(sizes)
    n_inst = len(sizes) * len(seed_list)
    check_fits(n_inst, n_features, n_hidden, t_max, itemsize=4, max_bytes=max_bytes)

    data = {s: feature_batch(t_max, n_features, sparsity, generator(_sub_seed(s, 2))) for s in seed_list}
    X = torch.zeros(n_inst, t_max, n_features)
    weight = torch.zeros(n_inst, t_max, 1)
    inst_seeds = []
    for a, t in enumerate(sizes):
        for c, s in enumerate(seed_list):
            k = a * len(seed_list) + c
            X[k, :t] = data[s][:t]
            weight[k, :t] = 1.0 / t
            inst_seeds.append(s)
    model = ToyModelInstances(n_features, n_hidden, inst_seeds)
    opt = _optimizer(torch.optim.AdamW, model.parameters(), lr=lr, weight_decay=weight_decay)

    def step_loss(step):
        return (weight * ((X - model(X)) ** 2).mean(dim=2, keepdim=True)).sum(dim=(1, 2))

    losses, seconds = _step_loop(model, opt, step_loss, steps=steps, seed=seed_list[0], threads=threads,
                                 progress=progress, desc="finite dataset", name="finite_dataset", lr=lr,
                                 every=200, fmt=".3g", lr_factor=_lr_factor(lr_schedule, steps))
    with torch.no_grad():
        train_loss = step_loss(steps).double().numpy()
        tests = []
        for s in seed_list:
            xt = feature_batch(n_test, n_features, sparsity, generator(_sub_seed(s, 3)))
            tests.append(xt)
        Xt = torch.stack([tests[c] for a in range(len(sizes)) for c in range(len(seed_list))])
        test_loss = ((Xt - model(Xt)) ** 2).mean(dim=(1, 2)).double().numpy()
        H = torch.bmm(X, model.W).double().numpy()
    W = model.W.detach().double().numpy().copy()
    feat_D = feature_dimensionality(W)
    hidden, data_total, data_max = [], np.empty(n_inst), np.empty(n_inst)
    for a, t in enumerate(sizes):
        for c in range(len(seed_list)):
            k = a * len(seed_list) + c
            hidden.append(H[k, :t].copy())
            Dx = data_dimensionality(H[k, :t])
            data_total[k], data_max[k] = Dx.sum(), Dx.max()
    shape = (len(sizes), len(seed_list))
    params = dict(n_features=n_features, n_hidden=n_hidden, sparsity=sparsity, steps=steps, lr=lr,
                  weight_decay=weight_decay, lr_schedule=lr_schedule, n_test=n_test, optimizer="AdamW",
                  final_step_loss=losses[-1].tolist())
    return FiniteDatasetResult(T=np.asarray(sizes, dtype=np.int64), seeds=np.asarray(seed_list, dtype=np.int64),
                               train_loss=train_loss.reshape(shape), test_loss=test_loss.reshape(shape),
                               feature_dim_total=feat_D.sum(axis=1).reshape(shape),
                               data_dim_total=data_total.reshape(shape),
                               feature_dim_max=feat_D.max(axis=1).reshape(shape),
                               data_dim_max=data_max.reshape(shape),
                               W=W, hidden=hidden, n_hidden=n_hidden, params=params, seconds=float(seconds))


__all__ = ["FiniteDatasetResult", "finite_dataset", "data_dimensionality"]
