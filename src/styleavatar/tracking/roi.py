"""Regions of interest: the rotated squares the face models look at, in source-image pixels.

A region is a :class:`Rect` (centre, size, rotation). The landmark model sees the image inside it
resampled to a square tensor (:func:`crop`), and its outputs are mapped back with :func:`project`.
Regions come from a detection (eye keypoints give the rotation) or from the previous frame's landmarks
(the eye corners give it); both are enlarged by :data:`ROI_SCALE` and made square (:func:`rect_around`).
The conventions (corner order, rotation sign, bilinear uint8 resampling) are MediaPipe's, so the
landmark model sees the same pixels that it was trained and tested with.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

ROI_SCALE = 1.5  # the square region is 1.5x the long side of the face box (detection or landmarks)


@dataclass(frozen=True)
class Rect:
    """A rotated rectangle in pixels: centre (cx, cy), size (w, h), rotation in radians (clockwise on
    screen, since y points down)."""

    cx: float
    cy: float
    w: float
    h: float
    rotation: float = 0.0

    def corners(self) -> np.ndarray:
        """(4, 2) float32 corners in the order bottom-left, top-left, top-right, bottom-right of the
        unrotated rectangle (OpenCV's ``boxPoints`` order)."""
        return cv2.boxPoints(((self.cx, self.cy), (self.w, self.h), math.degrees(self.rotation))).astype(np.float32)

    def box(self) -> np.ndarray:
        """Axis-aligned x0, y0, x1, y1 of the unrotated rectangle."""
        return np.array([self.cx - self.w / 2, self.cy - self.h / 2, self.cx + self.w / 2, self.cy + self.h / 2])


def normalize_radians(angle: float) -> float:
    """Angle wrapped to [-pi, pi)."""
    return angle - 2 * math.pi * math.floor((angle + math.pi) / (2 * math.pi))


def rect_around(box: np.ndarray, start: np.ndarray, end: np.ndarray, scale: float = ROI_SCALE) -> Rect:
    """The square region around an axis-aligned face ``box`` (x0, y0, x1, y1), rotated so that the
    line from keypoint ``start`` to ``end`` (x, y pixels) becomes horizontal, enlarged ``scale`` times."""
    rotation = normalize_radians(-math.atan2(-(end[1] - start[1]), end[0] - start[0]))
    side = max(box[2] - box[0], box[3] - box[1]) * scale
    return Rect((box[0] + box[2]) / 2, (box[1] + box[3]) / 2, side, side, rotation)


def crop_matrix(rect: Rect, width: int, height: int) -> np.ndarray:
    """3x3 perspective (in fact affine) matrix from source pixels to the ``width`` x ``height`` tensor."""
    dst = np.array([[0, height], [0, 0], [width, 0], [width, height]], np.float32)
    return cv2.getPerspectiveTransform(rect.corners(), dst)


def crop(rgb: np.ndarray, rect: Rect, width: int, height: int, border: int = cv2.BORDER_REPLICATE) -> np.ndarray:
    """(H, W, 3) uint8 image -> (height, width, 3) uint8: the inside of ``rect``, bilinearly resampled.

    ``border``: what lies outside the image, ``cv2.BORDER_REPLICATE`` (edge pixels) or
    ``cv2.BORDER_CONSTANT`` (black)."""
    return cv2.warpPerspective(rgb, crop_matrix(rect, width, height), (width, height),
                               flags=cv2.INTER_LINEAR, borderMode=border)


def project(points: np.ndarray, rect: Rect) -> np.ndarray:
    """(N, 2+) points normalised to the region ([0, 1] across it, y down) -> source pixels.

    A third column (depth, in units of the region's width) is scaled to pixels like x."""
    x, y = (points[:, 0] - 0.5) * rect.w, (points[:, 1] - 0.5) * rect.h
    c, s = math.cos(rect.rotation), math.sin(rect.rotation)
    out = np.array(points, np.float64, copy=True)
    out[:, 0] = c * x - s * y + rect.cx
    out[:, 1] = s * x + c * y + rect.cy
    if out.shape[1] > 2:
        out[:, 2] = points[:, 2] * rect.w
    return out


def iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two x0, y0, x1, y1 boxes."""
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0
