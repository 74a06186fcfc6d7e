"""Known answers for topo_mi.synthesis.

- A rank-r projection of a layer whose centred activations have rank r reproduces it exactly
  (coverage 1); at rank r − 1 δ(x) is the discarded component |⟨h(x) − μ, u_r⟩|, so the coverage
  curve is the empirical CDF of that coefficient, computed here by hand.
- A planted circuit (12 edges carrying the task) covers nearly every input at ε = 0.1; magnitude
  pruning at the same size keeps distractors and covers few.
- Two complementary partial interpretations (each zero-ablates the half of a hidden layer that is
  silent on its half of the inputs): each covers its half exactly, the union every input.
- Bootstrap intervals of the coverage and of the area cover the true values at the nominal rate
  when δ has a known distribution (exponential).
"""
import math

import numpy as np
import pytest
import torch
from torch import nn

import topo_mi.synthesis as S


def _rank_r_network(r=3, m=7, n=400, seed=0):
    """x ∈ R^r with exactly orthogonal centred columns of distinct scales; h = x Uᵀ + c, U orthonormal."""
    rng = np.random.default_rng(seed)
    Z = rng.normal(size=(n, r))
    Z -= Z.mean(axis=0)
    Q, _ = np.linalg.qr(Z)
    scales = np.array([5.0, 2.0, 0.7, 0.3, 0.1][:r])
    x = Q * scales * np.sqrt(n)               # columns orthogonal, centred, norms scales·sqrt(n)
    U, _ = np.linalg.qr(rng.normal(size=(m, r)))
    c = rng.normal(size=m)
    net = nn.Sequential(nn.Linear(r, m).double(), nn.ReLU(), nn.Linear(m, 2).double())
    with torch.no_grad():
        net[0].weight.copy_(torch.as_tensor(U))
        net[0].bias.copy_(torch.as_tensor(c))
    return net, x, U, c


def test_rank_r_projection_of_a_rank_r_layer_covers_everything():
    net, x, U, c = _rank_r_network(r=3)
    interp = S.projection(net, "0", 3, x)
    for space in ("0", "logits"):
        res = S.coverage(net, interp, x, space=space, eps=1e-9, n_boot=0)
        assert res.delta.max() < 1e-10
        assert res.coverage == 1.0
    assert interp.budget("0", "l2")[0] < 1e-10


def test_rank_r_minus_one_coverage_is_the_discarded_component_by_hand():
    net, x, U, c = _rank_r_network(r=3)
    res = S.coverage(net, S.projection(net, "0", 2, x), x, space="0", eps=0.5, n_grid=300, n_boot=0)
    # by hand: the smallest-scale coefficient, centred (it is centred already)
    discarded = np.abs(x[:, 2] - x[:, 2].mean())
    np.testing.assert_allclose(res.delta, discarded, rtol=1e-9, atol=1e-12)
    grid = res.eps_grid
    hand = np.array([np.mean(discarded < e) for e in grid])
    np.testing.assert_array_equal(res.curve, hand)
    # the budget is the RMS of the discarded coefficient: sqrt(s_3² / n) = 0.7
    assert res.budget == pytest.approx(0.7, rel=1e-9)
    assert res.K == pytest.approx(discarded.max() / 0.7, rel=1e-9)


@pytest.fixture(scope="module")
def planted():
    from topo_mi.circuits import find_circuit
    from topo_mi.circuits._planted import planted_network

    net, x, truth = planted_network(seed=0, n_samples=1024)
    return net, x, find_circuit(net, x, l0=1.0, steps=300, lr=0.05, seed=0)


def test_planted_circuit_covers_almost_everything_and_magnitude_pruning_does_not(planted):
    net, x, res = planted
    circ = S.circuit(net, res, data=x)
    mag = S.circuit(net, res, data=x, ranking="magnitude")
    a, b = S.evaluate(net, [circ, mag], x, eps=0.1, n_boot=500)
    assert a.coverage >= 0.95 and a.coverage_low >= 0.9
    assert b.coverage <= 0.3 and b.coverage_high < a.coverage_low
    assert mag.replaces.startswith(f"the {res.n_units - res.n_kept} of {res.n_units}")


def _two_halves(seed=0, n=500):
    rng = np.random.default_rng(seed)
    net = nn.Sequential(nn.Linear(2, 4).double(), nn.ReLU(), nn.Linear(4, 2).double())
    W2 = rng.normal(size=(2, 4))
    with torch.no_grad():
        net[0].weight.copy_(torch.tensor([[1.0, 0], [1.0, 0], [-1.0, 0], [-1.0, 0]], dtype=torch.float64))
        net[0].bias.zero_()
        net[2].weight.copy_(torch.as_tensor(W2))
        net[2].bias.zero_()
    return net, rng.normal(size=(n, 2)), W2


def test_union_of_two_complementary_partial_interpretations():
    net, x, W2 = _two_halves()
    keep_pos = S.replace(net, {"1": lambda h: h * torch.tensor([1.0, 1, 0, 0], dtype=h.dtype)}, name="positive")
    keep_neg = S.replace(net, {"1": lambda h: h * torch.tensor([0.0, 0, 1, 1], dtype=h.dtype)}, name="negative")
    eps = 0.05
    res = S.evaluate(net, [keep_pos, keep_neg], x, eps=eps, n_boot=200)
    # by hand: keeping units 0, 1 is exact when x0 >= 0; otherwise δ = |x0|·‖W2[:, 2] + W2[:, 3]‖
    x0 = x[:, 0]
    d_pos = np.where(x0 >= 0, 0.0, np.abs(x0) * np.linalg.norm(W2[:, 2] + W2[:, 3]))
    d_neg = np.where(x0 <= 0, 0.0, np.abs(x0) * np.linalg.norm(W2[:, 0] + W2[:, 1]))
    np.testing.assert_allclose(res[0].delta, d_pos, atol=1e-12)
    np.testing.assert_allclose(res[1].delta, d_neg, atol=1e-12)
    p = S.combine(res, n_boot=200)
    assert p.coverage == 1.0 and np.all(p.curve == 1.0)
    for k, d in enumerate((d_pos, d_neg)):
        assert p.member_coverage[k] == pytest.approx(np.mean(d < eps))
        assert p.member_coverage[k] < 0.7     # half the inputs, plus those with |x0| < ε / ‖·‖
    assert p.gain == pytest.approx(1.0 - p.member_coverage.max())
    assert p.overlap[0, 1] == pytest.approx(np.mean((d_pos < eps) & (d_neg < eps)))


def test_bootstrap_intervals_cover_at_the_nominal_rate():
    rng = np.random.default_rng(11)
    eps, emax, n, reps = 0.7, 2.0, 200, 300
    true_cov = 1 - math.exp(-eps)
    true_area = 1 - (1 - math.exp(-emax)) / emax       # 1 − E[min(δ, E)] / E for δ ~ Exp(1)
    hits_c = hits_a = 0
    for rep in range(reps):
        d = rng.exponential(size=n)
        st = S.coverage_stats(d, eps=eps, eps_max=emax, n_boot=400, ci=0.9, seed=rep)
        hits_c += st["coverage_low"] <= true_cov <= st["coverage_high"]
        hits_a += st["area_low"] <= true_area <= st["area_high"]
    # 0.9 nominal; the binomial sd over 300 repetitions is 0.017, so 0.84..0.96 is ±3.5 sd
    assert 0.84 <= hits_c / reps <= 0.96, hits_c / reps
    assert 0.84 <= hits_a / reps <= 0.96, hits_a / reps
