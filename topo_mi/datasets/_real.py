"""Real data that works offline: scikit-learn's bundled digits and a shipped sentence list."""
from __future__ import annotations

from importlib import resources

import numpy as np

from topo_mi.datasets._base import Spec, register
from topo_mi.errors import DependencyError


def read_sentences() -> list[str]:
    """The sentences shipped in ``topo_mi/datasets/data/sentences.txt`` (one a line)."""
    text = resources.files("topo_mi.datasets").joinpath("data/sentences.txt").read_text(encoding="utf-8")
    return [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]


@register
class Digits(Spec):
    name = "digits"
    kind = "real"
    finite = True
    description = ("scikit-learn's bundled 8x8 handwritten digits (1,797 images, offline): X float64 "
                   "of shape (n, 64) scaled to [0, 1] (pixel / 16), y the digit (int64).")
    reference = ("E. Alpaydin and C. Kaynak, optical recognition of handwritten digits, UCI "
                 "repository, 1998 (sklearn.datasets.load_digits)")
    defaults: dict = {}

    def size(self, p):
        return 1797

    def generate_full(self, p, seeds):
        try:
            from sklearn.datasets import load_digits
        except ImportError as exc:  # pragma: no cover - scikit-learn is a core requirement
            raise DependencyError("digits needs scikit-learn (pip install scikit-learn)") from exc
        bunch = load_digits()
        return np.asarray(bunch.data, dtype=np.float64) / 16.0, np.asarray(bunch.target, dtype=np.int64)

    def facts(self, p):
        return {"classes": {i: str(i) for i in range(10)}}

    def notes(self, p):
        return ["n: a random subset of the 1,797 images; rows keep scikit-learn's order"]


@register
class Sentences(Spec):
    name = "sentences"
    kind = "real"
    finite = True
    dtype = "str"
    description = ("A small list of varied, plain English sentences written for topo_mi and "
                   "shipped with the package, for collecting language-model activations offline "
                   "(X a numpy str array of shape (n,); y None).")
    defaults: dict = {}

    def size(self, p):
        return len(read_sentences())

    def generate_full(self, p, seeds):
        return np.array(read_sentences(), dtype=str), None

    def notes(self, p):
        return ["n: a random subset; rows keep the file's order",
                "file: topo_mi/datasets/data/sentences.txt, one sentence a line"]


def read_text_corpus() -> tuple[list[str], list[str], list[int]]:
    """``(sentences, topics, topic index of each sentence)`` from ``data/text.txt``."""
    text = resources.files("topo_mi.datasets").joinpath("data/text.txt").read_text(encoding="utf-8")
    sentences: list[str] = []
    topics: list[str] = []
    labels: list[int] = []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("## "):
            topics.append(line[3:].strip())
        elif line and not line.startswith("#"):
            sentences.append(line)
            labels.append(len(topics) - 1)
    return sentences, topics, labels


@register
class Text(Spec):
    name = "text"
    kind = "real"
    finite = True
    dtype = "str"
    description = ("An English corpus for per-token language-model work offline: 865 plain sentences "
                   "(14,185 all-MiniLM-L6-v2 tokens with [CLS]/[SEP], 12,455 without) on 20 topics "
                   "(cooking, weather, astronomy, gardening, music, sports, history, computing, medicine, "
                   "travel, finance, biology, ocean, architecture, law and civics, home life, books and "
                   "language, transport and energy, science and measurement, everyday scenes), written "
                   "for topo_mi and shipped with the package (X a numpy str array of shape (n,); y the "
                   "topic index, int64).")
    reference = ("written for topo_mi (no outside source); the 'everyday scenes' topic is the "
                 "'sentences' dataset")
    defaults: dict = {}

    def size(self, p):
        return len(read_text_corpus()[0])

    def generate_full(self, p, seeds):
        sentences, _, labels = read_text_corpus()
        return np.array(sentences, dtype=str), np.array(labels, dtype=np.int64)

    def facts(self, p):
        return {"classes": dict(enumerate(read_text_corpus()[1]))}

    def notes(self, p):
        return ["n: a random subset; rows keep the file's order (grouped by topic)",
                "file: topo_mi/datasets/data/text.txt, '## topic' lines then one sentence a line",
                "tokens: count with topo_mi.activations.collect_text(model, tokenizer, make('text').X, ...)"]
