"""Frame-by-frame motion from a camera (paper Sec. 3.4 live system): no look-ahead, no prior fit.

The first frame with a face (after a two-frame warm-up) is the driver's neutral/reference frame. Each later frame: MediaPipe
landmarks -> rigid fit to the reference shape (2D-trusting Procrustes) -> expression deformation relative
to the reference, projected straight onto the *avatar's* basis -> causal One-Euro smoothing -> the same
transfer (pose relative to the reference, clamping, eye/mouth controls) as offline reenactment. When the
face is lost the last good motion is held.
"""
from __future__ import annotations

import dataclasses

import numpy as np
from scipy.spatial.transform import Rotation

from ..inference.motion import DriverMotion
from ..config import TransferOptions
from ..inference.transfer import transfer
from ..tracking.crop import choose_crop
from ..tracking.face_model import NUM_POINTS, canonical_mesh, point_weights
from ..tracking.fit import FrameParams, Pose, SubjectModel, gaze_offsets
from ..tracking.landmarks import FaceTracker, landmark_box
from ..tracking.procrustes import fit_pose_2d, invert_similarity, weighted_procrustes
from ..tracking.smoothing import OneEuroFilter, strength_to_params

CAMERA_FPS = 30.0
"""Frame rate assumed for a camera (the default of most webcams); a video source brings its own."""


class LiveDriver:
    """Call with consecutive RGB frames; returns the avatar's parameters for each (one frame)."""

    def __init__(self, subject: SubjectModel, avatar_pose: Pose, fps: float = CAMERA_FPS,
                 options: TransferOptions = TransferOptions(), warmup: int = 2, static: bool = False) -> None:
        self.subject, self.avatar_pose = subject, avatar_pose
        self.warmup, self.seen = warmup, 0
        self.options = dataclasses.replace(options, neutral="first")  # live: the first face is the reference
        self.tracker = FaceTracker(max_faces=1, static=static)  # static: detect every frame (tests)
        self.weights = point_weights()
        self.crop = None
        self.reference: np.ndarray | None = None  # (468, 3) head-frame shape of the neutral frame
        self.ref_params: FrameParams | None = None
        self.last: FrameParams | None = None
        k = subject.basis.shape[0]
        # Smooth in rough units of each channel's natural spread (rotvec rad, log scale, translation, coeffs, gaze).
        self.units = np.concatenate([[0.05] * 3, [0.02], [0.01] * 3, subject.coeff_rms + 1e-6, [0.05] * 4])
        self.fps = fps
        self.filter = OneEuroFilter(fps, *strength_to_params(options.smooth)) if options.smooth > 0 else None
        self.k = k

    def close(self) -> None:
        self.tracker.close()

    def _fit(self, lm: np.ndarray) -> tuple[float, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Crop-normalised landmarks (478, 3) -> scale, rotation, translation, coefficients (K,), gaze (4,)."""
        pts = lm[None, :NUM_POINTS]
        if self.reference is None:
            s, r, t = weighted_procrustes(canonical_mesh().vertices[None], pts, self.weights)
            self.reference = invert_similarity(pts, s, r, t)[0]
        s, r, t = fit_pose_2d(self.reference, pts, self.weights, iterations=8)
        aligned = invert_similarity(pts, s, r, t)
        coeffs = np.einsum("pc,kpc->k", aligned[0] - self.reference, self.subject.basis)
        gaze = gaze_offsets(aligned, invert_similarity(lm[None], s, r, t))[0]
        return float(s[0]), r[0], t[0], coeffs, gaze

    def _smooth(self, s, r, t, c, g):
        if self.filter is None:
            return s, r, t, c, g
        vec = np.concatenate([Rotation.from_matrix(r).as_rotvec(), [np.log(s)], t, c, g]) / self.units
        v = self.filter(vec) * self.units
        return float(np.exp(v[3])), Rotation.from_rotvec(v[:3]).as_matrix(), v[4:7], v[7:7 + self.k], v[7 + self.k:]

    def __call__(self, rgb: np.ndarray) -> FrameParams | None:
        """The avatar's parameters for this frame; the last good ones when the face is lost.

        None until the reference is set: MediaPipe's first frame (a detection) places landmarks a little
        differently from the tracking frames after it, so the first ``warmup`` faces are skipped and the
        next one becomes the neutral reference.
        """
        lm = self.tracker(rgb)
        if lm is None:
            return self.last
        if self.crop is None:  # a fixed crop from the first detection, as preprocess would choose
            self.crop = choose_crop(landmark_box(lm)[None], rgb.shape[1], rgb.shape[0])
        if self.seen < self.warmup:
            self.seen += 1
            return self.last
        s, r, t, c, g = self._smooth(*self._fit(self.crop.normalise(lm)))
        current = FrameParams(np.ones(1, bool), np.array([s]), r[None], t[None], c[None], g[None])
        if self.ref_params is None:
            self.ref_params = current
        reference = dataclasses.replace(self.ref_params, expression=np.zeros((1, self.k)))
        both = FrameParams.concat([reference, current])
        # Expression already lives in the avatar's basis, relative to the reference (whose coefficients are 0).
        motion = DriverMotion(self.fps, both, self.subject.basis, self.subject.coeff_rms)
        out = transfer(motion, self.subject, self.avatar_pose, self.options)
        self.last = out.select(slice(1, 2))
        return self.last
