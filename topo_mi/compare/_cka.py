"""Centered kernel alignment (CKA) and the Hilbert–Schmidt independence criterion (HSIC).

References
----------
Kornblith, Norouzi, Lee & Hinton, "Similarity of neural network representations revisited",
ICML 2019 (linear and RBF CKA, the median bandwidth heuristic, debiased CKA).
Song, Smola, Gretton, Bedo & Borgwardt, "Feature selection via dependence maximization",
JMLR 13, 2012 (the unbiased HSIC estimator).
Székely & Rizzo, "Partial distance correlation with methods for dissimilarities", Ann. Stat. 2014
(U-centring).
Nguyen, Raghu & Kornblith, "Do wide and deep networks learn the same things?", ICLR 2021
(minibatch CKA).
"""
from __future__ import annotations

import numpy as np

from topo_mi._validation import check_choice, check_float, check_int, check_point_cloud, check_random_state, fail
from topo_mi.compare._common import (center_columns, check_gram_memory, check_not_constant, check_pair,
                                     sq_distances)

KERNELS = ("linear", "rbf")
FORMS = ("auto", "features", "gram")


# ---------------------------------------------------------------------------------------------
# Gram matrices and centring
# ---------------------------------------------------------------------------------------------
def gram_linear(X) -> np.ndarray:
    """Linear Gram matrix ``K = X Xᵀ`` of shape (n, n)."""
    X = check_point_cloud(X, "X", min_points=1)
    check_gram_memory(X.shape[0], "gram_linear")
    return X @ X.T


def gram_rbf(X, *, sigma: float = 0.8) -> np.ndarray:
    """RBF Gram matrix ``exp(-‖x_i - x_j‖² / (2 s²))`` with ``s² = sigma² · median(‖x_i - x_j‖²)``.

    The bandwidth follows Kornblith et al. (2019): ``sigma`` is a fraction of the median distance,
    and the median is taken over all n² squared distances, the zero diagonal included.

    Parameters
    ----------
    X : array of shape (n_samples, n_features)
    sigma : float > 0, default 0.8

    Returns
    -------
    ndarray of shape (n_samples, n_samples)
    """
    X = check_point_cloud(X, "X", min_points=2)
    sigma = check_float("sigma", sigma, min_value=0.0, min_inclusive=False)
    check_gram_memory(X.shape[0], "gram_rbf")
    return _gram_rbf(X, sigma)


def _gram_rbf(X: np.ndarray, sigma: float) -> np.ndarray:
    D2 = sq_distances(X)
    med = float(np.median(D2))
    if med <= 0.0:
        fail("X", "points whose median squared distance is positive (RBF bandwidth)",
             f"median 0 (more than half of the {X.shape[0]}² pairs coincide)", raw=True)
    D2 *= -1.0 / (2.0 * sigma * sigma * med)
    return np.exp(D2, out=D2)


def center_gram(K, *, unbiased: bool = False) -> np.ndarray:
    """Centre a symmetric Gram matrix (returns a new array).

    ``unbiased=False``: double centring ``H K H`` with ``H = I - 11ᵀ/n``.
    ``unbiased=True``: U-centring (Székely & Rizzo 2014) of ``K`` with its diagonal set to zero:
    ``K̃_ij = K_ij - r_i/(n-2) - r_j/(n-2) + s/((n-1)(n-2))`` for i ≠ j, ``K̃_ii = 0``, where ``r``
    are the row sums and ``s`` the total sum of the zero-diagonal matrix; then
    ``⟨K̃, L̃⟩ / (n(n-3))`` is the unbiased HSIC of Song et al. (2012). Needs n >= 4.
    """
    K = np.array(K, dtype=np.float64)
    if K.ndim != 2 or K.shape[0] != K.shape[1]:
        fail("K", "a square (n, n) Gram matrix", K)
    return _center_gram_inplace(K, unbiased)


def _center_gram_inplace(K: np.ndarray, unbiased: bool) -> np.ndarray:
    n = K.shape[0]
    if unbiased:
        if n < 4:
            fail("n_samples", "at least 4 samples for the unbiased (debiased) estimator", n)
        np.fill_diagonal(K, 0.0)
        r = K.sum(axis=0)
        shift = r / (n - 2) - r.sum() / (2.0 * (n - 1) * (n - 2))
        K -= shift[:, None]
        K -= shift[None, :]
        np.fill_diagonal(K, 0.0)
    else:
        r = K.mean(axis=0)
        shift = r - r.mean() / 2.0
        K -= shift[:, None]
        K -= shift[None, :]
    return K


def hsic(K, L, *, unbiased: bool = False) -> float:
    """HSIC between two Gram matrices of the same n samples.

    ``unbiased=False``: the biased estimator ``tr(K H L H) / (n-1)²`` (Gretton et al. 2005);
    ``unbiased=True``: the unbiased estimator of Song et al. (2012), computed by U-centring.
    """
    Kc = center_gram(K, unbiased=unbiased)
    Lc = center_gram(L, unbiased=unbiased)
    if Kc.shape != Lc.shape:
        fail("L", f"a Gram matrix of shape {Kc.shape} like K", Lc)
    n = Kc.shape[0]
    denom = n * (n - 3.0) if unbiased else (n - 1.0) ** 2
    return float(np.vdot(Kc, Lc) / denom)


# ---------------------------------------------------------------------------------------------
# CKA
# ---------------------------------------------------------------------------------------------
def _debias(xty: float, sx: np.ndarray, sy: np.ndarray, nx: float, ny: float, n: int) -> float:
    """n(n-3) · unbiased HSIC of linear kernels of centred features, from feature-space sums.

    With ``K = XXᵀ`` (centred columns), ``s = diag(K)`` and ``K₀ = K - diag(s)``: ``1ᵀK₀1 = -Σs`` and
    ``K₀1 = -s``, so Song et al.'s estimator reduces to
    ``‖XᵀY‖² - n/(n-2) s_x·s_y + Σs_x Σs_y / ((n-1)(n-2))``.
    """
    return xty - n / (n - 2.0) * float(sx @ sy) + nx * ny / ((n - 1.0) * (n - 2.0))


def _linear_cka_features(Xc: np.ndarray, Yc: np.ndarray, debiased: bool, *, check: bool = False) -> float:
    """Linear CKA from centred features in O(n·(d_x + d_y)²) time and O((d_x + d_y)²) memory.

    Three BLAS products (``XᵀX`` and ``YᵀY`` as symmetric rank-k updates); ``check`` refuses a
    constant representation from the traces of the small Gram matrices (no extra pass over the data).
    """
    n = Xc.shape[0]
    Gxx, Gyy = Xc.T @ Xc, Yc.T @ Yc
    if check:
        check_not_constant("X", Xc, sq_norm=float(np.trace(Gxx)))
        check_not_constant("Y", Yc, sq_norm=float(np.trace(Gyy)))
    xty = _sq_frobenius(Xc.T @ Yc)
    xx = _sq_frobenius(Gxx)
    yy = _sq_frobenius(Gyy)
    if debiased:
        sx = np.einsum("ij,ij->i", Xc, Xc)
        sy = np.einsum("ij,ij->i", Yc, Yc)
        nx, ny = float(sx.sum()), float(sy.sum())
        xty = _debias(xty, sx, sy, nx, ny, n)
        xx = _debias(xx, sx, sx, nx, nx, n)
        yy = _debias(yy, sy, sy, ny, ny, n)
    return _ratio(xty, xx, yy)


def _sq_frobenius(G: np.ndarray) -> float:
    flat = G.reshape(-1)
    return float(np.dot(flat, flat))


def _ratio(xy: float, xx: float, yy: float) -> float:
    if not (xx > 0.0 and yy > 0.0):
        fail("X, Y", "representations with positive (estimated) self-similarity HSIC",
             f"HSIC(X, X) = {xx:.3g}, HSIC(Y, Y) = {yy:.3g}", raw=True)
    return float(xy / np.sqrt(xx * yy))


def _gram(X: np.ndarray, kernel: str, sigma: float) -> np.ndarray:
    return X @ X.T if kernel == "linear" else _gram_rbf(X, sigma)


def features_cheaper(n: int, dx: int, dy: int) -> bool:
    """True when the feature form of linear CKA costs fewer flops than the Gram form."""
    return dx * dy + dx * dx + dy * dy <= n * (dx + dy + 3)


def cka(X, Y, *, kernel: str = "linear", sigma: float = 0.8, debiased: bool = False,
        form: str = "auto") -> float:
    """Centered kernel alignment between two representations of the same samples.

    ``CKA(K, L) = HSIC(K, L) / sqrt(HSIC(K, K) · HSIC(L, L))`` (Kornblith et al. 2019). The linear
    kernel gives ``‖YᵀX‖²_F / (‖XᵀX‖_F ‖YᵀY‖_F)`` on centred columns; it is invariant to orthogonal
    transforms and isotropic scaling of either representation, not to general invertible maps.

    Parameters
    ----------
    X : array of shape (n_samples, d_x)
    Y : array of shape (n_samples, d_y)
        Row ``i`` of both is the same sample.
    kernel : {"linear", "rbf"}, default "linear"
    sigma : float > 0, default 0.8
        RBF bandwidth as a fraction of the median distance (see :func:`gram_rbf`); ignored for the
        linear kernel.
    debiased : bool, default False
        Use the unbiased HSIC of Song et al. (2012) (U-centred Gram matrices); needs n >= 4. The
        debiased value can be slightly negative for unrelated representations.
    form : {"auto", "features", "gram"}, default "auto"
        For the linear kernel: from d x d feature products (O(n·d²)) or from n x n Gram matrices
        (O(n²·d)); "auto" picks the cheaper. The RBF kernel always uses Gram matrices.

    Returns
    -------
    float
        1 for representations equal up to rotation and scale; 0 for no linear (kernel) relation.

    Raises
    ------
    ResourceError
        When a Gram matrix would exceed the memory budget (use the linear kernel or
        :func:`minibatch_cka`).
    """
    X, Y = check_pair(X, Y, min_points=2, keep_float32=kernel == "linear", defer_finite=kernel == "linear")
    if X.shape[0] < 4:
        # centred, n points span at most n - 1 dimensions: with 2 samples every pair of
        # representations has CKA 1 and with 3 the value is dominated by that degeneracy
        fail("X", "at least 4 samples (with fewer, CKA is 1 or near 1 for any two representations)",
             f"{X.shape[0]} samples", raw=True)
    check_choice("kernel", kernel, KERNELS)
    check_choice("form", form, FORMS)
    sigma = check_float("sigma", sigma, min_value=0.0, min_inclusive=False)
    if not isinstance(debiased, bool):
        fail("debiased", "True or False", debiased)
    n = X.shape[0]
    if kernel == "linear":
        Xc, Yc = center_columns(X, name="X"), center_columns(Y, name="Y")
        if form == "features" or (form == "auto" and (features_cheaper(n, X.shape[1], Y.shape[1])
                                                     or 8 * n * n > _gram_budget())):
            return _linear_cka_features(Xc, Yc, debiased, check=True)
        check_not_constant("X", Xc)
        check_not_constant("Y", Yc)
        X, Y = Xc, Yc
    elif form == "features":
        fail("form", "'auto' or 'gram' with the rbf kernel (only the linear kernel has a feature form)", form)
    check_gram_memory(n, "cka")
    K = _center_gram_inplace(_gram(X, kernel, sigma), debiased)
    L = _center_gram_inplace(_gram(Y, kernel, sigma), debiased)
    return _ratio(float(np.vdot(K, L)), float(np.vdot(K, K)), float(np.vdot(L, L)))


def _gram_budget() -> int:
    from topo_mi.compare import _common

    return _common.MAX_GRAM_BYTES


def _hsic1_triplet(Xb: np.ndarray, Yb: np.ndarray, kernel: str, sigma: float) -> tuple[float, float, float]:
    """Unbiased HSIC (Song et al.) of (X, Y), (X, X), (Y, Y) on one batch."""
    n = Xb.shape[0]
    denom = n * (n - 3.0)
    if kernel == "linear" and features_cheaper(n, Xb.shape[1], Yb.shape[1]):
        Xc, Yc = center_columns(Xb), center_columns(Yb)
        sx = np.einsum("ij,ij->i", Xc, Xc)
        sy = np.einsum("ij,ij->i", Yc, Yc)
        nx, ny = float(sx.sum()), float(sy.sum())
        xy = _debias(float(np.square(Xc.T @ Yc).sum()), sx, sy, nx, ny, n)
        xx = _debias(float(np.square(Xc.T @ Xc).sum()), sx, sx, nx, nx, n)
        yy = _debias(float(np.square(Yc.T @ Yc).sum()), sy, sy, ny, ny, n)
        return xy / denom, xx / denom, yy / denom
    K = _center_gram_inplace(_gram(Xb, kernel, sigma), True)
    L = _center_gram_inplace(_gram(Yb, kernel, sigma), True)
    return float(np.vdot(K, L)) / denom, float(np.vdot(K, K)) / denom, float(np.vdot(L, L)) / denom


def minibatch_cka(X, Y, *, batch_size: int = 1024, n_epochs: int = 1, kernel: str = "linear",
                  sigma: float = 0.8, seed=0) -> float:
    """Minibatch CKA (Nguyen, Raghu & Kornblith, ICLR 2021) for n too large for n x n matrices.

    The unbiased HSIC (Song et al. 2012) of (X, Y), (X, X) and (Y, Y) is averaged over minibatches
    and CKA is the ratio of the averages, ``Σ_b HSIC₁(K_b, L_b) / sqrt(Σ_b HSIC₁(K_b, K_b) ·
    Σ_b HSIC₁(L_b, L_b))``. It estimates the same population quantity as debiased CKA on all rows
    and equals it exactly when one batch holds every row.

    Parameters
    ----------
    X : array of shape (n_samples, d_x)
        May be a memory-mapped array: only one batch is loaded at a time.
    Y : array of shape (n_samples, d_y)
    batch_size : int >= 4, default 1024
        Each epoch shuffles the rows and splits them into ``ceil(n / batch_size)`` batches of
        near-equal size (every row is used; sizes differ by at most one).
    n_epochs : int >= 1, default 1
        Passes over the data, each with a fresh shuffle.
    kernel : {"linear", "rbf"}, default "linear"
        With "rbf", the bandwidth (``sigma`` times the median distance) is set on each batch.
    sigma : float > 0, default 0.8
    seed : int, Generator or None, default 0
        Seeds the shuffling.

    Returns
    -------
    float
    """
    from topo_mi._validation import as_array

    X, Y = as_array(X, "X"), as_array(Y, "Y")
    for name, A in (("X", X), ("Y", Y)):
        if A.ndim != 2 or A.dtype.kind not in "biuf":
            fail(name, "a numeric 2-D array of shape (n_samples, n_features)", A)
    if X.shape[0] != Y.shape[0]:
        fail("Y", f"{X.shape[0]} rows (one per sample, like X)", f"{Y.shape[0]} rows", raw=True)
    n = X.shape[0]
    if n < 4:
        fail("X", "at least 4 samples", f"{n} rows", raw=True)
    batch_size = check_int("batch_size", batch_size, min_value=4)
    n_epochs = check_int("n_epochs", n_epochs, min_value=1)
    check_choice("kernel", kernel, KERNELS)
    sigma = check_float("sigma", sigma, min_value=0.0, min_inclusive=False)
    rng = check_random_state(seed)
    n_batches = -(-n // batch_size)
    if n_batches > 1 and n // n_batches < 4:  # pragma: no cover - excluded by batch_size >= 4
        fail("batch_size", "batches of at least 4 rows", batch_size)
    if kernel == "rbf":
        check_gram_memory(-(-n // n_batches), "minibatch_cka")
    sums = np.zeros(3)
    for _ in range(n_epochs):
        order = rng.permutation(n) if n_batches > 1 else np.arange(n)
        for idx in np.array_split(order, n_batches):
            idx = np.sort(idx)  # sequential reads of memory-mapped arrays
            Xb = check_point_cloud(X[idx], "X", min_points=4)
            Yb = check_point_cloud(Y[idx], "Y", min_points=4)
            sums += _hsic1_triplet(Xb, Yb, kernel, sigma)
    return _ratio(sums[0], sums[1], sums[2])


__all__ = ["gram_linear", "gram_rbf", "center_gram", "hsic", "cka", "minibatch_cka"]
