"""Face landmarks from MediaPipe face mesh (478 points with irises) and subject selection.

The MediaPipe model files ship inside the ``mediapipe==0.10.21`` wheel; nothing is downloaded.
"""
from __future__ import annotations

import numpy as np

from ..errors import UserError
from .face_model import NUM_LANDMARKS, NUM_POINTS


def _mediapipe():
    try:
        import mediapipe as mp  # imported lazily: it is slow to import and prints log lines
    except ImportError as exc:
        raise UserError("mediapipe is not installed: run `make setup` "
                        "(pip install --no-deps mediapipe==0.10.21)") from exc
    return mp


def landmark_box(points: np.ndarray) -> np.ndarray:
    """(..., 478, 3) landmarks -> (..., 4) box x0, y0, x1, y1 of the 468 mesh points."""
    xy = points[..., :NUM_POINTS, :2]
    return np.concatenate([xy.min(-2), xy.max(-2)], -1)


def box_iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two x0, y0, x1, y1 boxes."""
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


class FaceTracker:
    """Per-frame landmarks of one subject in a video.

    Call with consecutive upright RGB frames. The subject is the largest face when tracking starts;
    afterwards the face overlapping the subject's last box most is followed, so a second person
    entering the frame does not steal the track.

    Returns (478, 3) float64 landmarks in source pixels (x right, y down, z: MediaPipe's relative depth
    scaled like x, smaller = nearer), or None when the subject is not found in that frame.
    """

    def __init__(self, max_faces: int = 2, static: bool = False, min_confidence: float = 0.5) -> None:
        mp = _mediapipe()
        self._mesh = mp.solutions.face_mesh.FaceMesh(
            static_image_mode=static, max_num_faces=max_faces, refine_landmarks=True,
            min_detection_confidence=min_confidence, min_tracking_confidence=min_confidence)
        self._last_box: np.ndarray | None = None

    def __call__(self, rgb: np.ndarray) -> np.ndarray | None:
        h, w = rgb.shape[:2]
        result = self._mesh.process(np.ascontiguousarray(rgb))
        if not result.multi_face_landmarks:
            return None
        faces = []
        for face in result.multi_face_landmarks:
            pts = np.array([(p.x * w, p.y * h, p.z * w) for p in face.landmark], np.float64)
            if len(pts) == NUM_LANDMARKS:
                faces.append(pts)
        if not faces:
            return None
        boxes = [landmark_box(f) for f in faces]
        if self._last_box is None:
            best = int(np.argmax([(b[2] - b[0]) * (b[3] - b[1]) for b in boxes]))
        else:
            ious = [box_iou(b, self._last_box) for b in boxes]
            best = int(np.argmax(ious))
            if ious[best] < 0.05:
                return None  # only other people are visible
        self._last_box = boxes[best]
        return faces[best]

    def close(self) -> None:
        self._mesh.close()


def detect_face_boxes(rgb: np.ndarray) -> list[np.ndarray]:
    """Face boxes (x0, y0, x1, y1 in pixels) from MediaPipe's full-range face detector.

    Used to explain tracking failures (a face too small or sideways), not for tracking itself.
    """
    mp = _mediapipe()
    h, w = rgb.shape[:2]
    with mp.solutions.face_detection.FaceDetection(model_selection=1, min_detection_confidence=0.5) as det:
        result = det.process(np.ascontiguousarray(rgb))
    boxes = []
    for d in result.detections or []:
        r = d.location_data.relative_bounding_box
        boxes.append(np.array([r.xmin * w, r.ymin * h, (r.xmin + r.width) * w, (r.ymin + r.height) * h]))
    return boxes
