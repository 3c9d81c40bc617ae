#!/usr/bin/env python3
"""What half the batch costs a training step on this machine, and what the start-up probe decides.

    .venv/bin/python benchmarks/half_batch.py [--preset cpu] [--rounds 4]
    ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2 .venv/bin/python benchmarks/half_batch.py

The preset's generator step (synthetic frames of the real shapes, with its optimiser) at its batch and at half
of it, timed over whole cycles of ``vgg_every`` steps (the perceptual loss on the first of each), the two
batches in turn within each round so a drift of the machine's speed falls on both; medians over the rounds.
Then the probe ``train`` runs before a new run (:func:`styleavatar.training.speed.half_batch_cost`: forward and
backward without the optimiser, the perceptual loss every step) and the batch it would choose at the preset's
``half_batch_below``. Each CPU class gets its own section in BENCHMARKS.md.
"""
from __future__ import annotations

import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import cpu_class, emit_section, machine, step_parser  # noqa: E402
from perceptual import cycle_ms  # noqa: E402


def step_rows(preset: str, precision: str, rounds: int) -> tuple[list[tuple[int, float]], float]:
    """([(batch, median ms per step)] at the preset's batch and half of it, the probe's half-batch cost)."""
    import torch

    from styleavatar.config import MODEL_PRESETS, TRAIN_PRESETS
    from styleavatar.models.avatar import AvatarNet
    from styleavatar.runtime import Runtime
    from styleavatar.training.losses import perceptual_loss
    from styleavatar.training.speed import half_batch_cost, probe_steps, synthetic_batch
    from styleavatar.training.step import Optimiser, adamw

    m, t = MODEL_PRESETS[preset], TRAIN_PRESETS[preset]
    torch.manual_seed(0)
    G = AvatarNet(m)
    opt = Optimiser(G, adamw(G.parameters(), t), t.grad_clip)
    rt = Runtime("cpu", precision, False, torch.get_num_threads(), "benchmark")
    vgg = perceptual_loss(t)
    sizes = (t.batch, t.batch // 2)
    data = {b: synthetic_batch(m, b) for b in sizes}
    for b in sizes:  # warm-up: kernels for every shape, the optimiser's state
        cycle_ms(G, opt, data[b], t, rt, vgg)
    times: dict[int, list[float]] = {b: [] for b in sizes}
    for _ in range(rounds):
        for b in sizes:
            times[b].append(cycle_ms(G, opt, data[b], t, rt, vgg))
    full, half = (probe_steps(G, vgg, data[b], torch.device("cpu"))(precision, False) for b in sizes)
    return [(b, statistics.median(times[b])) for b in sizes], half_batch_cost(full, half)


def main(argv: list[str] | None = None) -> str:
    from styleavatar.config import TRAIN_PRESETS
    from styleavatar.runtime import cpu_info
    from styleavatar.training.speed import batch_for

    ap = step_parser(__doc__, 4, "both batches")
    args = ap.parse_args(argv)
    threshold = TRAIN_PRESETS[args.preset].half_batch_below
    precisions = ["fp32"] + (["bf16"] if cpu_info().native_bf16 else [])
    lines = [f"## half the batch, {cpu_class()}", "",
             f"`.venv/bin/python benchmarks/half_batch.py --preset {args.preset} --rounds {args.rounds}`, "
             f"{machine()}. The `{args.preset}` preset's generator step with its optimiser (synthetic frames of the "
             f"real shapes, contiguous layout) per step over cycles of its perceptual-loss interval, both batches in "
             f"turn within each round, medians of {args.rounds} rounds; then the start-up probe's figure (forward and "
             f"backward, the perceptual loss every step, the median of 5 rounds' ratios) and its choice at "
             f"`half_batch_below` "
             f"{threshold:g}.", "",
             "| precision | batch | ms per step | frames/s | x the full batch's step | probe | probe's choice |",
             "| --- | ---: | ---: | ---: | ---: | ---: | --- |"]
    for precision in precisions:
        rows, probe = step_rows(args.preset, precision, args.rounds)
        full_ms = rows[0][1]
        choice = batch_for(rows[0][0], probe, threshold)
        for i, (batch, ms) in enumerate(rows):
            tail = f"{probe:.2f} | batch {choice}" if i else " | "
            fps = batch / ms * 1000
            lines.append(f"| {precision} | {batch} | {ms:.0f} | {fps:.2f} | {ms / full_ms:.2f} | {tail} |")
    return emit_section(lines, write=not args.no_write)


if __name__ == "__main__":
    main()
