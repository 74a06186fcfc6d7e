"""Networks as dynamical systems: layer Jacobians, Jacobian products, Lyapunov spectra.

The framework's sixth method: a layer transition is a step of a dynamical system,
``h_{t+1} ~ h_t + dt sigma(W h_t + b)``, and stability is read from products of Jacobians,
``lambda_max = lim (1/T) sum_t ln ||J_t v_t||``.

- :func:`layer_jacobians` — per-input Jacobians ``d h_{l+1} / d h_l`` of each layer map (batched
  ``torch.func`` transforms; memory checked before allocating)
- :func:`jacobian_product` — the end-to-end Jacobian and its singular values
- :func:`finite_time_lyapunov` — depth as time: ``(1/L) ln sigma_i`` of the product per input,
  and per-layer expansion/contraction
- :func:`lyapunov_spectrum` — Lyapunov spectrum of any torch map by JVPs and QR (Benettin)
- :func:`flow_step` — one RK4/Euler step of a vector field, as a map
- :func:`residual_ode_fit` — how well a residual stack follows ``h + dt sigma(W h + b)``
- :func:`fixed_points` — fixed points by Newton or iteration, with their stability
- :func:`lyapunov_vs_gain` — the random tanh network's transition to chaos
- :mod:`topo_mi.dynamics.systems` — logistic, Hénon, Lorenz, random tanh network

Layer maps of a model (the contract of ``layers``)
--------------------------------------------------
``layers`` names the states ``h_0, h_1, ..., h_L``; the map ``h_l -> h_{l+1}`` is the chain of
the model's children after the module that outputs ``h_l`` up to and including the one that
outputs ``h_{l+1}``:

- ``nn.Sequential`` (e.g. ``topo_mi.models.MLP``): names of its children, in order, e.g.
  ``["act1", "act2", "act3"]``; the first may be ``"input"`` (``h_0`` is the input itself).
  Default: the model's ``hidden_names`` when it has them, else ``"input"`` and every child.
- a residual stack with ``embed``, ``blocks`` (a ModuleList) and ``out`` (e.g.
  ``topo_mi.models.ResidualMLP``): the chain ``embed, blocks.0, ..., blocks.{n-1}, out``;
  default ``["embed", "blocks.0", ...]`` (each map is one block).
- any other model: pass ``layers`` as a list of callables/modules, the maps themselves;
  ``model`` is then ``None`` (``inputs`` are ``h_0``) or a callable giving ``h_0`` from inputs.

Maps are called on single samples under ``torch.func.vmap``; states may have any per-sample shape
(they are flattened for the Jacobians). Put models in eval mode first (no dropout).
"""
from __future__ import annotations

from topo_mi._lazy import lazy_exports

_ATTRS = {
    "lyapunov_spectrum": "topo_mi.dynamics.lyapunov",
    "flow_step": "topo_mi.dynamics.lyapunov",
    "FlowStep": "topo_mi.dynamics.lyapunov",
    "layer_jacobians": "topo_mi.dynamics.jacobians",
    "jacobian_product": "topo_mi.dynamics.jacobians",
    "finite_time_lyapunov": "topo_mi.dynamics.jacobians",
    "layer_maps": "topo_mi.dynamics.jacobians",
    "LayerMaps": "topo_mi.dynamics.jacobians",
    "residual_ode_fit": "topo_mi.dynamics.residual",
    "fixed_points": "topo_mi.dynamics._fixed_points",
    "lyapunov_vs_gain": "topo_mi.dynamics.systems",
    "LyapunovResult": "topo_mi.dynamics._results",
    "LayerJacobians": "topo_mi.dynamics._results",
    "JacobianProduct": "topo_mi.dynamics._results",
    "FTLEResult": "topo_mi.dynamics._results",
    "ResidualFitResult": "topo_mi.dynamics._results",
    "FixedPointResult": "topo_mi.dynamics._results",
    "GainSweepResult": "topo_mi.dynamics._results",
    "kaplan_yorke": "topo_mi.dynamics._results",
}
_SUBMODULES = ("systems", "lyapunov", "jacobians", "residual")

__getattr__, __dir__, __all__ = lazy_exports(__name__, _ATTRS, _SUBMODULES)
