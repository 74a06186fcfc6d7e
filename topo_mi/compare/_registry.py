"""The comparison methods the pipeline knows by name, with what its statistics need.

Each method has a public function ``f(X, Y, **options) -> float`` and, for the permutation test,
a ``prepare(X, options)`` / ``score(px, py, perm, options)`` pair: the per-layer work is done once
and each permutation of the samples of Y is applied to the prepared state (exactly the value of
``f(X, Y[perm])``, computed faster). CKA variants use the batched engine instead.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable

import numpy as np

from topo_mi._validation import unknown_name
from topo_mi.compare import _cca, _cka, _rsa, _topological


@dataclasses.dataclass(frozen=True)
class Method:
    """A comparison method: its function, default options and how to read its values."""

    name: str
    function: Callable[..., float]
    defaults: dict
    higher_is_similar: bool
    self_value: float
    description: str
    correspondence: bool = True  # False: ignores which sample is which (no permutation test)
    engine: str = "generic"  # "cka": the batched CKA engine
    prepare: Callable | None = None
    score: Callable | None = None

    def options(self, overrides: dict | None = None) -> dict:
        opts = dict(self.defaults)
        if overrides:
            unknown = sorted(set(overrides) - set(self.defaults))
            if unknown:
                from topo_mi.errors import InvalidParameterError

                raise InvalidParameterError(
                    f"method_options[{self.name!r}]: expected options among {sorted(self.defaults)}, "
                    f"got {unknown}")
            opts.update(overrides)
        return self.check_options(opts)

    def check_options(self, opts: dict) -> dict:
        """Validate option values (the public function's checks, without data)."""
        from topo_mi._validation import check_choice, check_float, check_int

        checks = {
            "kernel": lambda v: check_choice("kernel", v, _cka.KERNELS),
            "sigma": lambda v: check_float("sigma", v, min_value=0.0, min_inclusive=False),
            "debiased": lambda v: _check_bool("debiased", v),
            "statistic": lambda v: check_choice("statistic", v, _cca.CCA_STATISTICS),
            "keep": lambda v: check_float("keep", v, min_value=0.0, max_value=1.0, min_inclusive=False),
            "compare": lambda v: check_choice("compare", v, _rsa.RSA_COMPARE),
            "k": lambda v: check_int("k", v, min_value=1),
            "dim": lambda v: check_int("dim", v, min_value=0, max_value=3),
            "order": lambda v: check_float("order", v, min_value=1.0),
            "normalize": lambda v: _check_bool("normalize", v),
            "trials": lambda v: check_int("trials", v, min_value=1),
            "batch": lambda v: check_int("batch", v, min_value=3),
        }
        out = dict(opts)
        for key, value in opts.items():
            if key in checks:
                out[key] = checks[key](value)
        if self.name == "diagram":
            check_choice("metric", opts["metric"], _topological.DIAGRAM_METRICS)
        elif "metric" in opts and not isinstance(opts["metric"], str):
            from topo_mi._validation import fail

            fail("metric", "a metric name", opts["metric"])
        return out

    def __call__(self, X, Y, **overrides) -> float:
        return float(self.function(X, Y, **self.options(overrides)))


def _check_bool(name, v):
    if not isinstance(v, bool):
        from topo_mi._validation import fail

        fail(name, "True or False", v)
    return v


# ---- prepared states (module level: picklable for process executors) -------------------------
def _prep_identity(X, opts):
    return X


def _score_rtd(px, py, perm, opts):
    return _topological.rtd(px, py if perm is None else py[perm], **opts)


def _prep_diagram(X, opts):
    return _topological._diagram(X, opts["dim"], opts["normalize"])


def _score_diagram(px, py, perm, opts):
    return _topological._diagram_distance_from(px, py, opts["metric"], opts["order"])


def _prep_cca(X, opts):
    return _cca._prepare_cca(X)


def _score_cca(px, py, perm, opts):
    _cca._check_cca_rank(px.shape[0], px.shape[1], py.shape[1])
    rho = _cca._rhos(px, py if perm is None else py[perm])
    return _cca._summarise(rho, opts.get("statistic", "mean_rho"))


def _prep_svcca(X, opts):
    return _cca._prepare_svcca(X, opts["keep"])


def _score_svcca(px, py, perm, opts):
    _cca._check_cca_rank(px.shape[0], px.shape[1], py.shape[1])
    return float(np.mean(_cca._rhos(px, py if perm is None else py[perm])))


def _prep_pwcca(X, opts):
    return _cca._prepare_pwcca(X)


def _score_pwcca(px, py, perm, opts):
    _cca._check_cca_rank(px[0].shape[0], px[0].shape[1], py[0].shape[1])
    Qy = py[0] if perm is None else py[0][perm]
    return _cca._pwcca_from(px[0], px[1], Qy)


def _prep_procrustes(X, opts):
    return _cca._prepare_procrustes(X)


def _score_procrustes(px, py, perm, opts):
    return _cca._procrustes_from(px, py if perm is None else py[perm])


def _prep_rsa(X, opts):
    return _rsa._prepare_rsa(X, opts["metric"], opts["compare"])


def _score_rsa(px, py, perm, opts):
    return _rsa._rsa_from(px, py, perm)


def _prep_knn(X, opts):
    return _rsa._prepare_knn(X, opts["k"], opts["metric"])


def _score_knn(px, py, perm, opts):
    return _rsa._knn_from(px, py, perm)


METHODS: dict[str, Method] = {m.name: m for m in [
    Method("cka", _cka.cka, {"kernel": "linear", "sigma": 0.8, "debiased": False}, True, 1.0,
           "linear CKA (Kornblith et al. 2019)", engine="cka"),
    Method("cka_debiased", _cka.cka, {"kernel": "linear", "sigma": 0.8, "debiased": True}, True, 1.0,
           "debiased linear CKA (unbiased HSIC)", engine="cka"),
    Method("cka_rbf", _cka.cka, {"kernel": "rbf", "sigma": 0.8, "debiased": False}, True, 1.0,
           "RBF CKA, bandwidth 0.8 x median distance", engine="cka"),
    Method("cca", _cca.cca, {"statistic": "mean_rho"}, True, 1.0, "CCA mean correlation ρ̄",
           prepare=_prep_cca, score=_score_cca),
    Method("cca_r2", _cca.cca, {"statistic": "r2"}, True, 1.0, "CCA R²_CCA (mean squared correlation)",
           prepare=_prep_cca, score=_score_cca),
    Method("svcca", _cca.svcca, {"keep": 0.99}, True, 1.0, "SVCCA (Raghu et al. 2017)",
           prepare=_prep_svcca, score=_score_svcca),
    Method("pwcca", _cca.pwcca, {}, True, 1.0, "projection-weighted CCA (Morcos et al. 2018)",
           prepare=_prep_pwcca, score=_score_pwcca),
    Method("procrustes", _cca.procrustes, {}, False, 0.0, "orthogonal Procrustes distance",
           prepare=_prep_procrustes, score=_score_procrustes),
    Method("rsa", _rsa.rsa, {"metric": "correlation", "compare": "spearman"}, True, 1.0,
           "RSA (Spearman correlation of correlation-distance RDMs)", prepare=_prep_rsa, score=_score_rsa),
    Method("knn", _rsa.knn_overlap, {"k": 10, "metric": "euclidean"}, True, 1.0,
           "k-nearest-neighbour overlap", prepare=_prep_knn, score=_score_knn),
    Method("diagram", _topological.diagram_distance,
           {"dim": 1, "metric": "bottleneck", "order": 1.0, "normalize": True}, False, 0.0,
           "distance between Rips persistence diagrams", correspondence=False,
           prepare=_prep_diagram, score=_score_diagram),
    Method("rtd", _topological.rtd, {"trials": 10, "batch": 500, "seed": 0}, False, 0.0,
           "Representation Topology Divergence (Barannikov et al. 2022)",
           prepare=_prep_identity, score=_score_rtd),
]}


def get_method(name: Any) -> Method:
    """The :class:`Method` called ``name`` (see ``METHODS``)."""
    if isinstance(name, Method):
        return name
    if not isinstance(name, str) or name not in METHODS:
        raise unknown_name("comparison method", str(name), METHODS)
    return METHODS[name]


__all__ = ["Method", "METHODS", "get_method"]
