"""Person (foreground) masks from MediaPipe's selfie segmentation model (square, 256x256 input).

The paper uses Robust Video Matting; this is the offline, download-free analogue that supervises the
foreground mask prediction.
"""
from __future__ import annotations

import cv2
import numpy as np

from .model_files import ModelRunner
from .roi import Rect, crop

INPUT_SIZE = 256  # the model's square input, pixels


class PersonSegmenter:
    """Call with an (H, W, 3) uint8 RGB image; returns an (H, W) float32 mask in [0, 1] (1 = person)."""

    def __init__(self, backend: str = "auto") -> None:
        self._net = ModelRunner("selfie_segmentation", backend)

    def __call__(self, rgb: np.ndarray) -> np.ndarray:
        h, w = rgb.shape[:2]
        # the whole frame squeezed into the square input (aspect ratio not kept, as the model expects)
        tensor = crop(np.ascontiguousarray(rgb), Rect(w / 2, h / 2, w, h), INPUT_SIZE, INPUT_SIZE,
                      cv2.BORDER_CONSTANT).astype(np.float32) / 255
        mask = self._net(tensor[None])[0][0, :, :, 0]
        return np.clip(cv2.resize(mask, (w, h), interpolation=cv2.INTER_LINEAR), 0.0, 1.0).astype(np.float32)

    def close(self) -> None:
        """Nothing to release; kept so that callers can use the segmenter as a resource."""
