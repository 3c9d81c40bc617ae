#!/usr/bin/env python3
"""Recipe ablation for the `cpu` preset: each candidate trains the same frames for the same iterations from the
same seed; the table gives its speed, held-out quality, training-frame PSNR and what that means per minute.

    .venv/bin/python benchmarks/ablation.py --dataset DATASET --out RUNS_DIR [--iters 1500] [--only NAME ...]
    .venv/bin/python benchmarks/ablation.py --dataset DATASET --out RUNS_DIR --report-only

Runs are compared at equal iterations (a shared, drifting machine changes minutes but not iterations); each
candidate's own measured it/s (median over its log intervals) turns iterations into minutes. Held-out:
``--frames`` evenly spaced frames of the last 20% (never trained on); training-frame PSNR: as many of the
training frames, through the same inference path (the avatar's mean latent), so under-fitting (both low) reads
apart from over-fitting (training high, held-out low). Beside them the "median frame" baseline: the per-pixel
median of 100 training frames, with no network. Writes the "recipe ablation" section of BENCHMARKS.md.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (ROOT, avatar_frames, cpu_class, emit_section, evenly, image_scores, machine,  # noqa: E402
                     median_frame_scores, truth_frames)

BEFORE = ["--lr", "0.002", "--gan-lr", "0.002", "--vgg-weight", "0.01"]
"""The `cpu` preset's recipe before this ablation (the paper's rate and perceptual weight)."""
CANDIDATES: dict[str, tuple[str, list[str]]] = {
    "baseline": ("the `cpu` preset before this ablation (learning rate 2e-3, perceptual weight 0.01)", BEFORE),
    "perceptual x4": ("perceptual weight 0.04: the paper's per-iteration weight, as it runs every 4th step",
                      [*BEFORE, "--vgg-weight", "0.04"]),
    "perceptual every step": ("perceptual loss every step instead of every 4th", [*BEFORE, "--vgg-every", "1"]),
    "lr x2": ("learning rate 4e-3 instead of 2e-3 (before the GAN starts)", [*BEFORE, "--lr", "0.004"]),
    "batch 2": ("batch 2 instead of 4 (more, noisier steps per minute)", [*BEFORE, "--batch", "2"]),
}
"""name -> (what changes, the `styleavatar train` options that change it)."""
CHOSEN = ("lr x2", "perceptual x4")
"""Candidates combined (with the texture change) into the recipe the `cpu` preset now uses."""
TEXTURE = ("texture frames with open eyes", "the same clip preprocessed by this version, whose texture frames pass "
           "over blinks and glances (give it as --texture-dataset; the baseline's dataset is from before)")


def train(dataset: Path, run: Path, iters: int, options: list[str]) -> float:
    """Train one candidate (resuming an interrupted one); returns wall-clock seconds of this call."""
    cmd = [sys.executable, "-m", "styleavatar.cli", "train", str(dataset), "-o", str(run), "--preset", "cpu",
           "--iters", str(iters), "--quiet", "--half-batch-below", "0", *options]  # equal iterations: keep the batch
    if run.exists():
        cmd.append("--resume")
    t0 = time.perf_counter()
    subprocess.run(cmd, cwd=ROOT, check=True)
    return time.perf_counter() - t0


def scores(run: Path, ds, held: np.ndarray, seen: np.ndarray) -> tuple[dict[str, float], float]:
    """PSNR / SSIM / LPIPS of the avatar in ``run`` on dataset frames ``held`` and its PSNR on frames ``seen``
    (centred window, [0, 1]); the avatar is loaded once for both."""
    from styleavatar.inference.avatar import Avatar

    avatar = Avatar.load(run, device="cpu")
    seen_scores = image_scores(avatar_frames(avatar, ds, seen), truth_frames(ds, seen, avatar.cfg))
    return image_scores(avatar_frames(avatar, ds, held), truth_frames(ds, held, avatar.cfg)), seen_scores["psnr"]


def speed(run: Path) -> float:
    rows = [json.loads(x) for x in (run / "log.jsonl").read_text().splitlines() if x.strip()]
    return statistics.median(r["it_per_s"] for r in rows if "it_per_s" in r)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", type=Path, required=True, help="`styleavatar preprocess` of the clip (cpu preset)")
    ap.add_argument("--out", type=Path, required=True, help="folder for the candidates' runs")
    ap.add_argument("--iters", type=int, default=1500, help="iterations per candidate (default: 1500)")
    ap.add_argument("--frames", type=int, default=64, help="frames scored, held-out and training (default: 64)")
    ap.add_argument("--only", nargs="+", choices=sorted(CANDIDATES), help="candidates to run (default: all)")
    ap.add_argument("--texture-dataset", type=Path, help="also the baseline on this dataset: " + TEXTURE[1])
    ap.add_argument("--report-only", action="store_true", help="score the runs already in --out")
    ap.add_argument("--no-write", action="store_true", help="print the table only")
    args = ap.parse_args()
    from styleavatar.config import MODEL_PRESETS
    from styleavatar.data.dataset import Dataset

    ds = Dataset.open(args.dataset)
    test, train_idx = np.array(ds.test_indices), np.array(ds.train_indices)
    held, seen = evenly(test, args.frames), evenly(train_idx, args.frames)
    jobs = [(f"{n}: {CANDIDATES[n][0]}", args.dataset, CANDIDATES[n][1], args.out / n.replace(" ", "_"))
            for n in args.only or list(CANDIDATES)]
    if args.texture_dataset is not None:
        jobs.append((f"{TEXTURE[0]}: {TEXTURE[1].split(' (')[0]}", args.texture_dataset, BEFORE,
                     args.out / "texture"))
        jobs.append((f"chosen (the `cpu` preset now): {' + '.join(CHOSEN)} + {TEXTURE[0]}", args.texture_dataset,
                     [], args.out / "chosen"))
    rows = []
    for label, dataset, options, run in jobs:
        if not args.report_only:
            train(dataset, run, args.iters, options)
        if not (run / "avatar.safetensors").exists():
            continue
        own = Dataset.open(dataset)  # the same frames; its own renders and texture
        rows.append((label, speed(run), *scores(run, own, held, seen)))
        print(f"{label}: {rows[-1]}", file=sys.stderr)
    base = median_frame_scores(ds, held, train_idx, MODEL_PRESETS["cpu"])
    lines = [f"## recipe ablation ({cpu_class()})", "",
             f"`.venv/bin/python benchmarks/ablation.py --dataset {args.dataset} --out RUNS --iters {args.iters}"
             + (f" --texture-dataset {args.texture_dataset}" if args.texture_dataset else "") + "`, "
             f"{machine()}. `cpu` preset, `{ds.root.name}`, {args.iters} iterations each from seed 0; scores on "
             f"{len(held)} held-out and {len(seen)} training frames (centred 256^2 window, the avatar's mean "
             "latent). Minutes = iterations / the candidate's median it/s on this machine.", "",
             "| change | it/s | minutes | held-out PSNR (dB) | SSIM | LPIPS | training PSNR (dB) |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for label, rate, s, train_psnr in rows:
        lines.append(f"| {label} | {rate:.2f} | {args.iters / rate / 60:.1f} | {s['psnr']:.2f} | "
                     f"{s['ssim']:.3f} | {s['lpips']:.3f} | {train_psnr:.2f} |")
    lines.append(f"| no network: median of 100 training frames | | 0 | {base['psnr']:.2f} | {base['ssim']:.3f} | "
                 f"{base['lpips']:.3f} | |")
    emit_section(lines, write=not args.no_write)


if __name__ == "__main__":
    main()
