"""``styleavatar distill``: a slimmer per-frame network that imitates a trained avatar (MegaPortraits-style).

The student is the same :class:`~styleavatar.models.avatar.AvatarNet` with narrower layers. It reuses
the teacher's cached face/background feature maps (same feature channels) and learns the two StyleUNets
to reproduce the teacher's output on renders of the avatar's own training frames and of perturbed
poses and expressions (within the range the teacher saw), so it stays faithful under driving. The result
is a run folder like any other: reenact, live, bench and export take it as RUN.
"""
from __future__ import annotations

import dataclasses
import json
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from ..config import ModelConfig, to_dict
from ..data.dataset import Dataset
from ..errors import UserError
from ..evaluation.metrics import psnr
from ..io.checkpoint import AVATAR_FORMAT, VERSION, save_tensors
from ..io.video import prefetch
from ..io.weights import load_weights
from ..models.avatar import AvatarNet
from ..models.perceptual import PerceptualLoss
from ..tracking.fit import FrameParams
from ..tracking.procrustes import euler_degrees, rotation_from_euler
from .avatar import Avatar


@dataclass
class DistillSummary:
    output: Path
    iterations: int
    seconds: float
    teacher_ms: float
    student_ms: float
    student_params: float
    teacher_params: float
    psnr_vs_teacher: float
    psnr_vs_truth: float | None
    teacher_psnr_vs_truth: float | None

    def describe(self) -> str:
        truth = (f"; vs held-out frames {self.psnr_vs_truth:.2f} dB (teacher {self.teacher_psnr_vs_truth:.2f} dB)"
                 if self.psnr_vs_truth is not None else "")
        return (f"wrote {self.output}: student {self.student_params:.2f}M params, {self.student_ms:.1f} ms/frame "
                f"(teacher {self.teacher_params:.2f}M, {self.teacher_ms:.1f} ms) after {self.iterations} iterations "
                f"in {self.seconds / 60:.1f} min; held-out PSNR vs teacher {self.psnr_vs_teacher:.2f} dB{truth}")


def student_config(teacher: ModelConfig, width: int) -> ModelConfig:
    """Narrower layers, same geometry and feature channels (so the teacher's maps can be reused)."""
    return dataclasses.replace(teacher, max_channels=width, channel_base=max(width, teacher.channel_base * width
                                                                             // teacher.max_channels))


def perturb(params: FrameParams, avatar: Avatar, rng: np.random.Generator, strength: float) -> FrameParams:
    """Random pose (yaw/pitch +-15 deg x strength) and expression changes inside the training range."""
    n = len(params)
    euler = euler_degrees(params.rotation) + rng.normal(0, 7.5 * strength, (n, 3)) * [1, 1, 0.5]
    s = avatar.subject
    expr = params.expression + rng.normal(0, 0.5 * strength, params.expression.shape) * s.coeff_rms
    expr = np.clip(expr, s.coeff_min, s.coeff_max)
    trans = params.translation + rng.normal(0, 0.01 * strength, (n, 3)) * [1, 1, 0]
    return FrameParams(params.tracked, params.scale, rotation_from_euler(euler), trans, expr, params.gaze)


def _batches(avatar: Avatar, train_idx: np.ndarray, batch: int, seed: int):
    """Endless (render, uv) batches: half the avatar's own frames, half perturbed."""
    rng = np.random.default_rng(seed)
    while True:
        params = avatar.params.select(rng.choice(train_idx, batch))
        half = batch // 2
        moved = perturb(params.select(slice(half, batch)), avatar, rng, 1.0)
        yield avatar.inputs(FrameParams.concat([params.select(slice(0, half)), moved]))


def _forward_ms(net: AvatarNet, render: torch.Tensor, uv: torch.Tensor, identity: int) -> float:
    w, _ = net.inference_styles(identity)
    times = []
    with torch.no_grad():
        for _ in range(7):
            t0 = time.perf_counter()
            net.synthesize(render[:1], uv[:1], w, net.face_maps[identity:identity + 1],
                           net.background_maps[identity:identity + 1])
            times.append(time.perf_counter() - t0)
    return 1000 * float(np.median(times[2:]))


def _held_out_scores(avatar: Avatar, student: AvatarNet, frames: int = 32) -> tuple[float, float | None, float | None]:
    """PSNR of the student vs the teacher on held-out renders, and of both vs the true frames if available."""
    test = np.arange(*avatar.meta["split"]["test"])
    idx = test[np.linspace(0, len(test) - 1, min(frames, len(test))).round().astype(int)]
    render, uv = avatar.inputs(avatar.params.select(idx))
    w, _ = student.inference_styles(avatar.identity)
    with torch.no_grad():
        teacher_img = torch.from_numpy(avatar.generate(render, uv)[0]).permute(0, 3, 1, 2).float() / 255
        s_img, _ = student.synthesize(render, uv, w.expand(len(idx), -1), student.face_maps[avatar.identity:][:1],
                                      student.background_maps[avatar.identity:][:1])
    s_img = (s_img.clamp(-1, 1) + 1) / 2
    vs_teacher = float(psnr(s_img, teacher_img).mean())
    root = Path(json.loads((avatar.run / "avatar.json").read_text())["datasets"][avatar.identity])
    try:
        ds = Dataset.open(root)
    except UserError:
        return vs_teacher, None, None
    truth = torch.from_numpy(np.stack([ds.frame_window(int(i), avatar.cfg.crop_size, avatar.cfg.output_size)
                                       for i in idx])).permute(0, 3, 1, 2).float() / 255
    return vs_teacher, float(psnr(s_img, truth).mean()), float(psnr(teacher_img, truth).mean())


def distill(run: str | Path, output: str | Path, width: int = 64, minutes: float | None = 20.0,
            iters: int | None = None, batch: int = 4, lr: float = 2e-3, seed: int = 0,
            progress: bool = True) -> DistillSummary:
    """Train a student of ``width`` channels at most from the avatar in ``run``; write it as a run folder."""
    start = time.perf_counter()
    run, output = Path(run), Path(output)
    if output.exists() and (output / "avatar.safetensors").exists():
        raise UserError(f"{output} already holds an avatar; choose a new folder")
    avatar = Avatar.load(run)
    tcfg = avatar.cfg
    if width >= tcfg.max_channels:
        raise UserError(f"--width {width} is not slimmer than the teacher's {tcfg.max_channels} channels")
    torch.manual_seed(seed)
    cfg = student_config(tcfg, width)
    student = AvatarNet(cfg, identities=avatar.net.identities)
    student.face_maps.copy_(avatar.net.face_maps)
    student.background_maps.copy_(avatar.net.background_maps)
    student.features_frozen.fill_(True)
    student.map_frame.load_state_dict(avatar.net.map_frame.state_dict())  # same latent space to start from
    trainable = [p for n, p in student.named_parameters() if not n.startswith(("face_generator", "background_gen",
                                                                               "map_identity"))]
    opt = torch.optim.AdamW(trainable, lr=lr, betas=(0.0, 0.99), weight_decay=0.0)
    vgg = PerceptualLoss(load_weights("vgg16"), size=128)
    w, _ = student.inference_styles(avatar.identity, batch)
    train_idx = np.arange(*avatar.meta["split"]["train"])
    stream = prefetch(_batches(avatar, train_idx, batch, seed), depth=3)
    budget = minutes * 60 if minutes is not None and iters is None else float("inf")
    bar = tqdm(total=iters, disable=not progress, desc="distilling", unit="it", file=sys.stderr, dynamic_ncols=True)
    it = 0
    with bar:
        while (iters is None or it < iters) and time.perf_counter() - start < budget:
            render, uv = next(stream)
            with torch.no_grad():
                target = avatar.net.synthesize(render, uv, avatar.w.expand(batch, -1),
                                               avatar.net.face_maps[avatar.identity:][:1],
                                               avatar.net.background_maps[avatar.identity:][:1])[0]
            w, _ = student.inference_styles(avatar.identity, batch)
            image, _ = student.synthesize(render, uv, w, student.face_maps[avatar.identity:][:1],
                                          student.background_maps[avatar.identity:][:1])
            loss = (image - target).abs().mean()
            if it % 4 == 0:
                loss = loss + 0.01 * vgg(image, target)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(trainable, 1.0)
            opt.step()
            it += 1
            bar.update()
            bar.set_postfix(loss=f"{float(loss.detach()):.4f}")
    student.eval().requires_grad_(False)
    render, uv = next(stream)
    teacher_ms, student_ms = (_forward_ms(n, render, uv, avatar.identity) for n in (avatar.net, student))
    vs_teacher, vs_truth, teacher_truth = _held_out_scores(avatar, student)
    _write_run(run, output, student, cfg, it, width)
    count = lambda net: sum(p.numel() for m in (net.render_unet, net.image_unet) for p in m.parameters()) / 1e6  # noqa: E731
    return DistillSummary(output, it, time.perf_counter() - start, teacher_ms, student_ms, count(student),
                          count(avatar.net), vs_teacher, vs_truth, teacher_truth)


def _write_run(teacher_run: Path, output: Path, student: AvatarNet, cfg: ModelConfig, iterations: int,
               width: int) -> None:
    output.mkdir(parents=True, exist_ok=True)
    if (output / "subjects").exists():
        shutil.rmtree(output / "subjects")
    shutil.copytree(teacher_run / "subjects", output / "subjects")
    meta = json.loads((teacher_run / "avatar.json").read_text())
    meta.update({"format": AVATAR_FORMAT, "version": VERSION, "iteration": iterations, "model": to_dict(cfg),
                 "distilled_from": str(teacher_run.resolve()), "width": width})
    (output / "config.json").write_text(json.dumps({"distill": {"teacher": str(teacher_run.resolve()),
                                                                "width": width, "iterations": iterations},
                                                    "model": to_dict(cfg)}, indent=2) + "\n")
    save_tensors(output / "avatar", student.state_dict(), meta)
