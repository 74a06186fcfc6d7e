"""The synthesis pipeline: interpretations of a model judged by explanatory coverage and consistency."""
from __future__ import annotations

__all__ = ["synthesis_profile", "SynthesisResult"]


def __getattr__(name: str):
    if name == "SynthesisResult":
        from topo_mi.synthesis._profile import SynthesisResult

        return SynthesisResult
    raise AttributeError(f"module 'topo_mi.pipelines.synthesis' has no attribute {name!r}")


def synthesis_profile(model, inputs, *, methods=("circuit", "magnitude", "projection", "dictionary", "mean"),
                      layer=None,
                      rank=None, variance: float = 0.9, circuit=None, dictionary=None, space: str = "probs",
                      norm: str = "l1", eps: float = 0.1, relative: bool = False, target: float = 0.8,
                      rule="any", n_boot: int = 1000, ci: float = 0.95, l0: float = 0.5, steps: int = 300,
                      circuit_metric: str = "accuracy", granularity: str = "edges", ablation: str = "zero",
                      dictionary_size=None, dictionary_k=None, dictionary_steps: int = 500,
                      batch_size: int = 1024, seed: int = 0, progress: bool = False):
    """Build the standard interpretations of ``model`` (a learned circuit, magnitude pruning at the same
    size, a rank-r projection, a sparse dictionary, the constant mean), measure each one's coverage
    and consistency on ``inputs``, and combine them; see :func:`topo_mi.synthesis.profile`.

    Returns
    -------
    SynthesisResult
        ``members`` (one CoverageResult each), ``pluralism`` (the union), ``report_section()``.
    """
    from topo_mi.synthesis._profile import profile

    return profile(model, inputs, methods=methods, layer=layer, rank=rank, variance=variance, circuit=circuit,
                   dictionary=dictionary, space=space, norm=norm, eps=eps, relative=relative, target=target,
                   rule=rule, n_boot=n_boot, ci=ci, l0=l0, steps=steps, circuit_metric=circuit_metric,
                   granularity=granularity, ablation=ablation, dictionary_size=dictionary_size,
                   dictionary_k=dictionary_k, dictionary_steps=dictionary_steps, batch_size=batch_size, seed=seed,
                   progress=progress)
