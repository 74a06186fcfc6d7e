"""Topological comparison: distances between persistence diagrams, and RTD.

References
----------
Cohen-Steiner, Edelsbrunner & Harer, "Stability of persistence diagrams", DCG 2007 (bottleneck).
Barannikov, Trofimov, Balabin & Burnaev, "Representation Topology Divergence: a method for
comparing neural network representations", ICML 2022 (R-Cross-Barcode and RTD; reference code
``IlyaTrofimov/RTD``, ``rtd/barcodes.py``).
"""
from __future__ import annotations

import numpy as np

from topo_mi._validation import check_choice, check_float, check_int, check_random_state, fail
from topo_mi.compare._common import check_gram_memory, check_pair, distances

DIAGRAM_METRICS = ("bottleneck", "wasserstein")


def _rips_diagrams(D: np.ndarray, max_dim: int) -> list[np.ndarray]:
    """Vietoris–Rips persistence (Z/2 coefficients) of a full distance matrix, dims 0..max_dim.

    gudhi's ``RipsPersistence`` (a Ripser-based implicit Rips filtration, no simplex tree for
    dimensions <= 1). Returns one (m, 2) array of (birth, death) per dimension.
    """
    try:
        from gudhi.sklearn.rips_persistence import RipsPersistence
    except ImportError as exc:  # pragma: no cover - gudhi is a core dependency
        from topo_mi.errors import DependencyError

        raise DependencyError("persistence needs gudhi: pip install 'gudhi>=3.9'") from exc
    rp = RipsPersistence(homology_dimensions=list(range(max_dim + 1)), input_type="full distance matrix",
                         homology_coeff_field=2, num_collapses=0)
    dgms = rp.fit_transform([np.ascontiguousarray(D, dtype=np.float64)])[0]
    return [np.asarray(d, dtype=np.float64).reshape(-1, 2) for d in dgms]


def _quantile_normalised_distances(X: np.ndarray, q: float | None, name: str) -> np.ndarray:
    D = distances(X)
    if q is None:
        return D
    scale = float(np.quantile(D, q))
    if scale <= 0.0:
        fail(name, f"points whose {q:g}-quantile pairwise distance is positive",
             f"0 (at least {q:.0%} of the pairs coincide)", raw=True)
    return D / scale


def diagram_distance(X, Y, *, dim: int = 1, metric: str = "bottleneck", order: float = 1.0,
                     normalize: bool = True) -> float:
    """Distance between the Vietoris–Rips persistence diagrams of two point clouds.

    Unlike the other indices, it ignores which sample is which: it compares the shapes of the two
    clouds (a permutation of the rows of one leaves it unchanged), so the two need not even have
    the same samples or sizes.

    Parameters
    ----------
    X : array of shape (n_x, d_x)
    Y : array of shape (n_y, d_y)
    dim : int, default 1
        Homology dimension compared (0: clusters, 1: loops).
    metric : {"bottleneck", "wasserstein"}, default "bottleneck"
        Bottleneck distance or the p-Wasserstein distance of order ``order`` with the L∞ ground
        metric (:func:`topo_mi.topology.bottleneck` / :func:`topo_mi.topology.wasserstein`).
    order : float >= 1, default 1.0
        Wasserstein order p.
    normalize : bool, default True
        Divide each cloud's distances by their 0.9-quantile first (as RTD does) so that the
        comparison is not dominated by the different scales of two layers.

    Returns
    -------
    float >= 0 (a distance: lower is more similar)

    Notes
    -----
    Rips persistence costs grow quickly with the number of points (a few seconds for 1,000 points
    in dimension 1): subsample large clouds first (``Activations.subsample``).
    """
    from topo_mi._validation import check_point_cloud

    X = check_point_cloud(X, "X", min_points=2)
    Y = check_point_cloud(Y, "Y", min_points=2)
    dim = check_int("dim", dim, min_value=0, max_value=3)
    check_choice("metric", metric, DIAGRAM_METRICS)
    order = check_float("order", order, min_value=1.0, allow_inf=False)
    if not isinstance(normalize, bool):
        fail("normalize", "True or False", normalize)
    check_gram_memory(max(X.shape[0], Y.shape[0]), "diagram_distance")
    return _diagram_distance_from(_diagram(X, dim, normalize, "X"), _diagram(Y, dim, normalize, "Y"),
                                  metric, order)


def _diagram(X: np.ndarray, dim: int, normalize: bool, name: str = "X") -> np.ndarray:
    """H_dim diagram of the Rips filtration of X (topo_mi.topology.persistence, Z/2)."""
    from topo_mi.topology import persistence

    D = _quantile_normalised_distances(X, 0.9 if normalize else None, name)
    return np.asarray(persistence(D, max_dim=dim, metric="precomputed", coeff=2).diagrams[dim], dtype=np.float64)


def _diagram_distance_from(d1: np.ndarray, d2: np.ndarray, metric: str, order: float) -> float:
    from topo_mi.topology import bottleneck, wasserstein

    if metric == "bottleneck":
        return float(bottleneck(d1, d2))
    return float(wasserstein(d1, d2, order))


# ---------------------------------------------------------------------------------------------
# Representation Topology Divergence
# ---------------------------------------------------------------------------------------------
def _cross_matrix(r1: np.ndarray, r2: np.ndarray) -> np.ndarray:
    """The 2n x 2n matrix [[0, r1ᵀ], [r1, min(r1, r2)]] with entries below mean(r1)·1e-6 set to 0."""
    n = r1.shape[0]
    d = np.zeros((2 * n, 2 * n))
    d[n:, :n] = r1
    d[:n, n:] = r1.T
    d[n:, n:] = np.minimum(r1, r2)
    d[d < r1.mean() * 1e-6] = 0.0
    return d


def _h1_bars(d: np.ndarray) -> np.ndarray:
    return _rips_diagrams(d, 1)[1]


def _h1sum(bars: np.ndarray) -> float:
    finite = np.isfinite(bars[:, 1])
    if not finite.all():  # pragma: no cover - a full Rips filtration has no essential H1 class
        fail("R-Cross-Barcode", "finite H1 bars", f"{int((~finite).sum())} infinite bars", raw=True)
    return float(np.sum(bars[:, 1] - bars[:, 0]))


def _normalised(X: np.ndarray, name: str) -> np.ndarray:
    return _quantile_normalised_distances(X, 0.9, name)


def _rtd1(X: np.ndarray, Y: np.ndarray) -> float:
    """Mean of the H1 bar-length sums of the R-Cross-Barcodes in both directions."""
    r1, r2 = _normalised(X, "X"), _normalised(Y, "Y")
    return 0.5 * (_h1sum(_h1_bars(_cross_matrix(r1, r2))) + _h1sum(_h1_bars(_cross_matrix(r2, r1))))


def rtd_barcode(X, Y) -> np.ndarray:
    """The H1 part of the R-Cross-Barcode R-Cross-Barcode₁(X, Y) of Barannikov et al. (2022).

    ``r1, r2`` are the distance matrices of X and Y, each divided by its 0.9-quantile over the full
    n x n matrix; the barcode is H1 of the Vietoris–Rips filtration of the 2n x 2n matrix
    ``[[0, r1ᵀ], [r1, min(r1, r2)]]`` (entries below ``mean(r1)·1e-6`` set to 0), Z/2 coefficients.

    Parameters
    ----------
    X, Y : arrays of shape (n_samples, d_x), (n_samples, d_y)
        Row ``i`` of both is the same sample. Cost grows fast with n: use at most ~1,000 rows.

    Returns
    -------
    ndarray of shape (n_bars, 2): (birth, death) pairs
    """
    X, Y = check_pair(X, Y)
    return _h1_bars(_cross_matrix(_normalised(X, "X"), _normalised(Y, "Y")))


def rtd(X, Y, *, trials: int = 10, batch: int = 500, seed=0) -> float:
    """Representation Topology Divergence (Barannikov et al., ICML 2022), on the CPU.

    The reference protocol: for each of ``trials`` random subsets of ``batch`` rows (the same rows
    of X and Y), ``rtd1 = (h1sum(X, Y) + h1sum(Y, X)) / 2`` where ``h1sum`` is the total length of
    the H1 bars of the R-Cross-Barcode (:func:`rtd_barcode`); RTD is the mean of ``rtd1`` over the
    trials. RTD(P, P) = 0; RTD is symmetric; it grows as the cluster structure of the two clouds
    diverges.

    Parameters
    ----------
    X : array of shape (n_samples, d_x)
    Y : array of shape (n_samples, d_y)
    trials : int >= 1, default 10
    batch : int >= 2, default 500
        Rows per subset (all rows when n_samples <= batch; then every trial would draw the same
        subset, so it is computed once).
    seed : int, Generator or None, default 0
        Draws the subsets.

    Returns
    -------
    float >= 0 (a divergence: lower is more similar)

    Notes
    -----
    Each trial computes H1 persistence of two Rips filtrations on 2·batch points: about 6 s per
    trial at batch = 500 on one CPU core (see ``benchmarks/bench_compare.py``), 1.2 s at batch = 200.
    """
    X, Y = check_pair(X, Y, min_points=3)
    trials = check_int("trials", trials, min_value=1)
    batch = check_int("batch", batch, min_value=3)
    rng = check_random_state(seed)
    n = X.shape[0]
    if batch >= n:
        return _rtd1(X, Y)
    total = 0.0
    for _ in range(trials):
        idx = rng.permutation(n)[:batch]
        total += _rtd1(X[idx], Y[idx])
    return total / trials


__all__ = ["diagram_distance", "rtd", "rtd_barcode"]
