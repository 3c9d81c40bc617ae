"""Images between their stored form, (B, H, W, 3) uint8 RGB, and the networks' form, (B, 3, H, W) float."""
from __future__ import annotations

import numpy as np
import torch


def to_tensor(images: np.ndarray, signed: bool = True) -> torch.Tensor:
    """(B, H, W, 3) uint8 -> (B, 3, H, W) float32 in [-1, 1] (``signed``, the networks' range) or [0, 1].

    The result is a view of a (B, H, W, 3) float32 array (channels-last strides); ``.contiguous()`` or
    ``.to(memory_format=...)`` lays it out. The arithmetic is numpy's, so the call runs no torch kernel and
    is safe in a loader thread: a torch kernel there starts a second OpenMP thread team, and on a 2-core CPU
    that made each training step of the main thread 1.4-1.9 times as long (BENCHMARKS.md, "loader threads").
    """
    x = np.array(images, dtype=np.float32)  # always a copy: the in-place steps never touch the input
    if signed:
        x /= 127.5
        x -= 1
    else:
        x /= 255
    return torch.from_numpy(x).permute(0, 3, 1, 2)


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """(B, 3, H, W) in [-1, 1] (clamped) -> (B, H, W, 3) uint8, rounded to the nearest level."""
    return ((images.float().clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).cpu().numpy()
