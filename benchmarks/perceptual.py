#!/usr/bin/env python3
"""What the perceptual loss costs a training step, whole and on a crop; and the blend band's box filter.

    .venv/bin/python benchmarks/perceptual.py [--preset cpu] [--crop 96] [--rounds 4]
    ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2 .venv/bin/python benchmarks/perceptual.py

The preset's generator step (synthetic frames of the real shapes, its training batch, fp32 and bf16 where bf16
is native) timed over whole cycles of ``vgg_every`` steps (the perceptual loss on the first of each), with the
perceptual loss on the whole ``vgg_size`` image, on a random ``--crop`` square of it, and without it. The
variants take turns within each round, in one process, so a drift of the machine's speed falls on all of them;
medians over the rounds. Then the known base's local coverage (:func:`styleavatar.models.ops.box_mean` against
the single square average pool it replaced) at the training batch and for one frame. Each CPU class gets its
own section in BENCHMARKS.md.
"""
from __future__ import annotations

import dataclasses
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import cpu_class, emit_section, machine, step_parser  # noqa: E402


def cycle_ms(G, opt, batch, t, rt, vgg) -> float:
    """Mean ms per generator step over one cycle of ``t.vgg_every`` steps (the perceptual loss on the first)."""
    from styleavatar.training.step import generator_step

    t0 = time.perf_counter()
    for i in range(t.vgg_every):
        generator_step(G, opt, batch, t, rt, i, vgg)
    return (time.perf_counter() - t0) / t.vgg_every * 1000


def step_rows(preset: str, crop: int, precision: str, rounds: int) -> list[tuple[str, float]]:
    """(variant, median ms per step) for the preset's step with the perceptual loss whole, cropped and off."""
    import torch

    from styleavatar.config import MODEL_PRESETS, TRAIN_PRESETS
    from styleavatar.models.avatar import AvatarNet
    from styleavatar.runtime import Runtime
    from styleavatar.training.losses import perceptual_loss
    from styleavatar.training.speed import synthetic_batch
    from styleavatar.training.step import Optimiser, adamw

    m, t = MODEL_PRESETS[preset], TRAIN_PRESETS[preset]
    torch.manual_seed(0)
    G = AvatarNet(m)
    opt = Optimiser(G, adamw(G.parameters(), t), t.grad_clip)
    rt = Runtime("cpu", precision, False, torch.get_num_threads(), "benchmark")
    batch = synthetic_batch(m, t.batch)
    side = t.vgg_size or m.output_size
    variants = {f"whole {side}^2": perceptual_loss(dataclasses.replace(t, vgg_crop=None)),
                f"crop {crop}^2 of {side}^2": perceptual_loss(dataclasses.replace(t, vgg_crop=crop)),
                "no perceptual loss": None}
    for vgg in variants.values():  # warm-up: kernels for every shape, the optimiser's state
        cycle_ms(G, opt, batch, t, rt, vgg)
    times: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(rounds):
        for name, vgg in variants.items():
            times[name].append(cycle_ms(G, opt, batch, t, rt, vgg))
    return [(name, statistics.median(v)) for name, v in times.items()]


def box_rows(preset: str, repeats: int = 20) -> list[tuple[str, int, float]]:
    """(filter, batch, median ms) of the known base's local coverage at the preset's output size."""
    import torch
    import torch.nn.functional as F

    from styleavatar.config import MODEL_PRESETS
    from styleavatar.models.avatar import AvatarNet
    from styleavatar.models.ops import box_mean

    m = MODEL_PRESETS[preset]
    r = AvatarNet(m).blend_band
    filters = {f"one {2 * r + 1}x{2 * r + 1} average pool (before)":
               lambda x: F.avg_pool2d(x, 2 * r + 1, stride=1, padding=r, count_include_pad=False),
               "rows, then columns (box_mean)": lambda x: box_mean(x, r)}
    rows = []
    for batch in (4, 1):
        x = torch.rand(batch, 1, m.output_size, m.output_size)
        for name, f in filters.items():
            f(x)
            times = []
            for _ in range(repeats):
                t0 = time.perf_counter()
                f(x)
                times.append(time.perf_counter() - t0)
            rows.append((name, batch, statistics.median(times) * 1000))
    return rows


def main(argv: list[str] | None = None) -> str:
    from styleavatar.runtime import cpu_info

    ap = step_parser(__doc__, 4, "every variant")
    ap.add_argument("--crop", type=int, default=96, help="side of the perceptual loss's crop to time (default: 96)")
    args = ap.parse_args(argv)
    precisions = ["fp32"] + (["bf16"] if cpu_info().native_bf16 else [])
    cls = cpu_class()
    lines = [f"## the perceptual loss on a crop, {cls}", "",
             f"`.venv/bin/python benchmarks/perceptual.py --preset {args.preset} --crop {args.crop} --rounds "
             f"{args.rounds}`, {machine()}. The `{args.preset}` preset's generator step (synthetic frames of the "
             f"real shapes, its training batch) per step over cycles of its perceptual-loss interval; the variants "
             f"in turn within each round, medians of {args.rounds} rounds.", "",
             "| precision | perceptual loss | ms per step | x whole |", "| --- | --- | ---: | ---: |"]
    for precision in precisions:
        rows = step_rows(args.preset, args.crop, precision, args.rounds)
        whole = rows[0][1]
        lines += [f"| {precision} | {name} | {ms:.0f} | {ms / whole:.2f} |" for name, ms in rows]
    lines += ["", "The known base's local coverage (a box mean over the blend band at the output size, fp32):", "",
              "| filter | batch | ms |", "| --- | ---: | ---: |"]
    lines += [f"| {name} | {batch} | {ms:.1f} |" for name, batch, ms in box_rows(args.preset)]
    return emit_section(lines, write=not args.no_write)


if __name__ == "__main__":
    main()
