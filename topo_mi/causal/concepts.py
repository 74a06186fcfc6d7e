r"""Concepts: their directions in a layer, and their linear erasure.

A concept is given by per-sample labels (bool, or int: binary, or one class against the rest with
``positive=``), a predicate on sample ids, or two sets of inputs (``(inputs_with, inputs_without)``
with ``model=`` and a layer name). Its direction (framework §2) is the difference of conditional
means ``v_c = E[a | c] - E[a | not c]`` (``"mean_diff"``), the normal of a logistic probe
(``"probe"``) or Fisher's discriminant ``S_w^+ v_c`` (``"lda"``).

:func:`erase_concept` fits LEACE (Belrose et al., "LEACE: Perfect linear concept erasure in closed
form", NeurIPS 2023) exactly, without the shrinkage that the ``concept-erasure`` package applies by
default, or the projection removing the class-mean differences.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from topo_mi._results import Result, result_dataclass
from topo_mi._validation import check_choice, check_int, fail
from topo_mi.errors import InvalidParameterError, NonFiniteError

METHODS = ("mean_diff", "probe", "lda")
ERASERS = ("leace", "mean_diff")


# ---------------------------------------------------------------------------------------------
# concepts and activations
# ---------------------------------------------------------------------------------------------
def concept_mask(concept, n: int, *, sample_ids=None, positive=None, binary: bool = True) -> np.ndarray:
    """The concept as int codes per sample: 0/1 (``binary``) or ``0..k-1`` classes.

    ``concept``: labels (bool/int, one per sample), or a predicate ``f(ids) -> bool array`` (or
    ``f(id) -> bool``, applied id by id) on ``sample_ids`` (default ``0..n-1``).
    """
    ids = np.arange(n) if sample_ids is None else np.asarray(sample_ids)
    if callable(concept) and not isinstance(concept, np.ndarray):
        try:
            out = np.asarray(concept(ids))
        except Exception:
            out = None
        if out is None or out.shape != (n,):
            out = np.asarray([bool(concept(i)) for i in ids.tolist()])
        labels = out.astype(bool)
    else:
        labels = np.asarray(concept)
        if labels.shape != (n,):
            fail("concept", f"{n} labels (one per sample), a predicate on sample ids or two sets of inputs",
                 f"shape {labels.shape}", raw=True)
        if labels.dtype.kind not in "biu":
            fail("concept", "bool or int labels", f"dtype {labels.dtype}", raw=True)
    if positive is not None:
        if not (labels == positive).any():
            fail("positive", f"a label present in the concept (labels {np.unique(labels).tolist()[:10]})", positive)
        labels = labels == positive
    values = np.unique(labels)
    if len(values) < 2:
        fail("concept", "both classes present (a concept and its absence)",
             f"only the label {values.tolist()} in {n} samples", raw=True)
    if binary:
        if len(values) > 2:
            fail("concept", "a binary concept (or pass positive= to take one label against the rest)",
                 f"{len(values)} distinct labels", raw=True)
        return (labels == values[1]).astype(np.int64)
    return np.searchsorted(values, labels).astype(np.int64)


def _layer_matrix(acts, layer, name="acts") -> tuple[np.ndarray, str, np.ndarray | None]:
    """(X (n, d) float64, layer name, sample ids)."""
    if isinstance(acts, Mapping):
        layers = list(acts)
        if layer is None:
            if len(layers) != 1:
                fail("layer", f"one of {layers} (the activations hold several layers)", None)
            layer = layers[0]
        if layer not in acts:
            from topo_mi._validation import unknown_name

            raise unknown_name("layer", layer, layers)
        X = np.asarray(acts[layer], dtype=np.float64)
        ids = getattr(acts, "sample_ids", None)
    else:
        try:
            import torch

            if isinstance(acts, torch.Tensor):
                acts = acts.detach().cpu().numpy()
        except ImportError:  # pragma: no cover
            pass
        X = np.asarray(acts, dtype=np.float64)
        ids = None
        layer = layer or "acts"
    if X.ndim != 2 or X.shape[0] < 2 or X.shape[1] < 1:
        fail(name, "activations of shape (n_samples >= 2, n_features)", f"shape {X.shape}", raw=True)
    if not np.isfinite(X).all():
        raise NonFiniteError(f"{name}: {int((~np.isfinite(X)).sum())} non-finite activation values in layer {layer!r}")
    return X, layer, None if ids is None else np.asarray(ids)


def _resolve(acts, concept, *, layer, model, positive, binary, reduce="last"):
    """Activations and concept codes from any of the accepted forms."""
    if isinstance(acts, str):  # a layer name: the concept is two sets of inputs
        if model is None:
            fail("model", "the model whose layer acts names (acts is a layer name)", None)
        if not (isinstance(concept, (tuple, list)) and len(concept) == 2):
            fail("concept", "two sets of inputs (with, without) when acts is a layer name", type(concept).__name__,
                 raw=True)
        from topo_mi.activations import collect

        a = collect(model, concept[0], layers=acts, reduce=reduce, progress=False)
        b = collect(model, concept[1], layers=acts, reduce=reduce, progress=False)
        X = np.concatenate([np.asarray(a[acts], np.float64), np.asarray(b[acts], np.float64)])
        z = np.concatenate([np.ones(a.n_samples, np.int64), np.zeros(b.n_samples, np.int64)])
        if a.n_samples < 1 or b.n_samples < 1:
            fail("concept", "inputs in both sets", (a.n_samples, b.n_samples))
        return X, a.meta["layers"][0], z
    X, layer, ids = _layer_matrix(acts, layer)
    if concept is None and getattr(acts, "labels", None) is not None:
        concept = acts.labels
    if concept is None:
        fail("concept", "labels, a predicate on sample ids or two sets of inputs", None)
    z = concept_mask(concept, X.shape[0], sample_ids=ids, positive=positive, binary=binary)
    return X, layer, z


# ---------------------------------------------------------------------------------------------
# directions
# ---------------------------------------------------------------------------------------------
def _fit_direction(X, z, method, C, seed):
    """(raw direction, intercept for the score X @ raw, predict function)."""
    m1, m0 = X[z == 1].mean(0), X[z == 0].mean(0)
    if method == "probe":
        from sklearn.linear_model import LogisticRegression

        clf = LogisticRegression(C=C, max_iter=5000, random_state=seed)
        clf.fit(X, z)
        w, b = clf.coef_[0].astype(np.float64), float(clf.intercept_[0])
        return w, b
    if method == "mean_diff":
        w = m1 - m0
    else:  # lda: pooled within-class covariance
        Xc = np.concatenate([X[z == 1] - m1, X[z == 0] - m0])
        Sw = Xc.T @ Xc / max(len(X) - 2, 1)
        w = np.linalg.lstsq(Sw, m1 - m0, rcond=None)[0]
    b = -0.5 * float((m1 + m0) @ w)  # threshold at the midpoint of the projected class means
    return w, b


def _accuracy(X, z, w, b) -> float:
    return float(np.mean(((X @ w + b) > 0).astype(np.int64) == z))


@result_dataclass
class ConceptDirection(Result):
    """A concept's direction in one layer (see :func:`concept_direction`).

    Attributes
    ----------
    layer, method : str
    direction : ndarray (d,)
        Unit vector.
    raw : ndarray (d,)
        Before normalisation (the mean difference ``v_c`` itself for ``"mean_diff"``).
    norm : float
        ``||raw||``.
    intercept : float
        Classifier ``raw . a + intercept > 0`` (the midpoint of the projected class means for
        mean_diff/lda, the logistic intercept for probe).
    accuracy : float
        In-sample accuracy of that classifier.
    cv_accuracy, cv_accuracy_std : float
        Held-out accuracy over ``cv_folds`` stratified folds (direction refitted on each training part).
    majority_rate : float
    n_positive, n_negative, cv_folds : int
    mean_positive, mean_negative : ndarray (d,)
        ``E[a | c]`` and ``E[a | not c]``.
    """

    layer: str
    method: str
    direction: np.ndarray
    raw: np.ndarray
    norm: float
    intercept: float
    accuracy: float
    cv_accuracy: float
    cv_accuracy_std: float
    cv_folds: int
    majority_rate: float
    n_positive: int
    n_negative: int
    mean_positive: np.ndarray
    mean_negative: np.ndarray

    def summary(self) -> dict:
        return {"layer": self.layer, "method": self.method, "norm": self.norm, "accuracy": self.accuracy,
                "cv_accuracy": self.cv_accuracy, "cv_accuracy_std": self.cv_accuracy_std,
                "majority_rate": self.majority_rate, "n_positive": self.n_positive, "n_negative": self.n_negative}


def concept_direction(acts, concept=None, *, layer: str | None = None, model=None, method: str = "mean_diff",
                      positive=None, cv: int = 5, C: float = 1.0, seed: int = 0,
                      reduce: Any = "last") -> ConceptDirection:
    """The direction of a concept in a layer, with in-sample and held-out accuracy.

    Parameters
    ----------
    acts : ndarray (n, d), Activations, or str
        Activations of one layer (``layer=`` picks one of an Activations), or a layer name of
        ``model`` when ``concept`` is two sets of inputs.
    concept : labels, predicate or (inputs_with, inputs_without)
        See :func:`concept_mask`; default: the Activations' labels.
    method : {"mean_diff", "probe", "lda"}
        ``v_c = E[a|c] - E[a|not c]``; a logistic probe's normal (scikit-learn, ``C`` its inverse
        regularisation); or Fisher's ``S_w^+ v_c``.
    positive : optional
        A label taken against all the others.
    cv : int, default 5
        Stratified folds for the held-out accuracy (shuffled with ``seed``).

    Returns
    -------
    ConceptDirection
    """
    check_choice("method", method, METHODS)
    cv = check_int("cv", cv, min_value=2)
    seed = check_int("seed", seed, min_value=0)
    X, layer, z = _resolve(acts, concept, layer=layer, model=model, positive=positive, binary=True, reduce=reduce)
    n1, n0 = int(z.sum()), int(len(z) - z.sum())
    if min(n1, n0) < cv:
        fail("cv", f"at most {min(n1, n0)} folds (the smaller class has {min(n1, n0)} samples)", cv)
    w, b = _fit_direction(X, z, method, C, seed)
    norm = float(np.linalg.norm(w))
    if not np.isfinite(norm) or norm == 0.0:
        raise NonFiniteError(f"concept: the {method} direction of layer {layer!r} is {'zero' if norm == 0 else 'NaN'} "
                             "(identical or degenerate class activations)")
    from sklearn.model_selection import StratifiedKFold

    accs = []
    for tr, te in StratifiedKFold(cv, shuffle=True, random_state=seed).split(X, z):
        wf, bf = _fit_direction(X[tr], z[tr], method, C, seed)
        accs.append(_accuracy(X[te], z[te], wf, bf))
    return ConceptDirection(layer=layer, method=method, direction=w / norm, raw=w, norm=norm, intercept=b,
                            accuracy=_accuracy(X, z, w, b), cv_accuracy=float(np.mean(accs)),
                            cv_accuracy_std=float(np.std(accs)), cv_folds=cv,
                            majority_rate=float(max(n1, n0) / len(z)), n_positive=n1, n_negative=n0,
                            mean_positive=X[z == 1].mean(0), mean_negative=X[z == 0].mean(0))


# ---------------------------------------------------------------------------------------------
# erasure
# ---------------------------------------------------------------------------------------------
@result_dataclass
class ConceptEraser(Result):
    """An affine concept eraser ``x -> x - P (x - mean)`` (see :func:`erase_concept`).

    Fitted on one split, it applies to any other (``eraser(X)`` or the ``Erase(eraser)`` op).

    Attributes
    ----------
    layer, method : str
    mean : ndarray (d,)
        The fitted unconditional mean (unchanged by the erasure).
    projection : ndarray (d, d)
        ``P``: an oblique projection (LEACE) or an orthogonal one (mean_diff); idempotent.
    rank : int
        rank(P) <= number of classes - 1.
    n_classes, n_samples : int
    """

    layer: str
    method: str
    mean: np.ndarray
    projection: np.ndarray
    rank: int
    n_classes: int
    n_samples: int

    def summary(self) -> dict:
        return {"layer": self.layer, "method": self.method, "rank": self.rank, "n_classes": self.n_classes,
                "n_samples": self.n_samples, "width": int(self.mean.shape[0])}

    def apply(self, X):
        """Erase the concept from activations ``X`` (n, d) (numpy or torch, same type back)."""
        try:
            import torch

            if isinstance(X, torch.Tensor):
                P = torch.as_tensor(self.projection, dtype=X.dtype, device=X.device)
                mu = torch.as_tensor(self.mean, dtype=X.dtype, device=X.device)
                if X.shape[-1] != P.shape[0]:
                    fail("X", f"activations of width {P.shape[0]}", f"width {X.shape[-1]}", raw=True)
                return X - (X - mu) @ P.T
        except ImportError:  # pragma: no cover
            pass
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != self.mean.shape[0]:
            fail("X", f"activations of shape (n, {self.mean.shape[0]})", f"shape {X.shape}", raw=True)
        return X - (X - self.mean) @ self.projection.T

    __call__ = apply


def erase_concept(acts, concept=None, *, layer: str | None = None, model=None, method: str = "leace",
                  positive=None, reduce: Any = "last") -> ConceptEraser:
    r"""Fit a linear concept eraser on activations.

    ``method="leace"`` is the exact LEACE solution (no shrinkage): with the sample covariance
    :math:`\Sigma_{XX}`, the cross-covariance :math:`\Sigma_{XZ}` with the one-hot (centred) concept
    :math:`Z` and the whitening :math:`W = (\Sigma_{XX}^{1/2})^+`,

    .. math:: r(x) = x - W^+ P_{W\Sigma_{XZ}} W (x - \mu),

    :math:`P_A` the orthogonal projection onto the column space of :math:`A`. After it,
    :math:`\mathrm{Cov}(r(X), Z) = 0` (the class-conditional means are equal), the mean is unchanged,
    the map is idempotent and changes ``X`` least in the Mahalanobis sense; no linear classifier
    beats the majority rate *on the fitted sample* (held-out data can retain some signal).
    ``method="mean_diff"`` removes the span of the class-mean differences orthogonally (the
    class means become equal too, at a larger change of ``X``).

    ``concept`` may have several classes (int labels); ``positive`` takes one against the rest.
    """
    check_choice("method", method, ERASERS)
    X, layer, z = _resolve(acts, concept, layer=layer, model=model, positive=positive, binary=False, reduce=reduce)
    n, d = X.shape
    k = int(z.max()) + 1
    mu = X.mean(0)
    Xc = X - mu
    Z = np.eye(k)[z]
    Zc = Z - Z.mean(0)
    eps = np.finfo(np.float64).eps
    if method == "leace":
        Sxx = Xc.T @ Xc / n
        Sxz = Xc.T @ Zc / n
        L, V = np.linalg.eigh(Sxx)
        keep = L > max(L.max(), 0.0) * d * eps
        Vk, sq = V[:, keep], np.sqrt(L[keep])
        W = (Vk / sq) @ Vk.T
        W_inv = (Vk * sq) @ Vk.T
        U, s, _ = np.linalg.svd(W @ Sxz, full_matrices=False)
        U = U[:, s > (s.max() if s.size else 0.0) * max(d, k) * eps]
        P = W_inv @ U @ U.T @ W
    else:
        means = np.stack([X[z == c].mean(0) for c in range(k)])
        D = (means[1:] - means[0]).T  # (d, k-1)
        U, s, _ = np.linalg.svd(D, full_matrices=False)
        U = U[:, s > (s.max() if s.size else 0.0) * max(d, k) * eps]
        P = U @ U.T
    if not np.isfinite(P).all():
        raise NonFiniteError(f"acts: the {method} eraser of layer {layer!r} is not finite")
    rank = int(np.linalg.matrix_rank(P)) if P.size else 0
    if rank == 0:
        raise InvalidParameterError(f"concept: the class means of layer {layer!r} are identical; there is nothing "
                                    "to erase")
    return ConceptEraser(layer=layer, method=method, mean=mu, projection=P, rank=rank, n_classes=k, n_samples=n)


__all__ = ["concept_mask", "concept_direction", "ConceptDirection", "erase_concept", "ConceptEraser"]
