"""Toy tasks for mechanistic interpretability: max of K tokens, modular addition, sparse features."""
from __future__ import annotations

import numpy as np

from topo_mi._validation import check_float, check_int, fail
from topo_mi.datasets._base import STREAM_SAMPLE, Spec, check_bool, register
from topo_mi.errors import ResourceError

_MAX_EXHAUSTIVE = 2**26  # rows of an exhaustive max_of_k set (64^4 = 2^24 fits)


def all_sequences(d_vocab: int, k: int) -> np.ndarray:
    """Every sequence of ``k`` tokens in ``range(d_vocab)``, in lexicographic order (int64)."""
    idx = np.arange(d_vocab**k, dtype=np.int64)
    out = np.empty((idx.size, k), dtype=np.int64)
    for j in range(k):
        out[:, k - 1 - j] = (idx // d_vocab**j) % d_vocab
    return out


@register
class MaxOfK(Spec):
    name = "max_of_k"
    kind = "toy_task"
    dtype = "int64"
    default_n = 10_000
    description = ("Sequences of k tokens drawn uniformly from range(d_vocab) (X int64, shape "
                   "(n, k)) and their maximum (y int64), the max-of-K task of Gross et al.")
    reference = ("J. Gross et al., \"Compact proofs of model performance via mechanistic "
                 "interpretability\", 2024 (max-of-4: d_vocab 64, n_ctx 4)")
    defaults = {"d_vocab": 64, "k": 4, "exhaustive": False}

    def check(self, p):
        p["d_vocab"] = check_int("d_vocab", p["d_vocab"], min_value=1)
        p["k"] = check_int("k", p["k"], min_value=1)
        p["exhaustive"] = check_bool("exhaustive", p["exhaustive"])
        if p["exhaustive"] and p["d_vocab"] ** p["k"] > _MAX_EXHAUSTIVE:
            raise ResourceError(
                f"exhaustive: d_vocab**k = {p['d_vocab']}**{p['k']} = {p['d_vocab'] ** p['k']:,} "
                f"sequences is over the limit of {_MAX_EXHAUSTIVE:,} rows; use a random sample "
                "(exhaustive=False, n=...) or a smaller vocabulary")
        return p

    def size(self, p):
        return p["d_vocab"] ** p["k"] if p["exhaustive"] else None

    def check_n(self, p, n):
        if p["exhaustive"] and n != p["d_vocab"] ** p["k"]:
            fail("n", f"None or {p['d_vocab'] ** p['k']} (all sequences) with exhaustive=True", n)

    def generate(self, p, n, seeds):
        if p["exhaustive"]:
            X = all_sequences(p["d_vocab"], p["k"])
        else:
            X = seeds[STREAM_SAMPLE].integers(0, p["d_vocab"], size=(n, p["k"]), dtype=np.int64)
        return X, X.max(axis=1)

    def notes(self, p):
        return ["exhaustive=True: all d_vocab**k sequences in lexicographic order (n must be None "
                "or that number); otherwise n sequences drawn with replacement"]


@register
class ModularAddition(Spec):
    name = "modular_addition"
    kind = "toy_task"
    dtype = "int64"
    finite = True
    description = ("Pairs (a, b) of residues modulo p (X int64, shape (n, 2)) and (a + b) mod p "
                   "(y int64); all p^2 pairs in lexicographic order when n is None, else a random "
                   "subset of n distinct pairs.")
    reference = ("N. Nanda, L. Chan, T. Lieberum, J. Smith and J. Steinhardt, \"Progress measures "
                 "for grokking via mechanistic interpretability\", ICLR 2023 (p = 113)")
    defaults = {"p": 113}

    def check(self, p):
        p["p"] = check_int("p", p["p"], min_value=2)
        return p

    def size(self, p):
        return p["p"] ** 2

    def generate_full(self, p, seeds):
        a, b = np.divmod(np.arange(p["p"] ** 2, dtype=np.int64), p["p"])
        return np.column_stack([a, b]), (a + b) % p["p"]

    def notes(self, p):
        return ["no '=' token is added: prepend or append one in the model's tokenisation",
                "p need not be prime; 113 (prime) is the usual choice"]


@register
class SparseFeatures(Spec):
    name = "sparse_features"
    kind = "toy_task"
    default_n = 10_000
    description = ("Synthetic sparse features for toy models of superposition: x_i = 0 with "
                   "probability `sparsity`, else uniform on [0, 1], independently (X float64, "
                   "shape (n, n_features); y None). The card lists the feature importances "
                   "I_i = decay**i.")
    reference = ("N. Elhage et al., \"Toy Models of Superposition\", Transformer Circuits Thread, "
                 "2022 (n = 5 features, m = 2, I_i = 0.9^i)")
    defaults = {"n_features": 5, "sparsity": 0.9, "decay": 0.9}

    def check(self, p):
        p["n_features"] = check_int("n_features", p["n_features"], min_value=1)
        p["sparsity"] = check_float("sparsity", p["sparsity"], min_value=0.0, max_value=1.0)
        p["decay"] = check_float("decay", p["decay"], min_value=0.0, min_inclusive=False)
        return p

    def generate(self, p, n, seeds):
        rng = seeds[STREAM_SAMPLE]
        shape = (n, p["n_features"])
        active = rng.random(shape) >= p["sparsity"]
        return np.where(active, rng.random(shape), 0.0), None

    def facts(self, p):
        return {"importance": [float(p["decay"] ** i) for i in range(p["n_features"])],
                "feature_probability": 1.0 - p["sparsity"]}

    def notes(self, p):
        return ["the training loss of the paper weighs feature i by importance[i]: "
                "sum_i I_i (x_i - x'_i)^2"]
