"""Person (foreground) masks from MediaPipe selfie segmentation (model inside the mediapipe wheel).

The paper uses Robust Video Matting; this is the offline, download-free analogue that supervises the
foreground mask prediction.
"""
from __future__ import annotations

import numpy as np

from .landmarks import _mediapipe


class PersonSegmenter:
    """Call with an (H, W, 3) uint8 RGB image; returns an (H, W) float32 mask in [0, 1] (1 = person)."""

    def __init__(self) -> None:
        self._seg = _mediapipe().solutions.selfie_segmentation.SelfieSegmentation(model_selection=0)

    def __call__(self, rgb: np.ndarray) -> np.ndarray:
        mask = self._seg.process(np.ascontiguousarray(rgb)).segmentation_mask
        return np.clip(mask, 0.0, 1.0).astype(np.float32)

    def close(self) -> None:
        self._seg.close()
