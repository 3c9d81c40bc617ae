#!/usr/bin/env python3
"""Live-loop latency per stage and end-to-end fps (`styleavatar bench`) for a teacher and its student.

    .venv/bin/python benchmarks/live.py --teacher RUN --student STUDENT [--video FILE] [--frames 200]

Runs `styleavatar bench` for: the teacher in PyTorch, the teacher exported to ONNX (onnxruntime), the
student in PyTorch and in ONNX. Writes the tables into BENCHMARKS.md.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, machine, write_section  # noqa: E402

SA = str(ROOT / ".venv/bin/styleavatar")


def bench(run: Path, backend: str, video: Path, frames: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        js = Path(tmp) / "b.json"
        cmd = [SA, "bench", str(run), "--backend", backend, "--frames", str(frames), "--video", str(video),
               "--json", str(js)]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        return json.loads(js.read_text())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--teacher", type=Path, required=True)
    ap.add_argument("--student", type=Path, required=True)
    ap.add_argument("--video", type=Path, default=ROOT.parent / "shared/data/drive/vox_man_9s.mp4")
    ap.add_argument("--frames", type=int, default=200)
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    results = []
    for label, run in (("teacher (cpu preset)", args.teacher), ("student (distilled)", args.student)):
        if not (run / "avatar.onnx").exists():
            subprocess.run([SA, "export", str(run)], check=True, stdout=subprocess.DEVNULL)
        for backend in ("torch", "onnx"):
            results.append((label, backend, bench(run, backend, args.video, args.frames)))
    stages = list(results[0][2]["stages"])
    lines = ["## live loop (bench)", "", f"`{' '.join(['.venv/bin/python', 'benchmarks/live.py'] + sys.argv[1:])}` "
             f"on `{args.video.name}`, {args.frames} frames, {machine()}. Per-stage p50 in ms (stages overlap "
             "in the pipeline, so fps is not 1000 / sum).", "",
             "| network | backend | " + " | ".join(stages) + " | latency p50 | **fps** |",
             "| --- | --- | " + " | ".join("---:" for _ in stages) + " | ---: | ---: |"]
    for label, backend, r in results:
        cells = " | ".join(f"{r['stages'][s]['p50_ms']:.1f}" for s in stages)
        lines.append(f"| {label} | {backend} | {cells} | {r['latency']['p50_ms']:.0f} | **{r['fps']:.1f}** |")
    text = "\n".join(lines) + "\n"
    print(text)
    if not args.no_write:
        write_section("live loop (bench)", text)


if __name__ == "__main__":
    main()
