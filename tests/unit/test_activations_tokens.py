"""Per-token activations (reduce="tokens"): exact rows, (sequence, position) identity, labels, kept
through subsample/take/align/store; from_mapping on padded HuggingFace-style outputs."""
import numpy as np
import pytest
import torch
from torch import nn

import topo_mi as tm
from topo_mi.activations import Activations, collect, collect_text
from topo_mi.errors import InvalidParameterError


class TokenModel(nn.Module):
    def __init__(self):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.emb = nn.Embedding(12, 4)
        self.block = nn.Linear(4, 3)
        self.pool = nn.Linear(4, 2)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=g))

    def forward(self, input_ids, attention_mask=None):
        e = self.emb(input_ids)
        self.pool(e[:, 0])  # a 2-D output, no token axis
        return self.block(e)


class ToyTokenizer:
    """Word-level stand-in with the two methods collect/collect_text use."""
    vocab = ["[PAD]", "the", "cat", "sat", "on", "a", "mat", "dog", "ran", "far", "away", "[UNK]"]

    def convert_ids_to_tokens(self, ids):
        return [self.vocab[i] for i in ids]

    def __call__(self, texts, padding=True, return_tensors="pt", truncation=False, max_length=None):
        rows = [[self.vocab.index(w) if w in self.vocab else 11 for w in t.split()] for t in texts]
        if truncation and max_length:
            rows = [r[:max_length] for r in rows]
        T = max(len(r) for r in rows)
        ids = torch.zeros(len(rows), T, dtype=torch.long)
        mask = torch.zeros(len(rows), T, dtype=torch.long)
        for i, r in enumerate(rows):
            ids[i, :len(r)] = torch.tensor(r)
            mask[i, :len(r)] = 1
        return {"input_ids": ids, "attention_mask": mask}


def _padded_batch():
    ids = torch.tensor([[1, 2, 3, 0, 0], [7, 8, 9, 10, 1], [5, 6, 0, 0, 0], [0, 0, 1, 2, 3]])
    mask = (ids != 0).long()
    mask[3] = torch.tensor([0, 0, 1, 1, 1])  # left padding on the last row
    return {"input_ids": ids, "attention_mask": mask}


def test_tokens_equal_masked_hidden_states_in_sequence_position_order():
    # rows computed in batches of other shapes agree to float32 rounding, not bit for bit: the
    # GEMM kernels torch picks depend on the shapes and the CPU
    m = TokenModel()
    batch = _padded_batch()
    with torch.no_grad():
        h = m.block(m.emb(batch["input_ids"]))
    keep = batch["attention_mask"].bool()
    for bs in (4, 3, 1):  # batches of different sizes give the same rows and ids
        acts = collect(m, batch, layers=["block"], reduce="tokens", batch_size=bs, progress=False,
                       tokenizer=ToyTokenizer(), labels=np.array([10, 11, 12, 13]))
        np.testing.assert_allclose(acts["block"], h[keep].numpy(), rtol=1e-6, atol=1e-6)
        np.testing.assert_array_equal(acts.token_index, keep.nonzero().numpy())
        assert acts.n_samples == int(keep.sum()) == 13
        np.testing.assert_array_equal(acts.labels, 10 + acts.token_index[:, 0])  # broadcast
        assert list(acts.tokens[:3]) == ["the", "cat", "sat"] and list(acts.tokens[-3:]) == ["the", "cat", "sat"]
        np.testing.assert_array_equal(acts.sample_ids, np.arange(13))
        assert acts.meta["n_sequences"] == 4 and acts.meta["reduce"] == "'tokens'"
    none = collect(m, batch, layers=["block"], reduce=None, progress=False)
    np.testing.assert_allclose(none["block"], h[keep].numpy(), rtol=1e-6, atol=1e-6)
    # without a mask every position is a token
    plain = collect(m, batch["input_ids"], layers=["block"], reduce="tokens", batch_size=3, progress=False)
    np.testing.assert_allclose(plain["block"], h.reshape(-1, 3).numpy(), rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(plain.token_index[:7], [[0, 0], [0, 1], [0, 2], [0, 3], [0, 4], [1, 0], [1, 1]])


def test_per_sequence_ids_and_labels_from_batches():
    m = TokenModel()
    batch = _padded_batch()
    acts = collect(m, batch, layers=["block"], reduce="tokens", sample_ids=np.array([100, 200, 300, 400]),
                   progress=False)
    np.testing.assert_array_equal(np.unique(acts.token_index[:, 0]), [100, 200, 300, 400])
    np.testing.assert_array_equal(acts.sample_ids, np.arange(13))
    dl = [({"input_ids": batch["input_ids"][:2], "attention_mask": batch["attention_mask"][:2]}, torch.tensor([0, 1])),
          ({"input_ids": batch["input_ids"][2:], "attention_mask": batch["attention_mask"][2:]}, torch.tensor([2, 3]))]
    from_pairs = collect(m, dl, layers=["block"], reduce="tokens", progress=False)
    np.testing.assert_array_equal(from_pairs.labels, from_pairs.token_index[:, 0])
    with pytest.raises(InvalidParameterError, match="sample_ids: expected integer sequence ids"):
        collect(m, batch, layers=["block"], reduce="tokens", sample_ids=np.array(list("abcd")), progress=False)
    with pytest.raises(InvalidParameterError, match=r"labels: expected 13 rows \(tokens\) or 4 \(sequences\)"):
        collect(m, batch, layers=["block"], reduce="tokens", labels=np.arange(5), progress=False)


def test_tokens_kept_by_take_subsample_align_select_store(tmp_path):
    m = TokenModel()
    acts = collect(m, _padded_batch(), layers=["block"], reduce="tokens", tokenizer=ToyTokenizer(),
                   labels=np.arange(4), progress=False)
    sub = acts.subsample(5, seed=0)
    pos = sub.sample_ids  # default ids are row positions
    np.testing.assert_array_equal(sub.token_index, acts.token_index[pos])
    np.testing.assert_array_equal(sub.tokens, acts.tokens[pos])
    np.testing.assert_array_equal(sub.labels, acts.labels[pos])
    a2, b2, _ = acts.align(acts.take(np.arange(12, 2, -1)))
    np.testing.assert_array_equal(a2.token_index, b2.token_index)
    np.testing.assert_array_equal(acts.select(["block"]).tokens, acts.tokens)
    acts.save(tmp_path / "saved")
    back = Activations.load(tmp_path / "saved")
    np.testing.assert_array_equal(back.token_index, acts.token_index)
    np.testing.assert_array_equal(back.tokens, acts.tokens)
    stored = collect(m, _padded_batch(), layers=["block"], reduce="tokens", tokenizer=ToyTokenizer(),
                     labels=np.arange(4), batch_size=3, store=tmp_path / "st", progress=False)
    np.testing.assert_allclose(stored["block"], acts["block"], rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(stored.token_index, acts.token_index)
    np.testing.assert_array_equal(stored.tokens, acts.tokens)
    np.testing.assert_array_equal(stored.labels, acts.labels)
    again = collect(m, _padded_batch(), layers=["block"], reduce="tokens", tokenizer=ToyTokenizer(),
                    labels=np.arange(4), batch_size=3, store=tmp_path / "st", progress=False)
    np.testing.assert_array_equal(again.tokens, acts.tokens)


def test_collect_text_batches_its_own_padding():
    m = TokenModel()
    tok = ToyTokenizer()
    texts = ["the cat sat on a mat", "a dog ran", "the dog ran far away", "cat"]
    acts = collect_text(m, tok, texts, layers=["block"], batch_size=2, progress=False, labels=np.arange(4))
    assert acts.n_samples == 6 + 3 + 5 + 1
    assert " ".join(acts.tokens[acts.token_index[:, 0] == 2]) == texts[2]
    np.testing.assert_array_equal(acts.labels, acts.token_index[:, 0])
    for i, t in enumerate(texts):  # each text alone gives the same rows
        alone = collect_text(m, tok, [t], layers=["block"], progress=False)
        np.testing.assert_allclose(acts["block"][acts.token_index[:, 0] == i], alone["block"], rtol=1e-6, atol=1e-6)
    assert tm.collect_text is collect_text
    mean = collect_text(m, tok, texts, layers=["block"], reduce="mean", progress=False)
    assert mean.n_samples == 4 and mean.token_index is None
    with pytest.raises(InvalidParameterError, match="texts: expected a sequence of strings"):
        collect_text(m, tok, "the cat", layers=["block"])


def test_token_bad_inputs():
    m = TokenModel()
    batch = _padded_batch()
    with pytest.raises(InvalidParameterError,
                       match="'tokens' needs a \\(batch, tokens, d\\) output; layer 'pool'.*no token axis"):
        collect(m, batch, layers=["pool"], reduce="tokens", progress=False)
    with pytest.raises(InvalidParameterError, match="tokenizer: expected reduce='tokens'"):
        collect(m, batch, layers=["block"], reduce="mean", tokenizer=ToyTokenizer(), progress=False)
    acts = collect(m, batch, layers=["block"], reduce="tokens", progress=False)
    with pytest.raises(InvalidParameterError, match="tokens: expected activations collected with a tokenizer"):
        acts.tokens
    assert not acts.has_tokens
    with pytest.raises(InvalidParameterError, match="tokenizer: expected dict batches holding 'input_ids'"):
        collect(m, batch["input_ids"], layers=["block"], reduce="tokens", tokenizer=ToyTokenizer(), progress=False)


def test_from_mapping_hf_names_and_padding():
    m = TokenModel()
    batch = _padded_batch()
    with torch.no_grad():
        e = m.emb(batch["input_ids"])
        h = m.block(e)
    states = (e, e * 2)
    with pytest.raises(InvalidParameterError, match="attention_mask: expected the tokenizer's attention_mask"):
        Activations.from_mapping(states, reduce="last")
    last = Activations.from_mapping(states, reduce="last", attention_mask=batch["attention_mask"])
    assert last.layers == ["embeddings", "encoder.layer.0"]
    np.testing.assert_array_equal(last["embeddings"], e[[0, 1, 2, 3], [2, 4, 1, 4]].numpy())
    toks = Activations.from_mapping(states, reduce="tokens", attention_mask=batch["attention_mask"],
                                    labels=np.arange(4))
    keep = batch["attention_mask"].bool()
    np.testing.assert_array_equal(toks["encoder.layer.0"], (e * 2)[keep].numpy())
    np.testing.assert_array_equal(toks.token_index, keep.nonzero().numpy())
    np.testing.assert_array_equal(toks.labels, toks.token_index[:, 0])
    unpadded = Activations.from_mapping(states, reduce="last", attention_mask=False)
    np.testing.assert_array_equal(unpadded["embeddings"], e[:, -1].numpy())
    named = Activations.from_mapping({"hidden_states": states, "x": 1}, reduce="mean",
                                     attention_mask=batch["attention_mask"], names=["a", "b"])
    assert named.layers == ["a", "b"]
    assert h.shape[-1] == 3


def test_a_list_of_dict_batches_gives_the_rows_of_the_whole_batch():
    # a list of dict batches is sized from its attention masks up front (the rows go straight into
    # the result); (dict, labels) pairs too; a list whose batches lack masks is concatenated
    m = TokenModel()
    whole = _padded_batch()
    ref = collect(m, whole, layers=["block"], reduce="tokens", batch_size=2, progress=False)
    parts = [{k: v[i:i + 2] for k, v in whole.items()} for i in (0, 2)]
    from topo_mi.activations._collect import _known_rows

    assert _known_rows(parts, None, True) == 13
    assert _known_rows([(p, torch.tensor([0, 1])) for p in parts], None, True) == 13
    assert _known_rows([p["input_ids"] for p in parts], None, True) is None
    for inputs in (parts, [(p, torch.tensor([5, 6])) for p in parts]):
        acts = collect(m, inputs, layers=["block"], reduce="tokens", progress=False)
        np.testing.assert_array_equal(acts["block"], ref["block"])
        np.testing.assert_array_equal(acts.token_index, ref.token_index)
    labelled = collect(m, [(p, torch.tensor([5, 6])) for p in parts], layers=["block"], reduce="tokens",
                       progress=False)
    np.testing.assert_array_equal(labelled.labels, np.repeat([5, 6, 5, 6], whole["attention_mask"].sum(1)))
