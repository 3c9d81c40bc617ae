"""Images between their stored form, (B, H, W, 3) uint8 RGB, and the networks' form, (B, 3, H, W) float."""
from __future__ import annotations

import numpy as np
import torch


def to_tensor(images: np.ndarray, signed: bool = True) -> torch.Tensor:
    """(B, H, W, 3) uint8 -> (B, 3, H, W) float32 in [-1, 1] (``signed``, the networks' range) or [0, 1]."""
    x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float()
    return x.div_(127.5).sub_(1) if signed else x.div_(255)


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """(B, 3, H, W) in [-1, 1] (clamped) -> (B, H, W, 3) uint8, rounded to the nearest level."""
    return ((images.float().clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).cpu().numpy()
