"""One crop box for the whole video (paper Sec. 3.1: the portrait region enlarged 1.5x)."""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class CropBox:
    """A square region of the source frames, in source pixels."""

    x0: int
    y0: int
    side: int

    def normalise(self, points: np.ndarray) -> np.ndarray:
        """Source-pixel points (..., >=2) -> crop-normalised: x, y in [0, 1] over the crop, z / side."""
        out = np.asarray(points, np.float64) / self.side
        out[..., 0] -= self.x0 / self.side
        out[..., 1] -= self.y0 / self.side
        return out

    def as_dict(self) -> dict[str, int]:
        return {"x0": self.x0, "y0": self.y0, "side": self.side}


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
    side = int(round(min(side, width, height)))  # whole pixels: the crop is a plain slice
    x0 = int(round(np.clip(cx - side / 2, 0, width - side)))
    y0 = int(round(np.clip(cy - side / 2, 0, height - side)))
    return CropBox(x0, y0, side)


def crop_frame(rgb: np.ndarray, box: CropBox, size: int) -> np.ndarray:
    """Cut ``box`` out of an (H, W, 3) frame and resize it to (size, size, 3) (area filter when shrinking)."""
    x0, y0, side = box.x0, box.y0, box.side
    patch = rgb[y0:y0 + side, x0:x0 + side]
    if side == size:
        return np.ascontiguousarray(patch)
    return cv2.resize(patch, (size, size), interpolation=cv2.INTER_AREA if side > size else cv2.INTER_CUBIC)
