"""Fast max-min landmarks and certified persistence (``max_error``)."""
import numpy as np
import pytest

from topo_mi._sampling import maxmin_landmarks
from topo_mi.topology import bottleneck, persistence
from topo_mi.topology._landmarks import greedy_permutation


def _exact_running_min(X, idx):
    """Float64 insertion radii of ``idx`` and the float64 max of the running minimum before each pick."""
    X = np.asarray(X, dtype=np.float64)
    mind = np.linalg.norm(X - X[idx[0]], axis=1)
    ins, best = [np.inf], [np.inf]
    for i in idx[1:]:
        ins.append(mind[i])
        best.append(mind.max())
        np.minimum(mind, np.linalg.norm(X - X[i], axis=1), out=mind)
    return np.array(ins), np.array(best), float(mind.max())


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape,n", [((700, 5), 120), ((400, 96), 399), ((1500, 3), 300)])
def test_blocked_landmarks_equal_the_reference_loop(shape, n, dtype):
    X = (np.random.default_rng(1).normal(size=shape) + 7.0).astype(dtype)  # off-centre: cancellation
    ref_idx, ref_r = maxmin_landmarks(X, n, start=3)
    idx, radii, r, near = greedy_permutation(X, n, start=3)
    np.testing.assert_array_equal(idx, ref_idx)
    assert r == pytest.approx(ref_r, rel=1e-6, abs=1e-9)
    assert r >= ref_r * (1 - 1e-12)  # float64 radius of the assignment: an upper bound
    ins, _, exact = _exact_running_min(X, idx)
    np.testing.assert_allclose(radii[1:], ins[1:], rtol=1e-5)
    assert np.all(np.diff(radii[1:]) <= 1e-5 * radii[1])  # insertion radii decrease
    d_near = np.linalg.norm(X.astype(np.float64) - X[near].astype(np.float64), axis=1)
    assert d_near.max() == pytest.approx(r)


def test_tie_rule_on_a_lattice_is_a_valid_greedy_permutation():
    """Lattice points tie everywhere: every pick attains the running maximum (within float32
    rounding), the lowest index wins exact ties, and the cover radius equals the reference's."""
    g = np.arange(12, dtype=np.float64)
    X = np.stack(np.meshgrid(g, g, g[:4]), axis=-1).reshape(-1, 3)
    ref_idx, ref_r = maxmin_landmarks(X, 150, start=0)
    idx, radii, r, _ = greedy_permutation(X, 150, start=0)
    ins, best, exact = _exact_running_min(X, idx)
    np.testing.assert_allclose(ins[1:], best[1:], rtol=1e-6)
    assert r == pytest.approx(exact) and r == pytest.approx(ref_r)
    assert idx[1] == ref_idx[1]  # the first tie (8 far corners in the float64 loop) -> lowest index


def test_stop_radius_gives_the_first_prefix_meeting_it():
    X = np.random.default_rng(2).uniform(size=(2000, 2))
    full_idx, radii, _, _ = greedy_permutation(X, 2000, start=0)
    idx, _, r, _ = greedy_permutation(X, start=0, stop_radius=0.05)
    k = len(idx)
    np.testing.assert_array_equal(idx, full_idx[:k])
    assert r <= 0.05 * (1 + 1e-6) and radii[k - 1] > 0.05


def test_persistence_diagrams_unchanged_by_the_fast_landmarks():
    rng = np.random.default_rng(0)
    t = rng.uniform(0, 2 * np.pi, 1500)
    X = np.c_[np.cos(t), np.sin(t), 0.05 * rng.normal(size=(1500, 30))].astype(np.float32)
    res = persistence(X, max_dim=1, n_landmarks=150, seed=4)
    ref_idx, ref_r = maxmin_landmarks(X, 150, seed=4)
    np.testing.assert_array_equal(res.landmark_indices, ref_idx)
    assert res.cover_radius == pytest.approx(ref_r, rel=1e-6)
    ref = persistence(X[ref_idx], max_dim=1)
    assert np.max(bottleneck(res, ref)) == 0.0
