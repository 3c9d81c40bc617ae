"""Timed training steps: the probe that picks precision and layout, and the it/s estimate of ``doctor``.

A probe step is the generator's forward + backward with the L1, mask and perceptual losses, without an
optimiser step (weights and random state stay untouched), so it can run on the real networks before
training starts.
"""
from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from ..config import ModelConfig, TrainConfig
from ..runtime import Runtime, choose, time_ms
from .data import Batch


def _generator_loss(G: nn.Module, vgg: nn.Module | None, b: Batch, vgg_weight: float) -> torch.Tensor:
    """L1 + mask L1 (+ perceptual when ``vgg``) of one generator forward: the bulk of a training step's work."""
    image, mask = G(b.render, b.uv, b.frame_index, b.identity, b.offsets)
    loss = (image.float() - b.image).abs().mean() + (mask.float() - b.mask).abs().mean()
    return loss + vgg_weight * vgg(image.float(), b.image) if vgg is not None else loss


def probe_steps(G: nn.Module, vgg: nn.Module | None, batch: Batch, device: torch.device,
                others: tuple[nn.Module | None, ...] = ()) -> Callable[[str, bool], Callable[[], None]]:
    """``make_step(precision, channels_last)`` for :func:`styleavatar.runtime.choose`.

    Each step first puts G, the perceptual network and ``others`` (the discriminator; None: skipped) in that
    step's memory layout, so the candidates can be interleaved.
    """
    def make_step(precision: str, channels_last: bool) -> Callable[[], None]:
        rt = Runtime(str(device), precision, channels_last, 0, "")
        b = batch.to(device, channels_last)

        def step() -> None:
            rt.apply_layout(G, vgg, *others)
            with rt.autocast():
                loss = _generator_loss(G, vgg, b, 1.0)
            loss.backward()
            G.zero_grad(set_to_none=True)
        return step
    return make_step


def half_batch_cost(full: Callable[[], None], half: Callable[[], None], rounds: int = 5) -> float:
    """The time of step ``half`` (half the batch) as a fraction of step ``full``: each runs once to warm up,
    then both run in each of ``rounds`` rounds, in alternating order; the median of the rounds' ratios.

    A ratio is taken within a round, so a slow stretch of a shared machine that spans the round hits both
    steps; one that hits only one step moves that round's ratio and not the median. (The best of two runs of
    each, as before, read 0.83 once against 0.58-0.63 in three other runs of the same preset on the same CPU,
    which halved that run's iterations.)"""
    full(), half()
    ratios = []
    for r in range(rounds):
        if r % 2:  # half first, so a drift within the round does not always favour the same step
            h, f = time_ms(half), time_ms(full)
        else:
            f, h = time_ms(full), time_ms(half)
        ratios.append(h / f)
    return statistics.median(ratios)


def batch_for(batch: int, half_cost: float, half_batch_below: float) -> int:
    """The batch a new run trains with: half of ``batch`` where a half-batch step costs ``half_cost`` (a fraction
    of a full step) of at most ``half_batch_below`` (0: never), else ``batch``."""
    return batch // 2 if 0 < half_batch_below and half_cost <= half_batch_below and batch >= 2 else batch


def synthetic_batch(cfg: ModelConfig, batch: int, seed: int = 0) -> Batch:
    """A batch of random inputs with the shapes and value ranges of real training frames (centred windows)."""
    g = torch.Generator().manual_seed(seed)
    r, out = cfg.render_size, cfg.output_size
    uv = torch.rand(batch, 3, r, r, generator=g)
    uv[:, 2] = (uv[:, 2] > 0.5).float()  # coverage is 0 or 1
    return Batch(render=torch.rand(batch, 3, r, r, generator=g) * 2 - 1, uv=uv,
                 image=torch.rand(batch, 3, out, out, generator=g) * 2 - 1,
                 mask=(torch.rand(batch, 1, out, out, generator=g) > 0.5).float(),
                 render_window=torch.rand(batch, 3, out, out, generator=g) * 2 - 1,
                 frame_index=torch.arange(batch), identity=torch.zeros(batch, dtype=torch.long),
                 offsets=[(0, 0)] * batch)


@dataclass(frozen=True)
class SpeedEstimate:
    """Measured training speed of one preset on this machine (before the GAN phase)."""

    preset: str
    runtime: Runtime
    it_per_s: float
    """Iterations per second: optimiser steps with the perceptual loss every ``vgg_every`` iterations."""
    usable_iterations: int
    batch: int
    """Frames per step: the preset's batch, or half of it where a new run on this machine would halve it."""

    @property
    def minutes_to_usable(self) -> float:
        return self.usable_iterations / max(self.it_per_s, 1e-9) / 60

    def describe(self) -> str:
        return (f"{self.preset}: {self.it_per_s:.2f} it/s ({self.runtime.label()}, batch {self.batch}), a usable "
                f"avatar (~{self.usable_iterations} iterations) in about {self.minutes_to_usable:.0f} min")


def estimate_speed(preset: str, mcfg: ModelConfig, tcfg: TrainConfig, device: torch.device,
                   budget_s: float = 10.0) -> SpeedEstimate:
    """Choose the runtime for a fresh network of this size, then time ``vgg_every`` real iterations."""
    from ..models.avatar import AvatarNet
    from .losses import perceptual_loss

    torch.manual_seed(0)
    G = AvatarNet(mcfg).to(device)
    vgg = perceptual_loss(tcfg, device)
    batch = synthetic_batch(mcfg, tcfg.batch)
    make_step = probe_steps(G, vgg, batch, device)
    rt = choose(device, make_step, tcfg.precision, tcfg.channels_last,
                budget_s=budget_s * 0.6, rounds=1, threads=tcfg.threads)
    rt.apply_layout(G, vgg)
    if tcfg.half_batch_below > 0 and tcfg.batch >= 2:  # as a new training run would choose
        half = probe_steps(G, vgg, synthetic_batch(mcfg, tcfg.batch // 2), device)(rt.precision, rt.channels_last)
        cost = half_batch_cost(make_step(rt.precision, rt.channels_last), half, rounds=1)
        batch = synthetic_batch(mcfg, batch_for(tcfg.batch, cost, tcfg.half_batch_below))
    b = batch.to(device, rt.channels_last)
    opt = torch.optim.AdamW(G.parameters(), lr=tcfg.lr, betas=(tcfg.beta1, tcfg.beta2))
    every = max(1, tcfg.vgg_every)
    steps = every * max(1, -(-4 // every))  # whole cycles of the lazy perceptual loss, at least 4 steps
    for i in range(steps + 1):  # the first step warms up (optimiser state, kernels for this layout): not timed
        if i == 1:
            t0 = time.perf_counter()
        with rt.autocast():
            loss = _generator_loss(G, vgg if (i - 1) % every == 0 else None, b, tcfg.vgg_weight)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    rate = steps / (time.perf_counter() - t0)
    return SpeedEstimate(preset, rt, rate, tcfg.usable_iterations, int(batch.image.shape[0]))
