#!/usr/bin/env python3
"""How driving's smoothing trades steadiness for blinks and syllables: the retargeted face model, no network.

    .venv/bin/python benchmarks/drive_smoothing.py RUN [--drivers DIR] [--no-write]

Every video in DIR (default ../shared/data/drive) is tracked and retargeted onto the avatar in RUN, unsmoothed,
then smoothed offline (the zero-lag One-Euro filter of ``reenact``) at strength 1 on the head's pose and gaze
and at several shares of it on the expression. Per setting and driver, against the driver's own face model:
the range of eye openness (std, avatar over driver: 1 = blinks as deep), the mean |change| of mouth openness
per frame (avatar over driver: how far the lips move per frame) and the jitter of the posed mesh (mean
|second temporal difference| of the 468 points over the face size, avatar over driver; the driver's mesh is
its unsmoothed fit). Medians and ranges over the drivers. Writes the "driving's smoothing" section of
BENCHMARKS.md.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, driver_videos, emit_section, machine  # noqa: E402

TITLE = "driving's smoothing"
SETTINGS = (("unsmoothed", 0.0, 0.0), ("pose 1, expression 1", 1.0, 1.0), ("pose 1, expression 0.5", 1.0, 0.5),
            ("pose 1, expression 0.25", 1.0, 0.25), ("pose 1, expression 0", 1.0, 0.0))
"""(name, strength of pose and gaze, share of it for the expression)."""


def scores(driver, shapes, driver_jitter: float, avatar, retargeter, raw, smooth: float,
           share: float) -> tuple[float, float, float]:
    """(eye range, mouth step, mesh jitter), each avatar over driver, of ``raw`` (the unsmoothed retargeting of
    ``driver``, whose (N, 468, 3) head-frame ``shapes`` and posed mesh's jitter are given) smoothed at ``smooth``
    with ``share`` of it on the expression."""
    from styleavatar.evaluation.motion import jitter, mesh_agreement

    out = retargeter.smooth(raw, driver.fps, smooth, share)
    a = mesh_agreement(shapes, driver.params, out, avatar.subject)
    return a["mesh_eye_range_ratio"], a["mesh_mouth_step_ratio"], jitter(out.points(avatar.subject)) / driver_jitter


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", type=Path, help="a trained run (its face model and training range are used)")
    ap.add_argument("--drivers", type=Path, default=ROOT.parent / "shared" / "data" / "drive",
                    help="folder of driver videos")
    ap.add_argument("--no-write", action="store_true", help="print the table only")
    args = ap.parse_args()

    from styleavatar.config import TransferOptions
    from styleavatar.evaluation.motion import jitter
    from styleavatar.inference.avatar import Avatar
    from styleavatar.inference.motion import load_motion
    from styleavatar.tracking.procrustes import apply_similarity
    from styleavatar.tracking.retarget import EXPRESSION_SMOOTHING, Retargeter, retarget

    avatar = Avatar.load(args.run)
    limits = avatar.motion_range()
    drivers = driver_videos(args.drivers)
    retargeter = Retargeter(avatar.subject, limits)
    rows = {name: [] for name, _, _ in SETTINGS}
    for video in drivers:
        driver = load_motion(video, progress=False)
        shapes, p = driver.shapes(), driver.params
        raw = retarget(shapes, p, driver.fps, avatar.subject, limits, TransferOptions(smooth=0))
        theirs = jitter(apply_similarity(shapes, p.scale, p.rotation, p.translation))
        for name, smooth, share in SETTINGS:
            rows[name].append(scores(driver, shapes, theirs, avatar, retargeter, raw, smooth, share))
        print(f"{video.name}: " + "; ".join(f"{n} {np.round(r[-1], 2).tolist()}" for n, r in rows.items()),
              flush=True)

    def cell(values: np.ndarray) -> str:
        return f"{np.median(values):.2f} ({values.min():.2f}-{values.max():.2f})"

    default = ap.get_default("drivers")
    command = f".venv/bin/python benchmarks/drive_smoothing.py {args.run}" + (
        f" --drivers {args.drivers}" if args.drivers != default else "")
    lines = [f"## {TITLE}", "", f"`{command}`, {machine()}. "
             f"{len(drivers)} drivers from {args.drivers.name}/ retargeted onto the avatar in `{args.run.name}`; "
             "the face model only (no network). Each figure is avatar over driver: median (range) over the "
             f"drivers. The default is pose 1, expression {EXPRESSION_SMOOTHING:g} (`EXPRESSION_SMOOTHING`).", "",
             "| smoothing | eye range | mouth step per frame | mesh jitter |", "| --- | ---: | ---: | ---: |"]
    for name, _, _ in SETTINGS:
        table = np.array(rows[name], np.float64)
        lines.append(f"| {name} | " + " | ".join(cell(table[:, j]) for j in range(3)) + " |")
    emit_section(lines, write=not args.no_write)


if __name__ == "__main__":
    main()
