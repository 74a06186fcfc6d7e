"""Small reference models, their deterministic CPU training, safetensors I/O and a model zoo.

Importing this module imports torch (``import topo_mi`` alone does not).

Models
------
- :class:`MLP`: ``fc1, act1, ..., fc{L}, act{L}, out`` classifier (relu / tanh / leaky_relu), the
  networks of Naitzat, Zhitnikov & Lim (JMLR 2020).
- :class:`ResidualMLP`: ``embed, blocks.i (h + dt * act(linear(h))), out``.
- :class:`AttentionOnlyTransformer`: the one-layer attention-only max-of-K model of Gross et al.
  (2024), with named hook modules.
- :class:`TanhRNN`: ``h_t = tanh(W_hh h_{t-1} + W_ih x_t + b)`` with ``W_hh ~ N(0, gain²/N)``.
- :class:`ToySuperposition`: ``ReLU(WᵀW x + b)`` of Elhage et al. (2022).

Training: :func:`train_classifier`, :func:`train_max_of_k`, :func:`train_superposition` (all
return a :class:`TrainingReport`). Files: :func:`save_model` / :func:`load_model` (safetensors
with the class and arguments in the metadata), :func:`load_checkpoint` for user checkpoints.
Zoo: :func:`pretrained`, :func:`zoo_names`, :func:`zoo_info`.

>>> from topo_mi import models
>>> net = models.pretrained("mlp-naitzat-d1-relu")          # doctest: +SKIP
>>> net.hidden_names                                          # doctest: +SKIP
['act1', 'act2', 'act3', 'act4', 'act5', 'act6', 'act7', 'act8']
"""
from __future__ import annotations

from topo_mi.models.io import load_checkpoint, load_model, read_metadata, save_model
from topo_mi.models.mlp import MLP, ResidualBlock, ResidualMLP
from topo_mi.models.rnn import TanhRNN, TanhRNNCell
from topo_mi.models.superposition import ToySuperposition
from topo_mi.models.training import (
    TrainingReport, max_of_k_accuracy, sparse_feature_batch, train_classifier, train_max_of_k,
    train_superposition,
)
from topo_mi.models.transformer import AttentionOnlyTransformer
from topo_mi.models.zoo import cache_path, pretrained, zoo_info, zoo_names

__all__ = [
    "MLP", "ResidualBlock", "ResidualMLP", "AttentionOnlyTransformer", "TanhRNN", "TanhRNNCell",
    "ToySuperposition", "TrainingReport", "train_classifier", "train_max_of_k", "train_superposition",
    "max_of_k_accuracy", "sparse_feature_batch", "save_model", "load_model", "load_checkpoint",
    "read_metadata", "pretrained", "zoo_names", "zoo_info", "cache_path",
]
