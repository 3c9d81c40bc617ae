"""How well an avatar follows its driver, at two levels.

- Image level (:func:`compare`): the output video re-tracked with the project's tracker against the
  driver's tracking. Motion is compared so that it does not depend on who is in the video: head pose
  error in degrees (APD) once the one constant rotation between the two heads is removed (fitted over all
  frames: a head held a little lower, or a first frame tracked a few degrees off, is not an error in every
  frame), expression deformation error in millimetres of the canonical head relative to each video's
  first frame (AED), signed eye/mouth openness correlation and range ratio (how far the output's
  openness moves against the driver's), and landmark jitter.
- Mesh level (:func:`mesh_agreement`): the retargeted face model against the driver's, no network
  involved. A fault seen at the image level but not here is the network's; one seen here is retargeting's.
- Network level (:func:`network_agreement`): the re-tracked output against the retargeted face model it
  was drawn from, no driver involved: the network's own fault, measured directly.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..tracking.face_model import EYES, MOUTH, NUM_POINTS, brow_raise, openness
from ..tracking.fit import FrameParams, SubjectModel
from ..tracking.procrustes import rotation_error_degrees
from ..tracking.video import driver_config, track_video



@dataclass
class Track:
    """A tracked video: crop-normalised landmarks (N, 478, 3), fitted parameters and face model."""

    landmarks: np.ndarray
    params: FrameParams
    subject: SubjectModel

    @classmethod
    def of_video(cls, video: Path, progress: bool = True) -> "Track":
        """Track and fit ``video`` (faces down to 32 px; frames without a face are filled from neighbours)."""
        _, _, _, landmarks, subject, params = track_video(video, driver_config(), progress)
        return cls(landmarks, params, subject)

    def deformation(self) -> np.ndarray:
        """(N, 468, 3) expression deformation relative to the first frame, head frame (cm)."""
        shapes = self.subject.shape(self.params.expression)
        return shapes - shapes[:1]


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


OPENNESS_SCORES = ("eye_openness_corr", "eye_range_ratio", "mouth_openness_corr", "mouth_range_ratio")
"""The openness figures of :func:`compare`: eye and mouth correlation, and their range ratio."""


def _spread_ratio(a: np.ndarray, b: np.ndarray) -> float | None:
    """Standard deviation of ``a`` over that of ``b``: how far one openness moves against the other's range
    (a correlation reads 1 for an eye that only half-closes when the other blinks; this reads 0.5)."""
    return float(a.std() / b.std()) if b.std() > 1e-9 else None


def mesh_agreement(driver_shapes: np.ndarray, driver: FrameParams, output: FrameParams,
                   subject: SubjectModel) -> dict[str, float | None]:
    """How closely the retargeted face model follows the driver's (no network involved).

    Args:
        driver_shapes: (N, 468, 3) the driver's head-frame shapes; driver: its N frames (pose).
        output: the avatar's N retargeted frames; subject: the avatar's face model.
    Returns:
        signed mouth and eye openness correlation, brow raise correlation, head pose error (degrees, once the
        constant rotation between the two heads is removed), the mean |change| of mouth openness per frame and
        the range of eye openness (std), each output / driver.
    """
    shapes = subject.shape(output.expression)
    pose = rotation_error_degrees(output.rotation, driver.rotation)
    mouth_d, mouth_o = openness(driver_shapes, MOUTH), openness(shapes, MOUTH)
    step_d = np.abs(np.diff(mouth_d)).mean() if len(mouth_d) > 1 else 0.0
    step_o = np.abs(np.diff(mouth_o)).mean() if len(mouth_o) > 1 else 0.0
    eye_d, eye_o = openness(driver_shapes, EYES), openness(shapes, EYES)
    return {
        "mesh_mouth_corr": _corr(mouth_d, mouth_o),
        "mesh_eye_corr": _corr(eye_d, eye_o),
        "mesh_eye_range_ratio": _spread_ratio(eye_o, eye_d),
        "mesh_brow_corr": _corr(brow_raise(driver_shapes), brow_raise(shapes)),
        "mesh_pose_error_deg": float(pose.mean()),
        "mesh_mouth_step_ratio": float(step_o / step_d) if step_d > 0 else None,
    }


def network_agreement(asked: FrameParams, subject: SubjectModel, output: Track) -> dict[str, float | None]:
    """How closely the avatar's images follow the face model they were drawn from.

    Args:
        asked: the N frames the network was given (retargeted parameters); subject: the avatar's face model.
        output: the output video, re-tracked (the shorter of the two sets the frame count).
    Returns:
        signed mouth and eye openness correlation (model against image) and head pose error (degrees, once
        the constant rotation between the two heads is removed).
    """
    n = min(len(asked), len(output.params))
    shapes = subject.shape(asked.expression[:n])
    pose = rotation_error_degrees(output.params.rotation[:n], asked.rotation[:n])
    return {
        "net_mouth_corr": _corr(openness(shapes, MOUTH), openness(output.landmarks[:n], MOUTH)),
        "net_eye_corr": _corr(openness(shapes, EYES), openness(output.landmarks[:n], EYES)),
        "net_pose_error_deg": float(pose.mean()),
    }


def compare(driver: Track, output: Track) -> dict[str, float | None]:
    """Motion agreement of ``output`` with ``driver`` (same frame count; the shorter one sets it)."""
    n = min(len(driver.params), len(output.params))
    apd = rotation_error_degrees(output.params.rotation[:n], driver.params.rotation[:n])
    aed = np.linalg.norm(driver.deformation()[:n] - output.deformation()[:n], axis=2).mean(axis=1) * 10  # cm->mm
    dj, oj = jitter(driver.landmarks[:n]), jitter(output.landmarks[:n])
    eye_d, eye_o = openness(driver.landmarks[:n], EYES), openness(output.landmarks[:n], EYES)
    mouth_d, mouth_o = openness(driver.landmarks[:n], MOUTH), openness(output.landmarks[:n], MOUTH)
    return {
        "frames": n,
        "pose_error_deg": float(apd.mean()),
        "expression_error_mm": float(aed.mean()),
        "eye_openness_corr": _corr(eye_d, eye_o),
        "mouth_openness_corr": _corr(mouth_d, mouth_o),
        "eye_range_ratio": _spread_ratio(eye_o, eye_d),
        "mouth_range_ratio": _spread_ratio(mouth_o, mouth_d),
        "jitter_output": oj,
        "jitter_driver": dj,
        "jitter_ratio": oj / dj if dj > 0 else None,
    }
