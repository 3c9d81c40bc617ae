"""ONNX Runtime sessions: the one place that imports onnxruntime and picks its execution providers."""
from __future__ import annotations

from pathlib import Path

from ..errors import UserError

GPU_FIRST = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")
"""Providers tried in this order by default: TensorRT, then CUDA, then the CPU."""


def available() -> bool:
    """Whether onnxruntime can be imported."""
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def session(path: str | Path, providers: tuple[str, ...] = GPU_FIRST, threads: int = 0):
    """An ``onnxruntime.InferenceSession`` for ``path`` on the first of ``providers`` this build offers.

    threads: intra-op threads (0: onnxruntime's default, one per core)."""
    try:
        import onnxruntime as ort
    except ImportError:
        raise UserError("onnxruntime is not installed: pip install onnxruntime (or onnxruntime-gpu)") from None
    offered = ort.get_available_providers()
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.intra_op_num_threads = threads
    opts.log_severity_level = 3  # errors only: onnxruntime's warnings are about its own graph rewrites
    return ort.InferenceSession(str(path), opts, providers=[p for p in providers if p in offered])
