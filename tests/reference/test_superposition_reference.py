"""Toy models of superposition against the values of Elhage et al. (2022) reproduced in REFERENCES.md."""
from __future__ import annotations

import numpy as np
import pytest

from topo_mi.superposition import train_toy_models

SEEDS = (0, 1, 2)


@pytest.fixture(scope="module")
def five_in_two():
    # The paper's protocol: n = 5, m = 2, I_i = 0.9^i, AdamW lr 1e-3, batch 1,024, 10,000 steps; dense and
    # S = 0.95, three seeds each, all six models in one batched run (about 15 s on one core).
    return train_toy_models(5, 2, sparsity=[0.0] * 3 + [0.95] * 3, importance=0.9, seeds=list(SEEDS) * 2,
                            steps=10000, batch_size=1024, lr=1e-3)


def test_dense_gives_two_orthogonal_features(five_in_two):
    g = five_in_two.geometry
    for k in range(3):
        D, norms, b = g.dimensionality[k], g.norms[k], five_in_two.b[k]
        np.testing.assert_allclose(D[:2], 1.0, atol=0.02)
        assert np.all(norms[2:] < 0.1), norms                      # the others are not learned
        np.testing.assert_allclose(b[2:], 0.5, atol=0.05)          # their biases ≈ E[x_i] = 1/2
        W = five_in_two.W[k]
        assert abs(W[0] @ W[1]) / (norms[0] * norms[1]) < 0.02
        assert g.polytopes[k] == ["dedicated", "dedicated", "not_learned", "not_learned", "not_learned"]
    np.testing.assert_allclose(five_in_two.final_loss[:3], 0.0367, atol=0.002)


def _is_pentagon(W, b):
    norms = np.linalg.norm(W, axis=1)
    D = norms ** 2 / ((W / norms[:, None] @ W.T) ** 2).sum(axis=1)
    ang = np.sort(np.mod(np.degrees(np.arctan2(W[:, 1], W[:, 0])), 360.0))
    gaps = np.diff(np.append(ang, ang[0] + 360.0))
    return (np.all(norms > 0.9) and np.all(np.abs(D - 0.4) < 0.03) and np.all(np.abs(gaps - 72.0) < 5.0)
            and np.all(b < 0))


def test_sparse_gives_a_regular_pentagon(five_in_two):
    hits = [_is_pentagon(five_in_two.W[k], five_in_two.b[k]) for k in range(3, 6)]
    assert sum(hits) >= 2, hits
    labels = five_in_two.geometry.polytopes[3:]
    assert sum(lab == ["pentagon"] * 5 for lab in labels) >= 2, labels
    assert np.all(five_in_two.final_loss[3:] < 0.003)


def test_phase_diagram_corner_cells():
    # REFERENCES' n = 2, m = 1 table (best of 3 seeds, 5,000 steps): dense & r = 0.1 -> X (extra not
    # learned); dense & r = 5 -> D (extra dedicated); density 0.01 -> S (antipodal) at both ends.
    from topo_mi.superposition import phase_diagram

    pd = phase_diagram(density=[1.0, 0.01], ratio=[0.1, 5.0], seeds=[0, 1, 2], steps=5000)
    assert pd.phases == [["not_learned", "dedicated"], ["antipodal", "antipodal"]], pd.table()
    np.testing.assert_allclose(np.abs(pd.W[1]), 1.0, atol=0.1)        # W ≈ ±(1, −1)
