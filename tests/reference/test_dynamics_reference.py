"""Known answers for topo_mi.dynamics: Lyapunov exponents of systems with published values.

Reference values (base e): Sprott, "Chaos and time-series analysis" (2003) — Hénon (1.4, 0.3):
0.419217, -1.623190 (sum ln 0.3); Lorenz (10, 28, 8/3): 0.90563, 0, -14.57219 (sum -13.6667);
logistic r = 4: ln 2. Random tanh network: lambda_max -> ln g for g < 1, > 0 for g > 1.

Fast versions of every claim run by default; the long runs at the issue's tolerances are marked
slow. Ensembles of short trajectories (``ensemble=True``) make the small systems cheap: the
Python overhead per step is shared by hundreds of trajectories.
"""
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from topo_mi.dynamics import (finite_time_lyapunov, fixed_points, flow_step, jacobian_product, layer_jacobians,
                              lyapunov_spectrum, lyapunov_vs_gain, residual_ode_fit, systems)

LN2 = math.log(2.0)
HENON = systems.REFERENCE_EXPONENTS["henon"]
LORENZ = systems.REFERENCE_EXPONENTS["lorenz"]
LORENZ_SUM = -(10.0 + 1.0 + 8.0 / 3.0)


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """These problems are small: one thread avoids fork/join stalls when the machine is busy."""
    from threadpoolctl import threadpool_limits

    old = torch.get_num_threads()
    torch.set_num_threads(1)
    with threadpool_limits(1):
        yield
    torch.set_num_threads(old)


def _nonnormal(eigs, seed=0):
    """A non-normal matrix with the given real eigenvalues (a random, non-orthogonal basis)."""
    rng = np.random.default_rng(seed)
    d = len(eigs)
    P = rng.normal(size=(d, d)) + 2 * np.eye(d)
    return P @ np.diag(eigs) @ np.linalg.inv(P)


# --- linear maps: exponents are ln|eigenvalues| ----------------------------------------------------
@pytest.mark.parametrize("tangent", ["jvp", "jacobian"])
def test_linear_map_exponents_equal_log_abs_eigenvalues(tangent):
    eigs = [1.6, -0.9, 0.6, -0.35, 0.12]
    A = torch.tensor(_nonnormal(eigs))
    res = lyapunov_spectrum(lambda x: A @ x, np.zeros(5), 100, transient=100, tangent=tangent)
    np.testing.assert_allclose(res.exponents, np.log(np.abs(eigs)), atol=1e-6, rtol=0)
    assert res.tangent == tangent


def test_linear_map_top_k_by_jvp():
    eigs = [1.3, 0.95, -0.8, 0.5, 0.3, -0.2, 0.1, 0.05]
    A = torch.tensor(_nonnormal(eigs, seed=3))
    res = lyapunov_spectrum(lambda x: A @ x, np.zeros(8), 100, k=3, transient=150)
    assert res.tangent == "jvp" and res.exponents.shape == (3,)
    np.testing.assert_allclose(res.exponents, np.log([1.3, 0.95, 0.8]), atol=1e-6, rtol=0)


@settings(max_examples=8, deadline=None)
@given(st.lists(st.floats(0.05, 2.0), min_size=2, max_size=4, unique=True).filter(
    lambda v: min(abs(a / b - 1) for i, a in enumerate(v) for b in v[i + 1:]) > 0.15),
    st.integers(0, 2**16))
def test_linear_map_any_spectrum(mods, seed):
    signs = np.where(np.random.default_rng(seed).random(len(mods)) < 0.5, -1.0, 1.0)
    A = torch.tensor(_nonnormal(signs * np.array(mods), seed=seed))
    res = lyapunov_spectrum(lambda x: A @ x, np.zeros(len(mods)), 30, transient=200, seed=seed % 100)
    np.testing.assert_allclose(res.exponents, np.sort(np.log(mods))[::-1], atol=1e-6, rtol=0)


def test_linear_flow_per_time_unit():
    """dx/dt = M x: exponents are the real parts of eig(M) per time unit (dt divides)."""
    M = torch.tensor(_nonnormal([0.4, -0.3, -1.2], seed=1))
    step = flow_step(lambda x: M @ x, 0.05)
    res = lyapunov_spectrum(step, np.zeros(3), 100, transient=800)  # 40 time units to align the frame
    assert res.dt == 0.05
    np.testing.assert_allclose(res.exponents, [0.4, -0.3, -1.2], atol=1e-6, rtol=0)


# --- logistic map ----------------------------------------------------------------------------------
def test_logistic_r4_is_ln2_ensemble():
    res = systems.logistic().spectrum(300, transient=20, n_members=1024)
    assert abs(res.exponents[0] - LN2) < 0.002
    assert res.stderr[0] < 0.001


@pytest.mark.slow
def test_logistic_r4_is_ln2_single_trajectory():
    res = systems.logistic().spectrum(20_000, transient=100)
    assert abs(res.exponents[0] - LN2) < 0.002


# --- Hénon map -------------------------------------------------------------------------------------
def test_henon_exponents_ensemble():
    res = systems.henon().spectrum(800, transient=100, n_members=256)
    assert abs(res.exponents[0] - 0.419) < 0.005
    assert abs(res.exponents.sum() - math.log(0.3)) < 1e-6
    assert abs(res.exponents[1] - HENON[1]) < 0.005
    assert res.kaplan_yorke_dimension == pytest.approx(1 + res.exponents[0] / abs(res.exponents[1]))


def test_henon_sum_is_ln_b_on_a_short_run():
    # the Jacobian's determinant is -b everywhere: the sum holds step by step
    res = systems.henon().spectrum(100, transient=5)
    assert abs(res.exponents.sum() - math.log(0.3)) < 1e-6


@pytest.mark.slow
def test_henon_exponents_single_trajectory():
    res = systems.henon().spectrum(30_000, transient=200)
    assert abs(res.exponents[0] - 0.419) < 0.005
    assert abs(res.exponents.sum() - math.log(0.3)) < 1e-6


# --- Lorenz flow (RK4) -----------------------------------------------------------------------------
def test_lorenz_rk4_sum_and_signs_fast():
    """Cheap version: the sum is the constant divergence; one positive and one zero exponent."""
    res = systems.lorenz().spectrum(250, transient=250, n_members=64, burn_in=500)
    assert abs(res.exponents.sum() - LORENZ_SUM) < 1e-2
    assert 0.6 < res.exponents[0] < 1.2
    assert abs(res.exponents[1]) < 0.15
    assert res.exponents[2] < -13.5


@pytest.mark.slow
def test_lorenz_rk4_exponents():
    # transient >> 1 / (lambda_1 - lambda_2) so the frame is aligned; burn-in spreads the
    # trajectories over the attractor (short-window ensemble averages need stationary states)
    res = systems.lorenz().spectrum(1500, transient=1500, n_members=512, burn_in=2000)
    assert abs(res.exponents[0] - 0.906) < 0.02
    assert abs(res.exponents[1]) < 0.02
    assert abs(res.exponents.sum() - LORENZ_SUM) < 1e-2


# --- random tanh network: transition to chaos ------------------------------------------------------
def test_random_tanh_network_ordered_at_half_gain():
    s = systems.random_tanh_network(500, 0.5, seed=0)
    res = s.spectrum(300, transient=200, k=1)
    assert res.exponents[0] < 0
    assert abs(res.exponents[0] - math.log(0.5)) < 0.1
    # the origin is the attractor: lambda_max = ln of the spectral radius of g W
    rho = np.abs(np.linalg.eigvals(0.5 * s.step.W.numpy())).max()
    assert abs(res.exponents[0] - math.log(rho)) < 1e-3


@pytest.mark.parametrize("gain", [1.5, 2.5])
def test_random_tanh_network_chaotic_above_one(gain):
    res = systems.random_tanh_network(500, gain, seed=0).spectrum(400, transient=200, k=1)
    assert res.exponents[0] > 0
    assert res.exponents[0] > 3 * res.stderr[0]


@pytest.mark.slow
def test_random_tanh_network_gain_sweep():
    sweep = lyapunov_vs_gain([0.5, 0.8, 1.5, 2.0, 3.0], n_units=800, n_steps=1000, transient=300)
    lam = sweep.lambda_max
    assert np.all(lam[:2] < 0) and np.all(lam[2:] > 0)
    assert abs(lam[0] - math.log(0.5)) < 0.1
    assert np.all(np.diff(lam) > 0)
    assert 0.8 < sweep.critical_gain < 1.5


# --- JVP spectrum equals the full-Jacobian spectrum ------------------------------------------------
def _small_rnn(n=24, gain=3.0, seed=0):
    g = torch.Generator().manual_seed(seed)
    W = torch.randn(n, n, generator=g, dtype=torch.float64) * gain / math.sqrt(n)
    b = 0.05 * torch.randn(n, generator=g, dtype=torch.float64)
    return lambda h: torch.tanh(W @ h + b), torch.randn(n, generator=g, dtype=torch.float64)


def _naive_spectrum(step, x0, n_steps, k, seed):
    """Independent Benettin loop: the full Jacobian by torch.autograd.functional.jacobian, numpy QR."""
    dim = x0.numel()
    gen = torch.Generator().manual_seed(seed)
    Q = torch.linalg.qr(torch.randn((1, dim, k), generator=gen, dtype=torch.float64)).Q[0].numpy()
    x, total = x0.clone(), np.zeros(k)
    for _ in range(n_steps):
        J = torch.autograd.functional.jacobian(step, x).numpy()
        x = step(x).detach()
        Q, R = np.linalg.qr(J @ Q)
        total += np.log(np.abs(np.diag(R)))
    return np.sort(total / n_steps)[::-1]


def test_jvp_spectrum_equals_full_jacobian_spectrum():
    step, x0 = _small_rnn()
    jv = lyapunov_spectrum(step, x0, 150, k=6, tangent="jvp", seed=3)
    full = lyapunov_spectrum(step, x0, 150, k=6, tangent="jacobian", seed=3)
    naive = _naive_spectrum(step, x0, 150, 6, seed=3)
    np.testing.assert_allclose(jv.exponents, full.exponents, atol=1e-6, rtol=0)
    np.testing.assert_allclose(jv.exponents, naive, atol=1e-6, rtol=0)
    assert jv.exponents[0] > 0  # gain 3: a chaotic regime, so the check is not trivial


def test_tanh_network_jacobian_closed_form():
    s = systems.random_tanh_network(40, 1.7, seed=2)
    x = _randn(40)
    J = torch.autograd.functional.jacobian(s.step, x)
    torch.testing.assert_close(J, s.step.jacobian(x), atol=1e-12, rtol=0)


# --- layer Jacobians, products and finite-time exponents -------------------------------------------
def _linear_stack(widths, seed=0):
    g = torch.Generator().manual_seed(seed)
    layers = []
    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
        lin = torch.nn.Linear(a, b).double()
        with torch.no_grad():
            lin.weight.copy_(torch.randn(b, a, generator=g, dtype=torch.float64) / math.sqrt(a))
            lin.bias.zero_()
        layers.append(lin)
    return layers


def test_ftle_of_a_linear_network_is_log_singular_values_of_weight_product():
    maps = _linear_stack([6, 6, 6, 6, 6])
    P = np.eye(6)
    for m in maps:
        P = m.weight.detach().numpy() @ P
    x = _randn(5, 6)
    res = finite_time_lyapunov(None, x, layers=maps)
    expect = np.log(np.linalg.svd(P, compute_uv=False)) / 4
    np.testing.assert_allclose(res.exponents, np.broadcast_to(expect, (5, 6)), atol=1e-10)
    for l, m in enumerate(maps):
        sv = np.linalg.svd(m.weight.detach().numpy(), compute_uv=False)
        np.testing.assert_allclose(res.layer_singular_values[l], np.broadcast_to(sv, (5, 6)), atol=1e-12)
        np.testing.assert_allclose(res.layer_expansion[:, l], np.log(sv[0]), atol=1e-12)
        np.testing.assert_allclose(res.layer_log_volume[:, l], np.mean(np.log(sv)), atol=1e-12)


def _tanh_mlp(widths, seed=0):
    """Stand-in for topo_mi.models.MLP: an nn.Sequential fc1, act1, ..., out (float64)."""
    from collections import OrderedDict

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        mods = []
        for i, (a, b) in enumerate(zip(widths[:-2], widths[1:-1]), start=1):
            mods += [(f"fc{i}", torch.nn.Linear(a, b)), (f"act{i}", torch.nn.Tanh())]
        mods.append(("out", torch.nn.Linear(widths[-2], widths[-1])))
        return torch.nn.Sequential(OrderedDict(mods)).double()


def _randn(*shape, seed=0):
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def test_layer_jacobians_match_the_closed_form():
    net = _tanh_mlp([3, 7, 6, 5, 2])
    x = _randn(9, 3)
    res = layer_jacobians(net, x, layers=["act1", "act2", "act3"])
    h1 = net.act1(net.fc1(x))
    z2 = net.fc2(h1)
    expect = (1 - torch.tanh(z2) ** 2)[:, :, None] * net.fc2.weight[None]
    np.testing.assert_allclose(res.jacobians[0], expect.detach().numpy(), atol=1e-12)
    assert res.jacobians[1].shape == (9, 5, 6)


def test_randomized_top_k_matches_full_svd():
    net = _tanh_mlp([4, 30, 30, 30, 30, 2], seed=1)
    x = _randn(12, 4, seed=1)
    layers = ["act1", "act2", "act3", "act4"]
    full = jacobian_product(net, x, layers=layers)
    top = jacobian_product(net, x, layers=layers, k=4, n_iter=8)
    np.testing.assert_allclose(top.singular_values, full.singular_values[:, :4], rtol=1e-6)
    f_full = finite_time_lyapunov(net, x, layers=layers)
    f_top = finite_time_lyapunov(net, x, layers=layers, k=4, n_iter=8)
    np.testing.assert_allclose(f_top.exponents, f_full.exponents[:, :4], atol=1e-6)
    np.testing.assert_allclose(f_top.layer_expansion, f_full.layer_expansion, atol=1e-6)


# --- residual stacks as ODEs ----------------------------------------------------------------------
class _Block(torch.nn.Module):
    """Stand-in for topo_mi.models.ResidualBlock: h + dt * act(linear(h))."""

    def __init__(self, d, dt, g):
        super().__init__()
        self.linear = torch.nn.Linear(d, d).double()
        with torch.no_grad():
            self.linear.weight.copy_(torch.randn(d, d, generator=g, dtype=torch.float64) / math.sqrt(d))
            self.linear.bias.copy_(0.1 * torch.randn(d, generator=g, dtype=torch.float64))
        self.act = torch.nn.Tanh()
        self.dt = dt

    def forward(self, h):
        return h + self.dt * self.act(self.linear(h))


def test_residual_fit_exact_form_and_first_order_flow_error():
    g = torch.Generator().manual_seed(0)
    blocks = [_Block(8, 0.2, g) for _ in range(3)]
    h0 = torch.randn(40, 8, generator=g, dtype=torch.float64)
    res = residual_ode_fit(blocks, h0)
    assert res.source == ["weights"] * 3
    assert np.nanmax(res.euler_error) < 1e-12
    # Euler's local error is O(dt^2) against an update O(dt): the relative flow error halves with dt
    errs = []
    for dt in (0.2, 0.1, 0.05):
        for b in blocks:
            b.dt = dt
        errs.append(np.median(residual_ode_fit(blocks, h0).flow_error))
    ratios = np.array(errs[:-1]) / np.array(errs[1:])
    np.testing.assert_allclose(ratios, 2.0, rtol=0.1)


def test_residual_fit_recovers_weights_of_plain_callables():
    g = torch.Generator().manual_seed(1)
    blk = _Block(5, 0.3, g)
    plain = [lambda h: blk(h)]  # no linear/act attributes: W and b are fitted
    h0 = torch.randn(200, 5, generator=g, dtype=torch.float64)
    res = residual_ode_fit(plain, h0, dt=0.3, activation="tanh")
    assert res.source == ["fit"]
    assert np.max(res.euler_error) < 1e-8


# --- fixed points ---------------------------------------------------------------------------------
def test_henon_fixed_points_and_stability():
    a, b = 1.4, 0.3
    res = fixed_points(systems.henon().step, torch.tensor([[0.5, 0.1], [-1.0, -0.3], [0.7, 0.2]],
                                                          dtype=torch.float64))
    assert res.converged.all()
    xs = (-(1 - b) + np.array([1, -1]) * math.sqrt((1 - b) ** 2 + 4 * a)) / (2 * a)
    pts = res.points[res.unique()]
    np.testing.assert_allclose(np.sort(pts[:, 0]), np.sort(xs), atol=1e-10)
    np.testing.assert_allclose(pts[:, 1], b * pts[:, 0], atol=1e-10)
    for i in res.unique():
        J = np.array([[-2 * a * res.points[i, 0], 1.0], [b, 0.0]])
        assert res.spectral_radius[i] == pytest.approx(np.abs(np.linalg.eigvals(J)).max(), abs=1e-10)
    assert not res.stable.any()  # both are saddles


def test_lorenz_equilibria():
    x0 = torch.tensor([[0.5, 0.5, 0.5], [8.0, 8.0, 25.0], [-8.0, -9.0, 26.0]], dtype=torch.float64)
    res = fixed_points(systems.lorenz_field, x0, kind="flow")
    assert res.converged.all()
    c = math.sqrt(8.0 / 3.0 * 27.0)
    expect = np.array([[0, 0, 0], [c, c, 27.0], [-c, -c, 27.0]])
    np.testing.assert_allclose(res.points, expect, atol=1e-9)
    assert res.max_real_part[0] == pytest.approx((-11 + math.sqrt(81 + 40 * 28)) / 2, abs=1e-9)
    assert 0.09 < res.max_real_part[1] < 0.1  # rho = 28 > 24.74: C+- are unstable
    assert not res.stable.any()


def test_tanh_network_origin_is_stable_below_one():
    s = systems.random_tanh_network(60, 0.7, seed=1)
    res = fixed_points(s.step, 0.1 * _randn(4, 60), method="iterate", max_iter=500)
    assert res.converged.all() and res.stable.all()
    np.testing.assert_allclose(res.points, 0.0, atol=1e-8)
    rho = np.abs(np.linalg.eigvals(0.7 * s.step.W.numpy())).max()
    np.testing.assert_allclose(res.spectral_radius, rho, rtol=1e-8)
