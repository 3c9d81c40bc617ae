"""ONNX Runtime sessions: the one place that imports onnxruntime and picks its execution providers.

On a GPU: TensorRT (its engines cached on disk, one optimisation profile for batches 1..``MAX_BATCH``), then
CUDA, then the CPU. ``exact=True`` (export's parity check) leaves TensorRT out and turns the CUDA provider's
TF32 off, so the comparison with PyTorch in fp32 measures the exported graph, not TF32 rounding.
"""
from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from ..errors import UserError

GPU_FIRST = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")
"""Providers tried in this order by default: TensorRT, then CUDA, then the CPU."""
CPU_ONLY = ("CPUExecutionProvider",)
MAX_BATCH = 8
"""Largest batch of TensorRT's optimisation profile (an engine is built for batches 1..MAX_BATCH)."""
TENSORRT_CACHE = Path("~/.cache/styleavatar/tensorrt")
"""Where TensorRT's engines and timing cache are kept, so a process does not rebuild them (minutes)."""


def available() -> bool:
    """Whether onnxruntime can be imported."""
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def _ort():
    try:
        import onnxruntime as ort
    except ImportError:
        raise UserError("onnxruntime is not installed: pip install onnxruntime (or onnxruntime-gpu)") from None
    return ort


def providers_for(device_type: str) -> tuple[str, ...]:
    """The providers to try for networks on a PyTorch device of this type ('cuda': the GPU's, else the CPU's)."""
    return GPU_FIRST if device_type == "cuda" else CPU_ONLY


def provider_list(offered: Sequence[str], wanted: Sequence[str] = GPU_FIRST, device_id: int = 0,
                  inputs: dict[str, tuple[int, ...]] | None = None, fp16: bool = False,
                  exact: bool = False) -> list[str | tuple[str, dict]]:
    """The providers (with their options) to ask a session for: those of ``wanted`` that ``offered`` holds.

    inputs: each input's shape without the batch, e.g. {"render": (3, 96, 96)}, for TensorRT's profile
    (without it TensorRT rebuilds its engine for every new batch size)."""
    out: list[str | tuple[str, dict]] = []
    for name in wanted:
        if name not in offered or (exact and name == "TensorrtExecutionProvider"):
            continue
        if name == "TensorrtExecutionProvider":
            cache = str(TENSORRT_CACHE.expanduser())
            opts = {"device_id": device_id, "trt_engine_cache_enable": True, "trt_engine_cache_path": cache,
                    "trt_timing_cache_enable": True, "trt_timing_cache_path": cache, "trt_fp16_enable": fp16}
            if inputs:
                def shapes(batch: int) -> str:
                    return ",".join(f"{k}:{'x'.join(map(str, (batch, *v)))}" for k, v in inputs.items())
                opts.update(trt_profile_min_shapes=shapes(1), trt_profile_opt_shapes=shapes(1),
                            trt_profile_max_shapes=shapes(MAX_BATCH))
            out.append((name, opts))
        elif name == "CUDAExecutionProvider":
            out.append((name, {"device_id": device_id, "use_tf32": 0 if exact else 1}))
        else:
            out.append(name)
    if not out:
        raise UserError(f"none of the ONNX Runtime providers {', '.join(wanted)} is offered here "
                        f"(this build offers {', '.join(offered)})")
    return out


def missing_gpu_provider(cuda_seen: bool, offered: Sequence[str]) -> str | None:
    """Why ONNX Runtime will run on the CPU although PyTorch sees a GPU (None when it will not)."""
    if not cuda_seen or "CUDAExecutionProvider" in offered:
        return None
    return ("PyTorch sees a CUDA GPU but this onnxruntime offers only " + ", ".join(offered) + ": the ONNX "
            "network runs on the CPU. onnxruntime and onnxruntime-gpu share one folder, so installing the "
            "project again can replace the GPU build; fix with `pip uninstall -y onnxruntime onnxruntime-gpu && "
            "pip install onnxruntime-gpu`")


def session(path: str | Path, providers: Sequence[str] = GPU_FIRST, threads: int = 0, device_id: int = 0,
            inputs: dict[str, tuple[int, ...]] | None = None, fp16: bool = False, exact: bool = False):
    """An ``onnxruntime.InferenceSession`` for ``path`` on the first of ``providers`` this build offers.

    threads: intra-op threads (0: onnxruntime's default, one per core); device_id, inputs, fp16, exact: see
    :func:`provider_list`. ``session.get_providers()`` says which providers it really uses."""
    ort = _ort()
    offered = ort.get_available_providers()
    if any(p != "CPUExecutionProvider" for p in providers):
        import torch

        why = missing_gpu_provider(torch.cuda.is_available(), offered)
        if why:
            print(f"warning: {why}", file=sys.stderr)
        if "TensorrtExecutionProvider" in offered and not exact:
            TENSORRT_CACHE.expanduser().mkdir(parents=True, exist_ok=True)
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.intra_op_num_threads = threads
    opts.log_severity_level = 3  # errors only: onnxruntime's warnings are about its own graph rewrites
    return ort.InferenceSession(str(path), opts, providers=provider_list(offered, providers, device_id, inputs,
                                                                          fp16, exact))


def describe(sess) -> str:
    """'ONNX Runtime 1.x on CUDAExecutionProvider (then CPUExecutionProvider)': what a session really uses."""
    used = sess.get_providers()
    rest = f" (then {', '.join(used[1:])})" if len(used) > 1 else ""
    return f"ONNX Runtime {_ort().__version__} on {used[0]}{rest}"


def run_bound(sess, inputs: dict, outputs: dict[str, tuple[int, ...]]) -> dict:
    """Run ``sess`` on float32 torch tensors where they lie (CPU or a CUDA device), writing its outputs into
    new float32 tensors of the given shapes on the same device: no copies through host memory on a GPU.

    inputs: name -> tensor; outputs: name -> shape. Returns name -> tensor."""
    import numpy as np
    import torch

    first = next(iter(inputs.values()))
    kind, index = first.device.type, first.device.index or 0
    binding = sess.io_binding()
    bound = {name: tensor.float().contiguous() for name, tensor in inputs.items()}  # alive until the run ends
    for name, tensor in bound.items():
        binding.bind_input(name, kind, index, np.float32, tuple(tensor.shape), tensor.data_ptr())
    result = {name: torch.empty(shape, dtype=torch.float32, device=first.device) for name, shape in outputs.items()}
    for name, tensor in result.items():
        binding.bind_output(name, kind, index, np.float32, tuple(tensor.shape), tensor.data_ptr())
    sess.run_with_iobinding(binding)
    return result
