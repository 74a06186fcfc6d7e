"""The ``Dataset`` result, the registry of named data sets, seeds and shared geometry helpers."""
from __future__ import annotations

import copy
import numbers
from typing import Any, ClassVar

import numpy as np

from topo_mi._results import Result, result_dataclass
from topo_mi._validation import check_float, check_int, closest_names, fail, unknown_name
from topo_mi.errors import InvalidParameterError

#: Prime fields listed in every ``betti`` entry of a card (keys are the primes as strings).
FIELDS = ("2", "3")

# Independent random streams spawned from one seed, so that e.g. changing ``ambient_dim`` rotates
# the very same sample and changing ``noise`` perturbs the very same clean points.
STREAM_SAMPLE, STREAM_NOISE, STREAM_ROTATION, STREAM_SUBSET = range(4)


@result_dataclass
class Dataset(Result):
    """A generated or loaded data set.

    Attributes
    ----------
    X : ndarray
        ``(n_samples, n_features)`` float64 for point clouds and real vectors, ``(n_samples, k)``
        int64 for token tasks, ``(n_samples,)`` of ``str`` for sentences.
    y : ndarray of shape (n_samples,) or None
        Integer labels (int64) or targets; None for unlabelled data.
    card : dict
        ``name``, ``kind``, ``description``, ``params`` (every parameter resolved, ``n`` and
        ``seed`` included: ``make(card["name"], **card["params"])`` rebuilds the same arrays),
        ``reference``, ``notes`` and, where known, ``betti`` (prime field as a string -> Betti
        numbers from dimension 0 up), ``betti_by_class`` (class name -> the same) and
        ``classes`` (label -> class name).
    """

    X: np.ndarray
    y: np.ndarray | None
    card: dict

    def __len__(self) -> int:
        return int(self.X.shape[0])

    @property
    def name(self) -> str:
        return self.card["name"]

    @property
    def params(self) -> dict:
        return self.card["params"]

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.card.get("name"), "n_samples": len(self)}
        if self.X.ndim == 2:
            out["n_features"] = int(self.X.shape[1])
        out["dtype"] = str(self.X.dtype)
        if self.y is not None and self.card.get("classes"):
            out["n_classes"] = len(self.card["classes"])
        betti = self.card.get("betti")
        if betti:
            out["betti"] = "; ".join(f"F{p}: {' '.join(map(str, b))}" for p, b in betti.items())
        return out


class Spec:
    """One named data set: parameters with defaults, validation, generation and card facts.

    Subclasses set the class attributes and implement :meth:`check` (validate and convert
    every parameter, returning the resolved dict) and :meth:`generate`.
    """

    name: ClassVar[str]
    kind: ClassVar[str]                       # point_cloud | labelled_point_cloud | toy_task | real
    description: ClassVar[str]
    reference: ClassVar[str | None] = None
    defaults: ClassVar[dict[str, Any]] = {}
    default_n: ClassVar[int | None] = 1000    # sampled sets: n when the caller gives none
    dtype: ClassVar[str] = "float64"

    def check(self, p: dict[str, Any]) -> dict[str, Any]:
        return p

    #: finite sets are generated whole by :meth:`generate_full`; ``n`` draws a subset of them.
    finite: ClassVar[bool] = False

    def size(self, p: dict[str, Any]) -> int | None:
        """Size of a finite set when known without generating it (None: unknown or not finite)."""
        return None

    def check_n(self, p: dict[str, Any], n: int) -> None:
        """Extra checks of ``n`` against the other parameters."""

    def bytes_per_sample(self, p: dict[str, Any]) -> int:
        """Peak bytes per generated sample (the arrays and the generator's temporaries), for the guard."""
        width = p.get("ambient_dim") or p.get("n_features") or p.get("k") or 3
        return 8 * 4 * int(width) + 64

    def generate(self, p: dict[str, Any], n: int, seeds: list) -> tuple[np.ndarray, np.ndarray | None]:
        """``n`` samples (sampled sets)."""
        raise TypeError(f"{type(self).__name__} does not define this method (an abstract hook of its base class)")

    def generate_full(self, p: dict[str, Any], seeds: list) -> tuple[np.ndarray, np.ndarray | None]:
        """The whole set (finite sets)."""
        raise TypeError(f"{type(self).__name__} does not define this method (an abstract hook of its base class)")

    def facts(self, p: dict[str, Any]) -> dict[str, Any]:
        """Card entries that depend on the parameters: betti, betti_by_class, classes, notes..."""
        return {}

    def notes(self, p: dict[str, Any]) -> list[str]:
        return []

    # -- card ------------------------------------------------------------------------------------
    def card(self, p: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "kind": self.kind,
            "description": self.description,
            "dtype": self.dtype,
            "params": dict(p),
        }
        if self.reference:
            out["reference"] = self.reference
        facts = self.facts(p)
        notes = list(self.notes(p)) + list(facts.pop("notes", []))
        out.update(facts)
        out["notes"] = notes
        return copy.deepcopy(out)


_REGISTRY: dict[str, Spec] = {}


def register(cls: type[Spec]) -> type[Spec]:
    _REGISTRY[cls.name] = cls()
    return cls


def _spec(name: Any) -> Spec:
    if not isinstance(name, str) or name not in _REGISTRY:
        raise unknown_name("dataset", str(name), _REGISTRY)
    return _REGISTRY[name]


def names() -> list[str]:
    """Names of every built-in data set, sorted."""
    return sorted(_REGISTRY)


def resolve_seed(seed: Any) -> int:
    """An int that reproduces the data set: ints pass through, None draws fresh entropy once,
    a numpy Generator contributes one draw."""
    if seed is None:
        return int(np.random.SeedSequence().entropy)
    if isinstance(seed, np.random.Generator):
        return int(seed.integers(0, 2**63 - 1))
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        fail("seed", "None, a non-negative int or a numpy Generator", seed)
    return check_int("seed", seed, min_value=0)


def _check_params(spec: Spec, params: dict[str, Any]) -> None:
    valid = ["n", "seed", *spec.defaults]
    for key in params:
        if key not in spec.defaults:
            close = closest_names(key, valid, n=3)
            hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
            raise InvalidParameterError(
                f"{key}: expected a parameter of dataset {spec.name!r} (one of "
                f"{', '.join(valid)}), got an unknown parameter{hint}")


def resolve(name: str, n: Any = None, seed: Any = 0, **params) -> tuple[Spec, dict[str, Any]]:
    """Validate ``name`` and every parameter; returns the spec and the resolved parameters
    (``n`` stays None for a whole finite set of unknown size)."""
    spec = _spec(name)
    _check_params(spec, params)
    p = spec.check({**spec.defaults, **params})
    size = spec.size(p)
    if n is not None:
        n = check_int("n", n, min_value=1)
        if size is not None and n > size:
            _too_many(name, n, size)
    elif size is not None:
        n = size
    elif not spec.finite:
        n = spec.default_n
    if n is not None:
        spec.check_n(p, n)
        from topo_mi._resources import check_allocation

        check_allocation(f"n: the {name!r} data set of {n:,} samples", float(n) * spec.bytes_per_sample(p),
                         hint="pass a smaller n" + (" or coarser parameters" if spec.finite else ""))
    return spec, {"n": n, "seed": resolve_seed(seed), **p}


def _too_many(name: str, n: int, size: int):
    fail("n", f"an integer <= {size} (the size of the whole {name!r} set with these parameters)", n)


def make(name: str, *, n: int | None = None, seed: Any = 0, **params) -> Dataset:
    """Build the named data set.

    Parameters
    ----------
    name : str
        One of :func:`names` (unknown names raise ``UnknownNameError`` listing the closest).
    n : int or None
        Number of samples. For finite sets (Naitzat grids and shells, all pairs of
        ``modular_addition``, ``digits``, ``sentences``) ``n`` draws a random subset without
        replacement, kept in the original order; None takes the whole set. For sampled sets
        None means the data set's default size (see :func:`card`).
    seed : int, numpy Generator or None
        Every random draw derives from it; the card records an int that reproduces the data
        (None draws fresh entropy and records it).
    **params
        The data set's own parameters (see ``card(name)["params"]``); unknown names raise
        ``InvalidParameterError``.

    Returns
    -------
    Dataset
    """
    spec, p = resolve(name, n=n, seed=seed, **params)
    root = np.random.SeedSequence(p["seed"])
    seeds = [np.random.default_rng(s) for s in root.spawn(4)]
    own = {k: v for k, v in p.items() if k not in ("n", "seed")}
    if spec.finite:
        X, y = spec.generate_full(own, seeds)
        total = int(X.shape[0])
        n = total if p["n"] is None else p["n"]
        if n > total:
            _too_many(name, n, total)
        if n < total:
            keep = subset(total, n, seeds[STREAM_SUBSET])
            X, y = X[keep], (None if y is None else y[keep])
        p["n"] = n
    else:
        X, y = spec.generate(own, p["n"], seeds)
    return Dataset(X=X, y=y, card=spec.card(p))


def card(name: str) -> dict[str, Any]:
    """The card of ``name`` at its default parameters (what ``make(name).card`` holds)."""
    spec = _spec(name)
    p = spec.check(dict(spec.defaults))
    n = spec.size(p)
    if n is None and not spec.finite:
        n = spec.default_n
    return spec.card({"n": n, "seed": 0, **p})


# -- helpers shared by the generators ----------------------------------------------------------
def betti_all(numbers: list[int], fields=FIELDS) -> dict[str, list[int]]:
    """The same Betti numbers over every listed prime field (spaces without torsion)."""
    return {f: list(numbers) for f in fields}


def check_bool(name: str, value: Any) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        fail(name, "True or False", value)
    return bool(value)


def check_positive(name: str, value: Any) -> float:
    return check_float(name, value, min_value=0.0, min_inclusive=False)


def random_orthogonal(dim: int, rng: np.random.Generator) -> np.ndarray:
    """A Haar-distributed orthogonal ``(dim, dim)`` matrix (QR of a Gaussian, signs fixed)."""
    Q, R = np.linalg.qr(rng.standard_normal((dim, dim)))
    return Q * np.sign(np.diag(R))


def subset(total: int, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` of ``range(total)`` without replacement, sorted (the whole range when n == total)."""
    if n >= total:
        return np.arange(total)
    return np.sort(rng.choice(total, size=n, replace=False))


def rejection(rng: np.random.Generator, n: int, propose, weight) -> np.ndarray:
    """``n`` draws of ``propose(m)`` (shape (m, ...)) accepted with probability ``weight`` in [0, 1]."""
    parts, got = [], 0
    while got < n:
        m = int(1.5 * (n - got)) + 64
        cand = propose(m)
        keep = rng.random(m) < weight(cand)
        parts.append(cand[keep])
        got += int(keep.sum())
    return np.concatenate(parts)[:n]


def uniform_ball(rng: np.random.Generator, n: int, dim: int, radius: float) -> np.ndarray:
    """``n`` points uniform in the ``dim``-ball of ``radius``."""
    g = rng.standard_normal((n, dim))
    g /= np.linalg.norm(g, axis=1, keepdims=True)
    return g * (radius * rng.random(n) ** (1.0 / dim))[:, None]
