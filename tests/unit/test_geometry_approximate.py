"""TwoNN through approximate neighbours (pynndescent), checked against the exact search."""
import numpy as np
import pytest

from topo_mi.geometry import _neighbors as nb
from topo_mi.geometry import intrinsic_dimension


def _latent(n, d_latent=5, dim=40, seed=0):
    rng = np.random.default_rng(seed)
    return np.tanh(rng.normal(size=(n, d_latent)) @ rng.normal(size=(d_latent, dim)))


def test_neighbor_agreement_of_the_exact_search_is_one():
    X = _latent(800)
    dist, _ = nb.knn(X, 3)
    assert nb.neighbor_agreement(X, dist, 2, n_queries=100) == 1.0
    worse = dist.copy()
    worse[::2, 0] *= 1.5  # half the rows wrong
    assert 0.3 < nb.neighbor_agreement(X, worse, 2, n_queries=100) < 0.7


def test_neighbors_parameter_is_checked():
    from topo_mi.errors import TopoMIError

    with pytest.raises(TopoMIError, match="neighbors"):
        intrinsic_dimension(_latent(100), neighbors="fast")


@pytest.mark.slow  # pynndescent compiles its numba kernels on first use (minutes on a busy machine)
def test_approximate_twonn_agrees_with_exact():
    X = _latent(6000)
    ex = intrinsic_dimension(X)
    ap = intrinsic_dimension(X, neighbors="approximate", seed=0)
    assert ap.params["neighbors"] == "approximate" and ap.params["neighbor_agreement"] >= 0.95
    assert ap.value == pytest.approx(ex.value, rel=0.01)
    dist, ind = nb.approximate_knn(X, 4, seed=0)
    assert np.all(ind != np.arange(len(X))[:, None]) and np.all(np.diff(dist, axis=1) >= 0)
    np.testing.assert_allclose(dist, nb.exact_distances(X, ind))
