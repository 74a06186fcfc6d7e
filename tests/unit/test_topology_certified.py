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


# -- max_error -------------------------------------------------------------------------------------
def _noisy_circle(n, seed=0, dim=3):
    rng = np.random.default_rng(seed)
    t = rng.uniform(0, 2 * np.pi, n)
    return np.c_[np.cos(t), np.sin(t), 0.08 * rng.normal(size=(n, dim - 2))]


@pytest.mark.parametrize("route,target", [("landmarks", 0.4), ("sparse", 0.3), ("exact", 0.1), ("auto", 0.4)])
def test_certified_bound_holds_against_the_exact_diagrams(route, target):
    X = _noisy_circle(350, seed=1)
    exact = persistence(X, max_dim=1)
    res = persistence(X, max_dim=1, max_error=target, route=route)
    assert res.route == (route if route != "auto" else "landmarks")
    assert res.error_bounds[0] == 0.0  # H0 exact via the spanning tree
    np.testing.assert_array_equal(res.diagrams[0], exact.diagrams[0])
    assert res.error_bounds[1] <= target * (1 + 1e-6)
    d1 = bottleneck(res, exact, dim=1)
    assert d1 <= res.error_bounds[1] + 1e-12
    if route == "exact":
        assert d1 == 0.0 and res.error_bounds[1] == 0.0
    s = res.summary()
    assert s["route"] == res.route and s["certified_bars_H1"] == res.n_certified(1) >= 1  # the circle
    assert s["bound_H1"] == res.error_bounds[1]


def test_sparse_route_bound_holds_in_every_dimension_and_relative_target():
    X = _noisy_circle(250, seed=3)
    exact = persistence(X, max_dim=1)
    res = persistence(X, max_dim=1, max_relative_error=0.15, route="sparse")
    assert res.route == "sparse" and res.max_error > 0
    from topo_mi.topology._certified import central_radius

    assert res.max_error == pytest.approx(0.15 * central_radius(X))
    assert bottleneck(res, exact, dim=1) <= res.error_bounds[1]
    # the sparse diagrams alone (H0 included) obey the bound too
    from topo_mi.topology._certified import _sparse_rips

    dg, _ = _sparse_rips(X, 0.15, 1, 2)
    assert bottleneck(dg[0], exact.diagrams[0]) <= res.error_bounds[1]


def test_mst_h0_equals_the_rips_h0_exactly():
    X = np.random.default_rng(5).normal(size=(300, 8))
    rips = persistence(X, max_dim=1, backend="gudhi")
    h0 = persistence(X, max_dim=0, max_error=0.0)
    assert h0.route == "mst" and h0.error_bounds == (0.0,)
    np.testing.assert_array_equal(h0.diagrams[0], rips.diagrams[0])


@pytest.mark.parametrize("kwargs,match", [
    ({"max_error": -1.0}, "max_error"),
    ({"max_error": 0.1, "max_relative_error": 0.1}, "max_relative_error"),
    ({"max_relative_error": 2.0}, "max_relative_error"),
    ({"max_error": 0.1, "n_landmarks": 10}, "n_landmarks"),
    ({"max_error": 0.1, "threshold": 1.0}, "threshold"),
    ({"max_error": 0.1, "metric": "cosine"}, "metric"),
    ({"route": "landmarks"}, "route"),
    ({"max_error": 0.1, "route": "fast"}, "route"),
])
def test_max_error_parameter_errors(kwargs, match):
    from topo_mi.errors import TopoMIError

    with pytest.raises(TopoMIError, match=match):
        persistence(_noisy_circle(30), **kwargs)


def test_certified_result_round_trips(tmp_path):
    res = persistence(_noisy_circle(120), max_dim=1, max_error=0.5)
    res.save(tmp_path / "r")
    back = type(res).load(tmp_path / "r")
    assert back.route == res.route and tuple(back.error_bounds) == res.error_bounds
    assert back.n_certified(1) == res.n_certified(1) and back.max_error == res.max_error


# -- the memory guard --------------------------------------------------------------------------------
def test_measure_peak_sees_an_allocation():
    from topo_mi.topology import _resources as rs

    def alloc():
        a = np.ones(25_000_000)  # 200 MB, touched
        return float(a[::4096].sum())

    _, b = rs.measure_peak(alloc)
    if b is None:
        pytest.skip("the kernel does not let the peak be reset here")
    assert 0.9 * 200e6 <= b <= 1.5 * 200e6


def test_guard_pilots_and_refuses_what_the_edge_count_would_let_through():
    from topo_mi.errors import ResourceError
    from topo_mi.topology import _metrics as mt
    from topo_mi.topology import _resources as rs

    X = _noisy_circle(420, seed=2, dim=16)
    D = mt.distance_matrix_of(X, "euclidean")
    counted = rs.check_complex_fits(D, n=420, max_dim=1, threshold=np.inf, backend="gudhi", limit=1 << 62,
                                    pilot=False)
    piloted = rs.check_complex_fits(D, n=420, max_dim=1, threshold=np.inf, backend="gudhi", limit=1 << 62,
                                    pilot=True)
    if piloted["piloted_bytes"] is None:
        pytest.skip("the kernel does not let the peak be reset here")
    assert piloted["bytes"] >= counted["bytes"] and piloted["piloted_bytes"] > 0
    limit = int(0.5 * (counted["bytes"] + piloted["bytes"]))
    if piloted["bytes"] > counted["bytes"] * 1.01:
        with pytest.raises(ResourceError, match="n_landmarks"):
            rs.check_complex_fits(D, n=420, max_dim=1, threshold=np.inf, backend="gudhi", limit=limit, pilot=True)


def test_pilots_run_side_by_side_and_leave_nothing_behind(tmp_path, monkeypatch):
    """Both pilots are started before either is awaited (each in its own process, so each peak is
    its own), and an estimate interrupted while they run kills them and removes their files."""
    import tempfile

    from topo_mi.topology import _metrics as mt
    from topo_mi.topology import _resources as rs

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    D = mt.distance_matrix_of(_noisy_circle(420, seed=3, dim=8), "euclidean")
    events, procs = [], []
    real_start, real_finish = rs._start_pilot, rs._finish_pilot

    def start(Ds, **kw):
        events.append(("start", Ds.shape[0]))
        job = real_start(Ds, **kw)
        procs.append(job[0])
        return job

    def finish(proc, path):
        events.append(("finish", None))
        return real_finish(proc, path)

    monkeypatch.setattr(rs, "_start_pilot", start)
    monkeypatch.setattr(rs, "_finish_pilot", finish)
    b = rs.pilot_backend_bytes(D, max_dim=1, threshold=np.inf, backend="gudhi", coeff=2)
    assert [e[0] for e in events] == ["start", "start", "finish", "finish"]
    assert sorted(e[1] for e in events if e[0] == "start") == [100, 200]  # n/8 and n/4, at least 100 and 200
    assert b is None or b > 0
    assert list(tmp_path.iterdir()) == []

    def interrupted(proc, path):
        raise KeyboardInterrupt

    events.clear()
    procs.clear()
    monkeypatch.setattr(rs, "_finish_pilot", interrupted)
    with pytest.raises(KeyboardInterrupt):
        rs.pilot_backend_bytes(D, max_dim=1, threshold=np.inf, backend="gudhi", coeff=2)
    assert len(procs) == 2 and all(p.poll() is not None for p in procs)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("case", ["circle_h1", "gaussian_h1", "gaussian_h2"])
def test_truncated_route_bound_holds_against_the_exact_diagrams(case):
    """The prefix up to R - 2 max_error, classes alive there given the death (t + R) / 2: within
    max_error of the whole filtration in every dimension >= 1, H0 exact, nothing infinite."""
    from scipy.spatial.distance import cdist

    rng = np.random.default_rng(5)
    if case == "circle_h1":
        X, md, tau = _noisy_circle(400, seed=4, dim=16), 1, 0.15
    elif case == "gaussian_h1":
        X, md, tau = rng.normal(size=(300, 12)), 1, 0.4
    else:
        X, md, tau = rng.normal(size=(90, 6)), 2, 0.3
    exact = persistence(X, max_dim=md)
    res = persistence(X, max_dim=md, max_error=tau, route="truncated")
    R = float(cdist(X, X).max(axis=1).min())
    assert res.route == "truncated" and res.error_bounds == (0.0,) + (pytest.approx(tau),) * md
    Rc = res.cut["collapse_radius"]  # every complex from it on is contractible; at most R
    assert res.cut["enclosing_radius"] == pytest.approx(R) and Rc <= R
    assert res.cut["truncated"] and res.cut["cut"] == pytest.approx(Rc - 2 * tau)
    assert res.cut["alive"] > 0 or case != "circle_h1"
    np.testing.assert_array_equal(res.diagrams[0], exact.diagrams[0])
    for k in range(1, md + 1):
        assert np.isfinite(res.diagrams[k]).all()
        assert bottleneck(res, exact, dim=k) <= tau + 1e-12
    # the bars of the prefix that died in it are the whole filtration's own
    died = res.diagrams[1][res.diagrams[1][:, 1] < Rc - 2 * tau]
    ex = {tuple(np.round(b, 9)) for b in exact.diagrams[1]}
    assert all(tuple(np.round(b, 9)) in ex for b in died)


def test_auto_takes_the_truncated_prefix_where_landmarks_cover_poorly(monkeypatch):
    from topo_mi.topology import _certified, _cut

    X = np.random.default_rng(6).normal(size=(300, 48))  # high dimension: cover radius near the diameter
    exact = persistence(X, max_dim=1)
    cheap = persistence(X, max_dim=1, max_error=0.5)  # the whole filtration costs well under a second here
    assert cheap.route == "exact" and cheap.error_bounds == (0.0, 0.0)
    monkeypatch.setattr(_certified, "EXACT_IF_UNDER_S", 0.0)  # as if it did not
    res = persistence(X, max_dim=1, max_error=0.5)
    assert res.route == "truncated" and res.error_bounds == (0.0, pytest.approx(0.5))
    assert bottleneck(res, exact, dim=1) <= 0.5
    assert res.n_certified(1) == int((np.diff(res.diagrams[1], axis=1) > 1.0).sum())
    assert _cut.truncation_bound(3.0, 4.0) == 0.5 and _cut.truncation_bound(5.0, 4.0) == 0.0
    # a bound of zero asks for the whole filtration: exact, as before
    zero = persistence(X, max_dim=1, max_error=0.0)
    assert zero.route == "exact" and zero.error_bounds == (0.0, 0.0)
    for a, b in zip(zero.diagrams, exact.diagrams):
        np.testing.assert_array_equal(a, b)


def test_landmarks_read_off_the_matrix_equal_the_greedy_permutation():
    from scipy.spatial.distance import cdist

    from topo_mi.topology._certified import greedy_from_matrix

    X = np.random.default_rng(8).normal(size=(400, 5))
    D = cdist(X, X)
    idx, r = greedy_from_matrix(D, 60)
    ref, _, r_ref, _ = greedy_permutation(X, 60, start=0)
    np.testing.assert_array_equal(idx, ref)
    assert r == pytest.approx(r_ref, rel=1e-6) and r == pytest.approx(D[:, idx].min(axis=1).max())
    part, rp = greedy_from_matrix(D, 400, stop_radius=1.0)  # the first prefix within the radius
    assert rp <= 1.0 < D[:, part[:-1]].min(axis=1).max()


@pytest.mark.parametrize("route,target", [("exact", 0.0), ("truncated", 0.3)])
def test_duplicate_points_are_merged_above_h0_with_the_bound_kept(route, target):
    """A cloud in which half the points appear twice or three times (token embeddings repeat): the
    complex above H0 is built on the distinct points, H0 on all of them, and the diagrams stay
    within the reported bound (the matrix's rounding between twins included) of the full ones."""
    base = _noisy_circle(160, seed=7, dim=40)
    X = np.vstack([base, base[:80], base[:40]])[np.random.default_rng(1).permutation(280)]
    full = persistence(X, max_dim=1)
    res = persistence(X, max_dim=1, max_error=target if target else 1e-12, route=route)
    assert res.route == route
    np.testing.assert_array_equal(res.diagrams[0], full.diagrams[0])  # the twins' zero bars included
    assert res.error_bounds[0] == 0.0 and res.error_bounds[1] < target + 1e-6
    assert bottleneck(res, full, dim=1) <= res.error_bounds[1] + 1e-12
    assert res.n_certified(1) >= 1  # the circle
    from topo_mi.topology._certified import _unique_rows

    keep, rep = _unique_rows(X)
    assert keep.size == 160 and np.array_equal(X[rep], X)


@pytest.mark.parametrize("case", ["outliers", "square", "gaussian"])
def test_collapse_radius_bounds_every_bar_of_the_whole_filtration(case):
    """From the collapse radius on every Rips complex is contractible: every bar of dimension >= 1
    of the exact diagrams (H1 and H2) is born and dies by it, and it is at most the enclosing
    radius — strictly below it on clouds whose outliers are shadowed by nearer points."""
    from scipy.spatial.distance import cdist

    from topo_mi.topology import _cut

    rng = np.random.default_rng(11)
    if case == "outliers":  # a disc with a few far points, each shadowed by one nearer it
        X = rng.uniform(-1, 1, size=(70, 2))
        X = X[(X ** 2).sum(1) <= 1]
        X = np.vstack([X, [[3.0, 0.0], [2.4, 0.05], [-2.6, 0.3], [-2.0, 0.28]]])
    elif case == "square":
        X = rng.uniform(size=(80, 2))
    else:
        X = rng.normal(size=(60, 5))
    D = cdist(X, X)
    s0 = _cut.collapse_radius(D)
    R = float(D.max(axis=1).min())
    assert s0 <= R
    if case == "outliers":
        assert s0 < R - 0.3
    exact = persistence(X, max_dim=2)
    for k in (1, 2):
        d = exact.diagrams[k]
        assert np.isfinite(d).all() and (d <= s0 + 1e-12).all()


def test_collapse_radius_rejects_an_undominated_far_point():
    """Four corners of a square and its centre: the centre is within R of all, and no corner is
    dominated by a point nearer the centre at a smaller scale, so the radius stays R."""
    from scipy.spatial.distance import cdist

    from topo_mi.topology import _cut

    X = np.array([[0.0, 0.0], [1.0, 1.0], [1.0, -1.0], [-1.0, 1.0], [-1.0, -1.0]])
    D = cdist(X, X)
    assert _cut.collapse_radius(D) == pytest.approx(np.sqrt(2.0))
