#!/usr/bin/env python3
"""Size and speed of the per-frame network for each preset; writes a table into BENCHMARKS.md.

    .venv/bin/python benchmarks/train.py [--presets tiny cpu paper] [--video ../shared/data/train/anchor_71s.mp4]

Per preset: parameters (all networks; the per-frame part = the two StyleUNets + mask conv that run per
frame once the feature maps are cached), multiply-accumulates per frame of that per-frame part (counted
by torch's FLOP counter, MAC = FLOP / 2), forward latency at batch 1 (median of 10, fp32 and bf16
autocast; bf16 only where it is native, as emulated bf16 is never used), and training speed: `styleavatar
train` for a few iterations on a 200-frame dataset made from the video, with the GAN and R1 active from the
first step (the heaviest step), median over log intervals, at the precision and layout its start-up probe
chose. Run it twice: natively and with ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2 (the AVX2-only
class); each CPU class gets its own section in BENCHMARKS.md.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, cpu_class, machine, write_section  # noqa: E402

TRAIN_ITERS = {"tiny": (60, 2), "small": (40, 4), "cpu": (25, 4), "paper": (4, 1)}  # iterations, batch
PAPER_REFERENCE = "47.5M parameters, ~117 GMAC per 1024^2 frame (the paper's public per-frame network)"


def forward_ms(net, cfg, dtype) -> float:
    import torch

    r = cfg.render_size
    render, uv = torch.rand(1, 3, r, r) * 2 - 1, torch.rand(1, 3, r, r)
    w, _ = net.inference_styles()
    times = []
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == "bf16"):
        for _ in range(12):
            t0 = time.perf_counter()
            net.synthesize(render, uv, w, **net.cached_maps(0))
            times.append(time.perf_counter() - t0)
    return 1000 * statistics.median(times[2:])


def per_frame_gmac(net, cfg) -> float:
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    r = cfg.render_size
    w, _ = net.inference_styles()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        net.synthesize(torch.zeros(1, 3, r, r), torch.zeros(1, 3, r, r), w, **net.cached_maps(0))
    return counter.get_total_flops() / 2e9


def train_speed(dataset: Path, preset: str) -> tuple[float, str]:
    from styleavatar.config import MODEL_PRESETS, TRAIN_PRESETS
    from styleavatar.runtime import Runtime
    from styleavatar.training.trainer import train

    iters, batch = TRAIN_ITERS[preset]
    cfg = dataclasses.replace(TRAIN_PRESETS[preset], batch=batch, gan_start=0, log_every=max(1, iters // 5),
                              sample_minutes=1e9, snapshot_minutes=1e9)
    with tempfile.TemporaryDirectory() as tmp:
        train([dataset], Path(tmp) / "run", MODEL_PRESETS[preset], cfg, iters=iters, progress=False,
              log=lambda m: None)
        rows = [json.loads(x) for x in (Path(tmp) / "run/log.jsonl").read_text().splitlines()]
        runtime = json.loads((Path(tmp) / "run/config.json").read_text())["runtime"]
    rates = [r["it_per_s"] for r in rows if "it_per_s" in r][1:]  # the first interval includes warm-up
    return statistics.median(rates), Runtime(**runtime).label()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--presets", nargs="+", default=["tiny", "cpu", "paper"])
    ap.add_argument("--video", type=Path, default=ROOT.parent / "shared/data/train/anchor_71s.mp4")
    ap.add_argument("--no-write", action="store_true", help="print only; leave BENCHMARKS.md alone")
    args = ap.parse_args()
    if not args.video.exists():
        sys.exit(f"benchmark video not found: {args.video}")
    import torch

    from styleavatar.config import MODEL_PRESETS, PreprocessConfig
    from styleavatar.runtime import cpu_info
    from styleavatar.data.preprocess import preprocess
    from styleavatar.models.avatar import AvatarNet

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        ds = preprocess(args.video, Path(tmp) / "ds", PreprocessConfig(max_frames=200, preview=False),
                        progress=False).output
        for name in args.presets:
            cfg = MODEL_PRESETS[name]
            torch.manual_seed(0)
            net = AvatarNet(cfg).eval()
            net.freeze_features()
            total = sum(p.numel() for p in net.parameters()) / 1e6
            per_frame = sum(p.numel() for m in (net.render_unet, net.image_unet, net.mask_conv)
                            for p in m.parameters()) / 1e6
            bf16 = forward_ms(net, cfg, "bf16") if cpu_info().native_bf16 else None
            it_s, runtime = train_speed(ds, name)
            row = dict(preset=name, size=cfg.output_size, params=total, per_frame=per_frame,
                       gmac=per_frame_gmac(net, cfg), fp32=forward_ms(net, cfg, "fp32"), bf16=bf16,
                       it_s=it_s, runtime=runtime, batch=TRAIN_ITERS[name][1])
            print(row, file=sys.stderr)
            rows.append(row)
    title = f"train (network size and speed), {cpu_class()}"
    lines = [
        f"## {title}",
        "",
        f"`{' '.join(['.venv/bin/python', 'benchmarks/train.py'] + sys.argv[1:])}`, {machine()}, "
        f"{torch.get_num_threads()} threads. Forward: batch 1, cached feature maps, median of 10. "
        "Training: GAN + R1 + VGG active, median it/s over log intervals.",
        "",
        "| preset | output | params (all) | params (per frame) | GMAC / frame | forward fp32 ms | forward bf16 ms "
        "| train it/s (batch) | chosen |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
        *[f"| {r['preset']} | {r['size']}^2 | {r['params']:.2f}M | {r['per_frame']:.2f}M | {r['gmac']:.2f} "
          f"| {r['fp32']:.1f} | {'%.1f' % r['bf16'] if r['bf16'] else 'not native'} | {r['it_s']:.2f} ({r['batch']}) "
          f"| {r['runtime']} |" for r in rows],
        "| paper (reference) | 1024^2 | | 47.5M | ~117 | | | | |",
        "",
        f"Reference: {PAPER_REFERENCE}.",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    if not args.no_write:
        write_section(title, text)


if __name__ == "__main__":
    main()
