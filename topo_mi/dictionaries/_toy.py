"""Ground-truth toy data for dictionary learning (Sharkey, Braun & Millidge 2022)."""
from __future__ import annotations

import numpy as np

from topo_mi._validation import check_float, check_int, check_random_state, fail


def toy_features(n: int, *, d: int = 64, n_features: int = 128, mean_active: float = 5.0, decay: float = 0.99,
                 correlated: bool = False, seed=0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sparse non-negative combinations of planted unit directions.

    The generator of Sharkey, Braun & Millidge's "Taking features out of superposition with sparse
    autoencoders" (2022; repository ``HoagyC/sparse_coding``): ``n_features`` unit-norm Gaussian
    directions in R^d; feature ``i`` is active with probability ``p_i ∝ decay**i``, scaled so the
    expected number of active features is ``mean_active``; an active feature's value is
    ``U(0,1) · U(0,1)``; ``x = Σ_i value_i · direction_i``. With ``correlated=True`` the activity
    pattern thresholds a Gaussian copula with a random correlation matrix (the same marginals).

    Returns
    -------
    X : (n, d) float32, directions : (n_features, d) float64 unit rows, codes : (n, n_features) float32
    """
    n = check_int("n", n, min_value=1)
    d = check_int("d", d, min_value=1)
    G = check_int("n_features", n_features, min_value=1)
    mean_active = check_float("mean_active", mean_active, min_value=0.0, min_inclusive=False)
    decay = check_float("decay", decay, min_value=0.0, max_value=1.0, min_inclusive=False)
    rng = check_random_state(seed)
    dirs = rng.standard_normal((G, d))
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    p = decay ** np.arange(G)
    p = p * mean_active / p.sum()
    if p.max() > 1:
        fail("mean_active", f"at most what the decay allows ({G} features, p_0 <= 1)", mean_active)
    if correlated:
        from scipy.stats import norm

        A = rng.standard_normal((G, G)) / np.sqrt(G)
        C = A @ A.T + np.eye(G) * 0.5
        s = np.sqrt(np.diag(C))
        C = C / np.outer(s, s)
        L = np.linalg.cholesky(C)
        g = rng.standard_normal((n, G)) @ L.T
        active = g > norm.ppf(1 - p)
    else:
        active = rng.random((n, G)) < p
    values = rng.random((n, G)) * rng.random((n, G))
    codes = np.where(active, values, 0.0).astype(np.float32)
    X = (codes.astype(np.float64) @ dirs).astype(np.float32)
    return X, dirs, codes
