"""The certified early cut of exact H0-H1 persistence (topo_mi.topology._cut)."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.distance import pdist, squareform

from topo_mi import datasets
from topo_mi.topology import _cut, persistence


def brute_force_birth_bound(D):
    n = D.shape[0]
    best = 0.0
    for u in range(n):
        for v in range(u + 1, n):
            w = np.maximum(D[u], D[v])
            w[[u, v]] = np.inf
            if not (w < D[u, v]).any():
                best = max(best, D[u, v])
    return best


@pytest.mark.parametrize("case", ["gauss", "grid", "cosine", "two"])
def test_birth_bound_equals_the_brute_force_relative_neighbourhood_graph(case):
    rng = np.random.default_rng(3)
    if case == "gauss":
        D = squareform(pdist(rng.normal(size=(70, 4))))
    elif case == "grid":   # many ties: integer points of a 5 x 5 x 3 grid
        g = np.stack(np.meshgrid(np.arange(5), np.arange(5), np.arange(3)), -1).reshape(-1, 3)
        D = squareform(pdist(g.astype(float)))
    elif case == "cosine":  # not a metric: the bound uses the matrix alone
        D = squareform(pdist(rng.normal(size=(60, 5)), "cosine"))
    else:
        D = np.array([[0.0, 2.0], [2.0, 0.0]])
    assert _cut.h1_birth_bound(D) == brute_force_birth_bound(D)
    u, v = _cut.witness_free_edges(D)
    assert D[u, v].max() == brute_force_birth_bound(D)


def _cut_and_full(X, monkeypatch, **kw):
    monkeypatch.setattr(_cut, "CUT_MIN_POINTS", 10)
    cut = persistence(X, max_dim=1, **kw)
    monkeypatch.setattr(_cut, "CUT_MIN_POINTS", 10**9)
    full = persistence(X, max_dim=1, **kw)
    return cut, full


@pytest.mark.parametrize("case", ["torus", "circle", "gauss", "grid", "cosine"])
def test_cut_diagrams_equal_the_whole_filtration(case, monkeypatch):
    rng = np.random.default_rng(0)
    kw = {}
    if case == "torus":
        X = datasets.make("torus", n=500, seed=0).X
    elif case == "circle":
        t = rng.uniform(0, 2 * np.pi, 300)
        X = np.c_[np.cos(t), np.sin(t)] + 0.05 * rng.normal(size=(300, 2))
    elif case == "gauss":
        X = rng.normal(size=(250, 6))
    elif case == "grid":
        X = np.stack(np.meshgrid(np.arange(8), np.arange(8), np.arange(3)), -1).reshape(-1, 3).astype(float)
    else:
        X, kw = rng.normal(size=(200, 8)), {"metric": "cosine"}
    cut, full = _cut_and_full(X, monkeypatch, **kw)
    assert cut.cut is not None and full.cut is None
    for a, b in zip(cut.diagrams, full.diagrams):
        assert np.array_equal(a, b)
    # the certificate: every H1 birth and every finite H0 death below the birth bound
    L = cut.cut["birth_bound"]
    assert cut.diagrams[1][:, 0].max() <= L
    assert cut.diagrams[0][np.isfinite(cut.diagrams[0][:, 1]), 1].max() <= L
    assert cut.threshold == np.inf


def test_the_torus_stops_well_below_the_enclosing_radius(monkeypatch):
    monkeypatch.setattr(_cut, "CUT_MIN_POINTS", 10)
    res = persistence(datasets.make("torus", n=800, seed=0).X, max_dim=1)
    c = res.cut
    assert c["cut"] < 0.6 * c["enclosing_radius"], c
    assert c["thresholds"] == sorted(c["thresholds"]) and c["thresholds"][0] == c["birth_bound"]
    assert np.isfinite(res.diagrams[1][:, 1]).all()   # no H1 class alive: every death is exact


def test_cut_is_saved_and_loaded(tmp_path, monkeypatch):
    monkeypatch.setattr(_cut, "CUT_MIN_POINTS", 10)
    res = persistence(np.random.default_rng(1).normal(size=(120, 3)), max_dim=1)
    res.save(tmp_path / "p")
    back = type(res).load(tmp_path / "p")
    assert back.cut["thresholds"] == res.cut["thresholds"]


def test_each_prefix_is_checked_by_the_memory_guard(monkeypatch):
    from topo_mi.errors import ResourceError

    monkeypatch.setattr(_cut, "CUT_MIN_POINTS", 10)
    # the first prefix fits in 2 MB, a later one does not: refused before it runs, saying why
    with pytest.raises(ResourceError, match=r"Vietoris-Rips complex of 400 points.*certified cut: \d+ H1 classes "
                                            r"were still alive at scale"):
        persistence(datasets.make("torus", n=400, seed=0).X, max_dim=1, memory_limit=2_000_000)


def test_the_certified_exact_route_goes_through_the_cut(monkeypatch):
    monkeypatch.setattr(_cut, "CUT_MIN_POINTS", 10)
    X = datasets.make("torus", n=300, seed=1).X
    res = persistence(X, max_dim=1, max_error=1e-9)
    assert res.route == "exact" and res.cut is not None and res.error_bounds == (0.0, 0.0)
    monkeypatch.setattr(_cut, "CUT_MIN_POINTS", 10**9)
    full = persistence(X, max_dim=1)
    for a, b in zip(res.diagrams, full.diagrams):
        assert np.array_equal(a, b)


def test_budgets_keep_the_bound_an_upper_bound():
    D = squareform(pdist(np.random.default_rng(5).normal(size=(80, 3))))
    exact = brute_force_birth_bound(D)
    assert _cut.h1_birth_bound(D, max_checks=0) >= exact            # the longest candidate
    assert _cut.h1_birth_bound(D, max_candidates=1.0) == np.inf     # too dense: no cut
    hi = squareform(pdist(np.random.default_rng(5).normal(size=(300, 200))))
    assert _cut.h1_birth_bound(hi) >= brute_force_birth_bound(hi) or _cut.h1_birth_bound(hi) == np.inf
