#!/usr/bin/env python3
"""How much of the person's eye and mouth motion the texture render carries: the network's input, no network.

    .venv/bin/python benchmarks/render_motion.py --dataset DATASET [--sizes 256 128 96] [--no-write]

For every held-out frame of DATASET the texture render (the subject's texture on the tracked mesh) is brought
to each render side over the crop (96 is what the `cpu` preset's network sees), enlarged back, laid over the
median training frame where the mesh covers, and cut to the centred output window. These composites are
re-tracked and compared with the dataset's tracking of the same frames, exactly as `evaluate` compares an
avatar's held-out frames: eye and mouth openness correlation, and the range of the composite's openness as a
multiple of the person's (1: a full blink; 0.5: an eye that only half-closes). The first row is the frames
themselves (what a flawless avatar would score). An avatar cannot be expected to move further than its input
unless it learns to, so read its "eye corr. (range)" in "quality per CPU-minute" against these rows. Writes
the "motion in the texture render" section of BENCHMARKS.md.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import emit_section, evenly, machine  # noqa: E402

TITLE = "motion in the texture render"


def composites(ds, idx, cfg, size: int, median: np.ndarray) -> list[np.ndarray]:
    """(out, out, 3) uint8 per frame ``idx``: its texture render at side ``size`` over ``median`` (out, out, 3),
    the median training frame."""
    from styleavatar.data.dataset import centre_window
    from styleavatar.rendering.render import resize_image

    crop, win = cfg.crop_size, centre_window(cfg.crop_size, cfg.output_size)
    frames = []
    for i in idx:
        render = resize_image(resize_image(ds.render(int(i)), size), crop)[win].astype(np.float32)
        cover = (ds.uv(int(i))[..., 2] > 0.5).astype(np.float32)
        cover = resize_image(resize_image(cover, size), crop)[win][..., None]
        frames.append(np.round(render * cover + median * (1 - cover)).astype(np.uint8))
    return frames


def main(argv: list[str] | None = None) -> list[tuple[str, dict]]:
    """Score the frames and the composites; returns the rows (what was tracked, its motion scores)."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", type=Path, required=True, help="a dataset from `styleavatar preprocess`")
    ap.add_argument("--preset", default="cpu", help="model preset whose crop and window are used (default: cpu)")
    ap.add_argument("--sizes", type=int, nargs="+", default=[256, 128, 96],
                    help="render sides over the crop to try (default: 256 128 96)")
    ap.add_argument("--no-write", action="store_true", help="print the table only")
    args = ap.parse_args(argv)
    from styleavatar.config import MODEL_PRESETS
    from styleavatar.data.dataset import Dataset
    from styleavatar.evaluation.motion import OPENNESS_SCORES
    from styleavatar.evaluation.report import held_out_motion

    ds, cfg = Dataset.open(args.dataset), MODEL_PRESETS[args.preset]
    idx = np.array(ds.test_indices)
    inputs = [("the frames themselves", [ds.frame_window(int(i), cfg.crop_size, cfg.output_size) for i in idx])]
    median = np.median(np.stack([ds.frame_window(int(i), cfg.crop_size, cfg.output_size)
                                 for i in evenly(ds.train_indices, 100)]), 0)
    inputs += [(f"texture render at {s}^2 over the crop", composites(ds, idx, cfg, s, median)) for s in args.sizes]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, frames in inputs:
            rows.append((name, held_out_motion(frames, ds, idx, Path(tmp), progress=False)))
            print(name, rows[-1][1], file=sys.stderr)
    lines = [f"## {TITLE}", "",
             f"`.venv/bin/python benchmarks/render_motion.py --dataset {args.dataset} --sizes "
             f"{' '.join(map(str, args.sizes))}`, {machine()}. All {len(idx)} held-out frames of `{ds.root.name}`, "
             f"centred {cfg.output_size}^2 window of the `{args.preset}` preset (whose network sees its render "
             f"at {cfg.render_size}^2 over the crop), re-tracked against the dataset's tracking.", "",
             "| re-tracked | eye corr. | eye range | mouth corr. | mouth range |",
             "| --- | ---: | ---: | ---: | ---: |"]
    for name, m in rows:
        cells = [m.get(k) for k in OPENNESS_SCORES]
        lines.append(f"| {name} | " + " | ".join("-" if c is None else f"{c:.2f}" for c in cells) + " |")
    emit_section(lines, write=not args.no_write)
    return rows


if __name__ == "__main__":
    main()
