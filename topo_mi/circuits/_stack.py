"""A model seen as a DAG of layers joined by linear maps (the form every circuit tool works on).

Supported models (recognised by structure, so subclasses and look-alikes work):

- ``nn.Sequential`` of ``nn.Linear`` modules, each followed by at most one elementwise activation
  (``nn.ReLU``, ``nn.Tanh``, ``nn.LeakyReLU``) and any number of ``nn.Identity`` — this covers
  ``topo_mi.models.MLP`` and deep linear networks;
- residual MLP stacks with children ``embed`` (``nn.Linear``), ``blocks`` (each block ``h -> h +
  dt * act(linear(h))`` with attributes ``linear``, ``act``, ``dt``) and ``out`` (``nn.Linear``) —
  ``topo_mi.models.ResidualMLP``;
- the one-layer attention-only transformer (parameters ``W_E, W_pos, W_Q, W_K, W_V, W_O, W_U``),
  which is not a stack of linear maps and is handled by :mod:`topo_mi.circuits.transformer`.

A *layer* is a representation (a vector per sample) named after the module that outputs it
(``"input"`` for the model input); it has a pre-activation ``sum_m M_m @ value[src_m] + bias`` over
its incoming maps and a value ``act(pre)``. Every supported activation has ``act(0) = 0``, so
``act(z) = s(z) * z`` with the *gate* ``s(z) = act(z) / z`` (``act'(0)`` at 0): with the gates
fixed at their values for a sample the network is linear along every path, which makes path
decompositions exact (for ReLU the gates are the activation pattern).
"""
from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from topo_mi._validation import fail
from topo_mi.errors import InvalidParameterError

SUPPORTED = ("an nn.Sequential of nn.Linear layers each followed by an elementwise activation "
             "(nn.ReLU, nn.Tanh, nn.LeakyReLU) or nothing (nn.Identity allowed), e.g. topo_mi.models.MLP; "
             "a residual MLP stack (children embed, blocks with .linear/.act/.dt, out), e.g. "
             "topo_mi.models.ResidualMLP; the one-layer attention-only transformer "
             "(topo_mi.models.AttentionOnlyTransformer)")

ACT_CODES = {"identity": 0, "relu": 1, "tanh": 2, "leaky_relu": 3}


@dataclasses.dataclass
class Layer:
    name: str
    dim: int
    act: str = "identity"          # identity | relu | tanh | leaky_relu
    slope: float = 0.0             # negative slope of leaky_relu
    bias: np.ndarray | None = None  # (dim,) added to the pre-activation
    kind: str = "hidden"           # input | hidden | output


@dataclasses.dataclass
class Map:
    src: int
    dst: int
    weight: np.ndarray             # (dst_dim, src_dim), float64
    kind: str = "linear"           # linear | skip | scale
    module: str = ""               # module providing the weight ("" for structural maps)

    @property
    def support(self) -> np.ndarray:
        """Boolean (dst_dim, src_dim): the entries that are edges (structurally non-zero)."""
        if self.kind == "linear":
            return np.ones(self.weight.shape, dtype=bool)
        return self.weight != 0


@dataclasses.dataclass
class Stack:
    kind: str                      # "sequential" | "mlp" | "residual_mlp"
    layers: list[Layer]
    maps: list[Map]

    @property
    def names(self) -> list[str]:
        return [layer.name for layer in self.layers]

    @property
    def sizes(self) -> list[int]:
        return [layer.dim for layer in self.layers]

    def index(self, name: str) -> int:
        from topo_mi._validation import unknown_name

        for i, layer in enumerate(self.layers):
            if layer.name == name:
                return i
        raise unknown_name("layer", name, self.names)

    def incoming(self, dst: int) -> list[Map]:
        return [m for m in self.maps if m.dst == dst]

    # -- evaluation (torch) ---------------------------------------------------------------------
    def tensors(self, dtype=None, device=None):
        """Weights and biases as torch tensors (cached per dtype)."""
        import torch

        dtype = dtype or torch.float64
        key = (dtype, device)
        cache = self.__dict__.setdefault("_tensor_cache", {})
        if key not in cache:
            W = [torch.as_tensor(m.weight, dtype=dtype, device=device) for m in self.maps]
            b = [None if layer.bias is None else torch.as_tensor(layer.bias, dtype=dtype, device=device)
                 for layer in self.layers]
            cache[key] = (W, b)
        return cache[key]

    def forward(self, x, *, dtype=None, return_pre: bool = False):
        """Every layer's value (and pre-activation) for inputs ``x`` of shape (n, in_dim)."""
        import torch

        W, b = self.tensors(dtype or x.dtype, x.device)
        values = [x]
        pres = [x]
        for li in range(1, len(self.layers)):
            pre = None
            for mi, m in enumerate(self.maps):
                if m.dst == li:
                    term = values[m.src] @ W[mi].T
                    pre = term if pre is None else pre + term
            if b[li] is not None:
                pre = pre + b[li]
            pres.append(pre)
            values.append(apply_act(self.layers[li], pre))
        return (values, pres) if return_pre else values


def apply_act(layer: Layer, z):
    import torch

    if layer.act == "identity":
        return z
    if layer.act == "relu":
        return torch.relu(z)
    if layer.act == "tanh":
        return torch.tanh(z)
    return torch.nn.functional.leaky_relu(z, layer.slope)


def gate(layer: Layer, z):
    """``s(z) = act(z) / z`` (``act'(0)`` where ``z == 0``): ``act(z) = s(z) * z`` exactly."""
    import torch

    if layer.act == "identity":
        return torch.ones_like(z)
    if layer.act == "relu":
        return (z > 0).to(z.dtype)
    if layer.act == "leaky_relu":
        return torch.where(z > 0, torch.ones_like(z), torch.full_like(z, layer.slope))
    safe = torch.where(z == 0, torch.ones_like(z), z)
    return torch.where(z == 0, torch.ones_like(z), torch.tanh(safe) / safe)


# -- recognising models -------------------------------------------------------------------------

def is_transformer(model: Any) -> bool:
    return all(hasattr(model, a) for a in ("W_E", "W_pos", "W_Q", "W_K", "W_V", "W_O", "W_U"))


def _is_residual(model: Any) -> bool:
    return all(hasattr(model, a) for a in ("embed", "blocks", "out")) and all(
        hasattr(b, "linear") and hasattr(b, "act") for b in model.blocks)


def _act_of(module, where: str) -> tuple[str, float]:
    from torch import nn

    if isinstance(module, nn.Identity):
        return "identity", 0.0
    if isinstance(module, nn.ReLU):
        return "relu", 0.0
    if isinstance(module, nn.Tanh):
        return "tanh", 0.0
    if isinstance(module, nn.LeakyReLU):
        return "leaky_relu", float(module.negative_slope)
    raise unsupported(f"a {type(module).__name__} at {where!r}")


def unsupported(what: str) -> InvalidParameterError:
    return InvalidParameterError(f"model: expected {SUPPORTED}; got {what}")


def _np(t) -> np.ndarray:
    return t.detach().cpu().to(dtype=__import__("torch").float64).numpy().copy()


def _linear(module, where: str) -> tuple[np.ndarray, np.ndarray | None]:
    from torch import nn

    if not isinstance(module, nn.Linear):
        raise unsupported(f"a {type(module).__name__} at {where!r} where an nn.Linear was expected")
    return _np(module.weight), (None if module.bias is None else _np(module.bias))


def extract(model: Any) -> Stack:
    """Read a supported model into a :class:`Stack` (weights copied as float64 numpy arrays)."""
    try:
        from torch import nn
    except ImportError as exc:  # pragma: no cover - torch is a core dependency
        raise InvalidParameterError("model: torch is required for circuit analysis") from exc
    if is_transformer(model):
        raise unsupported("the attention-only transformer, which this function does not take "
                          "(use build_graph or topo_mi.circuits.attention_circuits for it)")
    if isinstance(model, nn.Sequential):
        return _extract_sequential(model)
    if isinstance(model, nn.Module) and _is_residual(model):
        return _extract_residual(model)
    if isinstance(model, nn.Module):
        kids = ", ".join(f"{n}: {type(m).__name__}" for n, m in list(model.named_children())[:6])
        raise unsupported(f"a {type(model).__name__} ({kids or 'no children'})")
    fail("model", "a torch.nn.Module", model)


def _extract_sequential(model) -> Stack:
    from torch import nn

    children = list(model.named_children())
    if not children:
        raise unsupported("an empty nn.Sequential")
    groups: list[dict] = []
    for name, module in children:
        if isinstance(module, nn.Linear):
            W, b = _linear(module, name)
            groups.append(dict(name=name, W=W, b=b, act="identity", slope=0.0, module=name))
            continue
        act, slope = _act_of(module, name)
        if not groups:
            if act == "identity":
                continue
            raise unsupported(f"an activation {type(module).__name__} at {name!r} before any nn.Linear")
        g = groups[-1]
        if act != "identity":
            if g["act"] != "identity":
                raise unsupported(f"two activations in a row ({g['name']!r} then {name!r})")
            g["act"], g["slope"] = act, slope
        g["name"] = name  # the representation is the output of the last module of the group
    in_dim = groups[0]["W"].shape[1]
    layers = [Layer("input", in_dim, kind="input")]
    maps = []
    for i, g in enumerate(groups):
        if g["W"].shape[1] != layers[-1].dim:
            raise unsupported(f"an nn.Linear {g['module']!r} with in_features={g['W'].shape[1]} after a "
                              f"layer of width {layers[-1].dim}")
        kind = "output" if i == len(groups) - 1 else "hidden"
        layers.append(Layer(g["name"], g["W"].shape[0], g["act"], g["slope"], g["b"], kind))
        maps.append(Map(i, i + 1, g["W"], "linear", g["module"]))
    kind = "mlp" if type(model).__name__ == "MLP" else "sequential"
    return Stack(kind, layers, maps)


def _extract_residual(model) -> Stack:
    We, be = _linear(model.embed, "embed")
    d = We.shape[0]
    layers = [Layer("input", We.shape[1], kind="input"), Layer("embed", d, bias=be)]
    maps = [Map(0, 1, We, "linear", "embed")]
    for k, block in enumerate(model.blocks):
        W, b = _linear(block.linear, f"blocks.{k}.linear")
        if W.shape != (d, d):
            raise unsupported(f"blocks.{k}.linear of shape {W.shape}; residual blocks need ({d}, {d})")
        act, slope = _act_of(block.act, f"blocks.{k}.act")
        dt = float(getattr(block, "dt", 1.0))
        stream = len(layers) - 1
        layers.append(Layer(f"blocks.{k}.act", d, act, slope, b))
        layers.append(Layer(f"blocks.{k}", d))
        maps.append(Map(stream, stream + 1, W, "linear", f"blocks.{k}.linear"))
        maps.append(Map(stream + 1, stream + 2, dt * np.eye(d), "scale", ""))
        maps.append(Map(stream, stream + 2, np.eye(d), "skip", ""))
    Wo, bo = _linear(model.out, "out")
    if Wo.shape[1] != d:
        raise unsupported(f"an out layer with in_features={Wo.shape[1]} after a residual stream of width {d}")
    layers.append(Layer("out", Wo.shape[0], bias=bo, kind="output"))
    maps.append(Map(len(layers) - 2, len(layers) - 1, Wo, "linear", "out"))
    return Stack("residual_mlp", layers, maps)


def check_matches_model(stack: Stack, model, x, *, atol: float = 1e-4) -> None:
    """Raise when the stack's forward pass differs from ``model(x)`` (e.g. a custom ``forward``)."""
    import torch

    with torch.no_grad():
        ref = model(x.to(next(model.parameters()).dtype)).to(torch.float64)
        ours = stack.forward(x.to(torch.float64))[-1]
    if ref.shape != ours.shape:
        raise unsupported(f"a model whose output shape {tuple(ref.shape)} differs from its layers' "
                          f"composition {tuple(ours.shape)} (custom forward?)")
    err = float((ref - ours).abs().max()) if ref.numel() else 0.0
    scale = max(1.0, float(ref.abs().max())) if ref.numel() else 1.0
    if err > atol * scale:
        raise unsupported(f"a model whose forward differs from the composition of its layers by {err:.3g} "
                          "(a custom forward is not supported)")


def window(stack: Stack, layers) -> list[int]:
    """Resolve ``layers`` (None: all) to a consecutive run of layer indices (at least two)."""
    if layers is None:
        return list(range(len(stack.layers)))
    if isinstance(layers, str) or not hasattr(layers, "__iter__"):
        fail("layers", "a list of layer names", layers)
    idx = sorted({stack.index(name) for name in layers})
    if len(idx) < 2:
        fail("layers", f"at least two layers among {stack.names}", list(layers))
    if idx != list(range(idx[0], idx[-1] + 1)):
        missing = [stack.names[i] for i in range(idx[0], idx[-1] + 1) if i not in idx]
        fail("layers", f"consecutive layers (missing {missing} between them)", list(layers))
    return idx


__all__ = ["Layer", "Map", "Stack", "extract", "is_transformer", "gate", "apply_act", "window",
           "check_matches_model", "unsupported", "SUPPORTED"]
