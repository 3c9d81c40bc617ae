#!/usr/bin/env python3
"""Fault injection: kill train, preprocess and reenact at random moments; writes a table into BENCHMARKS.md.

    .venv/bin/python benchmarks/reliability.py [--kills 20] [--seed 0]

train: a tiny-preset run is started (or resumed) and killed with SIGKILL after a random delay, `--kills`
times, then run to its end. After every kill each checkpoint on disk must load whole, and every resume
must start from the newest of them. Then the newest checkpoint is cut to half its size (a write lost with
the page cache) and the run resumed once more: it must fall back to the one before.
preprocess and reenact: killed likewise; afterwards the output either does not exist or is complete
(a dataset that opens, a video that decodes to the driver's length), and a final uninterrupted run works.
"""
from __future__ import annotations

import argparse
import random
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, write_section  # noqa: E402

TRAIN_ITERS = 300


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "styleavatar.cli", *args]


def _kill_after(cmd: list[str], delay: float) -> tuple[bool, str]:
    """Run ``cmd``; SIGKILL it after ``delay`` seconds. (finished before the kill, its output)."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        out, _ = proc.communicate(timeout=delay)
        return True, out
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGKILL)
        out, _ = proc.communicate()
        return False, out


def _train_args(ds: Path, run: Path, resume: bool) -> list[str]:
    return _cli("train", str(ds), "-o", str(run), "--preset", "tiny", "--iters", str(TRAIN_ITERS), "--quiet",
                "--threads", "1", "--snapshot-every", "3", "--precision", "fp32", "--no-channels-last",
                "--sample-minutes", "100", *(["--resume"] if resume else []))


def _train(ds: Path, root: Path, kills: int, rng: random.Random) -> dict:
    from styleavatar.io.checkpoint import CHECKPOINT_FORMAT, list_checkpoints, load_tensors

    run = root / "run"
    bad_loads, wrong_resumes, killed = 0, 0, 0
    for _ in range(kills):
        before = list_checkpoints(run) if run.exists() else []
        done, err = _kill_after(_train_args(ds, run, bool(before)), rng.uniform(2.0, 10.0))
        killed += not done
        m = re.search(r"resuming .* at iteration (\d+)", err)
        if before and m and int(m.group(1)) != int(before[-1].stem.split("-")[1]):
            wrong_resumes += 1
        for ckpt in list_checkpoints(run):
            try:
                load_tensors(ckpt, CHECKPOINT_FORMAT)
            except Exception:  # any failure to load is what this counts
                bad_loads += 1
        if done:
            break
    newest = list_checkpoints(run)[-1]
    newest.write_bytes(newest.read_bytes()[: newest.stat().st_size // 2])  # a write lost with the page cache
    result = subprocess.run(_train_args(ds, run, True), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    fell_back = "trying the one before" in result.stdout
    final = load_tensors(list_checkpoints(run)[-1], CHECKPOINT_FORMAT)[1]["iteration"]
    return {"kills": killed, "bad checkpoint loads": bad_loads, "resumes not from the newest": wrong_resumes,
            "fell back past a cut checkpoint": fell_back, "final iteration": f"{final} of {TRAIN_ITERS}",
            "ok": bad_loads == 0 and wrong_resumes == 0 and fell_back and final == TRAIN_ITERS}


def _preprocess(video: Path, root: Path, kills: int, rng: random.Random) -> dict:
    from styleavatar.data.dataset import Dataset

    out = root / "pre"
    looked_valid_but_broken, killed = 0, 0
    args = _cli("preprocess", str(video), "-o", str(out), "--preset", "tiny", "--quiet")
    start = time.monotonic()  # one uninterrupted run elsewhere sets the scale of the kill delays
    subprocess.run(_cli("preprocess", str(video), "-o", str(root / "pre_ref"), "--preset", "tiny", "--quiet"),
                   capture_output=True)
    full = time.monotonic() - start
    done = False
    for _ in range(kills):
        done, _ = _kill_after(args, rng.uniform(0.05, 0.6) * full)  # resumed runs are shorter than a full one
        killed += not done
        if out.exists():
            try:
                Dataset.open(out)
            except Exception:  # a folder at the final name that does not open: the failure counted here
                looked_valid_but_broken += 1
        if done:
            break
    if not done:  # an interrupted preprocess picks up its saved tracking when run again
        subprocess.run(args, capture_output=True, text=True)
    final = out.exists() and len(Dataset.open(out)) > 0
    return {"kills": killed, "outputs that looked valid but were not": looked_valid_but_broken,
            "final run": "complete" if final else "FAILED", "ok": looked_valid_but_broken == 0 and final}


def _reenact(run: Path, driver: Path, root: Path, kills: int, rng: random.Random) -> dict:
    from styleavatar.io.video import probe

    want = probe(driver).frame_count
    bad, killed = 0, 0
    for i in range(kills):
        out = root / f"out{i}.mp4"
        done, _ = _kill_after(_cli("reenact", str(run), "--drive", str(driver), "-o", str(out), "--quiet"),
                              rng.uniform(0.5, 6.0))
        killed += not done
        if out.exists():
            try:
                bad += probe(out).frame_count != want
            except Exception:  # an mp4 at the final name that does not decode
                bad += 1
    leftovers = len(list(root.glob(".out*partial*")))  # SIGKILL leaves no chance to remove them
    return {"kills": killed, "outputs that looked valid but were not": bad,
            "hidden temporary files left by the kills": leftovers, "ok": bad == 0}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kills", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-write", action="store_true", help="print only; leave BENCHMARKS.md alone")
    args = ap.parse_args()
    from styleavatar.data.synthetic import make_clip

    rng = random.Random(args.seed)
    start = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        clip = make_clip(root / "astro.mp4", frames=400, size=512)
        driver = make_clip(root / "drive.mp4", frames=250, size=512, kind="drive")
        rows = {"preprocess": _preprocess(clip.path, root, args.kills, rng)}
        rows["train"] = _train(root / "pre", root, args.kills, rng)
        rows["reenact"] = _reenact(root / "run", driver.path, root, args.kills, rng)
    lines = ["## reliability (fault injection)", "",
             f"`{' '.join(['.venv/bin/python', 'benchmarks/reliability.py'] + sys.argv[1:])}`, {machine()}, "
             f"{(time.monotonic() - start) / 60:.1f} minutes. Each command is killed with SIGKILL after a random "
             "delay (train 2-10 s; preprocess of a 400-frame clip 5-60% of an uninterrupted run's time; reenact 0.5-6 s), up to the number of kills shown or until a run "
             "finishes first.", "", "| command | result | holds |", "| --- | --- | --- |"]
    for name, r in rows.items():
        detail = "; ".join(f"{k} {v}" for k, v in r.items() if k != "ok")
        lines.append(f"| {name} | {detail} | {'yes' if r['ok'] else 'NO'} |")
    text = "\n".join(lines) + "\n"
    print(text)
    if not args.no_write:
        write_section("reliability (fault injection)", text)
    sys.exit(0 if all(r["ok"] for r in rows.values()) else 1)


if __name__ == "__main__":
    main()
