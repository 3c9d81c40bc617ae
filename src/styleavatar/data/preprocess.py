"""``styleavatar preprocess``: a portrait video becomes a tracked, rendered training dataset.

Passes over the video (decoding is cheap next to the rest, so frames are decoded again rather than held
in memory):

1. track: decode, MediaPipe landmarks of the subject per frame;
2. fit: crop box from the face boxes, face model fit (identity, expression basis, per-frame parameters),
   smoothing and filling of untracked frames;
3. texture: decode a few frontal, near-neutral frames and bake the subject's UV texture;
4. write: decode, crop, person mask, UV and texture renders, files and the ``track.mp4`` preview.

Everything is written into a hidden ``.NAME.partial`` folder renamed into place at the end. The tracking
of pass 1 is checkpointed there, so an interrupted run resumes from it. The run holds that folder's lock
(a second preprocess of the same dataset stops with a clear error), and a partial folder that nobody has
resumed for a week is removed by the next preprocess that writes beside it.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import sys
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path

import cv2
import numpy as np
from safetensors.numpy import load_file, save_file
from tqdm import tqdm

from .. import __version__
from ..config import PreprocessConfig, to_dict, to_json
from ..errors import UserError
from ..io.atomic import STALE_FOLDER_S, folder_lock, partial_path, remove, sweep_partial_folders
from ..io.video import VideoInfo, VideoWriter, probe, read_frames, write_audio
from ..rendering.rasterize import Rasterizer, make_rasterizer
from ..rendering.render import bake_closed_eyes, bake_texture, frame_texture, render_frame
from ..tracking.crop import CropBox, crop_frame
from ..tracking.face_model import EYES, openness, openness_per_eye
from ..tracking.fit import BLINK_FRACTION, FrameParams, SubjectModel, fit_forehead_reach, reprojection_error
from ..tracking.segmentation import PersonSegmenter
from ..tracking.video import StepClock, check_tracked, fit_tracked, timed_frames, track_landmarks
from .dataset import (FORMAT, FORMAT_VERSION, encode_uv, frame_name, is_complete, save_face_model,
                      save_params)

SUBFOLDERS = ("frames", "masks", "renders", "uv")


@dataclass
class PreprocessSummary:
    """What a preprocess run produced."""

    output: Path
    frames: int
    tracked_fraction: float
    seconds: float
    reprojection_px: float
    timings: dict[str, float] = field(default_factory=dict)
    """Seconds spent in each step: decode, landmarks, fit, texture, render, mask, write, preview."""
    resumed: bool = False
    blinks: int = 0
    """Training frames the shut-eye texture was baked from (0: the person never shuts both eyes in them, and
    renders keep the open eyes' texture)."""

    def describe(self) -> str:
        return (f"wrote {self.output}: {self.frames} frames, {100 * self.tracked_fraction:.1f}% tracked, "
                f"landmark error {self.reprojection_px:.2f} px, {self.seconds:.1f} s "
                f"({self.frames / max(self.seconds, 1e-9):.1f} frames/s); "
                + (f"shut eyes drawn from {self.blinks} blink frames" if self.blinks else
                   "no full blink in the training frames, so renders draw a blink as a narrowed eye"))


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _check_output(out: Path, force: bool) -> None:
    if out.exists() and not out.is_dir():
        raise UserError(f"output path exists and is a file, not a dataset folder: {out}")
    if out.is_dir() and not force:
        if is_complete(out):
            raise UserError(f"{out} already holds a complete dataset; use --force to overwrite it")
        if any(out.iterdir()):
            raise UserError(f"{out} exists and is not a styleavatar dataset; choose another path or use --force")


def _tracking_key(video_sha: str, cfg: PreprocessConfig) -> dict:
    return {"sha256": video_sha, "fps": cfg.fps, "max_frames": cfg.max_frames, "max_faces": cfg.max_faces}


def _load_checkpoint(partial: Path, key: dict):
    try:
        if json.loads((partial / "tracking.json").read_text()) != key:
            return None
        t = load_file(str(partial / "tracking.safetensors"))
        return t["landmarks"], t["time"], t["source_index"]
    except (OSError, ValueError, KeyError):
        return None


GAZE_WEIGHT = 25.0
"""Score points per eye width of gaze away from the video's median gaze when texture frames are picked (a
glance of 0.2 eye widths costs as much as 5 degrees of head turn)."""


def _texture_frames(params: FrameParams, subject: SubjectModel, count: int) -> np.ndarray:
    """Indices of the most frontal, most neutral tracked frames with open eyes looking ahead, spread over the video.

    The texture is a weighted mean of these frames in UV space, so a blink or a glance in one of them leaves a
    half-closed lid or a ghost iris in every render (and, with the known base, in every generated frame):
    closing eyes are passed over while the segment has others, and gaze away from the median costs
    :data:`GAZE_WEIGHT` per eye width."""
    euler = np.abs(params.euler())
    neutral = np.linalg.norm(params.expression / (subject.coeff_rms + 1e-8), axis=1)
    seen = params.tracked if params.tracked.any() else np.ones(len(params), bool)
    eyes = openness(subject.shape(params.expression), EYES)
    closing = eyes < BLINK_FRACTION * np.median(eyes[seen])
    glance = np.abs(params.gaze - np.median(params.gaze[seen], 0)).sum(1)  # eye widths
    score = (euler[:, 0] + euler[:, 1] + 2.0 * neutral + GAZE_WEIGHT * glance + np.where(closing, 1e3, 0)
             + np.where(params.tracked, 0, 1e6))
    # Best frame of each of `count` equal segments, so lighting changes over the video are averaged.
    segments = np.array_split(np.arange(len(score)), min(count, len(score)))
    return np.array([seg[np.argmin(score[seg])] for seg in segments if len(seg)])


SHUT_FRACTION = 0.25
"""Both eyes under this fraction of their median openness: a frame of a blink, whose lids the closed-eye
texture is baked from."""
BLINK_FRAMES = 8
"""Most blink frames the closed-eye texture is baked from."""
BLINK_GAP = 3
"""Fewest frames between two blink frames picked (so they come from different blinks where there are some)."""


def _blink_frames(eyes: np.ndarray, frames: np.ndarray) -> np.ndarray:
    """Indices, among ``frames``, of up to :data:`BLINK_FRAMES` with both eyes shut (under :data:`SHUT_FRACTION`
    of their median openness over ``frames``), the most shut first, :data:`BLINK_GAP` apart; empty when the
    person never blinks fully in them.

    eyes: (N, 2) openness of each eye in every frame (:func:`openness_per_eye`); frames: (M,) candidates."""
    if not len(frames):
        return frames
    shut = (eyes[frames] < SHUT_FRACTION * np.median(eyes[frames], 0)).all(1)
    picked: list[int] = []
    for i in frames[shut][np.argsort(eyes[frames[shut]].max(1))]:
        if all(abs(i - j) >= BLINK_GAP for j in picked):
            picked.append(int(i))
        if len(picked) == BLINK_FRAMES:
            break
    return np.array(picked, int)


OUTLINE_FRAMES = 32
"""Training frames, evenly spaced, whose person masks the forehead band's reach is fitted to."""


def _bake(video: Path, cfg: PreprocessConfig, crop: CropBox, params: FrameParams, subject: SubjectModel,
          rasterizer: Rasterizer, train: range) -> tuple[SubjectModel, np.ndarray]:
    """The subject with its forehead band fitted to the head's outline in the tracked training frames
    (:func:`~styleavatar.tracking.fit.fit_forehead_reach`) and its textures: open eyes from the most frontal,
    neutral frames; shut lids from the blinks of the tracked training frames, with the openness of each eye
    open (their median) and shut (the blinks' mean); none without a blink. Returns it and the indices of the
    blink frames."""
    eyes = openness_per_eye(subject.shape(params.expression))  # (N, 2) right, left
    seen = np.array([i for i in train if params.tracked[i]], int)
    opened = set(_texture_frames(params, subject, cfg.texture_frames).tolist())
    blinks = _blink_frames(eyes, seen)
    outline = seen[np.unique(np.linspace(0, len(seen) - 1, min(OUTLINE_FRAMES, len(seen))).astype(int))]
    wanted = opened | set(blinks.tolist()) | set(outline.tolist())
    crops: dict[int, np.ndarray] = {}
    for frame in read_frames(video, cfg.fps, max(wanted) + 1):
        if frame.index in wanted:
            crops[frame.index] = crop_frame(frame.rgb, crop, cfg.size)
    outline = np.array([i for i in outline if i in crops], int)
    if len(outline):  # else the default band
        segmenter = PersonSegmenter()
        masks = np.stack([segmenter(crops[i]) for i in outline])
        subject = replace(subject, forehead_reach=fit_forehead_reach(masks, params.select(outline), subject))
    verts = params.vertices(subject)
    found = [i for i in sorted(opened) if i in crops]
    texture = bake_texture(rasterizer, [crops[i] for i in found], [verts[i] for i in found], cfg.texture_size)
    if not len(blinks):
        return replace(subject, texture=texture), blinks
    closed = bake_closed_eyes(rasterizer, [crops[int(i)] for i in blinks], [verts[i] for i in blinks], texture)
    reference = np.stack([np.median(eyes[seen], 0), eyes[blinks].mean(0)], 1)  # (2 eyes, open / shut)
    return replace(subject, texture=texture, closed_texture=closed, eye_openness=reference), blinks


def _preview_row(crop_rgb: np.ndarray, tex: np.ndarray, uv: np.ndarray, mask: np.ndarray, r: int) -> np.ndarray:
    small = cv2.resize(crop_rgb, (r, r), interpolation=cv2.INTER_AREA)
    m = cv2.resize(mask, (r, r), interpolation=cv2.INTER_AREA)
    return np.concatenate([small, tex, np.round(uv * 255).astype(np.uint8), np.repeat(m[..., None], 3, 2)], 1)


def _write_frames(video: Path, info: VideoInfo, cfg: PreprocessConfig, crop: CropBox, verts: np.ndarray,
                  subject: SubjectModel, expression: np.ndarray, rasterizer: Rasterizer, root: Path,
                  clock: StepClock, progress: bool) -> int:
    """Pass 4: frames, masks, renders, UV renders and the preview video."""
    for sub in SUBFOLDERS:
        (root / sub).mkdir(exist_ok=True)
    segmenter = PersonSegmenter()
    pending: list[Future] = []
    jpeg = [cv2.IMWRITE_JPEG_QUALITY, cfg.jpeg_quality]
    r = cfg.render_size
    bar = tqdm(total=len(verts), desc="rendering", unit="frame", disable=not progress, file=sys.stderr,
               dynamic_ncols=True)
    count = 0
    with ThreadPoolExecutor(2) as pool, contextlib.ExitStack() as stack:
        stack.callback(segmenter.close)
        stack.callback(bar.close)
        writer = stack.enter_context(VideoWriter(root / "track.mp4", cfg.fps or info.fps, crf=23)) \
            if cfg.preview else None
        for frame in timed_frames(video, cfg, clock):
            t = time.perf_counter()
            rgb = crop_frame(frame.rgb, crop, cfg.size)
            t = clock.add("crop", t)
            mask = np.round(segmenter(rgb) * 255).astype(np.uint8)
            t = clock.add("mask", t)
            texture = frame_texture(subject, expression[frame.index])
            uv, tex = render_frame(rasterizer, verts[frame.index], texture, r)
            t = clock.add("render", t)
            name = frame_name(frame.index)
            pending += [
                pool.submit(cv2.imwrite, str(root / "frames" / f"{name}.jpg"), rgb[..., ::-1], jpeg),
                pool.submit(cv2.imwrite, str(root / "masks" / f"{name}.png"), mask),
                pool.submit(cv2.imwrite, str(root / "renders" / f"{name}.png"), tex[..., ::-1]),
                pool.submit(cv2.imwrite, str(root / "uv" / f"{name}.png"), encode_uv(uv)),
            ]
            if writer:
                writer.write(_preview_row(rgb, tex, uv, mask, r))
            t = clock.add("preview", t)
            while len(pending) > 64:  # bound memory; surface write errors early
                if not pending.pop(0).result():
                    raise UserError(f"cannot write into {root} (disk full or not writable?)")
            clock.add("write", t)
            count += 1
            bar.update()
        t = time.perf_counter()
        if not all(f.result() for f in pending):
            raise UserError(f"cannot write into {root} (disk full or not writable?)")
        clock.add("write", t)
    return count


def preprocess(video: str | Path, output: str | Path, config: PreprocessConfig | None = None,
               force: bool = False, progress: bool = True, log=print) -> PreprocessSummary:
    """Turn a portrait video into a dataset folder (see docs/dataset-format.md).

    Args:
        video: any video file ffmpeg reads.
        output: dataset folder to create.
        config: preprocessing options (None: the defaults).
        force: overwrite an existing dataset and discard an interrupted run.
        progress: show progress bars on stderr.
        log: where one-line status messages go.
    Raises:
        UserError: bad input (unreadable video, no or too small face, sideways video, bad output path).
    """
    video, out = Path(video), Path(output)
    _check_output(out, force)
    info = probe(video)
    for old in sweep_partial_folders(out.parent):
        log(f"removed {old}: an interrupted preprocess nobody resumed for {STALE_FOLDER_S / 86400:g} days")
    partial = partial_path(out)
    with folder_lock(partial, "a preprocess of this dataset"):  # one writer per dataset
        try:
            return _preprocess(video, out, info, config or PreprocessConfig(), force, progress, log)
        except UserError:
            remove(partial)  # bad input: nothing worth resuming
            raise


def _preprocess(video: Path, out: Path, info: VideoInfo, cfg: PreprocessConfig, force: bool, progress: bool,
                log) -> PreprocessSummary:
    start = time.perf_counter()
    clock = StepClock()
    sha = sha256_file(video)
    partial = partial_path(out)
    key = _tracking_key(sha, cfg)
    ckpt = None if force else _load_checkpoint(partial, key)
    if ckpt is None:
        for old in partial.iterdir():  # start afresh; the lock file stays (held by this process)
            if old.name != ".lock":
                remove(old)
        landmarks, times, sources, misses = track_landmarks(video, info, cfg, clock, progress)
        check_tracked(video, landmarks, misses, cfg)
        save_file({"landmarks": landmarks, "time": times, "source_index": sources},
                  str(partial / "tracking.safetensors"))
        (partial / "tracking.json").write_text(json.dumps(key))
    else:
        log(f"resuming: reusing the tracking saved by an interrupted run in {partial}")
        landmarks, times, sources = ckpt
    tracked = ~np.isnan(landmarks[:, 0, 0])
    fraction = float(tracked.mean())

    t = time.perf_counter()
    fps = cfg.fps or info.fps
    crop, norm, subject, params, size_px = fit_tracked(video, info, cfg, landmarks)
    reproj = float(np.nanmedian(reprojection_error(subject, params, norm)) * cfg.render_size)
    t = clock.add("fit", t)
    rasterizer = make_rasterizer(cfg.rasterizer)
    n_train = int(round(cfg.train_fraction * len(landmarks)))
    subject, blinks = _bake(video, cfg, crop, params, subject, rasterizer, range(n_train))
    verts = params.vertices(subject)
    clock.add("texture", t)

    n = _write_frames(video, info, cfg, crop, verts, subject, params.expression, rasterizer, partial, clock,
                      progress)
    if n != len(landmarks):
        raise UserError(f"{video.name} decoded to {n} frames in one pass and {len(landmarks)} in another")
    t = time.perf_counter()
    save_params(partial / "params.safetensors", params, norm, times, sources)
    save_face_model(partial, subject)
    cv2.imwrite(str(partial / "texture.png"), subject.texture[..., ::-1])
    has_audio = info.audio_codec is not None and write_audio(video, partial / "audio.m4a", 0.0, n / fps)
    (partial / "config.json").write_text(to_json(cfg))
    clock.add("write", t)
    meta = {
        "format": FORMAT, "version": FORMAT_VERSION, "styleavatar_version": __version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "source": {"path": str(video.resolve()), "sha256": sha, "width": info.width, "height": info.height,
                   "fps": info.fps, "duration": info.duration, "rotation": info.rotation, "codec": info.codec,
                   "audio_codec": info.audio_codec},
        "fps": fps, "frame_count": n, "size": cfg.size, "render_size": cfg.render_size,
        "texture_size": cfg.texture_size, "expression_dims": int(subject.basis.shape[0]),
        "crop_box": crop.as_dict(), "face_size_px": round(size_px, 1),
        "tracked_fraction": round(fraction, 4), "untracked_frames": int((~tracked).sum()),
        "split": {"train": [0, n_train], "test": [n_train, n]}, "blink_frames": blinks.tolist(),
        "forehead_reach": list(subject.forehead_reach),
        "reprojection_error_px": round(reproj, 3), "rasterizer": rasterizer.name,
        "audio": "audio.m4a" if has_audio else None,
        "timings_s": {k: round(v, 3) for k, v in clock.seconds.items()},
        "config": to_dict(cfg),
    }
    (partial / "tracking.json").unlink(missing_ok=True)
    (partial / "tracking.safetensors").unlink(missing_ok=True)
    (partial / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    (partial / ".lock").unlink(missing_ok=True)
    if out.exists():
        remove(out)
    partial.rename(out)
    return PreprocessSummary(out, n, fraction, time.perf_counter() - start, reproj, dict(clock.seconds),
                             resumed=ckpt is not None, blinks=len(blinks))
