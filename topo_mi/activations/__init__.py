"""Collect, store and reload activations.

- :func:`collect` — run a ``torch.nn.Module`` over inputs and record chosen layers (forward hooks)
- :func:`collect_text` — tokenise texts and collect, one sample per token by default
- :class:`Activations` — the layer -> (n_samples, n_features) container, with labels, ids, meta
- ``Activations.from_mapping`` — adapters for TransformerLens caches and HuggingFace outputs
"""
from topo_mi.activations._collect import collect, collect_text, model_fingerprint
from topo_mi.activations._hooks import resolve_layers
from topo_mi.activations._container import Activations

__all__ = ["collect", "collect_text", "Activations", "resolve_layers", "model_fingerprint"]
