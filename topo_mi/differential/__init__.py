"""Differential analysis: attributions with a completeness check, and the loss Hessian's spectrum.

The framework's third method: saliency ``grad_x f_c(x)`` for a class logit, and the loss Hessian
``H_ij = d^2 L / dw_i dw_j`` with its extreme eigenvalues and condition number, from
Hessian-vector products and Lanczos (never the full Hessian for real models).

First order (:mod:`topo_mi.differential.attributions`)
- :func:`saliency`, :func:`input_x_gradient`, :func:`smoothgrad`
- :func:`integrated_gradients` — Gauss–Legendre, trapezoid or Riemann rules with correct weights,
  or the exact path integral of a ReLU network; a completeness error per sample

Second order (:mod:`topo_mi.differential.hessian`)
- :class:`LossHessian` — Hessian-vector products of a loss over a dataset (``torch.func``,
  forward-over-reverse), parameters selected by name, explicit ``reduction``
- :func:`hessian_spectrum` — top/bottom eigenvalues by Lanczos with full reorthogonalisation,
  the condition number, the trace and the spectral density
- :func:`exact_hessian` — the dense Hessian of a small model, for checking
- :func:`lanczos`, :func:`hutchinson_trace`, :func:`spectral_density` — on any symmetric operator
  (a matrix or a matrix-vector product)
"""
from __future__ import annotations

from topo_mi._lazy import lazy_exports

_ATTRS = {
    "saliency": "topo_mi.differential.attributions",
    "input_x_gradient": "topo_mi.differential.attributions",
    "smoothgrad": "topo_mi.differential.attributions",
    "integrated_gradients": "topo_mi.differential.attributions",
    "quadrature": "topo_mi.differential.attributions",
    "LossHessian": "topo_mi.differential.hessian",
    "hessian_spectrum": "topo_mi.differential.hessian",
    "exact_hessian": "topo_mi.differential.hessian",
    "lanczos": "topo_mi.differential.hessian",
    "hutchinson_trace": "topo_mi.differential.hessian",
    "spectral_density": "topo_mi.differential.hessian",
    "hessian_logdet": "topo_mi.differential.hessian",
    "AttributionResult": "topo_mi.differential._results",
    "HessianSpectrum": "topo_mi.differential._results",
    "HessianTrace": "topo_mi.differential._results",
    "SpectralDensity": "topo_mi.differential._results",
}
_SUBMODULES = ("attributions", "hessian")

__getattr__, __dir__, __all__ = lazy_exports(__name__, _ATTRS, _SUBMODULES)
