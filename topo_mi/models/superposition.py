"""The toy model of superposition of Elhage et al. (2022)."""
from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from topo_mi._validation import fail
from topo_mi.models._common import ConfigMixin, check_seed, generator, positive_int


class ToySuperposition(ConfigMixin, nn.Module):
    r"""``x' = ReLU(Wᵀ W x + b)`` with ``W`` of shape (m, n) and ``b`` of shape (n,).

    Elhage et al., "Toy Models of Superposition", Transformer Circuits Thread, 2022: n sparse
    features are compressed into m < n hidden dimensions (``h = W x``) and read back with the
    transposed matrix plus a bias and a ReLU. For a batch ``x`` of shape (B, n) the forward pass
    is ``relu(x @ W.T @ W + b)``.

    Submodule ``hook_hidden`` (an ``nn.Identity``) sees ``h = x @ W.T`` of shape (B, m).

    Parameters
    ----------
    n_features : int, default 5
    m : int, default 2
        Hidden dimensions.
    seed : int, default 0
        ``W`` is Xavier-normal (std sqrt(2 / (m + n))) from a local ``torch.Generator``; ``b = 0``.
    """

    def __init__(self, n_features: int = 5, m: int = 2, seed: int = 0):
        n_features = positive_int("n_features", n_features)
        m = positive_int("m", m)
        seed = check_seed(seed)
        super().__init__()
        self._config = dict(n_features=n_features, m=m, seed=seed)
        self.n_features, self.m = n_features, m
        g = generator(seed)
        std = math.sqrt(2.0 / (n_features + m))
        self.W = nn.Parameter(torch.randn(m, n_features, generator=g) * std)
        self.b = nn.Parameter(torch.zeros(n_features))
        self.hook_hidden = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Reconstruction of shape (B, n) of features ``x`` of shape (B, n)."""
        if not isinstance(x, torch.Tensor) or x.shape[-1] != self.n_features:
            fail("x", f"a tensor of shape (batch, {self.n_features})",
                 f"shape {tuple(x.shape)}" if isinstance(x, torch.Tensor) else x, raw=isinstance(x, torch.Tensor))
        h = self.hook_hidden(x @ self.W.T)
        return torch.relu(h @ self.W + self.b)

    def _columns(self) -> np.ndarray:
        return self.W.detach().cpu().double().numpy()

    def feature_dimensionality(self) -> np.ndarray:
        r"""Fraction of a dimension each feature gets, ``D_i = ‖W_i‖² / Σ_j (Ŵ_i · W_j)²``.

        ``W_i`` is column i of ``W`` and ``Ŵ_i`` its unit vector; the sum includes j = i. A feature
        with its own dimension has D_i = 1, an antipodal pair 1/2 each, a regular pentagon in two
        dimensions 2/5 each; a feature that is not represented (``W_i = 0``) has D_i = 0.

        Returns
        -------
        ndarray of shape (n_features,), float64
        """
        W = self._columns()
        norms2 = (W ** 2).sum(axis=0)
        out = np.zeros(W.shape[1])
        nz = norms2 > 1e-24
        if nz.any():
            unit = W[:, nz] / np.sqrt(norms2[nz])
            overlap2 = ((unit.T @ W) ** 2).sum(axis=1)  # (n_nz,)
            out[nz] = norms2[nz] / overlap2
        return out

    def dimensions_per_feature(self) -> float:
        """``m / ‖W‖²_F``: hidden dimensions used per (effectively) represented feature."""
        W = self._columns()
        total = float((W ** 2).sum())
        return float("inf") if total == 0.0 else self.m / total

    def extra_repr(self) -> str:
        return self.extra_repr_config()


__all__ = ["ToySuperposition"]
