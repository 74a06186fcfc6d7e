"""Saving, loading and exporting dictionaries (safetensors + JSON, never pickle)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from topo_mi._io import atomic_path, read_json, write_json
from topo_mi._validation import fail
from topo_mi.errors import InvalidParameterError

_FORMAT = "topo_mi.dictionary/1"
_WEIGHTS = "dictionary.safetensors"


def _tensors(d) -> dict:
    out = {k: v.detach().contiguous().clone() for k, v in d.state_dict().items()}
    for k, v in d.history.items():
        import torch

        out[f"history.{k}"] = torch.as_tensor(np.asarray(v))
    return out


def save_dictionary(d, path) -> Path:
    """Write the folder ``path``: ``dictionary.safetensors`` (weights, buffers, history) + ``cfg.json``."""
    from safetensors.torch import save_file

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    with atomic_path(path / _WEIGHTS, suffix=".safetensors") as tmp:
        save_file(_tensors(d), str(tmp))
    write_json(path / "cfg.json", {"format": _FORMAT, "cfg": d.cfg, "meta": d.meta})
    return path


def load_dictionary(path):
    from safetensors.torch import load_file

    from topo_mi.dictionaries._model import SparseDictionary

    path = Path(path)
    if not (path / "cfg.json").is_file() or not (path / _WEIGHTS).is_file():
        raise InvalidParameterError(f"path: expected a folder written by SparseDictionary.save (cfg.json and "
                                    f"{_WEIGHTS}), got {str(path)!r}")
    doc = read_json(path / "cfg.json")
    if doc.get("format") != _FORMAT:
        fail("path", f"a {_FORMAT} folder", f"format {doc.get('format')!r}", raw=True)
    d = SparseDictionary(doc["cfg"], meta=doc.get("meta"))
    tensors = load_file(str(path / _WEIGHTS))
    hist = {k[len("history."):]: v.numpy() for k, v in tensors.items() if k.startswith("history.")}
    state = {k: v for k, v in tensors.items() if not k.startswith("history.")}
    d.load_state_dict(state, strict=True)
    d.history = hist
    return d


_SAELENS_ARCH = {"relu": "standard", "topk": "topk", "jumprelu": "jumprelu"}


def export_saelens(d, path, *, hook_name: str | None = None, model_name: str | None = None,
                   hook_layer: int = 0, context_size: int = 128) -> Path:
    """Write SAELens's pretrained-SAE layout: ``cfg.json`` + ``sae_weights.safetensors``.

    Tensors ``W_enc (d_in, d_sae)``, ``W_dec (d_sae, d_in)``, ``b_enc (d_sae,)``, ``b_dec (d_in,)``
    (+ ``threshold (d_sae,)`` for JumpReLU), float32; SAELens computes
    ``z = act((x - b_dec) @ W_enc + b_enc)`` with ``apply_b_dec_to_input = true`` — the same map as
    here. BatchTopK is exported as a JumpReLU whose every threshold is the learned inference
    threshold (exactly how it runs at inference). Only single-source SAEs can be exported.
    """
    from safetensors.torch import save_file
    import torch

    c = d.cfg
    if not (c["n_in"] == c["n_out"] == 1 and c["d_in"] == c["d_out"]):
        fail("dictionary", "a single-source SAE (SAELens has no transcoder/crosscoder format)", repr(d), raw=True)
    kind = c["kind"]
    arch = _SAELENS_ARCH.get(kind, "jumprelu")
    hook_name = hook_name or str(d.meta.get("layer") or "layer")
    tensors = {"W_enc": d.W_enc.detach()[0].contiguous().clone(),
               "W_dec": d.W_dec.detach()[:, 0].contiguous().clone(),
               "b_enc": d.b_enc.detach().clone(), "b_dec": d.b_dec.detach()[0].clone()}
    if kind == "jumprelu":
        tensors["threshold"] = d.log_threshold.detach().exp().clone()
    elif kind == "batchtopk":
        tensors["threshold"] = torch.full((c["d_sae"],), float(d.threshold))
    cfg = {
        "architecture": arch, "d_in": c["d_in"], "d_sae": c["d_sae"], "dtype": "float32", "device": "cpu",
        "model_name": model_name or str(d.meta.get("model") or "unknown"), "hook_name": hook_name,
        "hook_layer": int(hook_layer), "hook_head_index": None,
        "activation_fn_str": "topk" if kind == "topk" else "relu",
        "activation_fn_kwargs": {"k": c["k"]} if kind == "topk" else {},
        "apply_b_dec_to_input": bool(c["apply_b_dec_to_input"]), "finetuning_scaling_factor": False,
        "normalize_activations": "none", "context_size": int(context_size), "prepend_bos": True,
        "dataset_path": "", "dataset_trust_remote_code": False, "sae_lens_training_version": None,
        "model_from_pretrained_kwargs": {}, "seqpos_slice": [None], "neuronpedia_id": None,
    }
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    with atomic_path(path / "sae_weights.safetensors", suffix=".safetensors") as tmp:
        save_file(tensors, str(tmp))
    write_json(path / "cfg.json", cfg)
    return path
