"""``styleavatar doctor``: what this machine is and what to expect on it (paste it into a bug report).

Reports the CPU and the flags that matter, PyTorch's build, threads and kernel level, CUDA devices, the
OpenGL rasteriser, the perceptual weights, ONNX Runtime's providers, and a measured estimate of the
training speed of the ``small`` and ``cpu`` presets with the minutes to a usable avatar.
"""
from __future__ import annotations

import importlib.metadata
import platform
import sys
from dataclasses import dataclass, field

import torch

from . import __version__
from .runtime import cpu_info, cuda_bf16_native


@dataclass
class DoctorReport:
    lines: list[tuple[str, str]] = field(default_factory=list)
    estimates: list = field(default_factory=list)
    """:class:`~styleavatar.training.speed.SpeedEstimate` per measured preset."""

    def add(self, key: str, value: str) -> None:
        self.lines.append((key, value))

    def describe(self) -> str:
        width = max(len(k) for k, _ in self.lines)
        return "\n".join(f"{k.ljust(width)}  {v}" for k, v in self.lines)


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _cuda() -> str:
    if not torch.cuda.is_available():
        return "none" + (" (this PyTorch is a CPU build)" if torch.version.cuda is None else "")
    names = []
    for i in range(torch.cuda.device_count()):
        bf16 = "bf16" if cuda_bf16_native(i) else "no native bf16: fp16"
        names.append(f"{i}: {torch.cuda.get_device_name(i)} ({bf16})")
    return "; ".join(names) + f"; CUDA {torch.version.cuda}"


def _rasteriser() -> str:
    from .rendering.gl import gl_description, gl_unavailable_reason

    reason = gl_unavailable_reason()
    if reason is not None:
        return f"OpenGL unavailable ({reason}): the PyTorch rasteriser is used (slower)"
    return gl_description()


def _face_models() -> str:
    from .tracking.model_files import MODELS, model_path

    missing = [n for n in MODELS if not model_path(n).exists()]
    if missing:
        return f"missing {', '.join(missing)}: run `styleavatar fetch-weights`"
    fast = all(model_path(n, ".onnx").exists() for n in MODELS) and _version("onnxruntime") != "not installed"
    return f"in {model_path(next(iter(MODELS))).parent}, run with {'onnxruntime' if fast else 'PyTorch'}"


def _weights() -> str:
    from .io.weights import weights_path

    paths = [weights_path(n) for n in ("vgg16", "alexnet")]
    missing = [p.name for p in paths if not p.exists()]
    return f"missing {', '.join(missing)}: run `styleavatar fetch-weights`" if missing else \
        f"in {paths[0].parent}"


def _onnxruntime() -> str:
    try:
        import onnxruntime
    except ImportError:
        return "not installed"
    from .io.onnx import missing_gpu_provider

    offered = onnxruntime.get_available_providers()
    why = missing_gpu_provider(torch.cuda.is_available(), offered)
    return f"{onnxruntime.__version__}: {', '.join(offered)}" + (f" (warning: {why})" if why else "")


def doctor(presets: tuple[str, ...] = ("small", "cpu"), measure: bool = True, log=print) -> DoctorReport:
    """Describe this machine; with ``measure``, time each preset's training for a few seconds."""
    from .config import MODEL_PRESETS, TRAIN_PRESETS

    info = cpu_info()
    r = DoctorReport()
    r.add("styleavatar", f"{__version__} on Python {platform.python_version()} ({sys.executable})")
    r.add("system", f"{platform.system()} {platform.release()} {platform.machine()}")
    r.add("cpu", f"{info.model}, {info.cores} usable cores")
    r.add("cpu flags", " ".join(info.flags_that_matter()) or "none of avx2/avx512/bf16/amx/neon")
    r.add("bf16", "native: training may use it where the probe finds it faster" if info.native_bf16
          else f"not native ({info.bf16_missing()}): fp32")
    r.add("torch", f"{torch.__version__}, kernels {info.torch_capability}, {torch.get_num_threads()} threads, "
                   f"oneDNN bf16 {'yes' if info.onednn_bf16 else 'no'}")
    r.add("cuda", _cuda())
    r.add("rasteriser", _rasteriser())
    r.add("perceptual weights", _weights())
    r.add("onnxruntime", _onnxruntime())
    r.add("face models", _face_models())
    if measure:
        from .training.speed import estimate_speed

        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        for name in presets:
            log(f"measuring the {name} preset (about 10 s)...")
            est = estimate_speed(name, MODEL_PRESETS[name], TRAIN_PRESETS[name], device)
            r.estimates.append(est)
            r.add(f"train {name}", est.describe())
            r.add("", f"  {est.runtime.reason}")
        slow = [e for e in r.estimates if e.minutes_to_usable > 60]
        if slow:
            r.add("note", f"the {slow[0].preset} preset needs over an hour here; train it with --minutes "
                          f"{slow[0].minutes_to_usable:.0f} or more, or use the small preset / a GPU")
    return r
