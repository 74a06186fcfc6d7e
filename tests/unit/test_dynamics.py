"""Contract of topo_mi.dynamics and topo_mi.pipelines.stability_profile: API, errors, save/load, plots.

Models are small inline stand-ins following the topo_mi.models contract (MLP: nn.Sequential
fc1, act1, ..., out with ``hidden_names``; ResidualMLP: embed, blocks of h + dt act(linear(h)),
out; TanhRNN: ``step(h, x)``, ``hidden_dim``, ``input_dim``); the real models are used too when
they are importable.
"""
import json
import math
import subprocess
import sys
from collections import OrderedDict

import numpy as np
import pytest
import torch
from torch import nn

from topo_mi._results import Result
from topo_mi.dynamics import (FlowStep, LyapunovResult, finite_time_lyapunov, fixed_points, flow_step,
                              jacobian_product, kaplan_yorke, layer_jacobians, layer_maps, lyapunov_spectrum,
                              lyapunov_vs_gain, residual_ode_fit, systems)
from topo_mi.errors import (DivergenceError, InvalidParameterError, NonFiniteError, ResourceError,
                            UnknownNameError)
from topo_mi.pipelines import StabilityResult, stability_profile


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Small problems: one thread avoids fork/join stalls when the machine is busy."""
    from threadpoolctl import threadpool_limits

    old = torch.get_num_threads()
    torch.set_num_threads(1)
    with threadpool_limits(1):
        yield
    torch.set_num_threads(old)


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


class MLPStandIn(nn.Sequential):
    def __init__(self, in_dim, widths, out_dim, activation="tanh", seed=0):
        mods = []
        dims = [in_dim, *widths]
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            for i in range(1, len(dims)):
                mods += [(f"fc{i}", nn.Linear(dims[i - 1], dims[i])),
                         (f"act{i}", nn.Tanh() if activation == "tanh" else nn.ReLU())]
            mods.append(("out", nn.Linear(dims[-1], out_dim)))
        super().__init__(OrderedDict(mods))
        self._n = len(widths)

    @property
    def hidden_names(self):
        return [f"act{i}" for i in range(1, self._n + 1)]


class BlockStandIn(nn.Module):
    def __init__(self, d, dt):
        super().__init__()
        self.linear, self.act, self.dt = nn.Linear(d, d), nn.Tanh(), dt

    def forward(self, h):
        return h + self.dt * self.act(self.linear(h))


class ResidualStandIn(nn.Module):
    def __init__(self, in_dim, d_model, n_blocks, out_dim, dt=0.5, seed=0):
        super().__init__()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.embed = nn.Linear(in_dim, d_model)
            self.blocks = nn.ModuleList(BlockStandIn(d_model, dt) for _ in range(n_blocks))
            self.out = nn.Linear(d_model, out_dim)

    def forward(self, x):
        h = self.embed(x)
        for b in self.blocks:
            h = b(h)
        return self.out(h)


class RNNStandIn(nn.Module):
    def __init__(self, input_dim, hidden_dim, output_dim, gain=1.0, seed=0):
        super().__init__()
        g = _gen(seed)
        self.input_dim, self.hidden_dim = input_dim, hidden_dim
        self.W_hh = nn.Parameter(torch.randn(hidden_dim, hidden_dim, generator=g) * gain / math.sqrt(hidden_dim))
        self.W_ih = nn.Parameter(torch.randn(hidden_dim, input_dim, generator=g) / math.sqrt(input_dim))
        self.readout = nn.Linear(hidden_dim, output_dim)

    def step(self, h, x):
        return torch.tanh(h @ self.W_hh.T + x @ self.W_ih.T)


def _linear_step(eigs=(0.9, 0.5, 0.2)):
    A = torch.diag(torch.tensor(eigs, dtype=torch.float64))
    return lambda x: A @ x


# --- lyapunov_spectrum: results --------------------------------------------------------------------
def test_result_fields_shapes_and_order():
    res = lyapunov_spectrum(_linear_step(), np.zeros(3), 200, transient=20, n_trace=50, label="lin")
    assert isinstance(res, LyapunovResult)
    assert res.exponents.shape == (3,) and res.stderr.shape == (3,)
    assert np.all(np.diff(res.exponents) <= 0)
    assert res.trace.shape[1] == 3 and res.trace.shape[0] <= 50 and res.trace.shape[0] == res.trace_time.size
    assert np.all(np.diff(res.trace_time) > 0) and res.trace_time[-1] == pytest.approx(200.0)
    np.testing.assert_allclose(res.trace[-1], res.exponents)
    assert res.block_exponents.shape == (20, 3) and res.member_exponents.shape == (1, 3)
    assert (res.n_steps, res.transient, res.k, res.dim, res.n_members, res.n_blocks) == (200, 20, 3, 3, 1, 20)
    assert res.final_state.shape == (3,)
    s = res.summary()
    assert s["label"] == "lin" and s["lambda_max"] == pytest.approx(math.log(0.9))
    assert s["n_positive"] == 0 and s["kaplan_yorke_dimension"] == 0.0
    assert "LyapunovResult(" in repr(res)


def test_same_seed_same_numbers_and_any_state_shape():
    step = _linear_step((1.1, 0.7, 0.5, 0.2))
    A = torch.diag(torch.tensor([1.1, 0.7, 0.5, 0.2], dtype=torch.float64)).reshape(2, 2, 2, 2)
    a = lyapunov_spectrum(step, np.zeros(4), 30, seed=5)
    b = lyapunov_spectrum(step, np.zeros(4), 30, seed=5)
    np.testing.assert_array_equal(a.exponents, b.exponents)
    # a (2, 2) state: dim = 4, the same map
    c = lyapunov_spectrum(lambda x: torch.einsum("ijkl,kl->ij", A, x), np.zeros((2, 2)), 30, seed=5)
    np.testing.assert_allclose(c.exponents, a.exponents, atol=1e-12)
    assert c.final_state.shape == (2, 2)


def test_qr_every_and_k_subset_agree():
    step = _linear_step((0.95, 0.6, 0.3, 0.1))
    full = lyapunov_spectrum(step, np.zeros(4), 120, transient=60)
    sparse = lyapunov_spectrum(step, np.zeros(4), 120, transient=60, qr_every=4)
    top2 = lyapunov_spectrum(step, np.zeros(4), 120, transient=60, k=2)
    np.testing.assert_allclose(sparse.exponents, full.exponents, atol=1e-8)
    np.testing.assert_allclose(top2.exponents, full.exponents[:2], atol=1e-8)
    assert top2.tangent == "jvp" and full.tangent == "jacobian"


def test_uneven_qr_every_counts_every_step():
    res = lyapunov_spectrum(_linear_step((0.5,)), np.zeros(1), 10, qr_every=3, n_blocks=2)
    assert res.exponents[0] == pytest.approx(math.log(0.5))


def test_ensemble_matches_members_and_drive():
    x0 = torch.zeros(3, 2, dtype=torch.float64)
    res = lyapunov_spectrum(_linear_step((0.8, 0.4)), x0, 50, ensemble=True, transient=10)
    assert res.n_members == 3 and res.member_exponents.shape == (3, 2) and res.n_blocks == 7
    np.testing.assert_allclose(res.member_exponents, np.log([[0.8, 0.4]] * 3), atol=1e-10)
    # a driven system: step(x, u_t); the drive scales the slope, not the tangent dynamics here
    u = torch.randn(3, 60, 2, generator=_gen(), dtype=torch.float64)
    A = torch.diag(torch.tensor([0.8, 0.4], dtype=torch.float64))
    driven = lyapunov_spectrum(lambda x, u: A @ x + u, x0, 50, transient=10, drive=u, ensemble=True)
    np.testing.assert_allclose(driven.exponents, np.log([0.8, 0.4]), atol=1e-10)
    single = lyapunov_spectrum(lambda x, u, p: p @ x + u, torch.zeros(2, dtype=torch.float64), 50, transient=10,
                               drive=u[0], params=A)
    np.testing.assert_allclose(single.exponents, np.log([0.8, 0.4]), atol=1e-10)


def test_flow_step_and_dt():
    lam = -0.7
    step = flow_step(lambda x: lam * x, 0.1, method="euler")
    assert isinstance(step, FlowStep) and "euler" in repr(step)
    res = lyapunov_spectrum(step, [1.0], 50, n_blocks=5)
    assert res.dt == 0.1
    assert res.exponents[0] == pytest.approx(math.log(1 + 0.1 * lam) / 0.1)
    rk4 = flow_step(lambda x: lam * x, 0.1)
    res4 = lyapunov_spectrum(rk4, [1.0], 50, n_blocks=5)
    assert abs(res4.exponents[0] - lam) < 1e-6
    explicit = lyapunov_spectrum(rk4, [1.0], 50, n_blocks=5, dt=1.0)  # explicit dt wins
    assert explicit.exponents[0] == pytest.approx(res4.exponents[0] * 0.1)
    with pytest.raises(UnknownNameError, match="did you mean 'rk4'"):
        flow_step(lambda x: x, 0.1, method="rk45")
    with pytest.raises(InvalidParameterError, match="dt"):
        flow_step(lambda x: x, 0.0)


def test_float32_states_stay_float32():
    W = torch.randn(8, 8, generator=_gen()) * 0.5 / math.sqrt(8)
    res = lyapunov_spectrum(lambda h: torch.tanh(h @ W.T), torch.randn(8, generator=_gen(1)), 50, k=3)
    assert res.final_state.dtype == np.float32 and res.exponents.dtype == np.float64


def test_kaplan_yorke():
    assert kaplan_yorke(np.array([0.42, -1.62]), 2) == pytest.approx(1 + 0.42 / 1.62)
    assert kaplan_yorke(np.array([-0.1, -0.5]), 2) == 0.0
    assert kaplan_yorke(np.array([0.3, 0.1]), 2) == 2.0
    assert math.isnan(kaplan_yorke(np.array([0.3, 0.1]), 5))


# --- lyapunov_spectrum: errors ---------------------------------------------------------------------
def test_k_larger_than_dimension():
    with pytest.raises(InvalidParameterError, match=r"k: expected at most the state dimension 3"):
        lyapunov_spectrum(_linear_step(), np.zeros(3), 10, k=4)


def test_step_that_changes_shape_or_dtype():
    with pytest.raises(InvalidParameterError, match=r"step: expected a map that keeps the state's shape \(3,\)"):
        lyapunov_spectrum(lambda x: x[:2], np.zeros(3), 10)
    with pytest.raises(InvalidParameterError, match="dtype"):
        lyapunov_spectrum(lambda x: x.float(), np.zeros(3), 10)
    with pytest.raises(InvalidParameterError, match="tensor"):
        lyapunov_spectrum(lambda x: x.numpy(), np.zeros(3), 10)
    with pytest.raises(InvalidParameterError, match="step"):
        lyapunov_spectrum("not callable", np.zeros(3), 10)


def test_divergence_stops_at_the_step():
    # x_t = 10^(2^t) overflows float64 at t = 9 (the 9th step, the 7th after a transient of 2)
    with pytest.raises(DivergenceError, match=r"non-finite at step 9 of 52 \(measured step 7;") as info:
        lyapunov_spectrum(lambda x: x * x, [10.0], 50, transient=2)
    assert info.value.step == 9
    assert isinstance(info.value, FloatingPointError)
    with pytest.raises(DivergenceError, match="transient step 3;"):
        lyapunov_spectrum(lambda x: x * x, [1e40], 50, transient=20)
    with pytest.raises(DivergenceError, match="tangent vectors"):
        lyapunov_spectrum(lambda x: 1e30 * x, [0.0], 50, qr_every=25, n_blocks=2)


def test_too_few_steps_for_a_standard_error():
    with pytest.raises(InvalidParameterError, match=r"n_steps: expected at least 2 measured steps for a standard error"):
        lyapunov_spectrum(_linear_step(), np.zeros(3), 1)
    with pytest.raises(InvalidParameterError, match="n_steps: expected at least 40"):
        lyapunov_spectrum(_linear_step(), np.zeros(3), 30, qr_every=4, n_blocks=10)
    with pytest.raises(InvalidParameterError, match="n_blocks"):
        lyapunov_spectrum(_linear_step(), np.zeros(3), 30, n_blocks=1)


def test_input_validation():
    with pytest.raises(NonFiniteError, match="x0"):
        lyapunov_spectrum(_linear_step(), [0.0, np.nan, 0.0], 10)
    with pytest.raises(InvalidParameterError, match="x0"):
        lyapunov_spectrum(_linear_step(), np.zeros(3), 10, ensemble=True)
    with pytest.raises(InvalidParameterError, match="n_steps"):
        lyapunov_spectrum(_linear_step(), np.zeros(3), 0)
    with pytest.raises(InvalidParameterError, match="qr_every"):
        lyapunov_spectrum(_linear_step(), np.zeros(3), 10, qr_every=11)
    with pytest.raises(UnknownNameError, match="tangent"):
        lyapunov_spectrum(_linear_step(), np.zeros(3), 10, tangent="jvpp")
    with pytest.raises(InvalidParameterError, match="drive"):
        lyapunov_spectrum(lambda x, u: x, np.zeros(3), 10, drive=np.zeros((5, 3)))
    with pytest.raises(InvalidParameterError, match="drive: expected one drive sequence per trajectory"):
        lyapunov_spectrum(lambda x, u: x, np.zeros((2, 3)), 10, drive=np.zeros((3, 10, 3)), ensemble=True)


def test_reference_systems_api():
    h = systems.henon()
    assert h.dim == 2 and h.dt == 1.0 and h.reference is not None
    x = h.initial_states(16, seed=1, burn_in=5)
    assert x.shape == (16, 2) and x.dtype == torch.float64
    with pytest.raises(InvalidParameterError, match="burn_in"):
        h.spectrum(10, burn_in=3)
    lor = systems.lorenz()
    assert lor.dt == 0.01 and isinstance(lor.step, FlowStep) and lor.dim == 3
    assert systems.lorenz(rho=20.0).reference is None
    net = systems.random_tanh_network(20, 0.5, seed=3)
    net2 = systems.random_tanh_network(20, 2.0, seed=3)
    torch.testing.assert_close(net.step.W, net2.step.W)  # one W per seed, scaled by the gain
    assert net.reference[0] == pytest.approx(math.log(0.5)) and net2.reference is None
    with pytest.raises(InvalidParameterError, match="gain"):
        systems.random_tanh_network(20, -1.0)
    with pytest.raises(InvalidParameterError, match="r"):
        systems.logistic(5.0)


def test_lyapunov_vs_gain_small():
    sweep = lyapunov_vs_gain([0.5, 2.5], n_units=60, n_steps=80, transient=40)
    assert sweep.lambda_max.shape == (2,) and sweep.lambda_max[0] < 0 < sweep.lambda_max[1]
    assert 0.5 < sweep.critical_gain < 2.5
    assert len(sweep.spectra) == 2 and sweep.spectra[1].label == "g=2.5"
    with pytest.raises(InvalidParameterError, match="gains"):
        lyapunov_vs_gain([])


@pytest.mark.slow
def test_lyapunov_vs_gain_process_executor_matches_serial():
    kw = dict(n_units=50, n_steps=60, transient=20)
    a = lyapunov_vs_gain([0.6, 1.8], **kw)
    b = lyapunov_vs_gain([0.6, 1.8], executor="process", **kw)
    np.testing.assert_array_equal(a.lambda_max, b.lambda_max)


# --- layer maps, Jacobians, products, FTLE ---------------------------------------------------------
def test_layer_maps_contract():
    net = MLPStandIn(2, [5, 6, 7], 2)
    lm = layer_maps(net)
    assert lm.names == ["act1", "act2", "act3"] and len(lm.maps) == 2
    assert lm.map_names == ["act1->act2", "act2->act3"]
    lm2 = layer_maps(net, ["input", "act2", "out"])
    x = torch.randn(4, 2, generator=_gen())
    with torch.no_grad():
        torch.testing.assert_close(lm2.maps[1](lm2.maps[0](lm2.prefix(x))), net(x))
    with pytest.raises(UnknownNameError, match="act9") as info:
        layer_maps(net, ["act1", "act9"])
    assert "act1" in str(info.value) or "act3" in str(info.value)
    with pytest.raises(InvalidParameterError, match="order"):
        layer_maps(net, ["act2", "act1"])
    with pytest.raises(InvalidParameterError, match="at least two"):
        layer_maps(net, ["act1"])
    res = ResidualStandIn(2, 6, 3, 2)
    assert layer_maps(res).names == ["embed", "blocks.0", "blocks.1", "blocks.2"]

    class Opaque(nn.Module):
        def forward(self, x):
            return x

    with pytest.raises(InvalidParameterError, match="callables"):
        layer_maps(Opaque(), ["a", "b"])
    maps = [nn.Linear(3, 3), nn.Tanh()]
    lm3 = layer_maps(None, maps)
    assert lm3.names == ["h0", "h1", "h2"] and lm3.prefix(x) is x


def test_layer_jacobians_shapes_and_autograd():
    net = MLPStandIn(3, [6, 5, 4], 2, activation="relu", seed=1)
    x = torch.randn(7, 3, generator=_gen())
    res = layer_jacobians(net, x, layers=["input", "act1", "act3"])
    assert [J.shape for J in res.jacobians] == [(7, 6, 3), (7, 4, 6)]
    assert res.jacobians[0].dtype == np.float64 and len(res) == 2
    f = nn.Sequential(net.fc2, net.act2, net.fc3, net.act3)
    h1 = net.act1(net.fc1(x[2]))
    J = torch.autograd.functional.jacobian(f, h1)
    np.testing.assert_allclose(res.jacobians[1][2], J.numpy(), atol=1e-6)
    sv = res.singular_values()
    assert sv[0].shape == (7, 3)
    # callables and h_0 given directly; batch_size chunks give the same numbers
    maps = [net.fc1, net.act1]
    res2 = layer_jacobians(None, x, layers=maps, batch_size=2)
    np.testing.assert_allclose(res2.jacobians[0], np.broadcast_to(net.fc1.weight.detach().numpy(), (7, 6, 3)),
                               atol=1e-7)


def test_layer_jacobians_memory_check_before_allocating():
    net = MLPStandIn(3, [64, 64], 2)
    x = torch.randn(100, 3, generator=_gen())
    with pytest.raises(ResourceError, match=r"n x d_out x d_in x 8 bytes") as info:
        layer_jacobians(net, x, max_bytes=100 * 64 * 64 * 8 - 1)
    msg = str(info.value)
    assert "act1->act2" in msg and "k=" in msg and "max_bytes" in msg
    assert isinstance(info.value, MemoryError)
    layer_jacobians(net, x, max_bytes=100 * 64 * 64 * 8)  # exactly fits
    with pytest.raises(ResourceError):
        jacobian_product(net, x, max_bytes=1000)
    jacobian_product(net, x, max_bytes=1000, k=2)  # the randomized route forms no Jacobian


def test_dropout_in_train_mode_is_reported():
    net = nn.Sequential(OrderedDict([("fc1", nn.Linear(3, 4)), ("drop", nn.Dropout(0.5)), ("act1", nn.Tanh()),
                                     ("fc2", nn.Linear(4, 4)), ("act2", nn.Tanh())]))
    x = torch.randn(5, 3, generator=_gen())
    with pytest.raises(InvalidParameterError, match="eval"):
        layer_jacobians(net, x, layers=["input", "act1"])
    net.eval()
    layer_jacobians(net, x, layers=["input", "act1"])


def test_jacobian_product_and_ftle():
    net = MLPStandIn(2, [8, 8, 8, 8], 2, seed=2)
    x = torch.randn(20, 2, generator=_gen())
    prod = jacobian_product(net, x, keep_products=True)
    assert prod.products.shape == (20, 8, 8) and prod.singular_values.shape == (20, 8) and prod.depth == 3
    np.testing.assert_allclose(np.linalg.svd(prod.products, compute_uv=False), prod.singular_values)
    ftle = finite_time_lyapunov(net, x)
    np.testing.assert_allclose(ftle.exponents, np.log(prod.singular_values) / 3, atol=1e-10)
    assert ftle.layer_expansion.shape == (20, 3) and ftle.layer_log_volume.shape == (20, 3)
    assert ftle.lambda_max.shape == (20,)
    # chunking and the executor change nothing
    chunked = finite_time_lyapunov(net, x, chunk_size=7, executor="serial")
    np.testing.assert_allclose(chunked.exponents, ftle.exponents, rtol=1e-5, atol=1e-6)  # float32 batches
    s = ftle.summary()
    assert s["most_expanding_map"] in ftle.maps and 0 <= s["fraction_expanding"] <= 1
    top = finite_time_lyapunov(net, x, k=2)
    assert top.exponents.shape == (20, 2) and top.method == "randomized" and top.k == 2


def test_ftle_numerical_rank_with_dead_relu_units():
    net = MLPStandIn(2, [6, 6, 6], 2, activation="relu", seed=0)
    with torch.no_grad():
        net.fc2.bias[:2] = -100.0  # units 0 and 1 of layer 2 never fire
    x = torch.randn(30, 2, generator=_gen())
    res = finite_time_lyapunov(net, x, layers=["act1", "act2", "act3"])
    assert res.layer_rank.shape == (30, 2) and res.rank.shape == (30,)
    assert (res.layer_rank[:, 0] <= 4).all() and (res.rank <= 4).all()
    assert np.isneginf(res.exponents[:, 4:]).all()
    for i in range(30):  # the finite exponents are exactly those the rank counts
        assert np.isfinite(res.exponents[i]).sum() == res.rank[i]
    ok = res.layer_rank > 0
    assert np.isfinite(res.layer_log_volume[ok]).all()
    raw = jacobian_product(net, x, layers=["act1", "act2", "act3"]).singular_values
    assert (raw[:, 4:] <= 1e-12 * raw[:, :1]).all()  # the raw SVD keeps the rounding-level values


def test_ftle_validation():
    net = MLPStandIn(2, [4, 4], 2)
    with pytest.raises(NonFiniteError, match="inputs"):
        finite_time_lyapunov(net, np.array([[0.0, np.inf]]))
    with pytest.raises(InvalidParameterError, match="k"):
        finite_time_lyapunov(net, np.zeros((3, 2)), k=0)


# --- residual fit, fixed points ---------------------------------------------------------------------
def test_residual_ode_fit_contract():
    model = ResidualStandIn(3, 6, 4, 2, dt=0.25)
    x = torch.randn(30, 3, generator=_gen())
    res = residual_ode_fit(model, x)
    assert res.blocks == [f"blocks.{i}" for i in range(4)]
    assert res.euler_error.shape == (30, 4) and res.weight_change.shape == (3,)
    assert np.all(res.dt == 0.25) and res.source == ["weights"] * 4 and res.activation == ["Tanh"] * 4
    assert np.nanmax(res.euler_error) < 1e-5
    assert res.summary()["n_blocks"] == 4
    one = residual_ode_fit(model.blocks[0], model.embed(x).detach())
    assert one.blocks == ["blocks.0"]
    with pytest.raises(InvalidParameterError, match="block"):
        residual_ode_fit(lambda h: h[:, :2], torch.zeros(3, 4))
    with pytest.raises(UnknownNameError, match="activation"):
        residual_ode_fit(model, x, activation="relu")


def test_fixed_points_contract():
    step = systems.henon().step
    res = fixed_points(step, [0.6, 0.2])
    assert res.points.shape == (1, 2) and res.converged[0] and res.n_iter[0] >= 1
    assert res.eigenvalues_real.shape == (1, 2) and res.kind == "map"
    assert res.summary()["n_unique"] == 1
    far = fixed_points(lambda x: 2 * x + 1, [[3.0]], method="iterate", max_iter=20)
    assert not far.converged[0] and not far.stable[0]
    with pytest.raises(InvalidParameterError, match="method"):
        fixed_points(step, [0.0, 0.0], kind="flow", method="iterate")
    with pytest.raises(InvalidParameterError, match="step"):
        fixed_points(lambda x: x[:1], [0.0, 0.0])


# --- the pipeline -------------------------------------------------------------------------------------
def test_stability_profile_feedforward_and_residual():
    x = torch.randn(25, 2, generator=_gen())
    res = stability_profile(MLPStandIn(2, [6, 6, 6], 2), x)
    assert isinstance(res, StabilityResult) and res.kind == "feedforward" and res.spectrum is None
    # by default every map from the input to the output is measured
    assert res.layers == ["input", "act1", "act2", "act3", "out"] and res.ftle.exponents.shape == (25, 2)
    assert res.residual_fit is None and res.summary()["depth"] == 4
    hidden = stability_profile(MLPStandIn(2, [6, 6, 6], 2), x, layers=["act1", "act2", "act3"])
    assert hidden.ftle.exponents.shape == (25, 6) and hidden.summary()["depth"] == 2
    one = stability_profile(MLPStandIn(2, [6], 2), x)  # one hidden layer: two maps, not one point
    assert one.layers == ["input", "act1", "out"] and one.summary()["depth"] == 2
    sec = res.report_section()
    assert sec["table"]["index"] == res.ftle.maps and len(sec["table"]["rows"]) == 4
    np.testing.assert_allclose([r[0] for r in sec["table"]["rows"]], np.nanmean(res.ftle.layer_expansion, axis=0))
    assert "from input to out" in sec["headline"]
    rres = stability_profile(ResidualStandIn(2, 5, 3, 2, dt=0.2), x, k=2)
    assert rres.residual_fit is not None and rres.ftle.method == "randomized"
    assert "euler_error_mean" in rres.summary()
    with pytest.raises(InvalidParameterError, match="inputs"):
        stability_profile(MLPStandIn(2, [4, 4], 2), None)


def test_stability_profile_recurrent():
    rnn = RNNStandIn(3, 20, 2, gain=2.0)
    auto = stability_profile(rnn, None, k=4, n_steps=60, transient=20)
    assert auto.kind == "recurrent" and auto.ftle is None and auto.spectrum.exponents.shape == (4,)
    assert auto.spectrum.final_state.dtype == np.float32
    sec = auto.report_section()
    assert sec["table"]["index"] == ["λ1", "λ2", "λ3", "λ4"]
    np.testing.assert_allclose([r[0] for r in sec["table"]["rows"]], auto.spectrum.exponents)
    assert sec["headline"].startswith("The recurrent") and "λ_max" in sec["headline"]
    u = torch.randn(3, 50, 3, generator=_gen())
    driven = stability_profile(rnn, u, transient=10)
    assert driven.spectrum.k == 20 and driven.spectrum.member_exponents.shape == (3, 20)
    assert driven.spectrum.n_steps == 40 and driven.n_inputs == 3
    one = stability_profile(rnn, u[0], transient=10, k=3)
    assert one.spectrum.n_members == 1
    with pytest.raises(InvalidParameterError, match="inputs"):
        stability_profile(rnn, torch.zeros(2, 5, 4))
    with pytest.raises(InvalidParameterError, match="transient"):
        stability_profile(rnn, u, transient=49)


def test_with_the_real_models_when_available():
    models = pytest.importorskip("topo_mi.models")
    x = torch.randn(10, 2, generator=_gen())
    mlp = models.MLP(2, [6, 6, 6], 2, activation="tanh", seed=0)
    assert stability_profile(mlp, x).layers == ["input", *mlp.hidden_names, "out"]  # input to output
    rm = models.ResidualMLP(2, 6, 3, 2, dt=0.5, seed=0)
    assert stability_profile(rm, x).residual_fit.source == ["weights"] * 3
    rnn = models.TanhRNN(2, 16, 2, gain=2.0, seed=0)
    assert stability_profile(rnn, None, n_steps=40, transient=10, k=3).spectrum.k == 3


# --- save / load / plots / light import -------------------------------------------------------------
def _all_results():
    x = torch.randn(12, 2, generator=_gen())
    net = MLPStandIn(2, [5, 5, 5], 2)
    return {
        "spectrum": systems.henon().spectrum(100, transient=10),
        "sweep": lyapunov_vs_gain([0.5, 2.0], n_units=30, n_steps=40, transient=10),
        "jacobians": layer_jacobians(net, x),
        "product": jacobian_product(net, x),
        "ftle": finite_time_lyapunov(net, x),
        "residual": residual_ode_fit(ResidualStandIn(2, 5, 2, 2), x),
        "fixed": fixed_points(systems.henon().step, torch.tensor([[0.5, 0.1], [-1.0, -0.3]], dtype=torch.float64)),
        "stab_ff": stability_profile(net, x),
        "stab_rnn": stability_profile(RNNStandIn(2, 8, 2, gain=2.0), None, n_steps=40, transient=10),
    }


@pytest.fixture(scope="module")
def all_results():
    return _all_results()


def test_save_load_round_trip(all_results, tmp_path):
    for name, res in all_results.items():
        back = Result.load(res.save(tmp_path / name))
        assert type(back) is type(res), name
        assert json.dumps(back.summary(), default=str) == json.dumps(res.summary(), default=str), name
        json.dumps(res.to_dict())  # plain data
    back = Result.load(tmp_path / "spectrum")
    np.testing.assert_array_equal(back.exponents, all_results["spectrum"].exponents)
    np.testing.assert_array_equal(back.trace, all_results["spectrum"].trace)
    st = Result.load(tmp_path / "stab_rnn")
    assert isinstance(st.spectrum, LyapunovResult)
    with pytest.raises(InvalidParameterError):
        LyapunovResult.load(tmp_path / "ftle")


def test_plots(all_results, tmp_path):
    from topo_mi.plotting import dynamics as dplt
    from topo_mi.plotting import pyplot, save_figure

    for name, res in all_results.items():
        ax = res.plot()
        assert hasattr(ax, "figure"), name
        save_figure(ax, tmp_path / f"{name}.png")
        assert (tmp_path / f"{name}.png").stat().st_size > 0
    spec = all_results["spectrum"]
    ax = spec.plot_convergence(reference=systems.REFERENCE_EXPONENTS["henon"])
    assert len(ax.lines) >= 2
    pyplot().close(ax.figure)
    for fn, res in ((dplt.plot_ftle, all_results["ftle"]),
                    (dplt.plot_layer_singular_values, all_results["jacobians"]),
                    (dplt.plot_product_singular_values, all_results["product"])):
        ax = fn(res)
        pyplot().close(ax.figure)
    fig, axes = pyplot().subplots(1, 2)
    assert dplt.plot_spectrum(spec, ax=axes[0]) is axes[0]
    assert all_results["sweep"].plot(ax=axes[1]) is axes[1]
    pyplot().close(fig)


def test_import_and_load_stay_light(all_results, tmp_path):
    path = all_results["spectrum"].save(tmp_path / "spec")
    code = ("import sys, json, topo_mi.dynamics, topo_mi.pipelines; from topo_mi._results import Result; "
            f"r = Result.load({str(path)!r}); "
            "print(json.dumps([type(r).__name__, 'torch' in sys.modules, 'matplotlib' in sys.modules]))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == ["LyapunovResult", False, False]
