"""Rigid part of the fit (paper Eq. 1): weighted orthogonal Procrustes with scale, solved by SVD.

All functions are vectorised over a leading frame axis.
"""
from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation


def weighted_procrustes(src: np.ndarray, dst: np.ndarray, weights: np.ndarray
                        ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Similarity transform minimising ``sum_i w_i |s R src_i + t - dst_i|^2`` (Umeyama, weighted).

    Args:
        src: (P, 3) or (N, P, 3) model points.
        dst: (N, P, 3) observed points.
        weights: (P,) non-negative point weights.
    Returns:
        scale (N,), rotation (N, 3, 3) proper (det = +1), translation (N, 3).
    """
    keep = weights > 0  # points with zero weight do not change the solution
    w = weights[keep] / weights[keep].sum()
    src = np.broadcast_to(src, dst.shape)[:, keep]
    dst = dst[:, keep]
    mu_s = np.einsum("p,npc->nc", w, src)
    mu_d = np.einsum("p,npc->nc", w, dst)
    xs, xd = src - mu_s[:, None], dst - mu_d[:, None]
    cov = np.swapaxes(xd * w[:, None], 1, 2) @ xs  # (N, 3, 3) weighted cross-covariance dst x src^T
    u, sig, vt = np.linalg.svd(cov)
    d = np.sign(np.linalg.det(u @ vt))  # reflection fix: flip the weakest axis when det < 0
    fix = np.ones((len(dst), 3))
    fix[:, 2] = d
    rot = u @ (fix[:, :, None] * vt)
    var_s = np.einsum("p,npc->n", w, xs ** 2)
    scale = (sig * fix).sum(1) / var_s
    trans = mu_d - scale[:, None] * np.einsum("nij,nj->ni", rot, mu_s)
    return scale, rot, trans


def apply_similarity(points: np.ndarray, scale: np.ndarray, rotation: np.ndarray,
                     translation: np.ndarray) -> np.ndarray:
    """``s R p + t`` for (N, P, 3) points and per-frame (N,), (N, 3, 3), (N, 3) parameters."""
    return scale[:, None, None] * (points @ np.swapaxes(rotation, 1, 2)) + translation[:, None]


def invert_similarity(points: np.ndarray, scale: np.ndarray, rotation: np.ndarray,
                      translation: np.ndarray) -> np.ndarray:
    """``R^T (p - t) / s``: image-frame points back into the head frame."""
    return ((points - translation[:, None]) @ rotation) / scale[:, None, None]


def euler_degrees(rotation: np.ndarray) -> np.ndarray:
    """(N, 3, 3) rotations -> (N, 3) yaw, pitch, roll in degrees.

    Intrinsic Y-X-Z angles in the image frame (x right, y down, z away from the viewer): yaw about the
    vertical axis, pitch about the horizontal axis, roll in the image plane.
    """
    return Rotation.from_matrix(rotation).as_euler("YXZ", degrees=True)


def rotation_from_euler(angles: np.ndarray) -> np.ndarray:
    """Inverse of :func:`euler_degrees`: (N, 3) yaw, pitch, roll in degrees -> (N, 3, 3)."""
    return Rotation.from_euler("YXZ", np.asarray(angles, np.float64).reshape(-1, 3), degrees=True).as_matrix()


def rotation_angle_degrees(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Geodesic angle in degrees between rotations a and b, both (N, 3, 3)."""
    rel = np.einsum("nji,njk->nik", a, b)
    cos = (np.trace(rel, axis1=1, axis2=2) - 1) / 2
    return np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))


def rotation_error_degrees(fit: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """(N,) angle in degrees between fitted and true rotations, both (N, 3, 3), once the one constant
    rotation between their head frames (the mean of truth^T @ fit) is removed."""
    offset = Rotation.from_matrix(np.einsum("nji,njk->nik", truth, fit)).mean().as_matrix()
    return rotation_angle_degrees(fit, truth @ offset)


def fit_pose_2d(model: np.ndarray, targets: np.ndarray, weights: np.ndarray, iterations: int = 20
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Similarity pose that fits the observed x, y of ``targets`` and treats their z as unreliable.

    MediaPipe's depth is a per-frame guess that does not rotate consistently with the head, while x, y
    are measured. Starting from the full 3D Procrustes solution, each iteration replaces the targets'
    z by the depth the current pose predicts and solves Procrustes again (an EM-style orthographic
    Procrustes); it converges to the pose minimising the 2D residual.

    Args:
        model: (P, 3) or (N, P, 3) model points.
        targets: (N, P, 3) observed points (x, y trusted, z initial guess).
        weights: (P,) point weights.
        iterations: refinement steps (0 = plain 3D Procrustes).
    Returns:
        scale (N,), rotation (N, 3, 3), translation (N, 3).
    """
    model = np.broadcast_to(model, targets.shape)
    s, r, t = weighted_procrustes(model, targets, weights)
    filled = targets.copy()
    for _ in range(iterations):  # predicted depth: third row of s R applied to the model, plus t_z
        filled[..., 2] = s[:, None] * (model @ r[:, 2, :, None])[..., 0] + t[:, 2:3]
        s, r, t = weighted_procrustes(model, filled, weights)
    return s, r, t
