"""Intrinsic dimension: TwoNN, MLE (Levina–Bickel) and PCA, with resampling error bars.

TwoNN (Facco, d'Errico, Rodriguez & Laio, Sci. Rep. 7:12140, 2017) with the conventions of
Ansuini, Laio, Macke & Zoccolan (NeurIPS 2019, ``ansuini/IntrinsicDimDeep``): for every point
``mu = r2 / r1`` (second over first nearest-neighbour distance); points with ``r1 = 0``
(duplicates) or ``r1 = r2`` are dropped; under local uniformity ``mu`` is Pareto with shape
``d``, so ``-log(1 - F(mu)) = d log(mu)``: sort ``mu``, set ``F_i = i / N`` and fit a line
through the origin on the 90 % smallest ``mu``. Error bars: the spread of the estimate over
``n_boot`` random subsets holding 90 % of the points.

Only distances to a few nearest neighbours are needed: scikit-learn's ``NearestNeighbors``
finds them without forming the n x n distance matrix, and the resamples reuse one neighbour
search (see ``topo_mi.geometry._neighbors``), so 100,000 points in 128 dimensions take seconds.
"""
from __future__ import annotations

import math
import numbers
import warnings

import numpy as np

from topo_mi._results import Result, result_dataclass
from topo_mi._validation import (
    check_choice, check_float, check_int, check_point_cloud, check_random_state, fail,
)
from topo_mi.errors import InvalidParameterError, TopoMIWarning
from topo_mi.geometry import _neighbors as nb

ID_METHODS = ("twonn", "mle", "pca")
DUPLICATE_POLICIES = ("drop", "raise")


class DuplicatePointsWarning(TopoMIWarning):
    """Duplicate points were dropped before a neighbour-based estimate (the count is in the result)."""


@result_dataclass
class IDResult(Result):
    """An intrinsic-dimension estimate with its error bar (see :func:`intrinsic_dimension`).

    Attributes
    ----------
    method : str
        ``"twonn"``, ``"mle"`` or ``"pca"``.
    value : float
        The estimate on all (distinct) points.
    error : float
        Standard deviation (``ddof=1``) of the estimate over the ``n_boot`` resamples of
        ``resample_fraction`` of the points; NaN when ``n_boot < 2``. This is the Ansuini et al.
        error bar, a measure of stability: resamples of 90 % overlap heavily, so it is about a
        third of the standard error of the full-sample estimate (``sqrt((1 - f) / f)``).
    resamples : ndarray of shape (n_boot,)
        The estimate on each resample.
    n_samples : int
        Rows given.
    n_used : int
        Points entering the estimate (distinct points; TwoNN also drops ``r1 = r2``).
    n_duplicates : int
        Rows dropped as exact copies of another row (each group keeps one).
    n_degenerate : int
        TwoNN: points with ``r1 = r2`` (``mu = 1``); MLE: point/``k`` pairs whose ``k``
        neighbours are equidistant (an infinite local estimate); 0 for PCA.
    params : dict
        Every setting used (fit fraction, ``k``, threshold, resample fraction, seed ...).
    fit_x, fit_y : ndarray
        What the estimate is read from, for plots. TwoNN: ``log mu`` (sorted) and
        ``-log(1 - F)``; MLE: ``k`` and the estimate at each ``k``; PCA: component index and
        the cumulative explained-variance ratio.
    """

    method: str
    value: float
    error: float
    resamples: np.ndarray
    n_samples: int
    n_used: int
    n_duplicates: int
    n_degenerate: int
    params: dict
    fit_x: np.ndarray
    fit_y: np.ndarray

    _plot_function = "topo_mi.plotting.geometry:plot_id_fit"

    def summary(self):
        return {"method": self.method, "id": self.value, "error": self.error, "n_used": self.n_used,
                "n_duplicates": self.n_duplicates}


# -- estimators on neighbour distances -------------------------------------------------------------

def twonn_fit(r1: np.ndarray, r2: np.ndarray, fit_fraction: float = 0.9):
    """TwoNN from first and second neighbour distances (Ansuini et al.'s fit).

    Returns ``(d, log_mu_sorted, minus_log_survival, n_degenerate)``. ``r1`` must be > 0.
    """
    good = r2 > r1
    n_degenerate = int(r1.size - good.sum())
    mu = np.sort(r2[good] / r1[good])
    N = mu.size
    # Ansuini et al. leave the last two points out (1 - F = 0 at the last) and fit the first
    # floor(fraction * N) of the rest.
    n_fit = min(int(math.floor(N * fit_fraction)), N - 2)
    if n_fit < 2:
        raise InvalidParameterError(
            f"X: expected at least 4 points with distinct first and second neighbour distances for "
            f"TwoNN, got {N} (after dropping {n_degenerate} with r1 = r2)")
    x = np.log(mu[:n_fit])
    F = np.arange(1, n_fit + 1, dtype=np.float64) / N
    y = -np.log1p(-F)
    d = float(x @ y / (x @ x))
    return d, np.log(mu[:-1]), -np.log1p(-np.arange(1, N, dtype=np.float64) / N), n_degenerate


def mle_fit(T: np.ndarray, k1: int, k2: int):
    """Levina & Bickel (NIPS 2004) from the sorted neighbour distances ``T`` (n, >= k2).

    ``m_k(x) = [1/(k-1) sum_{j<k} log(T_k(x)/T_j(x))]^-1``, averaged over points, then over
    ``k = k1..k2``. Returns ``(d, ks, m_k, n_degenerate)``.
    """
    logT = np.log(T[:, :k2])
    csum = np.cumsum(logT, axis=1)
    ks = np.arange(k1, k2 + 1)
    est = np.empty(ks.size)
    n_deg = 0
    for i, k in enumerate(ks):
        s = (k - 1) * logT[:, k - 1] - csum[:, k - 2]
        ok = s > 0
        n_deg += int(s.size - ok.sum())
        if not ok.any():
            raise InvalidParameterError(
                f"X: expected points whose {k} nearest neighbours are not all equidistant for MLE, "
                "got none")
        est[i] = float(np.mean((k - 1) / s[ok]))
    return float(est.mean()), ks.astype(np.float64), est, n_deg


def pca_fit(X: np.ndarray, threshold: float):
    from topo_mi.geometry._spectral import spectrum

    spec = spectrum(X, center=True, method="exact")
    r = spec.n_components_for(threshold)
    cum = np.cumsum(spec.explained_variance_ratio)
    return float(r), np.arange(1, cum.size + 1, dtype=np.float64), cum


# -- public entry point ----------------------------------------------------------------------------

def _check_k(k):
    if isinstance(k, numbers.Integral) and not isinstance(k, bool):
        k = check_int("k", k, min_value=2)
        return k, k
    if isinstance(k, (tuple, list)) and len(k) == 2:
        k1 = check_int("k[0]", k[0], min_value=2)
        k2 = check_int("k[1]", k[1], min_value=k1)
        return k1, k2
    fail("k", "an integer >= 2 or a pair (k1, k2) with 2 <= k1 <= k2", k)


def intrinsic_dimension(X, *, method: str = "twonn", n_boot: int = 0, seed=None,
                        fit_fraction: float = 0.9, resample_fraction: float = 0.9,
                        k=(10, 20), threshold: float = 0.9, duplicates: str = "drop",
                        algorithm: str = "auto", neighbors: str = "exact") -> IDResult:
    """Estimate the intrinsic dimension of a point cloud, with resampling error bars.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
    method : {"twonn", "mle", "pca"}, default "twonn"
        ``"twonn"``: Facco et al. (2017) with Ansuini et al.'s (2019) conventions (module notes).
        ``"mle"``: Levina & Bickel (2004), averaged over ``k = k1..k2``. ``"pca"``: number of
        principal components explaining ``threshold`` (90 %) of the variance.
    n_boot : int, default 0
        Resamples for the error bar (Ansuini et al. use 50); each holds ``resample_fraction`` of
        the distinct points, drawn without replacement (with replacement would create duplicates,
        which TwoNN cannot use).
    seed : int, Generator or None
        Draws the resamples.
    fit_fraction : float, default 0.9
        TwoNN: fraction of the smallest ``mu`` used in the fit.
    resample_fraction : float, default 0.9
    k : int or (int, int), default (10, 20)
        MLE neighbourhood sizes.
    threshold : float, default 0.9
        PCA: explained-variance fraction.
    duplicates : {"drop", "raise"}, default "drop"
        Exact duplicate rows make ``r1 = 0``. ``"drop"`` keeps one row of each group, warns
        (:class:`DuplicatePointsWarning`) and reports the count in ``n_duplicates``; ``"raise"``
        raises :class:`~topo_mi.errors.InvalidParameterError`. (PCA is unaffected by duplicates
        and keeps them.)
    algorithm : str, default "auto"
        Passed to ``sklearn.neighbors.NearestNeighbors`` (``"kd_tree"``, ``"ball_tree"``,
        ``"brute"``); none of them forms the n x n distance matrix.
    neighbors : {"exact", "approximate"}, default "exact"
        ``"approximate"``: pynndescent's NN-descent graph (near-linear in n; the distances of
        the neighbours found are exact). The result's ``params["neighbor_agreement"]`` is the
        fraction of 256 random points whose neighbour distances equal the exact ones.

    Returns
    -------
    IDResult
        ``value`` and ``error`` (NaN unless ``n_boot >= 2``), with diagnostics.

    Notes
    -----
    TwoNN depends on ratios of distances only, so it is invariant to rotations, translations and
    isotropic scaling (to round-off; the data are centred first so that translations do not cost
    precision). Uniform samples of a cube read low because of the boundary (points near a face
    lack neighbours on one side); a flat torus or a Gaussian does not.
    """
    method = check_choice("method", method, ID_METHODS)
    n_boot = check_int("n_boot", n_boot, min_value=0)
    fit_fraction = check_float("fit_fraction", fit_fraction, min_value=0.0, max_value=1.0, min_inclusive=False)
    resample_fraction = check_float("resample_fraction", resample_fraction, min_value=0.0, max_value=1.0,
                                    min_inclusive=False)
    threshold = check_float("threshold", threshold, min_value=0.0, max_value=1.0, min_inclusive=False)
    duplicates = check_choice("duplicates", duplicates, DUPLICATE_POLICIES)
    neighbors = check_choice("neighbors", neighbors, ("exact", "approximate"))
    k1, k2 = _check_k(k)
    need = {"twonn": 3, "mle": k2 + 1, "pca": 2}[method]
    X = check_point_cloud(X, "X", min_points=need)
    if method in ("twonn", "mle") and X.shape[0] <= (2 if method == "twonn" else k2):
        fail("X", f"more than {2 if method == 'twonn' else k2} points for {method}", X.shape[0])
    rng = check_random_state(seed)
    n = X.shape[0]
    params = {"fit_fraction": fit_fraction, "resample_fraction": resample_fraction, "n_boot": n_boot,
              "seed": seed if isinstance(seed, (int, np.integer)) or seed is None else repr(seed),
              "algorithm": algorithm, "neighbors": neighbors}

    if method == "pca":
        params["threshold"] = threshold
        value, fx, fy = pca_fit(X, threshold)
        boots = []
        for _ in range(n_boot):
            sub = _subset(np.arange(n), resample_fraction, rng, minimum=2)
            boots.append(pca_fit(X[sub], threshold)[0])
        return _result(method, value, boots, n, n, 0, 0, params, fx, fy)

    m = 2 if method == "twonn" else k2
    if method == "mle":
        params["k"] = [k1, k2]
    Xc = X - X.mean(axis=0)
    # Neighbour lists long enough that a resample keeps m of them in almost every row
    # (rows that do not are recomputed exactly).
    K = m if n_boot == 0 else int(math.ceil(m / resample_fraction)) + 6
    K = min(max(K, m + 1), n - 1)
    if neighbors == "approximate":
        dist, ind = nb.approximate_knn(Xc, K, seed=int(rng.integers(2**31 - 1)))
        params["neighbor_agreement"] = nb.neighbor_agreement(Xc, dist, m)
    else:
        dist, ind = nb.knn(Xc, K, algorithm=algorithm)
    keep = nb.find_duplicates(Xc, dist)
    n_dup = int(n - keep.sum())
    if n_dup:
        if duplicates == "raise":
            raise InvalidParameterError(
                f"X: expected distinct points for {method}, got {n_dup} duplicate rows "
                f"({n - n_dup} distinct of {n}); pass duplicates='drop' to keep one of each")
        warnings.warn(f"intrinsic_dimension: dropped {n_dup} duplicate rows ({n - n_dup} distinct points of {n} "
                      "remain)", DuplicatePointsWarning, stacklevel=2)
    n_distinct = int(keep.sum())
    if n_distinct <= m:
        fail("X", f"more than {m} distinct points for {method}", f"{n_distinct} distinct of {n} rows", raw=True)

    def estimate(mask):
        T = nb.first_kept(Xc, dist, ind, mask, m, algorithm=algorithm)
        if method == "twonn":
            return twonn_fit(T[:, 0], T[:, 1], fit_fraction)
        return mle_fit(T, k1, k2)

    value, fx, fy, n_deg = estimate(keep)
    distinct = np.flatnonzero(keep)
    boots = []
    for _ in range(n_boot):
        mask = np.zeros(n, dtype=bool)
        mask[_subset(distinct, resample_fraction, rng, minimum=m + 2)] = True
        boots.append(estimate(mask)[0])
    n_used = n_distinct - n_deg if method == "twonn" else n_distinct
    return _result(method, value, boots, n, n_used, n_dup, n_deg, params, fx, fy)


def _subset(idx: np.ndarray, fraction: float, rng: np.random.Generator, *, minimum: int) -> np.ndarray:
    size = max(int(math.floor(idx.size * fraction)), min(minimum, idx.size))
    return np.sort(rng.choice(idx, size=size, replace=False))


def _result(method, value, boots, n, n_used, n_dup, n_deg, params, fx, fy) -> IDResult:
    boots = np.asarray(boots, dtype=np.float64)
    error = float(np.std(boots, ddof=1)) if boots.size >= 2 else float("nan")
    return IDResult(method=method, value=float(value), error=error, resamples=boots, n_samples=int(n),
                    n_used=int(n_used), n_duplicates=int(n_dup), n_degenerate=int(n_deg), params=params,
                    fit_x=np.asarray(fx, dtype=np.float64), fit_y=np.asarray(fy, dtype=np.float64))


__all__ = ["intrinsic_dimension", "IDResult", "twonn_fit", "mle_fit", "ID_METHODS", "DuplicatePointsWarning"]
