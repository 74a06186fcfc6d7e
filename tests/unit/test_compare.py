"""topo_mi.compare and topo_mi.pipelines.comparison: validation, alignment, engines, results, plots."""
import re

import numpy as np
import pytest

import topo_mi.compare as C
from topo_mi.activations import Activations
from topo_mi.compare import _common, _engine
from topo_mi.errors import InvalidParameterError, NonFiniteError, ResourceError, UnknownNameError
from topo_mi.pipelines.comparison import ComparisonResult, ManyComparisonResult, align_samples, compare, compare_many


@pytest.fixture(autouse=True, scope="module")
def _one_blas_thread():
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
        yield


def _data(n=60, seed=0):
    rng = np.random.default_rng(seed)
    Z = rng.normal(size=(n, 4))
    A = {"l1": np.tanh(Z @ rng.normal(size=(4, 9))), "l2": Z @ rng.normal(size=(4, 6)),
         "l3": rng.normal(size=(n, 5))}
    B = {"l1": Z @ rng.normal(size=(4, 7)) + 0.3 * rng.normal(size=(n, 7)),
         "l2": np.tanh(Z @ rng.normal(size=(4, 5))), "l3": rng.normal(size=(n, 4))}
    return A, B


# ---- boundary checks ------------------------------------------------------------------------
def test_rows_must_match():
    rng = np.random.default_rng(0)
    with pytest.raises(InvalidParameterError, match="Y: expected 20 rows"):
        C.cka(rng.normal(size=(20, 3)), rng.normal(size=(21, 3)))


def test_non_finite_and_constant_inputs_raise():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(20, 3))
    bad = X.copy()
    bad[3, 1] = np.nan
    with pytest.raises(NonFiniteError, match="1 non-finite"):
        C.cka(X, bad)
    # the linear kernel reads finiteness off the column means: every kind of bad entry is caught,
    # in float32 and float64, for either argument, and named with its row
    for dtype in (np.float32, np.float64):
        for val in (np.nan, np.inf, -np.inf):
            b = X.astype(dtype)
            b[7, 2] = val
            with pytest.raises(NonFiniteError, match=r"X: .*1 non-finite.*rows 7"):
                C.cka(b, X)
            with pytest.raises(NonFiniteError, match=r"Y: .*1 non-finite.*rows 7"):
                C.cka(X, b, form="gram")
    both = X.copy()
    both[2, 0], both[5, 0] = np.inf, -np.inf  # inf - inf: a NaN mean, still caught
    with pytest.raises(NonFiniteError, match="2 non-finite"):
        C.cka(both, X)
    huge = X.copy()
    huge[:, 0] = 1e308  # finite entries whose float64 column sum overflows: refused by name
    with pytest.raises(InvalidParameterError, match="X: expected values whose column sums fit in float64"):
        C.cka(huge, X)
    with pytest.raises(InvalidParameterError, match="varies across samples"):
        C.cka(X, np.ones((20, 4)))
    with pytest.raises(InvalidParameterError, match="expected a 2-D array"):
        C.cka(X[:, 0], X)


def test_unknown_names_suggest_the_closest():
    X = np.random.default_rng(0).normal(size=(20, 3))
    with pytest.raises(UnknownNameError, match="'linear'"):
        C.cka(X, X, kernel="linaer")
    with pytest.raises(UnknownNameError, match="closest valid names: 'cka'"):
        C.get_method("ckaa")
    with pytest.raises(InvalidParameterError, match="method_options"):
        compare({"a": X}, {"a": X}, methods=("cka",), method_options={"rtd": {}})
    with pytest.raises(InvalidParameterError, match=r"method_options\['knn'\]"):
        compare({"a": X}, {"a": X}, methods=("knn",), method_options={"knn": {"kk": 3}})
    with pytest.raises(InvalidParameterError, match="k: expected an integer >= 1"):
        compare({"a": X}, {"a": X}, methods=("knn",), method_options={"knn": {"k": 0}})


def test_cca_refuses_degenerate_dimensions():
    rng = np.random.default_rng(0)
    X, Y = rng.normal(size=(20, 12)), rng.normal(size=(20, 10))
    with pytest.raises(InvalidParameterError, match="by dimension count"):
        C.cca(X, Y)
    with pytest.raises(InvalidParameterError, match="between layers 'x' and 'y'"):
        compare({"x": X}, {"y": Y}, methods=("cca",), n_perm=0)
    assert 0 < C.svcca(X, Y, keep=0.5) <= 1  # the reduction makes it well posed


def test_gram_memory_budget(monkeypatch):
    rng = np.random.default_rng(0)
    X, Y = rng.normal(size=(300, 3)), rng.normal(size=(300, 4))
    monkeypatch.setattr(_common, "MAX_GRAM_BYTES", 8 * 100 * 100)
    with pytest.raises(ResourceError, match="minibatch_cka"):
        C.cka(X, Y, kernel="rbf")
    with pytest.raises(ResourceError):
        C.cka(X, Y, form="gram")
    assert 0 <= C.cka(X, Y) <= 1  # the linear kernel falls back to the feature form
    monkeypatch.setattr(_engine, "GRAM_ENGINE_BYTES", 1000)
    with pytest.raises(ResourceError, match="subsample"):
        compare({"a": X}, {"a": Y}, methods=("cka_rbf",), n_perm=2)


# ---- numerical agreement between routes -----------------------------------------------------
@pytest.mark.parametrize("debiased", [False, True])
def test_feature_and_gram_forms_agree(debiased):
    rng = np.random.default_rng(1)
    X, Y = rng.normal(size=(50, 8)), rng.normal(size=(50, 70))
    a = C.cka(X, Y, debiased=debiased, form="features")
    b = C.cka(X, Y, debiased=debiased, form="gram")
    assert a == pytest.approx(b, rel=1e-10)


@pytest.mark.parametrize("kernel,debiased", [("linear", False), ("linear", True), ("rbf", False), ("rbf", True)])
def test_cka_engine_routes_match_direct_values(kernel, debiased, monkeypatch):
    A, B = _data()
    As, Bs = [np.asarray(v, float) for v in A.values()], [np.asarray(v, float) for v in B.values()]
    perms = np.stack([np.random.default_rng(k).permutation(60) for k in range(4)])
    direct = np.array([[C.cka(x, y, kernel=kernel, debiased=debiased) for y in Bs] for x in As])
    null_direct = np.array([[[C.cka(x, y[p], kernel=kernel, debiased=debiased) for y in Bs] for x in As]
                            for p in perms])
    routes = {}
    for route in (("features", "gram") if kernel == "linear" else ("gram",)):
        monkeypatch.setattr(_engine, "choose_route", lambda *a, _r=route: _r)
        obs, null, used = _engine.cka_null(As, Bs, perms, kernel=kernel, debiased=debiased)
        assert used == route
        np.testing.assert_allclose(obs, direct, atol=1e-10)
        np.testing.assert_allclose(null, null_direct, atol=1e-10)
        np.testing.assert_allclose(_engine.cka_matrix(As, Bs, kernel=kernel, debiased=debiased), direct, atol=1e-10)
        routes[route] = obs
    assert len(routes) >= 1


@pytest.mark.parametrize("method", ["cca", "cca_r2", "svcca", "pwcca", "procrustes", "rsa", "knn"])
def test_prepared_permutation_scores_equal_the_function_on_permuted_rows(method):
    spec = C.get_method(method)
    opts = spec.options()
    rng = np.random.default_rng(2)
    X = rng.normal(size=(40, 5))
    Y = np.tanh(X @ rng.normal(size=(5, 6))) + 0.3 * rng.normal(size=(40, 6))
    px, py = spec.prepare(X, opts), spec.prepare(Y, opts)
    assert spec.score(px, py, None, opts) == pytest.approx(spec(X, Y), abs=1e-10)
    for k in range(3):
        p = rng.permutation(40)
        assert spec.score(px, py, p, opts) == pytest.approx(spec(X, Y[p]), abs=1e-10)


def test_pipeline_values_equal_public_functions():
    A, B = _data()
    res = compare(A, B, methods=("cka", "cka_rbf", "cca", "pwcca", "procrustes", "rsa", "knn", "diagram"),
                  n_perm=5, seed=1)
    for m in res.methods:
        spec = C.get_method(m)
        for i, la in enumerate(res.layers_a):
            for j, lb in enumerate(res.layers_b):
                assert res.values[m][i, j] == pytest.approx(spec(A[la], B[lb]), abs=1e-10), (m, la, lb)
    assert res.n_perm["diagram"] == 0 and np.isnan(res.p_values["diagram"]).all()
    assert "ignores which sample" in res.notes["diagram"]


def test_minibatch_cka_single_batch_is_debiased_cka():
    rng = np.random.default_rng(3)
    X, Y = rng.normal(size=(64, 5)), rng.normal(size=(64, 3))
    assert C.minibatch_cka(X, Y, batch_size=64) == pytest.approx(C.cka(X, Y, debiased=True), rel=1e-12)
    rbf = C.minibatch_cka(X, Y, batch_size=1000, kernel="rbf")
    assert rbf == pytest.approx(C.cka(X, Y, kernel="rbf", debiased=True), rel=1e-12)
    with pytest.raises(InvalidParameterError, match="batch_size"):
        C.minibatch_cka(X, Y, batch_size=3)


def test_other_indices_basic_values():
    rng = np.random.default_rng(4)
    X = rng.normal(size=(50, 6))
    Q, _ = np.linalg.qr(rng.normal(size=(6, 6)))
    assert C.procrustes(X, 2 * X @ Q + 1) == pytest.approx(0.0, abs=1e-10)
    assert C.rsa(X, X) == pytest.approx(1.0)
    assert C.knn_overlap(X, X @ Q, k=5) == 1.0
    assert C.cca(X, X) == pytest.approx(1.0)
    assert C.pwcca(X, X @ rng.normal(size=(6, 6))) == pytest.approx(1.0)
    assert C.svcca(X, X) == pytest.approx(1.0)
    Y = rng.normal(size=(50, 6))
    assert C.knn_overlap(X, Y, k=5) < 0.3
    assert 0 < C.procrustes(X, Y) <= 2


# ---- statistics helpers ---------------------------------------------------------------------
def test_adjust_pvalues_against_hand_computed_values():
    p = np.array([0.01, 0.04, 0.03, 0.005, np.nan])
    np.testing.assert_allclose(C.adjust_pvalues(p, "bonferroni")[:4], [0.04, 0.16, 0.12, 0.02])
    # Holm: sorted 0.005, 0.01, 0.03, 0.04 times 4, 3, 2, 1 = 0.02, 0.03, 0.06, 0.04 -> running max
    np.testing.assert_allclose(C.adjust_pvalues(p, "holm")[:4], [0.03, 0.06, 0.06, 0.02])
    # BH: 0.005*4/1, 0.01*4/2, 0.03*4/3, 0.04*4/4 = 0.02, 0.02, 0.04, 0.04 -> running min from the top
    np.testing.assert_allclose(C.adjust_pvalues(p, "bh")[:4], [0.02, 0.04, 0.04, 0.02])
    assert np.isnan(C.adjust_pvalues(p, "holm")[4])
    np.testing.assert_allclose(C.adjust_pvalues(p, "none")[:4], p[:4])


def test_permutation_pvalues_counts_ties_and_direction():
    obs = np.array([0.5, 0.5])
    null = np.array([[0.5, 0.1], [0.2, 0.9], [0.7, 0.5]])
    np.testing.assert_allclose(C.permutation_pvalues(obs, null), [3 / 4, 3 / 4])
    np.testing.assert_allclose(C.permutation_pvalues(obs, null, higher_is_similar=False), [3 / 4, 3 / 4])
    np.testing.assert_allclose(C.permutation_pvalues(np.array([0.95]), np.array([[0.5], [0.9]])), [1 / 3])


# ---- alignment by sample ids ----------------------------------------------------------------
def test_alignment_errors_and_explicit_alignment():
    A, B = _data(n=30)
    ids = np.arange(30)
    a = Activations(A, sample_ids=ids)
    shuffled = np.random.default_rng(0).permutation(30)
    b_shuffled = Activations({k: v[shuffled] for k, v in B.items()}, sample_ids=ids[shuffled])
    with pytest.raises(InvalidParameterError, match="same 30 ids in a different order"):
        compare(a, b_shuffled, n_perm=0)
    b_fewer = Activations({k: v[5:] for k, v in B.items()}, sample_ids=ids[5:] + 100)
    with pytest.raises(InvalidParameterError, match="30 and 25 ids with 0 in common"):
        compare(a, b_fewer, n_perm=0)
    b_str = Activations(B, sample_ids=np.array([str(i) for i in ids]))
    with pytest.raises(InvalidParameterError, match="0 in common"):  # '3' is not 3
        compare(a, b_str, n_perm=0)

    aligned = compare(a, b_shuffled, n_perm=0, align=True)
    direct = compare(A, B, n_perm=0)
    np.testing.assert_allclose(aligned.values["cka"], direct.values["cka"], atol=1e-12)
    assert aligned.alignment["reordered"] and aligned.alignment["dropped_a"] == 0

    b_partial = Activations({k: v[5:] for k, v in B.items()}, sample_ids=ids[5:])
    res = compare(a, b_partial, n_perm=0, align=True)
    assert res.n_samples == 25
    assert res.alignment == {"aligned": True, "n_common": 25, "dropped_a": 5, "dropped_b": 0, "reordered": False,
                             "examples_dropped_a": ["0", "1", "2", "3", "4"], "examples_dropped_b": []}
    assert res.summary()["dropped"] == 5
    ref = compare({k: v[5:] for k, v in A.items()}, {k: v[5:] for k, v in B.items()}, n_perm=0)
    np.testing.assert_allclose(res.values["cka"], ref.values["cka"], atol=1e-12)


def test_plain_mappings_are_matched_by_position():
    ia, ib, rep = align_samples(np.arange(4), np.arange(4))
    assert rep["aligned"] is False and list(ia) == list(ib) == [0, 1, 2, 3]
    with pytest.raises(InvalidParameterError, match="4 and 5 ids"):
        align_samples(np.arange(4), np.arange(5))


# ---- results, plots, compare_many -----------------------------------------------------------
def test_comparison_result_statistics_save_load_and_plots(tmp_path):
    A, B = _data()
    res = compare(A, B, methods=("cka", "procrustes"), n_perm=49, n_boot=20, seed=3, names=("m0", "m1"))
    assert isinstance(res, ComparisonResult)
    for m in res.methods:
        assert res.values[m].shape == res.p_values[m].shape == res.ci_low[m].shape == (3, 3)
        assert np.all(res.ci_low[m] <= res.ci_high[m])
        assert np.all((res.p_values[m] >= 1 / 50) & (res.p_values[m] <= 1))
        assert np.all(res.p_adjusted[m] >= res.p_values[m])
    for i, la in enumerate(res.layers_a):
        assert res.best_matches("cka")[la] == res.layers_b[int(np.argmax(res.values["cka"][i]))]
        # a distance: the smallest wins
        assert res.best_match_a["procrustes"][i] == res.layers_b[int(np.argmin(res.values["procrustes"][i]))]
    for j in range(3):
        assert res.best_match_b["cka"][j] == res.layers_a[int(np.argmax(res.values["cka"][:, j]))]
    again = compare(A, B, methods=("cka", "procrustes"), n_perm=49, n_boot=20, seed=3, names=("m0", "m1"))
    np.testing.assert_array_equal(again.p_values["cka"], res.p_values["cka"])
    np.testing.assert_array_equal(again.ci_low["procrustes"], res.ci_low["procrustes"])
    res.save(tmp_path / "r")
    back = ComparisonResult.load(tmp_path / "r")
    np.testing.assert_array_equal(back.values["cka"], res.values["cka"])
    assert back.best_match_a == res.best_match_a and back.alignment == res.alignment
    assert "cka_mean" in res.summary() and "ComparisonResult(" in repr(res)

    from topo_mi.plotting import compare as P

    ax = res.plot()
    assert ax.get_title().startswith("cka")
    P.plot_comparison(res, method="procrustes")
    res.plot_matching(method="cka")
    with pytest.raises(UnknownNameError):
        res.plot(method="nope")
    from topo_mi.plotting import pyplot

    pyplot().close("all")


def test_compare_many_serial_and_process_agree(tmp_path):
    rng = np.random.default_rng(5)
    Z = rng.normal(size=(40, 3))
    models = {f"s{s}": {"h1": np.tanh(Z @ rng.normal(size=(3, 8))), "h2": Z @ rng.normal(size=(3, 5))}
              for s in range(3)}
    res = compare_many(models, methods=("cka", "knn"), n_perm=9, seed=0)
    assert isinstance(res, ManyComparisonResult)
    assert res.names == ["s0", "s1", "s2"] and res.similarity["cka"].shape == (3, 3)
    np.testing.assert_allclose(np.diag(res.similarity["cka"]), 1.0)
    np.testing.assert_allclose(res.similarity["cka"], res.similarity["cka"].T)
    p01 = res.pair("s0", "s1")
    assert res.similarity["cka"][0, 1] == pytest.approx(np.mean(np.diag(p01.values["cka"])))
    sec = res.report_section()
    assert sec["table"]["index"] == sec["table"]["columns"] == res.names
    np.testing.assert_allclose(sec["table"]["rows"], res.similarity["cka"])
    assert sec["headline"].startswith("Across 3 models") and sec["caption"]
    psec = p01.report_section()  # two models: best matches over all layers, no diagonal note
    assert psec["headline"].startswith("s0 vs s1") and psec["table"]["index"] == ["h1", "h2"]
    proc = compare_many(models, methods=("cka", "knn"), n_perm=9, seed=0, executor="process")
    for m in ("cka", "knn"):
        np.testing.assert_array_equal(proc.similarity[m], res.similarity[m])
        np.testing.assert_array_equal(proc.pairs[2].p_values[m], res.pairs[2].p_values[m])
    res.save(tmp_path / "many")
    back = ManyComparisonResult.load(tmp_path / "many")
    assert isinstance(back.pairs[0], ComparisonResult)
    ax = back.plot()
    assert ax.get_ylabel() == "1 - cka"
    back.plot_matrix(method="knn")
    from topo_mi.plotting import pyplot

    pyplot().close("all")
    with pytest.raises(InvalidParameterError, match="at least 2"):
        compare_many([models["s0"]])


def test_import_stays_light():
    import json
    import subprocess
    import sys

    code = ("import sys, json, topo_mi.compare, topo_mi.pipelines.comparison; "
            "print(json.dumps([m for m in ('torch', 'gudhi', 'ripser', 'sklearn', 'matplotlib', 'scipy') "
            "if m in sys.modules]))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


# ---- confidence intervals -------------------------------------------------------------------
def _gaussian_truth(p=4, q=4, s=1.0):
    """x ~ N(0, I_p), y = A x + s·noise: population linear CKA and mean canonical correlation."""
    A = np.random.default_rng(0).normal(size=(q, p)) * np.array([1.5, 1.0, 0.6, 0.3])[None, :p]
    Sxy, Syy = A.T, A @ A.T + s**2 * np.eye(q)
    cka_true = np.sum(Sxy**2) / np.sqrt(p * np.sum(Syy**2))  # ||Σxx||_F = sqrt(p)
    w, V = np.linalg.eigh(Syy)
    rho = np.linalg.svd(Sxy @ V @ np.diag(w**-0.5) @ V.T, compute_uv=False)
    return A, s, cka_true, float(rho.mean())


def test_jackknife_intervals_cover_the_population_value_and_contain_the_estimate():
    A, s, cka_true, cca_true = _gaussian_truth()
    truth = {"cka": cka_true, "cca": cca_true, "svcca": cca_true}  # svcca keeps all 4 directions here
    hits = {m: 0 for m in truth}
    reps, n = 200, 300
    for r in range(reps):
        rng = np.random.default_rng(100 + r)
        X = rng.normal(size=(n, 4))
        Y = X @ A.T + s * rng.normal(size=(n, 4))
        res = compare({"x": X}, {"y": Y}, methods=tuple(truth), n_perm=0, n_boot=30, seed=r)
        assert res.values["svcca"][0, 0] == pytest.approx(res.values["cca"][0, 0], abs=1e-12)
        for m, t in truth.items():
            lo, hi, v = res.ci_low[m][0, 0], res.ci_high[m][0, 0], res.values[m][0, 0]
            assert lo <= v <= hi
            hits[m] += lo <= t <= hi
    for m in truth:
        # 200 replications: the binomial standard error at 0.95 is 0.015
        assert 0.90 <= hits[m] / reps <= 0.99, (m, hits[m] / reps)


def test_intervals_contain_the_estimate_where_the_bootstrap_missed_it():
    # Many features, few rows: duplicated rows push resampled CKA/CCA far above the estimate.
    rng = np.random.default_rng(1)
    Z = rng.normal(size=(80, 3))
    A = {f"l{i}": Z @ rng.normal(size=(3, 30)) + 2.0 * rng.normal(size=(80, 30)) for i in range(3)}
    B = {f"l{i}": Z @ rng.normal(size=(3, 20)) + 2.0 * rng.normal(size=(80, 20)) for i in range(3)}
    res = compare(A, B, methods=("cka", "cca", "svcca"), n_perm=0, n_boot=40, seed=0)
    for m in res.methods:
        assert np.all(res.ci_low[m] <= res.values[m]) and np.all(res.values[m] <= res.ci_high[m]), m
        assert np.all(res.ci_high[m] > res.ci_low[m])
    # the replicates leave rows out and never repeat one
    groups = C.jackknife_groups(10, 4, np.random.default_rng(0))
    assert len(groups) == 4 and all(len(np.unique(g)) == len(g) for g in groups)
    left_out = np.concatenate([np.setdiff1d(np.arange(10), g) for g in groups])
    assert sorted(left_out.tolist()) == list(range(10))


# ---- significance is reachable --------------------------------------------------------------
def _related_layers(n=80, L=7, seed=0):
    rng = np.random.default_rng(seed)
    Z = rng.normal(size=(n, 3))
    return {f"h{i}": np.tanh(Z @ rng.normal(size=(3, 12))) + 0.2 * rng.normal(size=(n, 12)) for i in range(L)}


def test_within_model_matrix_skips_the_diagonal_and_default_n_perm_passes_holm():
    acts = _related_layers()
    res = compare(acts, methods=("cka",), seed=0)  # one model: layer x layer
    m = 7 * 7 - 7
    assert res.n_perm["cka"] == max(1000, int(np.ceil(2 * m / 0.05)))
    assert np.all(np.isnan(np.diag(res.p_values["cka"]))) and not np.any(np.diag(res.significant["cka"]))
    off = ~np.eye(7, dtype=bool)
    assert np.all(res.p_values["cka"][off] == 1 / (res.n_perm["cka"] + 1))
    # Holm over the 42 off-diagonal pairs (not 49): every related pair passes
    np.testing.assert_allclose(res.p_adjusted["cka"][off], 42 / (res.n_perm["cka"] + 1))
    assert res.significant["cka"][off].all()
    assert "diagonal" in res.notes["cka"]
    same = compare(acts, acts, methods=("cka",), n_perm=50, correction="none", seed=0)
    assert np.all(np.isnan(np.diag(same.p_values["cka"])))


def test_too_few_permutations_for_the_correction_warn():
    from topo_mi.errors import TopoMIWarning

    acts = _related_layers(L=7)
    with pytest.warns(TopoMIWarning, match=r"no layer pair can be significant.*n_perm >= 1680"):
        res = compare(acts, methods=("cka",), n_perm=200, seed=0)
    assert not res.significant["cka"].any()  # the warning was right
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error", TopoMIWarning)
        compare(acts, methods=("cka",), n_perm=200, correction="bh", seed=0)  # BH can pass


def test_to_frame_and_report_section_of_a_comparison():
    A, B = _data()
    res = compare(A, B, methods=("cka",), n_perm=0, seed=0)
    sec = res.report_section()
    assert set(sec) == {"headline", "table", "caption"}
    frame = res.to_frame()
    assert list(frame.index) == sec["table"]["index"] and frame.shape == (len(sec["table"]["index"]),
                                                                          len(sec["table"]["columns"]))


def test_permutation_progress_lines(capsys, monkeypatch):
    import topo_mi.pipelines.comparison as pc

    monkeypatch.setattr(pc, "PROGRESS_AFTER_S", -1.0)  # print from the start
    acts = _related_layers(L=3)
    compare(acts, methods=("cka",), n_perm=100, seed=0)
    err = capsys.readouterr().err
    assert re.search(r"compare cka: 10/100 permutations \(\d+\.\d s elapsed\)", err) and "100/100" in err
    compare(acts, methods=("cka",), n_perm=100, seed=0, progress=False)
    assert capsys.readouterr().err == ""
