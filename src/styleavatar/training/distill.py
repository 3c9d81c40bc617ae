"""``styleavatar distill``: a slimmer per-frame network that imitates a trained avatar (MegaPortraits-style).

The student is the same :class:`~styleavatar.models.avatar.AvatarNet` with narrower layers. It reuses
the teacher's cached face/background feature maps (same feature channels) and learns the two StyleUNets
to reproduce the teacher's image and mask on renders of the avatar's own training frames and of perturbed
poses and expressions (within the range the teacher saw), so it stays faithful under driving. Each step
is the trainer's generator step (:func:`~styleavatar.training.step.generator_step`) with the teacher run's
training config and no GAN. The result is a run folder like any other: reenact, live, bench and export
take it as RUN.
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

from ..config import DistillConfig, ModelConfig, TrainConfig, from_dict, to_dict
from ..data.dataset import Dataset
from ..errors import UserError
from ..evaluation.metrics import psnr
from ..inference.avatar import Avatar
from ..io.atomic import partial_path, remove
from ..io.checkpoint import AVATAR_FORMAT, VERSION, save_tensors
from ..io.image import to_tensor
from ..io.prefetch import prefetch
from ..models.avatar import INFERENCE_FRAME, AvatarNet
from ..runtime import Runtime
from ..tracking.fit import FrameParams
from ..tracking.procrustes import euler_degrees, rotation_from_euler
from .data import Batch
from .losses import perceptual_loss
from .step import Optimiser, adamw, generator_step, loss_values


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


def _batches(avatar: Avatar, train_idx: np.ndarray, batch: int, seed: int, strength: float):
    """Endless (render, uv) batches (B, 3, R, R): half the avatar's own frames, half perturbed."""
    rng = np.random.default_rng(seed)
    while True:
        params = avatar.params.select(rng.choice(train_idx, batch))
        half = batch // 2
        moved = perturb(params.select(slice(half, batch)), avatar, rng, strength)
        yield avatar.inputs(FrameParams.concat([params.select(slice(0, half)), moved]))


def _teacher_batch(avatar: Avatar, render: torch.Tensor, uv: torch.Tensor) -> Batch:
    """A training batch whose truth is the teacher's image and mask, at the inference latent."""
    image, mask = avatar.synthesize(render, uv)
    b = render.shape[0]
    return Batch(render=render, uv=uv, image=image, mask=mask, render_window=None,
                 frame_index=torch.full((b,), INFERENCE_FRAME, dtype=torch.long, device=render.device),
                 identity=torch.full((b,), avatar.identity, dtype=torch.long, device=render.device), offsets=None)


def _forward_ms(net: AvatarNet, render: torch.Tensor, uv: torch.Tensor, identity: int) -> float:
    w, _ = net.inference_styles(identity)
    times = []
    with torch.no_grad():
        for _ in range(7):
            t0 = time.perf_counter()
            net.synthesize(render[:1], uv[:1], w, **net.cached_maps(identity))
            if render.is_cuda:
                torch.cuda.synchronize()
            times.append(time.perf_counter() - t0)
    return 1000 * float(np.median(times[2:]))


def _held_out_scores(avatar: Avatar, student: AvatarNet, frames: int = 32) -> tuple[float, float | None, float | None]:
    """PSNR of the student vs the teacher on held-out renders, and of both vs the true frames if available."""
    test = np.arange(*avatar.meta["split"]["test"])
    idx = test[np.linspace(0, len(test) - 1, min(frames, len(test))).round().astype(int)]
    render, uv = avatar.inputs(avatar.params.select(idx))
    w, _ = student.inference_styles(avatar.identity)
    with torch.no_grad():
        teacher_img = (avatar.synthesize(render, uv)[0].clamp(-1, 1) + 1) / 2
        s_img, _ = student.synthesize(render, uv, w.expand(len(idx), -1), **student.cached_maps(avatar.identity))
    s_img = (s_img.clamp(-1, 1) + 1) / 2
    vs_teacher = float(psnr(s_img, teacher_img).mean())
    root = Path(json.loads((avatar.run / "avatar.json").read_text())["datasets"][avatar.identity])
    try:
        ds = Dataset.open(root)
    except UserError:
        return vs_teacher, None, None
    truth = to_tensor(np.stack([ds.frame_window(int(i), avatar.cfg.crop_size, avatar.cfg.output_size)
                                for i in idx]), signed=False)
    return vs_teacher, float(psnr(s_img, truth).mean()), float(psnr(teacher_img, truth).mean())


def student_train_config(teacher_run: Path, cfg: DistillConfig) -> TrainConfig:
    """The teacher run's TrainConfig (defaults for runs without one), with cfg's overrides and no GAN."""
    saved = teacher_run / "config.json"
    train = json.loads(saved.read_text()).get("train") if saved.exists() else None
    t = from_dict(TrainConfig, train) if train else TrainConfig()
    given = {k: v for k, v in (("batch", cfg.batch), ("lr", cfg.lr)) if v is not None}
    return dataclasses.replace(t, gan_weight=0.0, seed=cfg.seed, **given)


def make_student(avatar: Avatar, width: int) -> AvatarNet:
    """A narrower AvatarNet holding the teacher's cached feature maps and frame mapping, its generators frozen."""
    tcfg = avatar.cfg
    if width >= tcfg.max_channels:
        raise UserError(f"--width {width} is not slimmer than the teacher's {tcfg.max_channels} channels")
    student = AvatarNet(student_config(tcfg, width), identities=avatar.net.identities)
    student.face_maps.copy_(avatar.net.face_maps)
    student.background_maps.copy_(avatar.net.background_maps)
    if tcfg.known_base:  # the same background image to start from (it goes on learning)
        student.background_images.data.copy_(avatar.net.background_images)
    student.features_frozen.fill_(True)
    student.map_frame.load_state_dict(avatar.net.map_frame.state_dict())  # same latent space to start from
    student.inference_latents.copy_(avatar.net.inference_latents)  # and the same inference latent
    student.inference_latents_set.copy_(avatar.net.inference_latents_set)
    student.refresh_flags()
    for module in (student.face_generator, student.background_generator, student.map_identity):
        module.requires_grad_(False)
    return student


def distill(run: str | Path, output: str | Path, config: DistillConfig = DistillConfig(), minutes: float | None = 20.0,
            iters: int | None = None, progress: bool = True, device: str = "auto") -> DistillSummary:
    """Train a student of ``config.width`` channels at most from the avatar in ``run``; write it as a run folder.

    device: where teacher and student run (see :func:`styleavatar.runtime.pick_device`)."""
    start = time.perf_counter()
    run, output = Path(run), Path(output)
    if output.exists() and (not output.is_dir() or any(output.iterdir())):
        raise UserError(f"{output} already exists and is not an empty folder; choose a new folder")
    avatar = Avatar.load(run, device=device)
    if progress:
        print(f"teacher {avatar.placement()}", file=sys.stderr)
    torch.manual_seed(config.seed)
    student = make_student(avatar, config.width).to(avatar.device)
    t = student_train_config(run, config)
    opt = Optimiser(student, adamw([p for p in student.parameters() if p.requires_grad], t), t.grad_clip)
    rt = Runtime(str(avatar.device), "fp32", False, torch.get_num_threads(), "the student trains in fp32")
    vgg = perceptual_loss(t, avatar.device)
    train_idx = np.arange(*avatar.meta["split"]["train"])
    stream = prefetch(_batches(avatar, train_idx, t.batch, config.seed, config.perturbation), depth=3)
    budget = minutes * 60 if minutes is not None and iters is None else float("inf")
    bar = tqdm(total=iters, disable=not progress, desc="distilling", unit="it", file=sys.stderr, dynamic_ncols=True)
    it = 0
    with bar:
        while (iters is None or it < iters) and time.perf_counter() - start < budget:
            losses, _ = generator_step(student, opt, _teacher_batch(avatar, *next(stream)), t, rt, it, vgg)
            it += 1
            bar.update()
            if it % 10 == 0:  # reading a loss waits for the device
                bar.set_postfix(l1=f"{loss_values(losses)['l1']:.4f}")
    student.eval().requires_grad_(False)
    render, uv = next(stream)
    teacher_ms, student_ms = (_forward_ms(n, render, uv, avatar.identity) for n in (avatar.net, student))
    vs_teacher, vs_truth, teacher_truth = _held_out_scores(avatar, student)
    _write_run(run, output, student, t, it, config)
    count = lambda net: sum(p.numel() for m in (net.render_unet, net.image_unet) for p in m.parameters()) / 1e6  # noqa: E731
    return DistillSummary(output, it, time.perf_counter() - start, teacher_ms, student_ms, count(student),
                          count(avatar.net), vs_teacher, vs_truth, teacher_truth)


def _write_run(teacher_run: Path, output: Path, student: AvatarNet, t: TrainConfig, iterations: int,
               config: DistillConfig) -> None:
    """The student's run folder, written beside it and renamed into place (never half a run)."""
    partial = partial_path(output)
    remove(partial)
    shutil.copytree(teacher_run / "subjects", partial / "subjects")
    meta = json.loads((teacher_run / "avatar.json").read_text())
    meta.update({"format": AVATAR_FORMAT, "version": VERSION, "iteration": iterations, "model": to_dict(student.cfg),
                 "distilled_from": str(teacher_run.resolve()), "width": config.width})
    (partial / "config.json").write_text(json.dumps({
        "distill": {"teacher": str(teacher_run.resolve()), "iterations": iterations, **to_dict(config)},
        "model": to_dict(student.cfg), "train": to_dict(t)}, indent=2) + "\n")
    save_tensors(partial / "avatar", student.state_dict(), meta)
    if output.exists():
        output.rmdir()  # empty (checked at the start)
    partial.rename(output)
