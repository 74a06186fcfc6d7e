"""Point clouds with known topology: circle, sphere, torus, Klein bottle, figure eight, clusters,
linked rings.

Each is sampled uniformly (with respect to its area or length) on a canonical embedding, then
optionally zero-padded into R^D and turned by a seeded Haar-random rotation (``ambient_dim``),
then perturbed by isotropic Gaussian noise of std ``noise`` in the ambient space.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from topo_mi._validation import check_float, check_int, fail
from topo_mi.datasets._base import (
    STREAM_NOISE, STREAM_ROTATION, STREAM_SAMPLE, Spec, betti_all, check_positive,
    random_orthogonal, register, rejection, uniform_ball,
)

_TWO_PI = 2.0 * np.pi
_NOISE_NOTE = ("betti: of the noise-free space; Gaussian noise of std sigma leaves it readable from "
               "features that persist well beyond ~sigma")


class PointCloud(Spec):
    kind = "point_cloud"
    default_n = 1000
    intrinsic_dim: int = 1
    betti_numbers: list[int] = []

    def embedding_dim(self, p: dict[str, Any]) -> int:
        raise TypeError(f"{type(self).__name__} does not define this method (an abstract hook of its base class)")

    def check_geometry(self, p: dict[str, Any]) -> dict[str, Any]:
        return p

    def check(self, p):
        p = self.check_geometry(dict(p))
        p["noise"] = check_float("noise", p["noise"], min_value=0.0)
        e = self.embedding_dim(p)
        if p["ambient_dim"] is not None:
            p["ambient_dim"] = check_int("ambient_dim", p["ambient_dim"], min_value=e)
        return p

    def sample(self, p, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray | None]:
        raise TypeError(f"{type(self).__name__} does not define this method (an abstract hook of its base class)")

    def generate(self, p, n, seeds):
        X, y = self.sample(p, n, seeds[STREAM_SAMPLE])
        X = np.ascontiguousarray(X, dtype=np.float64)
        D = p["ambient_dim"]
        if D is not None:
            padded = np.zeros((n, D))
            padded[:, : X.shape[1]] = X
            X = padded @ random_orthogonal(D, seeds[STREAM_ROTATION])
        if p["noise"] > 0:
            X = X + seeds[STREAM_NOISE].normal(scale=p["noise"], size=X.shape)
        return X, y

    def betti(self, p) -> dict[str, list[int]]:
        return betti_all(self.betti_numbers)

    def facts(self, p):
        return {"embedding_dim": self.embedding_dim(p), "intrinsic_dim": self.intrinsic_dim,
                "betti": self.betti(p)}

    def notes(self, p):
        return [
            "ambient_dim unset: the canonical embedding, unrotated; an int D: zero-padded into R^D "
            "and turned by a Haar-random rotation drawn from the seed (the clean sample is the same "
            "for every D)",
            _NOISE_NOTE,
        ]


def _common(**geometry) -> dict[str, Any]:
    return {**geometry, "noise": 0.0, "ambient_dim": None}


@register
class Circle(PointCloud):
    name = "circle"
    description = "The circle S^1 of the given radius in R^2, uniform in angle."
    defaults = _common(radius=1.0)
    betti_numbers = [1, 1]

    def embedding_dim(self, p):
        return 2

    def check_geometry(self, p):
        p["radius"] = check_positive("radius", p["radius"])
        return p

    def sample(self, p, n, rng):
        t = _TWO_PI * rng.random(n)
        return p["radius"] * np.column_stack([np.cos(t), np.sin(t)]), None


@register
class Sphere(PointCloud):
    name = "sphere"
    description = ("The round sphere S^dim (default S^2) of the given radius in R^(dim+1), "
                   "uniform (normalised Gaussian vectors).")
    defaults = _common(radius=1.0, dim=2)

    def embedding_dim(self, p):
        return p["dim"] + 1

    def check_geometry(self, p):
        p["radius"] = check_positive("radius", p["radius"])
        p["dim"] = check_int("dim", p["dim"], min_value=1)
        return p

    def betti(self, p):
        return betti_all([1] + [0] * (p["dim"] - 1) + [1])

    def facts(self, p):
        return {**super().facts(p), "intrinsic_dim": p["dim"]}

    def sample(self, p, n, rng):
        g = rng.standard_normal((n, p["dim"] + 1))
        norms = np.linalg.norm(g, axis=1, keepdims=True)
        while (norms == 0).any():  # probability zero; keeps the division exact
            bad = norms[:, 0] == 0
            g[bad] = rng.standard_normal((int(bad.sum()), g.shape[1]))
            norms = np.linalg.norm(g, axis=1, keepdims=True)
        return p["radius"] * (g / norms), None


def _check_R_r(p):
    p["R"] = check_positive("R", p["R"])
    p["r"] = check_positive("r", p["r"])
    if not p["r"] < p["R"]:
        fail("r", f"a number < R = {p['R']:g} (otherwise the surface meets itself)", p["r"])
    return p


def torus_embedding(u: np.ndarray, v: np.ndarray, R: float, r: float) -> np.ndarray:
    """The ring torus in R^3: ``u`` around the central axis, ``v`` around the tube."""
    w = R + r * np.cos(v)
    return np.column_stack([w * np.cos(u), w * np.sin(u), r * np.sin(v)])


def klein_embedding(u: np.ndarray, v: np.ndarray, R: float, r: float) -> np.ndarray:
    """The Klein bottle in R^4 (the "flat" tube embedding, injective for R > r > 0).

    ``((R + r cos v) cos u, (R + r cos v) sin u, r sin v cos(u/2), r sin v sin(u/2))`` on
    ``[0, 2 pi)^2``; ``(u + 2 pi, v)`` and ``(u, -v)`` give the same point, which is the Klein
    bottle's identification.
    """
    w = R + r * np.cos(v)
    s = r * np.sin(v)
    return np.column_stack([w * np.cos(u), w * np.sin(u), s * np.cos(u / 2), s * np.sin(u / 2)])


def _uv(rng, m):
    return _TWO_PI * rng.random((m, 2))


@register
class Torus(PointCloud):
    name = "torus"
    description = ("The ring torus in R^3 with central radius R and tube radius r, uniform with "
                   "respect to area (rejection sampling on the tube angle).")
    defaults = _common(R=2.0, r=1.0)
    intrinsic_dim = 2
    betti_numbers = [1, 2, 1]

    def embedding_dim(self, p):
        return 3

    def check_geometry(self, p):
        return _check_R_r(p)

    def sample(self, p, n, rng):
        R, r = p["R"], p["r"]
        # area element r (R + r cos v) du dv
        uv = rejection(rng, n, lambda m: _uv(rng, m),
                       lambda c: (R + r * np.cos(c[:, 1])) / (R + r))
        return torus_embedding(uv[:, 0], uv[:, 1], R, r), None


@register
class KleinBottle(PointCloud):
    name = "klein_bottle"
    description = ("The Klein bottle embedded in R^4 as ((R + r cos v) cos u, (R + r cos v) sin u, "
                   "r sin v cos(u/2), r sin v sin(u/2)), uniform with respect to area (rejection "
                   "sampling on v).")
    defaults = _common(R=2.0, r=1.0)
    intrinsic_dim = 2

    def embedding_dim(self, p):
        return 4

    def check_geometry(self, p):
        return _check_R_r(p)

    def betti(self, p):
        return {"2": [1, 2, 1], "3": [1, 1, 0]}

    def notes(self, p):
        return super().notes(p) + [
            "non-orientable: H_1 = Z + Z/2, so the Betti numbers depend on the field "
            "(F2: 1, 2, 1; any odd prime or Q: 1, 1, 0)"]

    def sample(self, p, n, rng):
        R, r = p["R"], p["r"]
        # area element r sqrt((R + r cos v)^2 + (r sin v)^2 / 4) du dv, largest at v = 0
        def weight(c):
            v = c[:, 1]
            return np.sqrt((R + r * np.cos(v)) ** 2 + (0.5 * r * np.sin(v)) ** 2) / (R + r)

        uv = rejection(rng, n, lambda m: _uv(rng, m), weight)
        return klein_embedding(uv[:, 0], uv[:, 1], R, r), None


def lemniscate(t: np.ndarray, a: float) -> np.ndarray:
    """Bernoulli's lemniscate with half-width ``a``; it crosses itself at the origin at right angles."""
    d = 1.0 + np.sin(t) ** 2
    return np.column_stack([a * np.cos(t) / d, a * np.sin(t) * np.cos(t) / d])


@register
class FigureEight(PointCloud):
    name = "figure_eight"
    description = ("The figure eight (wedge of two circles) as Bernoulli's lemniscate in R^2 with "
                   "half-width `radius`, uniform in arc length (rejection sampling).")
    defaults = _common(radius=1.0)
    betti_numbers = [1, 2]

    def embedding_dim(self, p):
        return 2

    def check_geometry(self, p):
        p["radius"] = check_positive("radius", p["radius"])
        return p

    def sample(self, p, n, rng):
        # speed |c'(t)| = a / sqrt(1 + sin^2 t), largest at t = 0
        t = rejection(rng, n, lambda m: _TWO_PI * rng.random(m),
                      lambda t: 1.0 / np.sqrt(1.0 + np.sin(t) ** 2))
        return lemniscate(t, p["radius"]), None


def cluster_centres(k: int, dim: int, separation: float) -> np.ndarray:
    """``k`` centres ``separation`` apart: evenly on a circle (dim >= 2) or on a line (dim = 1)."""
    centres = np.zeros((k, dim))
    if k == 1:
        return centres
    if dim == 1:
        centres[:, 0] = separation * (np.arange(k) - (k - 1) / 2)
        return centres
    rho = separation / (2 * np.sin(np.pi / k))
    angle = _TWO_PI * np.arange(k) / k
    centres[:, 0], centres[:, 1] = rho * np.cos(angle), rho * np.sin(angle)
    return centres


@register
class Clusters(PointCloud):
    name = "clusters"
    description = ("n_clusters solid balls of radius cluster_radius in R^dim (uniform inside), "
                   "centres evenly on a circle with neighbouring centres `separation` apart; "
                   "labels are the cluster indices.")
    kind = "labelled_point_cloud"
    defaults = _common(n_clusters=3, dim=2, cluster_radius=1.0, separation=5.0)

    def embedding_dim(self, p):
        return p["dim"]

    def check_geometry(self, p):
        p["n_clusters"] = check_int("n_clusters", p["n_clusters"], min_value=1)
        p["dim"] = check_int("dim", p["dim"], min_value=1)
        p["cluster_radius"] = check_positive("cluster_radius", p["cluster_radius"])
        p["separation"] = check_positive("separation", p["separation"])
        if p["n_clusters"] > 1 and not p["separation"] > 2 * p["cluster_radius"]:
            fail("separation", f"a number > 2 * cluster_radius = {2 * p['cluster_radius']:g} "
                 "(the balls would touch)", p["separation"])
        return p

    def check_n(self, p, n):
        if n < p["n_clusters"]:
            fail("n", f"an integer >= n_clusters = {p['n_clusters']} (one point per cluster at least)", n)

    def facts(self, p):
        k = p["n_clusters"]
        names = [f"cluster_{i}" for i in range(k)]
        return {"embedding_dim": p["dim"], "intrinsic_dim": p["dim"], "betti": betti_all([k, 0]),
                "classes": dict(enumerate(names)),
                "betti_by_class": {nm: betti_all([1, 0]) for nm in names}}

    def notes(self, p):
        return super().notes(p) + ["rows are grouped by cluster; sizes differ by at most one"]

    def sample(self, p, n, rng):
        k = p["n_clusters"]
        sizes = np.full(k, n // k)
        sizes[: n % k] += 1
        y = np.repeat(np.arange(k, dtype=np.int64), sizes)
        centres = cluster_centres(k, p["dim"], p["separation"])
        return centres[y] + uniform_ball(rng, n, p["dim"], p["cluster_radius"]), y


@register
class LinkedRings(PointCloud):
    name = "linked_rings"
    description = ("Two linked circles of the given radius in R^3 (a Hopf link): ring 0 in the "
                   "xy-plane about the origin, ring 1 in the xz-plane about (radius, 0, 0); each "
                   "passes through the other's centre and they stay `radius` apart. Labels are "
                   "the ring indices.")
    kind = "labelled_point_cloud"
    defaults = _common(radius=1.0)

    def embedding_dim(self, p):
        return 3

    def check_geometry(self, p):
        p["radius"] = check_positive("radius", p["radius"])
        return p

    def check_n(self, p, n):
        if n < 2:
            fail("n", "an integer >= 2 (one point per ring at least)", n)

    def facts(self, p):
        return {"embedding_dim": 3, "intrinsic_dim": 1, "betti": betti_all([2, 2]),
                "classes": {0: "ring_0", 1: "ring_1"},
                "betti_by_class": {"ring_0": betti_all([1, 1]), "ring_1": betti_all([1, 1])}}

    def notes(self, p):
        return super().notes(p) + [
            "the union's homology does not see the linking (two disjoint circles: 2, 2); rows are "
            "grouped by ring, ring 0 first, sizes differ by at most one"]

    def sample(self, p, n, rng):
        a = p["radius"]
        n0 = (n + 1) // 2
        t = _TWO_PI * rng.random(n)
        c, s = a * np.cos(t), a * np.sin(t)
        X = np.empty((n, 3))
        X[:n0] = np.column_stack([c[:n0], s[:n0], np.zeros(n0)])
        X[n0:] = np.column_stack([a + c[n0:], np.zeros(n - n0), s[n0:]])
        y = np.zeros(n, dtype=np.int64)
        y[n0:] = 1
        return X, y
