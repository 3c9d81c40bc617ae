"""Motion transfer from a driver to the avatar's face model (LivePortrait-style controls).

Expression: the driver's deformation relative to its neutral frame, added to the avatar's neutral shape,
projected onto the avatar's own basis and clamped to the range seen in training (StyleAvatar cannot
render what it never saw). Pose: relative to the driver's reference frame and applied to the avatar's
reference pose (default), or absolute. Eye/mouth openness targets are met with the smallest change of
the expression coefficients.
"""
from __future__ import annotations

import numpy as np

from ..config import Openness, TransferOptions
from ..errors import UserError
from ..tracking.face_model import EYES, MOUTH
from ..tracking.fit import FrameParams, Pose, SubjectModel
from ..tracking.procrustes import euler_degrees, rotation_from_euler
from .motion import DriverMotion



def openness_gradient(subject: SubjectModel, parts) -> tuple[np.ndarray, float]:
    """Openness as a linear function of the coefficients: (K,) gradient a and offset b (open = a.c + b).

    Widths are taken from the neutral shape (they barely change), so the gap ratio is linear in c.
    """
    grads, offsets = [], []
    for (upper, lower), (c0, c1) in parts:
        width = np.linalg.norm(subject.neutral[c0] - subject.neutral[c1])
        grads.append((subject.basis[:, lower, 1] - subject.basis[:, upper, 1]) / width)
        offsets.append((subject.neutral[lower, 1] - subject.neutral[upper, 1]) / width)
    return np.mean(grads, axis=0), float(np.mean(offsets))


def apply_openness(coeffs: np.ndarray, subject: SubjectModel,
                   controls: list[tuple[tuple, Openness | None]]) -> np.ndarray:
    """Move each row of (N, K) coefficients the least distance that meets every openness control at once.

    controls: (parts, control) pairs, e.g. (EYES, Openness(0.3)); None controls are skipped.
    """
    active = [(openness_gradient(subject, parts), c) for parts, c in controls if c is not None]
    if not active:
        return coeffs
    grads = np.stack([a for (a, _), _ in active])  # (M, K)
    current = coeffs @ grads.T + np.array([b for (_, b), _ in active])  # (N, M)
    target = np.stack([current[:, m] * c.value if c.multiplier else np.full(len(coeffs), c.value)
                       for m, (_, c) in enumerate(active)], axis=1)
    # Least-norm solution of grads @ delta = target - current for each row.
    gram = grads @ grads.T + 1e-12 * np.eye(len(grads))
    return coeffs + np.linalg.solve(gram, (target - current).T).T @ grads


def _reference(motion: DriverMotion, neutral: str) -> int:
    if neutral == "first":
        return int(np.argmax(motion.params.tracked))  # first tracked frame
    if neutral == "auto":
        return motion.most_neutral_frame()
    try:
        i = int(neutral)
    except ValueError:
        raise UserError(f"--neutral must be 'first', 'auto' or a frame number, got {neutral!r}") from None
    if not 0 <= i < len(motion):
        raise UserError(f"--neutral frame {i} is outside the driver's {len(motion)} frames")
    return i


def transfer(motion: DriverMotion, subject: SubjectModel, avatar_pose: Pose,
             opts: TransferOptions = TransferOptions()) -> FrameParams:
    """The avatar's per-frame parameters that reproduce the driver's motion."""
    ref = _reference(motion, opts.neutral)
    delta = motion.deformation(ref) * opts.expression_scale  # (N, 468, 3) head frame
    # Basis rows are orthonormal 1404-vectors: projection = dot products.
    coeffs = np.einsum("npc,kpc->nk", delta, subject.basis)
    span = subject.coeff_max - subject.coeff_min
    coeffs = np.clip(coeffs, subject.coeff_min - opts.clamp_margin * span, subject.coeff_max + opts.clamp_margin * span)
    coeffs = apply_openness(coeffs, subject, [(EYES, opts.eyes), (MOUTH, opts.mouth)])

    p = motion.params
    if opts.relative:
        d = Pose.of_frame(p, ref)
        rotation = p.rotation @ d.rotation.T @ avatar_pose.rotation
        ratio = avatar_pose.scale / d.scale
        scale = p.scale * ratio
        translation = avatar_pose.translation + (p.translation - d.translation) * ratio
    else:
        rotation, scale, translation = p.rotation.copy(), p.scale.copy(), p.translation.copy()
    if any(opts.pose_offset):
        rotation = rotation_from_euler(euler_degrees(rotation) + np.asarray(opts.pose_offset)[None])
    return FrameParams(p.tracked.copy(), scale, rotation, translation, coeffs, p.gaze.copy())
