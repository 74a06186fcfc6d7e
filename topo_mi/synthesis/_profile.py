"""One call: build the standard interpretations of a model, evaluate them, combine them."""
from __future__ import annotations

from typing import Any

import numpy as np

from topo_mi._results import Result, result_dataclass
from topo_mi._validation import check_choice, check_float, check_int, fail
from topo_mi.synthesis import _forward as F

METHODS = ("circuit", "magnitude", "projection", "dictionary", "mean")


@result_dataclass
class SynthesisResult(Result):
    """Several interpretations of one model judged on the same inputs, and their combination.

    Attributes
    ----------
    members : list of CoverageResult
        One per interpretation, sharing the ε grid.
    pluralism : PluralismResult
        The combination of the members in ``combined`` (by ``rule``).
    combined : list of str
        Members entering the combination (baselines such as the constant mean are left out).
    eps, target : float
    space, norm : str
    relative : bool
    rule : str
    settings : dict
        What each interpretation was built with (layer, rank, circuit size, dictionary...).
    """

    members: list
    pluralism: Any
    combined: list
    eps: float
    target: float
    space: str
    norm: str
    relative: bool
    rule: str
    settings: dict

    _plot_function = "topo_mi.plotting.synthesis:plot_synthesis"

    def member(self, name: str):
        for m in self.members:
            if m.name == name:
                return m
        from topo_mi._validation import unknown_name

        raise unknown_name("member", name, [m.name for m in self.members])

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {"space": self.space, "norm": self.norm, "eps": self.eps}
        for m in self.members:
            out[f"coverage[{m.name}]"] = m.coverage
        out["coverage[union]"] = self.pluralism.coverage
        for m in self.members:
            if np.isfinite(m.K):
                out[f"K[{m.name}]"] = m.K
        return out

    def report_section(self) -> dict:
        best = max(self.members, key=lambda m: m.coverage) if self.members else None
        reach = [m.name for m in self.members if m.coverage > self.target]
        headline = (f"At ε = {self.eps:g} ({self.norm} in {self.space}) the best single interpretation, "
                    f"{best.name}, explains {best.coverage:.1%} of inputs "
                    f"[{best.coverage_low:.1%}, {best.coverage_high:.1%}]; combined ({self.rule}) "
                    f"{self.pluralism.coverage:.1%}; "
                    + (f"above {self.target:g}: {', '.join(reach)}." if reach else f"none alone above {self.target:g}."))
        cols = ["coverage", "ci_low", "ci_high", "area", f"eps_for_{self.target:g}", "K", "budget", "ablation"]
        rows = [[m.coverage, m.coverage_low, m.coverage_high, m.area, m.eps_target, m.K, m.budget, m.ablation]
                for m in self.members]
        p = self.pluralism
        rows.append([p.coverage, p.coverage_low, p.coverage_high, float("nan"), float("nan"), float("nan"),
                     float("nan"), f"{self.rule} of {', '.join(self.combined)}"])
        return {"headline": headline,
                "table": {"index": [m.name for m in self.members] + ["combined"], "columns": cols,
                          "rows": [[_plain(v) for v in r] for r in rows]},
                "caption": (f"Coverage curves: the share of inputs x with δ(x) = ‖N(x) − I(x)‖ < ε for each "
                            f"interpretation I (shaded: {int(self.members[0].ci * 100)}% bootstrap band), the "
                            f"union of {', '.join(self.combined)} in black, the {self.target:g} line in red. A "
                            "curve further up and left explains more inputs at a smaller error; K is "
                            "sup_x δ(x) over the interpretation's own error budget.")}


def _plain(v):
    if isinstance(v, (np.floating, float)):
        return float(v)
    return v


def _representation_layers(model) -> list[str]:
    names = getattr(model, "hidden_names", None)
    if names:
        return list(names)
    from topo_mi.synthesis._interpretation import _sequential_groups

    groups = _sequential_groups(model) if hasattr(model, "named_children") else []
    return [rep for _, rep in groups[:-1]]


def _train_dictionary(model, layer, x, d_sae, k, steps, seed, batch_size):
    """A TopK sparse autoencoder of ``layer`` trained on the inputs' activations."""
    try:
        from topo_mi.dictionaries import train_sae
    except ImportError:
        fail("dictionary", "a trained dictionary of the layer (encode/decode) — topo_mi.dictionaries, which "
             "trains one, is not available", None)
    from topo_mi.synthesis._interpretation import layer_matrix

    A = layer_matrix(model, x, layer, batch_size).astype(np.float32)
    d = A.shape[1]
    d_sae = check_int("dictionary_size", d_sae, min_value=1) if d_sae is not None else 4 * d
    k = check_int("dictionary_k", k, min_value=1, max_value=d_sae) if k is not None else max(1, min(d_sae, d // 2))
    steps = check_int("dictionary_steps", steps, min_value=1)
    from topo_mi.parallel import torch_threads

    # small dictionaries train faster on one thread (restored after)
    with torch_threads(1 if d * d_sae < 65536 else None):
        return train_sae(A, kind="topk", d_sae=d_sae, k=k, n_steps=steps, batch_size=min(batch_size, len(A)),
                         seed=seed)


def profile(model, inputs, *, methods=("circuit", "magnitude", "projection", "dictionary", "mean"),
            layer: str | None = None,
            rank: int | None = None, variance: float = 0.9, circuit=None, dictionary=None,
            space: str = "probs", norm: str = "l1", eps: float = 0.1, relative: bool = False,
            target: float = 0.8, rule: Any = "any", n_boot: int = 1000, ci: float = 0.95, l0: float = 0.5,
            steps: int = 300, circuit_metric: str = "accuracy", granularity: str = "edges",
            ablation: str = "zero", dictionary_size: int | None = None, dictionary_k: int | None = None,
            dictionary_steps: int = 500, batch_size: int = 1024, seed: int = 0, progress: bool = False) -> SynthesisResult:
    """Build, evaluate and combine the standard interpretations of ``model`` on ``inputs``.

    Parameters
    ----------
    model : nn.Module
        An ``nn.Sequential`` MLP for the circuit methods; any model for the others.
    inputs : array of shape (n, in_dim)
    methods : tuple of {"circuit", "magnitude", "projection", "dictionary", "mean"}
        ``circuit``: :func:`topo_mi.circuits.find_circuit` (or the given ``circuit``) as an
        interpretation; ``magnitude``: as many units kept by weight magnitude; ``projection``:
        the rank-``rank`` projection of ``layer``; ``dictionary``: a sparse autoencoder of
        ``layer`` spliced in (``dictionary``, anything with ``encode``/``decode``, or a TopK SAE
        trained here with :func:`topo_mi.dictionaries.train_sae`: ``dictionary_size`` latents
        (default 4 × width), ``dictionary_k`` active (default width / 2), ``dictionary_steps``);
        ``mean``: the constant mean (a baseline, left
        out of the combination).
    layer : str, optional
        Layer of the projection and the dictionary (default: the middle hidden layer).
    rank : int, optional
        Default: the smallest rank explaining ``variance`` of the layer's variance.
    circuit : CircuitResult, optional
        A circuit already found on ``model`` (else one is searched on ``inputs`` with ``l0``,
        ``steps``, ``circuit_metric``, ``granularity``, ``ablation``).
    space, norm, eps, relative, target, rule, n_boot, ci
        As in :func:`topo_mi.synthesis.evaluate` and :func:`topo_mi.synthesis.combine`.
    seed : int, default 0
    """
    from topo_mi import synthesis as S

    methods = tuple(methods) if not isinstance(methods, str) else (methods,)
    if not methods:
        fail("methods", f"at least one of {', '.join(METHODS)}", methods)
    for m in methods:
        check_choice("methods", m, METHODS)
    variance = check_float("variance", variance, min_value=0.0, max_value=1.0, min_inclusive=False)
    seed = check_int("seed", seed, min_value=0)
    x = F.as_model_input(inputs, model)
    n = F.n_inputs(x)
    if n < 2:
        fail("inputs", "at least 2 inputs", n)
    xnp = x.detach().cpu().numpy() if not isinstance(x, dict) else None
    settings: dict[str, Any] = {}
    interps = []
    if "circuit" in methods or "magnitude" in methods:
        if circuit is None:
            from topo_mi.circuits import find_circuit

            circuit = find_circuit(model, xnp, metric=circuit_metric, l0=l0, steps=steps, seed=seed,
                                   granularity=granularity, ablation=ablation, progress=progress)
        settings["circuit"] = {"n_kept": circuit.n_kept, "n_units": circuit.n_units,
                               "granularity": circuit.granularity, "ablation": circuit.ablation,
                               "alpha": circuit.alpha, "l0": circuit.params.get("l0")}
        if "circuit" in methods:
            interps.append(S.circuit(model, circuit, data=xnp, seed=seed))
        if "magnitude" in methods:
            interps.append(S.circuit(model, circuit, data=xnp, ranking="magnitude", seed=seed,
                                     name=f"magnitude (top {circuit.n_kept})"))
    if "projection" in methods or "dictionary" in methods:
        if layer is None:
            reps = _representation_layers(model)
            if not reps:
                fail("layer", "a layer name (this model has no default hidden layers)", None)
            layer = reps[len(reps) // 2]
    if "projection" in methods:
        if rank is None:
            from topo_mi.geometry import spectrum

            from topo_mi.synthesis._interpretation import layer_matrix

            rank = spectrum(layer_matrix(model, x, layer, batch_size), method="exact").n_components_for(variance)
        interps.append(S.projection(model, layer, rank, xnp if xnp is not None else x, batch_size=batch_size,
                                    name=f"rank-{rank} {layer}"))
        settings["projection"] = {"layer": layer, "rank": int(rank), "variance": variance}
    if "dictionary" in methods:
        trained = dictionary is None
        if trained:
            dictionary = _train_dictionary(model, layer, x, dictionary_size, dictionary_k, dictionary_steps, seed,
                                           batch_size)
        interps.append(S.dictionary(model, layer, dictionary, data=x, batch_size=batch_size))
        settings["dictionary"] = {"layer": layer, "type": type(dictionary).__name__, "trained_here": trained}
    if "mean" in methods:
        interps.append(S.constant_mean(model, x, space=space, name="mean"))
    members = S.evaluate(model, interps, x, space=space, norm=norm, eps=eps, relative=relative, n_boot=n_boot,
                         ci=ci, target=target, batch_size=batch_size, seed=seed)
    combined = [m for m in members if m.method != "constant"] or members
    pl = S.combine(combined, rule=rule, n_boot=n_boot, ci=ci, seed=seed)
    return SynthesisResult(members=members, pluralism=pl, combined=[m.name for m in combined], eps=float(eps),
                           target=float(target), space=space, norm=norm, relative=bool(relative), rule=pl.rule,
                           settings=settings)


__all__ = ["SynthesisResult", "profile", "METHODS"]
