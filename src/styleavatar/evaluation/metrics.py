"""Image-quality metrics on (B, 3, H, W) tensors with values in [0, 1]."""
from __future__ import annotations

import torch


def psnr(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(B,) peak signal-to-noise ratio in dB."""
    mse = (a.float() - b.float()).pow(2).flatten(1).mean(1)
    return 10 * torch.log10(1.0 / mse.clamp_min(1e-10))


def ssim(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(B,) structural similarity (Gaussian window 11, sigma 1.5; pytorch-msssim)."""
    from pytorch_msssim import ssim as _ssim

    return _ssim(a.float(), b.float(), data_range=1.0, size_average=False)
