#!/usr/bin/env python3
"""Rate and distortion of the avatar stream (``encode``/``decode``) against H.264 on held-out frames.

    .venv/bin/python benchmarks/codec.py RUN --dataset DATASET [--frames 64] [--plot docs/codec.png]
        [--pose-smoothing S] [--no-write]

The held-out part (the test split, never trained on) of the dataset's source video is written to a
lossless temporary video and coded two ways:

- the avatar stream at several ``--dims`` / ``--quality`` settings: bitrate of the parameter chunks (audio
  apart), then the frames decoded through the avatar;
- H.264 (libx264 through PyAV, preset medium) of the same 256^2 windows the avatar draws, at a sweep of
  bitrates down to where it breaks.

PSNR, SSIM and LPIPS against the original windows on ``--frames`` evenly spaced held-out frames; the
headline is the H.264 bitrate that reaches the avatar's LPIPS (interpolated in log bitrate), as a ratio, for
the default setting and for the cheapest setting that costs nothing (``SAME_LPIPS``, ``SAME_PSNR``,
``SAME_MOTION``). Each setting's decoded face model is also compared with the full-precision fit, no network
involved: the lips, eyelids and brows, which whole-frame scores barely see.
Writes the "codec" section of BENCHMARKS.md and the plot.
"""
from __future__ import annotations

import argparse
import io
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESTRICT_ENV, ROOT, cpu_class, machine, restriction_note, write_section  # noqa: E402
from styleavatar.tracking.face_model import (BROWS, EYES, INNER_LIP_RING, LEFT_EYE_RING, MOUTH,  # noqa: E402
                                             OUTER_LIP_RING, RIGHT_EYE_RING, openness)

SETTINGS = ((8, 1.0), (16, 1.0), (20, 1.0), (24, 1.0), (32, 1.0), (24, 0.5), (24, 2.0), (16, 0.5), (12, 0.5), (8, 0.5),
            (4, 0.5), (8, 0.25))
"""(dims, quality) of the avatar stream."""
H264_KBITS = (4, 8, 12, 16, 24, 32, 48, 64, 128, 256)
SAME_LPIPS, SAME_PSNR, SAME_MOTION = 0.002, 0.1, 0.99
"""A setting counts as costing nothing when its mean LPIPS and PSNR (dB) are within the first two of the best
setting's and its mouth and eye openness correlate with the full-precision fit's by at least the third
(chosen tolerances, not measured thresholds of what a person sees). Full-frame PSNR and LPIPS barely see the
lips and eyelids, a few percent of the frame; the openness check does."""
FEATURES = np.unique(np.concatenate([np.ravel(x) for x in (OUTER_LIP_RING, INNER_LIP_RING, LEFT_EYE_RING,
                                                            RIGHT_EYE_RING, BROWS)]))
"""Lip, eyelid and brow points of the face model: where the stream's expression error shows."""


def _scores(images: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    import torch

    from styleavatar.evaluation.metrics import all_metrics
    from styleavatar.io.image import to_tensor

    s = all_metrics(to_tensor(images, signed=False), to_tensor(truth, signed=False),
                    torch.ones(len(images), 1, images.shape[1], images.shape[2]))
    return {k: float(s[k].mean()) for k in ("psnr", "ssim", "lpips")}


def _held_out_video(ds, out: Path) -> None:
    """The source frames of the test split, nearly lossless (CRF 0), at the source's size."""
    from styleavatar.io.video import VideoWriter, read_frames

    lo, hi = ds.meta["split"]["test"]
    src = ds.meta["source"]["path"]
    with VideoWriter(out, ds.meta["fps"], crf=0) as writer:
        for frame in read_frames(src):
            if lo <= frame.index < hi:
                writer.write(frame.rgb)


def _h264(windows: np.ndarray, fps: float, kbit: int) -> tuple[float, np.ndarray]:
    """Code (N, S, S, 3) windows with libx264 at ``kbit`` kbit/s; returns the measured kbit/s and the frames."""
    import av

    buf = io.BytesIO()
    size = 0
    with av.open(buf, "w", format="mp4") as out:
        stream = out.add_stream("libx264", rate=int(round(fps)), options={"preset": "medium"})
        stream.width, stream.height, stream.pix_fmt = windows.shape[2], windows.shape[1], "yuv420p"
        stream.bit_rate = kbit * 1000
        for img in windows:
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                size += packet.size
                out.mux(packet)
        for packet in stream.encode():
            size += packet.size
            out.mux(packet)
    buf.seek(0)
    with av.open(buf) as inp:
        frames = np.stack([f.to_ndarray(format="rgb24") for f in inp.decode(video=0)])
    return size * 8 / 1000 / (len(windows) / fps), frames


def _motion(subject, expression: np.ndarray, reference: np.ndarray) -> dict[str, float]:
    """The decoded face model against the full-precision fit (all coefficients), no network: mean distance of
    the lip, eyelid and brow points (mm) and the correlation of mouth and eye openness. (N, K) each."""
    a, b = subject.shape(expression), subject.shape(reference)
    return {"feature_mm": float(np.linalg.norm(a[:, FEATURES] - b[:, FEATURES], axis=2).mean() * 10),  # cm -> mm
            "mouth_corr": float(np.corrcoef(openness(a, MOUTH), openness(b, MOUTH))[0, 1]),
            "eye_corr": float(np.corrcoef(openness(a, EYES), openness(b, EYES))[0, 1])}


def _decoded(path: Path, k: int):
    """(N, D) quantised levels of a stream file and its FrameParams as ``decode`` dequantises them."""
    from styleavatar.inference import codec

    with open(path, "rb") as f:
        header = codec.read_header(f)
        levels = codec.read_levels(f, header)
    return levels, codec.from_values(levels * np.asarray(header["steps"]), k)


def _log_interp(x_at: float, xs: list[float], ys: list[float]) -> float | None:
    """Bitrate (xs) where LPIPS (ys, falling with bitrate) reaches ``x_at``, interpolated in log bitrate."""
    for (x0, y0), (x1, y1) in zip(zip(xs, ys), zip(xs[1:], ys[1:])):
        if y0 >= x_at >= y1:
            t = 0.0 if y0 == y1 else (y0 - x_at) / (y0 - y1)
            return float(np.exp(np.log(x0) + t * (np.log(x1) - np.log(x0))))
    return None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", type=Path)
    ap.add_argument("--dataset", type=Path, required=True)
    ap.add_argument("--frames", type=int, default=64)
    ap.add_argument("--plot", type=Path, default=ROOT / "docs" / "codec.png")
    ap.add_argument("--pose-smoothing", type=float, default=None,
                    help="encode's --pose-smoothing for every stream (default: encode's default)")
    ap.add_argument("--no-write", action="store_true", help="print the section; leave BENCHMARKS.md and the plot")
    args = ap.parse_args()

    from styleavatar.config import CodecOptions
    from styleavatar.data.dataset import Dataset
    from styleavatar.inference import codec
    from styleavatar.inference.avatar import Avatar
    from styleavatar.inference.reenact import avatar_frames

    ds, avatar = Dataset.open(args.dataset), Avatar.load(args.run)
    cfg, fps = avatar.cfg, float(ds.meta["fps"])
    test = np.arange(*ds.meta["split"]["test"])
    windows = np.stack([ds.frame_window(int(i), cfg.crop_size, cfg.output_size) for i in test])
    pick = np.linspace(0, len(test) - 1, min(args.frames, len(test))).round().astype(int)
    rows, k = [], avatar.subject.basis.shape[0]
    with tempfile.TemporaryDirectory() as tmp:
        clip = Path(tmp) / "held_out.mp4"
        _held_out_video(ds, clip)
        # The reference: every coefficient, steps 1/16 of quality 1's (the fit itself, to well within a step).
        full_options = CodecOptions(k, 16.0, audio=False, pose_smoothing=args.pose_smoothing)
        codec.encode(clip, args.run, Path(tmp) / "full.sam", full_options, progress=False)
        full = _decoded(Path(tmp) / "full.sam", k)[1].expression
        for dims, quality in SETTINGS:
            t0 = time.perf_counter()
            options = CodecOptions(dims, quality, audio=False, pose_smoothing=args.pose_smoothing)
            summary = codec.encode(clip, args.run, Path(tmp) / "s.sam", options, progress=False)
            enc_s = time.perf_counter() - t0
            levels, decoded = _decoded(Path(tmp) / "s.sam", k)
            v1_bytes = sum(len(codec.deflate_levels(levels[i:i + codec.CHUNK_FRAMES])) + 5
                           for i in range(0, len(levels), codec.CHUNK_FRAMES))
            params = decoded.select(pick)
            t0 = time.perf_counter()
            images = np.stack(list(avatar_frames(avatar, params)))
            dec_fps = len(pick) / (time.perf_counter() - t0)
            rows.append({"coder": f"avatar, dims {dims}, quality {quality:g}", "kbit_s": summary.kbit_s,
                         "v1_kbit_s": v1_bytes * 8 / 1000 / (summary.frames / summary.fps),
                         "numbers": 7 + dims + 4, "encode_fps": summary.frames / enc_s, "decode_fps": dec_fps,
                         **_motion(avatar.subject, decoded.expression, full), **_scores(images, windows[pick])})
            print(rows[-1], flush=True)
        h264 = []
        for kbit in H264_KBITS:
            rate, frames = _h264(windows, fps, kbit)
            h264.append({"coder": f"H.264 at {kbit} kbit/s target", "kbit_s": rate,
                         **_scores(frames[pick], windows[pick])})
            print(h264[-1], flush=True)
    _write(args, rows, h264, len(test), fps)


def _headline(row: dict, h264: list[dict]) -> str:
    """``row``'s rate and LPIPS, and the H.264 bitrate that reaches that LPIPS, as a ratio to the stream's."""
    xs, ys = [r["kbit_s"] for r in h264], [r["lpips"] for r in h264]
    match = _log_interp(row["lpips"], xs, ys)
    text = f"{row['coder'].removeprefix('avatar, ')}: {row['kbit_s']:.2f} kbit/s, LPIPS {row['lpips']:.3f}; "
    if match is None:
        return text + (f"H.264 does not reach that LPIPS anywhere in the sweep ({min(xs):.1f}-{max(xs):.1f} "
                       f"kbit/s; its LPIPS {min(ys):.3f}-{max(ys):.3f})")
    return text + f"H.264 needs {match:.1f} kbit/s for that LPIPS, {match / row['kbit_s']:.1f}x"


def _write(args, rows: list[dict], h264: list[dict], frames: int, fps: float) -> None:
    from styleavatar.config import CodecOptions

    default = CodecOptions()
    ours = next(r for r in rows if r["coder"] == f"avatar, dims {default.dims}, quality {default.quality:g}")
    best_lpips, best_psnr = min(r["lpips"] for r in rows), max(r["psnr"] for r in rows)
    free = [r for r in rows if r["lpips"] <= best_lpips + SAME_LPIPS and r["psnr"] >= best_psnr - SAME_PSNR
            and min(r["mouth_corr"], r["eye_corr"]) >= SAME_MOTION]
    cheapest = min(free, key=lambda r: r["kbit_s"]) if free else ours
    headline = f"**The default stream, {_headline(ours, h264)}.**"
    if cheapest is not ours:
        headline += (f" The cheapest setting within {SAME_LPIPS} LPIPS and {SAME_PSNR} dB PSNR of the best ones "
                     f"whose mouth and eye openness correlate >= {SAME_MOTION} with the full-precision fit's, "
                     f"**{_headline(cheapest, h264)}**.")
    table = ("| coder | numbers / frame | video kbit/s | version 1 coding, kbit/s | lips, eyelids, brows: error (mm) "
             "| mouth corr. | eye corr. | PSNR (dB) | SSIM | LPIPS | encode frames/s | decode frames/s |\n"
             "| --- |" + " ---: |" * 11 + "\n")
    for r in rows + h264:
        motion = (f"{r['feature_mm']:.2f} | {r['mouth_corr']:.3f} | {r['eye_corr']:.3f}" if "feature_mm" in r
                  else "- | - | -")
        table += (f"| {r['coder']} | {r.get('numbers', '-')} | {r['kbit_s']:.2f} | "
                  + (f"{r['v1_kbit_s']:.2f}" if "v1_kbit_s" in r else "-")
                  + f" | {motion} | {r['psnr']:.2f} | {r['ssim']:.3f} | {r['lpips']:.3f} | "
                  + (f"{r['encode_fps']:.0f} | {r['decode_fps']:.1f} |" if "encode_fps" in r else "- | - |") + "\n")
    command = f".venv/bin/python benchmarks/codec.py {args.run} --dataset {args.dataset} --frames {args.frames}"
    if args.pose_smoothing is not None:
        command += f" --pose-smoothing {args.pose_smoothing:g}"
    title = f"codec (encode / decode against H.264), {cpu_class()}"
    env = " ".join(f"{k}={os.environ[k]}" for k in RESTRICT_ENV if k in os.environ)
    text = (f"## {title}\n\n`{(env + ' ') if env else ''}{command}`\n\n{machine()}; {cpu_class()}. The "
            f"held-out {frames} frames ({frames / fps:.1f} s at {fps:g} fps) of the dataset's source video, "
            f"never trained on; scores on {args.frames} evenly spaced frames against the original windows "
            "(the avatar's output size) of the dataset's frames. Bitrates are the video part only (the stream's "
            "parameter chunks; H.264's packets); audio travels apart (Opus, 24 kbit/s). \"Version 1 coding\": the "
            "same quantised levels as the stream format's version 1 coded them (deflated varints, each chunk on "
            "its own). Lips, eyelids, brows and mouth / eye corr.: the decoded face model (no network) against the "
            "encoder's full-precision fit with all coefficients, over all held-out frames: mean distance of those "
            "points in mm of the canonical head, and the correlation of mouth and eye openness. H.264: libx264, "
            "preset medium, one-pass rate control aimed at each target bitrate. Encode speed includes tracking; "
            "decode speed is the avatar's network and renders, PyTorch, batch 4.\n\n"
            f"{restriction_note()}{headline}\n\n{table}\n![rate against LPIPS](docs/{args.plot.name})\n")
    if not args.no_write:
        _plot(args.plot, rows, h264)
        write_section(title, text)
    print(text)


def _plot(path: Path, rows: list[dict], h264: list[dict]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, key, label in ((axes[0], "lpips", "LPIPS (lower is better)"), (axes[1], "psnr", "PSNR (dB)")):
        ax.plot([r["kbit_s"] for r in h264], [r[key] for r in h264], "o-", label="H.264 (libx264)")
        ax.plot([r["kbit_s"] for r in rows], [r[key] for r in rows], "s", label="avatar stream")
        ax.set_xscale("log")
        ax.set_xlabel("video kbit/s")
        ax.set_ylabel(label)
        ax.grid(True, which="both", alpha=0.3)
    axes[0].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


if __name__ == "__main__":
    main()
