"""``styleavatar train``: learn an avatar from one or more preprocessed datasets (paper Sec. 3.4).

:class:`Trainer` builds the networks and optimisers and holds the run's state; :class:`_Loop` runs the
iterations (one step of :mod:`.step` each) with its timers, logs and progress bar; the files of the run
folder are :mod:`.run_folder`'s.
"""
from __future__ import annotations

import contextlib
import copy
import json
import math
import os
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import cv2
import numpy as np
import torch
from tqdm import tqdm

from ..config import ModelConfig, TrainConfig, to_dict
from ..data.dataset import Dataset
from ..errors import UserError
from ..evaluation.metrics import psnr, ssim
from ..io.atomic import atomic_file, folder_lock
from ..io.checkpoint import list_checkpoints
from ..io.image import to_tensor, to_uint8
from ..io.prefetch import prefetch
from ..models.avatar import INFERENCE_FRAME, AvatarNet
from ..models.stylegan import Discriminator
from ..runtime import Runtime, choose, device_name, pick_device, tune_for
from . import distributed as ddp
from . import run_folder as rf
from .data import Batch, FrameStore, background_image, batches, make_batch, split_codes, store_rarity
from .losses import perceptual_loss
from .speed import batch_for, half_batch_cost, probe_steps
from .step import Optimiser, adamw, discriminator_step, generator_step, loss_values, update_ema


@dataclass
class TrainSummary:
    run_dir: Path
    iterations: int
    seconds: float
    losses: dict[str, float]
    evals: list[dict] = field(default_factory=list)
    runtime: str = ""
    warning: str | None = None
    """Set when the run did not reach a usable avatar in its time budget (:meth:`_Loop.final_warning`), or, for a
    run stopped early, when the speed measured after its first minute could not (:meth:`_Loop.watch_speed`)."""

    def describe(self) -> str:
        last = self.evals[-1] if self.evals else None
        score = f"; held-out PSNR {last['psnr']:.2f} dB, SSIM {last['ssim']:.3f}" if last else ""
        loss = ", ".join(f"{k} {v:.4f}" for k, v in self.losses.items())
        text = (f"wrote {self.run_dir}: {self.iterations} iterations in {self.seconds / 60:.1f} min, {self.runtime} "
                f"({loss}){score}\n  avatar: {self.run_dir / 'avatar.safetensors'}")
        return text + (f"\n  warning: {self.warning}" if self.warning else "")


OPTIONAL_STATE = frozenset({"D", "opt_D"})
"""Checkpoint entries a resumed run may lack: a run without the GAN writes no discriminator, and one resumed
with ``gan_weight`` > 0 then starts it afresh."""
AGREE_EVERY = 8
"""With several processes, time-based events (stop, snapshot, sample, eval) are agreed every this many
iterations: an event comes at most this many iterations late, and the processes sync that much less."""
SPEED_CHECK_S = 60.0
"""Seconds of training (or a quarter of a shorter budget) after which the speed is judged."""


class Trainer:
    """Owns the networks, optimisers and run folder; :meth:`run` trains until the budget is spent."""

    def __init__(self, datasets: Sequence[Path], run_dir: Path, model_cfg: ModelConfig, train_cfg: TrainConfig,
                 resume: bool, init: Path | None, progress: bool, log, device: str = "auto") -> None:
        self.run_dir, self.progress, self.log = Path(run_dir), progress, log
        self.device = pick_device(device)
        self.dist = ddp.init_distributed(self.device.type)
        if self.device.type == "cuda":
            if self.dist.world > 1:  # torchrun: one GPU per process
                self.device = torch.device("cuda", self.dist.local_rank)
            torch.cuda.set_device(self.device)
        tune_for(self.device)
        ckpts = list_checkpoints(self.run_dir) if self.run_dir.exists() else []
        if ckpts and not resume:
            raise UserError(f"{self.run_dir} already holds a training run: pass --resume to continue it, "
                            f"or choose a new folder")
        if resume and not ckpts:
            raise UserError(f"nothing to resume in {self.run_dir}: it holds no checkpoint (run without --resume "
                            "to start training there)")
        saved = None
        if resume:  # the run's own config wins over presets and options
            model_cfg, train_cfg, datasets, saved = rf.resumed_config(self.run_dir, train_cfg, datasets)
        self.mcfg, self.tcfg = model_cfg, train_cfg
        self.datasets = [Dataset.open(p) for p in datasets]
        self.init_from: dict | None = saved.get("init") if saved is not None else None  # rf.init_record
        if saved is not None:
            rf.check_same_data(saved, self.datasets)
        for ds in self.datasets:
            if int(ds.meta.get("size", model_cfg.crop_size)) < model_cfg.crop_size:
                log(f"warning: {ds.root} has {ds.meta.get('size')}^2 frames but this model needs "
                    f"{model_cfg.crop_size}^2: frames are upsampled (preprocess with --size {model_cfg.crop_size})")
            if not ds.subject.forehead and not resume:
                log(f"note: {ds.root} was made before the face mesh reached the hairline; driven by moving heads, "
                    f"its avatar may draw the upper forehead where the training frames had it (preprocess again)")
        torch.manual_seed(train_cfg.seed)
        self._build(init)
        self.iteration, self.elapsed = 0, 0.0
        self.scaler_states: dict[str, dict] = {}
        self.resume_from = self._resume() if resume else None
        self.runtime: Runtime | None = None  # chosen by measure_runtime() once training frames are loaded
        self.train_codes: tuple[torch.Tensor, torch.Tensor] | None = None  # (frame index, identity) per frame

    # ------------------------------------------------------------------------------------- setup
    def _build(self, init: Path | None) -> None:
        m, t = self.mcfg, self.tcfg
        self.G = AvatarNet(m, identities=len(self.datasets)).to(self.device)
        if init is not None:
            self._load_init(init)
        ddp.broadcast_module(self.G, self.dist)
        self.G_ema = copy.deepcopy(self.G).eval().requires_grad_(False)
        fused = self.device.type == "cuda"
        self.opt_G = Optimiser(self.G, adamw(self.G.parameters(), t, fused=fused), t.grad_clip, self.dist)
        self.D: Discriminator | None = None  # only where its loss counts: checkpoints stay generator-sized
        self.opt_D: Optimiser | None = None
        if t.gan_weight > 0:
            self.D = Discriminator(m.output_size, m.disc_channels).to(self.device)
            ddp.broadcast_module(self.D, self.dist)
            self.opt_D = Optimiser(self.D, adamw(self.D.parameters(), t, lazy_every=t.r1_every, fused=fused,
                                                 lr=t.lr_at(t.gan_start)), t.grad_clip, self.dist)
        self.vgg = perceptual_loss(t, self.device)

    def _load_init(self, path: Path) -> None:
        """Start from another run's weights (fine-tuning a new person from a pre-trained model)."""
        state, meta = rf.load_generator_state(path)
        # a new person's own: maps and background learnt afresh, inference latents set from its frames
        skip = {"face_maps", "background_maps", "features_frozen", "background_images", "inference_latents",
                "inference_latents_set"}
        own = self.G.state_dict()
        loaded = {k: v for k, v in state.items() if k not in skip and k in own and own[k].shape == v.shape}
        # a run without the known base has no correction gain: it starts at 0 here (the composite first)
        wanted = len(own) - len((skip | ({"correction_gain"} - state.keys())) & own.keys())
        if len(loaded) < wanted:
            raise UserError(f"{path} does not match the model size of this run (preset/options): "
                            f"{wanted - len(loaded)} tensors differ")
        self.G.load_state_dict(loaded, strict=False)
        self.init_from = rf.init_record(meta)
        self.log(f"initialised from {meta['path']} (iteration {meta.get('iteration', '?')})")

    def update_inference_latents(self) -> None:
        """The EMA generator's inference latents := the mean latent of the training frames (see AvatarNet)."""
        if self.train_codes is not None:
            self.G_ema.set_inference_latents(*(t.to(self.device) for t in self.train_codes))

    @torch.no_grad()
    def init_background_images(self, store: FrameStore) -> None:
        """known_base, new runs only: each identity's background image starts as the per-pixel median of
        up to 100 of its training frames (a static camera's background) with the face's place inpainted
        (see :func:`~styleavatar.training.data.background_image`)."""
        if not self.mcfg.known_base or self.iteration > 0:
            return
        for k in range(len(self.datasets)):
            rows = np.flatnonzero(store.identity == k)
            rows = rows[np.linspace(0, len(rows) - 1, min(100, len(rows))).round().astype(int)]
            background = background_image(store.frames[rows], store.uvs[rows, ..., 2], self.G.blend_band)
            image = to_tensor(background[None])[0].to(self.device)
            for net in (self.G, self.G_ema):
                net.background_images[k].copy_(image)
        for net in (self.G, self.G_ema):  # each process holds its own shard of the frames: rank 0's image wins
            ddp.broadcast_module(net, self.dist)

    # ---------------------------------------------------------------------------------- runtime
    def measure_runtime(self, store: FrameStore) -> Runtime:
        """Choose precision, layout and threads by capability and a few timed steps on real frames; then, for a
        new run with ``half_batch_below``, the batch (:meth:`choose_batch`).

        The probe runs the generator's forward + backward (L1, mask and perceptual losses) on the first
        training frames without an optimiser step, so the weights and random state are untouched.
        """
        t = self.tcfg
        make_step = probe_steps(self.G, self.vgg, self._probe_batch(store, t.batch), self.device, others=(self.D,))
        rt = choose(self.device, make_step, t.precision, t.channels_last, threads=t.threads)
        if self.dist.world > 1:  # every process must run the same way: rank 0's choice wins
            rt = ddp.broadcast_object(rt, self.dist)
        rt.apply_layout(self.G, self.D, self.vgg)
        self.runtime = rt
        if t.half_batch_below > 0 and t.batch >= 2 and self.resume_from is None:
            self.choose_batch(store, make_step(rt.precision, rt.channels_last))
        self.opt_G.use_runtime(rt, self.scaler_states.get("opt_G"))
        if self.opt_D is not None:
            self.opt_D.use_runtime(rt, self.scaler_states.get("opt_D"))
        self.log(f"runtime: {device_name(self.device)}; {rt.describe()}")
        return rt

    def _probe_batch(self, store: FrameStore, size: int) -> Batch:
        """The first ``size`` training frames (fewer if the store is smaller), centred windows."""
        rows = np.arange(min(size, len(store)))
        return make_batch(store, rows, [(0, 0)] * len(rows), self.mcfg)

    def choose_batch(self, store: FrameStore, full_step) -> None:
        """Halve the batch of a new run where a half-batch step costs at most ``half_batch_below`` of a full
        one (``full_step``: the probe's step at the full batch in the chosen runtime)."""
        t, rt = self.tcfg, self.runtime
        half = t.batch // 2
        half_step = probe_steps(self.G, self.vgg, self._probe_batch(store, half), self.device,
                                others=(self.D,))(rt.precision, rt.channels_last)
        cost = half_batch_cost(full_step, half_step)
        if self.dist.world > 1:
            cost = ddp.broadcast_object(cost, self.dist)
        if batch_for(t.batch, cost, t.half_batch_below) == half:
            self.tcfg = replace(t, batch=half)
            self.log(f"batch {half}: a step of {half} frames costs {cost:.2f} of one of {t.batch} on this machine "
                     f"(at most {t.half_batch_below:g}: more iterations learn more per minute)")
        else:
            self.log(f"batch {t.batch}: a step of {half} frames would cost {cost:.2f} of it on this machine "
                     f"(above {t.half_batch_below:g})")

    # ------------------------------------------------------------------------------- checkpoints
    def _state(self) -> tuple[dict[str, torch.nn.Module], dict[str, torch.optim.Optimizer]]:
        """What a checkpoint holds, by name (the discriminator and its optimiser only when there is one)."""
        nets = {"G": self.G, "G_ema": self.G_ema} | ({"D": self.D} if self.D is not None else {})
        return nets, {name: opt.opt for name, opt in self._optimisers().items()}

    def _optimisers(self) -> dict[str, Optimiser]:
        """The optimisers by checkpoint name (the discriminator's only when there is one)."""
        return {"opt_G": self.opt_G} | ({"opt_D": self.opt_D} if self.opt_D is not None else {})

    def snapshot(self) -> None:
        """A resumable checkpoint and the avatar file (rank 0 only)."""
        if not self.dist.main:
            return
        self.update_inference_latents()
        meta = {"iteration": self.iteration, "elapsed_s": self.elapsed, "model": to_dict(self.mcfg),
                "train": to_dict(self.tcfg), "identities": len(self.datasets),
                "datasets": [str(ds.root.resolve()) for ds in self.datasets],
                "scalers": {name: opt.scaler_state() for name, opt in self._optimisers().items()}}
        rf.save_checkpoint(self.run_dir, *self._state(), meta, self.tcfg.keep_checkpoints)
        rf.save_avatar(self.run_dir, self.G_ema,
                       rf.avatar_meta(self.mcfg, self.datasets, self.iteration, self.init_from))

    def _resume(self) -> Path:
        path, meta = rf.load_newest_usable(self.run_dir, *self._state(), self.log, optional=OPTIONAL_STATE)
        if self.D is not None and "opt_D" not in meta:
            self.log(f"{path.name} has no discriminator (it trained without the GAN): a new one starts here")
        self.iteration, self.elapsed = int(meta["iteration"]), float(meta["elapsed_s"])
        self.scaler_states = meta.get("scalers", {})  # applied once the runtime is chosen (fp16 only)
        self.log(f"resuming {self.run_dir} at iteration {self.iteration} ({self.elapsed / 60:.1f} min trained)")
        return path

    def write_run_files(self) -> None:
        if self.dist.main:
            rf.write_run_files(self.run_dir, self.mcfg, self.tcfg, self.datasets, self.dist.world, self.runtime,
                               self.init_from)

    def maybe_freeze(self) -> None:
        if self.iteration == self.tcfg.freeze_features_at and not self.G.maps_cached:
            self.G.freeze_features()
            self.G_ema.freeze_features()
            self.log(f"iteration {self.iteration}: feature generators frozen, maps cached")

    # -------------------------------------------------------------------------- samples and eval
    @torch.no_grad()
    def render_frames(self, store: FrameStore, rows: np.ndarray, held_in: bool) -> tuple[torch.Tensor, Batch]:
        """EMA output (B, 3, out, out) in [-1, 1] for store rows, centred window.

        Held-in frames use their own frame code; held-out frames the inference latent (INFERENCE_FRAME).
        """
        b = make_batch(store, rows, [(0, 0)] * len(rows), self.mcfg).to(self.device)
        idx = b.frame_index if held_in else torch.full_like(b.frame_index, INFERENCE_FRAME)
        with self.runtime.autocast():
            image, _ = self.G_ema(b.render, b.uv, idx, b.identity, None)
        return image.float(), b

    def write_samples(self, store: FrameStore, writer) -> None:
        rows = np.linspace(0, len(store) - 1, min(4, len(store))).round().astype(int)
        image, b = self.render_frames(store, rows, held_in=True)
        grid = np.concatenate([np.concatenate(list(to_uint8(x)), axis=0)
                               for x in (b.image, image, b.render_window)], axis=1)
        out = self.run_dir / "samples" / f"{self.iteration:08d}.png"
        out.parent.mkdir(exist_ok=True)
        with atomic_file(out, suffix=".png") as tmp:  # the web app shows the newest sample as it appears
            cv2.imwrite(str(tmp), cv2.cvtColor(grid, cv2.COLOR_RGB2BGR))
        writer.add_image("samples/truth|avatar|render", grid, self.iteration, dataformats="HWC")

    def evaluate(self, store: FrameStore) -> dict[str, float]:
        """Mean PSNR / SSIM of the EMA generator on held-out frames (full output window, values in [0, 1])."""
        self.update_inference_latents()
        scores_p, scores_s = [], []
        for start in range(0, len(store), 8):
            rows = np.arange(start, min(start + 8, len(store)))
            image, b = self.render_frames(store, rows, held_in=False)
            a, g = (image.clamp(-1, 1) + 1) / 2, (b.image + 1) / 2
            scores_p.append(psnr(a, g))
            scores_s.append(ssim(a, g))
        return {"psnr": float(torch.cat(scores_p).mean()), "ssim": float(torch.cat(scores_s).mean())}


def train(datasets: Sequence[str | Path], run_dir: str | Path, model_cfg: ModelConfig | None = None,
          train_cfg: TrainConfig | None = None, *, iters: int | None = None, minutes: float | None = None,
          resume: bool = False, init: str | Path | None = None, progress: bool = True, log=print,
          stop: threading.Event | None = None, device: str = "auto") -> TrainSummary:
    """Train (or resume) an avatar; returns what was done. ``iters``/``minutes``: total budget of the run;
    ``device``: see :func:`styleavatar.runtime.pick_device` (under torchrun, each process takes its local GPU).

    ``stop``: when set (from another thread), training ends at the next iteration as if its budget were
    spent: the checkpoint and the avatar are written."""
    if not datasets:
        raise UserError("give at least one dataset folder")
    if iters is None and minutes is None:
        raise UserError("give a budget: --iters N or --minutes M")
    # one process per run folder; under torchrun the ranks of one run share it (rank 0 holds the lock)
    lock = folder_lock(Path(run_dir), "a training run") if int(os.environ.get("RANK", "0")) == 0 \
        else contextlib.nullcontext()
    with lock:
        trainer = Trainer([Path(p) for p in datasets], Path(run_dir), model_cfg or ModelConfig(),
                          train_cfg or TrainConfig(), resume, Path(init) if init else None, progress, log, device)
        try:
            return _loop(trainer, iters, minutes, stop)
        finally:
            ddp.shutdown(trainer.dist)


class _Loop:
    """The training loop's state between iterations: data, logs, progress bar and event timers."""

    def __init__(self, tr: Trainer, iters: int | None, minutes: float | None,
                 stop: threading.Event | None = None) -> None:
        from torch.utils.tensorboard import SummaryWriter

        t, m = tr.tcfg, tr.mcfg
        self.tr, self.iters, self.stop = tr, iters, stop
        self.train_store = FrameStore.load(tr.datasets, "train", m, progress=tr.progress and tr.dist.main,
                                           shard=(tr.dist.rank, tr.dist.world))
        tr.init_background_images(self.train_store)
        tr.train_codes = tuple(torch.from_numpy(a) for a in split_codes(tr.datasets, "train"))
        tr.measure_runtime(self.train_store)
        tr.write_run_files()
        self.test_store = (FrameStore.load(tr.datasets[:1], "test", m, limit=t.eval_frames, progress=False)
                           if t.eval_minutes > 0 and tr.dist.main and len(tr.datasets[0].test_indices) else None)
        self.writer = SummaryWriter(str(tr.run_dir / "tensorboard")) if tr.dist.main else None
        self.log_file = open(tr.run_dir / "log.jsonl", "a") if tr.dist.main else None
        weights = store_rarity(self.train_store, tr.datasets, t.rare_expressions) if t.rare_expressions else None
        if weights is not None:
            p = weights / weights.sum()  # effective sample size 1 / sum p^2: len(p) when uniform
            tr.log(f"rare expressions {t.rare_expressions:g}: frames drawn {weights.min():.1f}-{weights.max():.1f}x "
                   f"as often as a usual one (effectively {1 / (p ** 2).sum():.0f} of {len(p)} frames)")
        t = tr.tcfg  # the probe may have halved the batch
        stream = batches(self.train_store, m, t.batch, t.seed, tr.iteration, t.window_sigma, t.window_prob,
                         tr.G.max_offset(), tr.dist.rank, weights)
        if tr.device.type == "cuda":
            stream = (b.pinned() for b in stream)
        self.stream = prefetch(stream, depth=max(2, 2 * t.workers))
        self.budget_s = minutes * 60 if minutes is not None else math.inf
        # An iteration budget counts iterations; a time budget counts seconds (elapsed < remaining is the ETA).
        time_format = "{desc}: {percentage:3.0f}%|{bar}| {elapsed}<{remaining}{postfix}"
        self.bar = tqdm(total=iters if iters is not None else round(self.budget_s),
                        initial=tr.iteration if iters is not None else round(tr.elapsed),
                        disable=not (tr.progress and tr.dist.main), unit="it",
                        desc=f"training ({tr.runtime.label()})", dynamic_ncols=True,
                        bar_format=None if iters is not None else time_format)
        self.start, self.base_elapsed = time.monotonic(), tr.elapsed
        self.last = {"snapshot": self.start, "sample": -math.inf, "log": self.start,
                     "eval": self.start if tr.iteration else -math.inf}
        self.first_iteration = self.logged_iteration = tr.iteration
        # The last value of each loss, on the device (read when logged): the perceptual loss and R1 run every few
        # steps only, so they keep their last value in between instead of missing from most logged rows.
        self.losses: dict[str, torch.Tensor] = {}
        self.evals: list[dict] = []
        self.speed_checked, self.warning = False, None

    def events(self) -> tuple[bool, bool, bool, bool]:
        """(stop, snapshot, sample, eval) now. Events due by iteration count are the same in every process;
        those due by time are rank 0's decision, shared every ``AGREE_EVERY`` iterations (each sharing is
        a host sync)."""
        tr, t, now = self.tr, self.tr.tcfg, time.monotonic()
        tr.elapsed = self.base_elapsed + now - self.start
        by_count = [self.iters is not None and tr.iteration >= self.iters,
                    t.snapshot_every > 0 and tr.iteration % t.snapshot_every == 0 and tr.iteration > 0, False, False]
        by_time = [tr.elapsed >= self.budget_s or (self.stop is not None and self.stop.is_set()),
                   now - self.last["snapshot"] >= t.snapshot_minutes * 60,
                   now - self.last["sample"] >= t.sample_minutes * 60,
                   self.test_store is not None and now - self.last["eval"] >= t.eval_minutes * 60]
        if tr.dist.world > 1:
            by_time = ddp.agree(by_time, tr.dist, tr.device) if tr.iteration % AGREE_EVERY == 0 else [False] * 4
        return tuple(a or b for a, b in zip(by_count, by_time))

    def periodic(self, snapshot: bool, sample: bool, evaluate: bool) -> None:
        tr = self.tr
        if snapshot:
            tr.snapshot()
            self.last["snapshot"] = time.monotonic()
        if sample and self.writer is not None:
            tr.write_samples(self.train_store, self.writer)
            self.last["sample"] = time.monotonic()
        if evaluate and self.test_store is not None:
            self.evals.append(_log_eval(tr, self.test_store, self.writer, self.log_file))
            self.last["eval"] = time.monotonic()

    def spent(self) -> float:
        """The fraction of the run's budget gone (its iterations, else its minutes; 0 without either)."""
        if self.iters is not None:
            return self.tr.iteration / max(self.iters, 1)
        return self.tr.elapsed / self.budget_s if math.isfinite(self.budget_s) else 0.0

    def step(self) -> None:
        """One generator (and discriminator) update, EMA, progress and logs."""
        tr, t = self.tr, self.tr.tcfg
        tr.maybe_freeze()
        b = next(self.stream).to(tr.device, tr.runtime.channels_last)
        D = tr.D if tr.iteration >= t.gan_start else None  # built only when gan_weight > 0
        tr.opt_G.set_lr(t.lr_at(tr.iteration, self.spent()))
        losses, fake = generator_step(tr.G, tr.opt_G, b, t, tr.runtime, tr.iteration, tr.vgg, D)
        if D is not None:
            losses.update(discriminator_step(D, tr.opt_D, b, fake, t, tr.runtime, tr.iteration))
        self.losses.update(losses)
        update_ema(tr.G_ema, tr.G, t.ema_decay, tr.iteration, t.ema_ramp)
        tr.iteration += 1
        self.bar.update(1 if self.iters is not None else max(0, round(tr.elapsed) - self.bar.n))
        if tr.iteration % t.log_every == 0 and self.writer is not None:
            self._log()
        self.watch_speed()

    def watch_speed(self) -> None:
        """Once, early in a time-budgeted run: warn when the measured speed cannot reach a usable avatar."""
        tr, t = self.tr, self.tr.tcfg
        spent = time.monotonic() - self.start
        remaining = self.budget_s - self.base_elapsed
        if self.speed_checked or not math.isfinite(remaining) or spent < min(SPEED_CHECK_S, remaining / 4):
            return
        self.speed_checked = True
        rate = (tr.iteration - self.first_iteration) / spent
        reach = tr.iteration + rate * max(0.0, self.budget_s - tr.elapsed)
        if reach >= t.usable_iterations or not tr.dist.main:
            return
        self.warning = self._shortfall(rate, f"reaches about {reach:.0f}")
        tr.log(f"warning: {self.warning}")
        self.log_file.write(json.dumps({"speed_warning": {"it_per_s": round(rate, 4), "reach": round(reach),
                                                          "usable_iterations": t.usable_iterations}}) + "\n")

    def _shortfall(self, rate: float, iterations: str) -> str:
        """The speed warning: at ``rate`` it/s the run ``iterations`` ('reaches about N' or 'reached N')."""
        tr, t = self.tr, self.tr.tcfg
        need = (t.usable_iterations - tr.iteration) / max(rate, 1e-6) / 60 + tr.elapsed / 60
        return (f"at {rate:.2f} it/s ({tr.runtime.label()}) this run {iterations} iterations in its "
                f"{self.budget_s / 60:g}-minute budget, but a usable avatar of this size needs about "
                f"{t.usable_iterations}: expect a blurred or noisy result. Give it about {need:.0f} minutes "
                f"(--minutes), choose a smaller --preset, or use a GPU; `styleavatar doctor` shows what this "
                f"machine can do")

    def final_warning(self) -> str | None:
        """The speed warning restated from what a time-budgeted run reached (the estimate after its first minute
        can be off either way: warm-up, a busy machine); None when it reached a usable avatar. A run stopped by
        its iteration count keeps the early warning."""
        tr, t = self.tr, self.tr.tcfg
        if self.iters is not None or not math.isfinite(self.budget_s) or not tr.dist.main:
            return self.warning
        if tr.iteration >= t.usable_iterations:
            return None
        if tr.elapsed < self.budget_s:  # stopped before its budget ran out
            return self.warning
        rate = (tr.iteration - self.first_iteration) / max(time.monotonic() - self.start, 1e-9)
        return self._shortfall(rate, f"reached {tr.iteration}")

    def _log(self) -> None:
        tr, now = self.tr, time.monotonic()
        rate = (tr.iteration - self.logged_iteration) / max(1e-9, now - self.last["log"])
        self.logged_iteration, self.last["log"] = tr.iteration, now
        losses = loss_values(self.losses)
        self.bar.set_postfix({"it": tr.iteration, "it/s": f"{rate:.2f}", **{k: f"{v:.3f}" for k, v in losses.items()}})
        for k, v in losses.items():
            self.writer.add_scalar(f"loss/{k}", v, tr.iteration)
        lr = tr.opt_G.lr
        self.writer.add_scalar("speed/it_per_s", rate, tr.iteration)
        self.writer.add_scalar("lr/generator", lr, tr.iteration)
        self.log_file.write(json.dumps({"iteration": tr.iteration, "elapsed_s": round(tr.elapsed, 2),
                                        "it_per_s": round(rate, 3), "lr": lr, **losses}) + "\n")
        self.log_file.flush()

    def finish(self) -> TrainSummary:
        """Final checkpoint (when anything changed), evaluation, replica check; close the logs."""
        tr = self.tr
        self.bar.close()
        if tr.iteration != self.first_iteration or not list_checkpoints(tr.run_dir):
            tr.snapshot()
        if self.test_store is not None:
            self.evals.append(_log_eval(tr, self.test_store, self.writer, self.log_file))
        if tr.dist.world > 1:
            diff = max(ddp.replica_difference(net, tr.dist) for net in (tr.G, tr.D) if net is not None)
            if self.log_file is not None:
                self.log_file.write(json.dumps({"replicas": {"world_size": tr.dist.world, "max_abs_diff": diff}})
                                    + "\n")
        if self.writer is not None:
            self.writer.close()
            self.log_file.close()
        return TrainSummary(tr.run_dir, tr.iteration, tr.elapsed, loss_values(self.losses), self.evals,
                            tr.runtime.label(), self.final_warning())


def _log_eval(tr: Trainer, store: FrameStore, writer, log_file) -> dict:
    """Score the held-out frames now; log to TensorBoard, log.jsonl and the console."""
    scores = {"iteration": tr.iteration, "minutes": round(tr.elapsed / 60, 2), **tr.evaluate(store)}
    writer.add_scalar("eval/psnr", scores["psnr"], tr.iteration)
    writer.add_scalar("eval/ssim", scores["ssim"], tr.iteration)
    log_file.write(json.dumps({"eval": scores}) + "\n")
    log_file.flush()
    tr.log(f"held-out after {scores['minutes']:.1f} min: PSNR {scores['psnr']:.2f} dB, SSIM {scores['ssim']:.3f}")
    return scores


def _loop(tr: Trainer, iters: int | None, minutes: float | None, stop: threading.Event | None) -> TrainSummary:
    loop = _Loop(tr, iters, minutes, stop)
    try:
        while True:
            stop, snapshot, sample, evaluate = loop.events()
            if stop:
                break
            loop.periodic(snapshot, sample, evaluate)
            loop.step()
    except BaseException:
        loop.bar.close()
        raise
    return loop.finish()
