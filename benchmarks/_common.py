"""Helpers shared by the benchmark scripts: machine description and BENCHMARKS.md sections."""
from __future__ import annotations

import argparse
import os
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HEADER = "# Benchmarks\n\nMeasured figures, each with the command that produced it.\n\n"


RESTRICT_ENV = ("ONEDNN_MAX_CPU_ISA", "ATEN_CPU_CAPABILITY", "MKL_ENABLE_INSTRUCTIONS")
"""Environment variables that restrict the kernels (set to AVX2 to stand in for the AVX2-only CPU class):
oneDNN (convolutions), PyTorch's own kernels, and MKL (torch.mm and the other BLAS calls; without it a 2048^2
fp32 matrix product runs at ~220 GFLOP/s on AVX-512 here, with it at ~128)."""


def cpu_class() -> str:
    """'AVX-512, native bf16' or 'AVX2 only (...)': the CPU class a figure belongs to, as PyTorch sees it.

    An x86 CPU whose bf16 is ``avx512_bf16`` alone (no AMX tiles) is a class of its own: there bf16 convolutions
    measured slower than fp32 (a 2-core Xeon, 2026-12-02), where with AMX they are the faster choice."""
    from styleavatar.runtime import cpu_info

    info = cpu_info()
    restricted = " ".join(f"{k}={os.environ[k]}" for k in RESTRICT_ENV if k in os.environ)
    level = {"AVX512": "AVX-512", "AVX2": "AVX2 only"}.get(info.torch_capability, info.torch_capability)
    bf16 = "native bf16" if info.native_bf16 else "no native bf16"
    if info.native_bf16 and "avx512_bf16" in info.flags and "amx_bf16" not in info.flags:
        bf16 += " without AMX"
    return f"{level}, {bf16}" + (f" (restricted: {restricted})" if restricted else "")


RESTRICTION_REACH = (
    "The restriction reaches PyTorch and oneDNN only: ONNX Runtime (the face models), OpenCV and Mesa's "
    "llvmpipe pick their own kernels from the CPU's flags, so the landmark, mask, decode and render figures "
    "in this section are not AVX2-only figures.")


def restriction_note() -> str:
    """A paragraph for sections measured under :data:`RESTRICT_ENV` (empty otherwise)."""
    return RESTRICTION_REACH + "\n\n" if any(k in os.environ for k in RESTRICT_ENV) else ""


def machine() -> str:
    """'2 cores (Intel Xeon ...; avx2 fma avx512f ...; torch AVX512; bf16 native), no GPU' or the GPU's name."""
    from styleavatar.runtime import cpu_info

    gpu = "no GPU"
    try:
        import torch

        if torch.cuda.is_available():
            gpu = torch.cuda.get_device_name(0)
    except ImportError:
        pass
    return f"{cpu_info().describe()}, {gpu}"


def step_parser(doc: str, rounds: int, what: str) -> argparse.ArgumentParser:
    """The options of a benchmark that times a preset's training step: --preset, --rounds (of ``what`` in turn)
    and --no-write; ``doc``'s first line describes it."""
    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("--preset", default="cpu", help="training preset whose step is timed (default: cpu)")
    ap.add_argument("--rounds", type=int, default=rounds, help=f"rounds of {what} in turn (default: {rounds})")
    ap.add_argument("--no-write", action="store_true", help="print the section without writing BENCHMARKS.md")
    return ap


def write_section(title: str, text: str) -> None:
    """Replace (or append) the section ``## title`` of BENCHMARKS.md with ``text`` (which starts with it)."""
    path = ROOT / "BENCHMARKS.md"
    old = path.read_text() if path.exists() else HEADER
    pattern = rf"## {re.escape(title)}\n.*?(?=\n## |\Z)"
    body = text.rstrip("\n") + "\n"
    new = re.sub(pattern, lambda _: body, old, flags=re.S) if f"## {title}\n" in old else old.rstrip("\n") + "\n\n" + body
    path.write_text(new)


def emit_section(lines: list[str], write: bool = True) -> str:
    """Print a section (``lines[0]`` is its ``## title``) and, when ``write``, put it into BENCHMARKS.md."""
    text = "\n".join(lines).rstrip("\n") + "\n"
    print(text)
    if write:
        write_section(lines[0][3:], text)
    return text


VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv", ".webm", ".avi")


def driver_videos(folder: Path) -> list[Path]:
    """The video files in ``folder``, sorted by name."""
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES)


def evenly(indices, n: int):
    """``n`` evenly spaced entries of the 1-D array ``indices`` (all of them when there are fewer)."""
    import numpy as np

    indices = np.asarray(indices)
    return indices[np.linspace(0, len(indices) - 1, min(n, len(indices))).round().astype(int)]


def truth_frames(ds, idx, cfg):
    """(N, 3, out, out) float in [0, 1]: dataset frames ``idx`` as the avatar sees them (centred window)."""
    import numpy as np

    from styleavatar.io.image import to_tensor

    return to_tensor(np.stack([ds.frame_window(int(i), cfg.crop_size, cfg.output_size) for i in idx]), signed=False)


def avatar_frames(avatar, ds, idx, w=None):
    """(N, 3, out, out) float in [0, 1]: the avatar's frames for dataset frames ``idx`` (their renders and UVs),
    8 at a time, with latent ``w`` (None: the avatar's own inference latent)."""
    import numpy as np
    import torch

    from styleavatar.io.image import to_tensor
    from styleavatar.rendering.render import resize_image, resize_uv

    if w is not None:
        avatar.w = w
    r, out = avatar.cfg.render_size, []
    for chunk in np.array_split(np.asarray(idx), max(1, len(idx) // 8)):
        render, uv = avatar.to_tensors([resize_image(ds.render(int(i)), r) for i in chunk],
                                       [resize_uv(ds.uv(int(i)), r) for i in chunk])
        out.append(to_tensor(avatar.generate(render, uv)[0], signed=False))
    return torch.cat(out)


def feature_windows(ds, idx, cfg):
    """(N, 1, out, out) float in [0, 1]: the eyes-and-mouth maps of dataset frames ``idx`` (centred window)."""
    import numpy as np
    import torch

    maps = [ds.feature_window(int(i), cfg.crop_size, cfg.output_size) for i in idx]
    return torch.from_numpy(np.stack(maps))[:, None]


def image_scores(fake, truth, features=None) -> dict[str, float]:
    """Mean PSNR (dB), SSIM and LPIPS of (N, 3, H, W) images in [0, 1] against ``truth``; with ``features``
    (:func:`feature_windows`), also "psnr_features": the PSNR of the eyes and mouth."""
    import torch

    from styleavatar.evaluation.metrics import lpips, psnr, ssim

    out = {"psnr": float(psnr(fake, truth).mean()), "ssim": float(ssim(fake, truth).mean()),
           "lpips": float(lpips(fake, truth).mean())}
    if features is not None:
        out["psnr_features"] = float(torch.nanmean(psnr(fake, truth, features)))
    return out


def median_frame_scores(ds, idx, train, cfg) -> dict[str, float]:
    """:func:`image_scores` of the no-network baseline: the per-pixel median of 100 training frames."""
    import numpy as np

    from styleavatar.io.image import to_tensor

    picks = evenly(train, 100)
    median = np.median(np.stack([ds.frame_window(int(i), cfg.crop_size, cfg.output_size) for i in picks]), 0)
    base = to_tensor(np.repeat(median.astype(np.uint8)[None], len(idx), 0), signed=False)
    return image_scores(base, truth_frames(ds, idx, cfg), feature_windows(ds, idx, cfg))
