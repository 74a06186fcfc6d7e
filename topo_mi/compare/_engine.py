"""Layer x layer CKA matrices and their permutation nulls, computed in batches.

Permuting the samples of one representation permutes the rows and columns of its (centred or
U-centred) Gram matrix, and the normalisers ``‖K̃‖``, ``‖L̃‖`` do not change; so the null
distribution of every (layer a, layer b) pair needs only ``⟨K̃_a, P L̃_b Pᵀ⟩``. Two exact routes:

- Gram route (any kernel): upper triangles of the centred Gram matrices of every layer stacked
  into a matrix; one gather and one matrix product per permutation give all La x Lb values.
  Costs about ``n²/2 · (La·Lb + Lb)`` per permutation and ``(La + Lb) · n² · 8`` bytes.
- Feature route (linear kernel): ``‖X_aᵀ P Y_b‖²_F`` from centred features, ``n · ΣD_a · ΣD_b``
  per permutation and no n x n matrix at all.
"""
from __future__ import annotations

import numpy as np

from topo_mi.compare._cka import _center_gram_inplace, _debias, _gram
from topo_mi.compare._common import center_columns, check_not_constant
from topo_mi.errors import ResourceError

# Stored centred Gram matrices of all layers of both sides, at most.
GRAM_ENGINE_BYTES = 3 * 1024**3
# A gather of one matrix entry counts as this many multiply-adds in the route choice.
_GATHER_COST = 8


def choose_route(n: int, dims_a: list[int], dims_b: list[int], kernel: str) -> str:
    """'features' or 'gram': the cheaper exact route for a permutation null (linear kernel)."""
    La, Lb = len(dims_a), len(dims_b)
    gram_bytes = 8 * n * n * (La + Lb)
    if kernel != "linear":
        if gram_bytes > GRAM_ENGINE_BYTES:
            raise ResourceError(
                f"cka ({kernel} kernel): {La + Lb} centred {n} x {n} Gram matrices take "
                f"{gram_bytes / 1024**3:.1f} GiB (limit {GRAM_ENGINE_BYTES / 1024**3:.0f} GiB); "
                "subsample the rows (Activations.subsample) or use the linear kernel")
        return "gram"
    cost_gram = n * n / 2 * (La * Lb + _GATHER_COST * Lb)
    cost_feat = n * sum(dims_a) * sum(dims_b) + _GATHER_COST * n * sum(dims_b)
    if gram_bytes > GRAM_ENGINE_BYTES or cost_feat <= cost_gram:
        return "features"
    return "gram"


class _FeatureSide:
    """Centred features of several layers, side by side, with the sums debiasing needs."""

    def __init__(self, layers: list[np.ndarray], debiased: bool, names: list[str]):
        self.n = layers[0].shape[0]
        cs = []
        for X, name in zip(layers, names):
            Xc = center_columns(np.asarray(X, dtype=np.float64))
            check_not_constant(name, Xc)
            cs.append(Xc)
        self.X = np.concatenate(cs, axis=1)
        self.bounds = np.cumsum([0] + [c.shape[1] for c in cs])
        self.debiased = debiased
        self.s = np.stack([np.einsum("ij,ij->i", c, c) for c in cs])  # (L, n) squared row norms
        self.N = self.s.sum(axis=1)
        self.self_hsic = np.array([self._selfterm(c, i) for i, c in enumerate(cs)])

    def _selfterm(self, Xc, i):
        v = float(np.square(Xc.T @ Xc).sum())
        if self.debiased:
            v = _debias(v, self.s[i], self.s[i], self.N[i], self.N[i], self.n)
        return v

    def block(self, i: int) -> np.ndarray:
        return self.X[:, self.bounds[i]:self.bounds[i + 1]]


def _block_sq_sums(M: np.ndarray, bounds: np.ndarray) -> np.ndarray:
    """Sum of squares of the column blocks of M (one row-block): shape (n_blocks,)."""
    col = np.square(M).sum(axis=0)
    return np.add.reduceat(col, bounds[:-1])


def _feature_numerators(A: _FeatureSide, B: _FeatureSide, perm: np.ndarray | None) -> np.ndarray:
    Yb = B.X if perm is None else B.X[perm]
    La, Lb = len(A.bounds) - 1, len(B.bounds) - 1
    num = np.empty((La, Lb))
    for i in range(La):
        num[i] = _block_sq_sums(A.block(i).T @ Yb, B.bounds)
    if A.debiased:
        n = A.n
        sb = B.s if perm is None else B.s[:, perm]
        num += (-n / (n - 2.0)) * (A.s @ sb.T) + np.outer(A.N, B.N) / ((n - 1.0) * (n - 2.0))
    return num


def _ratio_matrix(num: np.ndarray, sa: np.ndarray, sb: np.ndarray, names_a, names_b) -> np.ndarray:
    for side, vals, names in (("first", sa, names_a), ("second", sb, names_b)):
        bad = np.flatnonzero(~(vals > 0.0))
        if bad.size:
            from topo_mi._validation import fail

            fail(f"layer {names[bad[0]]!r} of the {side} representation",
                 "a positive (estimated) self-similarity HSIC", f"{vals[bad[0]]:.3g}", raw=True)
    return num / np.sqrt(np.outer(sa, sb))


class _GramSide:
    """Upper triangles of the centred Gram matrices of several layers."""

    def __init__(self, layers: list[np.ndarray], kernel: str, sigma: float, debiased: bool, names: list[str],
                 weighted: bool):
        n = layers[0].shape[0]
        self.n = n
        iu, ju = np.triu_indices(n) if weighted else (None, None)
        self.iu, self.ju = iu, ju
        w = np.where(iu == ju, 1.0, 2.0) if weighted else None  # off-diagonal entries count twice
        rows = []
        norms = []
        for X, name in zip(layers, names):
            X = np.asarray(X, dtype=np.float64)
            if kernel == "linear":
                X = center_columns(X)
                check_not_constant(name, X)
            K = _center_gram_inplace(_gram(X, kernel, sigma), debiased)
            norms.append(float(np.vdot(K, K)))
            rows.append(K[iu, ju] * w if weighted else K.ravel())
            del K
        self.rows = np.stack(rows)  # (L, n(n+1)/2) weighted, or (L, n²) full
        self.self_hsic = np.array(norms)


def cka_matrix(As: list[np.ndarray], Bs: list[np.ndarray], *, kernel: str = "linear", sigma: float = 0.8,
               debiased: bool = False, names_a=None, names_b=None) -> np.ndarray:
    """CKA of every (layer of A, layer of B) pair: shape (La, Lb)."""
    names_a = names_a or [str(i) for i in range(len(As))]
    names_b = names_b or [str(i) for i in range(len(Bs))]
    n = As[0].shape[0]
    route = choose_route(n, [a.shape[1] for a in As], [b.shape[1] for b in Bs], kernel)
    if route == "features":
        A, B = _FeatureSide(As, debiased, names_a), _FeatureSide(Bs, debiased, names_b)
        return _ratio_matrix(_feature_numerators(A, B, None), A.self_hsic, B.self_hsic, names_a, names_b)
    ga = _GramSide(As, kernel, sigma, debiased, names_a, weighted=False)
    gb = _GramSide(Bs, kernel, sigma, debiased, names_b, weighted=False)
    return _ratio_matrix(ga.rows @ gb.rows.T, ga.self_hsic, gb.self_hsic, names_a, names_b)


def cka_null(As: list[np.ndarray], Bs: list[np.ndarray], perms: np.ndarray, *, kernel: str = "linear",
             sigma: float = 0.8, debiased: bool = False, names_a=None, names_b=None,
             progress=None) -> tuple[np.ndarray, np.ndarray, str]:
    """Observed CKA matrix and its permutation null.

    Parameters
    ----------
    As, Bs : lists of arrays (n, d_l)
    perms : int array (n_perm, n)
        Row ``k`` reorders the samples of every layer of B.

    Returns
    -------
    observed : (La, Lb)
    null : (n_perm, La, Lb)
    route : "features" or "gram"
    """
    names_a = names_a or [str(i) for i in range(len(As))]
    names_b = names_b or [str(i) for i in range(len(Bs))]
    n = As[0].shape[0]
    route = choose_route(n, [a.shape[1] for a in As], [b.shape[1] for b in Bs], kernel)
    n_perm = len(perms)
    null = np.empty((n_perm, len(As), len(Bs)))
    if route == "features":
        A, B = _FeatureSide(As, debiased, names_a), _FeatureSide(Bs, debiased, names_b)
        obs = _ratio_matrix(_feature_numerators(A, B, None), A.self_hsic, B.self_hsic, names_a, names_b)
        denom = np.sqrt(np.outer(A.self_hsic, B.self_hsic))
        for k in range(n_perm):
            null[k] = _feature_numerators(A, B, perms[k]) / denom
            if progress is not None:
                progress(1)
        return obs, null, route
    A = _GramSide(As, kernel, sigma, debiased, names_a, weighted=True)
    B = _GramSide(Bs, kernel, sigma, debiased, names_b, weighted=False)
    obs_num = A.rows @ B.rows[:, A.iu * n + A.ju].T
    obs = _ratio_matrix(obs_num, A.self_hsic, B.self_hsic, names_a, names_b)
    denom = np.sqrt(np.outer(A.self_hsic, B.self_hsic))
    iu, ju = A.iu, A.ju
    for k in range(n_perm):
        p = perms[k]
        lin = p[iu] * n + p[ju]
        null[k] = (A.rows @ B.rows[:, lin].T) / denom
        if progress is not None:
            progress(1)
    return obs, null, route


__all__ = ["cka_matrix", "cka_null", "choose_route"]
