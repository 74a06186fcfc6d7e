"""The spectral route of activation-space decomposition: SVD, rank at an error budget, spectra.

For activations ``A`` (n samples x d units), ``A = U S V^T``; the best rank-``r`` approximation
in Frobenius norm is the truncated SVD (Eckart & Young, Psychometrika 1936) and its error is the
tail ``||A - A_r||_F^2 = sum_{i > r} s_i^2``.

Centering: by default both :func:`spectrum` and :func:`rank_at` work on the column-centred
matrix ``A - 1 mean(A)^T`` (``center=True``), i.e. principal components; then ``rank_at`` answers
"how many directions around the mean explain all but ``eps`` of the variance" and agrees with
``spectrum(...).explained_variance_ratio``. Pass ``center=False`` to both for the literal
linear decomposition of ``A`` (directions through the origin, as in the framework's formula).
"""
from __future__ import annotations

import math

import numpy as np

from topo_mi._results import Result, result_dataclass
from topo_mi._validation import check_choice, check_float, check_int, check_point_cloud
from topo_mi.errors import InvalidParameterError

SPECTRUM_METHODS = ("auto", "exact", "randomized")

# "auto" uses the exact SVD while min(n, d) stays at or below this; above it the randomized one.
EXACT_MAX_RANK = 2048
# Default number of singular values the randomized SVD computes.
RANDOMIZED_COMPONENTS = 256


@result_dataclass
class RankResult(Result):
    """The smallest rank meeting a Frobenius error budget (see :func:`rank_at`).

    Attributes
    ----------
    rank : int
        Smallest ``r`` with ``||A - A_r||_F^2 <= eps`` (times ``||A||_F^2`` when relative).
    error : float
        The achieved squared error ``||A - A_r||_F^2`` (absolute).
    relative_error : float
        ``error / ||A||_F^2`` (0 when ``A`` is zero).
    eps : float
    relative : bool
    center : bool
        Whether ``A`` was column-centred first.
    squared_norm : float
        ``||A||_F^2`` (of the centred matrix when ``center``).
    max_rank : int
        ``min(n, d)``.
    """

    rank: int
    error: float
    relative_error: float
    eps: float
    relative: bool
    center: bool
    squared_norm: float
    max_rank: int

    def summary(self):
        return {"rank": self.rank, "relative_error": self.relative_error, "eps": self.eps,
                "relative": self.relative}


@result_dataclass
class SpectrumResult(Result):
    """Singular value spectrum of a point cloud (see :func:`spectrum`).

    Attributes
    ----------
    singular_values : ndarray of shape (r,)
        Descending; ``r = min(n, d)`` for the exact SVD, ``n_components`` for the randomized one.
    explained_variance : ndarray of shape (r,)
        ``s^2 / (n - 1)`` when centred (the PCA eigenvalues), ``s^2 / n`` otherwise.
    explained_variance_ratio : ndarray of shape (r,)
        ``s_i^2 / ||A||_F^2`` (exact even when the spectrum is truncated).
    squared_norm : float
        ``||A||_F^2`` (of the centred matrix when ``center``), computed directly.
    participation_ratio : float
        ``(sum lambda)^2 / sum lambda^2`` over the covariance eigenvalues ``lambda``
        (Gao et al. 2017; ~``d`` for isotropic data, 1 for a single direction).
    effective_rank : float
        ``exp(H(p))`` with ``p_i = s_i / sum s`` (Roy & Vetterli, EUSIPCO 2007).
    n_samples, n_features : int
    center : bool
    method : str
        ``"exact"`` or ``"randomized"``.
    complete : bool
        True when every singular value was computed. When False (randomized), the unseen tail's
        mass ``||A||_F^2 - sum s_i^2`` is known exactly; for the participation ratio and the
        effective rank it is spread evenly over the remaining ``min(n, d) - r`` directions
        (the flattest tail compatible with it, so both figures are upper estimates).
    """

    singular_values: np.ndarray
    explained_variance: np.ndarray
    explained_variance_ratio: np.ndarray
    squared_norm: float
    participation_ratio: float
    effective_rank: float
    n_samples: int
    n_features: int
    center: bool
    method: str
    complete: bool

    _plot_function = "topo_mi.plotting.geometry:plot_spectrum"

    @property
    def max_rank(self) -> int:
        return min(self.n_samples, self.n_features)

    def tail_errors(self) -> np.ndarray:
        """``e[r] = ||A - A_r||_F^2`` for ``r = 0 .. len(singular_values)``.

        Summed from the smallest singular value up (no cancellation for tiny tails). For a
        truncated spectrum the unseen tail is added (computed as a difference of norms).
        """
        s2 = self.singular_values.astype(np.float64) ** 2
        rest = 0.0 if self.complete else max(self.squared_norm - float(s2.sum()), 0.0)
        tails = np.concatenate([np.cumsum(s2[::-1])[::-1], [0.0]]) + rest
        tails[0] = self.squared_norm  # the rank-0 error is ||A||^2 itself, not its SVD re-sum
        return tails

    def rank_at(self, eps: float, *, relative: bool = True) -> RankResult:
        """Smallest rank whose truncation error is within ``eps`` (see :func:`rank_at`)."""
        eps, relative = _check_eps(eps, relative)
        tails = self.tail_errors()
        budget = eps * self.squared_norm if relative else eps
        within = np.flatnonzero(tails <= budget)
        if within.size == 0:
            raise InvalidParameterError(
                f"eps: expected a budget reachable with the {self.singular_values.size} singular values "
                f"of a randomized SVD, got {eps:g} (the unseen tail alone is {tails[-1]:.4g}); "
                "use method='exact' or a larger n_components")
        r = int(within[0])
        err = float(tails[r])
        rel = err / self.squared_norm if self.squared_norm > 0 else 0.0
        return RankResult(rank=r, error=err, relative_error=rel, eps=eps, relative=relative,
                          center=self.center, squared_norm=self.squared_norm, max_rank=self.max_rank)

    def n_components_for(self, fraction: float) -> int:
        """Smallest number of components explaining at least ``fraction`` of the variance."""
        fraction = check_float("fraction", fraction, min_value=0.0, max_value=1.0)
        return self.rank_at(1.0 - fraction, relative=True).rank

    def summary(self):
        return {"participation_ratio": self.participation_ratio, "effective_rank": self.effective_rank,
                "top_ratio": float(self.explained_variance_ratio[0]) if self.explained_variance_ratio.size else 0.0,
                "method": self.method, "n_samples": self.n_samples, "n_features": self.n_features}


def _check_eps(eps, relative):
    if not isinstance(relative, (bool, np.bool_)):
        raise InvalidParameterError(f"relative: expected True or False, got {relative!r}")
    relative = bool(relative)
    eps = check_float("eps", eps, min_value=0.0, max_value=1.0 if relative else None)
    return eps, relative


def _svd_values(A: np.ndarray) -> np.ndarray:
    import scipy.linalg

    try:
        return scipy.linalg.svd(A, full_matrices=False, compute_uv=False, overwrite_a=True,
                                check_finite=False, lapack_driver="gesdd")
    except np.linalg.LinAlgError:  # gesdd occasionally fails to converge; gesvd is slower, sturdier
        return scipy.linalg.svd(A, full_matrices=False, compute_uv=False, check_finite=False,
                                lapack_driver="gesvd")


def spectrum(X, *, center: bool = True, method: str = "auto", n_components: int | None = None,
             seed=None) -> SpectrumResult:
    """Singular values, explained variance, participation ratio and effective rank of ``X``.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
        Activations ``A`` (any float dtype; computed in float64).
    center : bool, default True
        Subtract the column means first (principal components). See the module notes.
    method : {"auto", "exact", "randomized"}, default "auto"
        ``"exact"``: LAPACK SVD (``gesdd``), every singular value. ``"randomized"``: the top
        ``n_components`` by the randomized range finder of Halko, Martinsson & Tropp (SIAM Rev.
        2011) via ``sklearn.utils.extmath.randomized_svd``. ``"auto"``: exact while
        ``min(n, d) <= 2048``, randomized beyond.
    n_components : int, optional
        Singular values of the randomized SVD (default 256, capped at ``min(n, d)``).
    seed : int, Generator or None
        Seeds the randomized SVD (unused by the exact one).

    Returns
    -------
    SpectrumResult

    Notes
    -----
    The participation ratio of isotropic data in ``d`` dimensions is close to ``d`` (precisely
    ``~ d / (1 + d/n)`` from sampling noise); the effective rank follows Roy & Vetterli (2007).
    """
    X = check_point_cloud(X, "X", min_points=2)
    if not isinstance(center, (bool, np.bool_)):
        raise InvalidParameterError(f"center: expected True or False, got {center!r}")
    method = check_choice("method", method, SPECTRUM_METHODS)
    if n_components is not None:
        n_components = check_int("n_components", n_components, min_value=1)
    n, d = X.shape
    m = min(n, d)
    A = X - X.mean(axis=0) if center else X.copy()
    sq_norm = float(np.einsum("ij,ij->", A, A))
    if method == "auto":
        method = "exact" if m <= EXACT_MAX_RANK else "randomized"
    if method == "exact":
        s = _svd_values(A)
        complete = True
    else:
        from sklearn.utils.extmath import randomized_svd

        from topo_mi._validation import check_random_state

        k = RANDOMIZED_COMPONENTS if n_components is None else check_int("n_components", n_components, min_value=1)
        k = min(k, m)
        rs = int(check_random_state(seed).integers(2**31 - 1))
        _, s, _ = randomized_svd(A, k, n_oversamples=min(10 + k // 10, m - k) if m > k else 0,
                                 n_iter=7, random_state=rs)
        complete = k == m
    s = np.sort(np.asarray(s, dtype=np.float64))[::-1]
    return _spectrum_result(s, sq_norm, n, d, center, method, complete)


def _spectrum_result(s, sq_norm, n, d, center, method, complete) -> SpectrumResult:
    m = min(n, d)
    s2 = s ** 2
    denom = (n - 1) if center else n
    ratio = s2 / sq_norm if sq_norm > 0 else np.zeros_like(s2)
    # Completion of an unseen tail (randomized only): its mass spread evenly.
    rest = max(sq_norm - float(s2.sum()), 0.0) if not complete else 0.0
    n_rest = m - s.size
    if rest > 0 and n_rest > 0:
        tail_s2 = np.full(n_rest, rest / n_rest)
        s2_all = np.concatenate([s2, tail_s2])
        s_all = np.concatenate([s, np.sqrt(tail_s2)])
    else:
        s2_all, s_all = s2, s
    lam_sum = float(s2_all.sum())
    lam_sq = float((s2_all ** 2).sum())
    pr = lam_sum ** 2 / lam_sq if lam_sq > 0 else 0.0
    tot = float(s_all.sum())
    if tot > 0:
        p = s_all[s_all > 0] / tot
        erank = float(math.exp(-(p * np.log(p)).sum()))
    else:
        erank = 0.0
    return SpectrumResult(singular_values=s, explained_variance=s2 / denom, explained_variance_ratio=ratio,
                          squared_norm=sq_norm, participation_ratio=pr, effective_rank=erank,
                          n_samples=n, n_features=d, center=bool(center), method=method,
                          complete=bool(complete))


def rank_at(X, eps: float, *, relative: bool = True, center: bool = True, method: str = "auto",
            n_components: int | None = None, seed=None) -> RankResult:
    """The smallest rank ``r`` with ``||A - U_r S_r V_r^T||_F^2 <= eps``, and the error reached.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
    eps : float
        Error budget. With ``relative=True`` (default) a fraction of ``||A||_F^2`` in [0, 1]
        (``eps=0.01``: keep 99 % of the squared norm, i.e. of the variance when centred);
        otherwise an absolute squared Frobenius error >= 0.
    relative : bool, default True
    center : bool, default True
        Work on the column-centred ``A`` as :func:`spectrum` does (an affine rank-``r``
        approximation, the PCA reconstruction); ``False`` for the linear one through the origin.
    method, n_components, seed
        As in :func:`spectrum`.

    Returns
    -------
    RankResult
        ``rank``, the achieved ``error`` and ``relative_error``.

    Notes
    -----
    Eckart–Young: the truncated SVD is the best rank-``r`` approximation in Frobenius norm, so
    its tail ``sum_{i>r} s_i^2`` is the smallest error any rank-``r`` matrix can reach. Data lying
    in a ``k``-dimensional subspace gives exactly ``k`` for any tiny ``eps`` above round-off
    (relative tails beyond ``k`` are ~1e-30).
    """
    eps, relative = _check_eps(eps, relative)
    return spectrum(X, center=center, method=method, n_components=n_components, seed=seed).rank_at(
        eps, relative=relative)


__all__ = ["spectrum", "rank_at", "SpectrumResult", "RankResult", "SPECTRUM_METHODS"]
