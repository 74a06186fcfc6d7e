r"""Many toy models of superposition trained at once, in the layout of Elhage et al.'s notebook.

``n_instances`` independent models ``x' = act(Wᵢᵀ Wᵢ x + bᵢ)`` are held in one weight tensor of
shape (n_instances, n_features, n_hidden) and trained by one batched computation: the summed loss
makes every instance's gradient (and, AdamW being elementwise, every update) exactly that of the
instance trained alone. Each instance has its own sparsity, importance vector and seed; instance
``i`` with seed ``s`` is initialised like ``ToySuperposition(n, m, seed=s)`` and draws the feature
batches of ``train_superposition(..., seed=s)``, so a vectorised run reproduces the single-model
API instance by instance.

Importing this module imports torch.
"""
from __future__ import annotations

import math
import numbers
from typing import Any, ClassVar, Sequence

import numpy as np
import torch
from torch import nn

from topo_mi._results import Result, result_dataclass
from topo_mi._validation import as_array, check_choice, check_float, check_int, fail
from topo_mi.errors import ResourceError
from topo_mi.models._common import check_threads, generator
from topo_mi.models.training import _optimizer, _step_loop, _sub_seed, sparse_feature_batch
from topo_mi.superposition.geometry import FeatureGeometry, feature_geometry

ACTIVATIONS = ("relu", "linear")
LR_SCHEDULES = ("constant", "linear", "cosine")
_DTYPES = {"float32": torch.float32, "float64": torch.float64}


# -- validation --------------------------------------------------------------------------------

def _instances_from(name: str, value: Any, n_instances: int | None) -> int | None:
    arr = np.asarray(value)
    if arr.ndim == 0:
        return n_instances
    k = arr.shape[0]
    if n_instances is not None and k != n_instances:
        fail(name, f"one value per instance ({n_instances})", f"{k} values", raw=True)
    return k


def check_sparsity(value: Any, n_instances: int, name: str = "sparsity") -> np.ndarray:
    """``value`` (a number or one per instance) as an array (n_instances,), every entry in [0, 1)."""
    if np.ndim(value) == 0:
        values = [value] * n_instances
    elif np.ndim(value) == 1:
        values = list(value)
    else:
        fail(name, "a number or a 1-D sequence of numbers in [0, 1)", np.asarray(value))
    return np.array([check_float(name if np.ndim(value) == 0 else f"{name}[{k}]", v, min_value=0.0,
                                 max_value=1.0, max_inclusive=False) for k, v in enumerate(values)])


def check_importance(value: Any, n_features: int, n_instances: int, name: str = "importance") -> np.ndarray:
    """Importances of shape (n_instances, n_features) from None (all ones), a decay ``d`` (``I_i = d**i``),
    a vector (n_features,) or an array (n_instances, n_features); all finite and >= 0, not all 0."""
    if value is None:
        return np.ones((n_instances, n_features))
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        d = check_float(name, value, min_value=0.0, min_inclusive=False)
        return np.broadcast_to(d ** np.arange(n_features, dtype=np.float64), (n_instances, n_features)).copy()
    arr = as_array(value, name)
    arr = np.asarray(arr)
    if arr.dtype.kind not in "biuf":
        fail(name, f"a decay, or importances of shape ({n_features},) or ({n_instances}, {n_features})", arr)
    arr = arr.astype(np.float64)
    if arr.ndim == 1:
        if arr.shape[0] != n_features:
            fail(name, f"one importance per feature ({n_features})", f"a vector of length {arr.shape[0]}", raw=True)
        arr = np.broadcast_to(arr, (n_instances, n_features)).copy()
    if arr.shape != (n_instances, n_features):
        fail(name, f"an array of shape ({n_features},) or ({n_instances}, {n_features})", arr)
    if not np.all(np.isfinite(arr)) or np.any(arr < 0):
        bad = arr[~np.isfinite(arr) | (arr < 0)][0]
        fail(name, "finite importances >= 0", f"{bad!r}", raw=True)
    if np.any(arr.sum(axis=1) == 0):
        fail(name, "at least one positive importance per instance", "an all-zero row", raw=True)
    return arr


def _check_sets(name: str, value: Any) -> tuple[int, ...]:
    if value is None:
        return ()
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        value = [2] * check_int(name, value, min_value=0)  # a number of pairs
    if not isinstance(value, (list, tuple)):
        fail(name, "a number of pairs or a list of set sizes >= 2", value)
    return tuple(check_int(f"{name}[{k}]", v, min_value=2) for k, v in enumerate(value))


def estimate_bytes(n_instances: int, n_features: int, n_hidden: int, batch_size: int, *,
                   itemsize: int = 4) -> int:
    """Memory of a batched training run: parameters with gradients and AdamW moments, one batch of
    features and the activations autograd keeps (about eight (instances, batch, features) and three
    (instances, batch, hidden) tensors)."""
    params = n_instances * n_features * (n_hidden + 1)
    return int(itemsize * (5 * params + n_instances * batch_size * (8 * n_features + 3 * n_hidden)))


def available_memory() -> int:
    from topo_mi._resources import available_memory as avail

    return avail()


def check_fits(n_instances: int, n_features: int, n_hidden: int, batch_size: int, *, itemsize: int,
               max_bytes: int | None) -> int:
    need = estimate_bytes(n_instances, n_features, n_hidden, batch_size, itemsize=itemsize)
    limit = int(0.75 * available_memory()) if max_bytes is None else int(max_bytes)
    if need > limit:
        raise ResourceError(
            f"n_instances x n_features x n_hidden: expected a training run that fits in {limit / 2**20:.1f} MiB, "
            f"got {n_instances} x {n_features} x {n_hidden} with batch_size {batch_size} "
            f"(about {need / 2**20:.1f} MiB); train fewer instances at a time or use a smaller batch "
            "(max_bytes raises the limit)")
    return need


# -- the batched model -------------------------------------------------------------------------

class ToyModelInstances(nn.Module):
    r"""``n_instances`` toy models ``x' = act(x Wᵢ Wᵢᵀ + bᵢ)``; ``W`` of shape (I, n, m), ``b`` (I, n).

    ``forward`` maps ``x`` of shape (I, B, n) to (I, B, n); ``hook_hidden`` sees ``h = x Wᵢ`` of
    shape (I, B, m). Instance i with seed ``s`` starts at ``ToySuperposition(n, m, seed=s).W.T``
    (Xavier normal, std sqrt(2 / (n + m))) and ``b = 0``.
    """

    def __init__(self, n_features: int, n_hidden: int, seeds: Sequence[int], *, activation: str = "relu",
                 bias: bool = True, dtype: torch.dtype = torch.float32):
        super().__init__()
        self.n_features, self.n_hidden = int(n_features), int(n_hidden)
        self.activation, self.bias = activation, bool(bias)
        std = math.sqrt(2.0 / (n_features + n_hidden))
        W = torch.stack([(torch.randn(n_hidden, n_features, generator=generator(int(s))) * std).T
                         for s in seeds]).to(dtype)
        self.W = nn.Parameter(W.contiguous())
        self.register_parameter("b", nn.Parameter(torch.zeros(len(seeds), n_features, dtype=dtype)) if bias else None)
        self.hook_hidden = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.hook_hidden(torch.bmm(x, self.W))
        out = torch.bmm(h, self.W.transpose(1, 2))
        if self.b is not None:
            out = out + self.b[:, None, :]
        return torch.relu(out) if self.activation == "relu" else out


def feature_batch(batch_size: int, n_features: int, sparsity: float, g: torch.Generator, *,
                  correlated: tuple[int, ...] = (), anticorrelated: tuple[int, ...] = ()) -> torch.Tensor:
    r"""One instance's batch (batch_size, n_features): ``x_i = 0`` with probability ``sparsity`` else
    ``U[0, 1]``, every feature with density ``p = 1 − sparsity``.

    The first features form the ``correlated`` sets (each set present or absent as a whole, with
    probability p), the next the ``anticorrelated`` sets (at most one member present: the set is
    active with probability ``k p`` and then one member uniformly, as in the paper's notebook for
    pairs), the rest are independent. Without sets this is exactly
    :func:`topo_mi.models.sparse_feature_batch` (the single-model stream).
    """
    if not correlated and not anticorrelated:
        return sparse_feature_batch(batch_size, n_features, sparsity, g)
    p = 1.0 - sparsity
    values = torch.rand(batch_size, n_features, generator=g)
    keep = torch.empty(batch_size, n_features, dtype=torch.bool)
    start = 0
    for k in correlated:
        keep[:, start:start + k] = torch.rand(batch_size, 1, generator=g) < p
        start += k
    for k in anticorrelated:
        active = torch.rand(batch_size, 1, generator=g) < k * p
        which = torch.randint(0, k, (batch_size, 1), generator=g)
        keep[:, start:start + k] = active & (torch.arange(k)[None, :] == which)
        start += k
    keep[:, start:] = torch.rand(batch_size, n_features - start, generator=g) >= sparsity
    return torch.where(keep, values, torch.zeros(()))


def _lr_factor(schedule: str, steps: int):
    if schedule == "constant":
        return None
    if schedule == "linear":
        return lambda step: 1.0 - step / steps
    return lambda step: math.cos(0.5 * math.pi * step / steps)


def _closed_form_step(model: "ToyModelInstances", gens, S: np.ndarray, imp: np.ndarray, batch_size: int,
                      corr: tuple[int, ...], anti: tuple[int, ...]):
    r"""The batched training step with its gradient written out (no autograd graph).

    With ``x`` of shape (I, n, B) (features by batch, the layout in which the small batched
    products are fastest), ``h = Wᵀx``, ``p = W h + b``, ``x' = act(p)``, ``r = x' − x`` and
    ``L_k = mean_{b,i} I_i r²``, the gradients are ``δ = (2 / (B n)) I ⊙ r ⊙ act'(p)``,
    ``∂L/∂b = Σ_b δ`` and ``∂L/∂W = x (Wᵀδ)ᵀ + δ hᵀ`` — what autograd computes for the same loss
    (agreement to float rounding is tested), in five small products and a few elementwise passes
    instead of a recorded graph. The features are the draws of
    :func:`topo_mi.models.sparse_feature_batch` per instance (values, then the keep test
    ``u >= S``, written as ``1 − sign(relu(S − u))``, which is exact), so the data streams are
    those of the single-model API.
    """
    n_instances, n, B = len(gens), model.n_features, batch_size
    dt = model.W.dtype
    W, b = model.W, model.b
    imp_s = torch.as_tensor(imp, dtype=dt)[:, :, None] * (2.0 / (B * n))   # (I, n, 1)
    S_t = torch.as_tensor(S, dtype=torch.float32)[:, None, None]
    buf = torch.empty(n_instances, 2, B, n)   # per instance: the values, then the keep draws (one call)
    values, draws = buf[:, 0], buf[:, 1]
    x = torch.empty(n_instances, n, B, dtype=dt)
    x_rows = x.transpose(1, 2)            # the (I, B, n) view the draws are written through
    S_list = S.tolist()
    relu = model.activation == "relu"

    def step_loss(step):
        with torch.no_grad():
            if corr or anti:
                x_rows.copy_(torch.stack([feature_batch(B, n, s, g, correlated=corr, anticorrelated=anti)
                                          for s, g in zip(S_list, gens)]))
            else:
                for k, g in enumerate(gens):
                    torch.rand(2, B, n, generator=g, out=buf[k])   # = two calls of (B, n), in order
                drop = torch.sub(S_t, draws).clamp_min_(0.0).sign_()      # 1 where u < S, else 0
                torch.addcmul(values, values, drop, value=-1.0, out=x_rows)  # values · (1 − drop)
            Wt = W.transpose(1, 2).contiguous()
            h = torch.bmm(Wt, x)                                           # (I, m, B)
            p = torch.bmm(W, h) if b is None else torch.baddbmm(b[:, :, None], W, h)
            if relu:
                out = p.clamp_min_(0.0)
                slope = out.sign()                                         # act'(p) = 1[p > 0]
                r = out.sub_(x)
            else:
                r = p.sub_(x)
            ir = imp_s * r
            loss = (ir * r).sum(dim=(1, 2)).mul_(0.5)                      # Σ I r² / (B n)
            if relu:
                ir.mul_(slope)
            gW = torch.baddbmm(torch.bmm(ir, h.transpose(1, 2)), x, torch.bmm(Wt, ir).transpose(1, 2))
            W.grad = gW
            if b is not None:
                b.grad = ir.sum(dim=2)
        return loss

    return step_loss


# -- the result --------------------------------------------------------------------------------

@result_dataclass
class ToyModels(Result):
    """Trained toy models of superposition and their feature geometry (see :func:`train_toy_models`).

    Attributes
    ----------
    W : ndarray of shape (n_instances, n_features, n_hidden)
        Row ``W[k, i]`` is feature i's direction in instance k's hidden space.
    b : ndarray of shape (n_instances, n_features) or None
        Output biases (None without bias).
    sparsity : ndarray (n_instances,)
    importance : ndarray (n_instances, n_features)
    seeds : ndarray (n_instances,), int64
    losses : ndarray (steps, n_instances)
        Each instance's training loss ``mean_{batch, i} I_i (x_i − x'_i)²`` per step.
    final_loss : ndarray (n_instances,)
        Mean loss over the last ``min(100, steps)`` steps.
    geometry : FeatureGeometry
        Norms, D_i, D*, interference, Gram rank and polytopes of every instance.
    activation : str
    params : dict
        The training arguments.
    seconds : float
    """

    W: np.ndarray
    b: Any
    sparsity: np.ndarray
    importance: np.ndarray
    seeds: np.ndarray
    losses: np.ndarray
    final_loss: np.ndarray
    geometry: FeatureGeometry
    activation: str
    params: dict
    seconds: float

    _plot_function: ClassVar[str] = "topo_mi.plotting.superposition:plot_feature_geometry"

    @property
    def n_instances(self) -> int:
        return int(self.W.shape[0])

    @property
    def superposition_possible(self) -> bool:
        return self.geometry.superposition_possible

    def to_model(self, instance: int = 0):
        """Instance ``instance`` as a :class:`topo_mi.models.ToySuperposition` (ReLU with bias only)."""
        from topo_mi.models import ToySuperposition

        instance = check_int("instance", instance, min_value=0, max_value=self.n_instances - 1)
        if self.activation != "relu" or self.b is None:
            fail("instance", "a ReLU model with bias (what ToySuperposition is)",
                 f"activation {self.activation!r}, bias {self.b is not None}", raw=True)
        n, m = self.W.shape[1:]
        model = ToySuperposition(n, m, seed=int(self.seeds[instance]))
        with torch.no_grad():
            model.W.copy_(torch.as_tensor(self.W[instance].T))
            model.b.copy_(torch.as_tensor(self.b[instance]))
        return model

    def summary(self) -> dict[str, Any]:
        out = self.geometry.summary()
        out.update({"steps": int(self.losses.shape[0]), "mean_final_loss": float(np.mean(self.final_loss)),
                    "activation": self.activation, "bias": self.b is not None, "seconds": self.seconds})
        if not self.superposition_possible:
            out["note"] = "n_hidden >= n_features: every feature can have its own dimension (no superposition needed)"
        return out


def train_toy_models(n_features: int = 5, n_hidden: int = 2, *, n_instances: int | None = None,
                     sparsity: Any = 0.0, importance: Any = None, seeds: Any = 0, activation: str = "relu",
                     bias: bool = True, correlated: Any = None, anticorrelated: Any = None, steps: int = 10000,
                     batch_size: int = 1024, lr: float = 1e-3, weight_decay: float = 0.01,
                     lr_schedule: str = "constant", dtype: str = "float32", max_bytes: int | None = None,
                     progress: bool = False, num_threads: int | None = 1, **geometry_options) -> ToyModels:
    r"""Train ``n_instances`` toy models of superposition in one batched computation.

    The protocol of Elhage et al., "Toy Models of Superposition" (2022) and their notebook: ``x``
    with ``x_i = 0`` with probability S else ``U[0, 1]``; ``x' = ReLU(Wᵀ W x + b)`` (or linear,
    or without bias); loss ``mean_{batch, i} I_i (x_i − x'_i)²`` per instance, summed over
    instances; AdamW (lr 1e-3, weight decay 0.01, betas (0.9, 0.999)), 10,000 steps of 1,024
    fresh samples; optional learning-rate schedule (the notebook's linear and cosine decays).

    Parameters
    ----------
    n_features, n_hidden : int
        ``n`` and ``m``. ``m >= n`` is allowed (no superposition is possible; the result says so).
    n_instances : int, optional
        Inferred from the per-instance arguments (sequences) when not given; 1 if all are scalars.
    sparsity : float or sequence of floats in [0, 1)
        ``S`` per instance.
    importance : None, float, array (n_features,) or array (n_instances, n_features)
        None: all ones; a float ``d``: ``I_i = d**i``; otherwise the importances (>= 0).
    seeds : int or sequence of int
        Per instance; an int ``s`` gives instances ``s, s + 1, ...``. Instance seed ``s`` fixes its
        initial weights (those of ``ToySuperposition(n, m, seed=s)``) and its data stream (that of
        ``train_superposition(..., seed=s)``).
    activation : {"relu", "linear"}
    bias : bool, default True
    correlated, anticorrelated : int or list of int, optional
        Feature sets (an int: that many pairs; a list: set sizes) occupying the first features,
        correlated sets first (see :func:`feature_batch`).
    steps, batch_size : int
    lr, weight_decay : float
    lr_schedule : {"constant", "linear", "cosine"}
    dtype : {"float32", "float64"}
    max_bytes : int, optional
        Memory limit of the run (default 75 % of the memory available); a larger run is refused
        before anything is allocated (:class:`~topo_mi.errors.ResourceError`).
    progress : bool
    num_threads : int or None, default 1
    **geometry_options
        ``norm_threshold``, ``cos_tol``, ``d_tol``, ``angle_tol`` of
        :func:`topo_mi.superposition.classify_polytopes`.

    Returns
    -------
    ToyModels
    """
    n_features = check_int("n_features", n_features, min_value=1)
    n_hidden = check_int("n_hidden", n_hidden, min_value=1)
    if n_instances is not None:
        n_instances = check_int("n_instances", n_instances, min_value=1)
    for name, value in (("sparsity", sparsity), ("seeds", seeds)):
        n_instances = _instances_from(name, value, n_instances)
    if importance is not None and np.ndim(importance) == 2:
        n_instances = _instances_from("importance", importance, n_instances)
    n_instances = n_instances or 1
    batch_size = check_int("batch_size", batch_size, min_value=1)
    dt = _DTYPES[check_choice("dtype", dtype, tuple(_DTYPES))]
    check_fits(n_instances, n_features, n_hidden, batch_size, itemsize=dt.itemsize, max_bytes=max_bytes)
    S = check_sparsity(sparsity, n_instances)
    imp = check_importance(importance, n_features, n_instances)
    if np.ndim(seeds) == 0:
        seed_list = [check_int("seeds", seeds, min_value=0, max_value=2**62) + k for k in range(n_instances)]
    else:
        seed_list = [check_int(f"seeds[{k}]", s, min_value=0, max_value=2**63 - 1) for k, s in enumerate(seeds)]
    activation = check_choice("activation", activation, ACTIVATIONS)
    if not isinstance(bias, (bool, np.bool_)):
        fail("bias", "True or False", bias)
    corr, anti = _check_sets("correlated", correlated), _check_sets("anticorrelated", anticorrelated)
    if sum(corr) + sum(anti) > n_features:
        fail("correlated", f"feature sets covering at most n_features = {n_features} features",
             f"sets of {sum(corr) + sum(anti)} features", raw=True)
    for k in anti:
        if k * (1.0 - S.min()) > 1.0:
            fail("sparsity", f"a density 1 - S <= 1/{k} with an anticorrelated set of {k} features",
                 f"{S.min()!r}", raw=True)
    steps = check_int("steps", steps, min_value=1)
    lr = check_float("lr", lr, min_value=0.0, min_inclusive=False)
    weight_decay = check_float("weight_decay", weight_decay, min_value=0.0)
    lr_schedule = check_choice("lr_schedule", lr_schedule, LR_SCHEDULES)
    threads = check_threads(num_threads)
    params = dict(optimizer="AdamW", steps=steps, batch_size=batch_size, lr=lr, weight_decay=weight_decay,
                  lr_schedule=lr_schedule, bias=bool(bias), correlated=list(corr), anticorrelated=list(anti),
                  dtype=dtype, n_features=n_features, n_hidden=n_hidden)

    model = ToyModelInstances(n_features, n_hidden, seed_list, activation=activation, bias=bool(bias), dtype=dt)
    gens = [generator(_sub_seed(s, 0)) for s in seed_list]
    opt = _optimizer(torch.optim.AdamW, model.parameters(), lr=lr, weight_decay=weight_decay)
    step_loss = _closed_form_step(model, gens, S, imp, batch_size, corr, anti)
    losses, seconds = _step_loop(model, opt, step_loss, steps=steps, seed=seed_list[0], threads=threads,
                                 progress=progress, desc="toy models", name="train_toy_models", lr=lr,
                                 every=200, fmt=".3g", lr_factor=_lr_factor(lr_schedule, steps),
                                 closed_form=True)
    W = model.W.detach().double().numpy().copy()
    b = None if model.b is None else model.b.detach().double().numpy().copy()
    geometry = feature_geometry(W, b, **geometry_options)
    return ToyModels(W=W, b=b, sparsity=S, importance=imp, seeds=np.asarray(seed_list, dtype=np.int64),
                     losses=losses, final_loss=losses[-min(100, steps):].mean(axis=0), geometry=geometry,
                     activation=activation, params=params, seconds=float(seconds))


__all__ = ["ToyModels", "ToyModelInstances", "train_toy_models", "feature_batch", "estimate_bytes",
           "check_sparsity", "check_importance", "ACTIVATIONS", "LR_SCHEDULES"]
