"""StyleGAN2 building blocks in plain PyTorch (no custom CUDA ops), in the wavelet domain of SWAGAN.

Conventions: images and feature maps are (B, C, H, W) float tensors; images live in [-1, 1].
Weights use the equalised learning rate of StyleGAN (stored N(0, 1), scaled by 1/sqrt(fan_in) when used).
Every op here exports to ONNX (opset >= 17) and works with channels_last and bf16 autocast.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

SQRT2 = math.sqrt(2.0)
FP16_CLAMP = 256.0
"""Activations of the styled layers are clamped to +-this under fp16 (StyleGAN2-ADA's conv_clamp): fp16 ends
at 65504, and an activation past it becomes inf, then NaN in every later layer."""


def clamp_fp16(x: torch.Tensor) -> torch.Tensor:
    """x clamped to +-FP16_CLAMP when it is fp16 (unchanged in fp32 and bf16, whose range is fp32's)."""
    return x.clamp(-FP16_CLAMP, FP16_CLAMP) if x.dtype == torch.float16 else x


# --------------------------------------------------------------------------------------------- wavelets
def haar_dwt(x: torch.Tensor) -> torch.Tensor:
    """Orthonormal Haar transform: (B, C, H, W) -> (B, 4C, H/2, W/2) as [LL | LH | HL | HH] channel blocks.

    H and W must be even. LL is the 2x2 mean times 2, so the transform preserves energy and
    :func:`haar_idwt` inverts it exactly.
    """
    a, b = x[..., 0::2, 0::2], x[..., 0::2, 1::2]  # top-left, top-right of every 2x2 block
    c, d = x[..., 1::2, 0::2], x[..., 1::2, 1::2]  # bottom-left, bottom-right
    return 0.5 * torch.cat([a + b + c + d, a - b + c - d, a + b - c - d, a - b - c + d], dim=1)


def haar_idwt(y: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`haar_dwt`: (B, 4C, H, W) -> (B, C, 2H, 2W)."""
    ll, lh, hl, hh = y.chunk(4, dim=1)
    a, b = ll + lh + hl + hh, ll - lh + hl - hh
    c, d = ll + lh - hl - hh, ll - lh - hl + hh
    # Interleave the four (B, C, H, W) corners into (B, C, 2H, 2W): stack as (B, C, H, 2, W, 2) then merge.
    top = torch.stack([a, b], dim=-1)      # (B, C, H, W, 2): columns 2j, 2j+1 of row 2i
    bottom = torch.stack([c, d], dim=-1)   # row 2i+1
    out = torch.stack([top, bottom], dim=3)  # (B, C, H, 2, W, 2)
    bsz, ch, h, _, w, _ = out.shape
    return 0.5 * out.reshape(bsz, ch, 2 * h, 2 * w)


# --------------------------------------------------------------------------------------- resampling
def box_mean(x: torch.Tensor, r: int) -> torch.Tensor:
    """Mean of each (2r + 1)^2 neighbourhood of x (B, C, H, W), counting only the pixels inside the image.

    The same as ``F.avg_pool2d(x, 2r + 1, 1, r, count_include_pad=False)``, as a row pass and a column pass:
    the clipped neighbourhood is a rectangle, so its mean is the mean of the row means (O(r) per pixel instead
    of O(r^2); at r = 8 on a 256^2 map, a 17x17 window cost the training step 27 ms)."""
    k = 2 * r + 1
    rows = F.avg_pool2d(x, (1, k), stride=1, padding=(0, r), count_include_pad=False)
    return F.avg_pool2d(rows, (k, 1), stride=1, padding=(r, 0), count_include_pad=False)


def _blur_kernel() -> torch.Tensor:
    k = torch.tensor([1.0, 3.0, 3.0, 1.0])
    k2 = k[:, None] * k[None, :]
    return k2 / k2.sum()  # (4, 4), sums to 1


class Upsample2x(nn.Module):
    """x2 upsampling with the [1, 3, 3, 1] blur (zero insertion + blur, as StyleGAN2): (B,C,H,W)->(B,C,2H,2W)."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("kernel", _blur_kernel() * 4, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = int(x.shape[1])  # static channel count (a constant in exported graphs)
        k = self.kernel.to(x.dtype).expand(c, 1, 4, 4)
        return F.conv_transpose2d(x, k, stride=2, padding=1, groups=c)


class Downsample2x(nn.Module):
    """Blur with [1, 3, 3, 1] then keep every second pixel: (B,C,H,W)->(B,C,H/2,W/2)."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("kernel", _blur_kernel(), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = int(x.shape[1])  # static channel count (a constant in exported graphs)
        k = self.kernel.to(x.dtype).expand(c, 1, 4, 4)
        return F.conv2d(x, k, stride=2, padding=1, groups=c)


class WaveletUpsample(nn.Module):
    """Upsample a wavelet image (B, 12, H, W) -> (B, 12, 2H, 2W) through pixel space (SWAGAN skip)."""

    def __init__(self) -> None:
        super().__init__()
        self.up = Upsample2x()

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        return haar_dwt(self.up(haar_idwt(y)))


# ------------------------------------------------------------------------------------ equalised layers
class EqualLinear(nn.Module):
    """Linear layer with equalised learning rate; optional fused leaky ReLU (gain sqrt 2)."""

    def __init__(self, in_dim: int, out_dim: int, bias_init: float = 0.0, lr_mul: float = 1.0,
                 activate: bool = False) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_dim, in_dim) / lr_mul)
        self.bias = nn.Parameter(torch.full((out_dim,), float(bias_init) / lr_mul))
        self.scale = lr_mul / math.sqrt(in_dim)
        self.lr_mul = lr_mul
        self.activate = activate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.linear(x, self.weight * self.scale, self.bias * self.lr_mul)
        return F.leaky_relu(out, 0.2) * SQRT2 if self.activate else out


class EqualConv2d(nn.Module):
    """Conv2d with equalised learning rate; 'same' padding; optional fused leaky ReLU."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int, bias: bool = True, activate: bool = False) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_ch, in_ch, kernel, kernel))
        self.bias = nn.Parameter(torch.zeros(out_ch)) if bias else None
        self.scale = 1.0 / math.sqrt(in_ch * kernel * kernel)
        self.padding = kernel // 2
        self.activate = activate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.conv2d(x, self.weight * self.scale, self.bias, padding=self.padding)
        return F.leaky_relu(out, 0.2) * SQRT2 if self.activate else out


class PixelNorm(nn.Module):
    """Normalise each latent vector to unit mean square."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(x.pow(2).mean(dim=1, keepdim=True) + 1e-8)


class MappingNetwork(nn.Module):
    """PixelNorm + ``layers`` EqualLinear with leaky ReLU (lr multiplier 0.01): (B, in_dim) -> (B, style_dim)."""

    def __init__(self, in_dim: int, style_dim: int, layers: int = 4, lr_mul: float = 0.01) -> None:
        super().__init__()
        dims = [in_dim] + [style_dim] * layers
        self.net = nn.Sequential(PixelNorm(), *[EqualLinear(a, b, lr_mul=lr_mul, activate=True)
                                               for a, b in zip(dims, dims[1:])])

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)


def positional_encoding(t: torch.Tensor, octaves: int = 32) -> torch.Tensor:
    """NeRF-style code of scalars: (B,) -> (B, 2 * octaves) = [sin(2^k pi t), cos(2^k pi t)], k < octaves.

    Computed in float64 (the high octaves of frame_index / 5000 need it) and returned as float32.
    """
    freqs = (2.0 ** torch.arange(octaves, dtype=torch.float64, device=t.device)) * math.pi
    ang = t.to(torch.float64)[:, None] * freqs[None, :]
    return torch.cat([ang.sin(), ang.cos()], dim=1).float()


# --------------------------------------------------------------------------------- modulated layers
class ModulatedConv2d(nn.Module):
    """StyleGAN2 modulated convolution: weights scaled per sample by a style, then demodulated.

    Implemented as input scaling + a shared conv + output scaling, which equals the per-sample
    grouped convolution of the paper (and is faster on CPUs and exportable).
    x: (B, in_ch, H, W), w: (B, style_dim) -> (B, out_ch, H, W) (x2 when ``upsample``).
    """

    def __init__(self, in_ch: int, out_ch: int, kernel: int, style_dim: int, demodulate: bool = True,
                 upsample: bool = False) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_ch, in_ch, kernel, kernel))
        self.scale = 1.0 / math.sqrt(in_ch * kernel * kernel)
        self.affine = EqualLinear(style_dim, in_ch, bias_init=1.0)
        self.demodulate = demodulate
        self.padding = kernel // 2
        self.up = Upsample2x() if upsample else None

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        style = self.affine(w)  # (B, in_ch)
        weight = self.weight * self.scale
        x = x * style[:, :, None, None].to(x.dtype)
        if self.up is not None:
            x = self.up(x)
        out = F.conv2d(x, weight.to(x.dtype), padding=self.padding)
        if self.demodulate:
            # sum over (in, kh, kw) of (weight * style)^2 for each (sample, out channel): (B, out_ch)
            wsq = weight.pow(2).sum(dim=(2, 3))  # (out_ch, in_ch)
            dcoef = torch.rsqrt(style.pow(2) @ wsq.t() + 1e-8)
            out = out * dcoef[:, :, None, None].to(out.dtype)
        return out


class StyledConv(nn.Module):
    """Modulated 3x3 conv + noise injection + bias + leaky ReLU. Noise: (B, 1, H, W) or None (no noise)."""

    def __init__(self, in_ch: int, out_ch: int, style_dim: int, upsample: bool = False) -> None:
        super().__init__()
        self.conv = ModulatedConv2d(in_ch, out_ch, 3, style_dim, upsample=upsample)
        self.noise_strength = nn.Parameter(torch.zeros(()))
        self.bias = nn.Parameter(torch.zeros(out_ch))

    def forward(self, x: torch.Tensor, w: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
        out = self.conv(x, w)
        if noise is not None:
            out = out + self.noise_strength.to(out.dtype) * noise.to(out.dtype)
        return clamp_fp16(F.leaky_relu(out + self.bias[None, :, None, None].to(out.dtype), 0.2) * SQRT2)


class ToWavelet(nn.Module):
    """1x1 modulated conv (no demodulation) to a 12-channel wavelet RGB image, added to the upsampled skip."""

    def __init__(self, in_ch: int, style_dim: int, upsample: bool = True) -> None:
        super().__init__()
        self.conv = ModulatedConv2d(in_ch, 12, 1, style_dim, demodulate=False)
        self.bias = nn.Parameter(torch.zeros(12))
        self.up = WaveletUpsample() if upsample else None

    def forward(self, x: torch.Tensor, w: torch.Tensor, skip: torch.Tensor | None = None) -> torch.Tensor:
        out = clamp_fp16(self.conv(x, w) + self.bias[None, :, None, None].to(x.dtype))
        if skip is not None:
            out = out + (self.up(skip) if self.up is not None else skip)
        return out


class ResDownBlock(nn.Module):
    """Residual block of the StyleGAN2 discriminator/encoder: conv3x3, blur-downsample conv3x3, 1x1 skip."""

    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__()
        self.conv1 = EqualConv2d(in_ch, in_ch, 3, activate=True)
        self.down = Downsample2x()
        self.conv2 = EqualConv2d(in_ch, out_ch, 3, activate=True)
        self.skip = EqualConv2d(in_ch, out_ch, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv2(self.down(self.conv1(x)))
        return (out + self.skip(self.down(x))) / SQRT2
