"""Training sparse dictionaries: seeded streaming batches, every loss term, resampling, checkpoints."""
from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Callable

import numpy as np

from topo_mi._validation import as_array, check_choice, check_float, check_int, fail
from topo_mi.errors import (InvalidParameterError, NonFiniteError, ResourceError, StoreMismatchError)

_CKPT = "checkpoint.safetensors"
_CKPT_FORMAT = "topo_mi.dictionary-checkpoint/1"


# ---------------------------------------------------------------------------------------------
# data
# ---------------------------------------------------------------------------------------------
def _is_acts(obj) -> bool:
    from topo_mi.activations import Activations

    return isinstance(obj, Activations)


def _open(obj):
    """A path to an on-disk store opens lazily (memory-mapped)."""
    if isinstance(obj, (str, Path)):
        from topo_mi.activations import Activations

        return Activations.load(obj, mmap=True)
    return obj


class RowView:
    """Rows ``rows`` of a 2-D array (or memory-mapped store layer), indexable like an array.

    Only the rows asked for are read, so a training subset of a large store stays on disk.
    """

    def __init__(self, arr, rows):
        self.arr, self.rows = arr, np.asarray(rows)
        self.shape = (len(self.rows), int(arr.shape[1]))
        self.ndim, self.dtype = 2, np.dtype(np.float32)

    def __getitem__(self, idx):
        return np.asarray(self.arr[self.rows[idx]])

    def __len__(self):
        return self.shape[0]


def _layer_array(data, layer, name: str) -> np.ndarray:
    data = _open(data)
    if isinstance(data, RowView):
        return data
    if _is_acts(data) or isinstance(data, Mapping):
        if layer is None:
            keys = list(data)
            if len(keys) != 1:
                fail(name, f"a layer name (the activations hold {len(keys)} layers: {keys[:6]})", None)
            layer = keys[0]
        if _is_acts(data):
            return data[layer]  # UnknownNameError names the closest layers
        if layer not in data:
            from topo_mi._validation import unknown_name

            raise unknown_name("layer", layer, data)
        data = data[layer]
    elif layer is not None and not isinstance(layer, str):
        fail(name, "a layer name", layer)
    arr = as_array(data, name)
    if arr.ndim != 2 or arr.dtype.kind not in "biuf":
        fail(name, "a numeric array of shape (n_samples, n_features)", arr)
    return arr


class _Source:
    """Rows of aligned input arrays (and target arrays), read one batch at a time.

    From an ``Activations`` object (in memory or an on-disk store) the batches come from its
    ``iter_batches`` (block-shuffled windows of bounded size, sequential reads): epoch ``e`` uses
    seed ``[seed, e]`` and drops its last partial batch. Otherwise (arrays, tensors, row views):

    Batch ``t`` of a run with seed ``s`` holds the rows ``perm_e[j*b:(j+1)*b]`` where ``e, j =
    divmod(t, n // b)`` and ``perm_e = default_rng([s, e]).permutation(n)``: any step's batch is
    known without replaying the run (resume), and only one batch is in memory at a time (rows are
    read in sorted order, which memory-mapped stores serve without loading the rest).
    """

    def __init__(self, inputs: list[np.ndarray], targets: list[np.ndarray] | None, batch_size: int, seed: int,
                 acts=None, names=None, buffer: int | None = None):
        self.inputs, self.targets, self.buffer = inputs, targets, buffer
        # an Activations object streams through its own bounded-memory shuffler (iter_batches)
        self.acts, self.names = acts, names
        self._it, self._next = None, None
        self.n = int(inputs[0].shape[0])
        for a in inputs + (targets or []):
            if a.shape[0] != self.n:
                fail("data", f"arrays with {self.n} rows each", f"{a.shape[0]} rows", raw=True)
        if self.n < batch_size:
            fail("batch_size", f"at most the number of samples ({self.n})", batch_size)
        self.batch_size, self.seed = batch_size, seed
        self.per_epoch = self.n // batch_size
        self._perm_epoch, self._perm = -1, None

    def rows(self, step: int) -> np.ndarray:
        epoch, j = divmod(step, self.per_epoch)
        if epoch != self._perm_epoch:
            self._perm = np.random.default_rng([self.seed, epoch]).permutation(self.n)
            self._perm_epoch = epoch
        return np.sort(self._perm[j * self.batch_size:(j + 1) * self.batch_size])

    @staticmethod
    def _stack(arrs, idx) -> np.ndarray:
        if len(arrs) == 1:  # one source: a view of the rows read, no second copy
            return np.asarray(arrs[0][idx], dtype=np.float32)[:, None]
        return np.stack([np.asarray(a[idx], dtype=np.float32) for a in arrs], axis=1)

    def _stream(self, step: int):
        """Batch ``step`` from ``Activations.iter_batches`` (epoch e: seed ``[seed, e]``, drop_last)."""
        epoch, j = divmod(step, self.per_epoch)
        if self._next != (epoch, j):
            self._it = self.acts.iter_batches(self.batch_size, layers=list(dict.fromkeys(self.names)),
                                              shuffle=True, seed=[self.seed, epoch], drop_last=True,
                                              return_index=True,
                                              **({} if self.buffer is None else {"buffer": self.buffer}))
            for _ in range(j):  # resuming inside an epoch: skip the batches already seen
                next(self._it)
        idx, arrays = next(self._it)
        self._next = (epoch, j + 1) if j + 1 < self.per_epoch else None  # next epoch: a new iterator
        k = len(self.inputs)
        x = self._stack([arrays[nm] for nm in self.names[:k]], slice(None))
        y = self._stack([arrays[nm] for nm in self.names[k:]], slice(None)) if self.targets is not None else None
        return np.asarray(idx), x, y

    def batch(self, step, idx: np.ndarray | None = None):
        """Batch ``step`` (an int), or the rows ``idx`` of a named sample (``step`` then names it)."""
        if idx is None and self.acts is not None:
            idx, x, y = self._stream(step)
            self._check(x, y, idx, f"batch {step}")
            return x, y
        idx = self.rows(step) if idx is None else idx
        where = f"batch {step}" if isinstance(step, (int, np.integer)) else str(step)
        x = self._stack(self.inputs, idx)
        y = None if self.targets is None else self._stack(self.targets, idx)
        self._check(x, y, idx, where)
        return x, y

    @staticmethod
    def _check(x, y, idx, where):
        for what, arr in (("inputs", x), ("targets", y)):
            if arr is not None and not np.isfinite(arr).all():
                bad = int((~np.isfinite(arr).reshape(len(arr), -1).all(axis=1)).sum())
                raise NonFiniteError(f"data: expected finite activations, got {bad} non-finite rows in "
                                     f"{where} ({what}; sample positions {idx[:5].tolist()}...)")

    def sample(self, n: int, seed) -> np.ndarray:
        rng = np.random.default_rng(seed)
        return np.sort(rng.choice(self.n, size=min(n, self.n), replace=False))

    def fingerprint(self) -> str:
        h = hashlib.sha256()
        probe = np.unique(np.linspace(0, self.n - 1, 16).astype(np.int64))
        for a in self.inputs + (self.targets or []):
            h.update(str(a.shape).encode())
            h.update(np.ascontiguousarray(np.asarray(a[probe], dtype=np.float32)).tobytes())
        h.update(str(self.targets is not None).encode())
        return h.hexdigest()[:24]


# ---------------------------------------------------------------------------------------------
# training
# ---------------------------------------------------------------------------------------------
_DEFAULT_COEF = {"relu": 0.2, "jumprelu": 0.01}


def _memory_check(cfg: dict, batch_size: int) -> None:
    from topo_mi._resources import available_memory
    from topo_mi._resources import fmt_bytes as _fmt_bytes

    c = cfg
    params = c["n_in"] * c["d_in"] * c["d_sae"] + c["d_sae"] * c["n_out"] * c["d_out"]
    need = 4 * (4 * params + 6 * batch_size * c["d_sae"] + 4 * batch_size * (c["n_in"] * c["d_in"]
                                                                             + c["n_out"] * c["d_out"]))
    avail = available_memory()
    if need > 0.8 * avail:
        raise ResourceError(f"d_sae: a dictionary of {params:,} weights trained in batches of {batch_size} needs "
                            f"about {_fmt_bytes(need)}, more than 80% of the {_fmt_bytes(avail)} available; "
                            "lower d_sae or batch_size")


def _train(inputs, targets, *, kind, d_sae, k, coefficient, n_steps, batch_size, lr, seed, b_dec_init,
           aux_coefficient, k_aux, bandwidth, init_threshold, dead_after, resample_at, resample_samples,
           normalize_decoder, checkpoint_dir, checkpoint_every, resume, progress, log_every, callback, meta,
           init=None, stream=None, auxk_normalization="none", project_decoder_grad=False, shuffle_buffer=None):
    import torch

    from topo_mi.dictionaries import _losses as L
    from topo_mi.dictionaries._model import SparseDictionary, geometric_median, make_config

    n_steps = check_int("n_steps", n_steps, min_value=1)
    batch_size = check_int("batch_size", batch_size, min_value=1)
    lr = check_float("lr", lr, min_value=0.0, min_inclusive=False)
    seed = check_int("seed", seed, min_value=0)
    check_choice("b_dec_init", b_dec_init, ("geometric_median", "mean", "zeros"))
    aux_coefficient = check_float("aux_coefficient", aux_coefficient, min_value=0.0)
    dead_after = check_int("dead_after", dead_after, min_value=1)
    check_choice("auxk_normalization", auxk_normalization, ("none", "residual_variance"))
    if not isinstance(project_decoder_grad, (bool, np.bool_)):
        fail("project_decoder_grad", "True or False", project_decoder_grad)
    if shuffle_buffer is not None:
        if stream is None:
            fail("shuffle_buffer", "None here: these batches come from one permutation of all rows (the window "
                 "applies when an Activations object or a store is streamed)", shuffle_buffer)
        shuffle_buffer = check_int("shuffle_buffer", shuffle_buffer, min_value=1)
        if shuffle_buffer < batch_size:
            fail("shuffle_buffer", f"at least batch_size={batch_size} rows", shuffle_buffer)
    resample_at = sorted({check_int("resample_at", s, min_value=1) for s in (resample_at or ())})
    resample_samples = check_int("resample_samples", resample_samples, min_value=1)
    log_every = check_int("log_every", log_every or max(1, n_steps // 200), min_value=1)
    if coefficient is None:
        coefficient = _DEFAULT_COEF.get(kind, 0.0)
    coefficient = check_float("l1_coefficient" if kind == "relu" else "l0_coefficient", coefficient, min_value=0.0)
    d_in = int(inputs[0].shape[1])
    for a in inputs:
        if a.shape[1] != d_in:
            fail("data", f"sources of one width ({d_in})", f"a source of width {a.shape[1]}", raw=True)
    tgt = targets if targets is not None else inputs
    d_out = int(tgt[0].shape[1])
    for a in tgt:
        if a.shape[1] != d_out:
            fail("target", f"targets of one width ({d_out})", f"a target of width {a.shape[1]}", raw=True)
    if d_sae is None:
        fail("d_sae", "the number of latents (an integer >= 1)", None)
    cfg = make_config(kind=kind, d_in=d_in, d_sae=d_sae, d_out=d_out, n_in=len(inputs), n_out=len(tgt), k=k,
                      k_aux=k_aux, bandwidth=bandwidth, init_threshold=init_threshold,
                      normalize_decoder=normalize_decoder,
                      apply_b_dec_to_input=False if targets is not None else None)
    if project_decoder_grad and not cfg["normalize_decoder"]:
        fail("project_decoder_grad", "normalize_decoder=True (the projection keeps unit-norm rows on the sphere)",
             "normalize_decoder=False", raw=True)
    _memory_check(cfg, batch_size)
    src = _Source(inputs, targets, batch_size, seed, *(stream or (None, None)), buffer=shuffle_buffer)
    hyper = {"cfg": cfg, "batch_size": batch_size, "lr": lr, "seed": seed, "b_dec_init": b_dec_init,
             "coefficient": coefficient, "aux_coefficient": aux_coefficient, "dead_after": dead_after,
             "resample_at": resample_at, "resample_samples": resample_samples, "log_every": log_every,
             "data": src.fingerprint()}
    # options added later enter the hyperparameters only when set, so older checkpoints still resume
    for key, val, default in (("auxk_normalization", auxk_normalization, "none"),
                              ("project_decoder_grad", bool(project_decoder_grad), False),
                              ("shuffle_buffer", shuffle_buffer, None)):
        if val != default:
            hyper[key] = val

    model = SparseDictionary(cfg, seed=seed, meta=meta)
    if init is not None:
        if not isinstance(init, SparseDictionary) or init.cfg != cfg:
            fail("init", f"a SparseDictionary with the configuration {cfg}",
                 getattr(init, "cfg", init), raw=not isinstance(init, SparseDictionary))
        model.load_state_dict(init.state_dict())
        h = hashlib.sha256()
        for v in init.state_dict().values():
            h.update(v.detach().numpy().tobytes())
        hyper["init"] = h.hexdigest()[:24]
    opt = torch.optim.Adam(model.parameters(), lr=lr, foreach=True)  # the same updates, bit for bit
    since_fired = torch.zeros(cfg["d_sae"], dtype=torch.long)
    hist: dict[str, list] = {"step": [], "mse": [], "l0": [], "dead_fraction": [], "aux": []}
    start = 0

    ckpt = None
    if checkpoint_dir is not None:
        ckpt = Path(checkpoint_dir) / _CKPT
        checkpoint_every = check_int("checkpoint_every", checkpoint_every or max(1, n_steps // 10), min_value=1)
        if ckpt.exists():
            if not resume:
                fail("checkpoint_dir", "a folder without a checkpoint, or resume=True to continue from it",
                     str(ckpt))
            start = _load_checkpoint(ckpt, hyper, model, opt, since_fired, hist)
            if start > n_steps:
                fail("n_steps", f"at least the checkpoint's step ({start})", n_steps)
    if start == 0 and init is None and b_dec_init != "zeros":
        init_rows = src.sample(4096, [seed, 10**6])
        _, y0 = src.batch("the initialisation sample", init_rows) if targets is not None else (None, None)
        ref = y0 if y0 is not None else src.batch("the initialisation sample", init_rows)[0]
        with torch.no_grad():
            for nn_ in range(cfg["n_out"]):
                if b_dec_init == "geometric_median":
                    model.b_dec[nn_] = torch.as_tensor(geometric_median(ref[:, nn_]), dtype=torch.float32)
                elif b_dec_init == "mean":
                    model.b_dec[nn_] = torch.as_tensor(ref[:, nn_].mean(axis=0), dtype=torch.float32)

    from tqdm.auto import tqdm

    bar = tqdm(total=n_steps, initial=start, disable=not progress, desc=f"train {kind}", leave=False)
    model.train()
    workspace: dict = {}  # buffers reused across steps (see _losses.relu_dictionary)
    dead_of = None
    if kind == "topk" and aux_coefficient > 0:
        def dead_of(idx, vals):  # the dead mask once this batch is counted (since_fired changes in place)
            fired_now = torch.zeros(len(since_fired), dtype=torch.bool)
            fired_now[idx[vals > 0]] = True
            return (since_fired + batch_size >= dead_after) & ~fired_now
    try:
        for step in range(start, n_steps):
            if step in resample_at:
                _resample(model, opt, src, since_fired, dead_after, resample_samples, seed, step)
            xb, yb = src.batch(step)
            x = torch.from_numpy(xb)
            y = x if yb is None else torch.from_numpy(yb)
            y_hat, pre, code, z_sum, fired, sel = _forward(model, x, workspace, dead_of)
            with torch.no_grad():  # the counters first: a latent firing in this batch is not dead for its AuxK
                since_fired.add_(batch_size)
                if fired.dtype == torch.bool:
                    since_fired.masked_fill_(fired, 0)
                else:
                    since_fired[fired] = 0
            mse = L.reconstruction_loss(y, y_hat)
            loss = mse
            aux = None
            if kind == "relu" and coefficient > 0:
                loss = loss + coefficient * L.l1_penalty_from_sums(z_sum, model.W_dec, x.shape[0])
            elif kind == "jumprelu" and coefficient > 0:
                loss = loss + coefficient * L.l0_penalty(pre, model.log_threshold.exp(), cfg["bandwidth"])
            elif kind in ("topk", "batchtopk") and aux_coefficient > 0:
                dead = since_fired >= dead_after
                if sel is not None:  # AuxK's selection made by the encoder's own pass (TopK, one source)
                    aux = L.auxk_loss_sparse(*sel, int(dead.sum()), y - y_hat, model.W_dec, cfg["k_aux"],
                                             normalization=auxk_normalization)
                    loss = loss + aux_coefficient * aux
                elif dead.any():
                    pre_aux = _aux_pre_activations(model, x, pre)
                    aux = L.auxk_loss(pre_aux, dead, y - y_hat, model.W_dec, cfg["k_aux"],
                                      normalization=auxk_normalization)
                    loss = loss + aux_coefficient * aux
            if not torch.isfinite(loss):
                from topo_mi.errors import DivergenceError

                raise DivergenceError(f"lr: the loss became non-finite at step {step}; lower lr, got {lr}")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if project_decoder_grad:
                L.project_out_parallel_(model.W_dec.grad, model.W_dec.detach())
            opt.step()
            if cfg["normalize_decoder"]:
                model.normalize_decoder_()
            if step % log_every == 0 or step == n_steps - 1:  # the curves (and the bar) every log_every steps
                # training codes are >= 0, so sign() counts the active entries (per column, then in float64)
                n_on = float(torch.sign(code, out=L._buffer(workspace, "sign", code.shape, code.dtype))
                             .sum(dim=0).sum(dtype=torch.float64))
                l0 = n_on / x.shape[0]
                m = float(mse.detach())
                hist["step"].append(step)
                hist["mse"].append(m)
                hist["l0"].append(l0)
                hist["dead_fraction"].append(float((since_fired >= dead_after).float().mean()))
                hist["aux"].append(0.0 if aux is None else float(aux.detach()))
                bar.set_postfix(l0=f"{l0:.1f}", mse=f"{m:.4g}", refresh=False)
            bar.update(1)
            done = step + 1
            if ckpt is not None and (done % checkpoint_every == 0 or done == n_steps):
                _save_checkpoint(ckpt, hyper, model, opt, since_fired, hist, done)
            if callback is not None:
                callback(done, model)
    finally:
        bar.close()
    model.eval()
    model.history = {k: np.asarray(v, dtype=np.int64 if k == "step" else np.float64) for k, v in hist.items()}
    model.history["tokens_since_fired"] = since_fired.numpy().copy()
    model.meta.update({"train": {k: v for k, v in hyper.items() if k != "cfg"}, "n_steps": n_steps,
                       "n_samples": src.n})
    return model


def _forward(model, x, workspace: dict, dead_of=None):
    """One training forward: ``(y_hat, pre, code, z_sum, fired, aux_selection)``.

    ``pre``: the dense pre-activations where the step needs them (``None`` on the sparse TopK and
    fused ReLU paths); ``code``: the (detached, non-negative) active values for metrics — ``(b, k)``
    for TopK, ``(b, d_sae)`` otherwise; ``z_sum``: the code's column sums (ReLU, for the L1);
    ``fired``: the latents active in the batch (a mask, or TopK's indices); ``aux_selection``:
    ``(aux_vals, aux_idx)`` of AuxK on the one-source TopK path when ``dead_of`` is given (see
    ``_losses.topk_encode``), else ``None`` (AuxK then reads the dense pre-activations).
    """
    from topo_mi.dictionaries import _losses as L

    cfg, kind = model.cfg, model.cfg["kind"]
    if kind == "relu" and cfg["n_in"] == cfg["n_out"] == 1:
        # encode, decode and the code's column sums in one autograd node, buffers reused across steps
        y_hat, z_sum, z = model.relu_training_forward(x, workspace)
        return y_hat, None, z, z_sum, z_sum.detach() > 0, None
    if kind == "topk":  # sparse decode: k rows of W_dec per sample instead of a dense matmul
        if cfg["n_in"] == 1:  # and a sparse backward through the encoder
            xin = x[:, 0] - model.b_dec.squeeze(0) if cfg["apply_b_dec_to_input"] else x[:, 0]
            out = L.topk_encode(xin, model.W_enc.squeeze(0), model.b_enc, cfg["k"], k_aux=cfg["k_aux"],
                                dead_of=dead_of)
            vals, idx, sel = out[0], out[1], (out[2:] if dead_of is not None else None)
            pre = None
        else:
            pre = model.pre_activations(x)
            vals, idx = pre.topk(cfg["k"], dim=1)
            vals, sel = vals.relu(), None
        return model.sparse_decode(vals, idx), pre, vals.detach(), None, idx[vals > 0], sel
    pre = model.pre_activations(x)
    z = model.activate(pre)
    y_hat = model.decode(z, squeeze=False)
    if kind == "relu":  # z >= 0: one column sum finds the latents that fired and gives the L1
        z_sum = z.sum(dim=0)
        return y_hat, pre, z.detach(), z_sum, z_sum.detach() > 0, None
    return y_hat, pre, z.detach(), None, z.detach().amax(dim=0) > 0, None


def _aux_pre_activations(model, x, pre=None):
    """The pre-activations AuxK reads: equal to ``model.pre_activations(x)``, but with the shared
    input centring ``b_dec`` held fixed, so the auxiliary loss moves only the dead latents' encoder
    rows and biases (and their decoder rows), never ``b_dec``.

    ``pre = (x - b_dec) W + b`` has ``d pre / d b_dec = -W``; adding ``(b_dec - sg(b_dec)) W`` (zero
    in value) cancels it.
    """
    import torch

    pre = model.pre_activations(x) if pre is None else pre
    if model.cfg["apply_b_dec_to_input"]:
        pre = pre + torch.einsum("nd,nds->s", model.b_dec - model.b_dec.detach(), model.W_enc)
    return pre


# ---------------------------------------------------------------------------------------------
# Anthropic's resampling of dead latents
# ---------------------------------------------------------------------------------------------
def _resample(model, opt, src: _Source, since_fired, dead_after: int, n_samples: int, seed: int, step: int) -> int:
    """Re-initialise dead latents from inputs drawn with probability ∝ squared reconstruction error.

    Towards Monosemanticity (Bricken et al. 2023, "Neuron resampling"): for each dead latent draw an
    input ``x`` with probability ``∝ ||y - y_hat||^2``; decoder row = ``y / ||y||``; encoder row =
    ``x / ||x|| * 0.2 * mean alive encoder norm``; encoder bias 0; Adam's moments of those rows
    reset to 0. Returns the number of latents resampled.
    """
    import torch

    dead = (since_fired >= dead_after).nonzero().flatten()
    if dead.numel() == 0:
        return 0
    rows = src.sample(n_samples, [seed, step, 7])
    xb, yb = src.batch(f"the resampling sample of step {step}", rows)
    was = model.training
    model.eval()  # no BatchTopK threshold update from the scoring pass
    with torch.no_grad():
        x = torch.from_numpy(xb)
        y = x if yb is None else torch.from_numpy(yb)
        err = (y - model.decode(model.encode(x), squeeze=False)).pow(2).flatten(1).sum(dim=1).double().numpy()
        p = err / err.sum() if err.sum() > 0 else np.full(len(err), 1.0 / len(err))
        pick = np.random.default_rng([seed, step, 11]).choice(len(err), size=dead.numel(), replace=True, p=p)
        xs = x[pick].flatten(1)
        ys = y[pick].flatten(1)
        alive = torch.ones(model.d_sae, dtype=torch.bool)
        alive[dead] = False
        enc_norms = model.W_enc.permute(2, 0, 1).flatten(1).norm(dim=1)
        scale = float(enc_norms[alive].mean()) if alive.any() else 1.0
        xn = xs / xs.norm(dim=1, keepdim=True).clamp_min(1e-12)
        yn = ys / ys.norm(dim=1, keepdim=True).clamp_min(1e-12)
        n_in, d_in = model.W_enc.shape[:2]
        model.W_enc[:, :, dead] = (xn * 0.2 * scale).T.reshape(n_in, d_in, -1)
        model.W_dec[dead] = yn.reshape(len(dead), *model.W_dec.shape[1:])
        model.b_enc[dead] = 0.0
        for p_, sl in ((model.W_enc, (slice(None), slice(None), dead)), (model.W_dec, (dead,)),
                       (model.b_enc, (dead,))):
            st = opt.state.get(p_)
            if st:
                st["exp_avg"][sl] = 0.0
                st["exp_avg_sq"][sl] = 0.0
        since_fired[dead] = 0
    model.train(was)
    return int(dead.numel())


# ---------------------------------------------------------------------------------------------
# checkpoints: one safetensors file (weights, Adam state, counters, curves) + its metadata
# ---------------------------------------------------------------------------------------------
def _param_names(model) -> dict:
    return {id(p): n for n, p in model.named_parameters()}


def _save_checkpoint(path: Path, hyper, model, opt, since_fired, hist, step: int) -> None:
    import torch
    from safetensors.torch import save_file

    from topo_mi._io import atomic_path

    t = {f"model.{k}": v.detach().clone().contiguous() for k, v in model.state_dict().items()}
    names = _param_names(model)
    for p, st in opt.state.items():
        n = names[id(p)]
        for key in ("exp_avg", "exp_avg_sq"):
            t[f"opt.{n}.{key}"] = st[key].detach().clone().contiguous()
        t[f"opt.{n}.step"] = torch.as_tensor(st["step"]).reshape(1).clone().to(torch.float64)
    t["since_fired"] = since_fired.clone()
    for k, v in hist.items():
        t[f"hist.{k}"] = torch.as_tensor(np.asarray(v, dtype=np.float64))
    meta = {"format": _CKPT_FORMAT, "step": str(step), "hyper": json.dumps(hyper, sort_keys=True)}
    with atomic_path(path, suffix=".safetensors") as tmp:
        save_file(t, str(tmp), metadata=meta)


def _load_checkpoint(path: Path, hyper, model, opt, since_fired, hist) -> int:
    import torch
    from safetensors import safe_open
    from safetensors.torch import load_file

    with safe_open(str(path), framework="pt") as fh:
        meta = fh.metadata() or {}
    if meta.get("format") != _CKPT_FORMAT:
        fail("checkpoint_dir", f"a {_CKPT_FORMAT} checkpoint", f"format {meta.get('format')!r}", raw=True)
    saved = json.loads(meta["hyper"])
    now = json.loads(json.dumps(hyper, sort_keys=True))
    if saved != now:
        diff = sorted(k for k in set(saved) | set(now) if saved.get(k) != now.get(k))
        shown = "; ".join(f"{k}: checkpoint {saved.get(k)!r} vs now {now.get(k)!r}" for k in diff)
        raise StoreMismatchError(f"checkpoint_dir: expected the hyperparameters and data the checkpoint was "
                                 f"written with, got different ones ({shown}); use another folder")
    t = load_file(str(path))
    model.load_state_dict({k[6:]: v for k, v in t.items() if k.startswith("model.")}, strict=True)
    params = dict(model.named_parameters())
    for n, p in params.items():
        if f"opt.{n}.exp_avg" in t:
            opt.state[p] = {"step": torch.tensor(float(t[f"opt.{n}.step"][0])),
                            "exp_avg": t[f"opt.{n}.exp_avg"].clone(), "exp_avg_sq": t[f"opt.{n}.exp_avg_sq"].clone()}
    since_fired.copy_(t["since_fired"])
    for k in hist:
        vals = t[f"hist.{k}"].numpy().tolist()
        hist[k] = [int(v) for v in vals] if k == "step" else vals
    return int(meta["step"])


# ---------------------------------------------------------------------------------------------
# public entry points
# ---------------------------------------------------------------------------------------------
_DOC_COMMON = """
    kind : {'relu', 'topk', 'batchtopk', 'jumprelu'}
        ReLU + decoder-norm-weighted L1 (``l1_coefficient``); TopK (Gao et al. 2024) with AuxK;
        BatchTopK (Bussmann et al. 2024: the top ``k * batch`` activations of the batch, an inference
        threshold learned on the way); JumpReLU (Rajamanoharan et al. 2024; ``l0_coefficient``,
        ``bandwidth`` of the rectangle-kernel straight-through estimator).
    d_sae : int
        Number of latents (or give ``expansion`` = d_sae / d_in).
    k : int
        Active latents per sample (topk: exactly; batchtopk: on average).
    l1_coefficient, l0_coefficient : float
        Sparsity weights (relu default 0.2; jumprelu default 0.01). Losses are means over the batch
        of sums over features, so coefficients depend on the scale of the activations.
    n_steps, batch_size, lr, seed
        Adam steps, rows per step, learning rate, the seed of initialisation and batch order.
    b_dec_init : {'geometric_median', 'mean', 'zeros'}
        Decoder bias initialisation from 4,096 rows.
    aux_coefficient, k_aux : AuxK weight (1/32) and size (default d_in / 2).
    auxk_normalization : {'none', 'residual_variance'}
        AuxK's error as in the paper and sparsify (``mean_b ||e - e_hat||^2``, the default) or
        divided by the residual's variance over the batch (OpenAI's reference code).
    project_decoder_grad : bool
        Remove from each decoder row's gradient its component along the row before the Adam step
        (OpenAI, SAELens, sparsify); needs ``normalize_decoder``. Default off (the projection after
        the step alone keeps rows at unit norm).
    shuffle_buffer : int, optional
        Rows per shuffle window when ``data`` is streamed from an Activations object or a store
        (default 65,536; memory is one window of the layer): a larger window mixes better, a
        smaller one costs less memory. Arrays are permuted whole and take no window.
    dead_after : int
        A latent that has not fired for this many samples, the current batch included, is dead
        (AuxK, resampling, history).
    resample_at : list of int
        Steps at which dead latents are resampled (Anthropic's procedure); ``resample_samples`` rows
        are scored.
    normalize_decoder : bool, optional
        Project decoder rows to unit norm after each step (default: all kinds but relu).
    checkpoint_dir, checkpoint_every, resume
        Write ``checkpoint.safetensors`` every ``checkpoint_every`` steps; an existing checkpoint is
        continued only with ``resume=True`` and only with the same hyperparameters and data
        (``StoreMismatchError`` otherwise); the resumed run equals the uninterrupted one exactly.
    progress : bool
        A tqdm bar with live L0 and MSE.
    callback : callable(step, model), optional
        Called after every step.
    init : SparseDictionary, optional
        Start from these weights (same configuration) instead of the seeded initialisation.
"""


def _with_common_doc(fn):
    """Put the parameters shared by the trainers (``_DOC_COMMON``) where the docstring says ``{common}``."""
    fn.__doc__ = fn.__doc__.replace("    {common}\n", _DOC_COMMON.lstrip("\n"))
    return fn


def _coef(kind, l1_coefficient, l0_coefficient):
    return l1_coefficient if kind == "relu" else l0_coefficient if kind == "jumprelu" else None


def _width(d_sae, expansion, d_in):
    if d_sae is None and expansion is not None:
        d_sae = int(round(check_float("expansion", expansion, min_value=0.0, min_inclusive=False) * d_in))
    return d_sae


@_with_common_doc
def train_sae(data, *, layer: str | None = None, target: Any = None, target_layer: str | None = None,
              kind: str = "topk", d_sae: int | None = None, expansion: float | None = None, k: int | None = None,
              l1_coefficient: float | None = None, l0_coefficient: float | None = None, n_steps: int = 1000,
              batch_size: int = 1024, lr: float = 1e-3, seed: int = 0, b_dec_init: str = "geometric_median",
              aux_coefficient: float = 1 / 32, k_aux: int | None = None, bandwidth: float = 0.05,
              init_threshold: float = 0.001, dead_after: int = 1_000_000, resample_at=None,
              resample_samples: int = 16384, normalize_decoder: bool | None = None, checkpoint_dir=None,
              checkpoint_every: int | None = None, resume: bool = False, progress: bool = False,
              log_every: int | None = None, callback: Callable | None = None, init=None,
              auxk_normalization: str = "none", project_decoder_grad: bool = False,
              shuffle_buffer: int | None = None):
    """Train a sparse autoencoder (or, with a target, a transcoder) on activations.

    Parameters
    ----------
    data : Activations, path of an activation store, mapping, ndarray or tensor (n_samples, d_in)
        Read one batch at a time (memory-mapped stores are never loaded whole).
    layer : str
        The layer of ``data`` to encode (required when it holds several).
    target, target_layer
        Transcoder targets: an array (n_samples, d_out), or a layer of ``data`` (e.g. an MLP's
        output when ``layer`` is its input). Without them the dictionary reconstructs its input.
    {common}
    Returns
    -------
    SparseDictionary
        In eval mode, with ``history`` (training curves) and ``meta`` (hyperparameters, data
        fingerprint, layer names).
    """
    inp = _layer_array(data, layer, "data")
    tgt = None
    if target is not None and target_layer is not None:
        fail("target", "either an array or target_layer, not both", "both", raw=True)
    if target_layer is not None:
        tgt = _layer_array(data, target_layer, "target_layer")
    elif target is not None:
        tgt = _layer_array(target, None, "target")
    meta = {"role": "transcoder" if tgt is not None else "sae", "layer": layer, "target_layer": target_layer}
    opened = _open(data)
    stream = None
    if _is_acts(opened):
        meta["model"] = opened.meta.get("model_id") or opened.meta.get("model")
        name = layer if layer is not None else opened.layers[0]
        if target is None:
            stream = (opened, [name] + ([target_layer] if target_layer is not None else []))
    return _train([inp], None if tgt is None else [tgt], kind=kind, d_sae=_width(d_sae, expansion, inp.shape[1]),
                  k=k, coefficient=_coef(kind, l1_coefficient, l0_coefficient), n_steps=n_steps,
                  batch_size=batch_size, lr=lr, seed=seed, b_dec_init=b_dec_init, aux_coefficient=aux_coefficient,
                  k_aux=k_aux, bandwidth=bandwidth, init_threshold=init_threshold, dead_after=dead_after,
                  resample_at=resample_at, resample_samples=resample_samples, normalize_decoder=normalize_decoder,
                  checkpoint_dir=checkpoint_dir, checkpoint_every=checkpoint_every, resume=resume,
                  progress=progress, log_every=log_every, callback=callback, meta=meta, init=init, stream=stream,
                  auxk_normalization=auxk_normalization, project_decoder_grad=project_decoder_grad,
                  shuffle_buffer=shuffle_buffer)


def train_transcoder(data, *, layer: str | None = None, target_layer: str | None = None, target: Any = None,
                     **kwargs):
    """Train a transcoder: predict ``target_layer`` (or ``target``) from ``layer`` through sparse latents.

    The canonical use is an MLP block's input -> output (Dunefsky et al. 2024); all other
    parameters as :func:`train_sae`.
    """
    if target is None and target_layer is None:
        fail("target_layer", "the layer to predict (or target=array)", None)
    return train_sae(data, layer=layer, target=target, target_layer=target_layer, **kwargs)


def train_crosscoder(data, *, layers: Sequence[str] | None = None, layer: str | None = None,
                     kind: str = "relu", d_sae: int | None = None, expansion: float | None = None,
                     **kwargs):
    """Train a crosscoder: one latent space reading and writing several sources at once.

    Parameters
    ----------
    data : Activations with ``layers`` (one model, several layers: an acausal crosscoder), or a
        list of Activations (several models) with one ``layer`` — aligned by ``sample_ids`` (rows
        dropped by the alignment are refused) — or a list of arrays of equal shape.
    layers, layer
        See ``data``. Sources must have one width.
    Other parameters as :func:`train_sae` (default ``kind='relu'``: Anthropic's crosscoder with
    L1 weighted by the sum of the decoder norms over sources).

    Returns
    -------
    SparseDictionary with ``n_in = n_out = number of sources``; model diffing reads
    :meth:`SparseDictionary.relative_decoder_norms`.
    """
    data = _open(data)
    if _is_acts(data):
        if not layers or isinstance(layers, str) or len(layers) < 2:
            fail("layers", "at least two layer names of the activations", layers)
        arrays = [data[name] for name in layers]
        sources = list(layers)
    elif isinstance(data, (list, tuple)) and len(data) >= 2:
        items = [_open(d) for d in data]
        if all(_is_acts(d) for d in items):
            base = items[0]
            for i, other in enumerate(items[1:], 1):
                a, b, rep = base.align(other)
                if rep["dropped_from_first"] or rep["dropped_from_second"]:
                    fail(f"data[{i}]", "activations with the same sample_ids as data[0]",
                         f"{rep['n_common']} ids in common ({rep})", raw=True)
                if not np.array_equal(b.sample_ids, base.sample_ids):
                    items[i] = b
            arrays = [_layer_array(d, layer, f"data[{i}]") for i, d in enumerate(items)]
            sources = [f"model{i}:{layer}" for i in range(len(items))]
        else:
            arrays = [_layer_array(d, None, f"data[{i}]") for i, d in enumerate(items)]
            sources = [f"source{i}" for i in range(len(items))]
    else:
        fail("data", "Activations with layers=[...] or a list of at least two Activations/arrays", data)
    kw = dict(kwargs)
    kind_ = kind
    d_sae = _width(d_sae, expansion, arrays[0].shape[1])
    coef = _coef(kind_, kw.pop("l1_coefficient", None), kw.pop("l0_coefficient", None))
    import inspect

    # train_sae's own defaults, less what a crosscoder sets itself or cannot take (no target, no
    # streamed store to window)
    own = {"layer", "target", "target_layer", "kind", "d_sae", "expansion", "l1_coefficient", "l0_coefficient",
           "shuffle_buffer"}
    defaults = {n: p.default for n, p in inspect.signature(train_sae).parameters.items()
                if p.kind is p.KEYWORD_ONLY and n not in own}
    unknown = set(kw) - set(defaults)
    if unknown:
        fail("kwargs", f"parameters among {sorted(defaults)}", sorted(unknown))
    defaults.update(kw)
    return _train(arrays, None, kind=kind_, d_sae=d_sae, coefficient=coef,
                  meta={"role": "crosscoder", "sources": sources, "layer": layer}, **defaults)


__all__ = ["train_sae", "train_transcoder", "train_crosscoder"]
