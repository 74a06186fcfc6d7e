r"""Second order: Hessian-vector products of a loss, Lanczos, Hutchinson, SLQ and the exact Hessian.

The loss over a dataset of ``n`` samples is ``L(w) = (1/n) sum_i l(f_w(x_i), y_i)``
(``reduction="mean"``) or ``sum_i l(f_w(x_i), y_i)`` (``reduction="sum"``), with per-sample
losses ``l``: ``"mse"`` is the squared error summed over output units, ``sum_k (f_k - y_k)^2``
(so linear regression has ``H = 2 X^T X / n``), ``"cross_entropy"`` the negative log-softmax of
the label, or any callable ``(output, target) -> (batch,)`` per-sample losses.

Hessian-vector products are forward-over-reverse (``torch.func.jvp`` of ``torch.func.grad``,
Pearlmutter 1994), summed batch by batch; only the parameters selected by name enter ``w``.

Eigenvalues are signed; "top" means largest algebraic, "bottom" smallest algebraic, and
``largest_magnitude`` is the eigenvalue of largest ``|lambda|`` with its sign (what PyHessian's
power iteration converges to). Lanczos with full reorthogonalisation (Golub & Van Loan §10.1;
Ghorbani, Krishnan & Xiao, ICML 2019); Hutchinson's trace estimator (Hutchinson 1990: Rademacher
probes have per-probe variance ``2 (||H||_F^2 - sum_i H_ii^2)``); stochastic Lanczos quadrature
for the density (Ubaru, Chen & Saad, SIMAX 2017; Papyan 2019).
"""
from __future__ import annotations

import fnmatch
import math
import warnings
from typing import Any, Callable, Sequence

import numpy as np
import torch

from topo_mi._validation import check_choice, check_float, check_int, check_random_state, fail
from topo_mi.differential._common import as_tensor, model_dtype
from topo_mi.differential._results import HessianSpectrum, HessianTrace, SpectralDensity
from topo_mi.errors import InvalidParameterError, NonFiniteError, ResourceError

LOSSES = ("mse", "cross_entropy")
MAX_LANCZOS_BYTES = 4 << 30   # the Lanczos basis (dim x steps float64) must fit in this


# ---------------------------------------------------------------------------------------------
# the operator
# ---------------------------------------------------------------------------------------------
def _per_sample_loss(loss) -> Callable:
    if callable(loss):
        return loss
    loss = check_choice("loss", loss, LOSSES)
    if loss == "mse":
        def mse(out, y):
            return ((out - y.reshape(out.shape).to(out.dtype)) ** 2).reshape(out.shape[0], -1).sum(1)
        return mse

    def cross_entropy(out, y):
        return torch.nn.functional.cross_entropy(out.reshape(out.shape[0], -1), y.long(), reduction="none")
    return cross_entropy


def _batches(data, dtype, loss_name, batch_size):
    """``data`` as a list of ``(X, y)`` tensor pairs, split into ``batch_size`` rows when given."""
    if isinstance(data, tuple) and len(data) == 2 and not isinstance(data[0], (tuple, list)):
        pairs = [data]
    elif isinstance(data, (list, tuple)) or hasattr(data, "__iter__"):
        pairs = list(data)
        if not pairs or not all(isinstance(p, (tuple, list)) and len(p) == 2 for p in pairs):
            fail("data", "a pair (X, y) or a sequence of (X, y) batches", data)
    else:
        fail("data", "a pair (X, y) or a sequence of (X, y) batches", data)
    out = []
    for i, (X, y) in enumerate(pairs):
        X = as_tensor(X, f"data[{i}].X" if len(pairs) > 1 else "data.X", dtype=dtype)
        yname = f"data[{i}].y" if len(pairs) > 1 else "data.y"
        if loss_name == "mse":
            y = as_tensor(y, yname, dtype=dtype)
        else:  # labels: integers stay integers (cross-entropy and callables), floats take the model's dtype
            y = as_tensor(y, yname, floating=False)
            if y.is_floating_point():
                y = as_tensor(y, yname, dtype=dtype)
            elif loss_name == "cross_entropy":
                y = y.long()
        if X.shape[0] != y.shape[0] or X.shape[0] == 0:
            fail("data", "X and y with the same, non-zero number of rows",
                 f"X {tuple(X.shape)} and y {tuple(y.shape)}", raw=True)
        out.append((X, y))
    if batch_size is not None:
        bs = check_int("batch_size", batch_size, min_value=1)
        out = [(X[s:s + bs], y[s:s + bs]) for X, y in out for s in range(0, X.shape[0], bs)]
    return out


def select_parameters(model, params=None) -> list[str]:
    """Names of the trainable parameters selected by ``params`` (names or fnmatch patterns; None: all)."""
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    if not named:
        fail("model", "a model with trainable parameters (requires_grad=True)", type(model).__name__)
    names = [n for n, _ in named]
    if params is None:
        return names
    if isinstance(params, str):
        params = [params]
    chosen: list[str] = []
    for pat in params:
        if not isinstance(pat, str):
            fail("params", "parameter names or glob patterns", pat)
        hit = [n for n in names if fnmatch.fnmatchcase(n, pat)]
        if not hit:
            from topo_mi._validation import closest_names

            close = closest_names(pat, names) or names[:8]
            fail("params", f"names or patterns of trainable parameters (e.g. {', '.join(map(repr, close))})", pat)
        chosen.extend(h for h in hit if h not in chosen)
    return [n for n in names if n in chosen]


class LossHessian:
    """The Hessian of a loss over a dataset with respect to (some of) a model's parameters.

    Parameters
    ----------
    model : nn.Module
        Evaluated in eval mode (every training flag restored after each call).
    loss : {"mse", "cross_entropy"} or callable
        Per-sample losses (see the module docstring); a callable gets ``(output, y)`` and returns
        a ``(batch,)`` tensor.
    data : (X, y) or sequence of (X, y)
        The dataset, as one pair or as batches.
    reduction : {"mean", "sum"}, default "mean"
        The loss is the mean (or the sum) of the per-sample losses over all samples.
    params : str or sequence of str, optional
        Parameter names or glob patterns (``"fc1.*"``); default every trainable parameter. The
        flat vector follows ``model.named_parameters()`` order.
    batch_size : int, optional
        Re-split the data into batches of this many rows (memory); products are summed over batches.
    mode : {"forward", "reverse"}, default "forward"
        ``"forward"``: forward-over-reverse (``torch.func.jvp`` of ``torch.func.grad``), nothing
        kept between products. ``"reverse"``: the gradient's graph of every batch is built once
        and kept, each product is one double-backward pass (Pearlmutter's trick as PyHessian runs
        it): several times faster per product on CPU for small models, at the memory of the
        retained graphs.

    Attributes
    ----------
    dim : int
        Number of parameters in ``w``.
    names, shapes : list
        The selected parameters.
    n_samples : int
    """

    def __init__(self, model, loss, data, *, reduction: str = "mean", params: Any = None,
                 batch_size: int | None = None, mode: str = "forward"):
        if not isinstance(model, torch.nn.Module):
            fail("model", "a torch.nn.Module", model)
        self.model = model
        self.reduction = check_choice("reduction", reduction, ("mean", "sum"))
        self.loss_name = loss if isinstance(loss, str) else getattr(loss, "__name__", "callable")
        self._loss = _per_sample_loss(loss)
        self.names = select_parameters(model, params)
        pdict = dict(model.named_parameters())
        self.dtype = pdict[self.names[0]].dtype
        self.shapes = [tuple(pdict[n].shape) for n in self.names]
        self.sizes = [int(math.prod(s)) for s in self.shapes]
        self.dim = int(sum(self.sizes))
        self.batches = _batches(data, model_dtype(model), loss if isinstance(loss, str) else "", batch_size)
        self.n_samples = int(sum(X.shape[0] for X, _ in self.batches))
        self.scale = 1.0 / self.n_samples if self.reduction == "mean" else 1.0
        self.w0 = torch.cat([pdict[n].detach().reshape(-1) for n in self.names])
        self.mode = check_choice("mode", mode, ("forward", "reverse"))
        self.n_matvecs = 0
        self._value = None
        self._graphs = None

    # -- functional pieces ---------------------------------------------------------------------
    def _state(self, w):
        fixed = {n: p.detach() for n, p in self.model.named_parameters() if n not in self.names}
        fixed.update({n: b for n, b in self.model.named_buffers()})
        out, s = dict(fixed), 0
        for n, shape, size in zip(self.names, self.shapes, self.sizes):
            out[n] = w[s:s + size].reshape(shape)
            s += size
        return out

    def _batch_loss(self, w, X, y):
        out = torch.func.functional_call(self.model, self._state(w), (X,))
        per = self._loss(out, y)
        if per.ndim != 1 or per.shape[0] != X.shape[0]:
            fail("loss", f"per-sample losses of shape ({X.shape[0]},)", f"shape {tuple(per.shape)}", raw=True)
        return per.sum() * self.scale

    def _eval(self):
        from topo_mi.activations._hooks import _eval_mode

        return _eval_mode(self.model)

    def _check(self, value, i, what):
        if not bool(torch.isfinite(value).all()):
            X, _ = self.batches[i]
            start = sum(b[0].shape[0] for b in self.batches[:i])
            raise NonFiniteError(f"data: expected a finite {what} on every batch, got a non-finite one on batch {i} "
                                 f"(samples {start}..{start + X.shape[0] - 1})")

    def loss_value(self) -> float:
        """``L(w)`` at the model's parameters (each batch checked for finiteness)."""
        if self._value is None:
            total = 0.0
            with self._eval(), torch.no_grad():
                for i, (X, y) in enumerate(self.batches):
                    v = self._batch_loss(self.w0, X, y)
                    self._check(v, i, "loss")
                    total += float(v)
            self._value = total
        return self._value

    def gradient(self) -> np.ndarray:
        """``dL/dw`` (shape ``(dim,)``)."""
        g = torch.zeros(self.dim, dtype=self.dtype)
        with self._eval():
            for i, (X, y) in enumerate(self.batches):
                gi = torch.func.grad(self._batch_loss)(self.w0, X, y)
                self._check(gi, i, "gradient")
                g += gi
        return g.numpy().astype(np.float64)

    def _reverse_graphs(self):
        if self._graphs is None:
            graphs = []
            with self._eval():
                for i, (X, y) in enumerate(self.batches):
                    w = self.w0.clone().requires_grad_(True)
                    with torch.enable_grad():
                        (g,) = torch.autograd.grad(self._batch_loss(w, X, y), w, create_graph=True)
                    graphs.append((w, g))
            self._graphs = graphs
        return self._graphs

    def _hvp_batch(self, V, X, y, i=0):
        """``H_b V`` for a block ``V`` of shape (k, dim) (vmapped JVP of the gradient)."""
        if self.mode == "reverse":
            w, g = self._reverse_graphs()[i]
            return torch.stack([torch.autograd.grad(g, w, grad_outputs=v, retain_graph=True)[0] for v in V])
        grad = torch.func.grad(self._batch_loss)

        def one(v):
            return torch.func.jvp(lambda w: grad(w, X, y), (self.w0,), (v,))[1]

        with warnings.catch_warnings():
            # torch scripts its forward-mode decompositions on the first JVP and warns about its own
            # use of torch.jit.script: nothing a caller can act on
            warnings.filterwarnings("ignore", message=".*torch.jit.script.*", category=DeprecationWarning)
            return torch.func.vmap(one)(V) if V.shape[0] > 1 else one(V[0])[None]

    def matmat(self, V) -> np.ndarray:
        """``H V`` for ``V`` of shape ``(dim, k)`` (numpy or torch); returns float64 numpy."""
        Vt = torch.as_tensor(np.asarray(V) if not isinstance(V, torch.Tensor) else V).to(self.dtype)
        if Vt.ndim == 1:
            return self.matvec(Vt)
        if Vt.ndim != 2 or Vt.shape[0] != self.dim:
            fail("V", f"an array of shape ({self.dim}, k)", f"shape {tuple(Vt.shape)}", raw=True)
        VT = Vt.T.contiguous()
        out = torch.zeros_like(VT)
        with self._eval():
            for i, (X, y) in enumerate(self.batches):
                hv = self._hvp_batch(VT, X, y, i)
                self._check(hv, i, "Hessian-vector product")
                out += hv
        self.n_matvecs += VT.shape[0]
        return out.T.numpy().astype(np.float64)

    def matvec(self, v) -> np.ndarray:
        """``H v`` for ``v`` of shape ``(dim,)``; returns float64 numpy."""
        vt = torch.as_tensor(np.asarray(v) if not isinstance(v, torch.Tensor) else v).to(self.dtype)
        if tuple(vt.shape) != (self.dim,):
            fail("v", f"a vector of shape ({self.dim},)", f"shape {tuple(vt.shape)}", raw=True)
        return self.matmat(vt[:, None])[:, 0]

    __matmul__ = matmat

    def dense(self, *, max_params: int = 5000, chunk: int = 256) -> np.ndarray:
        """The exact Hessian ``(dim, dim)`` from HVPs with the identity's columns (symmetrised)."""
        max_params = check_int("max_params", max_params, min_value=1)
        if self.dim > max_params:
            raise ResourceError(f"max_params: expected a model with at most {max_params} selected parameters for "
                                f"the exact Hessian, got {self.dim} (select parameters with params=, or use "
                                "hessian_spectrum's Lanczos)")
        H = np.empty((self.dim, self.dim))
        eye = torch.eye(self.dim, dtype=self.dtype)
        for s in range(0, self.dim, chunk):
            H[:, s:s + chunk] = self.matmat(eye[:, s:s + chunk])
        return (H + H.T) / 2


def exact_hessian(model, loss, data, *, reduction: str = "mean", params: Any = None, batch_size: int | None = None,
                  max_params: int = 5000) -> np.ndarray:
    """The dense loss Hessian of a small model, for checking (see :class:`LossHessian`).

    Refuses (ResourceError) more than ``max_params`` selected parameters.
    """
    return LossHessian(model, loss, data, reduction=reduction, params=params, batch_size=batch_size).dense(
        max_params=max_params)


def hessian_logdet(model, loss, data, *, damping: float = 0.0, reduction: str = "mean", params: Any = None,
                   batch_size: int | None = None, max_params: int = 5000) -> float:
    """``log det(H + damping I)`` by Cholesky (e.g. a Laplace approximation's evidence term).

    Raises InvalidParameterError naming ``damping`` when ``H + damping I`` is not positive definite
    (an indefinite Hessian has no Cholesky factor; no absolute values are taken).
    """
    damping = check_float("damping", damping, min_value=0.0)
    H = exact_hessian(model, loss, data, reduction=reduction, params=params, batch_size=batch_size,
                      max_params=max_params)
    try:
        L = np.linalg.cholesky(H + damping * np.eye(H.shape[0]))
    except np.linalg.LinAlgError:
        lo = float(np.linalg.eigvalsh(H)[0])
        raise InvalidParameterError(
            f"damping: expected H + damping I to be positive definite for a Cholesky factor, got damping = "
            f"{damping:g} with lambda_min(H) = {lo:.6g} (use damping > {max(-lo, 0.0):.6g})") from None
    return float(2.0 * np.sum(np.log(np.diag(L))))


# ---------------------------------------------------------------------------------------------
# generic symmetric-operator tools
# ---------------------------------------------------------------------------------------------
def _operator(op, dim):
    """``(matvec, matmat, dim)`` from a LossHessian, a square array or a callable (``dim`` needed)."""
    if isinstance(op, LossHessian):
        return op.matvec, op.matmat, op.dim
    if callable(op) and not isinstance(op, np.ndarray):
        if dim is None:
            fail("dim", "the operator's dimension when op is a callable", None)
        dim = check_int("dim", dim, min_value=1)
        return op, (lambda V: np.stack([np.asarray(op(V[:, j]), dtype=np.float64) for j in range(V.shape[1])], 1)), dim
    A = np.asarray(op, dtype=np.float64)
    if A.ndim != 2 or A.shape[0] != A.shape[1]:
        fail("op", "a square matrix, a LossHessian or a matvec callable", f"shape {A.shape}", raw=True)
    return (lambda v: A @ v), (lambda V: A @ V), A.shape[0]


def _lanczos_run(matvec, dim, m, v0, *, check=None, check_every=5):
    """Lanczos with full reorthogonalisation from ``v0``: ``(alpha, beta, Q, steps)``.

    ``check(alpha, beta, j)`` may stop the run early (returns True). Stops on an invariant subspace.
    """
    if dim * (m + 1) * 8 > MAX_LANCZOS_BYTES:
        raise ResourceError(f"max_iter: expected a Lanczos basis of at most {MAX_LANCZOS_BYTES >> 20} MiB, got "
                            f"{dim} x {m + 1} float64 values ({dim * (m + 1) * 8 >> 20} MiB); lower max_iter")
    Q = np.zeros((dim, m + 1))
    alpha, beta = np.zeros(m), np.zeros(m)
    q = v0 / np.linalg.norm(v0)
    Q[:, 0] = q
    j = 0
    for j in range(m):
        w = np.asarray(matvec(Q[:, j]), dtype=np.float64)
        if not np.all(np.isfinite(w)):
            raise NonFiniteError("op: expected finite matrix-vector products, got non-finite values")
        alpha[j] = Q[:, j] @ w
        # full reorthogonalisation, twice (classical Gram-Schmidt: "twice is enough")
        w -= Q[:, :j + 1] @ (Q[:, :j + 1].T @ w)
        w -= Q[:, :j + 1] @ (Q[:, :j + 1].T @ w)
        b = float(np.linalg.norm(w))
        beta[j] = b
        scale = max(abs(alpha[:j + 1]).max(), beta[:j + 1].max(), 1e-300)
        if b <= 1e-13 * scale or j + 1 == dim:
            return alpha[:j + 1], beta[:j + 1], Q[:, :j + 1], j + 1, True
        Q[:, j + 1] = w / b
        if check is not None and (j + 1) % check_every == 0 and check(alpha[:j + 1], beta[:j + 1]):
            return alpha[:j + 1], beta[:j + 1], Q[:, :j + 1], j + 1, False
    return alpha[:m], beta[:m], Q[:, :m], m, False


def _tridiag_eig(alpha, beta):
    from scipy.linalg import eigh_tridiagonal

    return eigh_tridiagonal(alpha, beta[:-1]) if len(alpha) > 1 else (alpha.copy(), np.ones((1, 1)))


def lanczos(op, dim: int | None = None, *, k: int = 5, which: str = "both", max_iter: int | None = None,
            tol: float = 1e-10, seed: int = 0, return_vectors: bool = False) -> dict:
    """Extreme eigenvalues of a symmetric operator by Lanczos with full reorthogonalisation.

    Parameters
    ----------
    op : LossHessian, square array, or callable ``v -> A v``
    dim : int, optional
        Required when ``op`` is a callable.
    k : int, default 5
        Eigenvalues wanted at each requested end (``1 <= k <= dim``).
    which : {"both", "top", "bottom"}
        Largest algebraic (``top``), smallest algebraic (``bottom``) or both.
    max_iter : int, optional
        Most Lanczos steps (default ``min(dim, max(30 k, 300))``); the run stops earlier when the
        residual bound ``beta_j |s_{j,i}|`` of every wanted Ritz pair, and of both extreme ones, is
        below ``tol * max|theta|``.
    seed : int
        Seeds the random start vector.

    Returns
    -------
    dict with ``top`` (descending), ``bottom`` (ascending), ``largest_magnitude``, ``residuals``
    (top then bottom), ``top_vectors``/``bottom_vectors`` (``(dim, k)``, when asked), ``steps``,
    ``invariant`` (True when the Krylov space became invariant: every Ritz value is an eigenvalue,
    e.g. after ``dim`` steps), ``ritz`` (all Ritz values, ascending).
    """
    matvec, _, dim = _operator(op, dim)
    k = check_int("k", k, min_value=1)
    if k > dim:
        fail("k", f"at most the number of parameters ({dim})", k)
    which = check_choice("which", which, ("both", "top", "bottom"))
    tol = check_float("tol", tol, min_value=0.0)
    m = min(dim, max(30 * k, 300)) if max_iter is None else min(dim, check_int("max_iter", max_iter, min_value=2))
    if m < k:
        fail("max_iter", f"at least k = {k} steps", max_iter)
    rng = check_random_state(seed)
    v0 = rng.standard_normal(dim)

    def wanted(n):
        idx = set()
        if which in ("both", "top"):
            idx.update(range(max(0, n - k), n))
        if which in ("both", "bottom"):
            idx.update(range(min(k, n)))
        return sorted(idx | {0, n - 1})

    def converged(alpha, beta):
        if len(alpha) < k + 2:
            return False
        theta, S = _tridiag_eig(alpha, beta)
        res = abs(beta[-1] * S[-1, :])
        return bool(np.all(res[wanted(len(theta))] <= tol * max(abs(theta).max(), 1e-300)))

    alpha, beta, Q, steps, invariant = _lanczos_run(matvec, dim, m, v0, check=converged)
    theta, S = _tridiag_eig(alpha, beta)
    res = abs(beta[-1] * S[-1, :]) if not invariant else np.zeros_like(theta)
    kk = min(k, len(theta))
    out: dict[str, Any] = {"steps": steps, "invariant": invariant, "ritz": theta,
                           "largest_magnitude": float(theta[np.argmax(abs(theta))])}
    top_idx = np.arange(len(theta))[::-1][:kk] if which in ("both", "top") else np.zeros(0, dtype=int)
    bot_idx = np.arange(kk) if which in ("both", "bottom") else np.zeros(0, dtype=int)
    out["top"], out["bottom"] = theta[top_idx], theta[bot_idx]
    out["residuals"] = np.concatenate([res[top_idx], res[bot_idx]])
    if return_vectors:
        out["top_vectors"] = Q @ S[:, top_idx]
        out["bottom_vectors"] = Q @ S[:, bot_idx]
    return out


def hutchinson_trace(op, dim: int | None = None, *, n_probes: int | None = None, min_probes: int = 10,
                     max_probes: int = 1000, rtol: float = 0.01, atol: float = 0.0, block: int = 10,
                     distribution: str = "rademacher", seed: int = 0) -> HessianTrace:
    """Hutchinson's estimate of ``tr(A)`` with a standard error and variance-based stopping.

    Probes ``v`` with independent Rademacher (or standard Gaussian) entries give unbiased
    ``v^T A v``; the estimate is their mean and the standard error their sample standard
    deviation over ``sqrt(n)``. With ``n_probes`` a fixed number is drawn; otherwise probes are
    drawn ``block`` at a time until ``stderr <= max(rtol * |trace|, atol)`` (at least
    ``min_probes``, at most ``max_probes``; ``converged`` says which stopped it).
    """
    _, matmat, dim = _operator(op, dim)
    distribution = check_choice("distribution", distribution, ("rademacher", "gaussian"))
    block = check_int("block", block, min_value=1)
    rtol = check_float("rtol", rtol, min_value=0.0)
    atol = check_float("atol", atol, min_value=0.0)
    if n_probes is not None:
        lo = hi = check_int("n_probes", n_probes, min_value=2)
    else:
        lo = check_int("min_probes", min_probes, min_value=2)
        hi = check_int("max_probes", max_probes, min_value=lo)
    rng = check_random_state(seed)
    samples: list[float] = []
    converged = False
    while len(samples) < hi:
        b = min(block, hi - len(samples))
        V = rng.choice([-1.0, 1.0], size=(dim, b)) if distribution == "rademacher" else rng.standard_normal((dim, b))
        AV = np.asarray(matmat(V), dtype=np.float64)
        samples.extend(np.einsum("ij,ij->j", V, AV).tolist())
        if len(samples) >= lo:
            s = np.asarray(samples)
            se = float(s.std(ddof=1) / math.sqrt(s.size))
            if n_probes is None and se <= max(rtol * abs(s.mean()), atol):
                converged = True
                break
    s = np.asarray(samples)
    if not np.all(np.isfinite(s)):
        raise NonFiniteError("op: expected finite products v^T A v, got non-finite values")
    se = float(s.std(ddof=1) / math.sqrt(s.size))
    if n_probes is not None:
        converged = se <= max(rtol * abs(s.mean()), atol)
    return HessianTrace(trace=float(s.mean()), stderr=se, samples=s, n_probes=int(s.size), converged=converged,
                        distribution=distribution, dim=dim,
                        seed=int(seed) if isinstance(seed, (int, np.integer)) else -1)


def spectral_density(op, dim: int | None = None, *, n_vectors: int = 10, m: int = 80, sigma: float | None = None,
                     n_grid: int = 400, seed: int = 0) -> SpectralDensity:
    """The eigenvalue density of a symmetric operator by stochastic Lanczos quadrature.

    For each of ``n_vectors`` random unit Rademacher vectors ``v``, ``m`` Lanczos steps give Ritz
    values ``theta_i`` and weights ``tau_i`` (squared first components of the Ritz vectors): the
    Gauss quadrature ``sum_i tau_i g(theta_i) = v^T g(A) v`` exactly for polynomials ``g`` of
    degree ``< 2m``. Averaged over the vectors it estimates ``tr(g(A)) / dim``; with a Gaussian
    kernel of width ``sigma`` (default 1 % of the spectrum's span) it is the smoothed density.
    """
    matvec, _, dim = _operator(op, dim)
    n_vectors = check_int("n_vectors", n_vectors, min_value=1)
    m = min(dim, check_int("m", m, min_value=2))
    n_grid = check_int("n_grid", n_grid, min_value=2)
    rng = check_random_state(seed)
    nodes, weights = np.zeros((n_vectors, m)), np.zeros((n_vectors, m))
    for i in range(n_vectors):
        v0 = rng.choice([-1.0, 1.0], size=dim)
        alpha, beta, _, steps, _ = _lanczos_run(matvec, dim, m, v0)
        theta, S = _tridiag_eig(alpha, beta)
        # an invariant subspace ends the run early: pad with zero-weight copies of the last node
        nodes[i, :steps], weights[i, :steps] = theta, S[0, :] ** 2
        nodes[i, steps:] = theta[-1]
    lo, hi = float(nodes.min()), float(nodes.max())
    span = max(hi - lo, abs(hi), 1e-12)
    sigma = 0.01 * span if sigma is None else check_float("sigma", sigma, min_value=0.0, )
    if sigma <= 0:
        fail("sigma", "a positive kernel width", sigma)
    grid = np.linspace(lo - 5 * sigma, hi + 5 * sigma, n_grid)
    dens = np.zeros(n_grid)
    for i in range(n_vectors):
        z = (grid[:, None] - nodes[i][None]) / sigma
        dens += (np.exp(-0.5 * z * z) * weights[i][None]).sum(1)
    dens /= n_vectors * sigma * math.sqrt(2 * math.pi)
    return SpectralDensity(nodes=nodes, weights=weights, grid=grid, density=dens, sigma=float(sigma), dim=dim,
                           n_vectors=n_vectors, m=m, seed=int(seed) if isinstance(seed, (int, np.integer)) else -1)


# ---------------------------------------------------------------------------------------------
# the loss Hessian's spectrum
# ---------------------------------------------------------------------------------------------
def _zero_threshold(values, dim, dtype) -> float:
    eps = float(torch.finfo(dtype).eps) if isinstance(dtype, torch.dtype) else float(np.finfo(np.float64).eps)
    scale = float(np.max(np.abs(values))) if np.size(values) else 0.0
    return dim * eps * scale


def hessian_spectrum(model, loss, data, *, k: int = 5, which: str = "both", method: str = "lanczos",
                     reduction: str = "mean", params: Any = None, batch_size: int | None = None,
                     eigenvectors: bool = False, trace: bool = True, density: bool = True,
                     max_iter: int | None = None, tol: float = 1e-10, n_probes: int | None = None,
                     max_probes: int = 200, trace_rtol: float = 0.01, slq_vectors: int = 5, slq_steps: int = 60,
                     max_exact_params: int = 5000, hvp: str = "forward", seed: int = 0) -> HessianSpectrum:
    r"""Top-k and bottom-k eigenvalues, condition number, trace and density of a loss Hessian.

    Parameters
    ----------
    model, loss, data, reduction, params, batch_size
        As in :class:`LossHessian`.
    k : int, default 5
        Eigenvalues at each end (at most the number of selected parameters).
    which : {"both", "top", "bottom"}
        ``top``: largest algebraic; ``bottom``: smallest algebraic; ``largest_magnitude`` is
        reported in every case.
    method : {"lanczos", "exact"}
        Lanczos on HVPs (any size), or the dense Hessian and ``numpy.linalg.eigh`` (small models:
        at most ``max_exact_params`` parameters).
    eigenvectors : bool, default False
        Also return unit eigenvectors (``top_vectors``/``bottom_vectors``, shape ``(dim, k)``).
    trace : bool, default True
        Hutchinson estimate (Lanczos) or the exact trace.
    density : bool, default True
        SLQ density (Lanczos: ``slq_vectors`` probes of ``slq_steps`` steps) or the exact
        eigenvalues smoothed by the same kernel.
    max_iter, tol
        Lanczos steps and residual tolerance (see :func:`lanczos`).
    hvp : {"forward", "reverse"}
        How Hessian-vector products are formed (``LossHessian``'s ``mode``).
    n_probes, max_probes, trace_rtol
        Hutchinson: a fixed number of probes, or variance-based stopping at ``trace_rtol``.
    seed : int

    Returns
    -------
    HessianSpectrum
        The condition number convention for indefinite Hessians is in its docstring:
        ``condition_number`` is NaN unless ``lambda_min > 0``; ``n_negative`` and
        ``condition_number_positive`` describe the indefinite case.
    """
    method = check_choice("method", method, ("lanczos", "exact"))
    which = check_choice("which", which, ("both", "top", "bottom"))
    seed = check_int("seed", seed, min_value=0)
    op = LossHessian(model, loss, data, reduction=reduction, params=params, batch_size=batch_size, mode=hvp)
    k = check_int("k", k, min_value=1)
    if k > op.dim:
        fail("k", f"at most the number of parameters ({op.dim})", k)
    value = op.loss_value()
    empty = np.zeros((0, 0))
    if method == "exact":
        H = op.dense(max_params=max_exact_params)
        evals, evecs = np.linalg.eigh(H)
        top_idx = np.arange(op.dim)[::-1][:k] if which != "bottom" else np.zeros(0, dtype=int)
        bot_idx = np.arange(k) if which != "top" else np.zeros(0, dtype=int)
        thr = _zero_threshold(evals, op.dim, op.dtype)
        pos = evals[evals > thr]
        tr = HessianTrace(trace=float(np.trace(H)), stderr=0.0, samples=np.zeros(0), n_probes=0, converged=True,
                          distribution="exact", dim=op.dim, seed=seed) if trace else None
        dens = None
        if density:
            span = max(float(evals[-1] - evals[0]), abs(float(evals[-1])), 1e-12)
            sigma = 0.01 * span
            grid = np.linspace(evals[0] - 5 * sigma, evals[-1] + 5 * sigma, 400)
            z = (grid[:, None] - evals[None]) / sigma
            d = np.exp(-0.5 * z * z).sum(1) / (op.dim * sigma * math.sqrt(2 * math.pi))
            dens = SpectralDensity(nodes=evals[None], weights=np.full((1, op.dim), 1.0 / op.dim), grid=grid,
                                   density=d, sigma=sigma, dim=op.dim, n_vectors=1, m=op.dim, seed=seed)
        return HessianSpectrum(
            top=evals[top_idx], bottom=evals[bot_idx],
            largest_magnitude=float(evals[np.argmax(np.abs(evals))]),
            top_vectors=evecs[:, top_idx] if eigenvectors else empty,
            bottom_vectors=evecs[:, bot_idx] if eigenvectors else empty,
            residuals=np.zeros(top_idx.size + bot_idx.size), n_negative=int(np.sum(evals < -thr)),
            n_negative_exact=True, lambda_min_positive=float(pos[0]) if pos.size else float("nan"), trace=tr,
            density=dens, method="exact", n_matvecs=op.n_matvecs, dim=op.dim, params=list(op.names),
            reduction=op.reduction, loss=op.loss_name, loss_value=value, seed=seed)
    lz = lanczos(op, k=k, which=which, max_iter=max_iter, tol=tol, seed=seed, return_vectors=eigenvectors)
    n_eig = op.n_matvecs
    ritz = lz["ritz"]
    thr = _zero_threshold(ritz, op.dim, op.dtype)
    known = np.concatenate([lz["top"], lz["bottom"]]) if not lz["invariant"] else ritz
    full = lz["invariant"] and lz["steps"] == op.dim
    neg = int(np.sum(np.unique(known) < -thr)) if not full else int(np.sum(ritz < -thr))
    pos = np.sort(known[known > thr])
    tr = hutchinson_trace(op, n_probes=n_probes, max_probes=max_probes, rtol=trace_rtol, seed=seed + 1) \
        if trace else None
    dens = spectral_density(op, n_vectors=slq_vectors, m=slq_steps, seed=seed + 2) if density else None
    return HessianSpectrum(
        top=lz["top"], bottom=lz["bottom"], largest_magnitude=lz["largest_magnitude"],
        top_vectors=lz.get("top_vectors", empty), bottom_vectors=lz.get("bottom_vectors", empty),
        residuals=lz["residuals"], n_negative=neg, n_negative_exact=bool(full),
        lambda_min_positive=float(pos[0]) if pos.size else float("nan"), trace=tr, density=dens, method="lanczos",
        n_matvecs=n_eig, dim=op.dim, params=list(op.names), reduction=op.reduction, loss=op.loss_name,
        loss_value=value, seed=seed)


__all__ = ["LossHessian", "exact_hessian", "hessian_logdet", "lanczos", "hutchinson_trace", "spectral_density",
           "hessian_spectrum", "select_parameters", "LOSSES"]
