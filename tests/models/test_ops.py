"""Wavelets, resampling, modulated convolution and codes."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from scipy.signal import convolve2d

from styleavatar.models.ops import (Downsample2x, ModulatedConv2d, Upsample2x, WaveletUpsample, box_mean,
                                    haar_dwt, haar_idwt, positional_encoding)


def test_haar_round_trip_is_exact_and_energy_preserving():
    x = torch.randn(2, 3, 32, 48, dtype=torch.float64)
    y = haar_dwt(x)
    assert y.shape == (2, 12, 16, 24)
    assert torch.allclose(haar_idwt(y), x, atol=1e-12)
    assert torch.allclose(y.pow(2).sum(), x.pow(2).sum())  # orthonormal
    # LL band of a constant image is twice the constant, detail bands are zero
    c = haar_dwt(torch.full((1, 1, 4, 4), 0.5))
    assert torch.allclose(c[:, 0], torch.ones(1, 2, 2)) and c[:, 1:].abs().max() == 0


def test_resampling_shapes_and_constant_preservation():
    x = torch.full((1, 4, 8, 8), 2.0)
    up, down = Upsample2x()(x), Downsample2x()(x)
    assert up.shape == (1, 4, 16, 16) and down.shape == (1, 4, 4, 4)
    assert torch.allclose(up[..., 2:-2, 2:-2], x[..., :1, :1].expand(1, 4, 12, 12))  # interior keeps the value
    assert torch.allclose(down[..., 1:-1, 1:-1], torch.full((1, 4, 2, 2), 2.0))


def _reference_upsample(x: np.ndarray) -> np.ndarray:
    """StyleGAN2's x2 upsampling of one (H, W) map: insert zeros, convolve with 4 x [1,3,3,1]^2 / 64, crop."""
    zeros = np.zeros((2 * x.shape[0], 2 * x.shape[1]))
    zeros[::2, ::2] = x
    k = np.outer([1, 3, 3, 1], [1, 3, 3, 1]) / 64 * 4
    full = convolve2d(zeros, k, mode="full")  # (2H + 3, 2W + 3)
    return full[1:1 + zeros.shape[0], 1:1 + zeros.shape[1]]


def test_upsampling_matches_zero_insertion_and_blur():
    x = torch.randn(2, 3, 6, 5, dtype=torch.float64)
    up = Upsample2x()(x)
    ref = np.stack([[_reference_upsample(c) for c in img] for img in x.numpy()])
    assert np.allclose(up.numpy(), ref, atol=1e-12)


def test_wavelet_upsampler_goes_through_pixels_and_has_exact_gradients():
    y = torch.randn(1, 12, 4, 4, dtype=torch.float64, requires_grad=True)
    out = WaveletUpsample()(y)
    assert out.shape == (1, 12, 8, 8)
    pixels = haar_idwt(y.detach()).numpy()
    ref = np.stack([[_reference_upsample(c) for c in img] for img in pixels])
    assert np.allclose(haar_idwt(out.detach()).numpy(), ref, atol=1e-12)
    assert torch.autograd.gradcheck(WaveletUpsample().double(), (y,))


def test_modulated_conv_equals_per_sample_weights():
    torch.manual_seed(0)
    conv = ModulatedConv2d(5, 7, 3, style_dim=6)
    x, w = torch.randn(3, 5, 9, 9), torch.randn(3, 6)
    out = conv(x, w)
    style = conv.affine(w)
    for i in range(3):  # reference: modulate, demodulate, convolve each sample with its own weights
        wi = conv.weight * conv.scale * style[i][None, :, None, None]
        wi = wi * torch.rsqrt(wi.pow(2).sum(dim=(1, 2, 3), keepdim=True) + 1e-8)
        ref = F.conv2d(x[i:i + 1], wi, padding=1)
        assert torch.allclose(out[i:i + 1], ref, atol=1e-5)


def test_positional_encoding():
    code = positional_encoding(torch.tensor([0.0, 0.1, 0.5]))
    assert code.shape == (3, 64) and code.dtype == torch.float32
    assert torch.allclose(code[0, :32], torch.zeros(32)) and torch.allclose(code[0, 32:], torch.ones(32))
    assert (code[1] - code[2]).abs().max() > 0.5


def test_styled_activations_are_clamped_in_fp16_only():
    from styleavatar.models.ops import FP16_CLAMP, StyledConv

    torch.manual_seed(0)
    layer = StyledConv(4, 4, 8)
    with torch.no_grad():
        layer.bias.fill_(1e3)  # pushes every activation far past the clamp
    x, w = torch.randn(1, 4, 6, 6), torch.randn(1, 8)
    full = layer(x, w)
    assert full.abs().max() > 4 * FP16_CLAMP  # fp32: untouched
    half = layer.half()(x.half(), w.half())
    assert half.dtype == torch.float16 and torch.isfinite(half).all()
    assert half.abs().max() == FP16_CLAMP


def test_box_mean_is_the_clipped_square_mean():
    """The row-then-column box mean equals the square window's mean over the pixels inside the image, border
    included: there the clipped window holds fewer pixels, and dividing by the whole window's would differ."""
    torch.manual_seed(0)
    x = torch.rand(2, 1, 40, 33)
    for r in (1, 3, 8):
        ref = F.avg_pool2d(x, 2 * r + 1, stride=1, padding=r, count_include_pad=False)
        assert torch.allclose(box_mean(x, r), ref, atol=1e-6)
    corner = x[0, 0, :9, :9].mean()  # the window at (0, 0) with r = 8 holds rows and columns 0-8 only
    assert torch.isclose(box_mean(x, 8)[0, 0, 0, 0], corner, atol=1e-6)
    assert not torch.isclose(box_mean(x, 8)[0, 0, 0, 0], x[0, 0, :9, :9].sum() / 17 ** 2, atol=1e-3)
