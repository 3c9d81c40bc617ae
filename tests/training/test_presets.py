"""Every preset builds at its real size and runs forward; each CPU preset takes one full training step
(generator and discriminator) at its real size, and so does the paper's design at the tiny preset's size."""
from __future__ import annotations

import copy
import dataclasses

import pytest
import torch

from styleavatar.config import MODEL_PRESETS, TRAIN_PRESETS, ModelConfig
from styleavatar.io.weights import load_weights
from styleavatar.models.avatar import AvatarNet
from styleavatar.models.perceptual import PerceptualLoss
from styleavatar.models.stylegan import Discriminator
from styleavatar.runtime import Runtime
from styleavatar.training.data import Batch
from styleavatar.training.speed import synthetic_batch
from styleavatar.training.step import Optimiser, adamw, discriminator_step, generator_step, update_ema


SIZES = ("output_size", "feature_channels", "uv_size", "max_channels", "channel_base", "render_depth", "image_depth",
         "style_dim", "mapping_layers", "disc_max_channels")
"""The ModelConfig fields that set a network's size, not its design."""


def _forward(G: AvatarNet, m: ModelConfig, b: Batch) -> torch.Tensor:
    """The frame of ``b`` through ``G`` without gradients: the image and mask have the preset's shape and value
    ranges. Returns the image (1, 3, output_size, output_size), about [-1, 1]."""
    with torch.no_grad():
        image, mask = G(b.render, b.uv, b.frame_index, b.identity, None)
    assert image.shape == (1, 3, m.output_size, m.output_size) and mask.shape == (1, 1, m.output_size, m.output_size)
    assert torch.isfinite(image).all() and 0 <= float(mask.min()) <= float(mask.max()) <= 1
    return image


@pytest.mark.slow
def test_paper_preset_builds_at_its_real_size_and_runs_forward():
    # Its training step at 1024^2 costs about 85 s of two CPU cores (AMD Zen 1) and is a GPU's job; the step of its
    # design, at the tiny preset's size, is the "tiny" case below.
    torch.manual_seed(0)
    m = MODEL_PRESETS["paper"]
    b = synthetic_batch(m, batch=1)
    image = _forward(AvatarNet(m), m, b)
    with torch.no_grad():
        logit = Discriminator(m.output_size, m.disc_channels)(image, b.render_window)
    assert logit.shape == (1,) and torch.isfinite(logit).all()


def test_tiny_preset_is_the_paper_design_at_a_small_size():
    tiny = MODEL_PRESETS["tiny"]
    assert dataclasses.replace(MODEL_PRESETS["paper"], **{k: getattr(tiny, k) for k in SIZES}) == tiny


@pytest.mark.parametrize("preset", ["tiny", "small", "cpu"])
def test_preset_forward_and_one_training_step(preset):
    torch.manual_seed(0)
    # tiny takes the paper's training recipe: it stands for the paper preset (the test above)
    m, t = MODEL_PRESETS[preset], TRAIN_PRESETS["paper" if preset == "tiny" else preset]
    G, D = AvatarNet(m), Discriminator(m.output_size, m.disc_channels)
    ema = copy.deepcopy(G).requires_grad_(False)
    vgg = PerceptualLoss(load_weights("vgg16"), size=t.vgg_size or 128, crop=t.vgg_crop)
    b = synthetic_batch(m, batch=1)
    _forward(G, m, b)
    rt = Runtime("cpu", "fp32", False, torch.get_num_threads(), "test")
    # noise strengths of layers that get no noise (sides outside ModelConfig's noise sides) have no gradient
    named = [(n, p) for n, p in G.image_unet.named_parameters() if not n.endswith("noise_strength")]
    before = [p.detach().clone() for _, p in named]
    opt_g, opt_d = Optimiser(G, adamw(G.parameters(), t), t.grad_clip), Optimiser(D, adamw(D.parameters(), t), 1.0)
    losses, fake = generator_step(G, opt_g, b, t, rt, 0, vgg, D)
    assert set(losses) == {"l1", "mask", "vgg", "gan"}
    assert all(map(torch.isfinite, map(torch.as_tensor, losses.values())))
    d = discriminator_step(D, opt_d, b, fake, t, rt, 0)
    assert set(d) == {"d", "d_gap", "r1"}  # iteration 0: the lazy R1 runs
    update_ema(ema, G, t.ema_decay, 0)
    if m.known_base:  # the correction's gain starts at 0: the decoder gets its first gradient in step 2
        assert float(G.correction_gain.detach()) != 0
        generator_step(G, opt_g, b, t, rt, 1, vgg, D)
    still = [n for (n, p), q in zip(named, before) if torch.equal(p.detach(), q)]
    assert still == []  # the step reached every layer of the image StyleUNet
