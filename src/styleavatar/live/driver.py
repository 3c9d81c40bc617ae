"""Frame-by-frame motion from a camera (paper Sec. 3.4 live system): no look-ahead, no prior fit.

Each frame (after a two-frame warm-up): MediaPipe landmarks -> rigid fit to the first face's shape
(2D-trusting Procrustes) -> head-frame shape, pose and gaze -> the same retargeting as offline
reenactment (:class:`..tracking.retarget.LiveRetargeter`: the driver's rest is refined from the frames
of the first seconds, smoothing is causal). When the face is lost the last good motion is held.
"""
from __future__ import annotations

import numpy as np

from ..config import TransferOptions
from ..tracking.crop import choose_crop
from ..tracking.face_model import NUM_POINTS, canonical_mesh, point_weights
from ..tracking.fit import FrameParams, SubjectModel, gaze_offsets
from ..tracking.landmarks import FaceTracker, landmark_box
from ..tracking.procrustes import fit_pose_2d, invert_similarity, weighted_procrustes
from ..tracking.retarget import AvatarRange, LiveRetargeter

CAMERA_FPS = 30.0
"""Frame rate assumed for a camera (the default of most webcams); a video source brings its own."""


class LiveDriver:
    """Call with consecutive RGB frames; returns the avatar's parameters for each (one frame)."""

    def __init__(self, subject: SubjectModel, avatar: AvatarRange, fps: float = CAMERA_FPS,
                 options: TransferOptions = TransferOptions(), warmup: int = 2, static: bool = False) -> None:
        self.warmup, self.seen = warmup, 0
        self.tracker = FaceTracker(max_faces=1, static=static)  # static: detect every frame (tests)
        self.weights = point_weights()
        self.crop = None
        self.reference: np.ndarray | None = None  # (468, 3) head-frame shape of the first face (rigid fits)
        self.last: FrameParams | None = None
        self.landmarks: np.ndarray | None = None
        """(478, 3) source-pixel landmarks of the last frame, None when it had no face."""
        self.retarget = LiveRetargeter(subject, avatar, fps, options)

    def close(self) -> None:
        self.tracker.close()

    def fit(self, lm: np.ndarray) -> tuple[np.ndarray, FrameParams]:
        """Crop-normalised landmarks (478, 3) -> head-frame shape (468, 3) and the frame's pose and gaze (the
        expression row is empty: retargeting works from the shape)."""
        pts = lm[None, :NUM_POINTS]
        if self.reference is None:
            s, r, t = weighted_procrustes(canonical_mesh().vertices[None], pts, self.weights)
            self.reference = invert_similarity(pts, s, r, t)[0]
        s, r, t = fit_pose_2d(self.reference, pts, self.weights, iterations=8)
        aligned = invert_similarity(pts, s, r, t)
        gaze = gaze_offsets(aligned, invert_similarity(lm[None], s, r, t))
        return aligned[0], FrameParams(np.ones(1, bool), s, r, t, np.zeros((1, 0)), gaze)

    def __call__(self, rgb: np.ndarray) -> FrameParams | None:
        """The avatar's parameters for this frame; the last good ones when the face is lost.

        None until the first face after the warm-up: MediaPipe's first frame (a detection) places landmarks
        a little differently from the tracking frames after it, so the first ``warmup`` faces are skipped.
        """
        lm = self.landmarks = self.tracker(rgb)
        if lm is None:
            return self.last
        if self.crop is None:  # a fixed crop from the first detection, as preprocess would choose
            self.crop = choose_crop(landmark_box(lm)[None], rgb.shape[1], rgb.shape[0])
        if self.seen < self.warmup:
            self.seen += 1
            return self.last
        self.last = self.retarget(*self.fit(self.crop.normalise(lm)))
        return self.last
