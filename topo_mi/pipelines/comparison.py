"""Compare the representations of two (or N) models layer by layer, with statistics.

:func:`compare` gives, for every method, the layer x layer matrix of similarity (or distance)
between two activation sets of the same inputs, with permutation-test p-values (the sample
correspondence is broken by permuting the rows of the second representation), multiple-comparison
corrected p-values, jackknife confidence intervals (delete-a-group, the same rows left out of both
models; see :func:`topo_mi.compare.jackknife_interval` for why not the bootstrap), effect sizes against
the permutation null, and the best-matching layer of each layer. :func:`compare_many` runs it on
every pair of N models through an executor and summarises each pair by one number per method.

Samples are matched by ``sample_ids``, never silently by position: different id sets or orders
raise, unless ``align=True`` (then both are restricted to their common ids, in the first
object's order, and ``result.alignment`` reports what was dropped). Plain mappings of arrays have
no ids: their rows are identified by position (``0..n-1``).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np

from topo_mi._results import Result, result_dataclass
from topo_mi._validation import check_choice, check_float, check_int, check_point_cloud, fail, unknown_name
from topo_mi.errors import InvalidParameterError


# ---------------------------------------------------------------------------------------------
# results
# ---------------------------------------------------------------------------------------------
@result_dataclass
class ComparisonResult(Result):
    """Layer x layer comparison of two representations (one matrix per method).

    Attributes
    ----------
    names : tuple of 2 str
        Names of the two models.
    layers_a, layers_b : list of str
        Rows and columns of every matrix.
    methods : list of str
    values : dict method -> ndarray (La, Lb)
        The index between layer ``layers_a[i]`` and ``layers_b[j]``.
    higher_is_similar : dict method -> bool
        False for distances (procrustes, diagram, rtd).
    p_values, p_adjusted : dict method -> ndarray (La, Lb)
        One-sided permutation p-values and their correction over the La·Lb tests of the method
        (NaN when ``n_perm`` is 0 for the method, or the method ignores the correspondence).
    significant : dict method -> bool ndarray (La, Lb)
        ``p_adjusted < alpha``.
    null_mean, null_std : dict method -> ndarray (La, Lb)
        Mean and standard deviation of the permutation null.
    effect_size : dict method -> ndarray (La, Lb)
        ``(value - null_mean) / null_std``, sign flipped for distances: positive means more
        similar than chance.
    ci_low, ci_high : dict method -> ndarray (La, Lb)
        Interval at ``ci_level``: the estimate ± z · (delete-a-group jackknife standard error over
        ``n_boot`` groups of rows); always contains the estimate (NaN when ``n_boot`` < 2).
    best_match_a : dict method -> list of str
        For each layer of the first model, the most similar layer of the second.
    best_match_b : dict method -> list of str
        For each layer of the second model, the most similar layer of the first.
    n_perm, n_boot : dict method -> int
    correction : str
    alpha, ci_level : float
    seed : int
        The seed the permutations and resamples were drawn from.
    n_samples : int
        Samples compared (after alignment).
    alignment : dict
        ``aligned`` (bool), ``n_common``, ``dropped_a``, ``dropped_b``, ``reordered``,
        ``examples_dropped_a``/``_b`` (up to 10 ids each, as strings).
    options : dict method -> dict
        The options each method ran with.
    notes : dict method -> str
        E.g. the CKA engine's route or why a method has no p-values.
    """

    names: tuple
    layers_a: list
    layers_b: list
    methods: list
    values: dict
    higher_is_similar: dict
    p_values: dict
    p_adjusted: dict
    significant: dict
    null_mean: dict
    null_std: dict
    effect_size: dict
    ci_low: dict
    ci_high: dict
    best_match_a: dict
    best_match_b: dict
    n_perm: dict
    n_boot: dict
    correction: str
    alpha: float
    ci_level: float
    seed: int
    n_samples: int
    alignment: dict
    options: dict
    notes: dict

    _plot_function: ClassVar[str] = "topo_mi.plotting.compare:plot_comparison"

    def _method(self, method: str | None) -> str:
        if method is None:
            return self.methods[0]
        if method not in self.values:
            raise unknown_name("method", method, self.values)
        return method

    def matrix(self, method: str | None = None) -> np.ndarray:
        """The (La, Lb) matrix of ``method`` (default: the first method)."""
        return self.values[self._method(method)]

    def best_matches(self, method: str | None = None) -> dict[str, str]:
        """``{layer of a: most similar layer of b}``."""
        m = self._method(method)
        return dict(zip(self.layers_a, self.best_match_a[m]))

    def matching_accuracy(self, method: str | None = None) -> float:
        """Share of the layers of a whose best match in b has the same name (NaN if none is shared)."""
        m = self._method(method)
        shared = [(a, b) for a, b in zip(self.layers_a, self.best_match_a[m]) if a in self.layers_b]
        if not shared:
            return float("nan")
        return float(np.mean([a == b for a, b in shared]))

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {"n_samples": self.n_samples, "layers": f"{len(self.layers_a)}x{len(self.layers_b)}"}
        for m in self.methods:
            v = self.values[m]
            out[f"{m}_mean"] = float(np.nanmean(v))
            acc = self.matching_accuracy(m)
            if not np.isnan(acc):
                out[f"{m}_matching"] = acc
            if self.n_perm.get(m, 0) and not np.all(np.isnan(self.p_adjusted[m])):
                out[f"{m}_significant"] = int(np.sum(self.significant[m]))
        if self.alignment.get("aligned"):
            out["dropped"] = int(self.alignment["dropped_a"] + self.alignment["dropped_b"])
        return out

    def report_section(self) -> dict[str, Any]:
        """Headline (mean similarity, significant pairs), a layers x (best match, value, p) table, caption."""
        m = self.methods[0]
        tested = ~np.isnan(self.p_adjusted[m])
        # one model's layers with each other: the diagonal (a layer with itself) says nothing
        within = self.layers_a == self.layers_b and any("diagonal" in n for n in self.notes.values())
        off = ~np.eye(len(self.layers_a), dtype=bool) if within else np.ones(self.values[m].shape, bool)
        words = []
        for mm in self.methods:
            acc = float("nan") if within else self.matching_accuracy(mm)
            part = f"mean {mm} {np.nanmean(self.values[mm][off]):.3g}" + (" between different layers" if within else "")
            if not np.isnan(acc):
                part += f", {100 * acc:.0f} % of layers best match their namesake"
            if tested.any() and self.n_perm.get(mm):
                part += (f", {int(np.sum(self.significant[mm]))} of {int(np.sum(~np.isnan(self.p_adjusted[mm])))} "
                         f"pairs significant ({self.correction}, α = {self.alpha:g})")
            words.append(part)
        who = (f"The layers of {self.names[0]} compared with each other" if within
               else f"{self.names[0]} vs {self.names[1]}")
        headline = f"{who} on {self.n_samples} samples: " + "; ".join(words) + "."
        cols = []
        rows = [[] for _ in self.layers_a]
        for mm in self.methods:
            cols += [f"{mm} best match" + (" (another layer)" if within else ""), f"{mm} value"]
            if not np.all(np.isnan(self.p_adjusted[mm])):
                cols.append(f"{mm} p (corrected)")
            if not np.all(np.isnan(self.ci_low[mm])):
                cols.append(f"{mm} {int(round(100 * self.ci_level))} % interval")
            score = np.where(off, self.values[mm] if self.higher_is_similar[mm] else -self.values[mm], np.nan)
            for i in range(len(self.layers_a)):
                j = int(np.argmax(np.where(np.isnan(score[i]), -np.inf, score[i])))
                rows[i] += [self.layers_b[j], float(self.values[mm][i, j])]
                if not np.all(np.isnan(self.p_adjusted[mm])):
                    p = self.p_adjusted[mm][i, j]
                    rows[i].append(None if np.isnan(p) else float(p))
                if not np.all(np.isnan(self.ci_low[mm])):
                    rows[i].append(f"[{self.ci_low[mm][i, j]:.3g}, {self.ci_high[mm][i, j]:.3g}]")
        kind = "similarity" if self.higher_is_similar[m] else "distance"
        caption = (f"{m} {kind} between every layer of {self.names[0]} (rows) and {self.names[1]} (columns); "
                   + ("stars mark pairs whose permutation p-value, corrected by "
                      f"{self.correction} over the tested pairs, is below {self.alpha:g} ({self.n_perm.get(m, 0)} "
                      "permutations). " if self.n_perm.get(m) else "no permutation test. ")
                   + ("The diagonal (a layer with itself) is not tested. " if "diagonal" in self.notes.get(m, "")
                      else "")
                   + "The table lists each row layer's best match.")
        return {"headline": headline, "table": {"index": list(self.layers_a), "columns": cols, "rows": rows},
                "caption": caption}

    def plot_matching(self, ax=None, *, method: str | None = None, **kwargs):
        """Layer-matching plot: each layer of a joined to its best match in b."""
        from topo_mi.plotting.compare import plot_layer_matching

        return plot_layer_matching(self, ax=ax, method=method, **kwargs)


@result_dataclass
class ManyComparisonResult(Result):
    """Comparison of N models: one N x N matrix per method and the pairwise results.

    Attributes
    ----------
    names : list of str
    layers : list of str
        The layers compared (present in every model).
    methods : list of str
    similarity : dict method -> ndarray (N, N)
        Mean over ``layers`` of the index between the same-named layers of two models (the
        diagonal of their layer x layer matrix); the diagonal holds the method's value for
        identical inputs (1 for similarities, 0 for distances).
    matching : dict method -> ndarray (N, N)
        Share of layers whose best match in the other model is the same-named layer (row model's
        layers matched into the column model); 1 on the diagonal.
    higher_is_similar : dict method -> bool
    pairs : list of ComparisonResult
        One per pair ``pair_index[k] = (i, j)``, i < j.
    pair_index : list of tuple
    seed : int
    """

    names: list
    layers: list
    methods: list
    similarity: dict
    matching: dict
    higher_is_similar: dict
    pairs: list
    pair_index: list
    seed: int

    _plot_function: ClassVar[str] = "topo_mi.plotting.compare:plot_dendrogram"

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {"n_models": len(self.names), "layers": len(self.layers)}
        off = ~np.eye(len(self.names), dtype=bool)
        for m in self.methods:
            if off.any():
                out[f"{m}_mean"] = float(np.mean(self.similarity[m][off]))
                out[f"{m}_matching"] = float(np.mean(self.matching[m][off]))
        return out

    def report_section(self) -> dict[str, Any]:
        """Headline (mean similarity across models), a models x models table of the first method, caption."""
        m = self.methods[0]
        N = len(self.names)
        off = ~np.eye(N, dtype=bool)
        S = self.similarity[m]
        headline = (f"Across {N} models, same-named layers have mean {m} {np.mean(S[off]):.3g} "
                    f"(range {np.min(S[off]):.3g}–{np.max(S[off]):.3g}); "
                    f"{100 * np.mean(self.matching[m][off]):.0f} % of layers best match their namesake.")
        table = {"index": list(self.names), "columns": list(self.names),
                 "rows": [[float(x) for x in row] for row in S]}
        caption = (f"Models clustered by their {m} (average linkage on 1 − similarity): the mean over the "
                   f"{len(self.layers)} shared layers of the {m} between same-named layers. The table is that "
                   "N x N matrix.")
        return {"headline": headline, "table": table, "caption": caption}

    def pair(self, a: str | int, b: str | int) -> ComparisonResult:
        """The :class:`ComparisonResult` of models ``a`` and ``b`` (names or indices)."""
        ia, ib = (self._index(x) for x in (a, b))
        for k, (i, j) in enumerate(self.pair_index):
            if (i, j) == (ia, ib) or (i, j) == (ib, ia):
                return self.pairs[k]
        raise InvalidParameterError(f"b: expected a model other than a, got {b!r}")

    def _index(self, x) -> int:
        if isinstance(x, (int, np.integer)) and 0 <= int(x) < len(self.names):
            return int(x)
        if x in self.names:
            return self.names.index(x)
        raise unknown_name("model", str(x), self.names)

    def plot_matrix(self, ax=None, *, method: str | None = None, **kwargs):
        """Heatmap of the N x N matrix of ``method``."""
        from topo_mi.plotting.compare import plot_model_matrix

        return plot_model_matrix(self, ax=ax, method=method, **kwargs)


# ---------------------------------------------------------------------------------------------
# inputs and alignment
# ---------------------------------------------------------------------------------------------
class _Side(Mapping):
    """Plain, picklable stand-in for an activation set: layers, ids, whether ids are real."""

    def __init__(self, data: dict, ids: np.ndarray, has_ids: bool):
        self._data = data
        self.sample_ids = ids
        self.has_ids = has_ids

    def __getitem__(self, k):
        return self._data[k]

    def __iter__(self):
        return iter(self._data)

    def __len__(self):
        return len(self._data)


def _as_side(acts: Any, name: str) -> _Side:
    if isinstance(acts, _Side):
        return acts
    if not isinstance(acts, Mapping) or len(acts) == 0:
        fail(name, "an Activations object or a non-empty mapping of layer name -> (n_samples, n_features) array",
             acts)
    ids = getattr(acts, "sample_ids", None)
    n = None
    data = {}
    for layer in acts:
        arr = acts[layer]
        shape = getattr(arr, "shape", None)
        if shape is None or len(shape) != 2:
            fail(f"{name}[{layer!r}]", "a 2-D array (n_samples, n_features)", arr)
        if n is None:
            n = shape[0]
        elif shape[0] != n:
            fail(f"{name}[{layer!r}]", f"{n} rows like the other layers", f"{shape[0]} rows", raw=True)
        data[str(layer)] = arr
    if ids is None:
        return _Side(data, np.arange(n), has_ids=False)
    ids = np.asarray(ids)
    if ids.shape != (n,):
        fail(f"{name}.sample_ids", f"an array of shape ({n},)", f"shape {ids.shape}", raw=True)
    return _Side(data, ids, has_ids=True)


def _ids_comparable(a: np.ndarray, b: np.ndarray) -> bool:
    kind = lambda x: "num" if x.dtype.kind in "biuf" else ("str" if x.dtype.kind in "USO" else x.dtype.kind)
    return kind(a) == kind(b)


def _examples(ids: np.ndarray, limit: int = 10) -> list[str]:
    return [str(x) for x in ids[:limit]]


def align_samples(ids_a, ids_b, *, align: bool = False) -> tuple[np.ndarray, np.ndarray, dict]:
    """Row indices that put two id arrays in correspondence, and a report.

    Equal ids in the same order need nothing. Otherwise, with ``align=False`` an
    :class:`InvalidParameterError` says how they differ; with ``align=True`` both are restricted
    to the common ids, in the order of ``ids_a``.

    Returns
    -------
    idx_a, idx_b : int arrays (n_common,)
    report : dict
    """
    ids_a, ids_b = np.asarray(ids_a), np.asarray(ids_b)
    na, nb = len(ids_a), len(ids_b)
    if na == nb and _ids_comparable(ids_a, ids_b) and np.array_equal(ids_a, ids_b):
        idx = np.arange(na)
        return idx, idx.copy(), {"aligned": False, "n_common": na, "dropped_a": 0, "dropped_b": 0,
                                 "reordered": False, "examples_dropped_a": [], "examples_dropped_b": []}
    if _ids_comparable(ids_a, ids_b):
        common, ia, ib = np.intersect1d(ids_a, ids_b, assume_unique=True, return_indices=True)
    else:
        common, ia, ib = np.array([]), np.array([], dtype=np.int64), np.array([], dtype=np.int64)
    order = np.argsort(ia, kind="stable")
    ia, ib = ia[order], ib[order]
    same_set = len(common) == na == nb
    if not align:
        if same_set:
            detail = f"the same {na} ids in a different order"
        else:
            detail = (f"{na} and {nb} ids with {len(common)} in common "
                      f"({na - len(common)} only in the first, {nb - len(common)} only in the second)")
        raise InvalidParameterError(
            "sample_ids: expected the same sample ids in the same order in both activation sets "
            f"(pass align=True to compare their common samples), got {detail}")
    if len(common) < 4:
        fail("sample_ids", "at least 4 ids common to both activation sets", f"{len(common)} common ids", raw=True)
    mask_a = np.ones(na, bool)
    mask_a[ia] = False
    mask_b = np.ones(nb, bool)
    mask_b[ib] = False
    report = {"aligned": True, "n_common": int(len(common)), "dropped_a": int(mask_a.sum()),
              "dropped_b": int(mask_b.sum()), "reordered": bool(not np.all(np.diff(ib) > 0)),
              "examples_dropped_a": _examples(ids_a[mask_a]), "examples_dropped_b": _examples(ids_b[mask_b])}
    return ia, ib, report


def _select_layers(side: _Side, layers, name: str) -> list[str]:
    if layers is None:
        return list(side)
    if isinstance(layers, str):
        layers = [layers]
    layers = list(layers)
    if not layers:
        fail(f"layers ({name})", "at least one layer name", layers)
    for layer in layers:
        if layer not in side:
            raise unknown_name(f"layer of {name}", str(layer), side)
    if len(set(layers)) != len(layers):
        fail(f"layers ({name})", "distinct layer names", layers)
    return layers


def _per_method_int(value, methods: list[str], name: str) -> dict[str, int]:
    if isinstance(value, Mapping):
        unknown = sorted(set(value) - set(methods))
        if unknown:
            fail(name, f"a mapping whose keys are among the methods {methods}", unknown)
        return {m: check_int(f"{name}[{m!r}]", value.get(m, 0), min_value=0) for m in methods}
    v = check_int(name, value, min_value=0)
    return {m: v for m in methods}


# ---------------------------------------------------------------------------------------------
# workers (module level: picklable for process and Dask executors)
# ---------------------------------------------------------------------------------------------
# Permutation progress lines appear once a method has run this long (seconds).
PROGRESS_AFTER_S = 3.0


def _block_progress(label: str | None, total: int):
    """A callback counting permutations; prints each tenth done, with the elapsed time, once the
    work has taken more than a few seconds."""
    import sys
    import time

    t0 = time.time()
    state = {"done": 0}
    block = max(1, total // 10)

    def step(k: int) -> None:
        state["done"] += k
        d = state["done"]
        if (d % block == 0 or d == total) and time.time() - t0 > PROGRESS_AFTER_S:
            print(f"{label or 'compare'}: {d}/{total} permutations ({time.time() - t0:.1f} s elapsed)",
                  file=sys.stderr, flush=True)

    return step


def _cka_worker(item: dict) -> dict:
    from topo_mi.compare._engine import cka_matrix, cka_null

    As, Bs, opts = item["As"], item["Bs"], item["options"]
    kw = dict(kernel=opts["kernel"], sigma=opts["sigma"], debiased=opts["debiased"],
              names_a=item["names_a"], names_b=item["names_b"])
    perms, boots = item["perms"], item["boots"]
    if len(perms):
        obs, null, route = cka_null(As, Bs, perms, progress=_block_progress(item.get("label"), len(perms))
                                    if item.get("progress") else None, **kw)
    else:
        from topo_mi.compare._engine import choose_route

        obs = cka_matrix(As, Bs, **kw)
        null = None
        route = choose_route(As[0].shape[0], [a.shape[1] for a in As], [b.shape[1] for b in Bs], opts["kernel"])
    boot = None
    if len(boots):
        boot = np.stack([cka_matrix([a[b] for a in As], [y[b] for y in Bs], **kw) for b in boots])
    return {"values": obs, "null": null, "boot": boot, "note": f"CKA engine route: {route}"}


def _prepare_worker(item: tuple) -> Any:
    from topo_mi.compare._registry import get_method

    name, opts, X = item
    return get_method(name).prepare(X, opts)


def _pair_worker(item: dict) -> dict:
    from topo_mi.compare._registry import get_method

    method = get_method(item["method"])
    opts = item["options"]
    px, py = item["px"], item["py"]
    try:
        value = method.score(px, py, None, opts)
    except InvalidParameterError as exc:
        la, lb = item["pair"]
        raise type(exc)(f"{method.name} between layers {la!r} and {lb!r}: {exc}") from None
    perms = item["perms"]
    null = np.array([method.score(px, py, p, opts) for p in perms]) if len(perms) else None
    return {"value": float(value), "null": null}


def _boot_worker(item: dict) -> np.ndarray:
    """One jackknife replicate: every layer prepared once on the kept rows, then all pairs."""
    from topo_mi.compare._registry import get_method

    method = get_method(item["method"])
    opts, rows = item["options"], item["rows"]
    pa = [method.prepare(X[rows], opts) for X in item["As"]]
    pb = [method.prepare(Y[rows], opts) for Y in item["Bs"]]
    return np.array([[method.score(p, q, None, opts) for q in pb] for p in pa])


# ---------------------------------------------------------------------------------------------
# compare
# ---------------------------------------------------------------------------------------------
def _layer_arrays(side: _Side, layers: list[str], idx: np.ndarray, name: str) -> list[np.ndarray]:
    out = []
    identity = len(idx) == next(iter(side.values())).shape[0] and np.array_equal(idx, np.arange(len(idx)))
    for layer in layers:
        arr = np.asarray(side[layer])
        if not identity:
            arr = arr[idx]
        out.append(check_point_cloud(arr, f"{name}[{layer!r}]", min_points=4))
    return out


def _auto_n_perm(n_tests: int, alpha: float, correction: str) -> int:
    """Enough permutations for the correction: the smallest p-value, 1/(n_perm + 1), times the
    number of tests is at most alpha / 2 (at least 1000)."""
    m = n_tests if correction != "none" else 1
    return max(1000, int(np.ceil(2.0 * m / alpha)))


def _reachable(n_perm: int, n_tests: int, alpha: float, correction: str) -> bool:
    """Whether the smallest attainable corrected p-value is below alpha."""
    p_min = 1.0 / (n_perm + 1)
    if correction in ("holm", "bonferroni"):
        return n_tests * p_min < alpha
    return p_min < alpha  # bh (all pairs at the minimum) and none


def compare(acts_a, acts_b=None, *, methods: Sequence[str] | str = ("cka",), layers=None, layers_b=None,
            n_perm: int | Mapping[str, int] | None = None, n_boot: int | Mapping[str, int] = 0,
            correction: str = "holm", alpha: float = 0.05, ci_level: float = 0.95, seed: int | None = 0,
            align: bool = False, method_options: Mapping[str, Mapping] | None = None,
            names: tuple[str, str] = ("a", "b"), executor: Any = None,
            progress: bool = True) -> ComparisonResult:
    """Layer x layer comparison of two activation sets of the same inputs, with statistics.

    Parameters
    ----------
    acts_a, acts_b : Activations or mapping of str to array (n_samples, n_features)
        Samples are matched by ``sample_ids``; a plain mapping's rows are identified by position.
        ``acts_b`` None (or the same object as ``acts_a``) compares a model's layers with each
        other: the trivial diagonal (a layer with itself) gets no test and is left out of the
        correction.
    methods : str or sequence of str, default ("cka",)
        Names from :data:`topo_mi.compare.METHODS`: ``"cka"``, ``"cka_debiased"``, ``"cka_rbf"``,
        ``"cca"``, ``"cca_r2"``, ``"svcca"``, ``"pwcca"``, ``"procrustes"``, ``"rsa"``, ``"knn"``,
        ``"diagram"``, ``"rtd"``.
    layers : sequence of str, optional
        Layers of ``acts_a`` (default all), in order. Also used for ``acts_b`` when ``layers_b``
        is None and ``layers`` is given.
    layers_b : sequence of str, optional
        Layers of ``acts_b`` (default: ``layers`` if given, else all).
    n_perm : int or mapping method -> int, optional
        Permutations of the samples of b for the one-sided permutation test of every layer pair
        (the same permutations for all pairs and methods). 0 skips the test. A mapping sets it per
        method (missing methods get 0): RTD costs seconds per call, so give it few. Default:
        enough for the correction, ``max(1000, ceil(2 m / alpha))`` for ``m`` tested pairs, so the
        smallest corrected p-value can pass alpha. A given value too small for that warns
        (:class:`~topo_mi.errors.TopoMIWarning`).
    n_boot : int or mapping method -> int, default 0
        Resamples for confidence intervals: a delete-a-group jackknife with ``min(n_boot, n)``
        disjoint random groups of rows (each replicate leaves one group out of both models). Rows
        are never drawn with replacement: duplicated rows inflate CKA/CCA/SVCCA, so bootstrap
        intervals can exclude the estimate (:func:`topo_mi.compare.jackknife_interval`).
    correction : {"holm", "bh", "bonferroni", "none"}, default "holm"
        Correction over the La·Lb p-values of each method. Permutation p-values are at least
        1/(n_perm + 1): with many layer pairs, a family-wise correction needs many permutations.
    alpha : float, default 0.05
        Threshold on corrected p-values for ``significant``.
    ci_level : float, default 0.95
    seed : int or None, default 0
        Draws permutations and resamples (None: fresh entropy, recorded in ``result.seed``).
    align : bool, default False
        Restrict both to their common sample ids instead of raising when ids differ.
    method_options : mapping method -> dict, optional
        Options overriding a method's defaults, e.g. ``{"rtd": {"trials": 2, "batch": 200}}``.
    names : (str, str), default ("a", "b")
    executor : None, "serial", "process", "dask" or an Executor
        Runs the independent (method, layer pair) tasks.
    progress : bool, default True
        Progress of the permutations (CKA: a line per tenth once a method takes more than a few
        seconds, with the elapsed time) and a bar per method on a terminal; False: none.

    Returns
    -------
    ComparisonResult

    Examples
    --------
    >>> res = compare(acts_seed0, acts_seed1, methods=("cka", "cca"), n_perm=200)  # doctest: +SKIP
    >>> res.best_matches("cka")                                                    # doctest: +SKIP
    """
    from topo_mi.compare._registry import get_method
    from topo_mi.compare._stats import adjust_pvalues, jackknife_groups, jackknife_interval, permutation_pvalues
    from topo_mi.parallel import get_executor

    within = acts_b is None or acts_b is acts_a
    A = _as_side(acts_a, "acts_a")
    B = A if within else _as_side(acts_b, "acts_b")
    if isinstance(methods, str):
        methods = [methods]
    methods = list(methods)
    if not methods:
        fail("methods", "at least one method name", methods)
    specs = {m: get_method(m) for m in methods}
    if len(set(methods)) != len(methods):
        fail("methods", "distinct method names", methods)
    method_options = dict(method_options or {})
    for key in method_options:
        if key not in specs:
            fail("method_options", f"keys among the methods {methods}", key)
    options = {m: specs[m].options(method_options.get(m)) for m in methods}
    layers_a = _select_layers(A, layers, "acts_a")
    layers_b_ = _select_layers(B, layers_b if layers_b is not None else layers, "acts_b")
    n_boot_ = _per_method_int(n_boot, methods, "n_boot")
    check_choice("correction", correction, ("holm", "bh", "bonferroni", "none"))
    alpha = check_float("alpha", alpha, min_value=0.0, max_value=1.0, min_inclusive=False)
    trivial = np.array([[within and a == b for b in layers_b_] for a in layers_a], dtype=bool)
    n_tests = int(trivial.size - trivial.sum())
    if n_perm is None:
        n_perm_ = {m: _auto_n_perm(n_tests, alpha, correction) for m in methods}
    else:
        n_perm_ = _per_method_int(n_perm, methods, "n_perm")
        for m in methods:
            if n_perm_[m] and specs[m].correspondence and n_tests and not _reachable(n_perm_[m], n_tests, alpha,
                                                                                      correction):
                import warnings

                from topo_mi.errors import TopoMIWarning

                warnings.warn(
                    f"compare ({m}): no layer pair can be significant: with n_perm = {n_perm_[m]} the smallest "
                    f"p-value is 1/{n_perm_[m] + 1}, and {correction} over {n_tests} pairs needs it below "
                    f"{alpha / (n_tests if correction in ('holm', 'bonferroni') else 1):.2g}; use n_perm >= "
                    f"{_auto_n_perm(n_tests, alpha, correction)} (the default) or correction='bh'",
                    TopoMIWarning, stacklevel=2)
    ci_level = check_float("ci_level", ci_level, min_value=0.0, max_value=1.0, min_inclusive=False,
                           max_inclusive=False)
    if not isinstance(align, bool):
        fail("align", "True or False", align)
    if not (isinstance(names, (tuple, list)) and len(names) == 2 and all(isinstance(x, str) for x in names)):
        fail("names", "two strings", names)
    if seed is None:
        seed = int(np.random.SeedSequence().entropy % (2**63))
    seed = check_int("seed", seed, min_value=0)

    ia, ib, report = align_samples(A.sample_ids, B.sample_ids, align=align)
    As = _layer_arrays(A, layers_a, ia, names[0])
    Bs = _layer_arrays(B, layers_b_, ib, names[1])
    n = As[0].shape[0]

    perm_ss, boot_ss = np.random.SeedSequence(seed).spawn(2)
    max_perm = max([n_perm_[m] for m in methods if specs[m].correspondence] + [0])
    max_boot = max(n_boot_.values())
    from topo_mi._resources import check_allocation

    n_draws = max_perm + max_boot  # index arrays (n_draws, n) and null values per method and layer pair
    check_allocation("n_perm, n_boot: the permutation indices, jackknife groups and null distributions",
                     8.0 * n_draws * (n + len(methods) * len(As) * len(Bs)),
                     hint=f"lower n_perm (now {max_perm}) or n_boot (now {max_boot}), or compare fewer layers")
    prng = np.random.default_rng(perm_ss)
    perms = np.stack([prng.permutation(n) for _ in range(max_perm)]) if max_perm else np.empty((0, n), np.int64)
    # Jackknife replicates: the same groups for every method with the same n_boot.
    boots = {g: (jackknife_groups(n, g, np.random.default_rng(boot_ss)) if g >= 2 else [])
             for g in set(n_boot_.values())}

    ex = get_executor(executor)
    La, Lb = len(layers_a), len(layers_b_)
    raw: dict[str, dict] = {}
    notes: dict[str, str] = {}
    for m in methods:
        spec, opts = specs[m], options[m]
        k_perm = n_perm_[m] if spec.correspondence else 0
        if not spec.correspondence and n_perm_[m]:
            notes[m] = "no permutation test: the method ignores which sample is which"
        P, Bt = perms[:k_perm], boots[n_boot_[m]]
        if spec.engine == "cka":
            out = ex.map(_cka_worker, [{"As": As, "Bs": Bs, "options": opts, "perms": P, "boots": Bt,
                                        "names_a": layers_a, "names_b": layers_b_, "progress": progress,
                                        "label": f"compare {m}"}],
                         desc=f"compare {m}", progress=False)[0]
            notes.setdefault(m, out["note"])
            raw[m] = out
            continue
        prepared = ex.map(_prepare_worker, [(m, opts, X) for X in As + Bs], desc=f"prepare {m}",
                          progress=progress)
        pa, pb = prepared[:La], prepared[La:]
        items = [{"method": m, "options": opts, "px": pa[i], "py": pb[j], "perms": P,
                  "pair": (layers_a[i], layers_b_[j])}
                 for i in range(La) for j in range(Lb)]
        outs = ex.map(_pair_worker, items, desc=f"compare {m}", progress=progress)
        vals = np.array([o["value"] for o in outs]).reshape(La, Lb)
        null = (np.stack([o["null"] for o in outs], axis=-1).reshape(len(P), La, Lb) if len(P) else None)
        boot = None
        if len(Bt):
            boot = np.stack(ex.map(_boot_worker, [{"method": m, "options": opts, "rows": rows, "As": As, "Bs": Bs}
                                                  for rows in Bt], desc=f"jackknife {m}", progress=progress))
        raw[m] = {"values": vals, "null": null, "boot": boot}

    if trivial.any():
        for m in methods:
            if n_perm_[m] and specs[m].correspondence:
                notes[m] = "; ".join(filter(None, [notes.get(m), "diagonal (a layer with itself) not tested"]))
    fields: dict[str, dict] = {k: {} for k in ("values", "p_values", "p_adjusted", "significant", "null_mean",
                                               "null_std", "effect_size", "ci_low", "ci_high",
                                               "best_match_a", "best_match_b", "higher_is_similar")}
    nan = np.full((La, Lb), np.nan)
    for m in methods:
        hi = specs[m].higher_is_similar
        vals = np.asarray(raw[m]["values"], dtype=np.float64)
        null, boot = raw[m]["null"], raw[m]["boot"]
        fields["values"][m] = vals
        fields["higher_is_similar"][m] = hi
        if null is not None:
            p = permutation_pvalues(vals, null, higher_is_similar=hi)
            p[trivial] = np.nan  # a layer with itself: nothing to test
            mu, sd = null.mean(axis=0), null.std(axis=0, ddof=1) if len(null) > 1 else nan.copy()
            with np.errstate(divide="ignore", invalid="ignore"):
                eff = (vals - mu) / sd * (1.0 if hi else -1.0)
        else:
            p, mu, sd, eff = nan.copy(), nan.copy(), nan.copy(), nan.copy()
        padj = adjust_pvalues(p, correction)
        fields["p_values"][m] = p
        fields["p_adjusted"][m] = padj
        fields["significant"][m] = np.nan_to_num(padj, nan=1.0) < alpha
        fields["null_mean"][m], fields["null_std"][m], fields["effect_size"][m] = mu, sd, eff
        if boot is not None:
            lo, hi_ = jackknife_interval(vals, boot, level=ci_level)
        else:
            lo, hi_ = nan.copy(), nan.copy()
        fields["ci_low"][m], fields["ci_high"][m] = lo, hi_
        score = vals if hi else -vals
        filled = np.where(np.isnan(score), -np.inf, score)
        fields["best_match_a"][m] = [layers_b_[j] for j in np.argmax(filled, axis=1)]
        fields["best_match_b"][m] = [layers_a[i] for i in np.argmax(filled, axis=0)]

    return ComparisonResult(
        names=tuple(names), layers_a=list(layers_a), layers_b=list(layers_b_), methods=methods,
        **fields, n_perm={m: (n_perm_[m] if specs[m].correspondence else 0) for m in methods},
        n_boot=dict(n_boot_), correction=correction, alpha=alpha, ci_level=ci_level, seed=seed, n_samples=n,
        alignment=report, options=options, notes=notes)


# ---------------------------------------------------------------------------------------------
# compare_many
# ---------------------------------------------------------------------------------------------
def _many_worker(item: dict) -> ComparisonResult:
    return compare(item["a"], item["b"], **item["kwargs"])


def _plain_side(acts: Any, name: str, layers: list[str]) -> _Side:
    side = _as_side(acts, name)
    return _Side({k: np.asarray(side[k]) for k in layers}, np.asarray(side.sample_ids), side.has_ids)


def compare_many(models, *, names: Sequence[str] | None = None, methods: Sequence[str] | str = ("cka",),
                 layers: Sequence[str] | None = None, n_perm: int | Mapping[str, int] = 0,
                 n_boot: int | Mapping[str, int] = 0, correction: str = "holm", alpha: float = 0.05,
                 seed: int | None = 0, align: bool = False, method_options: Mapping[str, Mapping] | None = None,
                 executor: Any = None, progress: bool = False) -> ManyComparisonResult:
    """Compare N models pairwise (N x N) through an executor.

    Every pair ``i < j`` runs :func:`compare` on the same ``layers`` in a worker of ``executor``;
    each pair is then summarised per method by the mean index between same-named layers and by
    the share of layers whose best match is the same-named layer.

    Parameters
    ----------
    models : sequence of Activations/mappings, or mapping name -> Activations/mapping
    names : sequence of str, optional
        Model names (default: the mapping's keys, else "model0", "model1", ...).
    methods : str or sequence of str, default ("cka",)
    layers : sequence of str, optional
        Layers compared; default: the layers every model has, in the first model's order.
    n_perm, n_boot, correction, alpha, align, method_options
        As in :func:`compare` (``n_perm`` defaults to 0 here: N(N-1)/2 comparisons).
    seed : int or None, default 0
        Each pair gets its own seed spawned from it.
    executor : None, "serial", "process", "dask" or an Executor

    Returns
    -------
    ManyComparisonResult
    """
    from topo_mi.compare._registry import get_method
    from topo_mi.parallel import get_executor

    if isinstance(models, Mapping):
        if names is None:
            names = [str(k) for k in models]
        models = list(models.values())
    elif isinstance(models, Sequence) and not isinstance(models, (str, bytes)):
        models = list(models)
    else:
        fail("models", "a sequence of activation sets or a mapping name -> activation set", models)
    if len(models) < 2:
        fail("models", "at least 2 activation sets", f"{len(models)}", raw=True)
    names = [f"model{i}" for i in range(len(models))] if names is None else [str(x) for x in names]
    if len(names) != len(models) or len(set(names)) != len(names):
        fail("names", f"{len(models)} distinct names", names)
    if isinstance(methods, str):
        methods = [methods]
    methods = list(methods)
    specs = {m: get_method(m) for m in methods}
    sides = [_as_side(m, f"models[{i}]") for i, m in enumerate(models)]
    if layers is None:
        layers = [l for l in sides[0] if all(l in s for s in sides[1:])]
        if not layers:
            fail("models", "activation sets that share at least one layer name", [list(s) for s in sides])
    else:
        layers = [layers] if isinstance(layers, str) else list(layers)
        for i, s in enumerate(sides):
            _select_layers(s, layers, names[i])
    if seed is None:
        seed = int(np.random.SeedSequence().entropy % (2**63))
    seed = check_int("seed", seed, min_value=0)
    pair_index = [(i, j) for i in range(len(models)) for j in range(i + 1, len(models))]
    pair_seeds = [int(s.generate_state(1, np.uint64)[0] % (2**63))
                  for s in np.random.SeedSequence(seed).spawn(len(pair_index))]
    plain = [_plain_side(s, names[i], layers) for i, s in enumerate(sides)]
    common = dict(methods=methods, layers=layers, n_perm=n_perm, n_boot=n_boot, correction=correction,
                  alpha=alpha, align=align, method_options=method_options, progress=False)
    items = [{"a": plain[i], "b": plain[j],
              "kwargs": {**common, "seed": ps, "names": (names[i], names[j])}}
             for (i, j), ps in zip(pair_index, pair_seeds)]
    pairs = get_executor(executor).map(_many_worker, items, desc="compare_many", progress=progress)

    N = len(models)
    sim, match = {}, {}
    for m in methods:
        S = np.full((N, N), float(specs[m].self_value))
        M = np.eye(N)
        for (i, j), res in zip(pair_index, pairs):
            v = res.values[m]
            S[i, j] = S[j, i] = float(np.mean(np.diag(v)))
            M[i, j] = res.matching_accuracy(m)
            M[j, i] = float(np.mean([b == a for a, b in zip(res.layers_b, res.best_match_b[m])]))
        sim[m], match[m] = S, M
    return ManyComparisonResult(names=names, layers=list(layers), methods=methods, similarity=sim,
                                matching=match, higher_is_similar={m: specs[m].higher_is_similar for m in methods},
                                pairs=list(pairs), pair_index=[tuple(p) for p in pair_index], seed=seed)


__all__ = ["compare", "compare_many", "ComparisonResult", "ManyComparisonResult", "align_samples"]
