"""Non-rigid part of the fit (paper Eq. 2): a linear expression basis learnt from the subject's own
video, and its coefficients by regularised weighted least squares (Cholesky factorisation).
"""
from __future__ import annotations

import numpy as np
from scipy.linalg import cho_factor, cho_solve


def learn_basis(residuals: np.ndarray, dims: int) -> tuple[np.ndarray, np.ndarray]:
    """Uncentred PCA of head-frame residuals (shape minus neutral shape).

    Uncentred so that zero coefficients mean the neutral shape itself.

    Args:
        residuals: (N, P, 3) per-frame deformation from the neutral shape.
        dims: number of basis vectors K (capped by N and 3P).
    Returns:
        basis (K, P, 3), orthonormal as vectors of length 3P; singular values (K,) / sqrt(N), i.e. the
        root-mean-square coefficient of each component.
    """
    n, p, _ = residuals.shape
    flat = residuals.reshape(n, p * 3)
    _, sig, vt = np.linalg.svd(flat, full_matrices=False)
    k = min(dims, len(sig))
    return vt[:k].reshape(k, p, 3), sig[:k] / np.sqrt(max(n, 1))


def solve_coefficients(residuals: np.ndarray, basis: np.ndarray, weights: np.ndarray | None = None,
                       reg: float = 1e-3) -> np.ndarray:
    """Coefficients c minimising ``|W^1/2 (B c - r)|^2 + lam |c|^2`` for every frame at once.

    Args:
        residuals: (N, P, 3) deformations r.
        basis: (K, P, 3) basis B.
        weights: (P,) per-point weights W (None: uniform).
        reg: ridge weight lam relative to the mean diagonal of B^T W B.
    Returns:
        (N, K) coefficients.
    """
    k, p, _ = basis.shape
    w = np.ones(p) if weights is None else np.asarray(weights, np.float64)
    b = basis.reshape(k, p * 3)
    w3 = np.repeat(w, 3)
    normal = (b * w3) @ b.T  # (K, K) = B^T W B
    normal[np.diag_indices(k)] += reg * np.trace(normal) / k
    rhs = (residuals.reshape(len(residuals), p * 3) * w3) @ b.T  # (N, K) = (B^T W r)^T
    return cho_solve(cho_factor(normal), rhs.T).T
