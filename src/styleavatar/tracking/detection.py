"""Face detection with MediaPipe's short-range BlazeFace model: SSD anchors, box decoding, weighted NMS.

The whole image is letterboxed into the model's 128x128 input (aspect ratio kept, black bars), each of
the 896 anchors predicts a score, a box and six keypoints (eyes, nose tip, mouth, ear tragions), and
overlapping boxes are merged by a score-weighted average. Boxes and keypoints come back in source pixels.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .model_files import ModelRunner
from .roi import Rect, crop, iou

INPUT_SIZE = 128  # the model's square input, pixels
STRIDES = (8, 16, 16, 16)  # SSD feature-map strides; layers of equal stride share one grid
NMS_IOU = 0.3  # boxes overlapping more than this are merged
SCORE_CLIP = 100.0  # raw scores are clipped to +-100 before the sigmoid


@dataclass(frozen=True)
class Detection:
    """One face: ``box`` x0, y0, x1, y1 and ``keypoints`` (6, 2) in source pixels, ``score`` in [0, 1].

    Keypoints: 0 and 1 the eyes (the subject's right, then left), 2 nose tip, 3 mouth centre,
    4 and 5 the ear tragions."""

    box: np.ndarray
    keypoints: np.ndarray
    score: float


def anchors(size: int = INPUT_SIZE, strides: tuple[int, ...] = STRIDES) -> np.ndarray:
    """(896, 2) anchor centres in [0, 1] (x, y), in the model's output order.

    Layers of equal stride are merged: each grid cell of that stride gets two anchors per layer
    (MediaPipe's aspect ratio 1 plus its interpolated scale, both of unit size: only centres matter)."""
    centres = []
    i = 0
    while i < len(strides):
        j = i
        while j < len(strides) and strides[j] == strides[i]:
            j += 1
        cells = -(-size // strides[i])
        ys, xs = np.meshgrid((np.arange(cells) + 0.5) / cells, (np.arange(cells) + 0.5) / cells, indexing="ij")
        grid = np.stack([xs.ravel(), ys.ravel()], 1)
        centres.append(np.repeat(grid, 2 * (j - i), axis=0))
        i = j
    return np.concatenate(centres).astype(np.float32)


def weighted_nms(boxes: np.ndarray, points: np.ndarray, scores: np.ndarray,
                 threshold: float = NMS_IOU) -> list[tuple[np.ndarray, np.ndarray, float]]:
    """Merge overlapping detections: the best remaining one takes the score-weighted mean box and
    keypoints of all that overlap it by more than ``threshold`` IoU (itself included), keeping its score."""
    order = list(np.argsort(-scores, kind="stable"))
    merged = []
    while order:
        best = order[0]
        overlap = [k for k in order if iou(boxes[best], boxes[k]) > threshold]
        order = [k for k in order if k not in overlap]
        w = scores[overlap][:, None]
        box = (boxes[overlap] * w).sum(0) / w.sum()
        pts = (points[overlap] * w[:, :, None]).sum(0) / w.sum()
        merged.append((box, pts, float(scores[best])))
    return merged


class FaceDetector:
    """Call with an (H, W, 3) uint8 RGB image; returns the faces found, best first."""

    def __init__(self, min_score: float = 0.5, runner: ModelRunner | None = None) -> None:
        self.min_score = min_score
        self._net = runner or ModelRunner("face_detection_short_range")
        self._anchors = anchors()

    def __call__(self, rgb: np.ndarray) -> list[Detection]:
        h, w = rgb.shape[:2]
        side = max(h, w)  # letterbox: the whole image centred in a square
        rect = Rect(w / 2, h / 2, side, side)
        tensor = crop(rgb, rect, INPUT_SIZE, INPUT_SIZE, cv2.BORDER_CONSTANT).astype(np.float32) / 127.5 - 1
        raw, logits = self._net(tensor[None])
        scores = 1 / (1 + np.exp(-np.clip(logits[0, :, 0].astype(np.float64), -SCORE_CLIP, SCORE_CLIP)))
        keep = np.flatnonzero(scores >= self.min_score)
        if not len(keep):
            return []
        raw = raw[0, keep] / INPUT_SIZE
        centre = self._anchors[keep]
        xy = raw[:, :2] + centre
        boxes = np.concatenate([xy - raw[:, 2:4] / 2, xy + raw[:, 2:4] / 2], 1)
        points = raw[:, 4:16].reshape(-1, 6, 2) + centre[:, None]
        # tensor [0, 1] -> source pixels: the letterbox square is `side` pixels wide, centred on the image
        to_px = np.array([side, side], np.float32), np.array([w / 2 - side / 2, h / 2 - side / 2], np.float32)
        faces = []
        for box, pts, score in weighted_nms(boxes, points, scores[keep]):
            box_px = box.reshape(2, 2) * to_px[0] + to_px[1]
            faces.append(Detection(box_px.ravel().astype(np.float64), (pts * to_px[0] + to_px[1]).astype(np.float64),
                                   score))
        return faces
