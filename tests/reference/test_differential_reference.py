"""Known answers for the loss-Hessian tools (REFERENCES: "Attribution and curvature")."""
import numpy as np
import pytest
import torch
from torch import nn

from topo_mi.differential import (
    LossHessian, exact_hessian, hessian_spectrum, hutchinson_trace, lanczos, spectral_density,
)
from topo_mi.models import MLP


def _regression(n=60, d=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n, d, generator=g, dtype=torch.float64)
    y = X @ torch.randn(d, generator=g, dtype=torch.float64) + 0.1 * torch.randn(n, generator=g, dtype=torch.float64)
    return X, y


def test_linear_regression_hessian_is_2xtx_over_n():
    X, y = _regression()
    lin = nn.Linear(5, 1, bias=False).double()
    expected = 2 * X.T.numpy() @ X.numpy() / X.shape[0]
    H = exact_hessian(lin, "mse", (X, y), batch_size=16)          # batched: the sum over batches
    np.testing.assert_allclose(H, expected, atol=1e-12, rtol=0)
    v = np.random.default_rng(0).standard_normal(5)
    for mode in ("forward", "reverse"):
        op = LossHessian(lin, "mse", [(X[:25], y[:25]), (X[25:], y[25:])], mode=mode)
        np.testing.assert_allclose(op.matvec(v), expected @ v, atol=1e-12, rtol=0)
        np.testing.assert_allclose(op.dense(), expected, atol=1e-12, rtol=0)
    # reduction="sum" is n times the mean; a bias adds the column of ones
    Hs = exact_hessian(lin, "mse", (X, y), reduction="sum")
    np.testing.assert_allclose(Hs, expected * X.shape[0], atol=1e-10, rtol=0)
    linb = nn.Linear(5, 1).double()
    Xa = np.hstack([X.numpy(), np.ones((X.shape[0], 1))])
    np.testing.assert_allclose(exact_hessian(linb, "mse", (X, y)), 2 * Xa.T @ Xa / X.shape[0], atol=1e-12)
    # eigenvalues of the spectrum pipeline (both methods) equal those of 2 X^T X / n
    ev = np.linalg.eigvalsh(expected)
    for method in ("lanczos", "exact"):
        r = hessian_spectrum(lin, "mse", (X, y), k=2, method=method, trace=False, density=False)
        np.testing.assert_allclose(r.top, ev[::-1][:2], rtol=1e-12)
        np.testing.assert_allclose(r.bottom, ev[:2], rtol=1e-12)
        assert np.isclose(r.condition_number, ev[-1] / ev[0], rtol=1e-12) and r.n_negative == 0


@pytest.fixture(scope="module")
def mlp_problem():
    net = MLP(3, [8, 6], 3, activation="tanh", seed=0).double()
    g = torch.Generator().manual_seed(1)
    X = torch.randn(80, 3, generator=g, dtype=torch.float64)
    y = torch.randint(0, 3, (80,), generator=g)
    H = exact_hessian(net, "cross_entropy", (X, y))
    return net, X, y, H


def test_mlp_lanczos_extremes_match_eigvalsh(mlp_problem):
    net, X, y, H = mlp_problem
    ev = np.linalg.eigvalsh(H)
    r = hessian_spectrum(net, "cross_entropy", (X, y), k=5, trace=False, density=False, eigenvectors=True)
    np.testing.assert_allclose(r.top, ev[::-1][:5], rtol=1e-8)
    np.testing.assert_allclose(r.bottom, ev[:5], rtol=1e-8)
    rr = hessian_spectrum(net, "cross_entropy", (X, y), k=5, trace=False, density=False, hvp="reverse")
    np.testing.assert_allclose(np.concatenate([rr.top, rr.bottom]), np.concatenate([ev[::-1][:5], ev[:5]]), rtol=1e-8)
    assert r.n_matvecs < H.shape[0]                        # converged before spanning the whole space
    assert ev[0] < 0 and np.isnan(r.condition_number)      # indefinite: no condition number
    assert r.largest_magnitude == pytest.approx(ev[np.argmax(abs(ev))], rel=1e-8)
    # eigenvectors: H q = lambda q
    for lam, q in zip(r.top, r.top_vectors.T):
        np.testing.assert_allclose(H @ q, lam * q, atol=1e-7 * abs(ev).max())
    ex = hessian_spectrum(net, "cross_entropy", (X, y), k=5, method="exact", density=False)
    assert ex.n_negative == int(np.sum(ev < -H.shape[0] * np.finfo(float).eps * abs(ev).max()))
    assert ex.condition_number_positive == pytest.approx(ev[-1] / ex.lambda_min_positive)
    assert ex.trace.trace == pytest.approx(np.trace(H), rel=1e-12)


def test_hutchinson_within_three_standard_errors_and_variance_identity(mlp_problem):
    net, X, y, H = mlp_problem
    op = LossHessian(net, "cross_entropy", (X, y))
    tr = hutchinson_trace(op, n_probes=200, seed=3)
    assert abs(tr.trace - np.trace(H)) <= 3 * tr.stderr
    # Rademacher per-probe variance 2 (||H||_F^2 - sum H_ii^2)
    var = 2 * (np.sum(H * H) - np.sum(np.diag(H) ** 2))
    big = hutchinson_trace(H, n_probes=4000, seed=4, block=500)
    assert np.var(big.samples, ddof=1) == pytest.approx(var, rel=0.1)
    # adaptive stopping reaches its target
    ad = hutchinson_trace(op, rtol=0.05, max_probes=2000, seed=5)
    assert ad.converged and ad.stderr <= 0.05 * abs(ad.trace)


def test_hutchinson_standard_error_covers_at_the_nominal_rate():
    rng = np.random.default_rng(0)
    B = rng.standard_normal((40, 40))
    A = B @ B.T / 40 + np.diag(rng.uniform(0, 2, 40))
    truth = np.trace(A)
    hits = sum(abs((r := hutchinson_trace(A, n_probes=40, seed=s)).trace - truth) <= 1.96 * r.stderr
               for s in range(400))
    assert 0.91 <= hits / 400 <= 0.98            # nominal 95 % (t with 39 df: about 94.3 %)


def test_spiked_random_matrix_outliers():
    # Papyan 2020 / curvlinops: Y = diag(5, 4, 3, 0, ...) + Z Z^T / N, outliers at theta + theta/(theta - 1)
    N = 2000
    rng = np.random.default_rng(0)
    Z = rng.standard_normal((N, N))
    Y = Z @ Z.T / N
    Y[np.arange(3), np.arange(3)] += [5.0, 4.0, 3.0]
    r = lanczos(Y, k=4, which="top", seed=0)
    predicted = [5 + 5 / 4, 4 + 4 / 3, 3 + 3 / 2, 4.0]           # 6.25, 5.333, 4.5 and the bulk edge 4
    np.testing.assert_allclose(r["top"], predicted, atol=0.1)


def test_slq_is_gauss_quadrature_of_the_moments():
    rng = np.random.default_rng(1)
    B = rng.standard_normal((60, 60))
    A = (B + B.T) / 2
    m = 6
    d = spectral_density(A, n_vectors=1, m=m, seed=7)
    v = np.random.default_rng(7).choice([-1.0, 1.0], size=60)     # the same probe the function draws
    v /= np.linalg.norm(v)
    for j in range(2 * m):
        exact = v @ np.linalg.matrix_power(A, j) @ v
        assert np.sum(d.weights[0] * d.nodes[0] ** j) == pytest.approx(exact, rel=1e-8, abs=1e-8), j
    # many probes, full steps: the moments estimate tr(A^j)/dim with Hutchinson's error
    dd = spectral_density(A, n_vectors=60, m=60, seed=2)
    assert dd.moment(2) == pytest.approx(np.trace(A @ A) / 60, rel=0.05)
    assert abs(np.trapezoid(dd.density, dd.grid) - 1) < 1e-3
