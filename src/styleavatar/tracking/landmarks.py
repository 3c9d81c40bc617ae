"""Face landmarks (478 points with irises) and subject selection, with MediaPipe's face models.

Per frame (see docs/tracking.md): regions of interest come from the previous frame's landmarks and,
while fewer faces than ``max_faces`` are tracked, from the face detector; a detection region that
overlaps a tracked one is dropped. The landmark model runs on each region's 192x192 crop and gives
the 468-point mesh, refined lips, eyes and irises, and a face-presence score; a region whose score is
below ``min_confidence`` is lost. The landmarks' bounding box, turned by the eye corners' angle and
enlarged 1.5x, is the next frame's region. Of the faces found, :class:`FaceTracker` returns the subject.
"""
from __future__ import annotations

import numpy as np

from .detection import FaceDetector
from .face_model import NUM_LANDMARKS, NUM_POINTS
from .model_files import ModelRunner
from .roi import Rect, crop, iou, project, rect_around

INPUT_SIZE = 192  # the landmark model's square input, pixels
ASSOCIATION_IOU = 0.5  # a detection region overlapping a tracked one by more than this is the same face
ROTATION_POINTS = (33, 263)  # outer eye corners: the next region is turned to make their line horizontal
# Mesh indices that the model's refined contours replace (x, y only), in the order of its outputs.
LIPS = (61, 146, 91, 181, 84, 17, 314, 405, 321, 375, 291, 185, 40, 39, 37, 0, 267, 269, 270, 409,
        78, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308, 191, 80, 81, 82, 13, 312, 311, 310, 415,
        76, 77, 90, 180, 85, 16, 315, 404, 320, 307, 306, 184, 74, 73, 72, 11, 302, 303, 304, 408,
        62, 96, 89, 179, 86, 15, 316, 403, 319, 325, 292, 183, 42, 41, 38, 12, 268, 271, 272, 407)
LEFT_EYE = (33, 7, 163, 144, 145, 153, 154, 155, 133, 246, 161, 160, 159, 158, 157, 173,
            130, 25, 110, 24, 23, 22, 26, 112, 243, 247, 30, 29, 27, 28, 56, 190,
            226, 31, 228, 229, 230, 231, 232, 233, 244, 113, 225, 224, 223, 222, 221, 189,
            35, 124, 46, 53, 52, 65, 143, 111, 117, 118, 119, 120, 121, 128, 245, 156, 70, 63, 105, 66, 107, 55, 193)
RIGHT_EYE = (263, 249, 390, 373, 374, 380, 381, 382, 362, 466, 388, 387, 386, 385, 384, 398,
             359, 255, 339, 254, 253, 252, 256, 341, 463, 467, 260, 259, 257, 258, 286, 414,
             446, 261, 448, 449, 450, 451, 452, 453, 464, 342, 445, 444, 443, 442, 441, 413,
             265, 353, 276, 283, 282, 295, 372, 340, 346, 347, 348, 349, 350, 357, 465, 383, 300, 293, 334, 296, 336, 285, 417)
EYE_CONTOUR = 16  # the first 16 points of each eye list are its lid contour; the iris depth is their mean
IRIS_START = (NUM_POINTS, NUM_POINTS + 5)  # points 468-472: left-eye iris (centre first); 473-477: right


def landmark_box(points: np.ndarray) -> np.ndarray:
    """(..., 478, 3) landmarks -> (..., 4) box x0, y0, x1, y1 of the 468 mesh points."""
    xy = points[..., :NUM_POINTS, :2]
    return np.concatenate([xy.min(-2), xy.max(-2)], -1)


def decode_landmarks(outputs: list[np.ndarray]) -> tuple[np.ndarray, float]:
    """The landmark model's seven outputs -> ((478, 3) points in [0, 1] of its input, x right, y down,
    z depth in input widths), face-presence probability)."""
    mesh, lips, left_eye, right_eye, left_iris, right_iris, flag = (np.asarray(o, np.float64) for o in outputs)
    pts = np.zeros((NUM_LANDMARKS, 3))
    pts[:NUM_POINTS] = mesh.reshape(NUM_POINTS, 3)
    for idx, refined in ((LIPS, lips), (LEFT_EYE, left_eye), (RIGHT_EYE, right_eye)):
        pts[list(idx), :2] = refined.reshape(-1, 2)
    for start, iris, eye in zip(IRIS_START, (left_iris, right_iris), (LEFT_EYE, RIGHT_EYE)):
        pts[start:start + 5, :2] = iris.reshape(5, 2)
        pts[start:start + 5, 2] = pts[list(eye[:EYE_CONTOUR]), 2].mean()
    score = 1 / (1 + np.exp(-float(flag.ravel()[0])))
    return pts / INPUT_SIZE, score


def associate(detected: list[Rect], tracked: list[Rect], threshold: float = ASSOCIATION_IOU) -> list[Rect]:
    """Regions to run the landmark model on: each region, taken in order (detections, then tracked),
    replaces the ones before it that it overlaps by more than ``threshold`` IoU (rotation ignored)."""
    result: list[Rect] = []
    for rect in [*detected, *tracked]:
        result = [r for r in result if iou(r.box(), rect.box()) <= threshold]
        result.append(rect)
    return result


class FaceMesh:
    """All faces' landmarks in a video, frame after frame (or in unrelated images with ``static``)."""

    def __init__(self, max_faces: int = 2, static: bool = False, min_confidence: float = 0.5,
                 backend: str = "auto") -> None:
        self.max_faces, self.static, self.min_confidence = max_faces, static, min_confidence
        self.detector = FaceDetector(min_confidence, ModelRunner("face_detection_short_range", backend))
        self._net = ModelRunner("face_landmark_with_attention", backend)
        self._tracked: list[Rect] = []

    def landmarks(self, rgb: np.ndarray, rect: Rect) -> tuple[np.ndarray, float]:
        """(478, 3) landmarks in source pixels of the face in ``rect`` and its presence probability."""
        tensor = crop(rgb, rect, INPUT_SIZE, INPUT_SIZE).astype(np.float32) / 255
        pts, score = decode_landmarks(self._net(tensor[None]))
        return project(pts, rect), score

    def __call__(self, rgb: np.ndarray) -> list[np.ndarray]:
        """(H, W, 3) uint8 RGB -> list of (478, 3) float64 landmarks in pixels, one per face."""
        tracked = [] if self.static else self._tracked
        detected = []
        if len(tracked) < self.max_faces:
            faces = self.detector(rgb)[:self.max_faces]
            detected = [rect_around(d.box, d.keypoints[0], d.keypoints[1]) for d in faces]
        found, regions = [], []
        for rect in associate(detected, tracked):
            pts, score = self.landmarks(rgb, rect)
            if score < self.min_confidence:
                continue
            found.append(pts)
            box = np.concatenate([pts[:, :2].min(0), pts[:, :2].max(0)])  # all 478 points
            regions.append(rect_around(box, pts[ROTATION_POINTS[0], :2], pts[ROTATION_POINTS[1], :2]))
        self._tracked = regions
        return found

    def reset(self) -> None:
        """Forget the tracked faces (the next frame starts from detection)."""
        self._tracked = []


class FaceTracker:
    """Per-frame landmarks of one subject in a video.

    Call with consecutive upright RGB frames. The subject is the largest face when tracking starts;
    afterwards the face overlapping the subject's last box most is followed, so a second person
    entering the frame does not steal the track.

    Returns (478, 3) float64 landmarks in source pixels (x right, y down, z: MediaPipe's relative depth
    scaled like x, smaller = nearer), or None when the subject is not found in that frame.
    """

    def __init__(self, max_faces: int = 2, static: bool = False, min_confidence: float = 0.5,
                 backend: str = "auto") -> None:
        self._mesh = FaceMesh(max_faces, static, min_confidence, backend)
        self._last_box: np.ndarray | None = None

    def __call__(self, rgb: np.ndarray) -> np.ndarray | None:
        faces = self._mesh(np.ascontiguousarray(rgb))
        if not faces:
            return None
        boxes = [landmark_box(f) for f in faces]
        if self._last_box is None:
            best = int(np.argmax([(b[2] - b[0]) * (b[3] - b[1]) for b in boxes]))
        else:
            ious = [iou(b, self._last_box) for b in boxes]
            best = int(np.argmax(ious))
            if ious[best] < 0.05:
                return None  # only other people are visible
        self._last_box = boxes[best]
        return faces[best]

    def close(self) -> None:
        """Nothing to release; kept so that callers can use the tracker as a resource."""


def detect_face_boxes(rgb: np.ndarray, max_faces: int = 4, min_confidence: float = 0.6) -> list[np.ndarray]:
    """Boxes (x0, y0, x1, y1 in pixels, of the 468 mesh points) of the faces in one image: confident
    detections that the landmark model confirms (its face flag), so that a face-like texture (a coffee
    cup's rim scores 0.53 with the detector and 0.86 with the flag) is not counted.

    Used to explain tracking failures (a face too small or sideways), not for tracking itself."""
    return [landmark_box(p) for p in FaceMesh(max_faces, True, min_confidence)(np.ascontiguousarray(rgb))]
