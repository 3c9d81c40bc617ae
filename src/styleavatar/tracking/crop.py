"""One crop box for the whole video (paper Sec. 3.1: the portrait region enlarged 1.5x)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class CropBox:
    """A square region of the source frames, in source pixels."""

    x0: float
    y0: float
    side: float

    def normalise(self, points: np.ndarray) -> np.ndarray:
        """Source-pixel points (..., >=2) -> crop-normalised: x, y in [0, 1] over the crop, z / side."""
        out = np.asarray(points, np.float64) / self.side
        out[..., 0] -= self.x0 / self.side
        out[..., 1] -= self.y0 / self.side
        return out

    def affine(self, size: int) -> np.ndarray:
        """(2, 3) matrix mapping source pixel coordinates to output pixels of a ``size`` x ``size`` crop."""
        k = size / self.side
        return np.array([[k, 0.0, -k * self.x0], [0.0, k, -k * self.y0]])

    def as_list(self) -> list[float]:
        return [round(self.x0, 3), round(self.y0, 3), round(self.side, 3)]


def face_size(boxes: np.ndarray) -> float:
    """Median face size in pixels: the larger side of each landmark box (N, 4)."""
    return float(np.median(np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])))


def choose_crop(boxes: np.ndarray, width: int, height: int, portrait_scale: float = 2.2,
                crop_scale: float = 1.5) -> CropBox:
    """A square crop from robust statistics of the tracked face boxes.

    The portrait region is ``portrait_scale`` x the median face size around the median face centre
    (shifted down a little to include the neck); it is enlarged by ``crop_scale`` and at least enough to
    hold the 5-95% range of the face centres plus a portrait region. The box is then shrunk to fit the
    frame if needed and moved inside it, so crops never contain padding.

    Args:
        boxes: (N, 4) x0, y0, x1, y1 face boxes of tracked frames, source pixels.
        width, height: source frame size.
    """
    size = face_size(boxes)
    centres = (boxes[:, :2] + boxes[:, 2:]) / 2
    cx, cy = np.median(centres, 0)
    cy += 0.1 * size
    travel = np.percentile(centres, 95, 0) - np.percentile(centres, 5, 0)
    side = max(portrait_scale * crop_scale * size, portrait_scale * size + float(travel.max()))
    side = min(side, width, height)
    x0 = float(np.clip(cx - side / 2, 0, width - side))
    y0 = float(np.clip(cy - side / 2, 0, height - side))
    return CropBox(x0, y0, float(side))
