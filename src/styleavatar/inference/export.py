"""``styleavatar export``: the per-frame network as an ONNX model, checked against PyTorch.

The exported graph is the trained :class:`~styleavatar.models.avatar.AvatarNet` itself (its
``synthesize``), wrapped with the cached feature maps and the inference latent as constants: no
second copy of the model code. Inputs: render (B, 3, R, R) in [-1, 1], uv (B, 3, R, R) in [0, 1];
outputs: image (B, 3, out, out) in about [-1, 1], mask (B, 1, out, out) in [0, 1].
"""
from __future__ import annotations

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
from ..io.onnx import session
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

    def describe(self) -> str:
        return (f"wrote {self.output}: checked on {self.frames_checked} real renders, max |onnx - torch| = "
                f"{self.max_abs_diff:.2e}; forward {self.torch_ms:.1f} ms (torch) vs {self.onnx_ms:.1f} ms "
                f"(onnxruntime, {self.providers[0]})")


def _check_inputs(avatar: Avatar, count: int) -> tuple[np.ndarray, np.ndarray]:
    """Renders of the avatar's own training frames, spread over its video: (count, 3, R, R) each."""
    idx = np.linspace(0, len(avatar.params) - 1, count).round().astype(int)
    render, uv = avatar.inputs(avatar.params.select(idx))
    return render.cpu().numpy(), uv.cpu().numpy()


def _median_ms(fn, repeats: int = 5) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1000 * float(np.median(times))


def export_onnx(run: str | Path, output: str | Path, identity: int = 0, fp16: bool = False,
                check_frames: int = 4) -> ExportSummary:
    """Export RUN's per-frame network to ``output`` and check it in onnxruntime on real renders."""
    avatar = Avatar.load(run, identity, precision="fp32", channels_last=False)  # the plain network
    module = FrameNetwork(avatar.net, identity, half=fp16)
    if fp16:
        module = module.half()
    render, uv = _check_inputs(avatar, check_frames)
    example = (torch.from_numpy(render[:1]), torch.from_numpy(uv[:1]))
    output = Path(output)
    with atomic_file(output, suffix=".onnx") as tmp:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tracer notes on static shapes (intended: sides are constants)
            torch.onnx.export(module, example, str(tmp), input_names=["render", "uv"], output_names=["image", "mask"],
                              dynamic_axes={n: {0: "batch"} for n in ("render", "uv", "image", "mask")},
                              opset_version=OPSET, dynamo=False)
        sess = session(tmp)
        got = sess.run(["image"], {"render": render, "uv": uv})[0]
        with torch.no_grad():
            ref = module(torch.from_numpy(render), torch.from_numpy(uv))[0].numpy()
        diff = float(np.abs(got - ref).max())
        limit = 5e-2 if fp16 else 1e-3
        if diff >= limit:
            raise UserError(f"exported model differs from PyTorch by {diff:.2e} (limit {limit:g}); not written")
        one = {"render": render[:1], "uv": uv[:1]}
        with torch.no_grad():
            torch_ms = _median_ms(lambda: module(*example))
        onnx_ms = _median_ms(lambda: sess.run(None, one))
    output.with_name(output.name + ".json").write_text(json.dumps({
        "format": "styleavatar-onnx", "run": str(Path(run).resolve()), "identity": identity, "fp16": fp16,
        "opset": OPSET, "render_size": avatar.cfg.render_size, "output_size": avatar.cfg.output_size,
        "max_abs_diff": diff}, indent=2) + "\n")
    return ExportSummary(output, diff, len(render), torch_ms, onnx_ms, sess.get_providers())
