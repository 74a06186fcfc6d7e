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


# ---------------------------------------------------------------------------------------------
# Hessian tools: conventions and bad input
# ---------------------------------------------------------------------------------------------
from topo_mi.differential import (  # noqa: E402
    HessianSpectrum, LossHessian, exact_hessian, hessian_logdet, hessian_spectrum, hutchinson_trace, lanczos,
)
from topo_mi.errors import ResourceError  # noqa: E402


def _cls_data(n=30, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, generator=g, dtype=torch.float64), torch.randint(0, 4, (n,), generator=g)


def test_parameter_selection_and_reduction(relu_net):
    X, y = _cls_data()
    full = exact_hessian(relu_net, "cross_entropy", (X, y))
    op = LossHessian(relu_net, "cross_entropy", (X, y), params=["out.*"])
    assert op.names == ["out.weight", "out.bias"] and op.dim == 8 * 4 + 4
    start = full.shape[0] - op.dim                      # "out" is last in named_parameters order
    np.testing.assert_allclose(op.dense(), full[start:, start:], atol=1e-13)
    s = exact_hessian(relu_net, "cross_entropy", (X, y), reduction="sum", params="out.weight")
    np.testing.assert_allclose(s / len(X), full[start:start + 32, start:start + 32], atol=1e-12)
    # a callable per-sample loss equals the named one
    ce = lambda out, t: torch.nn.functional.cross_entropy(out, t, reduction="none")  # noqa: E731
    np.testing.assert_allclose(exact_hessian(relu_net, ce, (X, y), params="out.*"), op.dense(), atol=1e-13)


def test_logdet_and_positive_definite_requirement():
    X = torch.randn(40, 3, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    y = torch.zeros(40, dtype=torch.float64)
    lin = nn.Linear(3, 1, bias=False).double()
    H = 2 * X.T.numpy() @ X.numpy() / 40
    assert hessian_logdet(lin, "mse", (X, y)) == pytest.approx(np.linalg.slogdet(H)[1], rel=1e-12)
    net = MLP(3, [5], 4, activation="tanh", seed=0).double()
    Xc, yc = _cls_data()
    with pytest.raises(InvalidParameterError, match="damping: expected H \\+ damping I to be positive definite"):
        hessian_logdet(net, "cross_entropy", (Xc, yc))
    r = hessian_spectrum(net, "cross_entropy", (Xc, yc), k=2, method="exact", density=False)
    with pytest.raises(InvalidParameterError, match="hessian: expected a positive-definite Hessian"):
        r.require_positive_definite("a Cholesky factor")


def test_hessian_bad_input(relu_net, tmp_path):
    X, y = _cls_data()
    with pytest.raises(InvalidParameterError, match="k: expected at most the number of parameters"):
        hessian_spectrum(relu_net, "cross_entropy", (X, y), k=10**6)
    frozen = MLP(3, [4], 2).double().requires_grad_(False)
    with pytest.raises(InvalidParameterError, match="model: expected a model with trainable parameters"):
        LossHessian(frozen, "cross_entropy", (X, y))
    with pytest.raises(InvalidParameterError, match="params: expected names or patterns"):
        LossHessian(relu_net, "cross_entropy", (X, y), params="fc9.*")
    with pytest.raises(UnknownNameError, match="reduction"):
        LossHessian(relu_net, "cross_entropy", (X, y), reduction="avg")
    with pytest.raises(UnknownNameError, match="loss"):
        LossHessian(relu_net, "hinge", (X, y))
    with pytest.raises(InvalidParameterError, match="data: expected X and y with the same"):
        LossHessian(relu_net, "cross_entropy", (X, y[:5]))
    bad = nn.Linear(3, 1, bias=False).double()
    with torch.no_grad():
        bad.weight.fill_(1e200)                      # finite weights, an overflowing loss on the second batch
    z = torch.zeros(10, dtype=torch.float64)
    with pytest.raises(NonFiniteError, match=r"non-finite one on batch 1 \(samples 10\.\.19\)"):
        LossHessian(bad, "mse", [(torch.zeros(10, 3, dtype=torch.float64), z),
                                 (torch.ones(10, 3, dtype=torch.float64), z)]).loss_value()
    with pytest.raises(ResourceError, match="max_params"):
        exact_hessian(relu_net, "cross_entropy", (X, y), max_params=10)
    with pytest.raises(InvalidParameterError, match="dim: expected"):
        lanczos(lambda v: v, k=1)
    with pytest.raises(InvalidParameterError, match="n_probes: expected an integer >= 2"):
        hutchinson_trace(np.eye(3), n_probes=1)


def test_spectrum_result_roundtrip_and_plot(relu_net, tmp_path):
    X, y = _cls_data()
    r = hessian_spectrum(relu_net, "cross_entropy", (X, y), k=3, n_probes=20, slq_vectors=2, slq_steps=20)
    back = HessianSpectrum.load(r.save(tmp_path / "spec"))
    np.testing.assert_array_equal(back.top, r.top)
    a, b = back.summary(), r.summary()
    assert a.keys() == b.keys() and all(a[key] == b[key] or (a[key] != a[key] and b[key] != b[key]) for key in a)
    assert back.trace.n_probes == 20 and back.density.n_vectors == 2
    assert r.plot() is not None and r.trace.plot() is not None
    # Hessian of a ReLU network is block-structured but symmetric; Lanczos's Ritz values bracket the exact ones
    ev = np.linalg.eigvalsh(exact_hessian(relu_net, "cross_entropy", (X, y)))
    assert r.top[0] <= ev[-1] * (1 + 1e-10) and r.bottom[0] >= ev[0] - 1e-10 * abs(ev).max()


def test_exact_path_is_exact_for_float32_models():
    net = MLP(3, [8, 8], 4, seed=0)                              # float32 weights
    x = 4 * torch.randn(6, 3, generator=torch.Generator().manual_seed(3))
    ex = integrated_gradients(net, x, target=2, rule="exact")
    assert ex.delta.max() < 1e-10 and ex.attributions.dtype == np.float64
    ref = integrated_gradients(MLP(3, [8, 8], 4, seed=0).double(), x.double(), target=2, rule="exact")
    np.testing.assert_allclose(ex.attributions, ref.attributions, atol=1e-12)


# ---------------------------------------------------------------------------------------------
# pipeline, spec and runner
# ---------------------------------------------------------------------------------------------
def test_sensitivity_profile_known_answers(tmp_path):
    from topo_mi._results import load_result
    from topo_mi.pipelines import sensitivity_profile

    net = MLP(3, [6, 5], 3, seed=1).double()
    X, _ = _cls_data(40, seed=4)
    y = torch.randint(0, 3, (40,), generator=torch.Generator().manual_seed(5))
    res = sensitivity_profile(net, (X, y), rule="exact", steps=8, panels=2, attribution_samples=25, k=3,
                              hessian_method="exact", seed=0)
    assert res.layers == ["input", "act1", "act2"] and res.n_attributed == 25 and res.n_hessian == 40
    assert res.attributions["input"].rule == "exact" and res.attributions["input"].delta.max() < 1e-10
    assert res.attributions["act2"].delta.max() < 1e-10          # linear read-out after act2: exact at any rule
    ev = np.linalg.eigvalsh(exact_hessian(net, "cross_entropy", (X, y)))
    np.testing.assert_allclose(res.spectrum.top, ev[::-1][:3], rtol=1e-10)
    s = res.summary()
    assert s["hessian_lambda_max"] == pytest.approx(ev[-1], rel=1e-10) and s["hessian_n_negative_exact"]
    sec = res.report_section()
    assert sec["headline"].endswith(".") and sec["table"]["index"] == res.layers
    assert len(sec["table"]["rows"]) == 3 and len(sec["table"]["rows"][0]) == len(sec["table"]["columns"])
    back = load_result(res.save(tmp_path / "sens"))
    np.testing.assert_array_equal(back.attributions["act1"].attributions, res.attributions["act1"].attributions)
    assert res.plot() is not None
    # no labels: attributions of the predicted class, no Hessian
    res2 = sensitivity_profile(net, X, target="predicted", hessian=False, method="saliency", layers=["act1"])
    assert res2.spectrum is None and res2.layers == ["input", "act1"]
    with pytest.raises(InvalidParameterError, match="target: expected 'predicted' or an output index"):
        sensitivity_profile(net, X, hessian=False)


def test_differential_spec_section_and_run(tmp_path, report_checker):
    from topo_mi.errors import SpecError
    from topo_mi.pipelines import load_spec, run
    from topo_mi.pipelines.runner import check_analysis_params

    spec = """
name = "sens"
seed = 0
[dataset]
name = "clusters"
n = 120
params = { n_clusters = 2 }
[model]
architecture = "mlp"
params = { widths = [8, 8], out_dim = 2 }
train = { epochs = 2 }
[analyses.differential]
subsample = 80
attribution_samples = 20
steps = 8
k = 3
max_probes = 20
slq_vectors = 2
slq_steps = 20
"""
    check_analysis_params(load_spec(spec))
    with pytest.raises(SpecError, match="analyses.differential.stepz"):
        check_analysis_params(load_spec(spec.replace("steps = 8", "stepz = 8")))
    with pytest.raises(SpecError, match="model"):
        load_spec('[analyses.differential]\nk = 3\n')
    out = run(spec, out=tmp_path / "run", progress=False)
    results = report_checker(tmp_path / "run")
    d = results["analyses"]["differential"]
    assert d["n_hessian"] == 80 and d["n_attributed"] == 20 and d["hessian_dim"] == 2 * 8 + 8 + 8 * 8 + 8 + 8 * 2 + 2
    assert (tmp_path / "run" / "figures" / "differential.png").is_file() and out.timings["differential"] > 0


def test_shipped_spec_validates():
    from pathlib import Path

    from topo_mi.pipelines import load_spec
    from topo_mi.pipelines.runner import check_analysis_params

    spec = load_spec(Path(__file__).resolve().parents[2] / "pipelines" / "digits_sensitivity.toml")
    check_analysis_params(spec)
    assert spec["model"]["zoo"] == "mlp-digits" and "differential" in spec["analyses"]


def test_token_models_attribute_to_a_layer():
    from topo_mi.models import AttentionOnlyTransformer

    m = AttentionOnlyTransformer(d_vocab=8, d_model=8, n_ctx=3, d_head=8, seed=0).double()
    toks = torch.randint(0, 8, (5, 3), generator=torch.Generator().manual_seed(0))
    last_logit = lambda out: out[:, -1, 2]  # noqa: E731
    res = integrated_gradients(m, toks, target=last_logit, layer="hook_embed", steps=20, baseline=torch.zeros(3,
                                                                                                         dtype=torch.long))
    assert res.attributions.shape == (5, 3, 8)
    # the path integrand is smooth (softmax attention): Gauss-Legendre converges spectrally, so 20 nodes
    # already give completeness to rounding, while left Riemann sums err at O(1/n)
    assert res.delta.max() < 1e-10
    left = integrated_gradients(m, toks, target=last_logit, layer="hook_embed", steps=20, rule="riemann_left")
    assert left.delta.max() > 1e-4
    with pytest.raises(InvalidParameterError, match="layer: expected a module name for integer inputs"):
        saliency(m, toks, target=last_logit)
    with pytest.raises(InvalidParameterError, match="inputs: expected floating inputs for smoothgrad"):
        smoothgrad(m, toks, target=last_logit, layer="hook_embed")
