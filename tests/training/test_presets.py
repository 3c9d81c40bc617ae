"""Every preset builds at its real size and takes one full training step (generator and discriminator)."""
from __future__ import annotations

import copy

import pytest
import torch

from styleavatar.config import MODEL_PRESETS, TRAIN_PRESETS
from styleavatar.io.weights import load_weights
from styleavatar.models.avatar import AvatarNet
from styleavatar.models.perceptual import PerceptualLoss
from styleavatar.models.stylegan import Discriminator
from styleavatar.runtime import Runtime
from styleavatar.training.speed import synthetic_batch
from styleavatar.training.step import Optimiser, adamw, discriminator_step, generator_step, update_ema


@pytest.mark.parametrize("preset", ["small", "cpu", pytest.param("paper", marks=pytest.mark.slow)])
def test_preset_forward_and_one_training_step(preset):
    torch.manual_seed(0)
    m, t = MODEL_PRESETS[preset], TRAIN_PRESETS[preset]
    G, D = AvatarNet(m), Discriminator(m.output_size, m.disc_channels)
    ema = copy.deepcopy(G).requires_grad_(False)
    vgg = PerceptualLoss(load_weights("vgg16"), size=t.vgg_size or 128, crop=t.vgg_crop)  # 1024^2 is a GPU's job
    b = synthetic_batch(m, batch=1)
    with torch.no_grad():
        image, mask = G(b.render, b.uv, b.frame_index, b.identity, None)
    assert image.shape == (1, 3, m.output_size, m.output_size) and mask.shape == (1, 1, m.output_size, m.output_size)
    assert torch.isfinite(image).all() and 0 <= float(mask.min()) <= float(mask.max()) <= 1
    rt = Runtime("cpu", "fp32", False, torch.get_num_threads(), "test")
    # noise strengths of layers that get no noise (sides outside ModelConfig's noise sides) have no gradient
    named = [(n, p) for n, p in G.image_unet.named_parameters() if not n.endswith("noise_strength")]
    before = [p.detach().clone() for _, p in named]
    opt_g, opt_d = Optimiser(G, adamw(G.parameters(), t), t.grad_clip), Optimiser(D, adamw(D.parameters(), t), 1.0)
    losses, fake = generator_step(G, opt_g, b, t, rt, 0, vgg, D)
    assert set(losses) == {"l1", "mask", "vgg", "gan"} and all(map(torch.isfinite, map(torch.tensor, losses.values())))
    d = discriminator_step(D, opt_d, b, fake, t, rt, 0)
    assert set(d) == {"d", "d_gap", "r1"}  # iteration 0: the lazy R1 runs
    update_ema(ema, G, t.ema_decay, 0)
    if m.known_base:  # the correction's gain starts at 0: the decoder gets its first gradient in step 2
        assert float(G.correction_gain.detach()) != 0
        generator_step(G, opt_g, b, t, rt, 1, vgg, D)
    still = [n for (n, p), q in zip(named, before) if torch.equal(p.detach(), q)]
    assert still == []  # the step reached every layer of the image StyleUNet
