"""One optimisation step of the generator and of the discriminator (paper Sec. 3.4), for ``train`` and ``distill``.

Generator losses: L1 on the image, L1 on the foreground mask, the VGG16 perceptual loss (lazily, every
``vgg_every`` iterations) and the non-saturating GAN loss of a discriminator conditioned on the texture
render. Discriminator: the GAN loss on real and generated images, with a lazy R1 penalty on real ones.
"""
from __future__ import annotations

import torch
from torch import nn

from ..config import TrainConfig
from ..runtime import Runtime
from . import distributed as ddp
from .data import Batch
from .losses import discriminator_loss, generator_gan_loss, r1_penalty


def adamw(params, t: TrainConfig, lazy_every: int = 0, fused: bool = False, lr: float | None = None
          ) -> torch.optim.AdamW:
    """AdamW with ``t``'s learning rate (or ``lr``), betas and weight decay; ``fused``: one kernel for all
    parameters (for parameters on a GPU).

    lazy_every: > 0 for a network whose regulariser runs every that many steps (StyleGAN2's lazy
    regularisation): learning rate and betas are scaled so its steps match an every-step regulariser.
    """
    ratio = lazy_every / (lazy_every + 1) if lazy_every else 1.0
    lr = t.lr if lr is None else lr
    return torch.optim.AdamW(params, lr=lr * ratio, betas=(t.beta1 ** ratio, t.beta2 ** ratio),
                             weight_decay=t.weight_decay, fused=fused or None)


class Optimiser:
    """A network's optimiser with loss scaling (fp16 only), gradient averaging across processes and clipping."""

    def __init__(self, net: nn.Module, opt: torch.optim.Optimizer, grad_clip: float,
                 dist: ddp.DistInfo = ddp.DistInfo()) -> None:
        self.net, self.opt, self.grad_clip, self.dist = net, opt, grad_clip, dist
        self.scaler = torch.amp.GradScaler("cpu", enabled=False)

    def use_runtime(self, rt: Runtime, scaler_state: dict | None = None) -> None:
        """fp16 gradients can underflow: scale the loss under fp16 (one scaler per network). ``scaler_state``:
        a checkpoint's :meth:`scaler_state`, so a resumed run keeps the loss scale it had learnt."""
        self.scaler = torch.amp.GradScaler(torch.device(rt.device).type, enabled=rt.dtype == torch.float16)
        if scaler_state and self.scaler.is_enabled():
            self.scaler.load_state_dict(scaler_state)

    def scaler_state(self) -> dict:
        """The loss scaler's state as JSON-able numbers ({} when no scaling is used)."""
        return self.scaler.state_dict()

    def set_lr(self, lr: float) -> None:
        """Use learning rate ``lr`` from the next step on."""
        for group in self.opt.param_groups:
            group["lr"] = lr

    @property
    def lr(self) -> float:
        """The learning rate the next step uses (see :meth:`set_lr`)."""
        return self.opt.param_groups[0]["lr"]

    def step(self, loss: torch.Tensor) -> None:
        """Backward, average across processes, clip, step."""
        self.opt.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        ddp.average_gradients(self.net, self.dist)
        self.scaler.unscale_(self.opt)
        if self.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.net.parameters(), self.grad_clip)
        self.scaler.step(self.opt)
        self.scaler.update()


def reconstruction_losses(image: torch.Tensor, mask: torch.Tensor, b: Batch, vgg: nn.Module | None
                          ) -> dict[str, torch.Tensor]:
    """L1 of image (B, 3, out, out) and mask (B, 1, out, out) against the batch; perceptual when ``vgg``."""
    losses = {"l1": (image - b.image).abs().mean(), "mask": (mask - b.mask).abs().mean()}
    if vgg is not None:
        losses["vgg"] = vgg(image, b.image)
    return losses


def weighted_sum(losses: dict[str, torch.Tensor], t: TrainConfig) -> torch.Tensor:
    """The training objective: each loss times its weight in ``t``."""
    weights = {"l1": t.l1_weight, "mask": t.mask_weight, "vgg": t.vgg_weight, "gan": t.gan_weight}
    return sum(weights[k] * v for k, v in losses.items())


def generator_step(G: nn.Module, opt: Optimiser, b: Batch, t: TrainConfig, rt: Runtime, iteration: int,
                   vgg: nn.Module | None = None, D: nn.Module | None = None
                   ) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """One generator update on batch ``b``; returns the losses (detached 0-d tensors, on the device: reading
    them is a host sync, so callers convert only when they log: see :func:`loss_values`) and the generated
    images (B, 3, out, out).

    ``vgg`` is used on iterations divisible by ``t.vgg_every``; ``D`` (None: no GAN loss) is held fixed."""
    if D is not None:
        D.requires_grad_(False)
    with rt.autocast():
        image, mask = G(b.render, b.uv, b.frame_index, b.identity, b.offsets)
        image, mask = image.float(), mask.float()
        losses = reconstruction_losses(image, mask, b, vgg if iteration % t.vgg_every == 0 else None)
        if D is not None:
            losses["gan"] = generator_gan_loss(D(image, b.render_window).float())
    opt.step(weighted_sum(losses, t))
    if D is not None:
        D.requires_grad_(True)
    return {k: v.detach() for k, v in losses.items()}, image.detach()


def discriminator_step(D: nn.Module, opt: Optimiser, b: Batch, fake: torch.Tensor, t: TrainConfig, rt: Runtime,
                       iteration: int) -> dict[str, torch.Tensor]:
    """One discriminator update: real frames of ``b`` against ``fake`` (B, 3, out, out), R1 every ``r1_every``.
    Returns detached 0-d tensors, like :func:`generator_step`: the loss ``d``, ``d_gap`` (mean logit of the real
    frames minus that of the generated ones: near 0 while the discriminator cannot tell them apart) and, on R1
    iterations, ``r1``."""
    with rt.autocast():
        real_logits, fake_logits = D(b.image, b.render_window).float(), D(fake, b.render_window).float()
        loss = discriminator_loss(real_logits, fake_logits)
    out = {"d": loss.detach(), "d_gap": (real_logits.mean() - fake_logits.mean()).detach()}
    if t.r1_gamma > 0 and iteration % t.r1_every == 0:
        real = b.image.detach().requires_grad_(True)
        r1 = r1_penalty(D(real, b.render_window), real)  # fp32: the penalty needs precise gradients
        loss = loss + r1 * (t.r1_gamma / 2 * t.r1_every)
        out["r1"] = r1.detach()
    opt.step(loss)
    return out


def loss_values(losses: dict[str, torch.Tensor]) -> dict[str, float]:
    """The losses as numbers: one host sync for all of them (a GPU runs ahead until something is read)."""
    if not losses:
        return {}
    values = torch.stack([v.float() for v in losses.values()]).tolist()
    return dict(zip(losses, values))


@torch.no_grad()
def update_ema(ema: nn.Module, net: nn.Module, decay: float, iteration: int, ramp: float = 10.0) -> None:
    """Move ``ema``'s parameters towards ``net``'s.

    Warm-up: early on the average follows the weights closely (decay (1 + i) / (ramp + i) until it reaches
    ``decay``: the average lags about i / ramp iterations behind the weights), so short runs get a useful average
    too. Buffers are constants or the cached maps, which each copy computes from its own generators."""
    d = min(decay, (1 + iteration) / (ramp + iteration))
    torch._foreach_lerp_(list(ema.parameters()), list(net.parameters()), 1 - d)  # one fused op for all tensors
