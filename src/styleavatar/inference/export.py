"""``styleavatar export``: the per-frame network as an ONNX model, checked against PyTorch.

The exported graph is the trained :class:`~styleavatar.models.avatar.AvatarNet` itself (its
``synthesize``), wrapped with the cached feature maps and the inference latent as constants: no
second copy of the model code. Inputs: render (B, 3, R, R) in [-1, 1], uv (B, 3, R, R) in [0, 1];
outputs: image (B, 3, out, out) in about [-1, 1], mask (B, 1, out, out) in [0, 1].
"""
from __future__ import annotations

import contextlib
import json
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..errors import UserError
from ..io.atomic import atomic_file
from ..io import onnx
from ..models.avatar import AvatarNet
from .avatar import Avatar

OPSET = 17


class FrameNetwork(nn.Module):
    """What runs per frame: AvatarNet.synthesize with one identity's cached maps and latent baked in."""

    def __init__(self, net: AvatarNet, identity: int = 0, half: bool = False) -> None:
        super().__init__()
        self.net = net.eval()
        with torch.no_grad():
            w, _ = net.inference_styles(identity)
        self.register_buffer("w", w)
        self.map_names = []
        for name, value in net.cached_maps(identity).items():
            self.register_buffer(name, value.detach().clone())
            self.map_names.append(name)
        self.half_precision = half

    def forward(self, render: torch.Tensor, uv: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        dtype = torch.float16 if self.half_precision else torch.float32
        b = render.shape[0]
        maps = {name: getattr(self, name).to(dtype) for name in self.map_names}
        image, mask = self.net.synthesize(render.to(dtype), uv.to(dtype), self.w.to(dtype).expand(b, -1), **maps)
        return image.float(), mask.float()


@dataclass
class ExportSummary:
    output: Path
    max_abs_diff: float
    frames_checked: int
    torch_ms: float
    onnx_ms: float
    providers: list[str]
    device: str
    """Where PyTorch ran (and ONNX Runtime's check): 'cpu' or 'cuda:N'."""

    def describe(self) -> str:
        return (f"wrote {self.output}: checked on {self.frames_checked} real renders, max |onnx - torch| = "
                f"{self.max_abs_diff:.2e}; forward {self.torch_ms:.1f} ms (torch on {self.device}) vs "
                f"{self.onnx_ms:.1f} ms "
                f"(onnxruntime, {self.providers[0]})")


def _check_inputs(avatar: Avatar, count: int) -> tuple[np.ndarray, np.ndarray]:
    """Renders of the avatar's own training frames, spread over its video: (count, 3, R, R) each."""
    idx = np.linspace(0, len(avatar.params) - 1, count).round().astype(int)
    render, uv = avatar.inputs(avatar.params.select(idx))
    return render.cpu().numpy(), uv.cpu().numpy()


def _median_ms(fn, repeats: int = 5, synchronize: bool = False) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        if synchronize:
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return 1000 * float(np.median(times))


@contextlib.contextmanager
def _no_tf32():
    """PyTorch's CUDA matmuls and convolutions in full fp32 (no TF32) inside: the parity reference."""
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def export_onnx(run: str | Path, output: str | Path, identity: int = 0, fp16: bool = False,
                check_frames: int = 4, device: str = "auto") -> ExportSummary:
    """Export RUN's per-frame network to ``output`` and check it in onnxruntime on real renders.

    The check compares ONNX Runtime and PyTorch on the same device (the CPU, or the GPU with the CUDA provider
    and TF32 off on both sides), so it measures the exported graph; the timing then uses the fastest provider
    (TensorRT when present)."""
    avatar = Avatar.load(run, identity, device, precision="fp32", channels_last=False)  # the plain network
    module = FrameNetwork(avatar.net, identity, half=fp16)
    if fp16:
        module = module.half()
    render, uv = _check_inputs(avatar, check_frames)
    dev = avatar.device
    example = (torch.from_numpy(render[:1]).to(dev), torch.from_numpy(uv[:1]).to(dev))
    side = tuple(render.shape[1:])
    kind = onnx.providers_for(dev.type)
    output = Path(output)
    with atomic_file(output, suffix=".onnx") as tmp:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tracer notes on static shapes (intended: sides are constants)
            torch.onnx.export(module, example, str(tmp), input_names=["render", "uv"], output_names=["image", "mask"],
                              dynamic_axes={n: {0: "batch"} for n in ("render", "uv", "image", "mask")},
                              opset_version=OPSET, dynamo=False)
        exact = onnx.session(tmp, kind, device_id=dev.index or 0, exact=True)
        got = exact.run(["image"], {"render": render, "uv": uv})[0]
        with torch.no_grad(), _no_tf32():
            ref = module(torch.from_numpy(render).to(dev), torch.from_numpy(uv).to(dev))[0].cpu().numpy()
        diff = float(np.abs(got - ref).max())
        limit = 5e-2 if fp16 else 1e-3
        if diff >= limit:
            raise UserError(f"exported model differs from PyTorch by {diff:.2e} (limit {limit:g}); not written")
        sess = exact if dev.type == "cpu" else onnx.session(tmp, kind, device_id=dev.index or 0,
                                                            inputs={"render": side, "uv": side}, fp16=fp16)
        one = {"render": example[0], "uv": example[1]}
        out = avatar.cfg.output_size
        shapes = {"image": (1, 3, out, out), "mask": (1, 1, out, out)}
        with torch.no_grad():
            torch_ms = _median_ms(lambda: module(*example), synchronize=dev.type == "cuda")
        onnx.run_bound(sess, one, shapes)  # warm-up (TensorRT builds or loads its engine here)
        onnx_ms = _median_ms(lambda: onnx.run_bound(sess, one, shapes), synchronize=dev.type == "cuda")
    output.with_name(output.name + ".json").write_text(json.dumps({
        "format": "styleavatar-onnx", "run": str(Path(run).resolve()), "identity": identity, "fp16": fp16,
        "opset": OPSET, "render_size": avatar.cfg.render_size, "output_size": avatar.cfg.output_size,
        "max_abs_diff": diff}, indent=2) + "\n")
    return ExportSummary(output, diff, len(render), torch_ms, onnx_ms, sess.get_providers(), str(dev))
