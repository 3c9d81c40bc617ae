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
from _common import machine, write_section  # noqa: E402


def _scores(images: torch.Tensor, truth: torch.Tensor) -> tuple[float, float]:
    from styleavatar.evaluation.metrics import lpips, psnr

    return float(psnr(images, truth).mean()), float(lpips(images, truth).mean())


def _generate(avatar, ds, idx: np.ndarray, w: torch.Tensor) -> torch.Tensor:
    """(N, 3, out, out) in [0, 1]: the avatar's frames for dataset frames ``idx`` with latent ``w``."""
    from styleavatar.io.image import to_tensor
    from styleavatar.rendering.render import resize_image, resize_uv

    avatar.w, r, out = w, avatar.cfg.render_size, []
    for chunk in np.array_split(idx, max(1, len(idx) // 8)):
        render, uv = avatar.to_tensors([resize_image(ds.render(int(i)), r) for i in chunk],
                                       [resize_uv(ds.uv(int(i)), r) for i in chunk])
        out.append(to_tensor(avatar.generate(render, uv)[0], signed=False))
    return torch.cat(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", type=Path, nargs="+")
    ap.add_argument("--dataset", type=Path, required=True)
    ap.add_argument("--frames", type=int, default=64)
    args = ap.parse_args()
    from styleavatar.data.dataset import Dataset
    from styleavatar.inference.avatar import Avatar
    from styleavatar.io.image import to_tensor
    from styleavatar.models.avatar import FRAME_CODE_DIVISOR

    ds = Dataset.open(args.dataset)
    test, train = np.array(ds.test_indices), np.array(ds.train_indices)
    idx = test[np.linspace(0, len(test) - 1, min(args.frames, len(test))).round().astype(int)]
    rows, cfg = [], None
    for run in args.runs:
        avatar = Avatar.load(run)
        cfg = avatar.cfg
        truth = to_tensor(np.stack([ds.frame_window(int(i), cfg.crop_size, cfg.output_size) for i in idx]),
                          signed=False)
        with torch.no_grad():
            paper, _ = avatar.net.styles(torch.tensor([int(FRAME_CODE_DIVISOR // 2)]), torch.tensor([0]))
            # what training stores in avatars now (recomputed here, so runs from before score it too)
            avatar.net.set_inference_latents(torch.from_numpy(train), torch.zeros(len(train), dtype=torch.long))
            mean, _ = avatar.net.inference_styles(0)
        for name, w in (("t = 0.5 (the paper's)", paper), ("mean of the training frames", mean)):
            rows.append((run.name, name, *_scores(_generate(avatar, ds, idx, w), truth)))
    picks = train[np.linspace(0, len(train) - 1, min(100, len(train))).round().astype(int)]
    median = np.median(np.stack([ds.frame_window(int(i), cfg.crop_size, cfg.output_size) for i in picks]), axis=0)
    base = to_tensor(np.repeat(median.astype(np.uint8)[None], len(idx), 0), signed=False)
    rows.append(("(no network)", "median of 100 training frames", *_scores(base, truth)))
    table = "\n".join(f"| {r} | {name} | {p:.2f} | {lp:.3f} |" for r, name, p, lp in rows)
    text = (f"## inference latent\n\n`.venv/bin/python benchmarks/latent.py --dataset {args.dataset} "
            f"{' '.join(str(r) for r in args.runs)}`, {machine()}. {len(idx)} evenly spaced held-out frames of "
            f"`{ds.root.name}`, centred {cfg.output_size}^2 window, full frame.\n\n"
            "| run | inference latent | held-out PSNR (dB) | LPIPS |\n| --- | --- | ---: | ---: |\n" + table + "\n")
    print(text)
    write_section("inference latent", text)


if __name__ == "__main__":
    main()
