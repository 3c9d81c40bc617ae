"""How to run the networks fast and right on this machine: chosen by capability and a short measurement.

Nothing here assumes a CPU class. bf16 autocast is a candidate only where the processor has native
bf16 (``avx512_bf16`` or ``amx_bf16`` on x86, ``bf16`` on Arm) *and* PyTorch's kernels may use it (its
vector capability is not restricted below AVX-512 and oneDNN reports bf16 support): without native
bf16 some kernels emulate it and a training step runs up to ~100x slower. Among the remaining
candidates (precision x memory layout) a few timed steps of the real network pick the fastest
(:func:`choose`); bf16 must beat fp32 by :data:`BF16_MARGIN` to be chosen, since it also costs accuracy.

``ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2`` in the environment makes an AVX-512 machine behave
like the AVX2-only class (most laptops); :func:`cpu_info` sees the restriction through PyTorch.
"""
from __future__ import annotations

import contextlib
import math
import os
import platform
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path

import torch

BF16_MARGIN = 0.10
"""bf16 is chosen only when its measured step is at least this fraction faster than the best fp32 one."""
LAYOUT_MARGIN = 0.03
"""channels_last is chosen only when it is at least this fraction faster than the contiguous layout."""
FLAGS_THAT_MATTER = ("avx2", "fma", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile", "avx512_fp16", "neon",
                     "asimd", "bf16", "sve")
"""CPU flags reported by ``doctor`` and written beside benchmark figures."""
_NATIVE_BF16_FLAGS = ("avx512_bf16", "amx_bf16", "bf16")


@dataclass(frozen=True)
class CpuInfo:
    """What the processor offers and what PyTorch may use of it."""

    model: str
    """Processor model name (from /proc/cpuinfo, else the platform)."""
    flags: tuple[str, ...]
    """The processor's feature flags (x86 ``flags`` / Arm ``Features``), sorted."""
    torch_capability: str
    """PyTorch's vectorised-kernel level: 'AVX512', 'AVX2', 'DEFAULT', ... (lowered by ATEN_CPU_CAPABILITY)."""
    onednn_bf16: bool
    """oneDNN reports bf16 support (False when ONEDNN_MAX_CPU_ISA or the hardware rules it out)."""
    cores: int
    """Cores this process may run on (affinity and cgroup quota applied)."""

    @property
    def native_bf16(self) -> bool:
        """bf16 arithmetic in hardware, usable by PyTorch's kernels (no emulation)."""
        return not self.bf16_missing()

    def bf16_missing(self) -> str:
        """Why bf16 is not native here ('' when it is)."""
        if not any(f in self.flags for f in _NATIVE_BF16_FLAGS):
            return "the CPU has no native bf16 (no avx512_bf16 / amx_bf16 / bf16 flag)"
        if platform.machine().lower() in ("x86_64", "amd64") and self.torch_capability != "AVX512":
            return f"PyTorch's kernels are limited to {self.torch_capability}"
        if not self.onednn_bf16:
            return "oneDNN reports no bf16 support"
        return ""

    def flags_that_matter(self) -> list[str]:
        return [f for f in FLAGS_THAT_MATTER if f in self.flags]

    def describe(self) -> str:
        """One line: 'Intel(R) Xeon(R) ... (2 cores; avx2 fma avx512f ...; torch AVX512; bf16 native)'."""
        bf16 = "bf16 native" if self.native_bf16 else f"no native bf16: {self.bf16_missing()}"
        return (f"{self.model} ({self.cores} cores; {' '.join(self.flags_that_matter()) or 'no vector flags'}; "
                f"torch {self.torch_capability}; {bf16})")


def _cgroup_cores() -> float | None:
    """CPU quota of this container in cores (cgroup v2 cpu.max), None when unlimited or unknown."""
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        return None


def usable_cores() -> int:
    """Cores this process may use: CPU affinity, capped by a container's CPU quota."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        cores = os.cpu_count() or 1
    quota = _cgroup_cores()
    return max(1, min(cores, int(quota)) if quota else cores)


def _cpuinfo() -> tuple[str, tuple[str, ...]]:
    model, flags = platform.processor() or platform.machine(), set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            key = key.strip().lower()
            if key in ("model name", "hardware", "cpu model") and model in ("", platform.machine()):
                model = value.strip()
            elif key in ("flags", "features") and not flags:
                flags = set(value.split())
    except OSError:
        pass
    return model, tuple(sorted(flags))


@lru_cache(maxsize=1)
def cpu_info() -> CpuInfo:
    model, flags = _cpuinfo()
    try:
        onednn = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        onednn = False
    return CpuInfo(model, flags, torch.backends.cpu.get_cpu_capability(), onednn, usable_cores())


@dataclass(frozen=True)
class Runtime:
    """How a network runs: precision, memory layout, threads, and why (what was measured)."""

    device: str
    """'cpu' or a CUDA device."""
    precision: str
    """'fp32', 'bf16' or 'fp16' (the autocast dtype; fp32 = no autocast)."""
    channels_last: bool
    """Activations and weights in the channels_last memory format."""
    threads: int
    """PyTorch intra-op threads."""
    reason: str
    """Why: the capability that ruled candidates out and the measured step times."""
    step_ms: dict[str, float] = field(default_factory=dict)
    """Measured step time per candidate ('fp32', 'fp32+channels_last', ...), best of the timed rounds."""

    @property
    def dtype(self) -> torch.dtype | None:
        """The autocast dtype, None for fp32."""
        return {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[self.precision]

    @property
    def memory_format(self) -> torch.memory_format:
        return torch.channels_last if self.channels_last else torch.contiguous_format

    def apply_layout(self, *modules: torch.nn.Module | None) -> None:
        """Put each module's weights (None: skipped) in this runtime's memory layout."""
        for module in modules:
            if module is not None:
                module.to(memory_format=self.memory_format)

    def autocast(self) -> contextlib.AbstractContextManager:
        """Context in which the network's forward runs at this precision."""
        kind = torch.device(self.device).type
        return torch.autocast(kind, dtype=self.dtype or torch.float32, enabled=self.dtype is not None)

    def label(self) -> str:
        """Short form for progress bars: 'fp32', 'bf16+cl'."""
        return self.precision + ("+cl" if self.channels_last else "")

    def describe(self) -> str:
        layout = "channels_last" if self.channels_last else "contiguous"
        return f"{self.precision}, {layout}, {self.threads} threads on {self.device}: {self.reason}"

    def to_dict(self) -> dict:
        return asdict(self)


def candidate_name(precision: str, channels_last: bool) -> str:
    return precision + ("+channels_last" if channels_last else "")


def candidates(device: torch.device, precision: str = "auto",
               channels_last: bool | None = None) -> tuple[list[tuple[str, bool]], str]:
    """(precision, channels_last) pairs worth measuring on ``device``, and what ruled others out.

    ``precision``: 'auto' or a fixed one; ``channels_last``: None (measure both) or fixed.
    """
    layouts = [False, True] if channels_last is None else [channels_last]
    if precision != "auto":
        why = f"{precision} as requested"
        if device.type == "cpu" and precision == "bf16" and not cpu_info().native_bf16:
            why += f" although {cpu_info().bf16_missing()}: emulated, expect it far slower than fp32"
        return [(precision, cl) for cl in layouts], why
    if device.type == "cuda":
        native = cuda_bf16_native(device)
        half = "bf16" if native else "fp16"
        return [(half, cl) for cl in ([True] if channels_last is None else layouts)], \
            f"{half} on {torch.cuda.get_device_name(device)}" + ("" if native else " (no native bf16)")
    info = cpu_info()
    if not info.native_bf16:
        return [("fp32", cl) for cl in layouts], f"fp32 because {info.bf16_missing()}"
    return [(p, cl) for p in ("fp32", "bf16") for cl in layouts], "bf16 is native here"


def cuda_bf16_native(device: torch.device | int) -> bool:
    """bf16 in the GPU's hardware: compute capability 8.0 (Ampere) or newer. ``torch.cuda.is_bf16_supported()``
    also counts emulation (older GPUs run bf16 through fp32 at a fraction of the speed) and asks about the
    current device only."""
    return torch.cuda.get_device_capability(device) >= (8, 0)


def time_ms(step: Callable[[], None]) -> float:
    """Wall-clock milliseconds of one call of ``step``."""
    t0 = time.perf_counter()
    step()
    return 1000 * (time.perf_counter() - t0)


def choose(device: torch.device, make_step: Callable[[str, bool], Callable[[], None]], precision: str = "auto",
           channels_last: bool | None = None, budget_s: float = 20.0, rounds: int = 2,
           threads: int | None = None) -> Runtime:
    """Measure each candidate's step and return the fastest acceptable one.

    ``make_step(precision, channels_last)`` prepares the network for that setting (layout) and returns a
    function running one representative step (forward + backward for training, a forward for inference).
    Each candidate runs once to warm up, then ``rounds`` times interleaved with the others (so a slow
    moment of a shared machine hits them alike); its figure is the best timed run. Fewer rounds when a
    warm-up step already shows that the probe would exceed ``budget_s``.
    """
    threads = set_threads(threads) if device.type == "cpu" else torch.get_num_threads()
    pairs, why = candidates(device, precision, channels_last)
    if len(pairs) == 1:
        p, cl = pairs[0]
        return Runtime(str(device), p, cl, threads, why + " (nothing to measure)")
    steps = {candidate_name(p, cl): make_step(p, cl) for p, cl in pairs}
    warm = {name: time_ms(step) for name, step in steps.items()}
    rounds = max(1, min(rounds, int(budget_s * 1000 / max(1e-3, sum(warm.values()))) - 1))
    best = dict.fromkeys(steps, math.inf)
    for _ in range(rounds):
        for name, step in steps.items():
            best[name] = min(best[name], time_ms(step))
    p, cl = _pick(pairs, best)
    figures = ", ".join(f"{n} {ms:.0f} ms" for n, ms in best.items())
    return Runtime(str(device), p, cl, threads, f"{why}; measured per step: {figures}",
                   {n: round(ms, 2) for n, ms in best.items()})


def _pick(pairs: list[tuple[str, bool]], best: dict[str, float]) -> tuple[str, bool]:
    """Fastest fp32 layout (channels_last only by LAYOUT_MARGIN), then bf16 only if BF16_MARGIN faster."""
    def layout(prec: str) -> tuple[str, bool]:
        options = [cl for p, cl in pairs if p == prec]
        if len(options) == 1:
            return prec, options[0]
        plain, cl = best[candidate_name(prec, False)], best[candidate_name(prec, True)]
        return prec, cl < plain * (1 - LAYOUT_MARGIN)

    precisions = list(dict.fromkeys(p for p, _ in pairs))  # fp32 first
    chosen = layout(precisions[0])
    for prec in precisions[1:]:
        alt = layout(prec)
        if best[candidate_name(*alt)] < best[candidate_name(*chosen)] * (1 - BF16_MARGIN):
            chosen = alt
    return chosen


def pick_device(spec: str | torch.device = "auto") -> torch.device:
    """The device a command's networks run on: the one rule behind every ``--device`` option.

    'auto': the first CUDA device PyTorch sees, else the CPU. 'cpu', 'cuda' or 'cuda:N' as given, refused
    with a one-line reason when PyTorch cannot use it (a CPU-only build, or no such GPU)."""
    from .errors import UserError

    text = str(spec).strip().lower()
    if text == "auto":
        return torch.device("cuda", 0) if torch.cuda.is_available() else torch.device("cpu")
    try:
        device = torch.device(text)
    except RuntimeError:
        raise UserError(f"unknown device {spec!r}: use auto, cpu, cuda or cuda:N") from None
    if device.type == "cpu":
        return device
    if device.type != "cuda":
        raise UserError(f"device {spec!r} is not supported: use auto, cpu, cuda or cuda:N")
    if not torch.cuda.is_available():
        build = f"CUDA {torch.version.cuda}" if torch.version.cuda else "a CPU-only build"
        raise UserError(f"--device {spec}: PyTorch sees no CUDA device (PyTorch {torch.__version__}, {build})")
    index = 0 if device.index is None else device.index
    if index >= torch.cuda.device_count():
        raise UserError(f"--device {spec}: PyTorch sees {torch.cuda.device_count()} CUDA device(s), "
                        f"numbered from 0")
    return torch.device("cuda", index)


def device_name(device: torch.device) -> str:
    """'cpu (Intel(R) Xeon(R) ...)' or 'cuda:0 (NVIDIA H200)'."""
    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    return f"cpu ({cpu_info().model})"


def tune_for(device: torch.device) -> None:
    """Backend switches for a device, set once per process: cuDNN picks the fastest convolution algorithm for
    each shape (the networks' shapes are fixed, so the search pays for itself after a few steps)."""
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True


def set_threads(threads: int | None = None) -> int:
    """Use ``threads`` intra-op threads (None: every usable core, see :func:`usable_cores`); returns the count."""
    n = threads or usable_cores()
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    return n
