#!/usr/bin/env python3
"""Held-out quality of avatars with each inference latent, beside the "median frame" baseline.

    .venv/bin/python benchmarks/latent.py --dataset DATASET RUN [RUN ...]

For each run: PSNR and LPIPS on 64 evenly spaced held-out frames of DATASET (centred window) with the
frame latent of the paper's code t = 0.5, and with the mean latent of the training frames (what avatars
use now). The baseline is the per-pixel median of 100 training frames, with no network at all: a gain is
read against what costs nothing. Writes the "inference latent" section of BENCHMARKS.md.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (avatar_frames, evenly, image_scores, machine, median_frame_scores,  # noqa: E402
                     truth_frames, write_section)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", type=Path, nargs="+")
    ap.add_argument("--dataset", type=Path, required=True)
    ap.add_argument("--frames", type=int, default=64)
    args = ap.parse_args()
    from styleavatar.data.dataset import Dataset
    from styleavatar.inference.avatar import Avatar
    from styleavatar.models.avatar import FRAME_CODE_DIVISOR

    ds = Dataset.open(args.dataset)
    test, train = np.array(ds.test_indices), np.array(ds.train_indices)
    idx = evenly(test, args.frames)
    rows, cfg = [], None
    for run in args.runs:
        avatar = Avatar.load(run)
        cfg = avatar.cfg
        truth = truth_frames(ds, idx, cfg)
        with torch.no_grad():
            paper, _ = avatar.net.styles(torch.tensor([int(FRAME_CODE_DIVISOR // 2)]), torch.tensor([0]))
            # what training stores in avatars now (recomputed here, so runs from before score it too)
            avatar.net.set_inference_latents(torch.from_numpy(train), torch.zeros(len(train), dtype=torch.long))
            mean, _ = avatar.net.inference_styles(0)
        for name, w in (("t = 0.5 (the paper's)", paper), ("mean of the training frames", mean)):
            s = image_scores(avatar_frames(avatar, ds, idx, w), truth)
            rows.append((run.name, name, s["psnr"], s["lpips"]))
    base = median_frame_scores(ds, idx, train, cfg)
    rows.append(("(no network)", "median of 100 training frames", base["psnr"], base["lpips"]))
    table = "\n".join(f"| {r} | {name} | {p:.2f} | {lp:.3f} |" for r, name, p, lp in rows)
    text = (f"## inference latent\n\n`.venv/bin/python benchmarks/latent.py --dataset {args.dataset} "
            f"{' '.join(str(r) for r in args.runs)}`, {machine()}. {len(idx)} evenly spaced held-out frames of "
            f"`{ds.root.name}`, centred {cfg.output_size}^2 window, full frame.\n\n"
            "| run | inference latent | held-out PSNR (dB) | LPIPS |\n| --- | --- | ---: | ---: |\n" + table + "\n")
    print(text)
    write_section("inference latent", text)


if __name__ == "__main__":
    main()
