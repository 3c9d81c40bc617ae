"""``styleavatar demo`` (what ``make demo`` runs): the whole system on the built-in astronaut example.

Steps, each skipped when its result already exists (so re-running continues where it stopped):

1. two synthetic clips of scikit-image's astronaut photo: one to learn from, one with different
   scripted motion to drive with;
2. preprocess the first into a dataset;
3. train the ``small`` preset (128^2) for a time budget (resumed if a previous demo was interrupted);
4. evaluate: held-out metrics, cross-driving with the second clip, HTML report;
5. reenact: the avatar driven by the second clip, side by side.
"""
from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path

from .config import MODEL_PRESETS, PREPROCESS_PRESETS, TRAIN_PRESETS
from .data.dataset import is_complete
from .errors import UserError

MIN_PSNR = 16.0
"""Held-out PSNR (dB) below which the demo's avatar is called broken. The known base alone, before any
learning, scores ~16.3 dB (its background image starts without the face), so below 16 the network made the
picture worse (diverged: noise at ~10 dB). A working 10-minute run reaches 24-29 dB (AVX-512 with native bf16:
2247 iterations, 22.3 dB after 2 minutes; AVX2 only, fp32: 28.5 dB in 1777); a machine too slow to learn much is
told so by the speed warning."""


@dataclass
class DemoSummary:
    folder: Path
    report: Path
    video: Path
    seconds: float
    warning: str | None = None
    """The training's speed warning, when this machine could not reach a usable avatar in the budget."""

    def describe(self) -> str:
        note = f"  warning: the avatar is undertrained here: {self.warning}\n" if self.warning else ""
        return (f"demo finished in {self.seconds / 60:.1f} min\n{note}"
                f"  report:  {self.report / 'index.html'}\n"
                f"  video:   {self.video}  (driver | avatar)\n"
                f"  avatar:  {self.folder / 'run'}  (try: styleavatar reenact {self.folder / 'run'} --drive "
                f"YOUR_VIDEO.mp4 -o out.mp4)")


def _newer(path: Path, than: float) -> bool:
    """True when ``path`` exists and was written after the time ``than`` (a finished step)."""
    return path.exists() and path.stat().st_mtime >= than


def _check_quality(summary, min_psnr: float | None, minutes: float) -> None:
    """Stop with a clear error, not 'finished', when the trained avatar is not usable."""
    score = summary.evals[-1]["psnr"] if summary.evals else None
    if min_psnr is None or score is None or score >= min_psnr:
        return
    raise UserError(f"the demo's avatar is not usable: held-out PSNR {score:.1f} dB after {summary.iterations} "
                    f"iterations (a working run reaches 24-29 dB; below {min_psnr:g} dB it is worse than its "
                    f"starting point). "
                    f"This machine trained too slowly or wrongly: run `styleavatar doctor` and include its output "
                    f"in a bug report; `styleavatar demo --minutes {2 * minutes:g}` gives training more time")


def _step(log, n: int, text: str) -> None:
    log(f"[{n}/5] {text}")


def run_demo(folder: str | Path = "demo_output", minutes: float = 10.0, train_seconds_of_video: float = 24.0,
             preset: str = "small", progress: bool = True, log=print, min_psnr: float | None = MIN_PSNR) -> DemoSummary:
    """Run (or continue) the demo in ``folder`` (``preset`` 'tiny' makes a seconds-long smoke run).

    Raises UserError when the avatar's held-out PSNR ends below ``min_psnr`` dB (None: no check).
    """
    from .data.preprocess import preprocess
    from .data.synthetic import AstronautRig, make_clip
    from .evaluation.report import evaluate
    from .config import ReenactOptions
    from .inference.reenact import reenact
    from .training.trainer import train

    start = time.perf_counter()
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    train_clip, drive_clip = folder / "astronaut_train.mp4", folder / "astronaut_drive.mp4"
    _step(log, 1, "making the astronaut clips")
    if not (train_clip.exists() and drive_clip.exists()):
        rig = AstronautRig()
        make_clip(train_clip, frames=int(25 * train_seconds_of_video), size=512, kind="train", rig=rig)
        make_clip(drive_clip, frames=200, size=512, kind="drive", rig=rig)
    dataset = folder / "dataset"
    _step(log, 2, "preprocess")
    if not is_complete(dataset):
        pcfg = dataclasses.replace(PREPROCESS_PRESETS[preset], size=max(MODEL_PRESETS[preset].crop_size, 128),
                                   preview=False)
        log(preprocess(train_clip, dataset, pcfg, force=True, progress=progress).describe())
    run = folder / "run"
    _step(log, 3, f"train ({preset} preset, {minutes:g} min budget)")
    # Short runs: no GAN (the tiny smoke preset's would start at iteration 200; small trains without one) and
    # the rate stays at ``lr`` for the whole budget.
    tcfg = dataclasses.replace(TRAIN_PRESETS[preset], eval_minutes=max(minutes / 5, 1.0), eval_frames=32,
                               gan_start=10**9)
    summary = train([dataset], run, MODEL_PRESETS[preset], tcfg, minutes=minutes, resume=run.exists(),
                    progress=progress, log=log)
    log(summary.describe())
    _check_quality(summary, min_psnr, minutes)
    _step(log, 4, "evaluate")
    report = folder / "report"
    avatar_time = (run / "avatar.safetensors").stat().st_mtime
    if not _newer(report / "metrics.json", avatar_time):
        log(evaluate(run, dataset, [drive_clip], report, max_frames=64, progress=progress).describe())
    _step(log, 5, "reenact with the second clip")
    video = folder / "astronaut_driven.mp4"
    if not _newer(video, avatar_time):
        log(reenact(run, drive_clip, video, ReenactOptions(side_by_side=True), progress=progress).describe())
    return DemoSummary(folder, report, video, time.perf_counter() - start, summary.warning)
