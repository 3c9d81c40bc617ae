#!/usr/bin/env python3
"""How fast a training step can be on this CPU: its arithmetic, counted, against what the CPU delivers.

    .venv/bin/python benchmarks/roofline.py [--presets small cpu]
    ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2 MKL_ENABLE_INSTRUCTIONS=AVX2 \
        .venv/bin/python benchmarks/roofline.py

Per preset, at its training batch, in fp32 (the precision of CPUs without native bf16): the floating-point
operations of one training step, counted with PyTorch's per-op FLOP formulas (matrix products and
convolutions, forward, backward and R1's double backward), averaged over the preset's schedule (perceptual
loss every ``vgg_every`` steps; from ``gan_start`` on the discriminator's step too, R1 every ``r1_every``);
the step's measured time (median of 5,
synthetic frames of the real shapes, at the memory layout that is faster here); and two ceilings: the rate of a
large fp32 matrix product (2048^2) and of a 3x3 convolution like the generator's widest layers. ``it/s at
the ceiling`` is what the step would reach if all its arithmetic ran as fast as the faster of those two dense
kernels: its many small, narrow layers, normalisations and element-wise work run slower, so no implementation
of this network in these kernels reaches it.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import cpu_class, emit_section, machine  # noqa: E402

RESTRICTED = "ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2 MKL_ENABLE_INSTRUCTIONS=AVX2"
"""The environment that stands in for the AVX2-only class here (MKL too: this table's ceiling is a BLAS call)."""
GOALS = {"small": 4.0, "cpu": 1.2}
"""Training speed goals (it/s, fp32, AVX2-only class) set for the presets."""


def _median_s(fn, repeats: int = 5) -> float:
    fn()  # warm-up: kernels for these shapes, optimiser state
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def matmul_gflops(n: int = 2048) -> float:
    """fp32 GFLOP/s of an n x n x n matrix product (median of 5)."""
    import torch

    a, b = torch.randn(n, n), torch.randn(n, n)
    return 2 * n ** 3 / _median_s(lambda: torch.mm(a, b)) / 1e9


def conv_gflops(channels: int, size: int, batch: int, channels_last: bool) -> float:
    """fp32 GFLOP/s of a 3x3 convolution, ``channels`` in and out, on (batch, channels, size, size)."""
    import torch

    fmt = torch.channels_last if channels_last else torch.contiguous_format
    conv = torch.nn.Conv2d(channels, channels, 3, padding=1).to(memory_format=fmt)
    x = torch.randn(batch, channels, size, size).to(memory_format=fmt)
    with torch.no_grad():
        seconds = _median_s(lambda: conv(x))
    return 2 * 9 * channels * channels * size * size * batch / seconds / 1e9


def flop_counter():
    """A context that counts the FLOPs of matrix products and convolutions run inside it (``.total``), double
    backward included: torch's FlopCounterMode tracks modules with hooks that R1's
    ``autograd.grad(create_graph=True)`` refuses, so this counts with the same per-op formulas and no hooks."""
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils.flop_counter import flop_registry

    class FlopCount(TorchDispatchMode):
        def __init__(self) -> None:
            super().__init__()
            self.total = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            kwargs = kwargs or {}
            out = func(*args, **kwargs)
            count = flop_registry.get(func._overloadpacket)
            if count is not None:
                self.total += count(*args, **kwargs, out_val=out)
            return out
    return FlopCount()


def step_parts(preset: str):
    """{part: (GFLOP, median seconds)} of one preset's training step parts, fp32, and the layout used."""
    import torch

    from styleavatar.config import MODEL_PRESETS, TRAIN_PRESETS
    from styleavatar.models.avatar import AvatarNet
    from styleavatar.models.stylegan import Discriminator
    from styleavatar.runtime import Runtime
    from styleavatar.training.losses import perceptual_loss
    from styleavatar.training.speed import synthetic_batch
    from styleavatar.training.step import Optimiser, adamw, discriminator_step, generator_step

    m, t = MODEL_PRESETS[preset], TRAIN_PRESETS[preset]
    torch.manual_seed(0)
    G, D = AvatarNet(m), Discriminator(m.output_size, m.disc_channels)
    vgg = perceptual_loss(t)
    opt_G = Optimiser(G, adamw(G.parameters(), t), t.grad_clip)
    opt_D = Optimiser(D, adamw(D.parameters(), t, lazy_every=t.r1_every), t.grad_clip)

    def make_parts(channels_last: bool) -> dict:
        """The step's parts at this layout (iteration numbers pick what runs: 0 is divisible by vgg_every and
        r1_every, 1 by neither)."""
        rt = Runtime("cpu", "fp32", channels_last, torch.get_num_threads(), "")
        rt.apply_layout(G, D, vgg)
        b = synthetic_batch(m, t.batch).to("cpu", channels_last)
        fake = generator_step(G, opt_G, b, t, rt, 1)[1]
        return {
            "generator": lambda: generator_step(G, opt_G, b, t, rt, 1),
            "generator + perceptual": lambda: generator_step(G, opt_G, b, t, rt, 0, vgg),
            "generator + adversarial": lambda: generator_step(G, opt_G, b, t, rt, 1, vgg, D),
            "generator + perceptual + adversarial": lambda: generator_step(G, opt_G, b, t, rt, 0, vgg, D),
            "discriminator": lambda: discriminator_step(D, opt_D, b, fake, t, rt, 1),
            "discriminator + R1": lambda: discriminator_step(D, opt_D, b, fake, t, rt, 0),
        }

    best = None
    for channels_last in (False, True):  # the layout the training probe would also compare
        timed = {name: _median_s(fn) for name, fn in make_parts(channels_last).items()}
        if best is None or sum(timed.values()) < sum(best[1].values()):
            best = (channels_last, timed)
    channels_last, timed = best
    parts = make_parts(channels_last)  # FLOPs do not depend on the layout; counted at the faster one
    out = {}
    for name, fn in parts.items():
        with flop_counter() as counter:
            fn()
        out[name] = (counter.total / 1e9, timed[name])
    return out, channels_last, m, t


def schedule(parts: dict, t) -> dict[str, tuple[float, float]]:
    """(GFLOP, seconds) of an average step before the GAN starts and after (perceptual every ``vgg_every``,
    R1 every ``r1_every``)."""
    def mix(*terms):
        return tuple(sum(w * parts[name][k] for name, w in terms) for k in (0, 1))
    every, r1 = max(1, t.vgg_every), max(1, t.r1_every)
    before = [("generator", 1 - 1 / every), ("generator + perceptual", 1 / every)]
    after = [("generator + adversarial", 1 - 1 / every), ("generator + perceptual + adversarial", 1 / every),
             ("discriminator", 1 - 1 / r1), ("discriminator + R1", 1 / r1)]
    return {"reconstruction phase": mix(*before), "GAN phase": mix(*after)}


def main(argv: list[str] | None = None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--presets", nargs="+", default=["small", "cpu"])
    ap.add_argument("--no-write", action="store_true", help="print only; leave BENCHMARKS.md alone")
    args = ap.parse_args(argv)
    import torch

    peak = matmul_gflops()
    rows, conv_rates = [], {}
    for preset in args.presets:
        parts, channels_last, m, t = step_parts(preset)
        # the widest layers: max_channels wide at the resolution where channel_base / r reaches max_channels
        conv_rates[preset] = conv_gflops(m.max_channels, m.channel_base // m.max_channels, t.batch, channels_last)
        for phase, (gflop, seconds) in schedule(parts, t).items():
            rows.append({"preset": preset, "phase": phase, "batch": t.batch, "gflop": gflop, "seconds": seconds,
                         "layout": "channels_last" if channels_last else "contiguous",
                         "achieved": gflop / seconds, "it_s": 1 / seconds, "bound": None,
                         "goal": GOALS.get(preset)})
        print(preset, {k: (round(f, 2), round(s * 1000)) for k, (f, s) in parts.items()}, file=sys.stderr)
    ceiling = max(peak, *conv_rates.values())  # the fastest dense arithmetic measured on this CPU
    for r in rows:
        r["bound"] = ceiling / r["gflop"]
    title = f"training step against the CPU's arithmetic, {cpu_class()}"
    lines = [f"## {title}", "",
             f"`{RESTRICTED + ' ' if 'AVX2' in cpu_class() else ''}"
             f".venv/bin/python benchmarks/roofline.py --presets {' '.join(args.presets)}`, {machine()}, "
             f"{torch.get_num_threads()} threads, fp32. A 2048^2 fp32 matrix product runs at **{peak:.0f} GFLOP/s** "
             "here; a 3x3 convolution of the generator's widest layers (their channels in and out, at their "
             "resolution, the training batch) at "
             + ", ".join(f"{conv_rates[p]:.0f} GFLOP/s ({p})" for p in args.presets)
             + ". GFLOP per step counted with PyTorch's per-op FLOP formulas (matrix products and convolutions), "
             "averaged over the preset's schedule; "
             f"seconds measured (median of 5, synthetic frames of the real shapes). The ceiling is the fastest of "
             f"these dense kernels, {ceiling:.0f} GFLOP/s: a step whose every operation ran at it would reach the "
             "ceiling's it/s.", "",
             "| preset | phase | batch | GFLOP / step | step s | achieved GFLOP/s | it/s | it/s at the ceiling "
             "| goal (AVX2 class) |", "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in rows:
        goal = f"{r['goal']:.1f} (needs {r['goal'] * r['gflop']:.0f} GFLOP/s)" if r["goal"] else ""
        lines.append(f"| {r['preset']} | {r['phase']} | {r['batch']} | {r['gflop']:.1f} | {r['seconds']:.3f} | "
                     f"{r['achieved']:.0f} | {r['it_s']:.2f} | {r['bound']:.2f} | {goal} |")
    emit_section(lines, write=not args.no_write)
    return rows


if __name__ == "__main__":
    main()
