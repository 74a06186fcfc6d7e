r"""First-order attributions: saliency, input x gradient, SmoothGrad, integrated gradients.

Every function attributes one scalar per sample, ``f(x) = target(model(x))``, to the input
features or to the units of a hidden layer (``layer=``: the output of that module, read and
replaced through :mod:`topo_mi.activations`' hook mechanism). Samples are processed together:
gradients of ``sum_i f(x_i)`` are the per-sample gradients as long as the model treats samples
independently (eval mode: no batch statistics, no dropout).

Integrated gradients (Sundararajan, Taly & Yan, ICML 2017):
``IG_j(x) = (x_j - x'_j) int_0^1 d f(x' + a (x - x')) / d x_j da``, with completeness
``sum_j IG_j = f(x) - f(x')``. The integral is a quadrature ``sum_k w_k g(a_k)`` with correct
weights for each rule (trapezoid: ``1/(n-1)`` with halves at the ends, so constant integrands are
exact, unlike captum 0.9's ``riemann_trapezoid`` which weighs ``n`` points of ``linspace(0, 1, n)``
by ``1/n`` and under-counts by ``(n-1)/n``). For piecewise-linear (ReLU) networks ``rule="exact"``
walks the straight path through the activation regions and sums the exact integral over its
linear pieces, so the quadrature error of any rule can be measured.
"""
from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np
import torch

from topo_mi._validation import check_choice, check_float, check_int, check_random_state, fail
from topo_mi.differential._common import as_tensor, model_dtype, select_target, take_target
from topo_mi.differential._results import AttributionResult
from topo_mi.errors import InvalidParameterError

RULES = ("gauss_legendre", "trapezoid", "riemann_left", "riemann_right", "riemann_middle", "exact")


# ---------------------------------------------------------------------------------------------
# quadrature
# ---------------------------------------------------------------------------------------------
MAX_GAUSS_STEPS = 2000  # a single Gauss rule's nodes cost O(n^2); more nodes come from panels


def quadrature(rule: str, steps: int, panels: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Nodes in ``[0, 1]`` and weights (summing to 1) of a rule with ``steps`` nodes per panel.

    ``panels > 1`` splits ``[0, 1]`` into equal panels with the rule on each (a composite rule of
    ``steps * panels`` nodes; the trapezoid's shared end points are counted once per panel).

    ``gauss_legendre`` is exact for polynomials of degree ``2 steps - 1``; ``trapezoid`` (nodes
    ``linspace(0, 1, steps)``, weights ``1/(steps-1)`` with the end points halved) for degree 1;
    ``riemann_middle`` for degree 1; ``riemann_left``/``riemann_right`` only for constants.
    """
    rule = check_choice("rule", rule, RULES[:-1])
    steps = check_int("steps", steps, min_value=2)
    panels = check_int("panels", panels, min_value=1)
    if panels > 1:
        t, w = quadrature(rule, steps)
        left = np.arange(panels, dtype=np.float64)[:, None]
        return ((left + t[None]) / panels).ravel(), np.tile(w / panels, panels)
    if rule == "gauss_legendre":
        if steps > MAX_GAUSS_STEPS:
            fail("steps", f"at most {MAX_GAUSS_STEPS} nodes for one Gauss-Legendre rule (use panels= for a "
                          "composite rule with more nodes)", steps)
        from scipy.special import roots_legendre  # asymptotic nodes for large n (numpy's leggauss is O(n^3))

        t, w = roots_legendre(steps)
        return (t + 1.0) / 2.0, w / 2.0
    if rule == "trapezoid":
        w = np.full(steps, 1.0 / (steps - 1))
        w[0] = w[-1] = 0.5 / (steps - 1)
        return np.linspace(0.0, 1.0, steps), w
    k = np.arange(steps, dtype=np.float64)
    off = {"riemann_left": 0.0, "riemann_right": 1.0, "riemann_middle": 0.5}[rule]
    return (k + off) / steps, np.full(steps, 1.0 / steps)


# ---------------------------------------------------------------------------------------------
# forward passes with gradients at the input or at a layer
# ---------------------------------------------------------------------------------------------
def _resolve_layer(model, layer):
    from topo_mi.activations._hooks import resolve_layers

    if not isinstance(layer, str):
        fail("layer", "one module name (see model.named_modules())", layer)
    found = resolve_layers(model, [layer])
    if len(found) != 1:
        fail("layer", "a name or pattern matching exactly one module", f"{layer!r} matching {len(found)}", raw=True)
    return found[0]


def _layer_output(model, x, named) -> torch.Tensor:
    """The output of one module for inputs ``x`` (no gradient)."""
    from topo_mi.activations._hooks import _recording

    seen: dict[str, torch.Tensor] = {}

    def record(name, output):
        if not isinstance(output, torch.Tensor):
            fail("layer", "a module whose output is a tensor", f"{name!r} returning {type(output).__name__}",
                 raw=True)
        seen[name] = output.detach()
        return None

    with torch.no_grad(), _recording([named], record):
        model(x)
    if named[0] not in seen:
        fail("layer", "a module that runs in the model's forward", named[0])
    return seen[named[0]]


def _target_and_grad(model, x, target, named=None, layer_value=None, *, create_graph=False):
    """``(f, df/dz)`` with ``z`` the inputs, or the output of the module ``named`` replaced by ``layer_value``."""
    from topo_mi.activations._hooks import _recording

    n = x.shape[0]
    if named is None:
        z = x.detach().requires_grad_(True)
        with torch.enable_grad():
            f = select_target(model(z), target, n)
            (g,) = torch.autograd.grad(f.sum(), z, create_graph=create_graph)
        return f.detach(), g
    z = layer_value.detach().requires_grad_(True)

    def replace(name, output):
        if tuple(output.shape) != tuple(z.shape):
            fail("layer", f"an output of shape {tuple(z.shape)}", f"{tuple(output.shape)} at {name!r}", raw=True)
        return z

    with torch.enable_grad(), _recording([named], replace):
        f = select_target(model(x.detach()), target, n)
        if not f.requires_grad:
            fail("target", f"a function of the output of layer {named[0]!r}", "one that does not depend on it")
        (g,) = torch.autograd.grad(f.sum(), z, create_graph=create_graph)
    return f.detach(), g


def _prepare(model, inputs, layer, batch_size):
    if not isinstance(model, torch.nn.Module) and not callable(model):
        fail("model", "a torch module or a callable on a batch of inputs", model)
    raw = inputs.detach() if isinstance(inputs, torch.Tensor) else None
    if raw is not None and not raw.is_floating_point() and not raw.is_complex() and raw.dtype != torch.bool:
        # token ids: no gradient at the input; attributions go to a layer (e.g. the embedding)
        if layer is None:
            fail("layer", "a module name for integer inputs (token ids have no gradient; attribute to a layer "
                          "such as the embedding)", None)
        x = raw
    else:
        x = as_tensor(inputs, "inputs", dtype=model_dtype(model))
    if x.ndim < 1 or x.shape[0] < 1:
        fail("inputs", "a batch of at least one sample (first axis: samples)", f"shape {tuple(x.shape)}", raw=True)
    named = None
    if layer is not None:
        if not isinstance(model, torch.nn.Module):
            fail("model", "a torch module when layer is given", type(model).__name__, raw=True)
        named = _resolve_layer(model, layer)
    batch_size = check_int("batch_size", batch_size, min_value=1)
    return x, named, batch_size


def _chunks(n: int, size: int):
    for s in range(0, n, size):
        yield slice(s, min(n, s + size))


def _eval(model):
    import contextlib

    from topo_mi.activations._hooks import _eval_mode

    return _eval_mode(model) if isinstance(model, torch.nn.Module) else contextlib.nullcontext()


def _target_text(target) -> str:
    if target is None:
        return "output"
    if callable(target):
        return getattr(target, "__name__", type(target).__name__)
    if isinstance(target, (int, np.integer)):
        return f"output[{int(target)}]"
    return "output[per-sample index]"


def _gradients(model, x, target, named, batch_size, *, layer_values=None):
    """Per-sample ``f`` and gradients, chunk by chunk (``layer_values``: replacement layer outputs)."""
    fs, gs = [], []
    for sl in _chunks(x.shape[0], batch_size):
        lv = None if layer_values is None else layer_values[sl]
        f, g = _target_and_grad(model, x[sl], take_target(target, sl), named, lv)
        fs.append(f)
        gs.append(g)
    return torch.cat(fs), torch.cat(gs)


def _make(method, attr, f, *, layer, target, f0=None, delta=None, rule="", steps=0, n_segments=None):
    nan = np.full(attr.shape[0], np.nan)
    return AttributionResult(
        method=method, attributions=attr.detach().cpu().numpy(), f_inputs=f.detach().cpu().numpy(),
        f_baseline=nan if f0 is None else f0.detach().cpu().numpy(),
        delta=nan if delta is None else delta.detach().cpu().numpy(), rule=rule, steps=int(steps),
        n_segments=np.zeros(0, dtype=np.int64) if n_segments is None else np.asarray(n_segments),
        layer=layer or "", target=_target_text(target))


# ---------------------------------------------------------------------------------------------
# public attributions
# ---------------------------------------------------------------------------------------------
def saliency(model: Any, inputs: Any, *, target: Any = None, layer: str | None = None, absolute: bool = False,
             batch_size: int = 1024) -> AttributionResult:
    """Gradient of the target scalar with respect to the inputs or a layer's units.

    Simonyan, Vedaldi & Zisserman, "Deep inside convolutional networks", ICLR workshop 2014.

    Parameters
    ----------
    model : nn.Module or callable
        Maps a batch ``(n, ...)`` to outputs ``(n, ...)``; run in eval mode (flags restored after).
    inputs : tensor or array of shape (n, ...)
        Converted to the model's dtype.
    target : int, sequence of int, callable or None
        The scalar per sample: an index into the output's last (flattened) dimension, one index per
        sample, a callable ``output -> (n,)`` tensor, or None when the output is already one scalar
        per sample (``(n,)`` or ``(n, 1)``).
    layer : str, optional
        A module name: attribute to the units of its output instead of the inputs.
    absolute : bool, default False
        Return ``|gradient|`` (the original saliency map) instead of the signed gradient.
    batch_size : int, default 1024
        Samples per forward/backward pass.

    Returns
    -------
    AttributionResult
        ``attributions`` of shape ``(n, *inputs.shape[1:])`` or ``(n, *layer_output.shape[1:])``.
    """
    x, named, batch_size = _prepare(model, inputs, layer, batch_size)
    with _eval(model):
        lv = None if named is None else _layer_output(model, x, named)
        f, g = _gradients(model, x, target, named, batch_size, layer_values=lv)
    return _make("saliency", g.abs() if absolute else g, f, layer=layer, target=target)


def input_x_gradient(model: Any, inputs: Any, *, target: Any = None, layer: str | None = None,
                     batch_size: int = 1024) -> AttributionResult:
    """``z * df/dz`` with ``z`` the inputs or the layer's output (Shrikumar et al. 2016).

    For a model linear in ``z`` without offset this is exactly the decomposition of ``f``;
    parameters as in :func:`saliency`.
    """
    x, named, batch_size = _prepare(model, inputs, layer, batch_size)
    with _eval(model):
        z = x if named is None else _layer_output(model, x, named)
        f, g = _gradients(model, x, target, named, batch_size, layer_values=None if named is None else z)
    return _make("input_x_gradient", z * g, f, layer=layer, target=target)


def smoothgrad(model: Any, inputs: Any, *, target: Any = None, layer: str | None = None, n_samples: int = 50,
               noise: float = 0.15, squared: bool = False, seed: int = 0,
               batch_size: int = 1024) -> AttributionResult:
    """SmoothGrad: the gradient averaged over noisy copies of each input (Smilkov et al. 2017).

    Noise ``N(0, sigma^2)`` is added to the *inputs* with ``sigma = noise * (max(x) - min(x))`` per
    sample; with ``layer`` the gradients are taken at that layer's units of the noisy inputs.
    ``squared=True`` averages squared gradients (SmoothGrad-squared). ``steps`` of the result holds
    ``n_samples``; ``f_inputs`` is ``f`` at the clean inputs.
    """
    x, named, batch_size = _prepare(model, inputs, layer, batch_size)
    if not x.is_floating_point():
        fail("inputs", "floating inputs for smoothgrad (noise is added to the inputs)", f"dtype {x.dtype}", raw=True)
    n_samples = check_int("n_samples", n_samples, min_value=1)
    noise = check_float("noise", noise, min_value=0.0)
    rng = check_random_state(seed)
    n = x.shape[0]
    flat = x.reshape(n, -1)
    sigma = (noise * (flat.max(dim=1).values - flat.min(dim=1).values)).reshape((n,) + (1,) * (x.ndim - 1))
    acc = None
    with _eval(model):
        f0, _ = _gradients(model, x, target, None, batch_size) if named is None else (
            _gradients(model, x, target, named, batch_size, layer_values=_layer_output(model, x, named))[0], None)
        per = max(1, batch_size // n) if n <= batch_size else 1
        for s in range(0, n_samples, per):
            m = min(per, n_samples - s)
            eps = torch.as_tensor(rng.standard_normal((m,) + tuple(x.shape)), dtype=x.dtype)
            xs = (x[None] + eps * sigma[None]).reshape((m * n,) + tuple(x.shape[1:]))
            tgt = _repeat_target(target, m)
            lv = None if named is None else _layer_output(model, xs, named)
            _, g = _gradients(model, xs, tgt, named, batch_size, layer_values=lv)
            g = g.reshape((m, n) + tuple(g.shape[1:]))
            g = (g * g if squared else g).sum(0)
            acc = g if acc is None else acc + g
    return _make("smoothgrad", acc / n_samples, f0, layer=layer, target=target, steps=n_samples)


def _repeat_target(target, m):
    if target is None or callable(target) or isinstance(target, (int, np.integer)):
        return target
    return as_tensor(target, "target", floating=False).repeat(m)


def _check_baseline(baseline, x, name="baseline"):
    if baseline is None:
        return torch.zeros_like(x)
    if not x.is_floating_point():  # token ids: a baseline sequence of ids
        b = as_tensor(baseline, name, floating=False)
        if b.is_floating_point():
            fail(name, "integer token ids for integer inputs", f"dtype {b.dtype}", raw=True)
        b = b.to(x.dtype)
        if tuple(b.shape) == tuple(x.shape):
            return b
        if tuple(b.shape) == tuple(x.shape[1:]) or b.ndim == 0:
            return b.expand_as(x).clone()
        fail(name, f"None, one id sequence of shape {tuple(x.shape[1:])} or one per sample {tuple(x.shape)}",
             f"shape {tuple(b.shape)}", raw=True)
    if isinstance(baseline, (int, float)) and not isinstance(baseline, bool):
        return torch.full_like(x, float(baseline))
    b = as_tensor(baseline, name, dtype=x.dtype)
    if tuple(b.shape) == tuple(x.shape):
        return b
    if tuple(b.shape) == tuple(x.shape[1:]):
        return b.expand_as(x).clone()
    fail(name, f"None, a number, one sample of shape {tuple(x.shape[1:])} or one per sample {tuple(x.shape)}",
         f"shape {tuple(b.shape)}", raw=True)


def integrated_gradients(model: Any, inputs: Any, *, target: Any = None, baseline: Any = None,
                         layer: str | None = None, steps: int = 50, rule: str = "gauss_legendre",
                         panels: int = 1, batch_size: int = 1024, max_segments: int = 100_000,
                         tol: float = 1e-12) -> AttributionResult:
    r"""Integrated gradients with a per-sample completeness check.

    ``IG(x) = (z - z') * sum_k w_k grad f(z' + a_k (z - z'))`` where ``z`` is the input (or the
    output of ``layer`` at the input) and ``z'`` the same at the baseline; ``(a_k, w_k)`` are the
    nodes and weights of ``rule`` (:func:`quadrature`). The result's ``delta`` is the completeness
    error ``|sum(IG) - (f(x) - f(x'))|`` per sample: zero up to rounding for an exact rule, the
    quadrature error otherwise.

    Parameters
    ----------
    model, inputs, target, layer, batch_size
        As in :func:`saliency`; ``batch_size`` counts path points per forward pass.
    baseline : None, number, or tensor
        ``x'`` in input space: zeros (None), a constant, one sample (broadcast) or one per sample.
        With ``layer`` the path runs between the layer's outputs at the baseline and at the input.
    steps : int, default 50
        Quadrature nodes (>= 2) per panel.
    panels : int, default 1
        Split the path into this many equal panels with ``steps`` nodes each (a composite rule:
        many nodes without the cost of one huge Gauss rule, and better suited to the kinks of
        ReLU networks).
    rule : str, default "gauss_legendre"
        ``"gauss_legendre"``, ``"trapezoid"``, ``"riemann_left"``, ``"riemann_right"``,
        ``"riemann_middle"``, or ``"exact"``: the exact path integral of a piecewise-linear network
        (an ``nn.Sequential`` of ``Linear``, ``ReLU``, ``LeakyReLU``, ``Flatten``, ``Identity`` and
        ``Dropout`` modules such as ``topo_mi.models.MLP``; input attributions and index targets
        only). The path is cut where pre-activations change sign and each linear piece is
        integrated exactly; ``n_segments`` counts the pieces. It runs on float64 copies of the
        layers whatever the model's dtype (attributions, ``f`` and ``delta`` in float64).
    max_segments : int, default 100000
        The exact rule: the most linear pieces followed per sample before giving up.
    tol : float, default 1e-12
        The exact rule: the region after a breakpoint is read at ``a + tol`` along the path
        (units within ``tol`` of a sign change are resolved by their direction of travel).

    Returns
    -------
    AttributionResult
    """
    rule = check_choice("rule", rule, RULES)
    x, named, batch_size = _prepare(model, inputs, layer, batch_size)
    x0 = _check_baseline(baseline, x)
    n = x.shape[0]
    if rule == "exact":
        if named is not None:
            fail("layer", "None with rule='exact' (the exact path attributes to the inputs)", layer)
        if target is not None and callable(target):
            fail("target", "an output index or one index per sample with rule='exact' (a callable target "
                           "need not be linear in the output)", target)
        with _eval(model):
            attr, f, f0, nseg = _exact_relu_path(model, x, x0, target, max_segments=check_int(
                "max_segments", max_segments, min_value=1), tol=check_float("tol", tol, min_value=0.0))
        delta = (attr.reshape(n, -1).sum(1) - (f - f0)).abs()
        return _make("integrated_gradients", attr, f, layer=layer, target=target, f0=f0, delta=delta,
                     rule="exact", steps=0, n_segments=nseg)
    nodes, weights = quadrature(rule, steps, panels)
    with _eval(model):
        if named is None:
            z, z0 = x, x0
        else:
            z, z0 = _layer_output(model, x, named), _layer_output(model, x0, named)
        f, _ = _gradients(model, x, target, named, batch_size, layer_values=None if named is None else z)
        f0, _ = _gradients(model, x0, target, named, batch_size, layer_values=None if named is None else z0)
        diff = z - z0
        acc = torch.zeros_like(z)
        per = max(1, batch_size // n)  # nodes per pass
        for s in range(0, len(nodes), per):
            a = torch.as_tensor(nodes[s:s + per], dtype=z.dtype)
            w = torch.as_tensor(weights[s:s + per], dtype=z.dtype)
            m = a.shape[0]
            shape = (m,) + (1,) * z.ndim
            pts = (z0[None] + a.reshape(shape) * diff[None]).reshape((m * n,) + tuple(z.shape[1:]))
            xs = x.repeat((m,) + (1,) * (x.ndim - 1)) if named is not None else pts
            _, g = _gradients(model, xs, _repeat_target(target, m), named, batch_size,
                              layer_values=pts if named is not None else None)
            acc = acc + (w.reshape(shape) * g.reshape((m,) + tuple(z.shape))).sum(0)
    attr = diff * acc
    delta = (attr.reshape(n, -1).sum(1) - (f - f0)).abs()
    return _make("integrated_gradients", attr, f, layer=layer, target=target, f0=f0, delta=delta, rule=rule,
                 steps=len(nodes))


# ---------------------------------------------------------------------------------------------
# the exact path through the activation regions of a piecewise-linear network
# ---------------------------------------------------------------------------------------------
def _piecewise_linear_layers(model) -> list:
    nn = torch.nn
    ok = (nn.Linear, nn.ReLU, nn.LeakyReLU, nn.Flatten, nn.Identity, nn.Dropout)
    if not isinstance(model, nn.Sequential):
        fail("model", "an nn.Sequential of Linear/ReLU/LeakyReLU/Flatten/Identity/Dropout modules for "
                      "rule='exact'", type(model).__name__, raw=True)
    layers = []
    for name, m in model.named_children():
        if isinstance(m, nn.Sequential):
            layers.extend(_piecewise_linear_layers(m))
        elif isinstance(m, ok):
            layers.append(m)
        else:
            fail("model", "a piecewise-linear network for rule='exact' (Linear, ReLU, LeakyReLU, Flatten, "
                          "Identity, Dropout)", f"module {name!r} of type {type(m).__name__}", raw=True)
    return layers


def _pl_forward(layers, x, d, masks=None, tol=0.0):
    """Forward value and directional derivative; ``masks`` fixes the activation pattern.

    Without ``masks`` the pattern is that of the point ``x + tol d`` read layer by layer (each
    unit is active when ``z + tol dz > 0``). Returns ``(out, dout, masks, zs, dzs)``.
    """
    nn = torch.nn
    h, dh = x, d
    new, zs, dzs = [], [], []
    i = 0
    for m in layers:
        if isinstance(m, nn.Linear):
            h = m(h)
            dh = torch.nn.functional.linear(dh, m.weight)
        elif isinstance(m, nn.Flatten):
            h, dh = m(h), m(dh)
        elif isinstance(m, (nn.ReLU, nn.LeakyReLU)):
            slope = float(m.negative_slope) if isinstance(m, nn.LeakyReLU) else 0.0
            mask = masks[i] if masks is not None else (h + tol * dh) > 0
            zs.append(h)
            dzs.append(dh)
            new.append(mask)
            h = torch.where(mask, h, slope * h)
            dh = torch.where(mask, dh, slope * dh)
            i += 1
    return h, dh, new, zs, dzs


def _exact_relu_path(model, x, x0, target, *, max_segments, tol):
    import copy

    # float64 copies of the layers: in float32 the rounding of pre-activations near a breakpoint
    # (about 1e-7 relative) would assign wrong regions to whole segments
    layers = [copy.deepcopy(m).to(torch.float64) for m in _piecewise_linear_layers(model)]
    net = torch.nn.Sequential(*layers)
    x, x0 = x.to(torch.float64), x0.to(torch.float64)
    n = x.shape[0]
    d = x - x0
    with torch.no_grad():
        f = select_target(net(x), target, n)
        f0 = select_target(net(x0), target, n)
    acc = torch.zeros_like(x)
    a = torch.zeros(n, dtype=x.dtype)
    nseg = np.zeros(n, dtype=np.int64)
    active = torch.ones(n, dtype=torch.bool)
    view = (-1,) + (1,) * (x.ndim - 1)
    it = 0
    while bool(active.any()):
        it += 1
        idx = torch.nonzero(active)[:, 0]
        ai = a[idx]
        pt = x0[idx] + ai.reshape(view) * d[idx]
        with torch.no_grad():
            _, _, masks, zs, dzs = _pl_forward(layers, pt, d[idx], tol=tol)
        nxt = torch.ones_like(ai)
        for mk, z, dz in zip(masks, zs, dzs):
            z, dz, mk = z.reshape(len(idx), -1), dz.reshape(len(idx), -1), mk.reshape(len(idx), -1)
            crossing = (mk & (dz < 0)) | (~mk & (dz > 0))
            with np.errstate(divide="ignore", invalid="ignore"):
                t = torch.where(crossing, ai[:, None] - z / torch.where(dz == 0, torch.ones_like(dz), dz),
                                torch.full_like(z, math.inf))
            t = torch.where(t > ai[:, None] + tol, t, torch.full_like(t, math.inf))
            if t.shape[1]:
                nxt = torch.minimum(nxt, t.min(dim=1).values)
        nxt = torch.clamp(nxt, max=1.0)
        # the gradient of the linear piece: autograd through the network with the pattern fixed
        p = pt.detach().requires_grad_(True)
        with torch.enable_grad():
            out, _, _, _, _ = _pl_forward(layers, p, torch.zeros_like(p), masks=masks)
            val = select_target(out, take_target(target, idx), len(idx))
            (g,) = torch.autograd.grad(val.sum(), p)
        acc[idx] += (nxt - ai).reshape(view) * g
        a[idx] = nxt
        nseg[idx.numpy()] += 1
        done = nxt >= 1.0
        active[idx[done]] = False
        if nseg.max() > max_segments and bool(active.any()):
            raise InvalidParameterError(
                f"max_segments: expected at most {max_segments} linear pieces per path to suffice, got more "
                "(raise max_segments)")
    return d * acc, f, f0, nseg


__all__ = ["saliency", "input_x_gradient", "smoothgrad", "integrated_gradients", "quadrature", "RULES"]
