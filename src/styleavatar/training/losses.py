"""Losses of paper Sec. 3.4: the adversarial ones, and the perceptual network as a run configures it (L1 and
mask L1 are one-liners in :mod:`.step`)."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..config import TrainConfig
from ..io.weights import load_weights
from ..models.perceptual import PerceptualLoss


def perceptual_loss(t: TrainConfig, device: torch.device | str = "cpu") -> PerceptualLoss | None:
    """The VGG16 perceptual loss at ``t``'s size and crop, on ``device``; None when its weight is 0."""
    if t.vgg_weight <= 0:
        return None
    return PerceptualLoss(load_weights("vgg16"), size=t.vgg_size, crop=t.vgg_crop).to(device)


def generator_gan_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """Non-saturating generator loss: softplus(-D(fake)), mean over the batch."""
    return F.softplus(-fake_logits).mean()


def discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """Logistic discriminator loss: softplus(D(fake)) + softplus(-D(real))."""
    return F.softplus(fake_logits).mean() + F.softplus(-real_logits).mean()


def r1_penalty(real_logits: torch.Tensor, real_images: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of |dD/dx|^2 on real images (x must require grad)."""
    (grad,) = torch.autograd.grad(real_logits.sum(), real_images, create_graph=True)
    return grad.pow(2).flatten(1).sum(1).mean()

