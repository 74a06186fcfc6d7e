"""A vanilla tanh recurrent network with a random-matrix gain (for the dynamics tools)."""
from __future__ import annotations

import math

import torch
from torch import nn

from topo_mi._validation import check_float, fail
from topo_mi.models._common import ConfigMixin, check_parameter_budget, check_seed, generator, positive_int, seeded


class TanhRNNCell(nn.Module):
    """``h' = tanh(W_hh h + W_ih x + b)`` for batched ``h`` (B, N) and ``x`` (B, input_dim)."""

    def __init__(self, W_hh: torch.Tensor, W_ih: torch.Tensor, b: torch.Tensor):
        super().__init__()
        self.W_hh = nn.Parameter(W_hh)
        self.W_ih = nn.Parameter(W_ih)
        self.b = nn.Parameter(b)

    def forward(self, h: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(h @ self.W_hh.T + x @ self.W_ih.T + self.b)


class TanhRNN(ConfigMixin, nn.Module):
    r"""A vanilla recurrent network ``h_t = tanh(W_hh h_{t-1} + W_ih x_t + b)``, ``y_t = readout(h_t)``.

    ``W_hh`` is drawn i.i.d. from N(0, gain² / N) (N = ``hidden_dim``), the random-network ensemble
    of Sompolinsky, Crisanti & Sommers, "Chaos in random neural networks", PRL 61, 1988: the
    autonomous dynamics are ordered for gain < 1 and chaotic for gain > 1 in the large-N limit.
    ``W_ih`` is drawn from N(0, 1 / input_dim); ``b`` starts at zero; ``readout`` is an
    ``nn.Linear(hidden_dim, output_dim)`` with PyTorch's default initialisation.

    Submodules: ``cell`` (holds ``W_hh`` (N, N), ``W_ih`` (N, input_dim), ``b`` (N,); calling it
    performs one step) and ``readout``.

    Parameters
    ----------
    input_dim, hidden_dim, output_dim : int
    gain : float, default 1.0
        Standard deviation of the recurrent weights times sqrt(N) (>= 0).
    seed : int, default 0
        Seeds a local ``torch.Generator`` (the global torch RNG is left untouched).
    """

    def __init__(self, input_dim: int, hidden_dim: int, output_dim: int, *, gain: float = 1.0, seed: int = 0):
        input_dim = positive_int("input_dim", input_dim)
        hidden_dim = positive_int("hidden_dim", hidden_dim)
        output_dim = positive_int("output_dim", output_dim)
        gain = check_float("gain", gain, min_value=0.0)
        seed = check_seed(seed)
        check_parameter_budget("hidden_dim", hidden_dim * (hidden_dim + input_dim + output_dim + 2))
        super().__init__()
        self._config = dict(input_dim=input_dim, hidden_dim=hidden_dim, output_dim=output_dim,
                            gain=gain, seed=seed)
        self.input_dim, self.hidden_dim, self.output_dim, self.gain = input_dim, hidden_dim, output_dim, gain
        g = generator(seed)
        W_hh = torch.randn(hidden_dim, hidden_dim, generator=g) * (gain / math.sqrt(hidden_dim))
        W_ih = torch.randn(hidden_dim, input_dim, generator=g) / math.sqrt(input_dim)
        self.cell = TanhRNNCell(W_hh, W_ih, torch.zeros(hidden_dim))
        with seeded(seed):  # nn.Linear's default initialisation, from a forked RNG
            self.readout = nn.Linear(hidden_dim, output_dim)

    def step(self, h: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """One step: ``tanh(W_hh h + W_ih x + b)``; ``h`` (..., N), ``x`` (..., input_dim)."""
        return self.cell(h, x)

    def forward(self, x: torch.Tensor, h0: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Run over a sequence.

        Parameters
        ----------
        x : Tensor of shape (B, T, input_dim)
        h0 : Tensor of shape (B, hidden_dim), optional
            Initial state (zeros by default).

        Returns
        -------
        outputs : Tensor of shape (B, T, output_dim)
            ``readout(h_t)`` for t = 1..T.
        h_final : Tensor of shape (B, hidden_dim)
        """
        if not isinstance(x, torch.Tensor) or x.ndim != 3 or x.shape[2] != self.input_dim:
            fail("x", f"a tensor of shape (batch, time, {self.input_dim})",
                 f"shape {tuple(x.shape)}" if isinstance(x, torch.Tensor) else x, raw=isinstance(x, torch.Tensor))
        B = x.shape[0]
        if h0 is None:
            h = x.new_zeros(B, self.hidden_dim)
        else:
            if not isinstance(h0, torch.Tensor) or tuple(h0.shape) != (B, self.hidden_dim):
                fail("h0", f"a tensor of shape ({B}, {self.hidden_dim})",
                     f"shape {tuple(h0.shape)}" if isinstance(h0, torch.Tensor) else h0,
                     raw=isinstance(h0, torch.Tensor))
            h = h0
        states = []
        for t in range(x.shape[1]):
            h = self.cell(h, x[:, t])
            states.append(h)
        hs = torch.stack(states, dim=1) if states else x.new_zeros(B, 0, self.hidden_dim)
        return self.readout(hs), h

    def extra_repr(self) -> str:
        return self.extra_repr_config()


__all__ = ["TanhRNN", "TanhRNNCell"]
