"""Helpers shared by the benchmark scripts: machine description and BENCHMARKS.md sections."""
from __future__ import annotations

import os
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HEADER = "# Benchmarks\n\nMeasured figures, each with the command that produced it.\n\n"


RESTRICT_ENV = ("ONEDNN_MAX_CPU_ISA", "ATEN_CPU_CAPABILITY")
"""Environment variables that restrict the kernels (set to AVX2 to stand in for the AVX2-only CPU class)."""


def cpu_class() -> str:
    """'AVX-512, native bf16' or 'AVX2 only (...)': the CPU class a figure belongs to, as PyTorch sees it."""
    from styleavatar.runtime import cpu_info

    info = cpu_info()
    restricted = " ".join(f"{k}={os.environ[k]}" for k in RESTRICT_ENV if k in os.environ)
    level = {"AVX512": "AVX-512", "AVX2": "AVX2 only"}.get(info.torch_capability, info.torch_capability)
    bf16 = "native bf16" if info.native_bf16 else "no native bf16"
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


def write_section(title: str, text: str) -> None:
    """Replace (or append) the section ``## title`` of BENCHMARKS.md with ``text`` (which starts with it)."""
    path = ROOT / "BENCHMARKS.md"
    old = path.read_text() if path.exists() else HEADER
    pattern = rf"## {re.escape(title)}\n.*?(?=\n## |\Z)"
    body = text.rstrip("\n") + "\n"
    new = re.sub(pattern, lambda _: body, old, flags=re.S) if f"## {title}\n" in old else old.rstrip("\n") + "\n\n" + body
    path.write_text(new)
