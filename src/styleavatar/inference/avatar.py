"""A trained avatar, loaded from a run folder, that turns face-model parameters into frames.

What runs per frame: face-model parameters -> render-mesh vertices -> UV and texture renders
(rasterised at the dataset's render size, then resized exactly as in training) -> the per-frame network
(render StyleUNet + image StyleUNet; the static feature maps are cached in the avatar file).
"""
from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..config import ModelConfig, ProvenanceOptions, from_dict
from ..data.dataset import load_face_model, load_params
from ..errors import UserError
from ..io.checkpoint import AVATAR_FORMAT, load_tensors
from ..io.image import to_tensor, to_uint8
from ..io import onnx
from ..io.provenance import Mark
from ..models.avatar import AvatarNet
from ..rendering.rasterize import Rasterizer, make_rasterizer
from ..rendering.render import frame_texture, render_frame, resize_image, resize_uv
from ..runtime import Runtime, choose, device_name, pick_device, tune_for
from ..tracking.fit import FrameParams, Pose, SubjectModel
from ..tracking.retarget import AvatarRange


_RUNTIMES: dict[tuple, Runtime] = {}
"""The runtime chosen for each (model config, device, requested precision, requested layout) so far."""


@dataclass
class Avatar:
    """Network + the subject's face model, training-frame parameters and dataset meta."""

    run: Path
    net: AvatarNet
    cfg: ModelConfig
    identity: int
    subject: SubjectModel
    params: FrameParams
    meta: dict
    rasterizer_kind: str
    w: torch.Tensor
    """(1, style) inference latent of this identity (see ``models.avatar.INFERENCE_FRAME``)."""
    runtime: Runtime
    """Precision, layout and threads of the PyTorch network, chosen by capability and a timed probe."""

    def __post_init__(self) -> None:
        self._local = threading.local()
        self._range: AvatarRange | None = None

    @property
    def rasterizer(self) -> Rasterizer:
        """This thread's rasteriser (an OpenGL context belongs to the thread that made it)."""
        if getattr(self._local, "rasterizer", None) is None:
            self._local.rasterizer = make_rasterizer(self.rasterizer_kind)
        return self._local.rasterizer

    @classmethod
    def load(cls, run: str | Path, identity: int = 0, device: str | torch.device = "auto",
             rasterizer: str = "auto", precision: str = "auto", channels_last: bool | None = None) -> "Avatar":
        """Load the avatar in ``run``; ``device``: see :func:`~styleavatar.runtime.pick_device`;
        ``precision``/``channels_last``: fixed, or chosen here by a probe."""
        run, device = Path(run), pick_device(device)
        tune_for(device)
        if not (run / "avatar.safetensors").exists():
            raise UserError(f"{run} is not a styleavatar run folder (no avatar.safetensors): "
                            "make one with `styleavatar train`")
        tensors, meta = load_tensors(run / "avatar.safetensors", AVATAR_FORMAT)
        subject, ds_meta, subj_dir = load_subject(run, meta, identity)
        cfg = from_dict(ModelConfig, meta["model"])
        net = AvatarNet(cfg, identities=int(meta["identities"]))
        net.load_state_dict(tensors)
        net.eval().requires_grad_(False).to(device)
        params, _ = load_params(subj_dir / "params.safetensors")
        with torch.no_grad():
            w, _ = net.inference_styles(identity)
        key = (cfg, str(device), precision, channels_last)
        if key not in _RUNTIMES:  # one probe per network size in a process: repeated loads draw identical frames
            _RUNTIMES[key] = choose(torch.device(device), _probe(net, w, identity), precision, channels_last,
                                    budget_s=5.0)
        runtime = _RUNTIMES[key]
        runtime.apply_layout(net)
        return cls(run, net, cfg, identity, subject, params, ds_meta, rasterizer, w, runtime)

    @property
    def device(self) -> torch.device:
        return self.w.device

    def motion_range(self) -> AvatarRange:
        """The avatar's rest and the range of expression, openness and pose it saw in its training frames."""
        if self._range is None:
            self._range = AvatarRange.of_training(self.subject, self.params, range(*self.meta["split"]["train"]))
        return self._range

    def reference_pose(self) -> Pose:
        """The avatar's rest pose: median pose over its training frames (where relative driving starts from)."""
        return self.motion_range().rest.pose

    def renders(self, params: FrameParams, i: int) -> tuple[np.ndarray, np.ndarray]:
        """Frame i's texture render (R, R, 3) uint8 and UV render (R, R, 3) float32 at the model's render size."""
        verts = params.select(slice(i, i + 1)).vertices(self.subject)[0]  # only frame i's vertices
        texture = frame_texture(self.subject, params.expression[i])
        uv, tex = render_frame(self.rasterizer, verts, texture, int(self.meta["render_size"]))
        r = self.cfg.render_size
        return resize_image(tex, r), resize_uv(uv, r)

    def inputs(self, params: FrameParams) -> tuple[torch.Tensor, torch.Tensor]:
        """Network inputs (B, 3, R, R) for every frame of ``params`` (see :meth:`renders`)."""
        pairs = [self.renders(params, i) for i in range(len(params))]
        return self.to_tensors([p[0] for p in pairs], [p[1] for p in pairs])

    def to_tensors(self, renders: list[np.ndarray], uvs: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
        """Lists of renders/UVs -> (B, 3, R, R) network inputs (render in [-1, 1], uv in [0, 1])."""
        render = to_tensor(np.stack(renders))
        uv = torch.from_numpy(np.stack(uvs).astype(np.float32)).permute(0, 3, 1, 2)
        return render.to(self.device), uv.to(self.device)

    def mark(self, options: ProvenanceOptions = ProvenanceOptions()) -> Mark:
        """What every video of this avatar's frames carries: the pixel mark with this avatar's id, signed per
        ``options``."""
        return Mark.for_avatar(avatar_id(self.run), options)

    def use_onnx(self, path: str | Path) -> None:
        """Run the per-frame network with onnxruntime from an exported file (see ``styleavatar export``), on
        the avatar's device: the CPU provider for the CPU, else TensorRT or CUDA on the same GPU."""
        path = Path(path)
        if not path.exists():
            raise UserError(f"no ONNX model at {path}: make one with `styleavatar export {self.run} --onnx {path}`")
        side = (3, self.cfg.render_size, self.cfg.render_size)
        sidecar = path.with_name(path.name + ".json")
        fp16 = sidecar.exists() and bool(json.loads(sidecar.read_text()).get("fp16"))
        self.onnx = onnx.session(path, onnx.providers_for(self.device.type), device_id=self.device.index or 0,
                                 inputs={"render": side, "uv": side}, fp16=fp16)

    def placement(self) -> str:
        """One line saying what runs where: the network (PyTorch device and precision, or ONNX Runtime's
        providers) and the rasteriser (OpenGL renderer, or the PyTorch reference)."""
        if getattr(self, "onnx", None) is not None:
            network = onnx.describe(self.onnx)
        else:
            network = f"PyTorch on {device_name(self.device)}, {self.runtime.label()}"
        r = self.rasterizer
        raster = f"gl: {r.description}" if r.name == "gl" else f"{r.name} (reference)"
        return f"network: {network}; rasteriser {raster}"

    @torch.no_grad()
    def synthesize(self, render: torch.Tensor, uv: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, 3, R, R) inputs -> images (B, 3, out, out) float32 in about [-1, 1], masks (B, 1, out, out) in [0, 1]."""
        if getattr(self, "onnx", None) is not None:
            b, out = render.shape[0], self.cfg.output_size
            res = onnx.run_bound(self.onnx, {"render": render, "uv": uv},
                                 {"image": (b, 3, out, out), "mask": (b, 1, out, out)})
            return res["image"], res["mask"]
        b, net, fmt = render.shape[0], self.net, self.runtime.memory_format
        with self.runtime.autocast():
            image, mask = net.synthesize(render.contiguous(memory_format=fmt), uv.contiguous(memory_format=fmt),
                                         self.w.expand(b, -1), **net.cached_maps(self.identity))
        return image.float(), mask.float()

    def generate(self, render: torch.Tensor, uv: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        """(B, 3, R, R) inputs -> images (B, out, out, 3) uint8 and masks (B, out, out) float32 in [0, 1]."""
        image, mask = self.synthesize(render, uv)
        return to_uint8(image), mask[:, 0].cpu().numpy()


def avatar_id(run: str | Path) -> str:
    """sha256 (hex) of the run's ``avatar.safetensors``: which avatar a stream was made for."""
    path = Path(run) / "avatar.safetensors"
    if not path.exists():
        raise UserError(f"{run} is not a styleavatar run folder (no avatar.safetensors)")
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def load_subject(run: Path, meta: dict, identity: int) -> tuple[SubjectModel, dict, Path]:
    """Identity ``identity`` of the run in ``run`` (``meta``: its avatar.json): the face model, the meta of
    its dataset and the folder they are in."""
    if not 0 <= identity < int(meta["identities"]):
        raise UserError(f"{run} has {meta['identities']} identities; --identity {identity} does not exist")
    subj_dir = Path(run) / meta["subjects"][identity]
    return load_face_model(subj_dir), json.loads((subj_dir / "meta.json").read_text()), subj_dir


def _probe(net: AvatarNet, w: torch.Tensor, identity: int):
    """``make_step(precision, channels_last)``: one batch-1 forward of the per-frame network (for choose)."""
    r = net.cfg.render_size
    g = torch.Generator().manual_seed(0)
    dev = w.device
    render, uv = (torch.rand(1, 3, r, r, generator=g).to(dev) * 2 - 1, torch.rand(1, 3, r, r, generator=g).to(dev))
    maps = net.cached_maps(identity)

    def make_step(precision: str, channels_last: bool):
        rt = Runtime(str(dev), precision, channels_last, 0, "")
        x, u = render.contiguous(memory_format=rt.memory_format), uv.contiguous(memory_format=rt.memory_format)

        @torch.no_grad()
        def step() -> None:
            rt.apply_layout(net)
            with rt.autocast():
                net.synthesize(x, u, w, **maps)
        return step
    return make_step
