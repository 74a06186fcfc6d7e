"""How far EQKE and EVOU are from rank one: the quantities the subcubic proofs bound.

For a matrix ``M`` with SVD ``M = Σ σ_i u_i v_iᵀ`` the rank-1 residual is ``R = M - σ1 u1 v1ᵀ``.
What the proofs need of ``R`` is its *within-row spread* ``max_q max_{k,k'} R[q, k] - R[q, k']``
(softmax ignores a per-row shift): since ``R[q, k] - R[q, k'] = e_qᵀ R (e_k - e_k')`` and
``|e_k - e_k'| = √2``, the spread is at most ``√2 σ1(R) = √2 σ2(M)``, itself at most the
Frobenius bound ``√2 ‖R‖_F``. For EQKE the proofs never form the matrix: they bound the spread of
``EQres KEresᵀ`` (both factors less their rank-1 parts) by ``√2 σ2(EQ) σ2(KE)`` or by the
row-difference product ``max_q Σ_l |EQres[q, l]| range_k KEres[k, l]``; both are reported next
to the exact spread.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from topo_mi._results import Result, result_dataclass
from topo_mi.guarantees._model import check_proof_model


def _spread(M: np.ndarray) -> float:
    return float(np.max(M.max(axis=1) - M.min(axis=1)))


def _matrix_noise(M: np.ndarray) -> tuple[np.ndarray, dict[str, float]]:
    U, S, Vt = np.linalg.svd(M, full_matrices=False)
    R = M - S[0] * np.outer(U[:, 0], Vt[0])
    s2 = float(S[1]) if S.size > 1 else 0.0
    return S, {"sigma1": float(S[0]), "sigma2": s2, "sigma1_share": float(S[0] ** 2 / np.sum(S ** 2)),
               "sigma1_over_sigma2": float(S[0] / s2) if s2 > 0 else math.inf,
               "max_row_difference": _spread(M), "residual_max_row_difference": _spread(R),
               "residual_sqrt2_sigma_bound": math.sqrt(2.0) * s2,
               "residual_frobenius_bound": math.sqrt(2.0) * float(np.linalg.norm(R))}


@result_dataclass
class NoiseAnalysis(Result):
    """Spectra of EQKE and EVOU (seed convention) and bounds on their rank-1 residuals.

    Attributes
    ----------
    eqke_singular_values, evou_singular_values : ndarray
    eqke, evou : dict
        ``sigma1``, ``sigma2``, ``sigma1_share`` (σ1² / Σσ²), ``sigma1_over_sigma2``,
        ``max_row_difference`` (of the matrix), ``residual_max_row_difference`` (exact spread of
        the rank-1 residual), ``residual_sqrt2_sigma_bound`` (√2 σ2) and
        ``residual_frobenius_bound`` (√2 ‖R‖_F). ``eqke`` adds the factored bounds the proofs use,
        ``factored_sqrt2_sigma_bound`` and ``factored_rowdiff_bound``, and their exact
        counterpart ``factored_residual_max_row_difference`` (unscaled, like EQKE).
    """

    eqke_singular_values: np.ndarray
    evou_singular_values: np.ndarray
    eqke: dict
    evou: dict

    _plot_function = "topo_mi.plotting.guarantees:plot_noise"

    def summary(self) -> dict[str, Any]:
        out = {}
        for name in ("eqke", "evou"):
            d = getattr(self, name)
            for k in ("sigma1_share", "sigma1_over_sigma2", "residual_max_row_difference",
                      "residual_sqrt2_sigma_bound", "residual_frobenius_bound"):
                out[f"{name}_{k}"] = d[k]
        return out


def noise_analysis(model) -> NoiseAnalysis:
    """σ1 and the rest of the spectrum of EQKE and EVOU, and the residual bounds of the proofs."""
    from topo_mi.circuits.transformer import seed_circuits

    w = check_proof_model(model)
    c = seed_circuits(model)
    s_qk, eqke = _matrix_noise(c.eqke)
    s_ov, evou = _matrix_noise(c.evou)
    E, P, Q, K = w["E"], w["P"], w["Q"], w["K"]
    EQ = (E + P[-1]) @ Q
    KE = (E + P.mean(axis=0)) @ K
    U, S, Vt = np.linalg.svd(EQ, full_matrices=False)
    Uk, Sk, Vkt = np.linalg.svd(KE, full_matrices=False)
    eq_res = EQ - S[0] * np.outer(U[:, 0], Vt[0])
    ke_res = KE - Sk[0] * np.outer(Uk[:, 0], Vkt[0])
    eqke["factored_residual_max_row_difference"] = _spread(eq_res @ ke_res.T)
    eqke["factored_sqrt2_sigma_bound"] = math.sqrt(2.0) * float(S[1]) * float(Sk[1])
    eqke["factored_rowdiff_bound"] = float(np.max(np.abs(eq_res) @ (ke_res.max(axis=0) - ke_res.min(axis=0))))
    return NoiseAnalysis(eqke_singular_values=s_qk, evou_singular_values=s_ov, eqke=eqke, evou=evou)


__all__ = ["NoiseAnalysis", "noise_analysis"]
