#!/usr/bin/env python3
"""Cross-reenactment of one avatar by every driver: mesh-level and image-level agreement.

    .venv/bin/python benchmarks/retarget.py RUN --dataset DATASET -o REPORT_DIR [--drivers DIR]
        [--side-by-side NAME ...]

Runs ``styleavatar evaluate`` with every video in DIR (default ../shared/data/drive) as a driver (64
held-out frames for the self-reenactment part), then writes the "cross-reenactment" section of
BENCHMARKS.md: per driver the signed mouth and eye openness correlation at the mesh level (the retargeted
face model against the driver's, no network), at the image level (the output re-tracked) and at the
network level (the output re-tracked against the face model it was drawn from), the head pose error and
the output's jitter against the driver's, each against the goals. ``--side-by-side``
also writes driver | avatar videos of the named drivers into REPORT_DIR (they show real faces: look at
them, do not commit them).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, cpu_class, driver_videos, machine, write_section  # noqa: E402
GOALS = {"mesh_mouth_corr": (">=", 0.85), "mouth_openness_corr": (">=", 0.7), "mesh_eye_corr": (">=", 0.7),
         "eye_openness_corr": (">=", 0.7), "pose_error_deg": ("<=", 2.5), "jitter_ratio": ("<=", 1.2)}
"""Goal per metrics.json key: (comparison, bound)."""


def _cell(row: dict, key: str) -> str:
    v = row.get(key)
    if v is None:
        return "-"
    text = f"{v:.2f}"
    if key in GOALS:
        op, bound = GOALS[key]
        ok = v >= bound if op == ">=" else v <= bound
        text = text if ok else f"**{text}**"
    return text


COLUMNS = (("mesh_mouth_corr", "mouth corr. mesh"), ("mouth_openness_corr", "mouth corr. image"),
           ("mesh_eye_corr", "eye corr. mesh"), ("eye_openness_corr", "eye corr. image"),
           ("mesh_eye_range_ratio", "eye range mesh"), ("eye_range_ratio", "eye range image"),
           ("mesh_brow_corr", "brow corr. mesh"), ("mesh_pose_error_deg", "pose error mesh (deg)"),
           ("pose_error_deg", "pose error image (deg)"), ("jitter_ratio", "jitter output / driver"),
           ("net_mouth_corr", "mouth corr. network"), ("net_eye_corr", "eye corr. network"),
           ("net_pose_error_deg", "pose error network (deg)"))
BEFORE_COLUMNS = (("mouth_openness_corr", "mouth corr. image, before"), ("eye_openness_corr", "eye corr. image, before"),
                  ("pose_error_deg", "pose error image, before"))
"""Image-level figures of an earlier report (``--before``) shown beside the new ones."""


def _table(rows: list[dict], before: dict[str, dict]) -> str:
    cols = list(COLUMNS) + (list(BEFORE_COLUMNS) if before else [])
    head = ("| driver | frames | " + " | ".join(h for _, h in cols) + " |\n| --- | ---: |"
            + " ---: |" * len(cols) + "\n")
    lines = []
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['driver']} | {r['error']} |" + " |" * len(cols))
            continue
        cells = [_cell(r, k) for k, _ in COLUMNS]
        if before:
            old = before.get(r["driver"], {})
            cells += ["-" if old.get(k) is None else f"{old[k]:.2f}" for k, _ in BEFORE_COLUMNS]
        lines.append(f"| {r['driver']} | {r['frames']} | " + " | ".join(cells) + " |")
    return head + "\n".join(lines) + "\n"


def _misses(rows: list[dict]) -> list[str]:
    out = []
    for r in rows:
        for key, (op, bound) in GOALS.items():
            v = r.get(key)
            if v is not None and not (v >= bound if op == ">=" else v <= bound):
                out.append(f"{r['driver']} {key} {v:.2f}")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", type=Path)
    ap.add_argument("--dataset", type=Path, required=True)
    ap.add_argument("-o", "--output", type=Path, required=True)
    ap.add_argument("--drivers", type=Path, default=ROOT.parent / "shared" / "data" / "drive")
    ap.add_argument("--side-by-side", nargs="*", default=[], metavar="NAME", help="driver file names")
    ap.add_argument("--label", default="", help="what the avatar is (for the section's text)")
    ap.add_argument("--before", type=Path, help="metrics.json of an earlier evaluate, shown beside")
    args = ap.parse_args()

    from styleavatar.config import ReenactOptions
    from styleavatar.evaluation.report import evaluate
    from styleavatar.inference.reenact import reenact

    drivers = driver_videos(args.drivers)
    start = time.perf_counter()
    summary = evaluate(args.run, args.dataset, drivers, args.output, max_frames=64)
    seconds = time.perf_counter() - start
    for name in args.side_by_side:
        reenact(args.run, args.drivers / name, args.output / f"side_by_side_{Path(name).stem}.mp4",
                ReenactOptions(side_by_side=True))
    rows = summary.metrics["cross_reenactment"]
    before = {}
    if args.before:
        before = {r["driver"]: r for r in json.loads(args.before.read_text())["cross_reenactment"]}
    (args.output / "retarget_rows.json").write_text(json.dumps(rows, indent=2) + "\n")
    misses = _misses(rows)
    command = (f".venv/bin/python benchmarks/retarget.py {args.run} --dataset {args.dataset} -o {args.output}"
               + (f" --side-by-side {' '.join(args.side_by_side)}" if args.side_by_side else "")
               + (f" --before {args.before}" if args.before else ""))
    text = (f"## cross-reenactment (every driver)\n\n`{command}`\n\n{machine()}; {cpu_class()}. "
            f"{args.label} {len(drivers)} drivers from ../shared/data/drive, {seconds / 60:.0f} min in all. "
            "Mesh: the retargeted face model against the driver's tracked face model (no network). Image: the "
            "output video re-tracked with the project's tracker against the driver's tracking (pose error "
            "once the one constant rotation between the two heads, fitted over all frames, is removed). Network: the output re-tracked against the retargeted face model "
            "it was drawn from (no driver; the network's own fault). Eye range: the std of the avatar's eye "
            "openness over the driver's (1: blinks as fully; a correlation cannot see a half blink). Openness is "
            "signed (lips that cross count negative). Bold: misses its goal (mouth >= 0.85 mesh and >= 0.7 "
            "image, eyes >= 0.7, pose error <= 2.5 deg, jitter <= 1.2x the driver's; the network columns have none)."
            + (" Before: the same figures from the report in `--before`." if before else "")
            + "\n\n" + _table(rows, before) + "\n"
            + (f"Misses: {'; '.join(misses)}.\n" if misses else "Every driver meets every goal.\n"))
    write_section("cross-reenactment (every driver)", text)
    print(text)


if __name__ == "__main__":
    main()
