#!/usr/bin/env python3
"""Face tracking speed and accuracy; writes a table into BENCHMARKS.md.

    .venv/bin/python benchmarks/tracking.py [--video ../shared/data/train/anchor_71s.mp4] [--frames 300]

Speed: landmarks (detector + landmark model + region tracking, two faces allowed, as preprocess runs
it) and person masks per second on the first frames of a real clip, with each backend of the face
models (ONNX Runtime, the fast path; PyTorch, the reference). Accuracy: the synthetic astronaut clip,
whose head rotation and landmarks are known, preprocessed as in the test suite.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, cpu_class, machine, restriction_note, write_section  # noqa: E402

# Measured once with the mediapipe 0.10.21 package (Python 3.11, same machine and clip, 300 frames,
# FaceMesh with refine_landmarks and two faces, the project's pipeline of the day) before the project
# ran the models itself; the package can no longer be installed beside the project, so this stays text.
MEDIAPIPE_0_10_21 = ("Before (the mediapipe 0.10.21 package, measured 2026-11-30 on this machine with an "
                     "equivalent loop over the same 300 frames): landmarks 132 frames/s natively, 131 restricted "
                     "to AVX2; person masks 152-182 frames/s (the package alone, Python 3.12); synthetic clip "
                     "rotation error mean 2.000 deg, median 1.696 deg; raw landmarks vs truth 1.225 px.")


def _speed(fn, frames, repeats: int) -> float:
    rates = []
    for _ in range(repeats):
        call = fn()
        call(frames[0])  # warm-up: sessions, first allocation
        start = time.perf_counter()
        for rgb in frames:
            call(rgb)
        rates.append(len(frames) / (time.perf_counter() - start))
    return statistics.median(rates)


def _accuracy() -> tuple[float, float, float]:
    """Synthetic clip: rotation error mean and median (degrees), raw landmark error vs truth (px, 512^2)."""
    from styleavatar.config import PreprocessConfig
    from styleavatar.data.dataset import Dataset
    from styleavatar.data.preprocess import preprocess
    from styleavatar.data.synthetic import make_clip
    from styleavatar.tracking.procrustes import rotation_error_degrees, rotation_from_euler

    with tempfile.TemporaryDirectory() as tmp:
        clip = make_clip(Path(tmp) / "astro.mp4", frames=100, size=512)
        cfg = PreprocessConfig(size=128, render_size=64, texture_size=64, texture_frames=4, preview=False)
        ds = Dataset.open(preprocess(clip.path, Path(tmp) / "ds", cfg, progress=False).output)
        err = rotation_error_degrees(ds.params.rotation, rotation_from_euler(clip.motion.euler_deg))
        box = ds.meta["crop_box"]  # the dataset keeps landmarks in [0, 1] of this square crop
        true_2d = (clip.landmarks[:, :468, :2] - [box["x0"], box["y0"]]) / box["side"]
        raw = ds.arrays["landmarks"].astype(np.float64)[:, :468, :2]
        lm = float(np.nanmean(np.linalg.norm(raw - true_2d, axis=-1)) * box["side"])
    return float(err.mean()), float(np.median(err)), lm


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--video", type=Path, default=ROOT.parent / "shared/data/train/anchor_71s.mp4")
    ap.add_argument("--frames", type=int, default=300)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--no-write", action="store_true", help="print only; leave BENCHMARKS.md alone")
    args = ap.parse_args()
    if not args.video.exists():
        sys.exit(f"benchmark video not found: {args.video}")
    from styleavatar.io.video import read_frames
    from styleavatar.tracking.landmarks import FaceTracker
    from styleavatar.tracking.segmentation import PersonSegmenter

    frames = [f.rgb for f in read_frames(args.video, max_frames=args.frames)]
    rows = []
    for backend in ("onnxruntime", "torch"):
        landmarks = _speed(lambda: FaceTracker(2, backend=backend), frames, args.repeats)
        masks = _speed(lambda: PersonSegmenter(backend), frames, args.repeats)
        rows.append(f"| {backend} | {landmarks:.0f} | {masks:.0f} |")
        print(rows[-1], file=sys.stderr)
    mean, median, lm = _accuracy()
    title = f"tracking, {cpu_class()}"
    h, w = frames[0].shape[:2]
    text = "\n".join([
        f"## {title}",
        "",
        restriction_note() + f"`{' '.join(['.venv/bin/python', 'benchmarks/tracking.py'] + sys.argv[1:])}`: "
        f"the first {len(frames)} frames of `{args.video.name}` ({w}x{h}), {machine()}, median of "
        f"{args.repeats} runs; one ONNX Runtime thread per model.",
        "",
        "| face models run by | landmarks, frames/s | masks, frames/s |",
        "| --- | ---: | ---: |",
        *rows,
        "",
        f"Synthetic astronaut clip (100 frames, known motion): rotation error mean {mean:.3f} deg, median "
        f"{median:.3f} deg; raw landmarks vs truth {lm:.3f} px mean (512^2).",
        "",
        MEDIAPIPE_0_10_21,
        "",
    ])
    print(text)
    if not args.no_write:
        write_section(title, text)


if __name__ == "__main__":
    main()
