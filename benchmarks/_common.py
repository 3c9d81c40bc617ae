"""Helpers shared by the benchmark scripts: machine description and BENCHMARKS.md sections."""
from __future__ import annotations

import os
import platform
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HEADER = "# Benchmarks\n\nMeasured figures, each with the command that produced it.\n\n"


def machine() -> str:
    """'2 cores (AMD EPYC ...), no GPU' or the GPU's name."""
    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    gpu = "no GPU"
    try:
        import torch

        if torch.cuda.is_available():
            gpu = torch.cuda.get_device_name(0)
    except ImportError:
        pass
    return f"{os.cpu_count()} cores ({cpu}), {gpu}"


def write_section(title: str, text: str) -> None:
    """Replace (or append) the section ``## title`` of BENCHMARKS.md with ``text`` (which starts with it)."""
    path = ROOT / "BENCHMARKS.md"
    old = path.read_text() if path.exists() else HEADER
    pattern = rf"## {re.escape(title)}\n.*?(?=\n## |\Z)"
    body = text.rstrip("\n") + "\n"
    new = re.sub(pattern, lambda _: body, old, flags=re.S) if f"## {title}\n" in old else old.rstrip("\n") + "\n\n" + body
    path.write_text(new)
