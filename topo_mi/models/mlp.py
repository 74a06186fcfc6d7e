"""Multi-layer perceptrons: the classifier of Naitzat et al. and a residual (ODE-like) variant."""
from __future__ import annotations

from collections import OrderedDict
from typing import Sequence

import torch
from torch import nn

from topo_mi._validation import check_float, check_int, fail
from topo_mi.models._common import (
    ConfigMixin, check_parameter_budget, check_seed, make_activation, positive_float, positive_int, seeded,
)


def _check_widths(widths) -> list[int]:
    if isinstance(widths, (str, bytes)) or not hasattr(widths, "__iter__"):
        fail("widths", "a sequence of positive integers (hidden layer widths)", widths)
    widths = [w.item() if hasattr(w, "item") else w for w in widths]
    return [positive_int(f"widths[{i}]", w) for i, w in enumerate(widths)]


class MLP(ConfigMixin, nn.Sequential):
    """A fully connected classifier ``fc1, act1, ..., fc{L}, act{L}, out``.

    Hidden layer ``i`` computes ``act_i = activation(fc_i(act_{i-1}))``; ``out`` is a plain linear
    read-out that returns logits (softmax is left to the loss), as in the networks of Naitzat,
    Zhitnikov & Lim, "Topology of deep neural networks", JMLR 21(184), 2020.

    Parameters
    ----------
    in_dim : int
        Input features.
    widths : sequence of int
        Hidden layer widths, one per layer (may be empty: a linear model).
    out_dim : int
        Output features (classes).
    activation : {"relu", "tanh", "leaky_relu"}, default "relu"
    negative_slope : float, default 0.2
        Slope of ``leaky_relu`` for negative inputs (Naitzat et al. use 0.2).
    bias : bool, default True
    seed : int, default 0
        Seeds the initialisation (PyTorch's default ``nn.Linear`` initialisation) through a forked
        RNG: the global torch RNG is left untouched.

    Examples
    --------
    >>> net = MLP(2, [15] * 8, 2, activation="tanh", seed=0)     # doctest: +SKIP
    >>> net.hidden_names[:2], net.linear_names[-1]               # doctest: +SKIP
    (['act1', 'act2'], 'out')
    """

    def __init__(self, in_dim: int, widths: Sequence[int], out_dim: int, *, activation: str = "relu",
                 negative_slope: float = 0.2, bias: bool = True, seed: int = 0):
        in_dim = positive_int("in_dim", in_dim)
        out_dim = positive_int("out_dim", out_dim)
        widths = _check_widths(widths)
        negative_slope = check_float("negative_slope", negative_slope)
        if not isinstance(bias, bool):
            fail("bias", "True or False", bias)
        seed = check_seed(seed)
        make_activation(activation, negative_slope=negative_slope)  # validates the name
        dims_ = [in_dim, *widths, out_dim]
        check_parameter_budget("widths", sum((a + 1) * b for a, b in zip(dims_[:-1], dims_[1:])))
        super().__init__()
        self._config = dict(in_dim=in_dim, widths=widths, out_dim=out_dim, activation=activation,
                            negative_slope=negative_slope, bias=bias, seed=seed)
        dims = [in_dim, *widths]
        with seeded(seed):
            for i in range(1, len(dims)):
                self.add_module(f"fc{i}", nn.Linear(dims[i - 1], dims[i], bias=bias))
                self.add_module(f"act{i}", make_activation(activation, negative_slope=negative_slope))
            self.add_module("out", nn.Linear(dims[-1], out_dim, bias=bias))

    def __getitem__(self, idx):
        """``net[i]`` is a layer; ``net[a:b]`` a plain ``nn.Sequential`` of those layers (same modules)."""
        if isinstance(idx, slice):
            return nn.Sequential(OrderedDict(list(self._modules.items())[idx]))
        return super().__getitem__(idx)

    @property
    def hidden_names(self) -> list[str]:
        """Names of the activation modules, first to last (``["act1", ...]``)."""
        return [f"act{i}" for i in range(1, len(self._config["widths"]) + 1)]

    @property
    def linear_names(self) -> list[str]:
        """Names of the linear layers, first to last (``["fc1", ..., "out"]``)."""
        return [f"fc{i}" for i in range(1, len(self._config["widths"]) + 1)] + ["out"]


class ResidualBlock(nn.Module):
    """``h -> h + dt * act(linear(h))``: one explicit Euler step of ``dh/dt = act(W h + b)``."""

    def __init__(self, d_model: int, *, activation: str = "tanh", dt: float = 1.0, negative_slope: float = 0.2):
        super().__init__()
        self.linear = nn.Linear(d_model, d_model)
        self.act = make_activation(activation, negative_slope=negative_slope)
        self.dt = float(dt)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return h + self.dt * self.act(self.linear(h))

    def extra_repr(self) -> str:
        return f"dt={self.dt:g}"


class ResidualMLP(ConfigMixin, nn.Module):
    """A residual MLP ``embed -> blocks.0 ... blocks.{n-1} -> out`` (a discretised neural ODE).

    ``h_0 = embed(x)``; ``h_{k+1} = h_k + dt * act(blocks.k.linear(h_k))``; logits ``= out(h_n)``.
    With small ``dt`` the blocks follow the flow of ``dh/dt = act(W(t) h + b(t))`` (Chen et al.,
    "Neural ordinary differential equations", NeurIPS 2018), which the dynamics tools analyse.

    Parameters
    ----------
    in_dim, d_model, n_blocks, out_dim : int
        Input features, residual stream width, number of blocks (>= 0), output features.
    activation : {"relu", "tanh", "leaky_relu"}, default "tanh"
    dt : float, default 1.0
        Step size (> 0) multiplying each block's update.
    seed : int, default 0
        Seeds the initialisation (forked RNG: the global torch RNG is left untouched).
    """

    def __init__(self, in_dim: int, d_model: int, n_blocks: int, out_dim: int, *, activation: str = "tanh",
                 dt: float = 1.0, seed: int = 0):
        in_dim = positive_int("in_dim", in_dim)
        d_model = positive_int("d_model", d_model)
        out_dim = positive_int("out_dim", out_dim)
        n_blocks = check_int("n_blocks", n_blocks, min_value=0)
        dt = positive_float("dt", dt)
        seed = check_seed(seed)
        make_activation(activation)
        check_parameter_budget("d_model, n_blocks", (in_dim + 1) * d_model + n_blocks * (d_model + 1) * d_model
                               + (d_model + 1) * out_dim)
        super().__init__()
        self._config = dict(in_dim=in_dim, d_model=d_model, n_blocks=n_blocks, out_dim=out_dim,
                            activation=activation, dt=dt, seed=seed)
        with seeded(seed):
            self.embed = nn.Linear(in_dim, d_model)
            self.blocks = nn.ModuleList(ResidualBlock(d_model, activation=activation, dt=dt)
                                        for _ in range(n_blocks))
            self.out = nn.Linear(d_model, out_dim)

    @property
    def block_names(self) -> list[str]:
        """``["blocks.0", ...]``: module names of the residual stream after each block."""
        return [f"blocks.{i}" for i in range(len(self.blocks))]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.embed(x)
        for block in self.blocks:
            h = block(h)
        return self.out(h)


__all__ = ["MLP", "ResidualBlock", "ResidualMLP"]
