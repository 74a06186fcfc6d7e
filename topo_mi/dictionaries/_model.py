"""One module for every sparse dictionary: SAE, transcoder and crosscoder.

``SparseDictionary`` reads ``n_in`` sources of width ``d_in`` and writes ``n_out`` sources of width
``d_out`` through ``d_sae`` shared latents:

    pre   = sum_n (x_n - b_pre_n) @ W_enc[n] + b_enc          (b, d_sae)
    z     = act(pre)                                           relu / topk / batchtopk / jumprelu
    x_hat = z @ W_dec + b_dec                                  (b, n_out, d_out)

An SAE has ``n_in = n_out = 1`` and ``d_out = d_in`` and subtracts its decoder bias from the input
(``b_pre = b_dec``, the usual convention); a transcoder (input layer -> output layer) has its own
targets and no input centring; a crosscoder has ``n_in = n_out`` sources (layers of one model or
the same layer of several models).
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import nn

from topo_mi._validation import check_choice, check_float, check_int, fail
from topo_mi.dictionaries import _losses as L

KINDS = ("relu", "topk", "batchtopk", "jumprelu")
_FORMAT = "topo_mi.dictionary/1"


def make_config(*, kind: str, d_in: int, d_sae: int, d_out: int | None = None, n_in: int = 1,
                n_out: int | None = None, k: int | None = None, k_aux: int | None = None,
                bandwidth: float = 0.05, init_threshold: float = 0.001,
                normalize_decoder: bool | None = None, apply_b_dec_to_input: bool | None = None) -> dict:
    """Validated architecture hyperparameters (a plain dict, saved beside the weights)."""
    check_choice("kind", kind, KINDS)
    d_in = check_int("d_in", d_in, min_value=1)
    d_sae = check_int("d_sae", d_sae, min_value=1)
    d_out = d_in if d_out is None else check_int("d_out", d_out, min_value=1)
    n_in = check_int("n_in", n_in, min_value=1)
    n_out = n_in if n_out is None else check_int("n_out", n_out, min_value=1)
    if kind in ("topk", "batchtopk"):
        if k is None:
            fail("k", f"the number of active latents (1 <= k <= d_sae = {d_sae}) for kind={kind!r}", k)
        k = check_int("k", k, min_value=1, max_value=d_sae)
    elif k is not None:
        k = check_int("k", k, min_value=1, max_value=d_sae)
    if k_aux is None:
        k_aux = max(1, min(d_sae, (d_out * n_out) // 2))  # Gao et al.: d_in / 2
    k_aux = check_int("k_aux", k_aux, min_value=1, max_value=d_sae)
    bandwidth = check_float("bandwidth", bandwidth, min_value=0.0, min_inclusive=False)
    init_threshold = check_float("init_threshold", init_threshold, min_value=0.0, min_inclusive=False)
    sae_like = n_in == n_out == 1 and d_out == d_in
    if apply_b_dec_to_input is None:
        apply_b_dec_to_input = sae_like
    if apply_b_dec_to_input and not (n_in == n_out and d_in == d_out):
        fail("apply_b_dec_to_input", "False when the targets differ in shape from the inputs (a transcoder)",
             apply_b_dec_to_input)
    if normalize_decoder is None:
        normalize_decoder = kind != "relu"  # ReLU + L1 is weighted by decoder norms instead
    return {"kind": kind, "d_in": d_in, "d_sae": d_sae, "d_out": d_out, "n_in": n_in, "n_out": n_out,
            "k": k, "k_aux": k_aux, "bandwidth": bandwidth, "init_threshold": init_threshold,
            "normalize_decoder": bool(normalize_decoder), "apply_b_dec_to_input": bool(apply_b_dec_to_input)}


class SparseDictionary(nn.Module):
    """A sparse autoencoder, transcoder or crosscoder (see the module docstring for the maths).

    Build one with :func:`topo_mi.dictionaries.train_sae` (and its siblings) or directly from a
    config (:func:`make_config`). ``encode``/``decode``/``forward`` accept ``(b, d)`` arrays when there
    is one source and ``(b, n, d)`` otherwise, numpy or torch; outputs have the matching shape.

    Attributes
    ----------
    cfg : dict
        Architecture hyperparameters.
    meta : dict
        Free-form provenance (layer names, training hyperparameters, data fingerprint).
    history : dict of str to ndarray
        Training curves (step, mse, l0, dead fraction), empty for an untrained dictionary.
    """

    def __init__(self, cfg: dict, *, seed: int = 0, meta: dict | None = None):
        super().__init__()
        self.cfg = make_config(**cfg)
        self.meta: dict = dict(meta or {})
        self.history: dict[str, np.ndarray] = {}
        c = self.cfg
        g = torch.Generator().manual_seed(int(seed))
        W_dec = torch.randn(c["d_sae"], c["n_out"], c["d_out"], generator=g)
        W_dec = W_dec / W_dec.flatten(1).norm(dim=1).clamp_min(1e-12)[:, None, None]
        if c["n_in"] == c["n_out"] and c["d_in"] == c["d_out"]:
            W_enc = W_dec.permute(1, 2, 0).clone()  # tied initialisation
        else:
            bound = 1.0 / math.sqrt(c["d_in"] * c["n_in"])
            W_enc = (torch.rand(c["n_in"], c["d_in"], c["d_sae"], generator=g) * 2 - 1) * bound
        self.W_enc = nn.Parameter(W_enc)
        self.b_enc = nn.Parameter(torch.zeros(c["d_sae"]))
        self.W_dec = nn.Parameter(W_dec)
        self.b_dec = nn.Parameter(torch.zeros(c["n_out"], c["d_out"]))
        if c["kind"] == "jumprelu":
            self.log_threshold = nn.Parameter(torch.full((c["d_sae"],), math.log(c["init_threshold"])))
        # BatchTopK's inference threshold (Bussmann et al. 2024): running mean of the smallest kept value
        self.register_buffer("threshold", torch.zeros(()))
        self.register_buffer("threshold_count", torch.zeros((), dtype=torch.long))

    # -- shapes --------------------------------------------------------------------------------
    @property
    def kind(self) -> str:
        return self.cfg["kind"]

    @property
    def d_sae(self) -> int:
        return self.cfg["d_sae"]

    def _as_input(self, x, n: int, d: int, name: str) -> tuple[torch.Tensor, bool]:
        t = torch.as_tensor(x, dtype=self.W_enc.dtype)
        squeeze = False
        if t.ndim == 2 and n == 1:
            t, squeeze = t.unsqueeze(1), True
        if t.ndim != 3 or t.shape[1:] != (n, d):
            want = f"(batch, {d})" if n == 1 else f"(batch, {n}, {d})"
            fail(name, f"an array of shape {want}", f"shape {tuple(t.shape)}", raw=True)
        return t, squeeze

    # -- maps ----------------------------------------------------------------------------------
    def pre_activations(self, x) -> torch.Tensor:
        """``(b, d_sae)`` encoder pre-activations."""
        c = self.cfg
        x, _ = self._as_input(x, c["n_in"], c["d_in"], "x")
        if c["n_in"] == 1:
            if c["apply_b_dec_to_input"]:
                return L.centred_linear(x[:, 0], self.b_dec.squeeze(0), self.W_enc.squeeze(0), self.b_enc)
            return torch.addmm(self.b_enc, x[:, 0], self.W_enc.squeeze(0))
        if c["apply_b_dec_to_input"]:
            x = x - self.b_dec
        return torch.einsum("bnd,nds->bs", x, self.W_enc) + self.b_enc

    def activate(self, pre: torch.Tensor) -> torch.Tensor:
        """The latent code from pre-activations (BatchTopK uses its threshold outside training)."""
        kind = self.cfg["kind"]
        if kind == "relu":
            return pre.relu()
        if kind == "topk":
            vals, idx = pre.topk(self.cfg["k"], dim=1)
            return torch.zeros_like(pre).scatter(1, idx, vals.relu())
        if kind == "batchtopk":
            if not self.training:
                return pre * (pre > self.threshold).to(pre.dtype)
            flat = pre.relu().flatten()
            kk = min(self.cfg["k"] * pre.shape[0], flat.numel())
            vals, idx = flat.topk(kk)
            z = torch.zeros_like(flat).scatter(0, idx, vals).view_as(pre)
            with torch.no_grad():
                pos = vals[vals > 0]
                if pos.numel():
                    cnt = self.threshold_count + 1
                    self.threshold.add_((pos.min() - self.threshold) / cnt)
                    self.threshold_count.copy_(cnt)
            return z
        return L.jumprelu(pre, self.log_threshold.exp(), self.cfg["bandwidth"])

    def encode(self, x) -> torch.Tensor:
        """``(b, d_sae)`` latent activations."""
        return self.activate(self.pre_activations(x))

    def decode(self, z, *, squeeze: bool = True) -> torch.Tensor:
        """``(b, d_out)`` (one source) or ``(b, n_out, d_out)`` reconstructions."""
        z = torch.as_tensor(z, dtype=self.W_dec.dtype)
        if z.ndim != 2 or z.shape[1] != self.cfg["d_sae"]:
            fail("z", f"an array of shape (batch, {self.cfg['d_sae']})", f"shape {tuple(z.shape)}", raw=True)
        if self.cfg["n_out"] == 1:
            out = torch.addmm(self.b_dec.squeeze(0), z, self.W_dec.squeeze(1))  # views: no copy in backward
            return out if squeeze else out.unsqueeze(1)
        return torch.einsum("bs,snd->bnd", z, self.W_dec) + self.b_dec

    def sparse_decode(self, vals: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        """``(b, n_out, d_out)`` from the ``k`` active latents of each row (``idx``, ``vals``: (b, k)).

        Equal to ``decode`` of the dense code; an ``embedding_bag`` reads only k decoder rows per
        sample (what TopK training uses).
        """
        import torch.nn.functional as F

        c = self.cfg
        out = F.embedding_bag(idx, self.W_dec.flatten(1), per_sample_weights=vals, mode="sum")
        return out.view(-1, c["n_out"], c["d_out"]) + self.b_dec

    def relu_training_forward(self, x: torch.Tensor, workspace: dict | None = None):
        """``(x_hat (b, 1, d_out), z_sum (d_sae,), z (b, d_sae))`` of a one-source ReLU dictionary in
        one autograd node (:func:`topo_mi.dictionaries._losses.relu_dictionary`, whose ``workspace``
        buffers a training loop keeps across steps); what training uses."""
        c = self.cfg
        if c["kind"] != "relu" or c["n_in"] != 1 or c["n_out"] != 1:
            fail("kind", "a ReLU dictionary with one input and one output source", c["kind"])
        b_dec = self.b_dec.squeeze(0)
        x_hat, z_sum, z = L.relu_dictionary(x[:, 0], b_dec if c["apply_b_dec_to_input"] else None,
                                            self.W_enc.squeeze(0), self.b_enc, self.W_dec.squeeze(1), b_dec,
                                            workspace)
        return x_hat.unsqueeze(1), z_sum, z

    def forward(self, x) -> torch.Tensor:
        return self.decode(self.encode(x))

    def reconstruct(self, x, *, batch_size: int = 4096) -> np.ndarray:
        """numpy in, numpy out, in eval mode and without gradients."""
        was = self.training
        self.eval()
        try:
            with torch.no_grad():
                xs = np.asarray(x, dtype=np.float32)
                return np.concatenate([self(xs[i:i + batch_size]).numpy() for i in range(0, len(xs), batch_size)])
        finally:
            self.train(was)

    # -- decoder geometry ----------------------------------------------------------------------
    @torch.no_grad()
    def normalize_decoder_(self) -> None:
        """Project every latent's decoder vector (all sources together) back to unit norm."""
        norms = self.W_dec.flatten(1).norm(dim=1).clamp_min(1e-12)
        self.W_dec.div_(norms[:, None, None])

    def decoder_directions(self, source: int = 0) -> np.ndarray:
        """``(d_sae, d_out)`` decoder rows into ``source`` (the dictionary's feature basis)."""
        check_int("source", source, min_value=0, max_value=self.cfg["n_out"] - 1)
        return self.W_dec[:, source].detach().numpy().copy()

    def relative_decoder_norms(self, a: int = 0, b: int = 1) -> np.ndarray:
        """Per latent ``||W_dec^a|| / (||W_dec^a|| + ||W_dec^b||)`` (crosscoder model diffing).

        1: the latent writes only to source ``a``; 0: only to ``b``; 0.5: equally to both.
        """
        n = self.cfg["n_out"]
        if n < 2:
            fail("source", "a dictionary with at least two output sources (a crosscoder)", f"n_out = {n}",
                 raw=True)
        check_int("a", a, min_value=0, max_value=n - 1)
        check_int("b", b, min_value=0, max_value=n - 1)
        norms = L.decoder_norms(self.W_dec.detach()).numpy().astype(np.float64)
        tot = norms[:, a] + norms[:, b]
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(tot > 0, norms[:, a] / tot, np.nan)

    # -- persistence ---------------------------------------------------------------------------
    def save(self, path) -> "Any":
        """Write ``<path>`` (a folder): ``dictionary.safetensors`` + ``cfg.json`` (atomic)."""
        from topo_mi.dictionaries._io import save_dictionary

        return save_dictionary(self, path)

    @classmethod
    def load(cls, path) -> "SparseDictionary":
        from topo_mi.dictionaries._io import load_dictionary

        return load_dictionary(path)

    def export_saelens(self, path, **kw):
        """Write the SAELens layout (``cfg.json`` + ``sae_weights.safetensors``); SAEs only."""
        from topo_mi.dictionaries._io import export_saelens

        return export_saelens(self, path, **kw)

    def __repr__(self) -> str:
        c = self.cfg
        extra = f", k={c['k']}" if c["k"] is not None else ""
        shape = f"{c['n_in']}x{c['d_in']} -> {c['d_sae']} -> {c['n_out']}x{c['d_out']}"
        return f"SparseDictionary(kind={c['kind']!r}, {shape}{extra})"


def geometric_median(X: np.ndarray, *, max_iter: int = 200, tol: float = 1e-7) -> np.ndarray:
    """Weiszfeld's iteration for ``argmin_m sum_i ||x_i - m||`` (rows of ``X``), float64.

    Starts from the mean; a point landing exactly on a sample is nudged by the usual
    Vardi–Zhang guard (weights of coincident samples are dropped).
    """
    X = np.asarray(X, dtype=np.float64)
    m = X.mean(axis=0)
    for _ in range(max_iter):
        d = np.linalg.norm(X - m, axis=1)
        keep = d > 1e-12
        if not keep.any():
            return m
        w = 1.0 / d[keep]
        new = (w[:, None] * X[keep]).sum(axis=0) / w.sum()
        if np.linalg.norm(new - m) <= tol * max(1.0, np.linalg.norm(m)):
            return new
        m = new
    return m
