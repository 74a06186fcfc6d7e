"""The canonical persistence result."""
from __future__ import annotations

from typing import Any

import numpy as np

from topo_mi._results import Result, result_dataclass
from topo_mi._validation import check_float, fail
from topo_mi.topology import _vectorize as vec


@result_dataclass
class PersistenceResult(Result):
    """Vietoris–Rips persistence of one point cloud, whatever the backend.

    Attributes
    ----------
    diagrams : list of ndarray of shape (n_k, 2), float64
        ``diagrams[k]`` holds the (birth, death) pairs of H_k, k = 0..max_dim, sorted by
        decreasing persistence (essential classes first). ``death = inf`` for classes that never
        die, or, with a finite ``threshold``, that are still alive at the threshold.
    max_dim : int
    metric : str
    backend : str
        The backend that ran (``"auto"`` resolved).
    coeff : int
        The prime p of the coefficient field Z/p.
    threshold : float
        Largest edge length in the complex (``inf``: the whole filtration).
    n_points : int
        Points in the input.
    landmark_indices : ndarray of int64 or None
        Rows of the input the complex was built on (None: all of them).
    landmark_method : str or None
        ``"maxmin"`` or ``"random"``.
    cover_radius : float
        ``max_x min_l d(x, l)``, in the metric's units (0 without landmarks).
    bottleneck_bound : float
        Guaranteed bound on the bottleneck distance between these diagrams and those of all the
        points: ``2 * cover_radius`` for a metric (Chazal, de Silva & Oudot, Geom. Dedicata 2014);
        see :func:`topo_mi.topology.persistence` for cosine/correlation. 0 without landmarks.
    k : int or None
        Neighbours of the kNN graph (``metric="knn_geodesic"``).
    seed : int or None
    elapsed_s : float
        Wall time of the whole call.
    timings : dict
        Seconds spent in each stage: ``landmarks``, ``distances``, ``estimate``, ``persistence``.
    route : str or None
        With ``max_error``: the certified route that ran (``"exact"``, ``"landmarks"``,
        ``"sparse"``, ``"mst"`` for H0 alone).
    error_bounds : tuple of float or None
        With ``max_error``: the certified bottleneck bound of each dimension (0 for H0 computed
        exactly on all points).
    max_error : float or None
        The absolute target that was asked for (a relative target already multiplied out).
    cut : dict or None
        When H0–H1 of at least 1,000 points were computed exactly through a prefix of the
        filtration (see :mod:`topo_mi.topology._cut`): ``birth_bound`` (no H1 class is born, and
        no finite H0 class dies, after it), ``cut`` (the largest edge of the complex that was built;
        no H1 class was alive there, so the diagrams are those of the whole filtration),
        ``thresholds`` (each run's), ``enclosing_radius``, ``collapse_radius`` (from which on every
        complex is contractible; at most the enclosing radius), and on the certified routes
        ``truncated`` and ``alive`` (a truncated prefix is bounded from the collapse radius).
    """

    diagrams: list
    max_dim: int
    metric: str
    backend: str
    coeff: int
    threshold: float
    n_points: int
    landmark_indices: Any = None
    landmark_method: Any = None
    cover_radius: float = 0.0
    bottleneck_bound: float = 0.0
    k: Any = None
    seed: Any = None
    elapsed_s: float = 0.0
    timings: dict = None
    route: Any = None
    error_bounds: Any = None
    max_error: Any = None
    cut: Any = None

    _plot_function = "topo_mi.plotting.topology:plot_diagram"

    # -- basic views ---------------------------------------------------------------------------
    @property
    def n_landmarks(self) -> int:
        """Points the complex was built on."""
        return self.n_points if self.landmark_indices is None else len(self.landmark_indices)

    def diagram(self, dim: int) -> np.ndarray:
        """The ``(n, 2)`` diagram of H_dim."""
        return vec.as_diagram(self, dim)

    def _check_scale(self, s: np.ndarray, name: str) -> None:
        if np.isfinite(self.threshold) and (s > self.threshold).any():
            fail(name, f"scales <= threshold={self.threshold:g} (the complex was cut there; "
                       "larger scales are unknown)", float(s.max()), raw=True)

    def betti_numbers(self, scale: float) -> np.ndarray:
        """``β_k`` of the complex ``{σ : diam σ <= scale}``, k = 0..max_dim.

        A bar ``[b, d)`` counts at ``scale`` iff ``b <= scale < d``. Returns int64 (max_dim+1,).
        """
        scale = check_float("scale", scale)
        self._check_scale(np.array([scale]), "scale")
        return vec.betti_curve(self, [scale])[:, 0]

    def betti_curve(self, grid) -> np.ndarray:
        """``β_k(s)`` on ``grid``; int64 array of shape (max_dim+1, n_grid)."""
        g = vec._grid(grid)
        self._check_scale(g, "grid")
        return vec.betti_curve(self, g)

    # -- summaries -----------------------------------------------------------------------------
    def total_persistence(self, dim: int | None = None, *, p: float = 1.0):
        """``Σ (d − b)^p`` of the finite bars: a float for one ``dim``, else an array over dims."""
        if dim is None:
            return np.array([vec.total_persistence(d, p=p) for d in self.diagrams])
        return vec.total_persistence(self, dim=dim, p=p)

    def persistence_entropy(self, dim: int | None = None, *, normalize: bool = False):
        """Entropy of the finite bar lengths: a float for one ``dim``, else an array over dims."""
        if dim is None:
            return np.array([vec.persistence_entropy(d, normalize=normalize) for d in self.diagrams])
        return vec.persistence_entropy(self, dim=dim, normalize=normalize)

    def longest_bars(self, n: int = 5, dim: int = 1, *, include_essential: bool = True) -> np.ndarray:
        """The ``n`` longest bars of H_dim, longest first."""
        return vec.longest_bars(self, n, dim=dim, include_essential=include_essential)

    def n_bars_longer_than(self, tau: float, dim: int | None = None):
        """Bars with ``d − b > tau``: an int for one ``dim``, else an array over dims."""
        if dim is None:
            return np.array([vec.n_bars_longer_than(d, tau) for d in self.diagrams])
        return vec.n_bars_longer_than(self, tau, dim=dim)

    def dim_bound(self, dim: int) -> float:
        """The certified bottleneck bound of H_dim (``bottleneck_bound`` without ``max_error``)."""
        if self.error_bounds is not None:
            return float(self.error_bounds[dim])
        return float(self.bottleneck_bound)

    def n_certified(self, dim: int) -> int:
        """Bars of H_dim longer than twice its bound: their exact counterparts are real bars."""
        d = self.diagrams[dim]
        return int(np.count_nonzero(d[:, 1] - d[:, 0] > 2.0 * self.dim_bound(dim)))

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "n_points": self.n_points, "n_landmarks": self.n_landmarks, "max_dim": self.max_dim,
            "metric": self.metric, "backend": self.backend, "coeff": self.coeff,
            "threshold": float(self.threshold), "cover_radius": float(self.cover_radius),
            "bottleneck_bound": float(self.bottleneck_bound),
        }
        for k, d in enumerate(self.diagrams):
            fin = d[np.isfinite(d[:, 1])]
            out[f"n_bars_H{k}"] = int(len(d))
            out[f"n_essential_H{k}"] = int(len(d) - len(fin))
            out[f"longest_finite_H{k}"] = float((fin[:, 1] - fin[:, 0]).max()) if len(fin) else 0.0
            out[f"total_persistence_H{k}"] = vec.total_persistence(d)
            out[f"entropy_H{k}"] = vec.persistence_entropy(d)
            if self.error_bounds is not None or self.bottleneck_bound > 0:
                b = self.dim_bound(k)
                longest = out[f"longest_finite_H{k}"]
                out[f"bound_H{k}"] = b
                out[f"bound_over_longest_H{k}"] = b / longest if longest > 0 else float("inf") if b > 0 else 0.0
                out[f"certified_bars_H{k}"] = self.n_certified(k)
        if self.route is not None:
            out["route"] = self.route
            out["max_error"] = float(self.max_error)
        return out

    # -- exports -------------------------------------------------------------------------------
    def to_gudhi(self) -> list:
        """gudhi's ``SimplexTree.persistence()`` format: ``[(dim, (birth, death)), ...]``,
        highest dimension first, then by decreasing persistence."""
        return [(k, (float(b), float(d))) for k in range(len(self.diagrams) - 1, -1, -1)
                for b, d in self.diagrams[k]]

    def to_ripser(self) -> dict:
        """ripser.py's output dict: ``dgms`` (H0 sorted by death with the infinite bar last, as
        ripser does; float64 values), ``idx_perm`` (landmarks, or all points) and ``r_cover``."""
        dgms = []
        for k, d in enumerate(self.diagrams):
            order = np.lexsort((d[:, 0], d[:, 1])) if k == 0 else np.arange(len(d))
            dgms.append(d[order].copy())
        idx = (np.arange(self.n_points) if self.landmark_indices is None
               else np.asarray(self.landmark_indices))
        return {"dgms": dgms, "idx_perm": idx, "r_cover": float(self.cover_radius)}

    def plot(self, ax=None, *, kind: str = "diagram", **kwargs):
        """``kind``: ``"diagram"`` (default), ``"barcode"`` or ``"betti"`` (Betti curves)."""
        from topo_mi._validation import check_choice
        from topo_mi.plotting import topology as tp

        kind = check_choice("kind", kind, ("diagram", "barcode", "betti"))
        fn = {"diagram": tp.plot_diagram, "barcode": tp.plot_barcode, "betti": tp.plot_betti_curves}[kind]
        return fn(self, ax=ax, **kwargs)
