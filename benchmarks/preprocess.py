#!/usr/bin/env python3
"""Preprocess speed per step on a real clip; writes a table into BENCHMARKS.md.

    .venv/bin/python benchmarks/preprocess.py [--video ../shared/data/train/anchor_71s.mp4] [--repeats 3]

Each step's figure is frames divided by the seconds spent in that step (median over repeats). Decoding
runs in a background thread and overlaps the other steps, and image files are written by a thread pool,
so the total is less than the sum of the steps.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, cpu_class, machine, restriction_note, write_section  # noqa: E402
STEPS = ("decode", "landmarks", "fit", "texture", "crop", "mask", "render", "preview", "write")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--video", type=Path, default=ROOT.parent / "shared/data/train/anchor_71s.mp4")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--render-size", type=int, default=256)
    ap.add_argument("--no-write", action="store_true", help="print only; leave BENCHMARKS.md alone")
    args = ap.parse_args()
    if not args.video.exists():
        sys.exit(f"benchmark video not found: {args.video}")
    from styleavatar.config import PreprocessConfig
    from styleavatar.data.preprocess import preprocess

    runs = []
    for i in range(args.repeats):
        with tempfile.TemporaryDirectory() as tmp:
            s = preprocess(args.video, Path(tmp) / "ds", PreprocessConfig(render_size=args.render_size),
                           progress=False)
            rasterizer = json.loads((s.output / "meta.json").read_text())["rasterizer"]
            runs.append(s)
            print(f"run {i + 1}: {s.describe()}", file=sys.stderr)
    n = runs[0].frames
    rows = [(step, statistics.median(r.timings.get(step, 0.0) for r in runs)) for step in STEPS]
    total = statistics.median(r.seconds for r in runs)
    title = f"preprocess, {cpu_class()}"
    lines = [
        f"## {title}",
        "",
        restriction_note() + f"`{' '.join(['.venv/bin/python', 'benchmarks/preprocess.py'] + sys.argv[1:])}` on "
        f"`{args.video.name}` ({n} frames, frames 512^2, renders {args.render_size}^2), "
        f"{machine()}, median of {args.repeats} runs, rasteriser {rasterizer}.",
        "",
        "| step | seconds | frames/s |",
        "| --- | ---: | ---: |",
        *[f"| {step} | {sec:.2f} | {n / sec:.0f} |" if sec > 0 else f"| {step} | 0 | - |" for step, sec in rows],
        f"| **total (wall clock)** | **{total:.1f}** | **{n / total:.1f}** |",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    if not args.no_write:
        write_section(title, text)


if __name__ == "__main__":
    main()
