"""``styleavatar reenact``: drive a trained avatar with another video (or a motion template) into an mp4.

Per frame: the driver's motion is retargeted to the avatar's face model (:mod:`..tracking.retarget`), rendered,
and run through the per-frame network; rendering runs in a background thread so it overlaps the network.
Options: side-by-side (driver | avatar) and paste-back into the avatar's own full-resolution video.
"""
from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from tqdm import tqdm

from ..config import ReenactOptions
from ..errors import UserError
from ..io.prefetch import prefetch
from ..io.video import VideoWriter, probe, read_frames
from ..tracking.fit import FrameParams
from ..tracking.retarget import retarget
from .avatar import Avatar
from .motion import DriverMotion, load_motion


@dataclass
class ReenactSummary:
    output: Path
    frames: int
    seconds: float
    fps: float
    audio: bool
    network: str = ""
    """How the network ran: 'onnx' or the PyTorch runtime's label ('fp32', 'bf16+cl')."""
    motion: DriverMotion | None = None
    """The driver's tracked motion."""
    params: FrameParams | None = None
    """The avatar's retargeted per-frame parameters (what was rendered)."""
    marked: str = ""
    """What the video carries to say that it is synthetic (:meth:`Mark.describe`)."""

    def describe(self) -> str:
        return (f"wrote {self.output}: {self.frames} frames at {self.fps:g} fps{' with audio' if self.audio else ''}, "
                f"{self.seconds:.1f} s ({self.frames / max(self.seconds, 1e-9):.1f} frames/s, {self.network})"
                + (f"; {self.marked}" if self.marked else ""))


def feather_mask(side: int, width: float) -> np.ndarray:
    """(side, side) float32 weights: 1 inside, falling smoothly (cosine) to 0 over ``width`` px at the border."""
    d = np.minimum(np.arange(side), np.arange(side)[::-1]).astype(np.float32) + 0.5
    ramp = np.clip(d / max(width, 1e-6), 0, 1)
    ramp = 0.5 - 0.5 * np.cos(np.pi * ramp)
    return np.minimum(ramp[:, None], ramp[None, :])


def window_box(avatar: Avatar) -> tuple[float, float, float]:
    """The output window in the avatar's source pixels: (x0, y0, side)."""
    crop = avatar.meta["crop_box"]
    frac = avatar.cfg.output_size / avatar.cfg.crop_size
    side = crop["side"] * frac
    return crop["x0"] + (crop["side"] - side) / 2, crop["y0"] + (crop["side"] - side) / 2, side


def paste_back(frame: np.ndarray, image: np.ndarray, box: tuple[float, float, float], feather: float = 0.06
               ) -> np.ndarray:
    """Blend ``image`` (out, out, 3) into ``frame`` (H, W, 3) at ``box`` with a feathered square border."""
    x0, y0, side = box
    n = int(round(side))
    ix, iy = int(round(x0)), int(round(y0))
    patch = cv2.resize(image, (n, n), interpolation=cv2.INTER_CUBIC if n > image.shape[0] else cv2.INTER_AREA)
    weight = feather_mask(n, feather * n)
    # Clip the window to the frame (a crop box near the border may stick out).
    fx0, fy0 = max(ix, 0), max(iy, 0)
    fx1, fy1 = min(ix + n, frame.shape[1]), min(iy + n, frame.shape[0])
    if fx1 <= fx0 or fy1 <= fy0:
        return frame
    px0, py0 = fx0 - ix, fy0 - iy
    sl = np.s_[py0:py0 + fy1 - fy0, px0:px0 + fx1 - fx0]
    out = frame.copy()
    region = out[fy0:fy1, fx0:fx1].astype(np.float32)
    w = weight[sl][..., None]
    out[fy0:fy1, fx0:fx1] = np.clip(region * (1 - w) + patch[sl].astype(np.float32) * w + 0.5, 0, 255).astype(np.uint8)
    return out


def _source_frames(avatar: Avatar) -> Iterator[np.ndarray]:
    """The avatar's own source video frames, looped (for paste-back)."""
    src = Path(avatar.meta["source"]["path"])
    if not src.exists():
        raise UserError(f"--paste-back needs the avatar's source video, which is no longer at {src}")
    cfg = avatar.meta.get("config", {})
    while True:
        for frame in read_frames(src, cfg.get("fps"), cfg.get("max_frames")):
            yield frame.rgb


def _driver_frames(drive: Path, height: int) -> Iterator[np.ndarray]:
    for frame in read_frames(drive):
        h, w = frame.rgb.shape[:2]
        width = int(round(w * height / h / 2)) * 2
        yield cv2.resize(frame.rgb, (width, height), interpolation=cv2.INTER_AREA)


def _render_stream(avatar: Avatar, params: FrameParams, batch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Batches of network inputs, rendered in order."""
    for start in range(0, len(params), batch):
        pairs = [avatar.renders(params, i) for i in range(start, min(start + batch, len(params)))]
        yield avatar.to_tensors([p[0] for p in pairs], [p[1] for p in pairs])


def avatar_frames(avatar: Avatar, params: FrameParams, batch: int = 4) -> Iterator[np.ndarray]:
    """The avatar's (S, S, 3) uint8 frames for every frame of ``params``, in order (renders are made in a
    background thread while the network runs)."""
    for render, uv in prefetch(_render_stream(avatar, params, batch), depth=2):
        yield from avatar.generate(render, uv)[0]


def reenact(run: str | Path, drive: str | Path, output: str | Path, options: ReenactOptions = ReenactOptions(),
            progress: bool = True, device: str = "auto") -> ReenactSummary:
    """Drive the avatar in ``run`` with ``drive`` (a video or a motion .npz) and write ``output`` (mp4)."""
    start = time.perf_counter()
    run, drive, output = Path(run), Path(drive), Path(output)
    avatar = Avatar.load(run, options.identity, device)
    if options.onnx is not None:
        avatar.use_onnx(options.onnx)
    if progress:
        print(avatar.placement(), file=sys.stderr)
    motion: DriverMotion = load_motion(drive, progress)
    is_video = drive.suffix.lower() != ".npz"
    if options.side_by_side and not is_video:
        raise UserError("--side-by-side needs a driver video (a motion template holds no pixels)")
    params = retarget(motion.shapes(), motion.params, motion.fps, avatar.subject, avatar.motion_range(),
                      options.transfer)
    audio = is_video and probe(drive).audio_codec is not None
    out_size = avatar.cfg.output_size
    drivers = _driver_frames(drive, out_size) if options.side_by_side else None
    sources = _source_frames(avatar) if options.paste_back else None
    box = window_box(avatar) if options.paste_back else None
    bar = tqdm(total=len(params), desc="reenacting", unit="frame", disable=not progress, file=sys.stderr,
               dynamic_ncols=True)
    with VideoWriter(output, motion.fps, crf=options.crf, audio_from=drive if audio else None,
                     audio_duration=len(params) / motion.fps, mark=avatar.mark(options.provenance)) as writer, bar:
        for image in avatar_frames(avatar, params, options.batch):
            frame = paste_back(next(sources), image, box) if sources is not None else image
            if drivers is not None:
                drv = next(drivers, None)
                drv = drv if drv is not None else np.zeros((out_size, out_size, 3), np.uint8)
                scale = frame.shape[0] / drv.shape[0]
                if scale != 1:
                    drv = cv2.resize(drv, (int(round(drv.shape[1] * scale / 2)) * 2, frame.shape[0]))
                frame = np.concatenate([drv, frame], axis=1)
            writer.write(frame)
            bar.update()
    network = "onnx" if options.onnx is not None else avatar.runtime.label()
    return ReenactSummary(output, len(params), time.perf_counter() - start, motion.fps, audio, network, motion,
                          params, writer.mark.describe())
