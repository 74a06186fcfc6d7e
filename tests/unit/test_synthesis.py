"""topo_mi.synthesis: the interpretation protocol, δ, coverage statistics, K, pluralism, errors."""
import math

import numpy as np
import pytest
import torch
from torch import nn

import topo_mi.synthesis as S
from topo_mi.errors import InvalidParameterError, NonFiniteError, TopoMIError, UnknownNameError


def _mlp(seed=0, dims=(3, 8, 8, 2), dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    mods = []
    for i in range(len(dims) - 1):
        lin = nn.Linear(dims[i], dims[i + 1]).to(dtype)
        with torch.no_grad():
            lin.weight.copy_(torch.randn(lin.weight.shape, generator=g, dtype=dtype))
            lin.bias.copy_(torch.randn(lin.bias.shape, generator=g, dtype=dtype) * 0.1)
        mods.append(lin)
        if i < len(dims) - 2:
            mods.append(nn.ReLU())
    return nn.Sequential(*mods)


@pytest.fixture(scope="module")
def net_x():
    net = _mlp()
    x = np.random.default_rng(0).normal(size=(300, 3))
    return net, x


def _outputs(net, x):
    with torch.no_grad():
        return net(torch.as_tensor(x)).numpy()


# -- the identity and the constant mean --------------------------------------------------------------

def test_identity_has_zero_delta_and_full_coverage_at_every_eps(net_x):
    net, x = net_x
    for space in ("logits", "probs", "2"):
        r = S.coverage(net, S.identity(net), x, space=space, eps=1e-12, n_boot=50)
        assert np.all(r.delta == 0)
        assert r.coverage == 1.0 and np.all(r.curve == 1.0)
        for eps in (1e-300, 1e-9, 0.5, 10.0):
            assert r.coverage_at(eps) == 1.0
        assert r.K == 0.0 and r.sup_delta == 0.0


def test_constant_mean_coverage_is_the_empirical_cdf_of_the_distance_to_the_mean(net_x):
    net, x = net_x
    out = _outputs(net, x)
    dist = np.linalg.norm(out - out.mean(axis=0), axis=1)
    r = S.coverage(net, S.constant_mean(net, x), x, eps=1.0, n_grid=200, n_boot=0)
    np.testing.assert_allclose(r.delta, dist, rtol=1e-12, atol=1e-12)
    # coverage(ε) = #{d < ε} / n: the empirical CDF's left limit, also at the data values themselves
    for eps in list(r.eps_grid) + list(np.sort(r.delta)[::17]):
        assert r.coverage_at(eps) == np.sum(r.delta < eps) / len(dist)
    np.testing.assert_array_equal(r.curve, [np.mean(r.delta < e) for e in r.eps_grid])


def test_norms_and_probability_space(net_x):
    net, x = net_x
    out = _outputs(net, x)
    m = out.mean(axis=0)
    for norm, fn in (("l1", lambda d: np.abs(d).sum(1)), ("linf", lambda d: np.abs(d).max(1))):
        r = S.coverage(net, S.constant_mean(net, x), x, norm=norm, n_boot=0)
        np.testing.assert_allclose(r.delta, fn(out - m), rtol=1e-12)
    p = np.exp(out - out.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    r = S.coverage(net, S.constant_mean(net, x, space="probs"), x, space="probs", n_boot=0)
    np.testing.assert_allclose(r.delta, np.linalg.norm(p - p.mean(0), axis=1), rtol=1e-10)
    # a logits surrogate compared in probability space goes through the softmax
    r2 = S.coverage(net, S.function(lambda xb: net(xb), space="logits"), x, space="probs", n_boot=0)
    assert np.abs(r2.delta).max() < 1e-12


def test_relative_scale_is_the_rms_distance_to_the_mean(net_x):
    net, x = net_x
    out = _outputs(net, x)
    s = np.sqrt(np.mean(np.sum((out - out.mean(0)) ** 2, axis=1)))
    r = S.coverage(net, S.constant_mean(net, x), x, relative=True, n_boot=0)
    assert r.scale == pytest.approx(s, rel=1e-12)
    assert np.sqrt(np.mean(r.delta ** 2)) == pytest.approx(1.0, rel=1e-12)


# -- statistics ----------------------------------------------------------------------------------

def test_area_is_the_integral_of_the_step_curve():
    d = np.random.default_rng(1).exponential(size=200)
    st = S.coverage_stats(d, eps_max=3.0, n_boot=0)
    fine = np.linspace(0, 3.0, 300001)
    step = np.searchsorted(np.sort(d), fine, side="left") / d.size
    assert st["area"] == pytest.approx(np.trapezoid(step, fine) / 3.0, abs=1e-4)


def test_eps_target_is_where_coverage_reaches_the_target():
    d = np.random.default_rng(2).exponential(size=101)
    st = S.coverage_stats(d, target=0.8, n_boot=0)
    e = st["eps_target"]
    assert np.mean(d < e) < 0.8 <= np.mean(d < e * (1 + 1e-12) + 1e-15)
    assert e == pytest.approx(np.sort(d)[math.ceil(0.8 * 101) - 1])


def test_intervals_contain_their_estimates():
    rng = np.random.default_rng(3)
    for case in range(20):
        n = int(rng.integers(5, 300))
        d = rng.exponential(size=n) * (rng.random(n) < rng.random())  # many exact zeros in some cases
        st = S.coverage_stats(d, eps=float(rng.exponential()), n_boot=200, seed=case)
        assert np.all(st["curve_low"] <= st["curve"]) and np.all(st["curve"] <= st["curve_high"])
        assert st["coverage_low"] <= st["coverage"] <= st["coverage_high"]
        assert st["area_low"] <= st["area"] <= st["area_high"]
        assert st["eps_target_low"] <= st["eps_target"] <= st["eps_target_high"]


def test_bootstrap_is_reproducible_and_seeded():
    d = np.random.default_rng(4).exponential(size=100)
    a = S.coverage_stats(d, n_boot=300, seed=7)
    b = S.coverage_stats(d, n_boot=300, seed=7)
    c = S.coverage_stats(d, n_boot=300, seed=8)
    np.testing.assert_array_equal(a["curve_low"], b["curve_low"])
    assert a["area_low"] != c["area_low"]


def test_consistency_constant_sup_and_argmax(net_x):
    net, x = net_x
    out = _outputs(net, x)
    shifted = out.copy()
    shifted[17] += 3.0            # the worst input
    shifted[:10] += 0.5
    r = S.coverage(net, S.outputs(shifted, model=net), x, budget=2.0, sample_ids=np.arange(300) + 1000,
                   n_boot=0)
    assert r.argmax == 17 and r.argmax_id == 1017
    assert r.sup_delta == pytest.approx(3.0 * np.sqrt(2))
    assert r.K == pytest.approx(3.0 * np.sqrt(2) / 2.0)
    r = S.coverage(net, S.outputs(shifted, model=net), x, budget="rms", n_boot=0)
    assert r.K == pytest.approx(r.sup_delta / np.sqrt(np.mean(r.delta ** 2)))
    assert S.consistency([0.0, 0.0], 0.0)[0] == 0.0 and S.consistency([0.0, 1.0], 0.0)[0] == math.inf
    # no stated budget: K is NaN, the sup still reported
    r = S.coverage(net, S.outputs(shifted), x, n_boot=0)
    assert math.isnan(r.K) and r.argmax == 17


# -- projection ------------------------------------------------------------------------------------

def test_projection_budget_is_the_discarded_singular_value_mass(net_x):
    net, x = net_x
    with torch.no_grad():
        h = net[:2](torch.as_tensor(x)).numpy()
    s = np.linalg.svd(h - h.mean(0), compute_uv=False)
    interp = S.projection(net, "1", 3, x)
    b, definition = interp.budget("1", "l2")
    assert b == pytest.approx(np.sqrt(np.sum(s[3:] ** 2) / len(x)), rel=1e-10)
    assert "discarded" in definition
    r = S.coverage(net, interp, x, space="1", n_boot=0)
    # in the layer's own space the RMS of δ is the budget, so K = peak / RMS >= 1
    assert np.sqrt(np.mean(r.delta ** 2)) == pytest.approx(b, rel=1e-9)
    assert r.K >= 1.0
    assert interp.budget("logits", "l2") is None


# -- pluralism --------------------------------------------------------------------------------------

def test_combine_rules_overlap_and_exclusive():
    net = _mlp(dims=(2, 2))
    x = np.random.default_rng(5).normal(size=(400, 2))
    out = _outputs(net, x)
    left = x[:, 0] < 0
    a = np.where(left[:, None], out, out + 1.0)        # explains the left half
    b = np.where(left[:, None], out + 1.0, out)        # explains the right half
    c = out + np.where(np.abs(x[:, 1:2]) < 0.5, 0.0, 1.0)
    res = S.evaluate(net, [S.outputs(a, name="a"), S.outputs(b, name="b"), S.outputs(c, name="c")], x,
                     eps=0.5, n_boot=200)
    p = S.combine(res, rule="any", n_boot=200)
    q = left.mean()
    band = (np.abs(x[:, 1]) < 0.5)
    np.testing.assert_allclose(p.member_coverage, [q, 1 - q, band.mean()])
    assert p.coverage == 1.0
    np.testing.assert_allclose(p.overlap[:2, :2], [[q, 0], [0, 1 - q]])
    assert p.overlap[0, 2] == pytest.approx(np.mean(left & band))
    assert np.allclose(np.diag(p.overlap), p.member_coverage)
    np.testing.assert_allclose(p.exclusive, [np.mean(left & ~band), np.mean(~left & ~band), 0.0])
    assert p.member_low[0] <= p.member_coverage[0] <= p.member_high[0]
    assert S.combine(res, rule="all", n_boot=0).coverage == 0.0
    assert S.combine(res, rule=2, n_boot=0).coverage == pytest.approx(band.mean())
    assert S.combine(res, rule="majority", n_boot=0).coverage == pytest.approx(band.mean())
    custom = S.combine(res, rule=lambda e: e[0] & ~e[2], n_boot=0)
    assert custom.coverage == pytest.approx(np.mean(left & ~band))
    # the union curve is the coverage of min δ
    dmin = np.min([r.delta for r in res], axis=0)
    np.testing.assert_allclose(p.curve, [np.mean(dmin < e) for e in p.eps_grid])


# -- the circuit adapter reproduces find_circuit's own masked network ------------------------------

@pytest.fixture(scope="module")
def planted_small():
    from topo_mi.circuits import find_circuit
    from topo_mi.circuits._planted import planted_network

    net, x, _ = planted_network(seed=0, n_samples=256)
    return net, x, find_circuit


def _r2(net, interp, x):
    d, ref = S.discrepancies(net, [interp], x, return_reference=True)
    sst = float(((ref - ref.mean(0)) ** 2).sum())
    return 1.0 - float((d[interp.name] ** 2).sum()) / sst


@pytest.mark.parametrize("granularity,ablation", [("edges", "zero"), ("edges", "mean"), ("nodes", "zero"),
                                                  ("nodes", "mean")])
def test_circuit_adapter_matches_find_circuit_scores(planted_small, granularity, ablation):
    net, x, find_circuit = planted_small
    res = find_circuit(net, x, l0=1.0, steps=60, lr=0.05, seed=0, granularity=granularity, ablation=ablation,
                       curve_points=4)
    assert _r2(net, S.circuit(net, res, data=x), x) == pytest.approx(res.circuit_score, abs=2e-5)
    mag = S.circuit(net, res, data=x, ranking="magnitude")
    assert _r2(net, mag, x) == pytest.approx(res.magnitude_score, abs=2e-5)
    size = int(res.curve_sizes[1])
    pat = S.circuit(net, res, data=x, ranking="patching", size=size)
    assert _r2(net, pat, x) == pytest.approx(res.curve_scores["patching"][1], abs=2e-5)


@pytest.mark.parametrize("granularity,ablation", [("edges", "mean"), ("nodes", "zero")])
def test_circuit_adapter_matches_find_circuit_on_a_residual_stack(granularity, ablation):
    from topo_mi.circuits import find_circuit
    from topo_mi.models import ResidualMLP

    net = ResidualMLP(3, 6, 2, 2, dt=0.5, seed=0)
    x = np.random.default_rng(0).normal(size=(200, 3))
    res = find_circuit(net, x, l0=2.0, steps=40, lr=0.1, seed=0, granularity=granularity, ablation=ablation,
                       curve_points=3)
    assert res.n_kept < res.n_units
    assert _r2(net, S.circuit(net, res, data=x), x) == pytest.approx(res.circuit_score, abs=2e-5)
    assert _r2(net, S.circuit(net, res, data=x, ranking="magnitude"), x) == pytest.approx(res.magnitude_score,
                                                                                         abs=2e-5)


def test_circuit_adapter_resample_and_budget(planted_small):
    net, x, find_circuit = planted_small
    res = find_circuit(net, x, l0=1.0, steps=30, lr=0.05, seed=0, ablation="resample", curve_points=3)
    r = S.coverage(net, S.circuit(net, res, data=x, seed=3), x, n_boot=0)
    assert r.ablation == "resample" and np.isfinite(r.delta).all()
    assert r.budget == pytest.approx(np.sqrt(1.0 * 2 * np.var(_outputs(net, x.astype(np.float32)).astype(np.float64))), rel=1e-5)
    with pytest.raises(InvalidParameterError, match="data"):
        S.circuit(net, find_circuit(net, x, steps=2, ablation="mean", curve_points=2))


# -- results ----------------------------------------------------------------------------------------

def test_results_save_load_plot(tmp_path, net_x):
    from topo_mi._results import load_result

    net, x = net_x
    res = S.evaluate(net, [S.constant_mean(net, x), S.projection(net, "1", 2, x)], x, n_boot=50)
    p = S.combine(res, n_boot=50)
    for obj, sub in ((res[0], "c"), (p, "p")):
        obj.save(tmp_path / sub)
        back = load_result(tmp_path / sub)
        assert type(back) is type(obj)
        assert str(back.summary()) == str(obj.summary())  # NaN K compares by its text
    assert res[1].plot() is not None and p.plot() is not None


# -- bad input ------------------------------------------------------------------------------------

def test_bad_input_errors(net_x):
    net, x = net_x
    mean = S.constant_mean(net, x)
    with pytest.raises(InvalidParameterError, match="eps"):
        S.coverage(net, mean, x, eps=0.0)
    with pytest.raises(InvalidParameterError, match="eps"):
        S.coverage(net, mean, x, eps=-1.0)
    with pytest.raises(InvalidParameterError, match="inputs: expected at least one input"):
        S.coverage(net, mean, x[:0])
    with pytest.raises(InvalidParameterError, match="shape"):
        S.coverage(net, S.function(lambda xb: torch.zeros(len(xb), 3)), x)
    with pytest.raises(InvalidParameterError, match="fingerprint"):
        S.coverage(_mlp(seed=1), mean, x)
    with pytest.raises(UnknownNameError, match="norm"):
        S.coverage(net, mean, x, norm="l3")
    with pytest.raises(UnknownNameError, match="layers"):
        S.coverage(net, mean, x, space="nope")
    with pytest.raises(InvalidParameterError, match="rank"):
        S.projection(net, "1", 99, x)
    with pytest.raises(InvalidParameterError, match="distinct"):
        S.evaluate(net, [mean, mean], x)
    with pytest.raises(InvalidParameterError, match="precomputed outputs"):
        S.coverage(net, S.outputs(np.zeros((5, 2))), x)
    with pytest.raises(InvalidParameterError, match="probs"):
        S.coverage(net, S.function(lambda xb: net(xb), space="probs"), x, space="logits")
    with pytest.raises(NonFiniteError):
        S.coverage(net, S.function(lambda xb: torch.full((len(xb), 2), float("nan"))), x)
    a = S.evaluate(net, [mean], x)
    b = S.evaluate(net, [S.identity(net)], x[:100])
    with pytest.raises(InvalidParameterError, match="same inputs"):
        S.combine(a + b)
    with pytest.raises(InvalidParameterError, match="rule"):
        S.combine(a, rule="some")
    with pytest.raises(InvalidParameterError, match="rule"):
        S.combine(a, rule=lambda e: e.sum(axis=0))
    with pytest.raises(InvalidParameterError, match="delta"):
        S.coverage_stats([])
    with pytest.raises(InvalidParameterError, match="delta"):
        S.coverage_stats([-1.0, 1.0])
    with pytest.raises(TopoMIError, match="result"):
        S.circuit(net, "not a circuit")


# -- pipeline and spec --------------------------------------------------------------------------------

def test_synthesis_profile_pipeline_and_report_section(planted_small, tmp_path):
    from topo_mi import pipelines
    from topo_mi._results import load_result

    net, x, _ = planted_small
    res = pipelines.synthesis_profile(net, x, methods=("circuit", "magnitude", "projection", "mean"), steps=40,
                                      circuit_metric="r2", space="logits", norm="l2", eps=0.3, n_boot=100,
                                      rank=2, layer="3")
    assert [m.name for m in res.members][2:] == ["rank-2 3", "mean"]
    assert res.combined == [m.name for m in res.members[:3]]
    assert res.pluralism.coverage >= max(m.coverage for m in res.members[:3])
    # the circuit's budget for an mse objective: sqrt(l0 · k · Var(N)) with the default l0 = 0.5
    var = np.var(_outputs(net, x.astype(np.float32)).astype(np.float64))
    assert res.members[0].budget == pytest.approx(np.sqrt(0.5 * 2 * var), rel=1e-5)
    assert res.members[0].K == pytest.approx(res.members[0].sup_delta / res.members[0].budget)
    sec = res.report_section()
    assert set(sec) == {"headline", "table", "caption"}
    t = sec["table"]
    assert len(t["rows"]) == len(t["index"]) == 5 and all(len(r) == len(t["columns"]) for r in t["rows"])
    assert t["rows"][0][0] == res.members[0].coverage
    res.save(tmp_path / "s")
    back = load_result(tmp_path / "s")
    assert str(back.summary()) == str(res.summary())
    assert res.plot() is not None


def test_spec_accepts_a_synthesis_section_and_rejects_unknown_keys():
    from topo_mi.errors import SpecError
    from topo_mi.pipelines.runner import DEMO_SPEC, check_analysis_params
    from topo_mi.pipelines.spec import load_spec

    spec = load_spec(DEMO_SPEC)
    assert "synthesis" in spec["analyses"]
    check_analysis_params(spec)
    spec["analyses"]["synthesis"]["epsilon"] = 0.1
    with pytest.raises(SpecError, match="analyses.synthesis.epsilon"):
        check_analysis_params(spec)


# -- causal adapters ----------------------------------------------------------------------------------

def test_steering_changes_the_layer_by_exactly_its_budget(net_x):
    net, x = net_x
    v = np.array([1.0, -2.0, 0.5, 0, 0, 0, 0, 3.0])
    st = S.steering(net, "1", v, alpha=0.3)
    r = S.coverage(net, st, x, space="1", eps=1.0, n_boot=0)
    b = 0.3 * np.linalg.norm(v)
    np.testing.assert_allclose(r.delta, b, rtol=1e-12)
    assert r.budget == pytest.approx(b) and r.K == pytest.approx(1.0)
    assert r.coverage_at(b * (1 - 1e-9)) == 0.0 and r.coverage_at(b * (1 + 1e-9)) == 1.0


def test_erasure_removes_the_fitted_component(net_x):
    from topo_mi.causal import erase_concept

    net, x = net_x
    with torch.no_grad():
        h = net[:2](torch.as_tensor(x)).numpy()
    labels = (x[:, 0] > 0).astype(int)
    eraser = erase_concept(h, labels, layer="1")
    interp = S.erasure(net, eraser, data=x)
    r = S.coverage(net, interp, x, space="1", n_boot=0)
    removed = (h - eraser.mean) @ eraser.projection.T
    np.testing.assert_allclose(r.delta, np.linalg.norm(removed, axis=1), rtol=1e-8, atol=1e-10)
    assert r.budget == pytest.approx(np.sqrt(np.mean(np.sum(removed ** 2, axis=1))), rel=1e-10)
    # downstream, δ is the distance between the network's logits and those of the erased layer, by hand
    with torch.no_grad():
        full = net(torch.as_tensor(x)).numpy()
        erased = net[2:](torch.as_tensor(h - removed)).numpy()
    out = S.discrepancies(net, [interp], x, space="logits")[interp.name]
    np.testing.assert_allclose(out, np.linalg.norm(full - erased, axis=1), rtol=1e-8, atol=1e-10)


def test_dictionary_adapter_equals_the_projection_it_encodes(net_x):
    net, x = net_x
    with torch.no_grad():
        h = net[:2](torch.as_tensor(x)).numpy()
    mu = h.mean(0)
    V = torch.as_tensor(np.linalg.svd(h - mu, full_matrices=False)[2][:3].T)
    mu_t = torch.as_tensor(mu)

    class PCADictionary:
        def encode(self, t):
            return (t - mu_t) @ V

        def decode(self, z):
            return mu_t + z @ V.T

    d = S.dictionary(net, "1", PCADictionary(), data=x)
    p = S.projection(net, "1", 3, x)
    for space in ("1", "logits"):
        a, b = S.evaluate(net, [d, p], x, space=space, n_boot=0)
        np.testing.assert_allclose(a.delta, b.delta, atol=1e-10)
    assert d.budget("1", "l2")[0] == pytest.approx(p.budget("1", "l2")[0], rel=1e-9)
    with pytest.raises(InvalidParameterError, match="encode"):
        S.dictionary(net, "1", object())
    from topo_mi import pipelines

    res = pipelines.synthesis_profile(net, x, methods=("dictionary", "mean"), layer="1", dictionary=PCADictionary(),
                                      space="1", norm="l2", n_boot=0)
    np.testing.assert_allclose(res.members[0].delta, S.evaluate(net, [p], x, space="1", n_boot=0)[0].delta,
                               atol=1e-10)


# -- experiments (their bookkeeping; the outcomes are reported, not asserted) ------------------------------

def test_power_fits_recover_an_exact_power_law():
    L = np.array([1, 2, 4, 8, 16])
    f = 0.9 * L ** -0.5
    fit = S.power_fits(L, f)
    assert fit["c_half"] == pytest.approx(0.9) and fit["residual_half"] == pytest.approx(0, abs=1e-12)
    assert fit["beta"] == pytest.approx(-0.5) and fit["beta_se"] == pytest.approx(0, abs=1e-9)
    fit = S.power_fits(L, 0.5 * L ** 0.3)
    assert fit["beta"] == pytest.approx(0.3) and fit["residual_half"] > 0.1


def test_count_regions_on_a_hand_built_image():
    img = np.zeros((60, 60), int)
    img[5:15, 5:15] = 1
    img[30:40, 30:40] = 1
    img[50:55, 2:8] = 1
    img[20:25, 40:45] = 2
    total, per = S.count_regions(img)
    assert per.tolist() == [1, 3, 1] and total == 5
    img[14:31, 14] = 1                      # a 1-pixel L-shaped bridge joins the first two squares
    img[30, 14:31] = 1
    assert S.count_regions(img)[1].tolist() == [1, 2, 1]


def test_decision_regions_vs_betti_bookkeeping():
    net = nn.Sequential(nn.Linear(2, 4), nn.ReLU(), nn.Linear(4, 2))
    with torch.no_grad():
        net[0].weight.copy_(torch.tensor([[1.0, 0], [-1.0, 0], [0, 1.0], [0, -1.0]]))
        net[0].bias.zero_()
        net[2].weight.copy_(torch.tensor([[1.0, 0, 0, 0], [0, 1.0, 0, 0]]))
        net[2].bias.zero_()
    x = np.random.default_rng(0).uniform(-1, 1, size=(300, 2))
    r = S.decision_regions_vs_betti(net, data=x, grid=50, n_points=80, n_eps=50)
    assert r.n_regions == 2 and r.regions_per_class.tolist() == [1, 1]   # the half planes x0 > 0, x0 < 0
    assert r.layers == ["input", "1"]
    hit = r.betti1 == r.n_regions
    np.testing.assert_allclose(r.match_fraction, hit.mean(axis=1))
    for i in range(len(r.layers)):
        if hit[i].any():
            assert r.eps_star[i] == r.eps_grid[i][np.argmax(hit[i])]
        else:
            assert np.isnan(r.eps_star[i])
    assert r.plot() is not None
    with pytest.raises(InvalidParameterError, match="data"):
        S.decision_regions_vs_betti(net, data=np.zeros((10, 3)))


def test_fidelity_vs_depth_bookkeeping():
    r = S.fidelity_vs_depth(depths=(1, 2, 3), width=4, n_samples=200, epochs=2, seeds=(0, 1), rank=1)
    assert r.fidelity.shape == (3, 2) and np.all((0 <= r.fidelity) & (r.fidelity <= 1))
    np.testing.assert_allclose(r.mean, r.fidelity.mean(axis=1))
    fit = S.power_fits(r.depths, r.mean)
    assert r.c_half == fit["c_half"] and r.residual_half == fit["residual_half"]
    assert r.plot() is not None
    with pytest.raises(InvalidParameterError, match="depths"):
        S.fidelity_vs_depth(depths=(2,))


def test_single_method_coverage_bookkeeping():
    r = S.single_method_coverage(models=("mlp-naitzat-d1-relu",), n_samples=200, steps=10, n_boot=20)
    prof = r.profiles[0]
    assert [m.coverage for m in prof.members] == list(r.coverage[0])
    assert r.union[0] == prof.pluralism.coverage
    np.testing.assert_array_equal(r.above_target, r.coverage > r.target)
    assert r.plot() is not None


def test_relative_scale_memory_is_checked_before_it_is_kept(net_x, monkeypatch):
    from topo_mi.errors import ResourceError
    from topo_mi.synthesis import _coverage

    net, x = net_x
    monkeypatch.setattr(_coverage, "_MAX_REFERENCE_BYTES", 1000)
    with pytest.raises(ResourceError, match="relative=False"):
        S.coverage(net, S.identity(net), x, relative=True)
    assert S.coverage(net, S.identity(net), x, relative=False, n_boot=0).coverage == 1.0


def test_sae_from_topo_mi_dictionaries_spliced_in(planted_small):
    from topo_mi import pipelines
    from topo_mi.dictionaries import train_sae

    net, x, _ = planted_small
    with torch.no_grad():
        h = net[:4](torch.as_tensor(x, dtype=torch.float32)).numpy()
    sae = train_sae(h, kind="topk", d_sae=32, k=4, n_steps=50, batch_size=128, seed=0)
    interp = S.dictionary(net, "3", sae, data=x)
    r = S.coverage(net, interp, x, space="3", n_boot=0)
    np.testing.assert_allclose(r.delta, np.linalg.norm(h - sae.reconstruct(h), axis=1), rtol=1e-4, atol=1e-5)
    assert r.budget == pytest.approx(np.sqrt(np.mean(r.delta ** 2)), rel=1e-4) and r.name == "topk SAE 3"
    res = pipelines.synthesis_profile(net, x, methods=("dictionary", "mean"), layer="3", dictionary_steps=30,
                                      space="logits", norm="l2", n_boot=0)
    assert res.members[0].method == "dictionary" and res.settings["dictionary"]["trained_here"]
