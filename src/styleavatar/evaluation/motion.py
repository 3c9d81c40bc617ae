"""How well an output video follows its driver, from the project's own tracking of both.

All measures compare motion *relative to each video's first frame*, so they do not depend on who is
in the video: head pose error in degrees (APD), expression deformation error in millimetres of the
canonical head (AED), eye/mouth openness correlation, and landmark jitter.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..config import PreprocessConfig
from ..tracking.face_model import EYES, MOUTH, NUM_POINTS
from ..tracking.fit import FrameParams, SubjectModel
from ..tracking.procrustes import rotation_angle_degrees
from ..tracking.video import track_video



@dataclass
class Track:
    """A tracked video: crop-normalised landmarks (N, 478, 3), fitted parameters and face model."""

    landmarks: np.ndarray
    params: FrameParams
    subject: SubjectModel

    @classmethod
    def of_video(cls, video: Path, progress: bool = True) -> "Track":
        """Track and fit ``video`` (faces down to 32 px; frames without a face are filled from neighbours)."""
        cfg = PreprocessConfig(min_tracked_fraction=0.0, min_face_px=32)
        _, _, _, landmarks, subject, params = track_video(video, cfg, progress)
        return cls(landmarks, params, subject)

    def deformation(self) -> np.ndarray:
        """(N, 468, 3) expression deformation relative to the first frame, head frame (cm)."""
        shapes = self.subject.shape(self.params.expression)
        return shapes - shapes[:1]

    def relative_rotation(self) -> np.ndarray:
        """(N, 3, 3) head rotation relative to the first frame."""
        r = self.params.rotation
        return r @ r[0].T


def openness(landmarks: np.ndarray, parts) -> np.ndarray:
    """(N,) mean gap / width of the given parts (``EYES`` or ``MOUTH``) from (N, 478, >=2) landmarks."""
    vals = []
    for (upper, lower), (c0, c1) in parts:
        gap = np.linalg.norm(landmarks[:, upper, :2] - landmarks[:, lower, :2], axis=1)
        width = np.linalg.norm(landmarks[:, c0, :2] - landmarks[:, c1, :2], axis=1)
        vals.append(gap / np.maximum(width, 1e-9))
    return np.mean(vals, axis=0)


def jitter(landmarks: np.ndarray) -> float:
    """Mean |second temporal difference| of the 468 landmarks, as a fraction of the face size."""
    pts = landmarks[:, :NUM_POINTS, :2]
    size = np.median(np.ptp(pts, axis=1).max(axis=1))
    if len(pts) < 3:
        return 0.0
    acc = pts[2:] - 2 * pts[1:-1] + pts[:-2]
    return float(np.linalg.norm(acc, axis=2).mean() / max(size, 1e-9))


def _corr(a: np.ndarray, b: np.ndarray) -> float | None:
    if a.std() < 1e-9 or b.std() < 1e-9:
        return None
    return float(np.corrcoef(a, b)[0, 1])


def compare(driver: Track, output: Track) -> dict[str, float | None]:
    """Motion agreement of ``output`` with ``driver`` (same frame count; the shorter one sets it)."""
    n = min(len(driver.params), len(output.params))
    apd = rotation_angle_degrees(driver.relative_rotation()[:n], output.relative_rotation()[:n])
    aed = np.linalg.norm(driver.deformation()[:n] - output.deformation()[:n], axis=2).mean(axis=1) * 10  # cm->mm
    dj, oj = jitter(driver.landmarks[:n]), jitter(output.landmarks[:n])
    return {
        "frames": n,
        "pose_error_deg": float(apd.mean()),
        "expression_error_mm": float(aed.mean()),
        "eye_openness_corr": _corr(openness(driver.landmarks[:n], EYES), openness(output.landmarks[:n], EYES)),
        "mouth_openness_corr": _corr(openness(driver.landmarks[:n], MOUTH), openness(output.landmarks[:n], MOUTH)),
        "jitter_output": oj,
        "jitter_driver": dj,
        "jitter_ratio": oj / dj if dj > 0 else None,
    }
