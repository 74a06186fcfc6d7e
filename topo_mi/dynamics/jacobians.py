r"""Layer Jacobians, their products and finite-time Lyapunov exponents with depth as time.

A deep network is a non-autonomous map ``h_{l+1} = F_l(h_l)``; its end-to-end Jacobian at an
input is the product ``P(x) = J_{L-1} ... J_0`` of the layer Jacobians ``J_l = dF_l/dh_l``. The
finite-time Lyapunov exponents ``(1/L) ln sigma_i(P)`` say how fast the network separates nearby
inputs per layer (Poole et al., "Exponential expressivity in deep neural networks through
transient chaos", NeurIPS 2016; Pennington, Schoenholz & Ganguli, "Resurrecting the sigmoid in
deep learning through dynamical isometry", NeurIPS 2017; Storm, Linander, Bec, Gustavsson &
Mehlig, "Finite-time Lyapunov exponents of deep neural networks", PRL 132, 2024).

See :mod:`topo_mi.dynamics` for the ``layers`` contract.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import nn
from torch.func import jacfwd, jacrev, jvp, vjp, vmap

from topo_mi._validation import check_int, fail, unknown_name
from topo_mi.dynamics._common import as_state, module_dtype, numel, randomness_guard, threads_for
from topo_mi.dynamics._results import FTLEResult, JacobianProduct, LayerJacobians
from topo_mi.errors import ResourceError

#: Default memory budget for materialised Jacobians (bytes).
DEFAULT_MAX_BYTES = 2 * 1024**3
# Working-set target of one vmapped chunk.
_CHUNK_BYTES = 256 * 1024**2


def _identity(x):
    return x


@dataclass
class LayerMaps:
    """The maps ``h_l -> h_{l+1}`` of a model: ``prefix(inputs) = h_0``, ``maps[l](h_l) = h_{l+1}``."""

    prefix: Callable
    maps: list
    names: list

    @property
    def map_names(self) -> list:
        return [f"{a}->{b}" for a, b in zip(self.names[:-1], self.names[1:])]

    def composed(self) -> Callable:
        maps = list(self.maps)

        def F(h):
            for m in maps:
                h = m(h)
            return h

        return F


def _chain(model) -> list | None:
    """``[(name, module)]`` when the model is a chain of modules (see the package docstring)."""
    if isinstance(model, nn.Sequential):
        return list(model.named_children())
    blocks = getattr(model, "blocks", None)
    if isinstance(model, nn.Module) and isinstance(blocks, (nn.ModuleList, nn.Sequential)) \
            and isinstance(getattr(model, "embed", None), nn.Module):
        chain = [("embed", model.embed)] + [(f"blocks.{i}", b) for i, b in enumerate(blocks)]
        if isinstance(getattr(model, "out", None), nn.Module):
            chain.append(("out", model.out))
        return chain
    return None


def _seq(mods: list) -> Callable:
    return mods[0] if len(mods) == 1 else nn.Sequential(*mods)


def layer_maps(model: Any, layers: Sequence | None = None) -> LayerMaps:
    """Resolve ``layers`` into the maps between consecutive states (the ``layers`` contract).

    Parameters
    ----------
    model : nn.Module, callable or None
        A chain model (``nn.Sequential``, or ``embed``/``blocks``/``out``), or with callable
        ``layers`` a callable giving ``h_0`` (``None``: the inputs are ``h_0``).
    layers : sequence of str or of callables, optional
        State names (children of the chain, ``"input"`` allowed first) or the maps themselves.

    Returns
    -------
    LayerMaps
    """
    if layers is not None and (isinstance(layers, (str, bytes)) or not hasattr(layers, "__iter__")):
        fail("layers", "a list of layer names or of callables", layers)
    layers = None if layers is None else list(layers)
    if layers is not None and layers and all(callable(m) and not isinstance(m, str) for m in layers):
        prefix = _identity if model is None else model
        if not callable(prefix):
            fail("model", "None or a callable giving h_0 from the inputs when layers are callables", model)
        names = [f"h{i}" for i in range(len(layers) + 1)]
        return LayerMaps(prefix, layers, names)
    chain = _chain(model)
    if chain is None:
        fail("layers", f"a list of callables (the maps h_l -> h_(l+1)) for a model of type "
                       f"{type(model).__name__}, which is not a chain of modules (nn.Sequential, or "
                       "embed/blocks/out)", layers)
    chain_names = [n for n, _ in chain]
    if layers is None:
        hidden = getattr(model, "hidden_names", None)
        if isinstance(model, nn.Sequential) and hidden and len(hidden) >= 2:
            layers = list(hidden)
        elif not isinstance(model, nn.Sequential):
            layers = [n for n in chain_names if n != "out"]
        else:
            layers = ["input", *chain_names]
    if not all(isinstance(n, str) for n in layers):
        fail("layers", "all names (str) or all callables", layers)
    if len(layers) < 2:
        fail("layers", "at least two states (one map between them)", layers)
    pos = []
    for i, name in enumerate(layers):
        if name == "input" and i == 0:
            pos.append(-1)
            continue
        if name not in chain_names:
            raise unknown_name("layer", name, ["input", *chain_names])
        pos.append(chain_names.index(name))
    if any(b <= a for a, b in zip(pos[:-1], pos[1:])):
        fail("layers", f"names in the order the model applies them ({', '.join(chain_names)})", layers)
    mods = [m for _, m in chain]
    prefix = _identity if pos[0] == -1 else _seq(mods[: pos[0] + 1])
    maps = [_seq(mods[a + 1: b + 1]) for a, b in zip(pos[:-1], pos[1:])]
    return LayerMaps(prefix, maps, list(layers))


def _prepare(model, inputs, layers):
    lm = layer_maps(model, layers)
    dtype = module_dtype(model, lm.maps)
    if isinstance(inputs, torch.Tensor) and not inputs.is_floating_point():
        x = inputs  # token ids and the like go to the prefix unchanged
    else:
        x = as_state(inputs, "inputs", dtype=dtype)
    if x.ndim < 1 or x.shape[0] < 1:
        fail("inputs", "a batch of inputs with a leading sample axis", f"shape {tuple(x.shape)}", raw=True)
    with torch.no_grad():
        h = lm.prefix(x)
        states = [h]
        for m in lm.maps:
            h = m(h)
            states.append(h)
    for name, s in zip(lm.names, states):
        if not isinstance(s, torch.Tensor) or s.ndim < 1 or s.shape[0] != x.shape[0]:
            fail("layers", f"maps returning one state per input (leading axis {x.shape[0]})",
                 f"{name!r} with {type(s).__name__} of shape {tuple(getattr(s, 'shape', ()))}", raw=True)
        if not s.is_floating_point():
            fail("layers", "floating-point states", f"{name!r} of dtype {s.dtype}", raw=True)
    return lm, states


def _flat(fn: Callable, shape_in: tuple) -> Callable:
    def g(v):
        return fn(v.reshape(shape_in)).reshape(-1)

    return g


def _chunks(n: int, per_item_bytes: float, batch_size: int | None):
    if batch_size is None:
        batch_size = max(1, int(_CHUNK_BYTES // max(per_item_bytes, 1.0)))
    for a in range(0, n, batch_size):
        yield slice(a, min(n, a + batch_size))


def _layer_jacobian(fn: Callable, h: torch.Tensor, batch_size: int | None) -> torch.Tensor:
    """``(n, d_out, d_in)`` Jacobians of ``fn`` at each row of ``h`` (per-sample shapes flattened)."""
    shape_in = tuple(h.shape[1:])
    d_in = numel(shape_in)
    hf = h.reshape(h.shape[0], d_in)
    g = _flat(fn, shape_in)
    with torch.no_grad():
        d_out = numel(tuple(fn(h[:1]).shape[1:]))
    transform = jacrev if d_out <= d_in else jacfwd
    out = []
    try:
        for sl in _chunks(h.shape[0], 3.0 * d_out * d_in * hf.element_size(), batch_size):
            out.append(vmap(transform(g))(hf[sl]).detach().to(hf.dtype))
    except RuntimeError as exc:
        raise randomness_guard(exc, "layers") from exc
    return torch.cat(out, dim=0)


def _resource_check(n: int, shapes: list, names: list, max_bytes: int, what: str) -> None:
    sizes = [n * a * b * 8 for a, b in shapes]
    total = sum(sizes)
    if total > max_bytes:
        i = int(np.argmax(sizes))
        a, b = shapes[i]
        raise ResourceError(
            f"{what}: the Jacobians need n x d_out x d_in x 8 bytes = {total / 1024**3:.2f} GiB in all "
            f"(largest: map {names[i]!r}, {n} x {a} x {b} x 8 = {sizes[i] / 1024**3:.2f} GiB), over "
            f"max_bytes = {max_bytes / 1024**3:.2f} GiB. Pass fewer inputs, fewer layers, or use "
            "finite_time_lyapunov(..., k=...) / jacobian_product(..., k=...), which push k directions "
            "with Jacobian-vector products and never form the Jacobians (or raise max_bytes)")


def layer_jacobians(model: Any, inputs: Any, *, layers: Sequence | None = None,
                    max_bytes: int = DEFAULT_MAX_BYTES, batch_size: int | None = None) -> LayerJacobians:
    """Per-input Jacobians ``d h_{l+1} / d h_l`` of each layer map.

    Parameters
    ----------
    model : nn.Module, callable or None
        See :func:`layer_maps` and the ``layers`` contract in :mod:`topo_mi.dynamics`.
    inputs : tensor or array of shape (n_inputs, ...)
        Model inputs (converted to the model's dtype), or ``h_0`` with callable ``layers`` and
        ``model=None``.
    layers : sequence of str or callables, optional
        States ``h_0..h_L`` by module name, or the maps.
    max_bytes : int, default 2 GiB
        The Jacobians take ``n x d_out x d_in x 8`` bytes (float64) per map; the total is checked
        against this before anything is allocated.
    batch_size : int, optional
        Inputs per vmapped chunk (default: about 256 MiB of working memory per chunk).

    Returns
    -------
    LayerJacobians
        ``jacobians[l]`` of shape ``(n_inputs, d_{l+1}, d_l)`` (float64).

    Raises
    ------
    ResourceError
        The Jacobians would exceed ``max_bytes`` (the message says what to change).

    Notes
    -----
    Computed with ``torch.func.vmap`` over inputs of ``jacrev`` (reverse mode, ``d_out``
    passes) or ``jacfwd`` (forward mode) when ``d_in < d_out``, in the model's dtype.
    """
    max_bytes = check_int("max_bytes", max_bytes, min_value=1)
    if batch_size is not None:
        batch_size = check_int("batch_size", batch_size, min_value=1)
    lm, states = _prepare(model, inputs, layers)
    n = states[0].shape[0]
    shapes = [(numel(tuple(b.shape[1:])), numel(tuple(a.shape[1:]))) for a, b in zip(states[:-1], states[1:])]
    _resource_check(n, shapes, lm.map_names, max_bytes, "layer_jacobians")
    with threads_for(n * sum(a * b for a, b in shapes)):
        jacs = [_layer_jacobian(m, h, batch_size).to(torch.float64).cpu().numpy()
                for m, h in zip(lm.maps, states[:-1])]
    return LayerJacobians(layers=list(lm.names), maps=lm.map_names, jacobians=jacs, n_inputs=int(n))


# --- randomized top-k singular values with JVPs and VJPs -----------------------------------------
def _orth(Y: torch.Tensor) -> torch.Tensor:
    """Rows of ``Y`` (p, d) -> orthonormal rows spanning them."""
    return torch.linalg.qr(Y.T).Q.T


def _top_singular_values(fn: Callable, h: torch.Tensor, k: int, *, n_iter: int, seed: int,
                         batch_size: int | None) -> torch.Tensor:
    """Top-``k`` singular values of ``d fn / d h`` at each row of ``h``: ``(n, k)``.

    Randomized subspace iteration (Halko, Martinsson & Tropp, SIAM Review 53, 2011) where the
    matrix is only touched through JVPs ``P v`` and VJPs ``P^T u`` of ``fn``.
    """
    shape_in = tuple(h.shape[1:])
    d_in = numel(shape_in)
    with torch.no_grad():
        d_out = numel(tuple(fn(h[:1]).shape[1:]))
    g = _flat(fn, shape_in)
    r = min(d_in, d_out)
    p = min(r, k + max(10, k))  # oversampling: accuracy of the k-th value depends on sigma_k / sigma_(p+1)
    hf = h.reshape(h.shape[0], d_in)
    gen = torch.Generator().manual_seed(check_int("seed", seed, min_value=0))
    omega = torch.randn((h.shape[0], p, d_in), generator=gen, dtype=torch.float64).to(hf.dtype)

    def single(x, om):
        def Pv(v):
            return jvp(g, (x,), (v,))[1].to(x.dtype)  # forward mode may promote 0-d intermediates

        _, pull = vjp(g, x)

        def PTu(u):
            return pull(u)[0]

        Y = vmap(Pv)(om)                     # (p, d_out)
        for _ in range(n_iter):
            Z = vmap(PTu)(_orth(Y))          # (p, d_in)
            Y = vmap(Pv)(_orth(Z))
        B = vmap(PTu)(_orth(Y))              # rows of Q^T P
        return torch.linalg.svdvals(B)[:k]

    out = []
    try:
        for sl in _chunks(h.shape[0], 8.0 * p * (d_in + d_out) * hf.element_size(), batch_size):
            out.append(vmap(single)(hf[sl], omega[sl]).detach())
    except RuntimeError as exc:
        raise randomness_guard(exc, "layers") from exc
    return torch.cat(out, dim=0)


def _check_k(k, r: int):
    if k is None:
        return None
    k = check_int("k", k, min_value=1)
    return min(k, r)


def jacobian_product(model: Any, inputs: Any, *, layers: Sequence | None = None, k: int | None = None,
                     n_iter: int = 4, seed: int = 0, keep_products: bool = False,
                     max_bytes: int = DEFAULT_MAX_BYTES, batch_size: int | None = None) -> JacobianProduct:
    """The end-to-end Jacobian ``P = J_{L-1} ... J_0`` at each input, with its singular values.

    Parameters
    ----------
    model, inputs, layers
        As in :func:`layer_jacobians`.
    k : int, optional
        ``None``: form the layer Jacobians (memory-checked), multiply them in float64 and take
        every singular value. An integer: only the top ``k``, by randomized subspace iteration
        with JVPs and VJPs of the composed map (no Jacobian is formed).
    n_iter : int, default 4
        Power iterations of the randomized method.
    seed : int, default 0
        Seeds the random start of the randomized method.
    keep_products : bool, default False
        Keep the ``(n, d_L, d_0)`` products in the result (``k=None`` only).
    max_bytes, batch_size
        As in :func:`layer_jacobians`.

    Returns
    -------
    JacobianProduct
        ``singular_values`` of shape ``(n_inputs, r)``, descending.

    Notes
    -----
    The full product is exact to float64 rounding: singular values below about
    ``1e-16 sigma_max`` are not resolved (use ``k`` for the top of a very deep product).
    """
    n_iter = check_int("n_iter", n_iter, min_value=0)
    seed = check_int("seed", seed, min_value=0)
    max_bytes = check_int("max_bytes", max_bytes, min_value=1)
    lm, states = _prepare(model, inputs, layers)
    n = states[0].shape[0]
    d0, dL = numel(tuple(states[0].shape[1:])), numel(tuple(states[-1].shape[1:]))
    k = _check_k(k, min(d0, dL))
    widths = [numel(tuple(s_.shape[1:])) for s_ in states]
    if k is not None:
        with threads_for(n * max(widths) * (2 * k + 10) * len(lm.maps)):
            s = _top_singular_values(lm.composed(), states[0], k, n_iter=n_iter, seed=seed, batch_size=batch_size)
        return JacobianProduct(layers=list(lm.names), singular_values=s.to(torch.float64).cpu().numpy(),
                               products=None, method="randomized", depth=len(lm.maps))
    shapes = [(numel(tuple(b.shape[1:])), numel(tuple(a.shape[1:]))) for a, b in zip(states[:-1], states[1:])]
    extra = [(dL, d0)] if keep_products else []
    _resource_check(n, shapes + extra, lm.map_names + (["product"] if keep_products else []), max_bytes,
                    "jacobian_product")
    with threads_for(n * sum(a * b for a, b in shapes)):
        P = _full_product(lm, states, batch_size)
    sv = np.linalg.svd(P, compute_uv=False)
    return JacobianProduct(layers=list(lm.names), singular_values=sv, products=P if keep_products else None,
                           method="full", depth=len(lm.maps))


def _full_product(lm: LayerMaps, states: list, batch_size, layer_svals: list | None = None) -> np.ndarray:
    P = None
    for m, h in zip(lm.maps, states[:-1]):
        J = _layer_jacobian(m, h, batch_size).to(torch.float64).cpu().numpy()
        if layer_svals is not None:
            layer_svals.append(np.linalg.svd(J, compute_uv=False))
        P = J if P is None else np.matmul(J, P)
    return P


def _ftle_chunk(item: dict) -> tuple:
    """One chunk of inputs for :func:`finite_time_lyapunov` (module level: runs in executors)."""
    lm, states, k, n_iter, seed, batch_size = (item[key] for key in
                                               ("lm", "states", "k", "n_iter", "seed", "batch_size"))
    widths = [numel(tuple(s.shape[1:])) for s in states]
    work = states[0].shape[0] * max(widths) * (max(widths) if k is None else 2 * k + 10) * len(lm.maps)
    with threads_for(work):
        return _ftle_chunk_work(lm, states, k, n_iter, seed, batch_size)


def _ftle_chunk_work(lm, states, k, n_iter, seed, batch_size):
    if k is None:
        layer_sv: list = []
        P = _full_product(lm, states, batch_size, layer_sv)
        prod_sv = np.linalg.svd(P, compute_uv=False)
        return prod_sv, layer_sv
    layer_sv = []
    for i, (m, h) in enumerate(zip(lm.maps, states[:-1])):
        r_l = min(numel(tuple(h.shape[1:])), numel(tuple(states[i + 1].shape[1:])))
        s = _top_singular_values(m, h, min(k, r_l), n_iter=n_iter, seed=seed + 1 + i, batch_size=batch_size)
        layer_sv.append(s.to(torch.float64).cpu().numpy())
    d0, dL = numel(tuple(states[0].shape[1:])), numel(tuple(states[-1].shape[1:]))
    s = _top_singular_values(lm.composed(), states[0], min(k, d0, dL), n_iter=n_iter, seed=seed,
                             batch_size=batch_size)
    return s.to(torch.float64).cpu().numpy(), layer_sv


def finite_time_lyapunov(model: Any, inputs: Any, *, layers: Sequence | None = None, k: int | None = None,
                         n_iter: int = 4, seed: int = 0, chunk_size: int = 512, executor: Any = None,
                         progress: bool = False, max_bytes: int = DEFAULT_MAX_BYTES,
                         batch_size: int | None = None) -> FTLEResult:
    r"""Finite-time Lyapunov exponents with depth as time, per input, and per-layer expansion.

    For each input ``x`` with end-to-end Jacobian ``P(x) = J_{L-1} ... J_0``:
    ``lambda_i(x) = (1/L) ln sigma_i(P(x))``. Over a data set this is a distribution (inputs
    near decision boundaries typically expand most). Per layer, ``ln sigma_max(J_l)`` (the largest
    stretching) and the mean ``ln sigma_i(J_l)`` (volume change) say which layers expand or
    contract.

    Parameters
    ----------
    model, inputs, layers
        As in :func:`layer_jacobians`.
    k : int, optional
        ``None``: every singular value from the layer Jacobians (formed chunk by chunk, never
        all at once). An integer: only the top ``k`` of each layer and of the product, by JVPs
        and VJPs (:func:`jacobian_product` with ``k``).
    n_iter, seed
        Randomized method's power iterations and seed.
    chunk_size : int, default 512
        Inputs per unit of work (each chunk's Jacobians must fit in ``max_bytes``).
    executor : optional
        Runs the chunks (``None``: serial; see :func:`topo_mi.parallel.get_executor`).
    progress : bool, default False
    max_bytes, batch_size
        As in :func:`layer_jacobians` (checked per chunk).

    Returns
    -------
    FTLEResult
        ``exponents`` (n_inputs, r), ``layer_singular_values``, ``layer_expansion`` and
        ``layer_log_volume`` (n_inputs, L), numerical ranks.

    Notes
    -----
    Singular values below ``resolution * sigma_max`` (``resolution = 10 eps_64 width``, times
    ``L`` for the product) are at the rounding level of the float64 products and SVDs:
    numerically zero (dead ReLU units give exact zeros). Their exponents are ``-inf``, they are
    left out of ``layer_log_volume``, and ``rank``/``layer_rank`` count the others. The Jacobian
    entries themselves carry the model's precision: in float32 a small ``sigma_i`` of a deep
    product can be perturbed by up to about ``1e-7 L prod_l sigma_max(J_l)`` (Weyl's
    inequality); cast the model to float64 (``model.double()``) when those matter.

    References
    ----------
    Storm et al., "Finite-time Lyapunov exponents of deep neural networks", PRL 132, 2024.
    Poole et al., "Exponential expressivity in deep neural networks through transient chaos", 2016.
    """
    from topo_mi.parallel import get_executor

    n_iter = check_int("n_iter", n_iter, min_value=0)
    seed = check_int("seed", seed, min_value=0)
    chunk_size = check_int("chunk_size", chunk_size, min_value=1)
    max_bytes = check_int("max_bytes", max_bytes, min_value=1)
    lm, states = _prepare(model, inputs, layers)
    n = states[0].shape[0]
    L = len(lm.maps)
    d0, dL = numel(tuple(states[0].shape[1:])), numel(tuple(states[-1].shape[1:]))
    k = _check_k(k, max(numel(tuple(s.shape[1:])) for s in states))
    if k is None:
        shapes = [(numel(tuple(b.shape[1:])), numel(tuple(a.shape[1:]))) for a, b in zip(states[:-1], states[1:])]
        _resource_check(min(n, chunk_size), shapes + [(dL, d0)], lm.map_names + ["product"], max_bytes,
                        "finite_time_lyapunov")
    items = [dict(lm=lm, states=[s[a: a + chunk_size] for s in states], k=k, n_iter=n_iter, seed=seed + a,
                  batch_size=batch_size) for a in range(0, n, chunk_size)]
    parts = get_executor(executor).map(_ftle_chunk, items, desc="ftle", progress=progress)
    prod_sv = np.concatenate([p[0] for p in parts], axis=0)
    layer_sv = [np.concatenate([p[1][i] for p in parts], axis=0) for i in range(L)]
    # Singular values at the rounding level of the float64 product and SVD are numerically zero
    # (dead ReLU units give exact zeros, which the SVD returns as ~1e-16 sigma_max or less).
    width = max(numel(tuple(s.shape[1:])) for s in states)
    resolution = 10.0 * float(np.finfo(np.float64).eps) * width
    with np.errstate(divide="ignore", invalid="ignore"):
        keep = prod_sv > prod_sv[:, :1] * (resolution * max(L, 1))
        exponents = np.where(keep, np.log(prod_sv), -np.inf) / L
        masks = [sv > resolution * sv[:, :1] for sv in layer_sv]
        logs = [np.where(m, np.log(sv), np.nan) for m, sv in zip(masks, layer_sv)]
        expansion = np.stack([np.log(sv[:, 0]) for sv in layer_sv], axis=1) if L else np.zeros((n, 0))
        with warnings.catch_warnings():  # a layer with no non-zero singular value: NaN volume
            warnings.simplefilter("ignore", RuntimeWarning)
            volume = np.stack([np.nanmean(lg, axis=1) for lg in logs], axis=1) if L else np.zeros((n, 0))
    layer_rank = np.stack([m.sum(axis=1) for m in masks], axis=1) if L else np.zeros((n, 0), dtype=np.int64)
    return FTLEResult(layers=list(lm.names), maps=lm.map_names, exponents=exponents, layer_singular_values=layer_sv,
                      layer_expansion=expansion, layer_log_volume=volume, depth=L,
                      method="full" if k is None else "randomized", k=k, rank=keep.sum(axis=1),
                      layer_rank=layer_rank, resolution=resolution)


__all__ = ["layer_jacobians", "jacobian_product", "finite_time_lyapunov", "layer_maps", "LayerMaps",
           "DEFAULT_MAX_BYTES"]
