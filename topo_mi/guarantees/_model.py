"""What the proofs accept: a one-layer, one-head, attention-only transformer without biases or
layer norm, read as float64 weight matrices; and a FLOP counter for the proofs' arithmetic."""
from __future__ import annotations

from typing import Any

import numpy as np

from topo_mi._validation import fail

WEIGHTS = ("W_E", "W_pos", "W_Q", "W_K", "W_V", "W_O", "W_U")


def check_proof_model(model) -> dict[str, Any]:
    """Validate ``model`` and return its weights (float64 numpy) and sizes.

    Refused, naming the part that differs: a model without the seven weight matrices, biases
    (parameters or modules named ``b_*``/``bias``), layer norm, more than one head or layer,
    extra parameters, inconsistent shapes, a context shorter than 2 or non-finite weights.
    """
    from topo_mi.circuits._stack import is_transformer

    if not is_transformer(model):
        fail("model", "a one-layer attention-only transformer with parameters " + ", ".join(WEIGHTS)
             + " (e.g. topo_mi.models.AttentionOnlyTransformer)", f"a {type(model).__name__}", raw=True)
    try:
        named = dict(model.named_parameters())
        modules = list(model.named_modules())
    except AttributeError:
        fail("model", "a torch nn.Module", f"a {type(model).__name__}", raw=True)
    extra = sorted(set(named) - set(WEIGHTS))
    biases = [n for n in extra if n.split(".")[-1].startswith("b_") or "bias" in n.split(".")[-1]]
    norms = [n for n, m in modules if "norm" in type(m).__name__.lower() or n.split(".")[-1].startswith("ln")]
    if norms or any(n.split(".")[0].startswith("ln") for n in extra):
        fail("model", "no layer norm (the proofs use the residual stream as it is)",
             f"normalisation modules {', '.join(norms or [n for n in extra if n.startswith('ln')])}", raw=True)
    if biases:
        fail("model", "no biases (the proofs assume b_Q = b_K = b_V = b_O = b_U = 0)",
             f"bias parameters {', '.join(biases)}", raw=True)
    if extra:
        fail("model", "only the parameters " + ", ".join(WEIGHTS) + " (one attention layer, no MLP)",
             f"also {', '.join(extra)}", raw=True)
    n_layers = getattr(model, "n_layers", 1)
    if n_layers != 1:
        fail("model", "one layer", f"n_layers={n_layers}", raw=True)
    w = {k: named[k].detach().cpu().double().numpy() for k in WEIGHTS}
    E, P, Q, K, V, O, U = (w[k] for k in WEIGHTS)
    if E.ndim != 2 or P.ndim != 2 or U.ndim != 2 or Q.ndim != 3:
        fail("model", "W_E (d_vocab, d_model), W_pos (n_ctx, d_model), W_Q/W_K/W_V (n_heads, d_model, d_head), "
             "W_O (n_heads, d_head, d_model), W_U (d_model, d_vocab)",
             f"W_E {E.shape}, W_pos {P.shape}, W_Q {Q.shape}, W_U {U.shape}", raw=True)
    if Q.shape[0] != 1:
        fail("model", "one attention head (the proofs are for a single head)", f"n_heads={Q.shape[0]}", raw=True)
    d_vocab, d_model = E.shape
    n_ctx, d_head = P.shape[0], Q.shape[2]
    shapes = {"W_pos": (n_ctx, d_model), "W_Q": (1, d_model, d_head), "W_K": (1, d_model, d_head),
              "W_V": (1, d_model, d_head), "W_O": (1, d_head, d_model), "W_U": (d_model, d_vocab)}
    for k, s in shapes.items():
        if w[k].shape != s:
            fail("model", f"{k} of shape {s} (d_vocab={d_vocab}, d_model={d_model}, d_head={d_head}; "
                 "the output vocabulary must equal the input vocabulary)", f"shape {w[k].shape}", raw=True)
    if n_ctx < 2:
        fail("model", "n_ctx >= 2 (a query and at least one other position)", f"n_ctx={n_ctx}", raw=True)
    bad = [k for k in WEIGHTS if not np.all(np.isfinite(w[k]))]
    if bad:
        fail("model", "finite weights", f"non-finite values in {', '.join(bad)}", raw=True)
    return dict(E=E, P=P, Q=Q[0], K=K[0], V=V[0], O=O[0], U=U, d_vocab=int(d_vocab), d_model=int(d_model),
                n_ctx=int(n_ctx), d_head=int(d_head))


class Flops:
    """Counts floating-point operations as a proof performs them (one per add, multiply, compare,
    exp; ``2 m k n`` per (m, k) @ (k, n) product; ``2 m n min(m, n)`` per SVD, a standard estimate)."""

    def __init__(self):
        self.total = 0

    def add(self, n) -> None:
        self.total += int(n)

    def mm(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        out = a @ b
        inner = a.shape[-1]
        self.total += 2 * int(out.size) * int(inner)
        return out

    def ew(self, out: np.ndarray, per: int = 1) -> np.ndarray:
        """Record ``per`` operations per entry of ``out`` and return it."""
        self.total += int(per) * int(np.size(out))
        return out

    def svd(self, a: np.ndarray):
        m, n = a.shape
        self.total += 2 * m * n * min(m, n)
        return np.linalg.svd(a, full_matrices=False)
