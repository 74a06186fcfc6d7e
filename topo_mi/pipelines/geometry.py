"""Geometry layer by layer: rank at an error budget, participation ratio, intrinsic dimension
with error bars, and a 2-D embedding with its stress and trustworthiness.

>>> from topo_mi.pipelines import geometry_profile                              # doctest: +SKIP
>>> prof = geometry_profile(acts, eps=0.01, n_boot=50, seed=0)                  # doctest: +SKIP
>>> prof.ids, prof.id_errors                # the "hunchback" of Ansuini et al. (2019)  # doctest: +SKIP
>>> prof.plot()                             # ID across depth                   # doctest: +SKIP
"""
from __future__ import annotations

import zlib
from collections.abc import Mapping
from typing import Any

import numpy as np

from topo_mi._results import Result, result_dataclass
from topo_mi._validation import as_array, check_choice, check_int, fail, unknown_name
from topo_mi.errors import TopoMIError
from topo_mi.geometry._embed import EMBED_METHODS, EmbeddingResult
from topo_mi.geometry._intrinsic import ID_METHODS, IDResult
from topo_mi.geometry._spectral import SPECTRUM_METHODS, RankResult, SpectrumResult, _check_eps
from topo_mi.pipelines._layers import pick_layers


@result_dataclass
class LayerGeometry(Result):
    """The geometry of one layer (an entry of :class:`GeometryProfile`).

    Attributes
    ----------
    layer : str
    n_samples, n_features : int
    spectrum : SpectrumResult
        Singular values, explained variance, participation ratio, effective rank.
    rank : RankResult
        Smallest rank within the profile's ``eps`` and the error reached.
    pca_dimension : int
        Principal components explaining 90 % of the variance.
    intrinsic_dimension : IDResult
        With its error bar (``n_boot`` resamples).
    embedding : EmbeddingResult or None
        With stress, trustworthiness, continuity and k-NN preservation; None when ``embed=None``.
    """

    layer: str
    n_samples: int
    n_features: int
    spectrum: SpectrumResult
    rank: RankResult
    pca_dimension: int
    intrinsic_dimension: IDResult
    embedding: EmbeddingResult | None

    _plot_function = "topo_mi.plotting.geometry:plot_layer"

    def summary(self):
        out = {"layer": self.layer, "rank": self.rank.rank,
               "participation_ratio": self.spectrum.participation_ratio,
               "effective_rank": self.spectrum.effective_rank, "pca_dimension": self.pca_dimension,
               "id": self.intrinsic_dimension.value, "id_error": self.intrinsic_dimension.error}
        if self.embedding is not None:
            out.update(stress=self.embedding.stress, trustworthiness=self.embedding.trustworthiness)
        return out


@result_dataclass
class GeometryProfile(Result):
    """Per-layer geometry of a network's activations (see :func:`geometry_profile`).

    Attributes
    ----------
    layers : list of str
        In the order given (input to output for ``model.hidden_names``).
    results : list of LayerGeometry
    labels : ndarray of shape (n_samples,) or None
        Sample labels (colour the embeddings).
    params : dict
        Every setting of the run.

    ``profile["act2"]`` is that layer's :class:`LayerGeometry`; the array properties
    (``ids``, ``id_errors``, ``ranks`` ...) follow ``layers``; :meth:`table` gives one row per
    layer; ``.plot()`` draws the ID across depth, :meth:`plot_panel` the full per-layer panel.
    """

    layers: list
    results: list
    labels: Any
    params: dict

    _plot_function = "topo_mi.plotting.geometry:plot_id_profile"

    def __getitem__(self, layer: str) -> LayerGeometry:
        for res in self.results:
            if res.layer == layer:
                return res
        raise unknown_name("layer", layer, self.layers)

    def __len__(self) -> int:
        return len(self.results)

    def __iter__(self):
        return iter(self.results)

    @property
    def ids(self) -> np.ndarray:
        return np.array([r.intrinsic_dimension.value for r in self.results])

    @property
    def id_errors(self) -> np.ndarray:
        return np.array([r.intrinsic_dimension.error for r in self.results])

    @property
    def ranks(self) -> np.ndarray:
        return np.array([r.rank.rank for r in self.results], dtype=np.int64)

    @property
    def participation_ratios(self) -> np.ndarray:
        return np.array([r.spectrum.participation_ratio for r in self.results])

    @property
    def effective_ranks(self) -> np.ndarray:
        return np.array([r.spectrum.effective_rank for r in self.results])

    @property
    def pca_dimensions(self) -> np.ndarray:
        return np.array([r.pca_dimension for r in self.results], dtype=np.int64)

    @property
    def stresses(self) -> np.ndarray:
        return np.array([np.nan if r.embedding is None else r.embedding.stress for r in self.results])

    @property
    def trustworthiness(self) -> np.ndarray:
        return np.array([np.nan if r.embedding is None else r.embedding.trustworthiness for r in self.results])

    def table(self) -> list[dict]:
        """One flat dict per layer (layer, rank, participation ratio, ID and error, stress ...)."""
        return [r.summary() for r in self.results]

    def summary(self):
        out: dict[str, Any] = {"n_layers": len(self.results), "eps": self.params.get("eps")}
        if self.results:
            ids = self.ids
            peak = int(np.nanargmax(ids)) if np.isfinite(ids).any() else 0
            out["id_peak_layer"] = self.layers[peak]
            out["id_peak"] = float(ids[peak])
        for r in self.results:
            out[f"rank[{r.layer}]"] = r.rank.rank
            out[f"id[{r.layer}]"] = r.intrinsic_dimension.value
        return out

    def report_section(self) -> dict[str, Any]:
        """Headline (ID peak and rank range), a layers x geometry table, caption of the ID figure."""
        ids, errs = self.ids, self.id_errors
        method = self.params.get("id_method", "twonn")
        eps = self.params.get("eps")
        if np.isfinite(ids).any():
            peak = int(np.nanargmax(ids))
            err = f" ± {errs[peak]:.2g}" if np.isfinite(errs[peak]) else ""
            headline = (f"Intrinsic dimension ({method}) peaks at {self.layers[peak]} ({ids[peak]:.3g}{err}); "
                        f"the rank within ε = {eps:g} goes {', '.join(str(int(r)) for r in self.ranks)} across "
                        f"{len(self.layers)} layers.")
        else:
            headline = f"Intrinsic dimension ({method}) could not be estimated on these layers."
        cols = ["features", "rank@ε", "participation ratio", "PCA dim. (90 %)", "intrinsic dim.", "± error",
                "stress", "trustworthiness"]
        rows = [[int(r.n_features), int(r.rank.rank), float(r.spectrum.participation_ratio), int(r.pca_dimension),
                 float(r.intrinsic_dimension.value), float(r.intrinsic_dimension.error),
                 None if r.embedding is None else float(r.embedding.stress),
                 None if r.embedding is None else float(r.embedding.trustworthiness)] for r in self.results]
        n_boot = self.params.get("n_boot", 0)
        caption = (f"Intrinsic dimension ({method} estimator, in degrees of freedom) of each layer's activations "
                   f"across depth" + (f", error bars: standard deviation over {n_boot} resamples" if n_boot else "")
                   + ". A rise then fall (a 'hunchback') means the network first expands, then compresses the "
                   "data manifold. The table adds the linear dimension (rank within ε of the squared Frobenius "
                   "norm, participation ratio) and the embedding's quality (stress: lower is better; "
                   "trustworthiness: 1 is perfect).")
        return {"headline": headline, "table": {"index": list(self.layers), "columns": cols, "rows": rows},
                "caption": caption}

    def plot(self, ax=None, *, kind: str = "id", layer: str | None = None, **kwargs):
        """``kind``: ``"id"`` (intrinsic dimension across depth, default), ``"spectra"`` (the
        singular value spectra of every layer) or one layer's ``"embedding"`` (``layer=``, default
        the last). Returns the Axes; :meth:`plot_panel` draws all of them as one Figure."""
        from topo_mi._validation import check_choice
        from topo_mi.plotting import geometry as gp

        kind = check_choice("kind", kind, ("id", "spectra", "embedding"))
        if kind == "embedding":
            return gp.plot_layer(self[self.layers[-1] if layer is None else layer], ax=ax, labels=self.labels,
                                 **kwargs)
        if layer is not None:
            fail("layer", "None unless kind='embedding'", layer)
        return (gp.plot_id_profile if kind == "id" else gp.plot_spectra)(self, ax=ax, **kwargs)

    def plot_panel(self, **kwargs):
        """The per-layer panel (spectra, ID across depth, one embedding per layer); a Figure."""
        from topo_mi.plotting.geometry import plot_panel

        return plot_panel(self, **kwargs)


# -- the worker ------------------------------------------------------------------------------------

def _layer_seeds(seed, name: str):
    """(id_seed, embed_seed) for one layer: a function of the seed and the layer name only, so
    choosing other layers or another executor never changes a layer's numbers."""
    if seed is None:
        return None, None
    ss = np.random.SeedSequence([int(seed), zlib.crc32(name.encode("utf-8"))])
    a, b = ss.generate_state(2)
    return int(a), int(b)


def _profile_layer(item) -> LayerGeometry:
    """Module-level worker (picklable for process and Dask executors)."""
    from topo_mi.geometry import embed as _embed, intrinsic_dimension, spectrum

    name, X, cfg, seed = item
    id_seed, emb_seed = _layer_seeds(seed, name)
    try:
        X = np.asarray(X)
        spec = spectrum(X, center=cfg["center"], method=cfg["spectrum_method"], seed=id_seed)
        rank = spec.rank_at(cfg["eps"], relative=cfg["relative"])
        pca_dim = spec.n_components_for(0.9) if spec.center else \
            spectrum(X, center=True, method=cfg["spectrum_method"], seed=id_seed).n_components_for(0.9)
        import warnings

        from topo_mi.geometry._intrinsic import DuplicatePointsWarning

        with warnings.catch_warnings(record=True) as caught:  # once per layer, naming it
            warnings.simplefilter("always", DuplicatePointsWarning)
            idr = intrinsic_dimension(X, method=cfg["id_method"], n_boot=cfg["n_boot"], seed=id_seed,
                                      **cfg["id_kwargs"])
        dup = [w for w in caught if issubclass(w.category, DuplicatePointsWarning)]
        for w in caught:
            if w not in dup:
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
        if dup:
            warnings.warn(f"geometry_profile: layer {name!r}: {dup[0].message}"
                          + (f" (and {len(dup) - 1} resamples)" if len(dup) > 1 else ""),
                          DuplicatePointsWarning, stacklevel=2)
        emb = None
        if cfg["embed"] is not None:
            emb = _embed(X, method=cfg["embed"], n_components=cfg["n_components"], seed=emb_seed,
                         quality_k=cfg["quality_k"], quality_points=cfg["quality_points"], **cfg["embed_kwargs"])
    except TopoMIError as exc:
        msg = exc.args[0] if exc.args else str(exc)
        try:
            new = type(exc)(f"layer {name!r}: {msg}")
        except Exception:  # pragma: no cover - an error type with another constructor
            raise exc
        raise new from exc
    return LayerGeometry(layer=name, n_samples=int(X.shape[0]), n_features=int(X.shape[1]), spectrum=spec,
                         rank=rank, pca_dimension=int(pca_dim), intrinsic_dimension=idr, embedding=emb)


# -- the pipeline ----------------------------------------------------------------------------------

def geometry_profile(acts, *, layers=None, eps: float = 0.01, relative: bool = True, center: bool = True,
                     id_method: str = "twonn", n_boot: int = 50, embed: str | None = "umap",
                     n_components: int = 2, embed_kwargs: dict | None = None, id_kwargs: dict | None = None,
                     quality_k: int = 5, quality_points: int | None = 10_000, spectrum_method: str = "auto",
                     labels=None, seed=None, executor=None, progress: bool = True) -> GeometryProfile:
    """Rank@eps, participation ratio, intrinsic dimension and an embedding for every layer.

    Parameters
    ----------
    acts : Activations or mapping of str to array of shape (n_samples, n_features)
    layers : list of str, optional
        Default: every layer, in order.
    eps : float, default 0.01
        Error budget of :func:`topo_mi.geometry.rank_at` (relative: keep 99 % of ``||A||_F^2``).
    relative, center : bool, default True
        As in :func:`topo_mi.geometry.rank_at` / :func:`~topo_mi.geometry.spectrum`.
    id_method : {"twonn", "mle", "pca"}, default "twonn"
    n_boot : int, default 50
        Resamples (90 % of the points each) for the ID error bars, as in Ansuini et al. (2019).
    embed : {"umap", "isomap", "mds", "pca", "spectral", "tsne"} or None, default "umap"
        None skips the embeddings.
    n_components : int, default 2
    embed_kwargs, id_kwargs : dict, optional
        Extra keywords for :func:`topo_mi.geometry.embed` / :func:`~topo_mi.geometry.intrinsic_dimension`.
    quality_k, quality_points
        As in :func:`topo_mi.geometry.embed`.
    spectrum_method : {"auto", "exact", "randomized"}, default "auto"
    labels : array of shape (n_samples,), optional
        Default: ``acts.labels`` when there are any.
    seed : int or None
        Every random choice of a layer derives from ``seed`` and the layer's name.
    executor : None, "serial", "process", "dask" or an Executor
        Layers are independent: they go through ``topo_mi.parallel.get_executor(executor).map``.
    progress : bool, default True

    Returns
    -------
    GeometryProfile
    """
    if not isinstance(acts, Mapping):
        fail("acts", "an Activations object or a mapping of layer name -> (n_samples, n_features) array", acts)
    names = pick_layers(acts, layers, empty="at least one layer name", distinct=True)
    eps, relative = _check_eps(eps, relative)
    if not isinstance(center, (bool, np.bool_)):
        fail("center", "True or False", center)
    id_method = check_choice("id_method", id_method, ID_METHODS)
    n_boot = check_int("n_boot", n_boot, min_value=0)
    if embed is not None:
        embed = check_choice("embed", embed, EMBED_METHODS)
    n_components = check_int("n_components", n_components, min_value=1)
    spectrum_method = check_choice("spectrum_method", spectrum_method, SPECTRUM_METHODS)
    for nm, d in (("embed_kwargs", embed_kwargs), ("id_kwargs", id_kwargs)):
        if d is not None and not isinstance(d, Mapping):
            fail(nm, "a dict of keyword arguments", d)
    id_kwargs = dict(id_kwargs or {})
    for bad in ("method", "n_boot", "seed"):
        if bad in id_kwargs:
            fail("id_kwargs", f"no {bad!r} (use the profile's own argument)", sorted(id_kwargs))
    embed_kwargs = dict(embed_kwargs or {})
    for bad in ("method", "n_components", "seed", "quality_k", "quality_points"):
        if bad in embed_kwargs:
            fail("embed_kwargs", f"no {bad!r} (use the profile's own argument)", sorted(embed_kwargs))
    if seed is not None:
        seed = check_int("seed", seed, min_value=0)
    arrays = {name: acts[name] for name in names}
    n = {as_array(a).shape[0] if hasattr(a, "shape") else len(a) for a in arrays.values()}
    if len(n) != 1:
        fail("acts", "layers with the same number of samples", sorted(n))
    n_samples = n.pop()
    if labels is None:
        labels = getattr(acts, "labels", None)
    if labels is not None:
        labels = np.asarray(as_array(labels, "labels"))
        if labels.shape[:1] != (n_samples,) or labels.ndim != 1:
            fail("labels", f"an array of shape ({n_samples},)", labels)
        if labels.dtype == object:
            labels = labels.astype(str)
    cfg = {"eps": eps, "relative": relative, "center": bool(center), "id_method": id_method, "n_boot": n_boot,
           "embed": embed, "n_components": n_components, "embed_kwargs": embed_kwargs, "id_kwargs": id_kwargs,
           "quality_k": quality_k, "quality_points": quality_points, "spectrum_method": spectrum_method}
    from topo_mi.parallel import get_executor

    items = [(name, arrays[name], cfg, seed) for name in names]
    results = get_executor(executor).map(_profile_layer, items, desc="geometry", progress=progress)
    params = {k: v for k, v in cfg.items() if k not in ("embed_kwargs", "id_kwargs")}
    params.update(seed=seed, embed_kwargs=_plain_kwargs(embed_kwargs), id_kwargs=_plain_kwargs(id_kwargs),
                  n_samples=int(n_samples))
    return GeometryProfile(layers=list(names), results=list(results), labels=labels, params=params)


def _plain_kwargs(kw: dict) -> dict:
    from topo_mi.geometry._embed import _jsonable

    return _jsonable(kw)


__all__ = ["geometry_profile", "GeometryProfile", "LayerGeometry"]
