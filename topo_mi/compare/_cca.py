"""Canonical correlation family and the orthogonal Procrustes distance.

References
----------
Hotelling, "Relations between two sets of variates", Biometrika 1936 (CCA).
Raghu, Gilmer, Yosinski & Sohl-Dickstein, "SVCCA", NeurIPS 2017.
Morcos, Raghu & Bengio, "Insights on representational similarity in neural networks with
canonical correlation", NeurIPS 2018 (projection-weighted CCA).
Kornblith et al., ICML 2019 (the summaries ρ̄ and R²_CCA).
Ding, Denain & Steinhardt, "Grounding representation similarity with statistical testing",
NeurIPS 2021 (orthogonal Procrustes distance).
"""
from __future__ import annotations

import numpy as np

from topo_mi._validation import check_choice, check_float, fail
from topo_mi.compare._common import center_columns, check_not_constant, check_pair

CCA_STATISTICS = ("mean_rho", "r2")


def _basis(Xc: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Thin SVD of centred data keeping the numerically non-zero directions: U (n, r), s (r,), Vt (r, d)."""
    U, s, Vt = np.linalg.svd(Xc, full_matrices=False)
    tol = s[0] * max(Xc.shape) * np.finfo(np.float64).eps if s.size else 0.0
    r = int(np.sum(s > tol))
    return U[:, :r], s[:r], Vt[:r]


def _check_cca_rank(n: int, rx: int, ry: int) -> None:
    # Centred data live in an (n - 1)-dimensional space: when rank(X) + rank(Y) > n - 1 the two
    # column spaces must intersect and rank(X) + rank(Y) - (n - 1) correlations are 1 whatever
    # the data, so the summary would be meaningless.
    if rx + ry > n - 1:
        fail("X, Y", f"n_samples - 1 >= rank(X) + rank(Y) for CCA (n_samples = {n})",
             f"rank(X) = {rx}, rank(Y) = {ry}: some canonical correlations are 1 by dimension count alone; "
             "use svcca, pwcca or cka, or more samples", raw=True)


def _rhos(Qx: np.ndarray, Qy: np.ndarray, with_vectors: bool = False):
    M = Qx.T @ Qy
    if with_vectors:
        U, rho, _ = np.linalg.svd(M, full_matrices=False)
        return np.clip(rho, 0.0, 1.0), U
    return np.clip(np.linalg.svd(M, compute_uv=False), 0.0, 1.0)


def _prepare_cca(X: np.ndarray, name: str = "X") -> np.ndarray:
    Xc = center_columns(X)
    check_not_constant(name, Xc)
    return _basis(Xc)[0]


def canonical_correlations(X, Y) -> np.ndarray:
    """Canonical correlations ρ₁ >= ρ₂ >= ... between two representations of the same samples.

    Both are centred; ``ρ`` are the singular values of ``Q_Xᵀ Q_Y`` where ``Q`` is an orthonormal
    basis of each column space (rank-revealing SVD, so linearly dependent units are handled).

    Parameters
    ----------
    X : array of shape (n_samples, d_x)
    Y : array of shape (n_samples, d_y)

    Returns
    -------
    ndarray of shape (min(rank X, rank Y),), values in [0, 1], descending

    Raises
    ------
    InvalidParameterError
        When ``rank X + rank Y > n_samples - 1``: some correlations would be 1 by construction.
    """
    X, Y = check_pair(X, Y, min_points=3)
    Qx, Qy = _prepare_cca(X, "X"), _prepare_cca(Y, "Y")
    _check_cca_rank(X.shape[0], Qx.shape[1], Qy.shape[1])
    return _rhos(Qx, Qy)


def _summarise(rho: np.ndarray, statistic: str) -> float:
    return float(np.mean(rho)) if statistic == "mean_rho" else float(np.mean(rho**2))


def cca(X, Y, *, statistic: str = "mean_rho") -> float:
    """Canonical correlation analysis similarity (Kornblith et al. 2019's summaries).

    Invariant to any invertible linear map of either representation (and to translations).

    Parameters
    ----------
    X : array of shape (n_samples, d_x)
    Y : array of shape (n_samples, d_y)
    statistic : {"mean_rho", "r2"}, default "mean_rho"
        ``"mean_rho"``: ρ̄ = ‖Q_Yᵀ Q_X‖_* / p, the mean canonical correlation; ``"r2"``:
        R²_CCA = ‖Q_Yᵀ Q_X‖²_F / p, the mean squared correlation; ``p = min(rank X, rank Y)``.

    Returns
    -------
    float in [0, 1]
    """
    check_choice("statistic", statistic, CCA_STATISTICS)
    return _summarise(canonical_correlations(X, Y), statistic)


def _svd_reduce(X: np.ndarray, keep: float, name: str) -> np.ndarray:
    """The top principal directions of centred ``X`` explaining at least ``keep`` of the variance."""
    Xc = center_columns(X)
    check_not_constant(name, Xc)
    U, s, _ = _basis(Xc)
    var = s**2
    k = int(np.searchsorted(np.cumsum(var) / var.sum(), keep - 1e-12) + 1)
    k = min(k, s.size)
    return U[:, :k]


def _prepare_svcca(X: np.ndarray, keep: float = 0.99, name: str = "X") -> np.ndarray:
    return _svd_reduce(X, keep, name)


def svcca(X, Y, *, keep: float = 0.99) -> float:
    """Singular vector CCA (Raghu et al. 2017): CCA on the top principal components.

    Each representation is reduced to its fewest leading principal components that explain at
    least ``keep`` of its variance, then the mean canonical correlation is returned.

    Parameters
    ----------
    X : array of shape (n_samples, d_x)
    Y : array of shape (n_samples, d_y)
    keep : float in (0, 1], default 0.99
        Fraction of variance kept (Raghu et al. use 0.99).

    Returns
    -------
    float in [0, 1]
    """
    X, Y = check_pair(X, Y, min_points=3)
    keep = check_float("keep", keep, min_value=0.0, max_value=1.0, min_inclusive=False)
    Ux, Uy = _svd_reduce(X, keep, "X"), _svd_reduce(Y, keep, "Y")
    _check_cca_rank(X.shape[0], Ux.shape[1], Uy.shape[1])
    return float(np.mean(_rhos(Ux, Uy)))


def _prepare_pwcca(X: np.ndarray, name: str = "X") -> tuple[np.ndarray, np.ndarray]:
    Xc = center_columns(X)
    check_not_constant(name, Xc)
    return _basis(Xc)[0], Xc


def _pwcca_from(Qx: np.ndarray, Xc: np.ndarray, Qy: np.ndarray) -> float:
    rho, U = _rhos(Qx, Qy, with_vectors=True)
    H = Qx @ U  # canonical variates of X (unit-norm columns), strongest first
    alpha = np.abs(H.T @ Xc).sum(axis=1)  # Σ_j |⟨h_i, x_j⟩| over the units x_j of X
    total = alpha.sum()
    if total <= 0.0:  # pragma: no cover - excluded by the constant check
        fail("X", "a representation with non-zero projections on its canonical variates", total)
    return float(alpha @ rho / total)


def pwcca(X, Y) -> float:
    """Projection-weighted CCA (Morcos et al. 2018).

    ``Σ_i α_i ρ_i / Σ_i α_i`` with ``α_i = Σ_j |⟨h_i, x_j⟩|``: each canonical correlation is
    weighted by how much of X's units (columns ``x_j``) its canonical variate ``h_i`` accounts
    for. Asymmetric: the weights come from ``X``.

    Parameters
    ----------
    X : array of shape (n_samples, d_x)
        The representation whose units set the weights.
    Y : array of shape (n_samples, d_y)

    Returns
    -------
    float in [0, 1]
    """
    X, Y = check_pair(X, Y, min_points=3)
    Qx, Xc = _prepare_pwcca(X, "X")
    Qy = _prepare_cca(Y, "Y")
    _check_cca_rank(X.shape[0], Qx.shape[1], Qy.shape[1])
    return _pwcca_from(Qx, Xc, Qy)


def _prepare_procrustes(X: np.ndarray, name: str = "X") -> np.ndarray:
    Xc = center_columns(X)
    check_not_constant(name, Xc)
    return Xc / np.linalg.norm(Xc)


def _procrustes_from(Xn: np.ndarray, Yn: np.ndarray) -> float:
    M = Xn.T @ Yn
    nuc = float(np.linalg.svd(M, compute_uv=False).sum())
    return float(max(0.0, 2.0 - 2.0 * nuc))


def procrustes(X, Y) -> float:
    """Orthogonal Procrustes distance (Ding, Denain & Steinhardt 2021).

    Both representations are centred and scaled to unit Frobenius norm; the distance is
    ``min_R ‖X - Y R‖²_F = 2 - 2 ‖Xᵀ Y‖_*`` over orthogonal ``R`` (the narrower representation is
    padded with zero columns). 0 means equal up to rotation, translation and scale; at most 2.

    Parameters
    ----------
    X : array of shape (n_samples, d_x)
    Y : array of shape (n_samples, d_y)

    Returns
    -------
    float in [0, 2] (a distance: lower is more similar)
    """
    X, Y = check_pair(X, Y)
    return _procrustes_from(_prepare_procrustes(X, "X"), _prepare_procrustes(Y, "Y"))


__all__ = ["canonical_correlations", "cca", "svcca", "pwcca", "procrustes"]
