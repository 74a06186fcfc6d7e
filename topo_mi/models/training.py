"""Deterministic CPU training loops for the reference models.

Every loop draws its randomness (shuffling, synthetic batches, dropout if any) from a local
``torch.Generator`` or a forked RNG seeded by ``seed``: the same seed, model initialisation and
data give the same weights, and the caller's global torch RNG is left untouched.
"""
from __future__ import annotations

import math
import time
from typing import Any

import numpy as np
import torch
from torch import nn

from topo_mi._results import Result, result_dataclass
from topo_mi._validation import as_array, check_finite, check_float, check_int, fail
from topo_mi.errors import DivergenceError
from topo_mi.models._common import check_seed, check_threads, generator
from topo_mi.models._common import num_threads as _threads


@result_dataclass
class TrainingReport(Result):
    """What a training run did.

    Attributes
    ----------
    task : str
        ``"classifier"``, ``"max_of_k"`` or ``"superposition"``.
    losses : ndarray of shape (epochs_run,)
        Mean training loss of each epoch (``unit == "epoch"``) or the loss of each step
        (``unit == "step"``).
    accuracies : ndarray of shape (epochs_run,)
        Training accuracy after each epoch (classifier); empty for the other tasks.
    final_accuracy : float
        Accuracy of the trained model: on the whole training set (classifier), on fresh random
        sequences (max-of-K); NaN for the superposition model (a regression).
    epochs_run : int
        Epochs (classifier) or optimiser steps (the others) actually run.
    unit : str
        ``"epoch"`` or ``"step"``.
    seconds : float
        Wall-clock training time.
    target_reached : bool or None
        Whether ``target_accuracy`` was reached (None when no target was given).
    params : dict
        The training arguments (optimiser, learning rate, batch size, seed, ...).
    """

    task: str
    losses: np.ndarray
    accuracies: np.ndarray
    final_accuracy: float
    epochs_run: int
    unit: str
    seconds: float
    target_reached: Any
    params: dict

    @property
    def final_loss(self) -> float:
        return float(self.losses[-1]) if len(self.losses) else float("nan")

    def summary(self) -> dict[str, Any]:
        out = {"task": self.task, f"{self.unit}s": self.epochs_run, "final_loss": self.final_loss,
               "final_accuracy": self.final_accuracy, "seconds": self.seconds}
        if self.target_reached is not None:
            out["target_reached"] = self.target_reached
        return out


def _optimizer(cls, params, **kwargs) -> torch.optim.Optimizer:
    """``cls(params, fused=True, ...)`` where supported (CPU float tensors: about 40 % less time per
    step for these small models, and as deterministic), else the default implementation."""
    params = list(params)
    try:
        return cls(params, fused=True, **kwargs)
    except (RuntimeError, ValueError, TypeError):
        return cls(params, **kwargs)


def _direct_step(opt: torch.optim.Optimizer):
    """A callable doing ``opt.step()`` for a fused AdamW without the optimizer wrapper's per-call
    work (hooks, grouping by device and dtype; about 0.1 ms per step, which is most of a step for
    the toy models): the same ``torch._fused_adamw_`` kernel on the same state, so bit-identical.
    The first call goes through ``opt.step()`` (it creates the state); any other optimizer, or
    options the direct call does not cover, always does."""
    defaults = opt.defaults
    direct = (type(opt) is torch.optim.AdamW and defaults.get("fused") and hasattr(torch, "_fused_adamw_")
              and not any(defaults.get(k) for k in ("amsgrad", "maximize", "capturable", "differentiable"))
              and len(opt.param_groups) == 1)
    if not direct:
        return opt.step
    group = opt.param_groups[0]
    cache: dict = {}

    def step():
        if not cache:
            opt.step()
            params = [p for p in group["params"] if p.grad is not None]
            if len(params) != len(group["params"]):
                return
            states = [opt.state[p] for p in params]
            cache.update(params=params, exp_avgs=[st["exp_avg"] for st in states],
                         exp_avg_sqs=[st["exp_avg_sq"] for st in states], steps=[st["step"] for st in states])
            return
        params = cache["params"]
        grads = [p.grad for p in params]
        if any(g is None for g in grads):
            opt.step()
            return
        beta1, beta2 = group["betas"]
        torch._foreach_add_(cache["steps"], 1)
        torch._fused_adamw_(params, grads, cache["exp_avgs"], cache["exp_avg_sqs"], [], cache["steps"],
                            amsgrad=False, lr=group["lr"], beta1=beta1, beta2=beta2,
                            weight_decay=group["weight_decay"], eps=group["eps"], maximize=False,
                            grad_scale=None, found_inf=None)

    return step


def _check_model(model) -> nn.Module:
    if not isinstance(model, nn.Module):
        fail("model", "a torch.nn.Module", model)
    return model


def _check_loop_args(length_name: str, length: Any, *, batch_size: Any, lr: Any, weight_decay: Any, seed: Any,
                     num_threads: Any) -> tuple[int, int, float, float, int, int | None]:
    """The arguments every training loop takes, checked in this order (each error names its parameter).

    ``length`` is the loop's length (``length_name``: ``"epochs"`` or ``"steps"``), an int >= 1;
    ``batch_size`` an int >= 1; ``lr`` a float > 0; ``weight_decay`` a float >= 0; ``seed`` as
    :func:`check_seed`; ``num_threads`` None or an int >= 1. Returns them in that order.
    """
    length = check_int(length_name, length, min_value=1)
    batch_size = check_int("batch_size", batch_size, min_value=1)
    lr = check_float("lr", lr, min_value=0.0, min_inclusive=False)
    weight_decay = check_float("weight_decay", weight_decay, min_value=0.0)
    return length, batch_size, lr, weight_decay, check_seed(seed), check_threads(num_threads)


def _progress(total: int, enabled: bool, desc: str):
    from tqdm.auto import tqdm
    return tqdm(total=total, disable=not enabled, desc=desc, leave=False)


def _to_tensor_X(X, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    arr = as_array(X, "X")
    if arr.dtype == object or arr.dtype.kind not in "biuf":
        fail("X", "a numeric array of shape (n_samples, ...)", arr)
    if arr.ndim < 2:
        fail("X", "an array of shape (n_samples, n_features) (use X.reshape(-1, 1) for 1-D data)", arr)
    if arr.shape[0] < 1:
        fail("X", "at least one sample", arr)
    check_finite("X", arr)
    if arr.dtype.kind == "f":
        np_dtype = torch.empty((), dtype=dtype).numpy().dtype
        with np.errstate(over="ignore"):  # overflow is reported just below
            arr = np.ascontiguousarray(arr, dtype=np_dtype)
        check_finite("X", arr, what=f"values in {np_dtype} range")
        return torch.as_tensor(arr)
    return torch.as_tensor(np.ascontiguousarray(arr, dtype=np.int64))


def _to_tensor_y(y, n: int) -> torch.Tensor:
    arr = as_array(y, "y")
    if arr.ndim != 1 or arr.shape[0] != n:
        fail("y", f"a 1-D array of {n} class labels (one per row of X)", arr)
    if arr.dtype.kind == "f":
        if not np.all(np.isfinite(arr)) or not np.all(arr == np.round(arr)):
            fail("y", "integer class labels", arr)
    elif arr.dtype.kind not in "biu":
        fail("y", "integer class labels", arr)
    arr = arr.astype(np.int64)
    if arr.min() < 0:
        fail("y", "class labels >= 0", f"minimum {int(arr.min())}", raw=True)
    return torch.as_tensor(arr)


@torch.no_grad()
def _accuracy(model: nn.Module, X: torch.Tensor, y: torch.Tensor, chunk: int = 8192) -> float:
    correct = 0
    for start in range(0, X.shape[0], chunk):
        logits = model(X[start:start + chunk])
        correct += int((logits.argmax(dim=-1) == y[start:start + chunk]).sum())
    return correct / X.shape[0]


def train_classifier(model: nn.Module, X, y, *, epochs: int = 200, lr: float = 1e-2, batch_size: int = 256,
                     seed: int = 0, weight_decay: float = 0.0, target_accuracy: float | None = None,
                     progress: bool = False, num_threads: int | None = 1) -> TrainingReport:
    """Train a classifier with Adam and the cross-entropy loss, in place.

    The protocol of Naitzat, Zhitnikov & Lim (JMLR 2020): softmax cross-entropy, Adam, trained
    until the training accuracy reaches ``target_accuracy`` (they use 100 %).

    Parameters
    ----------
    model : nn.Module
        Maps a batch of shape (B, ...) to logits of shape (B, n_classes).
    X : array-like or Tensor of shape (n_samples, n_features)
        Float inputs take the dtype of the model's parameters (float32 usually); integer inputs
        (token ids) become int64.
    y : array-like of shape (n_samples,)
        Integer class labels in [0, n_classes).
    epochs : int, default 200
        Largest number of passes over the data.
    lr : float, default 1e-2
    batch_size : int, default 256
    seed : int, default 0
        Seeds the shuffling (a local ``torch.Generator``) and any randomness inside the model
        (a forked global RNG); the initial weights come from the model itself.
    weight_decay : float, default 0.0
        Adam's L2 penalty.
    target_accuracy : float in (0, 1], optional
        Stop after the first epoch whose training accuracy (measured on all of ``X`` after the
        epoch, in eval mode) reaches it.
    progress : bool, default False
        Show a tqdm bar.
    num_threads : int or None, default 1
        Intra-op torch threads while training (restored afterwards; None leaves torch's setting).
        One thread is fastest for these small models and makes the result independent of the
        machine's core count.

    Returns
    -------
    TrainingReport
        Per-epoch losses and accuracies, final training accuracy, epochs run, seconds.
    """
    model = _check_model(model)
    first = next((p for p in model.parameters() if p.is_floating_point()), None)
    Xt = _to_tensor_X(X, first.dtype if first is not None else torch.float32)
    yt = _to_tensor_y(y, Xt.shape[0])
    if first is not None and first.device.type != "cpu":
        Xt, yt = Xt.to(first.device), yt.to(first.device)
    epochs, batch_size, lr, weight_decay, seed, threads = _check_loop_args(
        "epochs", epochs, batch_size=batch_size, lr=lr, weight_decay=weight_decay, seed=seed,
        num_threads=num_threads)
    if target_accuracy is not None:
        target_accuracy = check_float("target_accuracy", target_accuracy, min_value=0.0, max_value=1.0,
                                      min_inclusive=False)
    params = dict(optimizer="Adam", epochs=epochs, lr=lr, batch_size=batch_size, seed=seed,
                  weight_decay=weight_decay, target_accuracy=target_accuracy, n_samples=int(Xt.shape[0]))
    n = Xt.shape[0]
    g = generator(seed)
    was_training = model.training
    opt = _optimizer(torch.optim.Adam, model.parameters(), lr=lr, weight_decay=weight_decay)
    losses: list[float] = []
    accs: list[float] = []
    reached = None if target_accuracy is None else False
    t0 = time.perf_counter()
    try:
        with _threads(threads), torch.random.fork_rng(devices=[]), _progress(epochs, progress, "train") as bar:
            torch.manual_seed(seed)
            for _ in range(epochs):
                model.train()
                perm = torch.randperm(n, generator=g)
                total, count = 0.0, 0
                for start in range(0, n, batch_size):
                    idx = perm[start:start + batch_size]
                    logits = model(Xt[idx])
                    loss = nn.functional.cross_entropy(logits, yt[idx])
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
                    total += float(loss.detach()) * len(idx)
                    count += len(idx)
                epoch_loss = total / count
                if not math.isfinite(epoch_loss):
                    raise DivergenceError(f"train_classifier: the loss became {epoch_loss} at epoch "
                                          f"{len(losses) + 1} (lower lr={lr:g})")
                losses.append(epoch_loss)
                model.eval()
                accs.append(_accuracy(model, Xt, yt))
                bar.update(1)
                bar.set_postfix(loss=f"{epoch_loss:.4f}", acc=f"{accs[-1]:.4f}")
                if target_accuracy is not None and accs[-1] >= target_accuracy:
                    reached = True
                    break
    finally:
        model.train(was_training)
    return TrainingReport(task="classifier", losses=np.asarray(losses), accuracies=np.asarray(accs),
                          final_accuracy=float(accs[-1]), epochs_run=len(losses), unit="epoch",
                          seconds=time.perf_counter() - t0, target_reached=reached, params=params)


def _step_loop(model: nn.Module, opt: torch.optim.Optimizer, step_loss, *, steps: int, seed: int,
               threads: int | None, progress: bool, desc: str, name: str, lr: float, every: int = 100,
               fmt: str = ".4g", lr_factor=None, closed_form: bool = False) -> tuple[np.ndarray, float]:
    """Run ``steps`` optimiser steps on fresh batches; return the losses and the seconds taken.

    ``step_loss(step)`` draws the step's batch and returns its loss: a scalar, or one loss per
    independent instance (shape (k,), minimised through their sum and recorded separately, so
    ``losses`` has shape (steps,) or (steps, k)). With ``closed_form=True``, ``step_loss`` sets
    every parameter's ``.grad`` itself (a gradient written out) and returns the loss detached.
    ``lr_factor(step)``, when given, scales every parameter group's learning rate ``lr`` at that
    step (a schedule). The global torch RNG is forked and seeded by ``seed``; a non-finite loss
    raises :class:`DivergenceError` naming ``name``. A fused AdamW is stepped by
    :func:`_direct_step` (the same kernel, bit-identical).
    """
    losses = None
    was_training = model.training
    opt_step = _direct_step(opt)
    t0 = time.perf_counter()
    try:
        with _threads(threads), torch.random.fork_rng(devices=[]), _progress(steps, progress, desc) as bar:
            torch.manual_seed(seed)
            model.train()
            for step in range(steps):
                if lr_factor is not None:
                    for group in opt.param_groups:
                        group["lr"] = lr * lr_factor(step)
                if closed_form:
                    loss = step_loss(step)
                else:
                    opt.zero_grad(set_to_none=True)
                    loss = step_loss(step)
                    (loss if loss.ndim == 0 else loss.sum()).backward()
                opt_step()
                value = loss.detach().double().numpy()
                if losses is None:
                    losses = np.empty((steps,) + value.shape)
                losses[step] = value
                if not np.all(np.isfinite(value)):
                    bad = float(value) if value.ndim == 0 else float(value[~np.isfinite(value)][0])
                    where = "" if value.ndim == 0 else f" (instance {int(np.flatnonzero(~np.isfinite(value))[0])})"
                    raise DivergenceError(f"{name}: the loss became {bad} at step {step + 1}{where} "
                                          f"(lower lr={lr:g})")
                if step % every == 0 or step == steps - 1:
                    bar.update(step + 1 - bar.n)
                    bar.set_postfix(loss=format(float(value.mean()), fmt))
    finally:
        model.train(was_training)
    return losses, time.perf_counter() - t0

def _sub_seed(seed: int, stream: int) -> int:
    """An independent seed for a named stream of the same run (data, evaluation, ...)."""
    return int(np.random.SeedSequence([seed, stream]).generate_state(1, dtype=np.uint64)[0] >> 1)


@torch.no_grad()
def max_of_k_accuracy(model: nn.Module, *, n_samples: int = 16384, seed: int = 0, batch_size: int = 8192) -> float:
    """Accuracy of the last-position prediction on ``n_samples`` uniformly random sequences.

    Sequences of ``model.n_ctx`` tokens, each uniform in ``[0, model.d_vocab)`` (the distribution of
    Gross et al., for which the exhaustive accuracy over all ``d_vocab ** n_ctx`` sequences is the
    expectation), drawn from a local generator seeded by ``seed``.
    """
    d_vocab, n_ctx = _vocab_ctx(model)
    n_samples = check_int("n_samples", n_samples, min_value=1)
    g = generator(check_seed(seed))
    was_training = model.training
    model.eval()
    correct = 0
    try:
        for start in range(0, n_samples, batch_size):
            b = min(batch_size, n_samples - start)
            tokens = torch.randint(0, d_vocab, (b, n_ctx), generator=g)
            pred = model(tokens)[:, -1].argmax(dim=-1)
            correct += int((pred == tokens.max(dim=1).values).sum())
    finally:
        model.train(was_training)
    return correct / n_samples


def _vocab_ctx(model) -> tuple[int, int]:
    _check_model(model)
    d_vocab, n_ctx = getattr(model, "d_vocab", None), getattr(model, "n_ctx", None)
    if not isinstance(d_vocab, int) or not isinstance(n_ctx, int):
        fail("model", "a sequence model with integer attributes d_vocab and n_ctx "
             "(such as AttentionOnlyTransformer)", type(model).__name__, raw=True)
    return d_vocab, n_ctx


def train_max_of_k(model: nn.Module, *, steps: int = 3000, batch_size: int = 128, lr: float = 1e-3,
                   weight_decay: float = 0.01, seed: int = 0, progress: bool = False,
                   num_threads: int | None = 1) -> TrainingReport:
    """Train a sequence model to output the maximum of its input tokens at the last position.

    The max-of-K protocol of Gross et al., "Compact proofs of model performance via mechanistic
    interpretability" (2024; ``gbmi/exp_max_of_n/train.py``, ``MAX_OF_4_CONFIG``): each step draws
    ``batch_size`` fresh sequences of ``model.n_ctx`` tokens uniform in ``[0, model.d_vocab)``; the
    loss is the cross-entropy of the last position's logits against the sequence maximum; AdamW
    (lr 1e-3, betas (0.9, 0.999), PyTorch's default weight decay 0.01), 3,000 steps of 128.

    Parameters
    ----------
    model : nn.Module
        Maps int64 tokens (B, n_ctx) to logits (B, n_ctx, d_vocab) and has attributes ``d_vocab``
        and ``n_ctx`` (e.g. :class:`AttentionOnlyTransformer`).
    steps, batch_size : int
    lr, weight_decay : float
    seed : int, default 0
        Seeds the sequence stream (local generator); evaluation uses an independent stream.
    progress : bool, default False
    num_threads : int or None, default 1
        Intra-op torch threads while training (restored afterwards; None leaves torch's setting).
        One thread is fastest for these small models and makes the result independent of the
        machine's core count.

    Returns
    -------
    TrainingReport
        ``losses`` per step; ``final_accuracy`` on 16,384 fresh random sequences.
    """
    d_vocab, n_ctx = _vocab_ctx(model)
    steps, batch_size, lr, weight_decay, seed, threads = _check_loop_args(
        "steps", steps, batch_size=batch_size, lr=lr, weight_decay=weight_decay, seed=seed,
        num_threads=num_threads)
    params = dict(optimizer="AdamW", steps=steps, lr=lr, betas=[0.9, 0.999], weight_decay=weight_decay,
                  batch_size=batch_size, seed=seed, d_vocab=d_vocab, n_ctx=n_ctx)
    g = generator(_sub_seed(seed, 0))
    opt = _optimizer(torch.optim.AdamW, model.parameters(), lr=lr, betas=(0.9, 0.999), weight_decay=weight_decay)

    def step_loss(step):
        tokens = torch.randint(0, d_vocab, (batch_size, n_ctx), generator=g)
        return nn.functional.cross_entropy(model(tokens)[:, -1], tokens.max(dim=1).values)

    losses, seconds = _step_loop(model, opt, step_loss, steps=steps, seed=seed, threads=threads, progress=progress,
                                 desc="max-of-k", name="train_max_of_k", lr=lr, every=50, fmt=".4f")
    with _threads(threads):
        acc = max_of_k_accuracy(model, seed=_sub_seed(seed, 1))
    return TrainingReport(task="max_of_k", losses=losses, accuracies=np.empty(0), final_accuracy=acc,
                          epochs_run=steps, unit="step", seconds=seconds, target_reached=None, params=params)


def sparse_feature_batch(n: int, n_features: int, sparsity: float, g: torch.Generator) -> torch.Tensor:
    """``x_i = 0`` with probability ``sparsity``, else uniform on [0, 1] (Elhage et al. 2022)."""
    values = torch.rand(n, n_features, generator=g)
    keep = torch.rand(n, n_features, generator=g) >= sparsity
    return torch.where(keep, values, torch.zeros(()))


def train_superposition(model: nn.Module, *, sparsity: float, importance_decay: float = 0.9, steps: int = 10000,
                        batch_size: int = 1024, lr: float = 1e-3, weight_decay: float = 0.01, seed: int = 0,
                        progress: bool = False, num_threads: int | None = 1) -> TrainingReport:
    """Train a :class:`ToySuperposition` model on sparse features (Elhage et al., 2022).

    Each step draws ``batch_size`` vectors with ``x_i = 0`` with probability ``sparsity``, else
    ``U[0, 1]``, and minimises ``mean_{batch, i} I_i (x_i - x'_i)²`` with importances
    ``I_i = importance_decay ** i``, using AdamW (lr 1e-3, PyTorch's default weight decay 0.01,
    as in the authors' notebook), 10,000 steps of 1,024.

    Parameters
    ----------
    model : nn.Module
        Maps (B, n_features) to (B, n_features) and has an integer attribute ``n_features``.
    sparsity : float in [0, 1)
    importance_decay : float in (0, 1], default 0.9
    steps, batch_size : int
    lr, weight_decay : float
    seed : int, default 0
    progress : bool, default False
    num_threads : int or None, default 1
        Intra-op torch threads while training (restored afterwards; None leaves torch's setting).
        One thread is fastest for these small models and makes the result independent of the
        machine's core count.

    Returns
    -------
    TrainingReport
        ``losses`` per step; ``final_accuracy`` is NaN (a regression task).
    """
    _check_model(model)
    n_features = getattr(model, "n_features", None)
    if not isinstance(n_features, int):
        fail("model", "a model with an integer attribute n_features (such as ToySuperposition)",
             type(model).__name__, raw=True)
    sparsity = check_float("sparsity", sparsity, min_value=0.0, max_value=1.0, max_inclusive=False)
    importance_decay = check_float("importance_decay", importance_decay, min_value=0.0, max_value=1.0,
                                   min_inclusive=False)
    steps, batch_size, lr, weight_decay, seed, threads = _check_loop_args(
        "steps", steps, batch_size=batch_size, lr=lr, weight_decay=weight_decay, seed=seed,
        num_threads=num_threads)
    params = dict(optimizer="AdamW", sparsity=sparsity, importance_decay=importance_decay, steps=steps,
                  batch_size=batch_size, lr=lr, weight_decay=weight_decay, seed=seed)
    importance = importance_decay ** torch.arange(n_features, dtype=torch.float32)
    g = generator(_sub_seed(seed, 0))
    opt = _optimizer(torch.optim.AdamW, model.parameters(), lr=lr, weight_decay=weight_decay)

    def step_loss(step):
        x = sparse_feature_batch(batch_size, n_features, sparsity, g)
        return (importance * (x - model(x)) ** 2).mean()

    losses, seconds = _step_loop(model, opt, step_loss, steps=steps, seed=seed, threads=threads, progress=progress,
                                 desc="superposition", name="train_superposition", lr=lr, every=200, fmt=".3g")
    return TrainingReport(task="superposition", losses=losses, accuracies=np.empty(0),
                          final_accuracy=float("nan"), epochs_run=steps, unit="step",
                          seconds=seconds, target_reached=None, params=params)


__all__ = ["TrainingReport", "train_classifier", "train_max_of_k", "train_superposition",
           "max_of_k_accuracy", "sparse_feature_batch"]
