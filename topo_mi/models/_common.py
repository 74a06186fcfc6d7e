"""Pieces shared by the reference models: activations by name, seeded construction, configs."""
from __future__ import annotations

import contextlib
import copy
from typing import Any, Iterator

import torch
from torch import nn

from topo_mi._validation import check_choice, check_float, check_int

ACTIVATIONS = ("relu", "tanh", "leaky_relu")


def make_activation(name: str, *, negative_slope: float = 0.2, param: str = "activation") -> nn.Module:
    """A fresh activation module: ``"relu"``, ``"tanh"`` or ``"leaky_relu"`` (slope ``negative_slope``)."""
    check_choice(param, name, ACTIVATIONS)
    if name == "relu":
        return nn.ReLU()
    if name == "tanh":
        return nn.Tanh()
    return nn.LeakyReLU(negative_slope=negative_slope)


def check_seed(seed: Any) -> int:
    """Model seeds are plain non-negative integers (they seed a local torch RNG)."""
    return check_int("seed", seed, min_value=0, max_value=2**63 - 1)


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Run the block with torch's CPU RNG seeded to ``seed``, restoring the global state after.

    Module constructors (``nn.Linear`` and friends) draw from the global RNG; forking it keeps the
    caller's random stream untouched while making the initialisation a function of ``seed`` only.
    """
    seed = check_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


@contextlib.contextmanager
def num_threads(n: int | None) -> Iterator[None]:
    """Run the block with ``n`` intra-op torch threads (None: leave the setting alone), then restore.

    The reference models are tiny: splitting their operations across threads only adds
    synchronisation (on a busy machine, spin-waiting threads can make a training loop tens of
    times slower), and a fixed thread count fixes the order of floating-point reductions, so
    the same seed gives the same weights whatever the number of cores.
    """
    if n is None:
        yield
        return
    before = torch.get_num_threads()
    if before != n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)


def check_threads(value: Any) -> int | None:
    return None if value is None else check_int("num_threads", value, min_value=1)


def generator(seed: int) -> torch.Generator:
    g = torch.Generator(device="cpu")
    g.manual_seed(check_seed(seed))
    return g


class ConfigMixin:
    """Remembers the constructor arguments so a saved model can be rebuilt (``save_model``)."""

    _config: dict[str, Any]

    @property
    def config(self) -> dict[str, Any]:
        """The constructor keyword arguments (JSON-able), as given to ``__init__``."""
        return copy.deepcopy(self._config)

    def extra_repr_config(self) -> str:
        return ", ".join(f"{k}={v!r}" for k, v in self._config.items())


def check_parameter_budget(what: str, n_params: int) -> None:
    """Refuse a model whose parameters (float32, with initialisation temporaries) would not fit."""
    from topo_mi._resources import check_allocation

    check_allocation(f"{what}: a model of {n_params:,} parameters", 3.0 * 4 * n_params,
                     hint="use smaller layer sizes")


def positive_int(name: str, value: Any) -> int:
    return check_int(name, value, min_value=1)


def positive_float(name: str, value: Any) -> float:
    return check_float(name, value, min_value=0.0, min_inclusive=False)


__all__ = ["ACTIVATIONS", "make_activation", "check_seed", "seeded", "num_threads", "check_threads", "generator",
           "ConfigMixin", "positive_int", "positive_float"]
