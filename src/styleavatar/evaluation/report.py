"""``styleavatar evaluate``: score an avatar on its held-out frames and on cross-driving; write a report.

Self-reenactment uses the dataset's own renders of its test split (the last 20%, never trained on).
Cross-reenactment drives the avatar with other videos, re-tracks the output with the project's tracker
and compares its motion with the driver's (:mod:`.motion`). Outputs: ``metrics.json`` (versioned),
``index.html`` (tables, ground truth | avatar | error strips, training curves, linked videos).
"""
from __future__ import annotations

import html
import json
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from tqdm import tqdm

from ..data.dataset import Dataset, centre_window
from ..errors import UserError
from ..inference.avatar import Avatar
from ..inference.reenact import reenact
from ..io.atomic import partial_path, remove
from ..io.image import to_tensor
from ..io.video import VideoWriter
from ..io.weights import cache_dir
from ..rendering.render import resize_image, resize_uv
from ..tracking.fit import SubjectModel
from .metrics import all_metrics
from .motion import Track, compare, mesh_agreement, network_agreement

HELD_OUT_VIDEO = "held_out_avatar.mp4"
"""The avatar's held-out frames alone, written for re-tracking and deleted after it."""
METRICS_FORMAT = "styleavatar-metrics"
METRICS_VERSION = 1
INCEPTION_FILE = "inception_fid.safetensors"


@dataclass
class EvalSummary:
    output: Path
    metrics: dict
    seconds: float

    def describe(self) -> str:
        m = self.metrics["self_reenactment"]["mean"]
        lines = [f"wrote {self.output / 'index.html'} and metrics.json in {self.seconds:.0f} s",
                 f"  held-out ({self.metrics['self_reenactment']['frames']} frames): PSNR {m['psnr']:.2f} dB "
                 f"(person {m['psnr_person']:.2f}, eyes and mouth {_num(m['psnr_features'])}), SSIM {m['ssim']:.3f}, "
                 f"LPIPS {m['lpips']:.3f}, L1 {m['l1']:.4f}"]
        motion = self.metrics["self_reenactment"]["motion"]
        lines.append(f"  held-out motion: {motion['error']}" if "error" in motion else
                     f"  held-out motion, re-tracked against the person's: eyes corr. "
                     f"{_num(motion['eye_openness_corr'])} (range x{_num(motion['eye_range_ratio'])}), "
                     f"mouth corr. {_num(motion['mouth_openness_corr'])} (range x{_num(motion['mouth_range_ratio'])}), "
                     f"pose error {motion['pose_error_deg']:.2f} deg")
        for c in self.metrics["cross_reenactment"]:
            if "error" in c:
                lines.append(f"  {c['driver']}: {c['error']}")
            else:
                lines.append(f"  {c['driver']}: mouth corr. {_num(c['mesh_mouth_corr'])} mesh / "
                             f"{_num(c['mouth_openness_corr'])} image, eyes {_num(c['mesh_eye_corr'])} / "
                             f"{_num(c['eye_openness_corr'])}, pose error {c['mesh_pose_error_deg']:.2f} / "
                             f"{c['pose_error_deg']:.2f} deg, jitter x{_num(c['jitter_ratio'])} of the driver's")
        return "\n".join(lines)


def _num(v: float | None) -> str:
    return "-" if v is None else f"{v:.2f}"


CROSS_COLUMNS = (("mesh_mouth_corr", "mouth corr (mesh)"), ("mouth_openness_corr", "mouth corr (image)"),
                 ("mesh_eye_corr", "eye corr (mesh)"), ("eye_openness_corr", "eye corr (image)"),
                 ("mesh_brow_corr", "brow corr (mesh)"), ("mesh_pose_error_deg", "pose error (mesh, deg)"),
                 ("pose_error_deg", "pose error (image, deg)"), ("expression_error_mm", "expression error (mm)"),
                 ("eye_range_ratio", "eye range output / driver"), ("jitter_ratio", "jitter output / driver"),
                 ("net_mouth_corr", "mouth corr (network)"),
                 ("net_eye_corr", "eye corr (network)"), ("net_pose_error_deg", "pose error (network, deg)"))
"""Cross-reenactment columns of the report: metrics.json key, heading."""


def _error_map(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    err = np.abs(a.astype(np.float32) - b.astype(np.float32)).mean(2)
    heat = cv2.applyColorMap(np.clip(err * 4, 0, 255).astype(np.uint8), cv2.COLORMAP_INFERNO)
    return cv2.cvtColor(heat, cv2.COLOR_BGR2RGB)


def self_reenactment(avatar: Avatar, ds: Dataset, out: Path, max_frames: int | None, strips: int,
                     progress: bool) -> dict:
    """Metrics on the test split; writes self_reenactment.mp4 (truth | avatar) and strip PNGs."""
    cfg = avatar.cfg
    idx = np.array(ds.test_indices)
    if max_frames and len(idx) > max_frames:
        idx = idx[np.linspace(0, len(idx) - 1, max_frames).round().astype(int)]
    if not len(idx):
        raise UserError(f"{ds.root} has no held-out test frames")
    strip_at = set(idx[np.linspace(0, len(idx) - 1, min(strips, len(idx))).round().astype(int)].tolist())
    win = centre_window(cfg.crop_size, cfg.output_size)
    per_frame: dict[str, list[float]] = {}
    strip_rows = []
    bar = tqdm(total=len(idx), desc="held-out frames", unit="frame", disable=not progress, file=sys.stderr)
    with (VideoWriter(out / "self_reenactment.mp4", ds.meta["fps"], mark=avatar.mark()) as video,
          VideoWriter(out / HELD_OUT_VIDEO, ds.meta["fps"]) as held, bar):
        for chunk in np.array_split(idx, max(1, len(idx) // 8)):
            render, uv = avatar.to_tensors([resize_image(ds.render(i), cfg.render_size) for i in chunk],
                                           [resize_uv(ds.uv(i), cfg.render_size) for i in chunk])
            images, _ = avatar.generate(render, uv)
            truth = [ds.frame_window(int(i), cfg.crop_size, cfg.output_size) for i in chunk]
            masks = [resize_image(ds.mask(int(i)), cfg.crop_size)[win] for i in chunk]
            features = [ds.feature_window(int(i), cfg.crop_size, cfg.output_size) for i in chunk]
            scores = all_metrics(to_tensor(images, signed=False), to_tensor(np.stack(truth), signed=False),
                                 torch.from_numpy(np.stack(masks))[:, None],
                                 torch.from_numpy(np.stack(features))[:, None])
            for k, v in scores.items():
                per_frame.setdefault(k, []).extend(v.tolist())
            for i, img, gt in zip(chunk, images, truth):
                video.write(np.concatenate([gt, img], axis=1))
                held.write(img)
                if int(i) in strip_at:
                    strip_rows.append(np.concatenate([gt, img, _error_map(img, gt)], axis=1))
            bar.update(len(chunk))
    if strip_rows:
        cv2.imwrite(str(out / "strips.png"), cv2.cvtColor(np.concatenate(strip_rows, axis=0), cv2.COLOR_RGB2BGR))
    return {"frames": len(idx), "frame_indices": idx.tolist(),
            "motion": _track_held_out(out / HELD_OUT_VIDEO, ds, idx, progress),
            "mean": {k: _nanmean(v) for k, v in per_frame.items()},
            "per_frame": {k: [None if np.isnan(x) else round(x, 5) for x in v] for k, v in per_frame.items()}}


def held_out_motion(images: Iterable[np.ndarray], ds: Dataset, idx: np.ndarray, folder: Path, progress: bool
                    ) -> dict[str, float | None]:
    """Does the avatar blink and speak when the person did? Its held-out frames ``images`` ((out, out, 3)
    uint8 each, for dataset frames ``idx``) re-tracked against the dataset's tracking of those frames:
    signed eye and mouth openness correlation and range ratio, pose error and jitter
    (:func:`.motion.compare`; with ``--max-frames`` the frames are spaced apart, so read jitter only on
    consecutive ones). {"error": why} when the output cannot be tracked. The frames pass through a video in
    ``folder``, removed afterwards."""
    with VideoWriter(folder / HELD_OUT_VIDEO, ds.meta["fps"]) as video:
        for image in images:
            video.write(image)
    return _track_held_out(folder / HELD_OUT_VIDEO, ds, idx, progress)


def _track_held_out(path: Path, ds: Dataset, idx: np.ndarray, progress: bool) -> dict[str, float | None]:
    """:func:`held_out_motion` of the frames already written to the video ``path`` (deleted here)."""
    try:
        output = Track.of_video(path, progress)
    except UserError as e:
        return {"error": f"the avatar's held-out frames could not be tracked: {e}"}
    finally:
        path.unlink(missing_ok=True)
    return compare(Track(ds.arrays["landmarks"][idx], ds.params.select(idx), ds.subject), output)


def _nanmean(values: list[float]) -> float | None:
    """Mean of the values that are not NaN (a frame without that region); None when none is."""
    v = np.asarray(values, np.float64)
    return float(v[~np.isnan(v)].mean()) if (~np.isnan(v)).any() else None


def cross_reenactment(run: Path, drive: Path, out: Path, subject: SubjectModel, progress: bool) -> dict:
    """Drive the avatar with ``drive``; compare the retargeted face model with the driver's (mesh level), the
    re-tracked result with the driver's tracking (image level) and with the face model it was drawn from
    (network level)."""
    video = out / f"cross_{drive.stem}.mp4"
    result = {"driver": drive.name, "video": video.name}
    try:
        done = reenact(run, drive, video, progress=progress)
        result.update(mesh_agreement(done.motion.shapes(), done.motion.params, done.params,
                                     subject))
        output = Track.of_video(video, progress)
        result.update(compare(Track.of_video(drive, progress), output))
        result.update(network_agreement(done.params, subject, output))
    except UserError as exc:
        result["error"] = str(exc)
    return result


def training_curves(run: Path, out: Path) -> str | None:
    """Plot the run's losses and held-out PSNR from log.jsonl into curves.png; returns its name."""
    log = run / "log.jsonl"
    if not log.exists():
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    steps = [r for r in rows if "iteration" in r and "l1" in r]
    evals = [r["eval"] for r in rows if "eval" in r]
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.6))
    for key in ("l1", "mask", "vgg", "gan", "d"):
        pts = [(r["iteration"], r[key]) for r in steps if key in r]
        if pts:
            axes[0].plot(*zip(*pts), label=key, lw=1)
    axes[0].set(xlabel="iteration", ylabel="loss", yscale="log", title="training losses")
    if axes[0].lines:  # a run resumed past its last logged step has no losses to draw
        axes[0].legend(fontsize=8)
    if evals:
        axes[1].plot([e["minutes"] for e in evals], [e["psnr"] for e in evals], "o-")
        axes[1].set(xlabel="minutes", ylabel="PSNR (dB)", title="held-out PSNR during training")
    else:  # an empty frame of axes would look like a failed plot
        axes[1].axis("off")
        axes[1].text(0.5, 0.5, "no held-out scores were logged during training\n(train with --eval-minutes M)",
                     ha="center", va="center", fontsize=10)
    fig.tight_layout()
    fig.savefig(out / "curves.png", dpi=100)
    plt.close(fig)
    return "curves.png"


def _fid_status() -> dict:
    path = cache_dir() / INCEPTION_FILE
    if path.exists():
        return {"computed": False, "reason": f"{path} found, but FID is not implemented in this version"}
    return {"computed": False, "reason": f"skipped: no Inception weight file at {path} (none ships in a wheel)"}


def _html(metrics: dict, curves: str | None) -> str:
    s = metrics["self_reenactment"]["mean"]
    rows = "".join(f"<tr><td>{k}</td><td>{s[k]:.4f}</td><td>{s.get(k + '_person', float('nan')):.4f}</td></tr>"
                   for k in ("psnr", "ssim", "lpips", "l1"))
    if s.get("psnr_features") is not None:
        rows += f"<tr><td>psnr, eyes and mouth only</td><td>{s['psnr_features']:.4f}</td><td></td></tr>"
    motion = metrics["self_reenactment"]["motion"]
    held_motion = html.escape(motion["error"]) if "error" in motion else (
        f"Held-out motion, the avatar's frames re-tracked against the person's: eye openness corr "
        f"{_num(motion['eye_openness_corr'])} over {_num(motion['eye_range_ratio'])} times the person's range, "
        f"mouth openness corr {_num(motion['mouth_openness_corr'])} over {_num(motion['mouth_range_ratio'])} "
        f"times, pose error {motion['pose_error_deg']:.2f} deg.")
    cross = ""
    for c in metrics["cross_reenactment"]:
        cells = (f"<td colspan={len(CROSS_COLUMNS)}>{html.escape(c['error'])}</td>" if "error" in c else
                 "".join(f"<td>{'-' if c[k] is None else f'{c[k]:.3f}'}</td>" for k, _ in CROSS_COLUMNS))
        cross += f"<tr><td><a href='{html.escape(c['video'])}'>{html.escape(c['driver'])}</a></td>{cells}</tr>"
    curves_html = f"<h2>Training</h2><img src='{curves}'>" if curves else ""
    heads = "".join(f"<th>{html.escape(h)}</th>" for _, h in CROSS_COLUMNS)
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>styleavatar evaluation</title>
<style>body{{font-family:sans-serif;max-width:1100px;margin:2em auto}}td,th{{padding:4px 10px;border-bottom:1px solid #ddd}}
img{{max-width:100%}}</style></head><body>
<h1>Avatar evaluation</h1><p>run <code>{html.escape(metrics['run'])}</code>, dataset
<code>{html.escape(metrics['dataset'])}</code>, {metrics['self_reenactment']['frames']} held-out frames.</p>
<h2>Self-reenactment (held-out frames)</h2>
<table><tr><th>metric</th><th>full frame</th><th>person only</th></tr>{rows}</table>
<p>{held_motion}</p>
<p>Strips: ground truth | avatar | error map. <a href="self_reenactment.mp4">truth | avatar video</a></p>
<img src="strips.png">
<h2>Cross-reenactment</h2>
<p>Mesh: the retargeted face model against the driver's (no network). Image: the output re-tracked against
the driver's tracking. A fault at the image level only is the network's.</p>
<table><tr><th>driver</th>{heads}</tr>{cross}</table>
<p>FID: {html.escape(metrics['fid']['reason'])}</p>{curves_html}</body></html>
"""


def evaluate(run: str | Path, dataset: str | Path, drives: list[str | Path], output: str | Path,
             max_frames: int | None = None, strips: int = 4, progress: bool = True,
             device: str = "auto") -> EvalSummary:
    """Score the avatar in ``run``; write metrics.json and index.html into ``output``. device: where the
    avatar's network runs (see :func:`styleavatar.runtime.pick_device`)."""
    start = time.perf_counter()
    run, output = Path(run), Path(output)
    avatar = Avatar.load(run, device=device)
    if progress:
        print(avatar.placement(), file=sys.stderr)
    ds = Dataset.open(dataset)
    missing = [str(d) for d in drives if not Path(d).exists()]
    if missing:
        raise UserError(f"driver not found: {', '.join(missing)}")
    work = partial_path(output)  # written here, renamed into place when complete
    remove(work)
    work.mkdir(parents=True)
    metrics = {"format": METRICS_FORMAT, "version": METRICS_VERSION, "run": str(run.resolve()),
               "dataset": str(Path(dataset).resolve()), "output_size": avatar.cfg.output_size,
               "self_reenactment": self_reenactment(avatar, ds, work, max_frames, strips, progress),
               "cross_reenactment": [cross_reenactment(run, Path(d), work, avatar.subject, progress) for d in drives],
               "fid": _fid_status()}
    curves = training_curves(run, work)
    (work / "index.html").write_text(_html(metrics, curves))
    (work / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    remove(output)
    work.rename(output)
    return EvalSummary(output, metrics, time.perf_counter() - start)
