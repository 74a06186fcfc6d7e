"""topo_mi.differential: attributions (completeness, known closed forms), Hessian tools, pipeline."""
import numpy as np
import pytest
import torch
from torch import nn

from topo_mi.differential import (
    AttributionResult, input_x_gradient, integrated_gradients, quadrature, saliency, smoothgrad,
)
from topo_mi.errors import InvalidParameterError, NonFiniteError, UnknownNameError
from topo_mi.models import MLP


class Quadratic(nn.Module):
    """f(x) = x^T A x + b^T x + c, one scalar per sample."""

    def __init__(self, d, seed=0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.A = nn.Parameter(torch.randn(d, d, generator=g, dtype=torch.float64))
        self.b = nn.Parameter(torch.randn(d, generator=g, dtype=torch.float64))

    def forward(self, x):
        return torch.einsum("ni,ij,nj->n", x, self.A, x) + x @ self.b + 0.5


def _x(n, d, seed=1):
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


@pytest.fixture(scope="module")
def relu_net():
    return MLP(3, [8, 8], 4, seed=0).double()


# ---------------------------------------------------------------------------------------------
# quadrature
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("rule", ["gauss_legendre", "trapezoid", "riemann_left", "riemann_right", "riemann_middle"])
def test_quadrature_weights_sum_to_one_and_integrate_their_degree(rule):
    t, w = quadrature(rule, 7)
    assert np.isclose(w.sum(), 1.0, atol=1e-14) and np.all((t >= 0) & (t <= 1))
    degree = {"gauss_legendre": 13, "trapezoid": 1, "riemann_middle": 1, "riemann_left": 0, "riemann_right": 0}[rule]
    for p in range(degree + 1):
        assert np.isclose(np.sum(w * t ** p), 1.0 / (p + 1), atol=1e-13), p
    tc, wc = quadrature(rule, 7, panels=5)
    assert len(tc) == 35 and np.isclose(wc.sum(), 1.0, atol=1e-13)
    assert np.isclose(np.sum(wc * tc ** min(degree, 1)), 1.0 / (min(degree, 1) + 1), atol=1e-13)


def test_trapezoid_weights_are_exact_for_every_n():
    # end points halved, interior 1/(n-1): constants and linear integrands exact for every n >= 2
    # (captum 0.9's riemann_trapezoid under-counts by (n - 1)/n; see REFERENCES)
    for n in (2, 3, 10, 50):
        t, w = quadrature("trapezoid", n)
        assert np.isclose(w.sum(), 1.0, atol=1e-14) and np.isclose(np.sum(w * t), 0.5, atol=1e-14)
        assert np.isclose(w[0], 0.5 / (n - 1)) and np.isclose(w[-1], 0.5 / (n - 1))
        assert np.allclose(w[1:-1], 1.0 / (n - 1))


# ---------------------------------------------------------------------------------------------
# integrated gradients: completeness and closed forms
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("rule", ["gauss_legendre", "trapezoid"])
def test_ig_quadratic_exact(rule):
    d = 5
    model, x = Quadratic(d), _x(6, d)
    res = integrated_gradients(model, x, rule=rule, steps=3)
    A, b = model.A.detach(), model.b.detach()
    expected = x * (x @ (A + A.T) / 2 + b)       # baseline 0: IG_j = x_j ((A + A^T) x / 2 + b)_j
    np.testing.assert_allclose(res.attributions, expected.numpy(), atol=1e-12)
    assert res.delta.max() < 1e-10
    np.testing.assert_allclose(res.f_inputs - res.f_baseline, expected.sum(1).numpy(), atol=1e-12)


def test_ig_quadratic_nonzero_baseline_completeness():
    model, x = Quadratic(4, seed=3), _x(5, 4)
    base = torch.linspace(-1, 1, 4, dtype=torch.float64)
    for rule in ("gauss_legendre", "trapezoid"):
        res = integrated_gradients(model, x, baseline=base, rule=rule, steps=2)
        assert res.delta.max() < 1e-10


def test_ig_left_riemann_error_is_the_predicted_first_order_term():
    model, x = Quadratic(4, seed=2), _x(3, 4)
    A = model.A.detach()
    n = 20
    res = integrated_gradients(model, x, rule="riemann_left", steps=n)
    # integrand c + a d with d = (A + A^T) x: left sum = c + d (n - 1)/(2n), integral c + d/2, error -d/(2n)
    predicted = np.abs((x * (x @ (A + A.T))).sum(1).numpy() / (2 * n))
    np.testing.assert_allclose(res.delta, predicted, rtol=1e-10)


def test_ig_linear_model_and_layer_attributions(relu_net):
    lin = nn.Linear(4, 3, dtype=torch.float64)
    x = _x(5, 4)
    for rule in ("gauss_legendre", "trapezoid"):
        res = integrated_gradients(lin, x, target=2, baseline=1.0, rule=rule, steps=2)
        np.testing.assert_allclose(res.attributions, ((x - 1.0) * lin.weight[2].detach()).numpy(), atol=1e-13)
        assert res.delta.max() < 1e-10
    # after act2 the MLP is linear: layer IG = (h - h') * W_out[c] exactly, with completeness
    x3 = _x(7, 3)
    res = integrated_gradients(relu_net, x3, target=1, layer="act2", steps=2)
    with torch.no_grad():
        h = relu_net[:4](x3)
        h0 = relu_net[:4](torch.zeros_like(x3))
    np.testing.assert_allclose(res.attributions, ((h - h0) * relu_net.out.weight[1]).detach().numpy(), atol=1e-13)
    assert res.delta.max() < 1e-10 and res.layer == "act2" and res.attributions.shape == (7, 8)


def test_ig_exact_relu_path_matches_many_step_gauss_legendre(relu_net):
    x = _x(5, 3, seed=0)
    base = torch.full((3,), 0.3, dtype=torch.float64)
    ex = integrated_gradients(relu_net, x, target=1, baseline=base, rule="exact")
    assert ex.delta.max() < 1e-10
    assert ex.n_segments.min() >= 1 and ex.n_segments.max() > 1   # the paths cross region boundaries
    gl = integrated_gradients(relu_net, x, target=1, baseline=base, rule="gauss_legendre", steps=16, panels=10000,
                              batch_size=65536)
    assert np.abs(ex.attributions - gl.attributions).max() < 1e-6
    few = integrated_gradients(relu_net, x, target=1, baseline=base, rule="gauss_legendre", steps=8)
    assert np.abs(ex.attributions - few.attributions).max() > 1e-6  # the quadrature error is visible
    # per-sample targets and leaky ReLU
    leaky = MLP(3, [6, 6], 3, activation="leaky_relu", seed=2).double()
    ex2 = integrated_gradients(leaky, x, target=[0, 1, 2, 0, 1], rule="exact")
    assert ex2.delta.max() < 1e-10


def test_exact_rule_on_a_linear_region_is_one_segment():
    lin = nn.Sequential(nn.Linear(3, 2, dtype=torch.float64))
    res = integrated_gradients(lin, _x(4, 3), target=0, rule="exact")
    assert list(res.n_segments) == [1, 1, 1, 1]
    np.testing.assert_allclose(res.attributions, (_x(4, 3) * lin[0].weight[0].detach()).numpy(), atol=1e-14)


# ---------------------------------------------------------------------------------------------
# gradient maps
# ---------------------------------------------------------------------------------------------
def test_saliency_input_x_gradient_smoothgrad_on_linear_models(relu_net):
    lin = nn.Linear(4, 3, dtype=torch.float64)
    x = _x(5, 4)
    w = lin.weight[1].detach().numpy()
    np.testing.assert_allclose(saliency(lin, x, target=1).attributions, np.tile(w, (5, 1)), atol=1e-14)
    np.testing.assert_allclose(saliency(lin, x, target=1, absolute=True).attributions, np.tile(np.abs(w), (5, 1)))
    np.testing.assert_allclose(input_x_gradient(lin, x, target=1).attributions, x.numpy() * w, atol=1e-14)
    sg = smoothgrad(lin, x, target=1, n_samples=7, seed=0)
    np.testing.assert_allclose(sg.attributions, np.tile(w, (5, 1)), atol=1e-13)
    # layer saliency downstream of act2 is the read-out row
    x3 = _x(6, 3)
    s = saliency(relu_net, x3, target=3, layer="act2")
    np.testing.assert_allclose(s.attributions, np.tile(relu_net.out.weight[3].detach().numpy(), (6, 1)), atol=1e-14)


def test_smoothgrad_quadratic_is_unbiased_and_seeded():
    model, x = Quadratic(3, seed=4), _x(4, 3)
    A, b = model.A.detach(), model.b.detach()
    n_s, noise = 400, 0.1
    sg = smoothgrad(model, x, n_samples=n_s, noise=noise, seed=5)
    exact = (x @ (A + A.T) + b).numpy()
    sigma = noise * (x.max(1).values - x.min(1).values).numpy()
    # mean gradient = exact + (A + A^T) eps_bar: per-coordinate sd sigma * ||row of A + A^T|| / sqrt(n)
    sd = sigma[:, None] * np.linalg.norm((A + A.T).numpy(), axis=1)[None] / np.sqrt(n_s)
    assert np.all(np.abs(sg.attributions - exact) < 4 * sd)
    again = smoothgrad(model, x, n_samples=n_s, noise=noise, seed=5)
    np.testing.assert_array_equal(sg.attributions, again.attributions)


def test_attribution_restores_training_flag_and_roundtrips(tmp_path, relu_net):
    relu_net.train()
    res = integrated_gradients(relu_net, _x(4, 3), target=0, steps=5)
    assert relu_net.training
    relu_net.eval()
    back = AttributionResult.load(res.save(tmp_path / "ig"))
    np.testing.assert_array_equal(back.attributions, res.attributions)
    assert back.summary() == res.summary()
    assert res.plot() is not None


# ---------------------------------------------------------------------------------------------
# bad input
# ---------------------------------------------------------------------------------------------
def test_attribution_bad_input(relu_net):
    x = _x(4, 3)
    with pytest.raises(InvalidParameterError, match="target: expected a class index"):
        saliency(relu_net, x)                                   # 4 outputs, no selector
    with pytest.raises(InvalidParameterError, match="target: expected an output index"):
        saliency(relu_net, x, target=4)
    with pytest.raises(InvalidParameterError, match="target: expected"):
        saliency(relu_net, x, target=[0, 1])
    with pytest.raises(InvalidParameterError, match=r"baseline: expected .*shape \(5,\)"):
        integrated_gradients(relu_net, x, target=0, baseline=torch.zeros(5))
    with pytest.raises(InvalidParameterError, match="steps: expected an integer >= 2"):
        integrated_gradients(relu_net, x, target=0, steps=1)
    with pytest.raises(UnknownNameError, match="rule"):
        integrated_gradients(relu_net, x, target=0, rule="simpson")
    with pytest.raises(UnknownNameError, match="layer"):
        saliency(relu_net, x, target=0, layer="act9")
    with pytest.raises(NonFiniteError, match="inputs"):
        saliency(relu_net, torch.tensor([[0.0, float("nan"), 1.0]]), target=0)
    tanh = MLP(3, [4], 2, activation="tanh").double()
    with pytest.raises(InvalidParameterError, match="model: expected a piecewise-linear network"):
        integrated_gradients(tanh, x, target=0, rule="exact")
    with pytest.raises(InvalidParameterError, match="layer: expected None with rule='exact'"):
        integrated_gradients(relu_net, x, target=0, rule="exact", layer="act1")
    with pytest.raises(InvalidParameterError, match="steps: expected at most"):
        integrated_gradients(relu_net, x, target=0, steps=10**6)
