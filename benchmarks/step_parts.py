#!/usr/bin/env python3
"""What a training step saves when the render StyleUNet runs on the window's box alone, and when the two static
feature maps are frozen.

    .venv/bin/python benchmarks/step_parts.py [--preset cpu] [--rounds 3]
    ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2 .venv/bin/python benchmarks/step_parts.py

The preset's generator step with its optimiser (synthetic frames of the real shapes, contiguous layout), per
step over cycles of its perceptual-loss interval, at the preset's batch and half of it. Variants: the render
StyleUNet on the whole canvas with zeros outside the box (the paper's), on the box alone (``render_crop``), and
on the box alone with the face and background maps cached (what ``--freeze-features-at`` does: the two
generators stop running). All variants in turn within each round, medians of the rounds. Then what driving an
avatar costs: one frame through the network without gradients (batch 1, the maps cached as a trained avatar
holds them), the canvas pass against the box.
"""
from __future__ import annotations

import dataclasses
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import cpu_class, emit_section, machine, step_parser  # noqa: E402
from perceptual import cycle_ms  # noqa: E402

VARIANTS: dict[str, tuple[bool, bool]] = {
    "render StyleUNet on the canvas (paper)": (False, False),
    "on the window's box (render_crop)": (True, False),
    "on the box, feature maps frozen": (True, True),
}
"""name -> (render_crop, feature maps frozen)."""


def variant_net(preset: str, crop: bool, frozen: bool):
    """The preset's network with ``render_crop`` = ``crop`` and, if ``frozen``, its maps cached; seeded alike."""
    import torch

    from styleavatar.config import MODEL_PRESETS
    from styleavatar.models.avatar import AvatarNet

    torch.manual_seed(0)
    G = AvatarNet(dataclasses.replace(MODEL_PRESETS[preset], render_crop=crop))
    if frozen:
        G.freeze_features()
    return G


def step_rows(preset: str, precision: str, rounds: int) -> list[tuple[int, str, float]]:
    """[(batch, variant, median ms per step)] at the preset's batch and half of it, for every variant."""
    import torch

    from styleavatar.config import MODEL_PRESETS, TRAIN_PRESETS
    from styleavatar.runtime import Runtime
    from styleavatar.training.losses import perceptual_loss
    from styleavatar.training.speed import synthetic_batch
    from styleavatar.training.step import Optimiser, adamw

    m, t = MODEL_PRESETS[preset], TRAIN_PRESETS[preset]
    rt = Runtime("cpu", precision, False, torch.get_num_threads(), "benchmark")
    vgg = perceptual_loss(t)
    steps = {}
    for name, (crop, frozen) in VARIANTS.items():
        G = variant_net(preset, crop, frozen)
        steps[name] = (G, Optimiser(G, adamw(G.parameters(), t), t.grad_clip))
    sizes = (t.batch, t.batch // 2)
    data = {b: synthetic_batch(m, b) for b in sizes}
    keys = [(b, name) for b in sizes for name in VARIANTS]
    for b, name in keys:  # warm-up: kernels for every shape, the optimisers' state
        cycle_ms(*steps[name], data[b], t, rt, vgg)
    times: dict[tuple[int, str], list[float]] = {k: [] for k in keys}
    for _ in range(rounds):
        for b, name in keys:
            times[b, name].append(cycle_ms(*steps[name], data[b], t, rt, vgg))
    return [(b, name, statistics.median(times[b, name])) for b, name in keys]


def inference_rows(preset: str, precision: str, rounds: int, calls: int = 5) -> list[tuple[str, float]]:
    """[(variant, median ms a frame)] of the preset's network at inference (batch 1, no gradient, maps cached):
    the canvas pass and the window's box, in turn within each round; each round's figure is the median of
    ``calls`` frames."""
    import torch

    from styleavatar.config import MODEL_PRESETS
    from styleavatar.runtime import Runtime, time_ms
    from styleavatar.training.speed import synthetic_batch

    rt = Runtime("cpu", precision, False, torch.get_num_threads(), "benchmark")
    b = synthetic_batch(MODEL_PRESETS[preset], 1)
    # a trained avatar's maps are cached whichever variant: the frozen one is the crop again
    nets = {name: variant_net(preset, crop, True).eval().requires_grad_(False)
            for name, (crop, frozen) in VARIANTS.items() if not frozen}

    def frame_ms(G) -> float:
        def call() -> None:
            with torch.no_grad(), rt.autocast():
                G(b.render, b.uv, b.frame_index, b.identity, None)
        return statistics.median([time_ms(call) for _ in range(calls)])

    for G in nets.values():  # warm-up
        frame_ms(G)
    times: dict[str, list[float]] = {name: [] for name in nets}
    for _ in range(rounds):
        for name, G in nets.items():
            times[name].append(frame_ms(G))
    return [(name, statistics.median(ms)) for name, ms in times.items()]


def main(argv: list[str] | None = None) -> str:
    from styleavatar.runtime import cpu_info

    ap = step_parser(__doc__, 3, "every variant")
    args = ap.parse_args(argv)
    precisions = ["fp32"] + (["bf16"] if cpu_info().native_bf16 else [])
    lines = [f"## the render StyleUNet on the window's box, {cpu_class()}", "",
             f"`.venv/bin/python benchmarks/step_parts.py --preset {args.preset} --rounds {args.rounds}`, "
             f"{machine()}. The `{args.preset}` preset's generator step with its optimiser (synthetic frames of the "
             f"real shapes, contiguous layout) per step over cycles of its perceptual-loss interval; every variant "
             f"in turn within each round, medians of {args.rounds} rounds.", "",
             "| precision | batch | variant | ms per step | x the canvas pass |", "| --- | ---: | --- | ---: | ---: |"]
    for precision in precisions:
        rows = step_rows(args.preset, precision, args.rounds)
        base = {b: ms for b, name, ms in rows if not VARIANTS[name][0]}
        lines += [f"| {precision} | {b} | {name} | {ms:.0f} | {ms / base[b]:.2f} |" for b, name, ms in rows]
    lines += ["", "At inference (one frame, no gradient, the maps cached):", "",
              "| precision | variant | ms a frame | x the canvas pass |", "| --- | --- | ---: | ---: |"]
    for precision in precisions:
        rows = inference_rows(args.preset, precision, args.rounds)
        lines += [f"| {precision} | {name} | {ms:.1f} | {ms / rows[0][1]:.2f} |" for name, ms in rows]
    return emit_section(lines, write=not args.no_write)


if __name__ == "__main__":
    main()
