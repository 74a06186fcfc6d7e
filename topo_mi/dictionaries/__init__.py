"""Sparse dictionaries: SAEs, transcoders and crosscoders trained on collected activations.

- :func:`train_sae` — ReLU + L1 (with Anthropic's resampling), TopK (+ AuxK), BatchTopK, JumpReLU;
  with ``target``/``target_layer`` a transcoder (:func:`train_transcoder`)
- :func:`train_crosscoder` — one latent space over several layers or models (model diffing through
  :meth:`SparseDictionary.relative_decoder_norms`)
- :func:`evaluate` — L0, densities, dead/dense fractions, MSE, explained variance by named convention
- :func:`loss_recovered` / :func:`splice` — the reconstruction spliced into the model's forward
- :func:`top_examples` — max-activating samples (tokens and context for text) per latent
- :func:`toy_features` — Sharkey, Braun & Millidge's planted-feature data; :func:`mmcs`, :func:`matched_mcs`

This subpackage imports torch; ``import topo_mi`` does not import it.
"""
from topo_mi.dictionaries._examples import TopExamples, top_examples
from topo_mi.dictionaries._losses import (auxk_loss, decoder_norms, jumprelu, l0_penalty, l1_penalty,
                                          reconstruction_loss)
from topo_mi.dictionaries._metrics import (CONVENTIONS, DictionaryMetrics, evaluate, explained_variance,
                                           matched_mcs, mmcs)
from topo_mi.dictionaries._model import KINDS, SparseDictionary, geometric_median, make_config
from topo_mi.dictionaries._splice import LossRecovered, loss_recovered, next_token_ce, splice
from topo_mi.dictionaries._toy import toy_features
from topo_mi.dictionaries._train import train_crosscoder, train_sae, train_transcoder

__all__ = ["SparseDictionary", "KINDS", "make_config", "geometric_median", "train_sae", "train_transcoder",
           "train_crosscoder", "evaluate", "explained_variance", "DictionaryMetrics", "CONVENTIONS", "mmcs",
           "matched_mcs", "toy_features", "reconstruction_loss", "decoder_norms", "l1_penalty", "auxk_loss",
           "jumprelu", "l0_penalty", "splice", "loss_recovered", "LossRecovered", "next_token_ce", "top_examples", "TopExamples"]
