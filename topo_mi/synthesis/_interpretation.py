"""Interpretations: anything that produces a stand-in I(x) for the network's N(x).

An :class:`Interpretation` is one of two kinds:

- a *patch*: it replaces some layer outputs while the network runs (a circuit with the rest
  ablated, a rank-r projection of a layer, a dictionary reconstruction spliced in, an erasure or
  a steering vector, any user replacement) — I(x) is then read at any output space, downstream
  of the replacement;
- a *surrogate*: a function of the input that predicts an output space directly (a user
  function, a constant such as the mean output, precomputed outputs).

Each records what it replaces, the ablation type and the baseline, the fingerprint of the model
it was built on, and optionally its own *error budget* δ_I (a number in the units of
‖N(x) − I(x)‖ in one stated space and norm) used by the consistency constant
K = sup_x ‖N(x) − I(x)‖ / δ_I.
"""
from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np

from topo_mi._validation import check_choice, check_float, check_int, check_random_state, fail
from topo_mi.errors import InvalidParameterError
from topo_mi.synthesis import _forward as F

NORMS = ("l2", "l1", "linf")
ABLATIONS = ("zero", "mean", "resample")


class Interpretation:
    """Base class of every interpretation (see the module docstring).

    Subclasses set the attributes and implement :meth:`ops` (patches) or :meth:`predict`
    (surrogates); :meth:`prepare` computes what depends on the evaluation inputs (baselines,
    resample partners) once.

    Attributes
    ----------
    name : str
    kind : str
        ``"patch"`` or ``"surrogate"``.
    method : str
        ``"circuit"``, ``"projection"``, ``"dictionary"``, ``"erasure"``, ``"steering"``,
        ``"replace"``, ``"function"``, ``"constant"``, ``"outputs"``, ``"identity"``.
    replaces : str
        What the interpretation stands in for (layers, units, the whole network).
    ablation : str
        How the replaced part is ablated or rewritten.
    baseline : str
        The baseline values the ablation uses (or "none").
    fingerprint : str or None
        :func:`topo_mi.activations.model_fingerprint` of the model it was built on.
    space : str or None
        For surrogates: the space their predictions live in ("logits", "probs" or a layer).
    """

    kind = "patch"
    method = "custom"

    def __init__(self, *, name: str, replaces: str, ablation: str, baseline: str = "none",
                 fingerprint: str | None = None, space: str | None = None, budget: float | None = None,
                 budget_space: str | None = None, budget_norm: str = "l2", budget_definition: str = ""):
        if not isinstance(name, str) or not name:
            fail("name", "a non-empty string", name)
        self.name, self.replaces, self.ablation, self.baseline = name, replaces, ablation, baseline
        self.fingerprint, self.space = fingerprint, space
        if budget is not None:
            budget = check_float("budget", budget, min_value=0.0)
            if budget_norm not in NORMS:
                check_choice("budget_norm", budget_norm, NORMS)
        self._budget = budget
        self._budget_space, self._budget_norm, self._budget_definition = budget_space, budget_norm, budget_definition

    # -- evaluation hooks -----------------------------------------------------------------------
    def prepare(self, model, inputs) -> Any:
        """Per-evaluation state (baselines on the evaluation inputs); default none."""
        return None

    def ops(self, model, state, rows: np.ndarray, x) -> dict | None:
        """``{layer: op}`` replacing outputs for the batch ``x`` (rows ``rows`` of the inputs)."""
        return None

    def predict(self, state, rows: np.ndarray, x):
        """Surrogates: I(x) for the batch, in :attr:`space` (subclasses that are surrogates define it)."""
        raise TypeError(f"{type(self).__name__} does not define predict(): an interpretation either replaces "
                        "layer outputs (ops) or is a surrogate that predicts N(x) itself")

    # -- error budget ---------------------------------------------------------------------------
    def budget(self, space: str, norm: str) -> tuple[float, str] | None:
        """``(δ_I, definition)`` when the interpretation states one for ``space`` and ``norm``."""
        if self._budget is None:
            return None
        if self._budget_space is not None and (space, norm) != (self._budget_space, self._budget_norm):
            return None
        return self._budget, self._budget_definition or "the budget given by the user"

    def info(self) -> dict:
        return {"name": self.name, "kind": self.kind, "method": self.method, "replaces": self.replaces,
                "ablation": self.ablation, "baseline": self.baseline, "fingerprint": self.fingerprint or ""}

    def __repr__(self):
        return f"{type(self).__name__}(name={self.name!r}, replaces={self.replaces!r}, ablation={self.ablation!r})"


def _fingerprint(model) -> str:
    from topo_mi.activations import model_fingerprint

    return model_fingerprint(model)


def _check_model(model):
    try:
        from torch import nn
    except ImportError:  # pragma: no cover
        raise
    if not isinstance(model, nn.Module):
        fail("model", "a torch.nn.Module", model)


# ---------------------------------------------------------------------------------------------
# identity, user replacements, user functions, constants, precomputed outputs
# ---------------------------------------------------------------------------------------------
class _Identity(Interpretation):
    method = "identity"


def identity(model, *, name: str = "identity") -> Interpretation:
    """I = N: replaces nothing (δ ≡ 0; a check of the machinery)."""
    _check_model(model)
    return _Identity(name=name, replaces="nothing", ablation="none", fingerprint=_fingerprint(model),
                     budget=0.0, budget_definition="0: the identity replaces nothing")


class _Replace(Interpretation):
    method = "replace"

    def __init__(self, replacements, **kw):
        super().__init__(**kw)
        self.replacements = replacements

    def ops(self, model, state, rows, x):
        return dict(self.replacements)


def replace(model, replacements: dict, *, name: str = "replace", ablation: str = "user replacement",
            baseline: str = "none", budget: float | None = None, budget_space: str | None = None,
            budget_norm: str = "l2", budget_definition: str = "") -> Interpretation:
    """A user patch: ``{layer: op}`` with ``op`` a :mod:`topo_mi.causal` operation or a function
    mapping the layer's output tensor to a same-shape tensor (applied with ``causal.intervene``)."""
    _check_model(model)
    if not isinstance(replacements, dict) or not replacements:
        fail("replacements", "a non-empty dict {layer name: operation or function}", replacements)
    from topo_mi.activations._hooks import resolve_layers

    resolve_layers(model, list(replacements))  # unknown names raise with the closest valid ones
    from topo_mi.causal import Op

    for k, op in replacements.items():
        if not (callable(op) or isinstance(op, Op)):
            fail(f"replacements[{k!r}]", "a topo_mi.causal operation or a function tensor -> tensor", op)
    return _Replace(replacements, name=name, replaces="outputs of " + ", ".join(map(str, replacements)),
                    ablation=ablation, baseline=baseline, fingerprint=_fingerprint(model), budget=budget,
                    budget_space=budget_space, budget_norm=budget_norm, budget_definition=budget_definition)


class _Function(Interpretation):
    kind = "surrogate"
    method = "function"

    def __init__(self, fn, **kw):
        super().__init__(**kw)
        self.fn = fn

    def predict(self, state, rows, x):
        return self.fn(x)


def function(fn: Callable, *, space: str = "logits", name: str = "function", model=None,
             replaces: str = "the whole network", budget: float | None = None, budget_norm: str = "l2",
             budget_definition: str = "") -> Interpretation:
    """A user function ``fn(x) -> I(x)`` predicting ``space`` ("logits", "probs" or a layer name)
    from a batch of inputs; ``model`` (optional) pins the fingerprint it was built for."""
    if not callable(fn):
        fail("fn", "a function of a batch of inputs", fn)
    _check_space_name(space)
    return _Function(fn, name=name, replaces=replaces, ablation="surrogate function", space=space,
                     fingerprint=None if model is None else _fingerprint(model), budget=budget,
                     budget_space=space if budget is not None else None, budget_norm=budget_norm,
                     budget_definition=budget_definition)


class _Constant(Interpretation):
    kind = "surrogate"
    method = "constant"

    def __init__(self, value, **kw):
        super().__init__(**kw)
        self.value = value

    def predict(self, state, rows, x):
        import torch

        v = torch.as_tensor(self.value, dtype=torch.float64)
        return v.expand(len(rows), *v.shape)


def constant_mean(model, data, *, space: str = "logits", name: str = "mean", batch_size: int = 1024) -> Interpretation:
    """I(x) = the mean of N over ``data`` in ``space``: the baseline every interpretation should beat.

    Its δ(x) = ‖N(x) − mean‖, so its coverage curve is the empirical CDF of the distance to the mean.
    """
    import torch

    _check_model(model)
    _check_space_name(space)
    x = F.as_model_input(data, model)
    n = F.n_inputs(x)
    if n == 0:
        fail("data", "at least one input", 0)
    total = None
    for rows in F.batches(n, batch_size):
        out = F.run_space(model, F.take_rows(x, rows), space).sum(dim=0)
        total = out if total is None else total + out
    mean = (total / n).to(torch.float64).numpy()
    return _Constant(mean, name=name, replaces="the whole network", ablation="constant",
                     baseline=f"mean of {space} over {n} inputs", space=space, fingerprint=_fingerprint(model))


class _Outputs(Interpretation):
    kind = "surrogate"
    method = "outputs"

    def __init__(self, values, **kw):
        super().__init__(**kw)
        self.values = values

    def prepare(self, model, inputs):
        n = F.n_inputs(inputs)
        if self.values.shape[0] != n:
            fail(f"interpretation {self.name!r}", f"precomputed outputs for the {n} evaluation inputs",
                 f"{self.values.shape[0]} rows", raw=True)
        return None

    def predict(self, state, rows, x):
        import torch

        return torch.as_tensor(self.values[rows], dtype=torch.float64)


def outputs(values, *, space: str = "logits", name: str = "outputs", model=None,
            replaces: str = "the whole network") -> Interpretation:
    """Precomputed I(x) in ``space``, one row per evaluation input (same order)."""
    from topo_mi._validation import as_array

    values = np.asarray(as_array(values, "values"), dtype=np.float64)
    if values.ndim < 1 or values.shape[0] == 0:
        fail("values", "an array with one row per input", values)
    _check_space_name(space)
    return _Outputs(values, name=name, replaces=replaces, ablation="precomputed outputs", space=space,
                    fingerprint=None if model is None else _fingerprint(model))


def _check_space_name(space):
    if not isinstance(space, str) or not space:
        fail("space", "'logits', 'probs' or a layer name", space)


# ---------------------------------------------------------------------------------------------
# rank-r projection of a layer
# ---------------------------------------------------------------------------------------------
class _Projection(Interpretation):
    method = "projection"

    def __init__(self, layer, basis, mean, **kw):
        super().__init__(**kw)
        self.layer, self.basis, self.mean = layer, basis, mean

    def ops(self, model, state, rows, x):
        import torch

        V = torch.as_tensor(self.basis)
        mu = torch.as_tensor(self.mean)

        def project(h):
            hd = h.to(torch.float64)
            p = mu + (hd - mu) @ V @ V.T
            return p.to(h.dtype)

        return {self.layer: project}


def layer_matrix(model, x, layer: str, batch_size: int = 1024) -> np.ndarray:
    """The layer's outputs on ``x`` as rows of its last axis (float64)."""
    parts = []
    for rows in F.batches(F.n_inputs(x), batch_size):
        h = F.layer_values(model, F.take_rows(x, rows), [layer])[layer]
        parts.append(h.reshape(-1, h.shape[-1]).numpy())
    return np.concatenate(parts)


def projection(model, layer: str, rank: int, data, *, center: bool = True, batch_size: int = 1024,
               name: str | None = None) -> Interpretation:
    """Replace ``layer``'s output h by its rank-``rank`` PCA projection μ + (h − μ)V_rV_rᵀ.

    V_r holds the top right singular vectors of the layer's activations on ``data`` (centred by
    their mean μ when ``center``, else μ = 0). The error budget is the discarded singular-value
    mass per input, δ_I = sqrt(Σ_{i>r} s_i² / n) (from :func:`topo_mi.geometry.spectrum`): the
    root-mean-square of ‖h − P_r h‖ over ``data`` at that layer, in the l2 norm, so K ≥ 1 there.
    The last axis of the layer's output is the feature axis (token axes are samples).
    """
    from topo_mi.geometry import spectrum

    _check_model(model)
    rank = check_int("rank", rank, min_value=0)
    x = F.as_model_input(data, model)
    if F.n_inputs(x) < 2:
        fail("data", "at least 2 inputs to fit the projection", F.n_inputs(x))
    A = layer_matrix(model, x, layer, batch_size)
    d = A.shape[1]
    if rank > min(A.shape):
        fail("rank", f"an integer <= min(n, d) = {min(A.shape)} for layer {layer!r}", rank)
    mu = A.mean(axis=0) if center else np.zeros(d)
    _, s, Vt = np.linalg.svd(A - mu, full_matrices=False)
    tails = spectrum(A, center=center, method="exact").tail_errors()
    delta = math.sqrt(float(tails[rank]) / A.shape[0])
    return _Projection(layer, np.ascontiguousarray(Vt[:rank].T), mu, name=name or f"rank-{rank} {layer}",
                       replaces=f"output of {layer}", ablation=f"rank-{rank} projection"
                       + (" (centred)" if center else ""),
                       baseline=f"mean of {layer} over {A.shape[0]} rows" if center else "zero",
                       fingerprint=_fingerprint(model), budget=delta, budget_space=layer, budget_norm="l2",
                       budget_definition=f"sqrt(sum_(i>{rank}) s_i^2 / n): the RMS norm of the discarded "
                                         f"singular-value mass of {layer} over {A.shape[0]} rows")


# ---------------------------------------------------------------------------------------------
# a sparse dictionary's reconstruction spliced in
# ---------------------------------------------------------------------------------------------
class _Dictionary(Interpretation):
    method = "dictionary"

    def __init__(self, layer, sae, **kw):
        super().__init__(**kw)
        self.layer, self.sae = layer, sae

    def ops(self, model, state, rows, x):
        sae = self.sae

        def reconstruct(h):  # token axes are samples: encode the rows of the last (feature) axis
            flat = h.reshape(-1, h.shape[-1])
            return sae.decode(sae.encode(flat)).to(h.dtype).reshape(h.shape)

        return {self.layer: reconstruct}


def dictionary(model, layer: str, sae, *, data=None, name: str | None = None,
               batch_size: int = 1024) -> Interpretation:
    """Splice a dictionary's reconstruction ``sae.decode(sae.encode(h))`` in place of ``layer``'s output h.

    ``sae`` is anything with ``encode``/``decode`` on tensors (the SAEs and transcoders of
    :mod:`topo_mi.dictionaries`). With ``data`` the error budget is the dictionary's own
    reconstruction error there, δ_I = sqrt(mean ‖h − ĥ‖²) (l2, at ``layer``).
    """
    import torch

    _check_model(model)
    for attr in ("encode", "decode"):
        if not callable(getattr(sae, attr, None)):
            fail("sae", "a dictionary with encode() and decode() methods", sae)
    from topo_mi.activations._hooks import resolve_layers

    resolve_layers(model, [layer])
    budget = None
    if data is not None:
        A = torch.as_tensor(layer_matrix(model, F.as_model_input(data, model), layer, batch_size))
        with torch.no_grad():
            p = next(iter(sae.parameters()), None) if hasattr(sae, "parameters") else None
            h = A.to(p.dtype) if p is not None else A.float()
            rec = sae.decode(sae.encode(h)).to(torch.float64)
        budget = float(torch.sqrt(((A - rec) ** 2).sum(dim=1).mean()))
    cfg = getattr(sae, "cfg", None)
    kind = f"{cfg['kind']} SAE" if isinstance(cfg, dict) and cfg.get("kind") else type(sae).__name__
    return _Dictionary(layer, sae, name=name or f"{kind} {layer}", replaces=f"output of {layer}",
                       ablation="dictionary reconstruction", baseline=f"{kind} decode(encode(h))",
                       fingerprint=_fingerprint(model), budget=budget, budget_space=layer, budget_norm="l2",
                       budget_definition=f"sqrt(mean ||h - decode(encode(h))||^2) of the dictionary at {layer}")


# ---------------------------------------------------------------------------------------------
# concept erasure and steering (topo_mi.causal operations)
# ---------------------------------------------------------------------------------------------
class _CausalOp(Interpretation):
    def __init__(self, layer, op, method, **kw):
        super().__init__(**kw)
        self.layer, self.op, self.method = layer, op, method

    def ops(self, model, state, rows, x):
        return {self.layer: self.op}


def erasure(model, eraser, *, layer: str | None = None, data=None, name: str | None = None,
            batch_size: int = 1024) -> Interpretation:
    """Erase a concept at a layer with a fitted eraser (:func:`topo_mi.causal.erase_concept`),
    applied as ``causal.Erase(eraser)``: h ↦ h − P(h − μ).

    With ``data`` the error budget is the RMS norm of what the erasure removes there,
    δ_I = sqrt(mean ‖P(h − μ)‖²) (l2, at the layer): at that layer δ's RMS equals it (K ≥ 1);
    downstream K says how much the network amplifies the erased component.
    """
    from topo_mi.causal import ConceptEraser, Erase

    _check_model(model)
    if not isinstance(eraser, ConceptEraser):
        fail("eraser", "a ConceptEraser from topo_mi.causal.erase_concept", eraser)
    layer = layer or eraser.layer
    if not layer:
        fail("layer", "the layer the eraser applies to", layer)
    budget = None
    if data is not None:
        A = layer_matrix(model, F.as_model_input(data, model), layer, batch_size)
        removed = (A - eraser.mean) @ np.asarray(eraser.projection).T
        budget = float(np.sqrt(np.mean(np.sum(removed ** 2, axis=1))))
    return _CausalOp(layer, Erase(eraser), "erasure", name=name or f"erase ({eraser.method}) {layer}",
                     replaces=f"the concept's rank-{eraser.rank} component of {layer}",
                     ablation=f"concept erasure ({eraser.method})", baseline=f"mean of {layer} over "
                     f"{eraser.n_samples} fitting rows", fingerprint=_fingerprint(model), budget=budget,
                     budget_space=layer, budget_norm="l2",
                     budget_definition=f"sqrt(mean ||P(h - mu)||^2): the RMS of what the erasure removes at {layer}")


def steering(model, layer: str, v, alpha: float = 1.0, *, name: str | None = None) -> Interpretation:
    """Add ``alpha · v`` to ``layer``'s output (``causal.Steer(v, alpha)``).

    Error budget: δ_I = |alpha|·‖v‖, the exact l2 change at the layer for every input (K = 1 there).
    """
    from topo_mi.causal import Steer

    _check_model(model)
    op = Steer(v, alpha)
    from topo_mi.activations._hooks import resolve_layers

    resolve_layers(model, [layer])
    b = abs(op.alpha) * float(np.linalg.norm(op.v))
    return _CausalOp(layer, op, "steering", name=name or f"steer {layer}", replaces=f"output of {layer}",
                     ablation=f"steering (alpha = {op.alpha:g})", baseline="none", fingerprint=_fingerprint(model),
                     budget=b, budget_space=layer, budget_norm="l2",
                     budget_definition="|alpha| * ||v||: the change of the layer's output")


# ---------------------------------------------------------------------------------------------
# a circuit found by topo_mi.circuits.find_circuit
# ---------------------------------------------------------------------------------------------
def _sequential_groups(model) -> list[tuple[str, str]]:
    """``[(linear module name, representation module name)]`` of an ``nn.Sequential`` MLP."""
    from torch import nn

    groups: list[list[str]] = []
    for name, module in model.named_children():
        if isinstance(module, nn.Linear):
            groups.append([name, name])
        elif groups:
            groups[-1][1] = name
    return [(a, b) for a, b in groups]


def _pre_modules(model, layer_names) -> dict[str, str]:
    """Graph layer -> the module whose output is that layer's pre-activation.

    ``nn.Sequential``: the group's ``nn.Linear`` (its activation, if any, follows it); residual MLP
    stacks: ``blocks.k.act`` -> ``blocks.k.linear``, every other layer (``embed``, ``blocks.k``,
    ``out``, identity activations) its own module.
    """
    from torch import nn

    if isinstance(model, nn.Sequential):
        rep_to_linear = {rep: lin for lin, rep in _sequential_groups(model)}
        pre = {}
        for nm in layer_names[1:]:
            if nm not in rep_to_linear:
                fail("result", f"a circuit found on this model (layers {['input'] + list(rep_to_linear)})",
                     f"layers {list(layer_names)}", raw=True)
            pre[nm] = rep_to_linear[nm]
        return pre
    if all(hasattr(model, a) for a in ("embed", "blocks", "out")):
        valid = ["embed", "out"] + [f"blocks.{k}{t}" for k in range(len(model.blocks)) for t in ("", ".act")]
        pre = {}
        for nm in layer_names[1:]:
            if nm not in valid:
                fail("result", f"a circuit found on this model (layers {['input'] + valid})",
                     f"layers {list(layer_names)}", raw=True)
            pre[nm] = nm[:-len(".act")] + ".linear" if nm.endswith(".act") else nm
        return pre
    fail("model", "an nn.Sequential MLP or a residual MLP stack (embed, blocks, out), as find_circuit takes", model)


class _Circuit(Interpretation):
    method = "circuit"

    def __init__(self, *, layer_names, pre_module, pairs, node_masks, granularity, abl_kind, reference_means,
                 seed, budget_mse, **kw):
        super().__init__(**kw)
        self.layer_names, self.pre_module, self.pairs = layer_names, pre_module, pairs
        self.node_masks, self.granularity = node_masks, granularity
        self.abl_kind, self.reference_means, self.seed, self.budget_mse = abl_kind, reference_means, seed, budget_mse

    def budget(self, space, norm):
        b = super().budget(space, norm)
        if b is not None or self.budget_mse is None:
            return b
        lam, objective, var, k = self.budget_mse
        if objective == "mse" and (space, norm) == ("logits", "l2"):
            return (math.sqrt(lam * k * var),
                    f"sqrt(l0 * k * Var(N)) = sqrt({lam:g} * {k} * {var:.4g}): the RMS error the L0 weight "
                    "allows at the optimum (faithfulness loss <= l0)")
        if objective == "kl" and (space, norm) == ("probs", "l1"):
            return (math.sqrt(2 * lam), f"sqrt(2 * l0) = sqrt(2 * {lam:g}): mean KL <= l0 at the optimum, "
                    "then Pinsker and Jensen bound the mean L1 distance of the probabilities")
        return None

    def prepare(self, model, inputs):
        import torch

        n = F.n_inputs(inputs)
        state = {"n": n}
        if self.abl_kind == "mean":
            state["abl"] = {k: torch.as_tensor(v) for k, v in self.reference_means.items()}
        elif self.abl_kind == "resample":
            clean = {name: [] for name in self.layer_names}
            for rows in F.batches(n, 2048):
                xb = F.take_rows(inputs, rows)
                vals = F.layer_values(model, xb, [nm for nm in self.layer_names if nm != "input"])
                for name in self.layer_names:
                    clean[name].append(xb.to(torch.float64) if name == "input" else vals[name])
            state["clean"] = {k: torch.cat(v) for k, v in clean.items()}
            state["perm"] = check_random_state(self.seed).permutation(n)
        return state

    def _ablated(self, state, rows, name, like):
        import torch

        if self.abl_kind == "zero":
            return torch.zeros_like(like)
        if self.abl_kind == "mean":
            return state["abl"][name].expand_as(like)
        return state["clean"][name][state["perm"][rows]]

    def ops(self, model, state, rows, x):
        import torch

        L = self.layer_names
        current: dict[str, Any] = {}
        if L[0] == "input":
            current["input"] = x.to(torch.float64)
        per_module: dict[str, list] = {}

        def add(module, fn):
            per_module.setdefault(module, []).append(fn)

        # corrections of each destination's pre-activation: the ablated part of every incoming map
        for (src, dst), (W, M) in self.pairs.items():
            if self.granularity == "edges":
                off = (1.0 - M) * W
                if not bool(off.any()):
                    continue

                def edge_fn(out, src=src, off=off):
                    v = current[src]
                    return (out.to(torch.float64) - (v - self._ablated(state, rows, src, v)) @ off.T).to(out.dtype)
                add(self.pre_module[dst], edge_fn)
            elif src == "input" and "input" in self.node_masks:
                zin = self.node_masks["input"]

                def input_fn(out, W=W, zin=zin):
                    v = current["input"]
                    a = self._ablated(state, rows, "input", v)
                    return (out.to(torch.float64) - ((1.0 - zin) * (v - a)) @ W.T).to(out.dtype)
                add(self.pre_module[dst], input_fn)
        # then each layer's value: node gates, and the value captured for the maps leaving it
        for name in L[1:]:
            if self.granularity == "nodes" and name in self.node_masks:
                z = self.node_masks[name]

                def node_fn(out, name=name, z=z):
                    v = out.to(torch.float64)
                    return (v * z + self._ablated(state, rows, name, v) * (1.0 - z)).to(out.dtype)
                add(name, node_fn)

            def capture(out, name=name):
                current[name] = out.to(torch.float64)
                return None
            add(name, capture)
        return {m: F.compose(*fns) for m, fns in per_module.items()}


def circuit(model, result, *, data=None, ranking: str = "mask", size: int | None = None, seed: int = 0,
            name: str | None = None) -> Interpretation:
    """The circuit of a :class:`~topo_mi.circuits.CircuitResult` as an interpretation.

    Units outside the circuit are ablated as ``find_circuit`` did (its ``ablation``: zero, the
    mean over ``data``, or the value on another evaluation input drawn with ``seed``): an edge
    i → j outside the circuit contributes ``w_ji a_i`` instead of ``w_ji v_i`` to unit j's
    pre-activation, a node outside it takes its ablated value. Applied with
    ``topo_mi.causal.intervene`` on the modules that output each layer's pre-activation and value
    (``nn.Sequential`` MLPs such as ``topo_mi.models.MLP``, and residual MLP stacks such as
    ``topo_mi.models.ResidualMLP``, whose skip and ``dt`` scale edges are gated like any other).

    Parameters
    ----------
    model : nn.Module
        The model the circuit was found on (its linear weights must be the graph's).
    result : CircuitResult
        From :func:`topo_mi.circuits.find_circuit` or :func:`topo_mi.pipelines.circuit_graph`.
    data : array, optional
        Inputs for the mean ablation's baseline (use the data the circuit was found on) and for the
        error budget's output variance. Required for ``ablation="mean"``.
    ranking : {"mask", "magnitude", "patching"}, default "mask"
        Which units to keep: the learned mask, or the same number (``size``) of units ranked by
        weight magnitude or by attribution patching — the comparisons of ``find_circuit``'s
        faithfulness curve, as interpretations.
    size : int, optional
        Units kept with a ranking (default: the learned circuit's size).

    Error budget: with ``objective="mse"`` the loss is faith + l0·(kept fraction), so at the optimum
    faith ≤ l0, i.e. mean ‖N(x) − C(x)‖² ≤ l0·k·Var(N) (k outputs): δ_I = sqrt(l0·k·Var(N)) in
    logits, l2. With ``objective="kl"``: mean KL ≤ l0 and δ_I = sqrt(2·l0) in probabilities, l1.
    """
    import torch
    from torch import nn

    from topo_mi.circuits import CircuitResult

    _check_model(model)
    if not isinstance(result, CircuitResult):
        fail("result", "a CircuitResult from find_circuit / circuit_graph", result)
    if result.granularity not in ("edges", "nodes"):
        fail("result", "a CircuitResult with a learned circuit (granularity 'edges' or 'nodes')",
             f"granularity {result.granularity!r}", raw=True)
    check_choice("ranking", ranking, ("mask", "magnitude", "patching"))
    L = list(result.layer_names)
    pre = _pre_modules(model, L)
    mods = dict(model.named_modules())
    sizes = np.asarray(result.layer_sizes, np.int64)
    offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    node_layer = np.searchsorted(offsets, np.arange(offsets[-1]), side="right") - 1

    # which units are kept
    kept = np.asarray(result.kept, bool).copy()
    gated = np.asarray(result.unit_gated, bool)
    if ranking != "mask" or size is not None:
        scores = result.gate_logits if ranking == "mask" else result.unit_scores[ranking]
        scores = np.asarray(scores, np.float64)[gated]
        size = result.n_kept if size is None else check_int("size", size, min_value=0, max_value=int(gated.sum()))
        keep = np.zeros(scores.size, bool)
        keep[np.argsort(-scores, kind="stable")[:size]] = True
        kept = np.ones_like(kept)
        kept[gated] = keep
    n_kept = int((kept & gated).sum())

    # the maps between layers, from the graph's edges, checked against the model's linear weights
    src_l, dst_l = node_layer[result.edge_src], node_layer[result.edge_dst]
    src_i, dst_i = result.edge_src - offsets[src_l], result.edge_dst - offsets[dst_l]
    pairs = {}
    for a, b in sorted(set(zip(src_l.tolist(), dst_l.tolist()))):
        sel = (src_l == a) & (dst_l == b)
        W = np.zeros((sizes[b], sizes[a]))
        W[dst_i[sel], src_i[sel]] = result.edge_weight[sel]
        M = np.ones_like(W)
        if result.granularity == "edges":
            M[dst_i[sel], src_i[sel]] = kept[sel]
        lin = mods.get(pre[L[b]])
        if isinstance(lin, nn.Linear) and lin.weight.shape == W.shape:
            if not np.allclose(lin.weight.detach().double().numpy(), W, rtol=1e-5, atol=1e-6):
                raise InvalidParameterError(f"result: expected a circuit found on this model; the weights of "
                                            f"{pre[L[b]]!r} differ from the circuit graph's")
        pairs[(L[a], L[b])] = (torch.as_tensor(W), torch.as_tensor(M))
    node_masks = {}
    if result.granularity == "nodes":
        for li in range(len(L)):
            g = gated[offsets[li]:offsets[li + 1]]
            if g.any():
                node_masks[L[li]] = torch.as_tensor(kept[offsets[li]:offsets[li + 1]].astype(np.float64))

    abl_kind = result.ablation
    reference_means, var, n_ref, k = None, None, 0, 0
    if data is not None:
        x = F.as_model_input(data, model)
        n = n_ref = F.n_inputs(x)
        if n < 1:
            fail("data", "at least one input", 0)
        sums: dict[str, Any] = {}
        outs = []
        for rows in F.batches(n, 4096):
            xb = F.take_rows(x, rows)
            vals = F.layer_values(model, xb, L[1:])
            vals["input"] = xb.to(torch.float64)
            for nm in L:
                sums[nm] = vals[nm].sum(dim=0) + (sums[nm] if nm in sums else 0)
            outs.append(vals[L[-1]])
        reference_means = {nm: (sm / n).numpy() for nm, sm in sums.items()}
        out = torch.cat(outs)
        var, k = float(out.var(unbiased=False)), int(out.shape[1])
    elif abl_kind == "mean":
        fail("data", "the inputs the circuit was found on (its mean ablation needs their means)", None)
    lam = float(result.params.get("l0", float("nan")))
    budget_mse = None
    if var is not None and ranking == "mask" and size is None and math.isfinite(lam):
        budget_mse = (lam, result.objective, var, k)
    baseline = {"zero": "zero", "mean": f"mean over {n_ref} inputs of the full model",
                "resample": f"the value on another evaluation input (seed {seed})"}[abl_kind]
    label = name or ("circuit" if ranking == "mask" else f"{ranking} top-{n_kept}")
    return _Circuit(layer_names=L, pre_module=pre, pairs=pairs, node_masks=node_masks,
                    granularity=result.granularity, abl_kind=abl_kind, reference_means=reference_means, seed=seed,
                    budget_mse=budget_mse, name=label,
                    replaces=f"the {int(gated.sum()) - n_kept} of {int(gated.sum())} {result.granularity} outside "
                             f"the circuit ({ranking} ranking)",
                    ablation=abl_kind, baseline=baseline, fingerprint=_fingerprint(model))


__all__ = ["Interpretation", "identity", "replace", "function", "constant_mean", "outputs", "projection",
           "circuit", "dictionary", "erasure", "steering", "layer_matrix", "NORMS"]
