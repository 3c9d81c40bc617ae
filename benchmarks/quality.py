#!/usr/bin/env python3
"""The quality run: train the cpu preset on the real clip for a time budget and record the held-out curve.

    .venv/bin/python benchmarks/quality.py --dataset DATASET --run RUN [--minutes 60]
    .venv/bin/python benchmarks/quality.py --run RUN --report-only     # table from an existing run

DATASET is `styleavatar preprocess ../shared/data/train/anchor_71s.mp4 -o DATASET` (cpu preset).
The training is the CLI command printed in the section; PSNR/SSIM are on the held-out last 20% of the
frames (every test frame, centred window, 256^2, full frame), every 10 minutes.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, machine, write_section  # noqa: E402


def train_command(dataset: Path, run: Path, minutes: float) -> list[str]:
    return [".venv/bin/styleavatar", "train", str(dataset), "-o", str(run), "--preset", "cpu", "--minutes",
            f"{minutes:g}", "--eval-minutes", "10", "--eval-frames", "1000"]


def section(run: Path, command: str, note: str) -> str:
    rows = [json.loads(x) for x in (run / "log.jsonl").read_text().splitlines() if x.strip()]
    evals = [r["eval"] for r in rows if "eval" in r]
    speed = [r["it_per_s"] for r in rows if "it_per_s" in r]
    batch = json.loads((run / "config.json").read_text())["train"]["batch"]
    lines = ["## quality (cpu preset, 60 minutes)", "", f"`{command}`, {machine()}.", "",
             "| minutes | iteration | held-out PSNR (dB) | SSIM |", "| ---: | ---: | ---: | ---: |",
             *[f"| {e['minutes']:.1f} | {e['iteration']} | {e['psnr']:.2f} | {e['ssim']:.3f} |" for e in evals],
             "", f"Median training speed {sorted(speed)[len(speed) // 2]:.2f} it/s (batch {batch})." if speed else "",
             note, ""]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", type=Path)
    ap.add_argument("--run", type=Path, required=True)
    ap.add_argument("--minutes", type=float, default=60)
    ap.add_argument("--report-only", action="store_true")
    ap.add_argument("--note", default="", help="a sentence added under the table")
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    cmd = train_command(args.dataset or Path("DATASET"), args.run, args.minutes)
    if not args.report_only:
        if args.dataset is None:
            sys.exit("--dataset is needed to train")
        subprocess.run(cmd, cwd=ROOT, check=True)
    text = section(args.run, " ".join(cmd), args.note)
    print(text)
    if not args.no_write:
        write_section("quality (cpu preset, 60 minutes)", text)


if __name__ == "__main__":
    main()
