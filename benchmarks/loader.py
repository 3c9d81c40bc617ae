#!/usr/bin/env python3
"""Training speed against where the batches are assembled; writes a section into BENCHMARKS.md.

    .venv/bin/python benchmarks/loader.py [--presets tiny small cpu] [--iters 40] [--rounds 2] [--no-write]

`styleavatar train` assembles each batch in a background thread while the current step runs. Three ways
are timed, each in its own process on the same 200-frame dataset of anchor_71s (preprocessed once), at the
precision and layout the start-up probe chooses, interleaved over ``--rounds`` rounds:

- **numpy loader** (as shipped): the loader thread converts uint8 frames with numpy, so it runs no torch
  kernel (see ``styleavatar.io.image.to_tensor``);
- **torch loader**: the same thread converting with torch kernels, as the project did until this benchmark
  was written;
- **no loader thread**: batches assembled in the training thread between steps.

Figures: median milliseconds of the generator step (forward, backward, optimiser; timed around it) and
iterations per minute of the whole loop (from the run's log), medians over the rounds.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, cpu_class, emit_section, machine  # noqa: E402

VARIANTS = ("numpy loader", "torch loader", "no loader thread")


def torch_to_tensor(images, signed: bool = True):
    """The conversion with torch kernels (the old ``to_tensor``): (B, H, W, 3) uint8 -> (B, 3, H, W) float."""
    import numpy as np
    import torch

    x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float()
    return x.div_(127.5).sub_(1) if signed else x.div_(255)


def measure(dataset: Path, preset: str, iters: int, variant: str) -> dict:
    """Train ``iters`` iterations in this process with ``variant``; step ms and iterations per minute."""
    from styleavatar.config import MODEL_PRESETS, TRAIN_PRESETS
    from styleavatar.runtime import Runtime
    import styleavatar.training.data as data
    import styleavatar.training.trainer as trainer

    if variant == "torch loader":
        data.to_tensor = torch_to_tensor
    elif variant == "no loader thread":
        trainer.prefetch = lambda items, depth=0: items
    steps, inner = [], trainer.generator_step

    def timed(*args, **kwargs):
        t0 = time.perf_counter()
        out = inner(*args, **kwargs)
        steps.append(time.perf_counter() - t0)
        return out
    trainer.generator_step = timed
    cfg = dataclasses.replace(TRAIN_PRESETS[preset], log_every=max(1, iters // 8), sample_minutes=1e9,
                              snapshot_minutes=1e9)
    with tempfile.TemporaryDirectory() as tmp:
        trainer.train([dataset], Path(tmp) / "run", MODEL_PRESETS[preset], cfg, iters=iters, progress=False,
                      log=lambda m: None)
        rows = [json.loads(x) for x in (Path(tmp) / "run/log.jsonl").read_text().splitlines()]
        runtime = Runtime(**json.loads((Path(tmp) / "run/config.json").read_text())["runtime"]).label()
    rates = [r["it_per_s"] for r in rows if "it_per_s" in r][1:]  # the first interval includes warm-up
    return {"step_ms": 1000 * statistics.median(steps[5:]), "it_per_min": 60 * statistics.median(rates),
            "runtime": runtime, "steps": len(steps), "to_tensor": data.to_tensor.__module__,
            "loader_thread": trainer.prefetch.__module__ == "styleavatar.io.prefetch"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--presets", nargs="+", default=["tiny", "small", "cpu"])
    ap.add_argument("--iters", type=int, default=40, help="training iterations per run")
    ap.add_argument("--rounds", type=int, default=2, help="runs of each variant, interleaved")
    ap.add_argument("--video", type=Path, default=ROOT.parent / "shared/data/train/anchor_71s.mp4")
    ap.add_argument("--no-write", action="store_true", help="print only; leave BENCHMARKS.md alone")
    ap.add_argument("--one", nargs=3, metavar=("DATASET", "PRESET", "VARIANT"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:  # a single measurement, in a process of its own
        print(json.dumps(measure(Path(args.one[0]), args.one[1], args.iters, args.one[2])))
        return
    if not args.video.exists():
        sys.exit(f"benchmark video not found: {args.video}")
    from styleavatar.config import PreprocessConfig
    from styleavatar.data.preprocess import preprocess

    results: dict[tuple[str, str], list[dict]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        ds = preprocess(args.video, Path(tmp) / "ds", PreprocessConfig(max_frames=200, preview=False),
                        progress=False).output
        for preset in args.presets:
            for r in range(args.rounds):
                for variant in VARIANTS:
                    out = subprocess.run([sys.executable, __file__, "--iters", str(args.iters), "--one", str(ds),
                                          preset, variant], check=True, capture_output=True, text=True).stdout
                    row = json.loads(out.strip().splitlines()[-1])
                    print(preset, variant, r, row, file=sys.stderr)
                    results.setdefault((preset, variant), []).append(row)
    emit_section(section(args, results), write=not args.no_write)


def section(args, results: dict[tuple[str, str], list[dict]]) -> list[str]:
    import torch

    lines = [f"## loader threads, {cpu_class()}", "",
             f"`{' '.join(['.venv/bin/python', 'benchmarks/loader.py'] + sys.argv[1:])}`, {machine()}, "
             f"{torch.get_num_threads()} threads. {args.iters} iterations per run, {args.rounds} runs of each "
             "variant interleaved, each in its own process; medians over the runs.", "",
             "| preset | loader | generator step ms | iterations / min | x numpy loader | runtime |",
             "| --- | --- | ---: | ---: | ---: | --- |"]
    for preset in args.presets:
        base = statistics.median(r["it_per_min"] for r in results[(preset, VARIANTS[0])])
        for variant in VARIANTS:
            rows = results[(preset, variant)]
            rate = statistics.median(r["it_per_min"] for r in rows)
            lines.append(f"| {preset} | {variant} | {statistics.median(r['step_ms'] for r in rows):.0f} "
                         f"| {rate:.1f} | {rate / base:.2f} | {rows[0]['runtime']} |")
    return lines + [""]


if __name__ == "__main__":
    main()
