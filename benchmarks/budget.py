#!/usr/bin/env python3
"""Quality per CPU-minute: a run's avatar after 5, 10, 15, 30, 60 minutes of training, from its checkpoints.

    .venv/bin/styleavatar train DATASET -o RUN --preset cpu --minutes 60 --keep-checkpoints 20
    .venv/bin/python benchmarks/budget.py RUN [RUN ...] --dataset DATASET [--minutes 5 10 15 30 60]

``train`` writes a checkpoint every 5 minutes (``--snapshot-minutes``); keep them all (``--keep-checkpoints``).
For each budget the checkpoint whose training time is nearest is turned into an avatar (its EMA generator and
inference latent, exactly what ``train`` would have written had it stopped there) and scored on ``--frames``
evenly spaced held-out frames (the last 20%, never trained on) and as many training frames, through the
inference path. Besides PSNR / SSIM / LPIPS of the whole frame: PSNR of the eyes and mouth alone, and the
avatar's held-out frames re-tracked against the person's (eye and mouth openness correlation, and the range
of the avatar's openness as a multiple of the person's: 1 for a full blink, 0.5 for one that half-closes).
Each row names the CPU class and runtime the run trained with (its ``config.json``), so runs
made natively and under ``ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2`` share one table. Writes the
"quality per CPU-minute" section of BENCHMARKS.md.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (avatar_frames, emit_section, evenly, feature_windows, image_scores, machine,  # noqa: E402
                     median_frame_scores, truth_frames)

TITLE = "quality per CPU-minute"


def checkpoint_times(run: Path) -> list[tuple[float, int, Path]]:
    """(training minutes, iteration, path) of each checkpoint in ``run``, oldest first."""
    from styleavatar.io.checkpoint import list_checkpoints

    out = []
    for path in list_checkpoints(run):
        meta = json.loads(path.with_suffix(".json").read_text())
        out.append((float(meta["elapsed_s"]) / 60.0, int(meta["iteration"]), path))
    return out


def avatar_at(run: Path, ckpt: Path, iteration: int, folder: Path) -> Path:
    """A run folder in ``folder`` whose avatar is checkpoint ``ckpt`` of ``run`` (subjects linked, not copied)."""
    from styleavatar.config import ModelConfig, from_dict
    from styleavatar.models.avatar import AvatarNet
    from styleavatar.training.run_folder import load_generator_state, save_avatar

    meta = {**json.loads((run / "avatar.json").read_text()), "iteration": iteration}
    state, _ = load_generator_state(ckpt)
    net = AvatarNet(from_dict(ModelConfig, meta["model"]), identities=int(meta["identities"]))
    if bool(state.get("features_frozen", False)):
        net.freeze_features()
    net.load_state_dict(state)
    folder.mkdir(parents=True)
    (folder / "subjects").symlink_to((run / "subjects").resolve(), target_is_directory=True)
    save_avatar(folder, net, meta)
    return folder


def motion_scores(frames, ds, idx, folder: Path) -> dict[str, float | None]:
    """Eye and mouth openness correlation and range ratio of the avatar's frames (N, 3, out, out) in [0, 1]
    for dataset frames ``idx``, re-tracked against the dataset's tracking (None where untrackable)."""
    from styleavatar.evaluation.motion import OPENNESS_SCORES
    from styleavatar.evaluation.report import held_out_motion

    images = (frames.clamp(0, 1) * 255).round().byte().permute(0, 2, 3, 1).numpy()
    m = held_out_motion(images, ds, idx, folder, progress=False)
    return {k: m.get(k) for k in OPENNESS_SCORES}


def describe_run(run: Path) -> str:
    """'CPU class, runtime' of a run (e.g. 'AVX2 only, fp32+cl'), from its config.json."""
    cfg = json.loads((run / "config.json").read_text())
    flags = cfg.get("cpu", "")
    torch_isa = "AVX2 only" if "torch AVX2" in flags else "AVX-512" if "torch AVX512" in flags else flags
    rt = cfg.get("runtime", {})
    layout = "+cl" if rt.get("channels_last") else ""
    return f"{torch_isa}, {rt.get('precision', '?')}{layout}"


def _pair(s: dict, part: str) -> str:
    """'0.87 (x0.44)': the openness correlation and range ratio of ``part`` ('eye' or 'mouth')."""
    corr, ratio = s[f"{part}_openness_corr"], s[f"{part}_range_ratio"]
    return "-" if corr is None or ratio is None else f"{corr:.2f} (x{ratio:.2f})"


def main(argv: list[str] | None = None) -> list[tuple]:
    """Score the runs; returns the table's rows (run, CPU class and runtime, minutes, iterations, held-out
    scores, training PSNR)."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", type=Path, nargs="+", help="run folders with their checkpoints kept")
    ap.add_argument("--dataset", type=Path, required=True, help="the dataset the runs trained on")
    ap.add_argument("--minutes", type=float, nargs="+", default=[5, 10, 15, 30, 60],
                    help="training budgets to score (default: 5 10 15 30 60)")
    ap.add_argument("--frames", type=int, default=64, help="frames scored, held-out and training (default: 64)")
    ap.add_argument("--no-write", action="store_true", help="print the table only")
    args = ap.parse_args(argv)
    from styleavatar.data.dataset import Dataset
    from styleavatar.inference.avatar import Avatar

    ds = Dataset.open(args.dataset)
    held, seen = evenly(ds.test_indices, args.frames), evenly(ds.train_indices, args.frames)
    rows, cfg = [], None
    with tempfile.TemporaryDirectory() as tmp:
        for r, run in enumerate(args.runs):
            ckpts = checkpoint_times(run)
            for budget in args.minutes:
                minutes, iteration, path = min(ckpts, key=lambda c: abs(c[0] - budget))
                if abs(minutes - budget) > max(2.5, 0.1 * budget):
                    print(f"{run.name}: no checkpoint near {budget:g} min (nearest {minutes:.1f}); skipped",
                          file=sys.stderr)
                    continue
                avatar = Avatar.load(avatar_at(run, path, iteration, Path(tmp) / f"{r}-{iteration}"), device="cpu")
                cfg = avatar.cfg
                frames = avatar_frames(avatar, ds, held)
                s = image_scores(frames, truth_frames(ds, held, cfg), feature_windows(ds, held, cfg))
                s.update(motion_scores(frames, ds, held, Path(tmp)))
                train_psnr = image_scores(avatar_frames(avatar, ds, seen), truth_frames(ds, seen, cfg))["psnr"]
                rows.append((run.name, describe_run(run), minutes, iteration, s, train_psnr))
                print(f"{run.name} {minutes:.1f} min: {s} training {train_psnr:.2f}", file=sys.stderr)
    if cfg is None:
        raise SystemExit("no checkpoint matched --minutes: keep them with `train --keep-checkpoints 20`")
    base = median_frame_scores(ds, held, ds.train_indices, cfg)
    lines = [f"## {TITLE}", "",
             f"`.venv/bin/python benchmarks/budget.py {' '.join(str(r) for r in args.runs)} --dataset {args.dataset} "
             f"--minutes {' '.join(f'{m:g}' for m in args.minutes)}`"
             f", scored on {machine()}. Each run's avatar at the checkpoint nearest each budget (minutes of "
             f"training, checkpoints every 5 minutes); {len(held)} evenly spaced held-out frames of "
             f"`{ds.root.name}` (the last 20%, never trained on) and {len(seen)} training frames, centred "
             f"{cfg.output_size}^2 window, the avatar's mean latent.", "",
             "| run | CPU class, runtime | minutes | iterations | held-out PSNR (dB) | SSIM | LPIPS | "
             "eyes and mouth PSNR (dB) | eye corr. (range) | mouth corr. (range) | training PSNR (dB) |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for name, where, minutes, iteration, s, train_psnr in rows:
        lines.append(f"| {name} | {where} | {minutes:.1f} | {iteration} | {s['psnr']:.2f} | {s['ssim']:.3f} | "
                     f"{s['lpips']:.3f} | {s['psnr_features']:.2f} | {_pair(s, 'eye')} | {_pair(s, 'mouth')} | "
                     f"{train_psnr:.2f} |")
    lines.append(f"| no network: median of 100 training frames | | 0 | | {base['psnr']:.2f} | {base['ssim']:.3f} | "
                 f"{base['lpips']:.3f} | {base['psnr_features']:.2f} | | | |")
    emit_section(lines, write=not args.no_write)
    return rows


if __name__ == "__main__":
    main()
