"""A built-in talking-head clip with known motion, made from scikit-image's astronaut photo.

The face mesh is fitted to the (public-domain) portrait once; each frame re-renders the photo's own face
on that mesh after a scripted head rotation, mouth opening and blinks, over the photo with its face
inpainted. Because the motion is known exactly, the clip is the ground truth for tracking tests, and it is
the example that runs without any user data.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ..errors import UserError
from ..io.video import VideoWriter
from ..rendering.rasterize import Rasterizer, make_rasterizer
from ..tracking.face_model import INNER_LIP_RING, IRIS_CENTRES, NUM_POINTS, mesh_outline, render_topology
from ..tracking.landmarks import FaceTracker
from ..tracking.procrustes import rotation_from_euler

UPPER_LIDS = ((246, 161, 160, 159, 158, 157, 173), (466, 388, 387, 386, 385, 384, 398))
LOWER_LIDS = ((7, 163, 144, 145, 153, 154, 155), (249, 390, 373, 374, 380, 381, 382))
"""Upper and lower eyelid points (right eye, left eye), paired in order."""


@dataclass
class Motion:
    """Scripted motion of N frames."""

    euler_deg: np.ndarray
    """(N, 3) yaw, pitch, roll in degrees (same convention as the tracker)."""
    mouth: np.ndarray
    """(N,) jaw opening as a fraction of the face height."""
    blink: np.ndarray
    """(N,) eyelid closure in [0, 1]."""


def scripted_motion(frames: int, fps: float = 25.0, kind: str = "train") -> Motion:
    """Smooth head rotation, mouth opening and blinks; ``kind`` 'train' or 'drive' (another rhythm)."""
    t = np.arange(frames) / fps
    if kind == "train":
        yaw, pitch, roll = 18 * np.sin(2 * np.pi * t / 4.0), 9 * np.sin(2 * np.pi * t / 3.1 + 1), \
            6 * np.sin(2 * np.pi * t / 5.3 + 2)
        mouth = 0.09 * np.clip(np.sin(2 * np.pi * t / 1.7), 0, None) ** 1.5
        blink_times = np.arange(1.3, t[-1] + 1, 2.9) if frames else np.array([])
    elif kind == "drive":
        yaw, pitch, roll = 12 * np.sin(2 * np.pi * t / 2.6 + 0.5), 7 * np.sin(2 * np.pi * t / 4.4), \
            -5 * np.sin(2 * np.pi * t / 3.7)
        mouth = 0.07 * np.clip(np.sin(2 * np.pi * t / 1.1 + 1.0), 0, None)
        blink_times = np.arange(0.8, t[-1] + 1, 2.2) if frames else np.array([])
    else:
        raise ValueError(f"unknown motion kind {kind!r}")
    blink = np.zeros(frames)
    for bt in blink_times:  # 0.25 s triangular blink
        blink = np.maximum(blink, np.clip(1 - np.abs(t - bt) / 0.125, 0, 1))
    return Motion(np.stack([yaw, pitch, roll], 1), mouth, blink)


class AstronautRig:
    """The astronaut photo with its fitted face mesh, ready to be posed and rendered."""

    def __init__(self, rasterizer: Rasterizer | None = None) -> None:
        from skimage import data

        self.photo = np.ascontiguousarray(data.astronaut())  # (512, 512, 3) RGB
        tracker = FaceTracker(1, static=True)
        marks = tracker(self.photo)
        tracker.close()
        if marks is None:
            raise UserError("the face mesh was not found on the built-in astronaut photo")
        self.landmarks = marks  # (478, 3) pixels
        self.rasterizer = rasterizer or make_rasterizer("auto")
        self.topo = render_topology(forehead=False)  # the band below carries the forehead with the head
        self.centre = marks[:NUM_POINTS].mean(0)
        self._build_band()
        face = self._render_positions(marks)
        h, w = self.photo.shape[:2]
        cover = self.rasterizer(face, self.topo.triangles, np.zeros((len(face), 1)), h, w)[..., -1]
        hole = cv2.dilate((cover > 0).astype(np.uint8), np.ones((15, 15), np.uint8))
        self.background = cv2.inpaint(self.photo, hole, 9, cv2.INPAINT_TELEA)

    def _build_band(self) -> None:
        """A band of triangles around the face oval that carries hair, ears and neck with the head.

        Its inner ring is the face outline; a middle ring (1.45x from the face centre, set back in depth)
        moves rigidly with the head; an outer ring (2.1x) stays put, so the band blends into the still
        background. Without it only the face would turn while the head outline stayed still.
        """
        mesh_pts = self.landmarks[:NUM_POINTS]
        boundary = np.unique(self._face_outline())
        c = self.centre
        angle = np.arctan2(mesh_pts[boundary, 1] - c[1], mesh_pts[boundary, 0] - c[0])
        oval = boundary[np.argsort(angle)]
        mid = c + 1.45 * (mesh_pts[oval] - c)
        mid[:, 2] = mesh_pts[oval, 2].max() + 0.15 * np.ptp(mesh_pts[:, 0])
        outer = c + 2.1 * (mesh_pts[oval] - c)
        outer[:, 2] = mid[:, 2]
        n_render = len(self.topo.source)
        k = len(oval)
        ring = np.arange(k)
        nxt = (ring + 1) % k
        inner_idx, mid_idx, outer_idx = oval, n_render + ring, n_render + k + ring
        band = np.concatenate([
            np.stack([inner_idx[ring], mid_idx[ring], mid_idx[nxt]], 1),
            np.stack([inner_idx[ring], mid_idx[nxt], inner_idx[nxt]], 1),
            np.stack([mid_idx[ring], outer_idx[ring], outer_idx[nxt]], 1),
            np.stack([mid_idx[ring], outer_idx[nxt], mid_idx[nxt]], 1)])
        self.triangles = np.concatenate([self.topo.triangles, band])
        self.band_mid, self.band_outer = mid, outer

    def _face_outline(self) -> np.ndarray:
        """Vertex ids on the outer boundary of the canonical face mesh."""
        outline = np.array(sorted(mesh_outline(self.topo.triangles)))
        return outline[outline < NUM_POINTS][np.isin(outline[outline < NUM_POINTS],
                                                     list(INNER_LIP_RING), invert=True)]

    def _positions(self, marks: np.ndarray, rot: np.ndarray | None = None) -> np.ndarray:
        """All rig vertices: the render mesh from ``marks`` plus the band (middle ring rotated by ``rot``)."""
        mid = self.band_mid if rot is None else (self.band_mid - self.centre) @ rot.T + self.centre
        return np.concatenate([self._render_positions(marks), mid, self.band_outer])

    def _render_positions(self, marks: np.ndarray) -> np.ndarray:
        """(R, 3) render-mesh vertices from 478 landmarks: eye centres at the irises, mouth centre behind."""
        pos = marks[np.where(self.topo.source >= 0, self.topo.source, 0)].copy()
        pos[list(self.topo.eye_centres)] = marks[list(IRIS_CENTRES)]
        mouth = marks[list(INNER_LIP_RING)].mean(0)
        mouth[2] += 0.05 * np.ptp(marks[:NUM_POINTS, 0])
        pos[self.topo.mouth_centre] = mouth
        return pos

    def _rasterize(self, pos: np.ndarray, attrs: np.ndarray) -> np.ndarray:
        h, w = self.photo.shape[:2]
        return self.rasterizer(pos, self.triangles, attrs, h, w)

    def pose(self, euler_deg: np.ndarray, mouth: float, blink: float) -> np.ndarray:
        """(478, 3) landmarks of the posed face, pixels: expression first, then rotation about the head centre.

        The rotation is kept (``self.last_rotation``) to move the hair band in :meth:`render`.
        """
        m = self.landmarks.copy()
        face_h = np.ptp(m[:NUM_POINTS, 1])
        lip_y = m[list(INNER_LIP_RING), 1].mean()
        # Jaw: points below the lip line move down (smooth step over 2% of the face height).
        below = np.clip((m[:, 1] - lip_y) / (0.02 * face_h) + 0.5, 0, 1)
        width = np.ptp(m[:NUM_POINTS, 0]) / 2
        side = np.clip(1.6 - 1.6 * np.abs(m[:, 0] - self.centre[0]) / width, 0, 1)  # cheeks move less
        m[:, 1] += mouth * face_h * below * side
        for upper, lower in zip(UPPER_LIDS, LOWER_LIDS):  # blink: upper lid towards the lower lid
            m[list(upper), :2] += blink * 0.9 * (m[list(lower), :2] - m[list(upper), :2])
        rot = rotation_from_euler(euler_deg)[0]
        self.last_rotation = rot
        return (m - self.centre) @ rot.T + self.centre

    def render(self, marks: np.ndarray) -> np.ndarray:
        """(H, W, 3) uint8 frame: the photo's face on the posed mesh over the inpainted background."""
        pos = self._positions(marks, rot=getattr(self, "last_rotation", None))
        src = self._positions(self.landmarks)
        # Each pixel looks up the photo where its surface point was in the photo (the mouth interior too,
        # which stretches the photo's teeth as the jaw opens).
        out = self._rasterize(pos, src[:, :2])
        face = cv2.remap(self.photo, out[..., 0] - 0.5, out[..., 1] - 0.5, cv2.INTER_LINEAR,
                         borderMode=cv2.BORDER_REPLICATE).astype(np.float32)
        alpha = cv2.GaussianBlur(out[..., 2], (5, 5), 1.0)[..., None]
        frame = self.background.astype(np.float32) * (1 - alpha) + face * alpha
        return np.clip(frame + 0.5, 0, 255).astype(np.uint8)


@dataclass
class SyntheticClip:
    """A written clip and its ground truth."""

    path: Path
    motion: Motion
    landmarks: np.ndarray
    """(N, 478, 3) ground-truth landmark positions in the clip's pixels."""
    fps: float


def make_clip(path: str | Path, frames: int = 100, fps: float = 25.0, kind: str = "train",
              size: int = 512, rig: AstronautRig | None = None) -> SyntheticClip:
    """Write a synthetic talking-head mp4 of the astronaut with scripted motion.

    Args:
        path: output .mp4 (written atomically).
        frames: number of frames.
        fps: frame rate.
        kind: 'train' or 'drive' motion script.
        size: output side in pixels (the 512^2 photo is resized).
        rig: a prepared :class:`AstronautRig` to reuse.
    """
    rig = rig or AstronautRig()
    motion = scripted_motion(frames, fps, kind)
    scale = size / rig.photo.shape[0]
    truth = []
    with VideoWriter(path, fps, crf=14) as writer:
        for i in range(frames):
            marks = rig.pose(motion.euler_deg[i], motion.mouth[i], motion.blink[i])
            frame = rig.render(marks)
            if size != frame.shape[0]:
                frame = cv2.resize(frame, (size, size), interpolation=cv2.INTER_AREA)
            writer.write(frame)
            truth.append(marks * scale)
    return SyntheticClip(Path(path), motion, np.stack(truth), fps)
