"""Toy models of superposition: batched training, feature geometry, exact loss, sweeps."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from topo_mi.errors import InvalidParameterError, ResourceError, UnknownNameError
from topo_mi.models import ToySuperposition, train_superposition
from topo_mi.superposition import (
    expected_loss_2_1, feature_batch, feature_geometry, monte_carlo_loss_2_1, train_toy_models,
)


# -- batched training ---------------------------------------------------------------------------

def test_batched_training_equals_the_single_model_api():
    S, seeds = [0.0, 0.6, 0.95], [0, 3, 7]
    res = train_toy_models(5, 2, sparsity=S, importance=0.9, seeds=seeds, steps=200)
    assert res.W.shape == (3, 5, 2) and res.losses.shape == (200, 3)
    for k, (s, seed) in enumerate(zip(S, seeds)):
        model = ToySuperposition(5, 2, seed=seed)
        rep = train_superposition(model, sparsity=s, importance_decay=0.9, steps=200, seed=seed)
        np.testing.assert_allclose(res.W[k], model.W.detach().numpy().T, atol=1e-6, rtol=0)
        np.testing.assert_allclose(res.b[k], model.b.detach().numpy(), atol=1e-6, rtol=0)
        np.testing.assert_allclose(res.losses[:, k], rep.losses, atol=1e-6, rtol=0)
        back = res.to_model(k)
        x = torch.rand(16, 5)
        torch.testing.assert_close(back(x), model(x), atol=1e-6, rtol=0)


@pytest.mark.parametrize("options", [
    dict(activation="linear", bias=False),
    dict(activation="relu", bias=False, lr_schedule="cosine"),
    dict(correlated=1, anticorrelated=[2], lr_schedule="linear"),
])
def test_batched_training_equals_instance_by_instance(options):
    S, imp, seeds = [0.5, 0.7], np.array([[1.0, 0.5, 0.3, 0.2, 0.1], [1.0, 1.0, 1.0, 1.0, 1.0]]), [4, 9]
    res = train_toy_models(5, 2, sparsity=S, importance=imp, seeds=seeds, steps=60, batch_size=64, **options)
    for k in range(2):
        one = train_toy_models(5, 2, sparsity=S[k], importance=imp[k], seeds=[seeds[k]], steps=60, batch_size=64,
                               **options)
        np.testing.assert_allclose(res.W[k], one.W[0], atol=1e-6, rtol=0)
        np.testing.assert_allclose(res.losses[:, k], one.losses[:, 0], atol=1e-6, rtol=0)
        assert (res.b is None) == (options.get("bias", True) is False)
    again = train_toy_models(5, 2, sparsity=S, importance=imp, seeds=seeds, steps=60, batch_size=64, **options)
    assert np.array_equal(again.W, res.W) and np.array_equal(again.losses, res.losses)


@pytest.mark.parametrize("activation", ["relu", "linear"])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("sets", [{}, dict(correlated=(2,), anticorrelated=(2,))])
def test_closed_form_gradient_equals_autograd(activation, bias, sets):
    from topo_mi.models._common import generator
    from topo_mi.superposition.training import ToyModelInstances, _closed_form_step

    S, seeds, B = np.array([0.0, 0.4, 0.45]), [1, 2, 3], 48
    imp = np.array([[1.0, 0.9, 0.81, 0.73, 0.66], [1.0] * 5, [0.2, 1.0, 0.0, 3.0, 0.5]])
    model = ToyModelInstances(5, 2, seeds, activation=activation, bias=bias, dtype=torch.float64)
    with torch.no_grad():   # a point away from the start, with some ReLUs off and biases non-zero
        model.W.mul_(1.7)
        if bias:
            model.b.copy_(torch.linspace(-0.4, 0.3, 15, dtype=torch.float64).view(3, 5))
    corr, anti = sets.get("correlated", ()), sets.get("anticorrelated", ())
    loss = _closed_form_step(model, [generator(s) for s in seeds], S, imp, B, corr, anti)(0)
    grads = [p.grad.clone() for p in model.parameters()]
    x = torch.stack([feature_batch(B, 5, s, generator(seed), correlated=corr, anticorrelated=anti)
                     for s, seed in zip(S, seeds)]).double()
    assert (x == 0).any() and (x > 0).any()
    model.zero_grad()
    ref = (torch.as_tensor(imp)[:, None, :] * (x - model(x)) ** 2).mean(dim=(1, 2))
    ref.sum().backward()
    torch.testing.assert_close(loss, ref.detach(), atol=1e-12, rtol=1e-12)
    for got, p in zip(grads, model.parameters()):
        torch.testing.assert_close(got, p.grad, atol=1e-12, rtol=1e-10)


def test_int_seed_gives_consecutive_instance_seeds_and_m_ge_n_is_flagged():
    res = train_toy_models(3, 3, n_instances=2, seeds=5, steps=3, batch_size=8)
    assert res.seeds.tolist() == [5, 6] and not res.superposition_possible
    assert "no superposition" in res.summary()["note"]
    assert train_toy_models(5, 2, steps=2, batch_size=4).summary().get("note") is None


def test_feature_batch_sets():
    g = torch.Generator().manual_seed(0)
    x = feature_batch(20000, 7, 0.7, g, correlated=(2,), anticorrelated=(3,))
    on = x > 0
    assert torch.equal(on[:, 0], on[:, 1])                       # correlated pair: together
    assert int(on[:, 2:5].sum(dim=1).max()) <= 1                 # anticorrelated triple: at most one
    np.testing.assert_allclose(on.float().mean(dim=0).numpy(), 0.3, atol=0.015)  # every density 1 - S
    g1, g2 = torch.Generator().manual_seed(1), torch.Generator().manual_seed(1)
    from topo_mi.models import sparse_feature_batch
    assert torch.equal(feature_batch(50, 4, 0.5, g1), sparse_feature_batch(50, 4, 0.5, g2))


def test_bad_input_is_refused_with_the_parameter_named():
    with pytest.raises(InvalidParameterError, match=r"sparsity: expected a number < 1"):
        train_toy_models(5, 2, sparsity=1.0, steps=1)
    with pytest.raises(InvalidParameterError, match=r"sparsity\[1\]: expected a number >= 0"):
        train_toy_models(5, 2, sparsity=[0.1, -0.2], steps=1)
    with pytest.raises(InvalidParameterError, match="importance: expected one importance per feature"):
        train_toy_models(5, 2, importance=[1.0, 1.0], steps=1)
    with pytest.raises(InvalidParameterError, match="importance: expected finite importances >= 0"):
        train_toy_models(3, 2, importance=[1.0, -1.0, 1.0], steps=1)
    with pytest.raises(InvalidParameterError, match="seeds: expected one value per instance"):
        train_toy_models(5, 2, sparsity=[0.1, 0.2], seeds=[0, 1, 2], steps=1)
    with pytest.raises(UnknownNameError, match="activation"):
        train_toy_models(5, 2, activation="gelu", steps=1)
    with pytest.raises(InvalidParameterError, match="anticorrelated set of 2"):
        train_toy_models(4, 2, sparsity=0.2, anticorrelated=1, steps=1)
    with pytest.raises(ResourceError, match="n_instances x n_features x n_hidden"):
        train_toy_models(1000, 1000, n_instances=10**6, steps=1)     # refused before allocating
    with pytest.raises(ResourceError, match="max_bytes"):
        train_toy_models(5, 2, n_instances=4, steps=1, max_bytes=1000)


def test_toy_models_round_trip(tmp_path):
    from topo_mi._results import load_result

    res = train_toy_models(4, 2, sparsity=[0.0, 0.9], steps=5, batch_size=16)
    back = load_result(res.save(tmp_path / "r"))
    assert np.array_equal(back.W, res.W) and back.geometry.polytopes == res.geometry.polytopes
    assert back.summary() == res.summary()


# -- feature geometry on exact configurations ----------------------------------------------------

def _polygon(k, radius=1.0, phase=0.3):
    a = phase + 2 * np.pi * np.arange(k) / k
    return radius * np.stack([np.cos(a), np.sin(a)], axis=1)


def test_geometry_of_exact_polytopes():
    pent = feature_geometry(_polygon(5, 1.13))
    np.testing.assert_allclose(pent.dimensionality, 0.4, atol=1e-12)
    np.testing.assert_allclose(pent.dimensions_per_feature, 2 / (5 * 1.13 ** 2), rtol=1e-12)
    assert pent.polytopes == [["pentagon"] * 5] and pent.gram_rank.tolist() == [2]
    assert not pent.gram_invertible[0] and pent.superposition_possible
    tri = feature_geometry(_polygon(3))
    np.testing.assert_allclose(tri.dimensionality, 2 / 3, atol=1e-12)
    assert tri.polytopes[0] == ["triangle"] * 3
    # an antipodal pair, a dedicated feature and a dropped one in two dimensions
    W = np.array([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [0.0, 0.01]])
    g = feature_geometry(W)
    np.testing.assert_allclose(g.dimensionality[0, :3], [0.5, 0.5, 1.0], atol=1e-3)
    np.testing.assert_allclose(g.interference[0, :2], 1.0, atol=1e-12)
    assert g.polytopes[0] == ["antipodal", "antipodal", "dedicated", "not_learned"]
    assert g.polytope_counts(0) == {"antipodal": 1, "dedicated": 1, "not_learned": 1}
    tet = np.array([[1, 1, 1], [1, -1, -1], [-1, 1, -1], [-1, -1, 1]]) / np.sqrt(3)
    g = feature_geometry(tet)
    np.testing.assert_allclose(g.dimensionality, 0.75, atol=1e-12)
    assert g.polytopes[0] == ["tetrahedron"] * 4
    h = 1 / np.sqrt(3)  # the square antiprism that is a tight frame: D = 3/8
    top = [(np.sqrt(1 - h * h) * np.cos(a), np.sqrt(1 - h * h) * np.sin(a), h) for a in np.arange(4) * np.pi / 2]
    bot = [(np.sqrt(1 - h * h) * np.cos(a), np.sqrt(1 - h * h) * np.sin(a), -h)
           for a in np.pi / 4 + np.arange(4) * np.pi / 2]
    g = feature_geometry(np.array(top + bot))
    np.testing.assert_allclose(g.dimensionality, 3 / 8, atol=1e-12)
    assert g.polytopes[0] == ["square_antiprism"] * 8
    # an irregular polygon is not a pentagon even though its size is
    bent = _polygon(5)
    bent[0] = [np.cos(0.6), np.sin(0.6)]
    assert feature_geometry(bent).polytopes[0] == ["other"] * 5


def test_geometry_edge_cases():
    g = feature_geometry(np.eye(3))
    assert g.gram_invertible.tolist() == [True] and not g.superposition_possible
    z = feature_geometry(np.zeros((2, 4, 2)))
    assert np.all(z.dimensionality == 0) and np.all(np.isinf(z.dimensions_per_feature))
    assert z.polytopes == [["not_learned"] * 4] * 2 and z.gram_rank.tolist() == [0, 0]
    model = ToySuperposition(5, 2, seed=3)
    np.testing.assert_allclose(feature_geometry(model).dimensionality[0], model.feature_dimensionality(), atol=1e-12)
    with pytest.raises(InvalidParameterError, match="W: expected a real array"):
        feature_geometry(np.zeros((2, 2, 2, 2)))
    with pytest.raises(InvalidParameterError, match=r"b: expected an array of shape \(4,\)"):
        feature_geometry(np.zeros((4, 2)), b=np.zeros(3))


# -- the exact expected loss of the n = 2, m = 1 model -------------------------------------------

@pytest.mark.parametrize("w, sparsity, importance", [
    ((1.0, -1.0), 0.9, (1.0, 1.0)),       # antipodal superposition
    ((0.46, 0.89), 0.0, (1.0, 1.0)),      # the "confused" dense solution
    ((0.3, 0.7), 0.5, (1.0, 2.0)),
    ((-0.8, -1.2), (0.2, 0.7), (1.0, 0.3)),
    ((1.0, 0.0), 0.0, (1.0, 0.1)),        # extra feature not learned
])
def test_exact_expected_loss_matches_monte_carlo(w, sparsity, importance):
    exact = expected_loss_2_1(w, sparsity=sparsity, importance=importance)
    mean, se = monte_carlo_loss_2_1(w, sparsity=sparsity, importance=importance, n_samples=400_000, seed=11)
    assert abs(exact - mean) < 3 * se, (exact, mean, se)


def test_exact_expected_loss_closed_forms_and_errors():
    # W = 0: the loss is ½ Σ I_i (1 − S_i) / 3
    assert expected_loss_2_1((0, 0), sparsity=0.4, importance=(1, 2)) == pytest.approx(0.5 * 3 * 0.6 / 3)
    # extra feature unlearned, feature 0 perfect: only feature 1's energy remains
    assert expected_loss_2_1((1, 0), sparsity=0.0, importance=(1, 0.1)) == pytest.approx(0.5 * 0.1 / 3)
    # antipodal pair: exact when one feature is active; both active loses part of the larger one
    assert expected_loss_2_1((1, -1), sparsity=1.0) == 0.0
    with pytest.raises(InvalidParameterError, match="W: expected two weights"):
        expected_loss_2_1((1, 2, 3))
    with pytest.raises(InvalidParameterError, match=r"sparsity\[0\]"):
        expected_loss_2_1((1, 0), sparsity=1.5)


# -- sweeps ---------------------------------------------------------------------------------------

def test_sweep_grid_order_and_best_seed():
    from topo_mi.superposition import sweep

    res = sweep(4, 2, sparsity=[0.0, 0.9], importance=[0.9, [1.0, 1.0, 0.5, 0.5]], seeds=[0, 1], steps=30,
                batch_size=32)
    assert res.models.n_instances == 8 and res.final_loss.shape == (2, 2, 2)
    # instance (i, j, c) is the model trained alone with that sparsity, importance and seed
    one = train_toy_models(4, 2, sparsity=0.9, importance=[1.0, 1.0, 0.5, 0.5], seeds=[1], steps=30, batch_size=32)
    np.testing.assert_allclose(res.models.W[(1 * 2 + 1) * 2 + 1], one.W[0], atol=1e-6)
    for i in range(2):
        for j in range(2):
            k = res.best_index(i, j)
            assert res.final_loss[i, j].min() == res.models.final_loss[k]
            np.testing.assert_array_equal(res.dimensionality[i, j], res.models.geometry.dimensionality[k])
            assert res.polytopes[i][j] == res.models.geometry.polytopes[k]
    np.testing.assert_allclose(res.importance[0], 0.9 ** np.arange(4))
    with pytest.raises(InvalidParameterError, match=r"sparsity\[1\]"):
        sweep(4, 2, sparsity=[0.1, 1.0], steps=1)
    with pytest.raises(InvalidParameterError, match=r"importance\[0\]: expected one importance per feature"):
        sweep(4, 2, importance=[[1.0, 2.0]], steps=1)
    with pytest.raises(InvalidParameterError, match="seeds: expected"):
        sweep(4, 2, seeds=[], steps=1)


def test_classify_2_1_rules():
    from topo_mi.superposition import classify_2_1

    assert classify_2_1([1.0, 0.05]) == "not_learned"
    assert classify_2_1([0.02, -1.0]) == "dedicated"
    assert classify_2_1([1.0, -1.0]) == classify_2_1([-1.0, 1.0]) == "antipodal"
    assert classify_2_1([0.46, 0.89]) == "confused"
    with pytest.raises(InvalidParameterError, match="W: expected two weights"):
        classify_2_1([1.0, 2.0, 3.0])


def test_phase_diagram_and_dimensions_curve_small():
    from topo_mi.superposition import dimensions_per_feature_curve, phase_diagram

    pd = phase_diagram(density=[1.0, 0.1], ratio=[0.1, 5.0], seeds=[0], steps=20, batch_size=16)
    assert len(pd.phases) == 2 and all(p in ("not_learned", "antipodal", "dedicated", "confused")
                                       for row in pd.phases for p in row)
    assert pd.W.shape == (2, 2, 2) and len(pd.table()) == 2
    assert sum(pd.summary()[f"n_{p}"] for p in ("not_learned", "antipodal", "dedicated", "confused")) == 4
    with pytest.raises(InvalidParameterError, match="density"):
        phase_diagram(density=[0.0], steps=1)
    curve = dimensions_per_feature_curve(6, 2, density=[1.0, 0.1], steps=5, batch_size=8)
    assert curve.dimensions_per_feature.shape == (2, 1)
    np.testing.assert_allclose(curve.importance, 1.0)


def test_figures_draw(tmp_path):
    from topo_mi.plotting import save_figure
    from topo_mi.plotting.superposition import plot_dimensionality_bars, plot_dimensions_per_feature
    from topo_mi.superposition import sweep

    res = sweep(5, 2, sparsity=[0.0, 0.9], steps=5, batch_size=8)
    axes = res.models.plot()
    assert axes.shape == (2, 2)
    save_figure(axes[0, 0], tmp_path / "geometry.png")
    save_figure(plot_dimensionality_bars(res), tmp_path / "bars.png")
    save_figure(plot_dimensions_per_feature(res), tmp_path / "dstar.png")
    three = train_toy_models(4, 3, steps=2, batch_size=4)
    save_figure(three.plot()[0, 0], tmp_path / "gram.png")            # m = 3: Gram matrices only
    assert all((tmp_path / f).stat().st_size > 1000 for f in ("geometry.png", "bars.png", "dstar.png", "gram.png"))


# -- pipeline ---------------------------------------------------------------------------------------

def test_superposition_profile_and_report_section(tmp_path):
    from topo_mi._results import load_result
    from topo_mi.pipelines import superposition_profile

    res = superposition_profile(density=[1.0, 0.05], seeds=[0, 1], steps=20, batch_size=32, phase_diagram=True,
                                phase_steps=5, dimensions_curve=True, curve_features=6, curve_hidden=2,
                                curve_steps=5, finite=True, finite_features=8, finite_T=[3, 20], finite_steps=5)
    sec = res.report_section()
    table = sec["table"]
    assert len(table["index"]) == len(table["rows"]) == 2
    assert all(len(r) == len(table["columns"]) for r in table["rows"])
    assert sec["headline"].startswith("5 features in 2 dimensions") and sec["caption"]
    s = res.summary()
    assert s["n_seeds"] == 2 and "phase_diagram" in s and "finite_seconds" in s
    back = load_result(res.save(tmp_path / "p"))
    assert back.summary() == s
    assert len(res.plot()) == 4
    with pytest.raises(InvalidParameterError, match="density"):
        superposition_profile(density=[0.0], steps=1)


def test_superposition_spec_runs(tmp_path):
    from topo_mi.errors import SpecError
    from topo_mi.pipelines import load_spec, run

    spec = {"name": "sp", "analyses": {"superposition": {"density": [1.0, 0.1], "steps": 10, "batch_size": 16}}}
    out = run(spec, out=tmp_path / "run", progress=False)
    assert out.results["analyses"]["superposition"]["n_sparsity"] == 2
    assert (tmp_path / "run" / "figures" / "superposition.png").is_file()
    with pytest.raises(SpecError, match="analyses.superposition.stepz"):
        run({"analyses": {"superposition": {"stepz": 3}}}, out=tmp_path / "bad", progress=False)
    from pathlib import Path
    shipped = load_spec(Path(__file__).resolve().parents[2] / "pipelines" / "superposition.toml")
    assert shipped["analyses"]["superposition"]["phase_diagram"] is True


# -- finite dataset ---------------------------------------------------------------------------------

def test_data_dimensionality_of_exact_configurations():
    from topo_mi.superposition import data_dimensionality

    np.testing.assert_allclose(data_dimensionality(_polygon(7)), 2 / 7, atol=1e-12)
    np.testing.assert_allclose(data_dimensionality(np.array([[1.0, 0.0], [0.0, 2.0], [0.0, 0.0]])), [1, 1, 0])


def test_finite_dataset_small():
    from topo_mi.superposition import finite_dataset

    res = finite_dataset(12, 2, T=[2, 40], sparsity=0.8, seeds=[0, 1], steps=30, n_test=500)
    assert res.train_loss.shape == res.test_loss.shape == res.data_dim_max.shape == (2, 2)
    assert [h.shape for h in res.hidden] == [(2, 2), (2, 2), (40, 2), (40, 2)]
    assert np.all(res.data_dim_max <= 1 + 1e-12) and np.all(res.feature_dim_total <= 2 + 1e-9)
    assert res.summary()["sizes"] == [2, 40] and res.memorising.shape == (2, 2)
    with pytest.raises(InvalidParameterError, match=r"T\[0\]: expected an integer >= 1"):
        finite_dataset(T=[0], steps=1)


@pytest.mark.slow
def test_finite_dataset_memorises_few_points_and_generalises_with_many():
    # Henighan et al. (2023), shortened: 100 features (S = 0.97) in 2 dimensions, 2,000 full-batch steps.
    # Measured: generalisation gap 1.0 at T = 3 and 0.0 at T = 3,000; the largest data-point
    # dimensionality falls from 0.98 to 0.02 while the largest feature dimensionality is 0.38 at T = 3,000.
    from topo_mi.superposition import finite_dataset

    res = finite_dataset(100, 2, T=[3, 3000], sparsity=0.97, steps=2000)
    gap = res.generalisation_gap[:, 0]
    assert gap[0] > 0.9 and gap[1] < 0.1, gap
    assert res.data_dim_max[0, 0] > 0.6 and res.data_dim_max[1, 0] < 0.1
    assert res.feature_dim_max[1, 0] > 5 * res.data_dim_max[1, 0]


@pytest.mark.slow
def test_dimensions_per_feature_falls_from_one_through_one_half():
    # 50 features in 5 dimensions, uniform importance, 4,000 steps. Measured D* = 1.009, 0.588, 0.490,
    # 0.356, 0.090 at densities 1, 0.5, 0.3, 0.2, 0.01: no superposition when dense, antipodal pairs
    # (1/2) at 1 - S = 0.3, then below.
    from topo_mi.superposition import dimensions_per_feature_curve

    d = dimensions_per_feature_curve(50, 5, density=[1.0, 0.5, 0.3, 0.2, 0.01], steps=4000)
    dstar = d.dimensions_per_feature[:, 0]
    assert abs(dstar[0] - 1.0) < 0.03 and abs(dstar[2] - 0.5) < 0.05 and dstar[4] < 0.15, dstar
    assert np.all(np.diff(dstar) < 0)


def test_feature_dimensionality_sticks_at_one_half_over_a_range_of_sparsity():
    # The "sticky" plateau of Elhage et al.: as 1/(1 - S) grows from 2.38 to 3.41 (43 %) more features
    # are learned (8 -> 10 of 50 in 5 dimensions), but each stays in an antipodal pair, D_i = 1/2,
    # so D* stays near 1/2; at 1/(1 - S) = 8.33 no feature is at 1/2 any more. Measured (4,000 steps,
    # seeds 0-2): all learned features within 0.05 of 1/2 in 8 of 9 models (the ninth 8 of 9 features),
    # D* 0.490-0.559; at 8.33 D* = 0.281 and no feature within 0.05 of 1/2.
    inv = np.array([2.38, 2.85, 3.41, 8.33])
    sparsity = np.concatenate([np.repeat(1.0 - 1.0 / inv[:3], 3), [1.0 - 1.0 / inv[3]]])
    res = train_toy_models(50, 5, sparsity=sparsity, seeds=[0, 1, 2] * 3 + [0], steps=4000)
    g = res.geometry
    at_half = [np.mean(np.abs(g.dimensionality[k][g.norms[k] > 0.5] - 0.5) < 0.05) for k in range(10)]
    assert min(at_half[:9]) >= 0.85, at_half
    assert np.all((g.dimensions_per_feature[:9] > 0.47) & (g.dimensions_per_feature[:9] < 0.58))
    assert at_half[9] < 0.2 and g.dimensions_per_feature[9] < 0.35
    learned = (g.norms > 0.5).sum(axis=1)
    assert learned[6:9].mean() > learned[0:3].mean()   # more features learned, each still at 1/2
