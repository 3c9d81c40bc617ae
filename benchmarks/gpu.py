#!/usr/bin/env python3
"""The GPU path, measured in one run: training step, per-frame network (PyTorch and ONNX Runtime), rasteriser,
preprocess, live loop and multi-GPU training; writes a JSON and a BENCHMARKS.md section.

    .venv/bin/python benchmarks/gpu.py --json gpu.json [--video CLIP.mp4] [--run RUN] [--dataset DATASET]

On a GPU (the default there): the `paper` preset (1024^2) at batch 4, bf16 and fp16. On a CPU, or with
``--reduced``, the same measurements at the `tiny` preset in fp32 (what the test suite runs, in seconds), and
BENCHMARKS.md is left alone unless ``--write`` is given. Sections that need what is not there (a video, a
trained run, a second GPU, the perceptual weights) say so instead of a figure.

Per section:
- train step: a fresh network's generator + discriminator step with the L1, mask, perceptual (when its weights
  are cached), GAN and R1 losses all active (the heaviest step), iterations/s and peak GPU memory;
- network: the per-frame network at batch 1, median ms, in PyTorch per precision and in ONNX Runtime on each
  provider offered, its parity with PyTorch checked on the same device in fp32 (TF32 off on both sides);
- rasteriser: the renderer in use and ms per 20k-triangle frame at the preset's render size;
- preprocess (``--video``): frames/s of `styleavatar preprocess`; live (``--run``): the live loop's fps;
- multi-GPU (``--dataset``, two or more GPUs): `torchrun` with NCCL for 20 iterations.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, machine, write_section  # noqa: E402

SECTION = "GPU path"
"""The BENCHMARKS.md section this script writes."""
PAPER_FIGURES = ("the paper (RTX 3090): 31 ms per 1024^2 frame in PyTorch, 20 ms with TensorRT fp16; about 2 h "
                 "of training to a good avatar")


def _sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _median_ms(fn, device, repeats: int) -> float:
    fn()  # warm-up: kernel choice, cuDNN's algorithm search, TensorRT's engine
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - t0)
    return 1000 * statistics.median(times)


def train_step(preset: str, precision: str, batch: int, steps: int, device) -> dict:
    """it/s and peak GPU memory of full training steps (G and D, every loss on) on a synthetic batch."""
    import torch

    from styleavatar.config import MODEL_PRESETS, TRAIN_PRESETS
    from styleavatar.models.avatar import AvatarNet
    from styleavatar.models.stylegan import Discriminator
    from styleavatar.runtime import Runtime
    from styleavatar.training.losses import perceptual_loss
    from styleavatar.training.speed import synthetic_batch
    from styleavatar.training.step import Optimiser, adamw, discriminator_step, generator_step

    m = MODEL_PRESETS[preset]
    t = dataclasses.replace(TRAIN_PRESETS[preset], batch=batch, vgg_every=1, r1_every=1, gan_start=0)
    torch.manual_seed(0)
    G, D = AvatarNet(m).to(device), Discriminator(m.output_size, m.disc_channels).to(device)
    try:
        vgg, perceptual = perceptual_loss(t, device), "on"
    except Exception as exc:  # weights not fetched on this machine: time the rest, and say so
        vgg, perceptual = None, f"off ({str(exc).splitlines()[0][:80]})"
    cuda = device.type == "cuda"
    rt = Runtime(str(device), precision, cuda, torch.get_num_threads(), "benchmark")
    rt.apply_layout(G, D, vgg)
    opt_G = Optimiser(G, adamw(G.parameters(), t, fused=cuda), t.grad_clip)
    opt_D = Optimiser(D, adamw(D.parameters(), t, lazy_every=t.r1_every, fused=cuda), t.grad_clip)
    opt_G.use_runtime(rt)
    opt_D.use_runtime(rt)
    b = synthetic_batch(m, batch).to(device, rt.channels_last)
    if cuda:
        torch.cuda.reset_peak_memory_stats(device)
    for i in range(steps + 1):
        if i == 1:  # the first step warms up (optimiser state, kernels)
            _sync(device)
            t0 = time.perf_counter()
        _, fake = generator_step(G, opt_G, b, t, rt, i, vgg, D)
        discriminator_step(D, opt_D, b, fake, t, rt, i)
    _sync(device)
    rate = steps / (time.perf_counter() - t0)
    peak = torch.cuda.max_memory_allocated(device) / 2 ** 30 if cuda else None
    return {"preset": preset, "precision": precision, "batch": batch, "it_per_s": round(rate, 3),
            "peak_gib": None if peak is None else round(peak, 2), "perceptual": perceptual}


def frame_network(preset: str, precisions: list[str], device, repeats: int) -> list[dict]:
    """The per-frame network at batch 1: PyTorch per precision, then ONNX Runtime per provider (parity checked)."""
    import numpy as np
    import torch

    from styleavatar.config import MODEL_PRESETS
    from styleavatar.inference.export import OPSET, FrameNetwork, _no_tf32
    from styleavatar.io import onnx
    from styleavatar.models.avatar import AvatarNet
    from styleavatar.runtime import Runtime

    m = MODEL_PRESETS[preset]
    torch.manual_seed(0)
    net = AvatarNet(m).to(device).eval().requires_grad_(False)
    net.freeze_features()
    module = FrameNetwork(net)
    r = m.render_size
    g = torch.Generator().manual_seed(0)
    render = (torch.rand(1, 3, r, r, generator=g) * 2 - 1).to(device)
    uv = torch.rand(1, 3, r, r, generator=g).to(device)
    rows = []
    for precision in precisions:
        rt = Runtime(str(device), precision, False, torch.get_num_threads(), "benchmark")
        with torch.no_grad(), rt.autocast():
            ms = _median_ms(lambda: module(render, uv), device, repeats)
        rows.append({"runtime": f"PyTorch {precision}", "ms": round(ms, 2), "max_abs_diff": None})
    if not onnx.available():
        return rows + [{"runtime": "ONNX Runtime", "ms": None, "max_abs_diff": None, "note": "not installed"}]
    import onnxruntime as ort

    with tempfile.TemporaryDirectory() as tmp, torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer notes on static shapes (intended: sides are constants)
        path = Path(tmp) / "net.onnx"
        torch.onnx.export(module, (render, uv), str(path), input_names=["render", "uv"],
                          output_names=["image", "mask"], opset_version=OPSET, dynamo=False,
                          dynamic_axes={n: {0: "batch"} for n in ("render", "uv", "image", "mask")})
        with _no_tf32():
            ref = module(render, uv)[0].cpu().numpy()
        feeds = {"render": render.cpu().numpy(), "uv": uv.cpu().numpy()}
        shapes = {"image": (1, 3, m.output_size, m.output_size), "mask": (1, 1, m.output_size, m.output_size)}
        for provider in [p for p in onnx.providers_for(device.type) if p in ort.get_available_providers()]:
            exact = provider != "TensorrtExecutionProvider"  # TensorRT runs in fp16 here; no parity
            sess = onnx.session(path, (provider,), device_id=device.index or 0, exact=exact,
                                inputs={"render": (3, r, r), "uv": (3, r, r)}, fp16=not exact)
            diff = float(np.abs(sess.run(["image"], feeds)[0] - ref).max()) if exact else None
            ms = _median_ms(lambda: onnx.run_bound(sess, {"render": render, "uv": uv}, shapes), device, repeats)
            rows.append({"runtime": f"ONNX Runtime {provider.replace('ExecutionProvider', '')}"
                                    + (" fp16" if not exact else ""),
                         "ms": round(ms, 2), "max_abs_diff": diff})
    return rows


def rasteriser(preset: str, frames: int = 50) -> dict:
    """The renderer in use and ms per frame of a 20k-triangle grid mesh at the preset's render size."""
    import numpy as np

    from styleavatar.config import MODEL_PRESETS
    from styleavatar.rendering.rasterize import make_rasterizer

    side = MODEL_PRESETS[preset].render_size
    n = 100  # (n+1)^2 vertices, 2 n^2 triangles
    ys, xs = np.meshgrid(np.linspace(0, side, n + 1), np.linspace(0, side, n + 1), indexing="ij")
    verts = np.stack([xs.ravel(), ys.ravel(), np.sin(xs.ravel() / 9.0)], 1).astype(np.float32)
    q = (np.arange(n)[:, None] * (n + 1) + np.arange(n)[None, :]).ravel()
    tris = np.concatenate([np.stack([q, q + 1, q + n + 1], 1), np.stack([q + 1, q + n + 2, q + n + 1], 1)])
    attrs = np.random.default_rng(0).random((len(verts), 3), dtype=np.float32)
    r = make_rasterizer("auto")
    r(verts, tris, attrs, side, side)
    t0 = time.perf_counter()
    for _ in range(frames):
        r(verts, tris, attrs, side, side)
    ms = 1000 * (time.perf_counter() - t0) / frames
    return {"backend": r.name, "renderer": getattr(r, "description", "PyTorch reference"), "ms": round(ms, 2),
            "triangles": len(tris), "side": side}


def preprocess_speed(video: Path | None, preset: str) -> dict:
    if video is None:
        return {"skipped": "no --video given"}
    from styleavatar.config import PREPROCESS_PRESETS
    from styleavatar.data.preprocess import preprocess

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        summary = preprocess(video, Path(tmp) / "ds", PREPROCESS_PRESETS[preset], progress=False, log=lambda m: None)
        seconds = time.perf_counter() - t0
    frames = summary.frames if hasattr(summary, "frames") else None
    return {"video": video.name, "seconds": round(seconds, 1),
            "frames_per_s": None if not frames else round(frames / seconds, 1)}


def live_speed(run: Path | None, video: Path | None, device, frames: int = 200) -> dict:
    if run is None or video is None:
        return {"skipped": "needs --run and --video"}
    from styleavatar.inference.avatar import Avatar
    from styleavatar.live.pipeline import MJPEGServer, run_pipeline, video_source

    avatar = Avatar.load(run, device=str(device))
    times = run_pipeline(avatar, video_source(video, frames + 5), [MJPEGServer.encode], mark=avatar.mark().payload)
    s = times.summary()
    return {"placement": avatar.placement(), "fps": s["fps"], "latency_p50_ms": s["latency"]["p50_ms"],
            "network_p50_ms": s["stages"].get("network", {}).get("p50_ms")}


def multi_gpu(dataset: Path | None, preset: str) -> dict:
    import torch

    count = torch.cuda.device_count()
    if count < 2 or dataset is None:
        return {"skipped": f"{count} GPU(s) here" if count < 2 else "no --dataset given"}
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc-per-node={count}", "-m", "styleavatar.cli",
               "train", str(dataset), "-o", str(Path(tmp) / "run"), "--preset", preset, "--iters", "20", "--quiet"]
        t0 = time.perf_counter()
        out = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "NCCL_DEBUG": "WARN"})
        seconds = time.perf_counter() - t0
    return {"gpus": count, "ok": out.returncode == 0, "seconds": round(seconds, 1),
            "error": None if out.returncode == 0 else out.stderr[-500:]}


def measure(args) -> dict:
    import torch

    from styleavatar.runtime import cuda_bf16_native, device_name, pick_device, tune_for

    device = pick_device(args.device)
    tune_for(device)
    reduced = args.reduced or device.type == "cpu"
    preset = "tiny" if reduced else "paper"
    precisions = ["fp32"] if device.type == "cpu" else ["bf16", "fp16"]
    if device.type == "cuda" and not cuda_bf16_native(device):
        precisions = ["fp16"]
    return {
        "machine": machine(), "device": device_name(device), "preset": preset, "torch": torch.__version__,
        "train": [train_step(preset, p, 2 if reduced else 4, 3 if reduced else 10, device) for p in precisions],
        "network": frame_network(preset, ["fp32", *[p for p in precisions if p != "fp32"]], device,
                                 5 if reduced else 50),
        "rasteriser": rasteriser(preset),
        "preprocess": preprocess_speed(args.video, "tiny" if reduced else "paper"),
        "live": live_speed(args.run, args.video, device),
        "multi_gpu": multi_gpu(args.dataset, preset),
    }


def table(result: dict, command: str) -> str:
    lines = [f"## {SECTION}", "", f"`{command}` on {result['device']}: {result['machine']}, PyTorch "
             f"{result['torch']}, `{result['preset']}` preset. Reference: {PAPER_FIGURES}.", "",
             "| what | setting | figure |", "| --- | --- | ---: |"]
    for t in result["train"]:
        mem = f", peak {t['peak_gib']} GiB" if t["peak_gib"] is not None else ""
        lines.append(f"| training step | {t['precision']}, batch {t['batch']}, perceptual {t['perceptual']} | "
                     f"{t['it_per_s']} it/s{mem} |")
    for n in result["network"]:
        parity = f", max diff vs PyTorch {n['max_abs_diff']:.1e}" if n.get("max_abs_diff") is not None else ""
        figure = f"{n['ms']} ms{parity}" if n["ms"] is not None else n.get("note", "")
        lines.append(f"| per-frame network, batch 1 | {n['runtime']} | {figure} |")
    r = result["rasteriser"]
    lines.append(f"| rasteriser | {r['backend']}: {r['renderer']} | {r['ms']} ms / {r['triangles']} triangles at "
                 f"{r['side']}^2 |")
    for key, label in (("preprocess", "preprocess"), ("live", "live loop"), ("multi_gpu", "torchrun + NCCL")):
        v = result[key]
        figure = v.get("skipped") or ", ".join(f"{k} {x}" for k, x in v.items() if k not in ("error",))
        lines.append(f"| {label} | | {figure} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: auto)")
    p.add_argument("--reduced", action="store_true", help="the tiny preset in fp32 (what the test suite runs)")
    p.add_argument("--video", type=Path, help="a portrait video for the preprocess and live sections")
    p.add_argument("--run", type=Path, help="a trained run for the live section")
    p.add_argument("--dataset", type=Path, help="a dataset for the torchrun section (two or more GPUs)")
    p.add_argument("--json", type=Path, help="write the figures here")
    p.add_argument("--write", action="store_true", help="write the BENCHMARKS.md section even in reduced form")
    args = p.parse_args(argv)
    result = measure(args)
    command = "benchmarks/gpu.py " + " ".join(argv if argv is not None else sys.argv[1:])
    text = table(result, command.strip())
    print(text)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    if args.write or (result["preset"] != "tiny" and (ROOT / "BENCHMARKS.md").exists()):
        write_section(SECTION, text)
    return result


if __name__ == "__main__":
    main()
