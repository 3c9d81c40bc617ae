"""Tracking a whole video: landmarks of its subject in every frame, then the face model fit.

:func:`track_video` is what drivers of reenactment and the motion measures use; ``preprocess`` runs the
same two steps (:func:`track_landmarks`, :func:`fit_tracked`) and checkpoints between them.
"""
from __future__ import annotations

import dataclasses

import sys
import time
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from ..config import PreprocessConfig
from ..errors import UserError
from ..io.prefetch import prefetch
from ..io.video import VideoInfo, probe, read_frames
from .crop import CropBox, choose_crop, face_size
from .face_model import NUM_LANDMARKS
from .fit import FrameParams, SubjectModel, fit_landmarks
from .landmarks import FaceTracker, detect_face_boxes, landmark_box


class StepClock:
    """Accumulates seconds per named step."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    def add(self, name: str, since: float) -> float:
        now = time.perf_counter()
        self.seconds[name] = self.seconds.get(name, 0.0) + now - since
        return now


def expected_frames(info: VideoInfo, cfg: PreprocessConfig) -> int:
    n = int(round(info.duration * cfg.fps)) if cfg.fps else info.frame_count
    return min(n, cfg.max_frames) if cfg.max_frames else n


def timed_frames(video: Path, cfg: PreprocessConfig, clock: StepClock):
    """Decoded frames in a background thread; decoding time is booked under 'decode'."""
    def gen():
        it = read_frames(video, cfg.fps, cfg.max_frames)
        while True:
            t = time.perf_counter()
            try:
                frame = next(it)
            except StopIteration:
                return
            clock.add("decode", t)
            yield frame
    return prefetch(gen())


def track_landmarks(video: Path, info: VideoInfo, cfg: PreprocessConfig, clock: StepClock, progress: bool):
    """Pass 1: landmarks of the subject in every frame (NaN rows where not found)."""
    tracker = FaceTracker(cfg.max_faces)
    marks, times, sources, misses = [], [], [], []
    bar = tqdm(total=expected_frames(info, cfg), desc="tracking", unit="frame", disable=not progress,
               file=sys.stderr, dynamic_ncols=True)
    try:
        for frame in timed_frames(video, cfg, clock):
            t = time.perf_counter()
            lm = tracker(frame.rgb)
            clock.add("landmarks", t)
            if lm is None:
                lm = np.full((NUM_LANDMARKS, 3), np.nan)
                if len(misses) < 8 and (not misses or frame.index - misses[-1][0] >= info.fps):
                    misses.append((frame.index, frame.rgb))
            marks.append(lm)
            times.append(frame.time)
            sources.append(frame.source_index)
            bar.update()
    finally:
        bar.close()
        tracker.close()
    if not marks:
        raise UserError(f"cannot read video {video}: no frames decoded")
    return np.stack(marks), np.array(times), np.array(sources), misses


def fit_tracked(video: Path, info: VideoInfo, cfg: PreprocessConfig, landmarks: np.ndarray
                ) -> tuple[CropBox, np.ndarray, SubjectModel, FrameParams, float]:
    """Crop box, crop-normalised landmarks, face model fit and median face size (px) of tracked landmarks.

    landmarks: (N, 478, 3) source-pixel landmarks, NaN rows where no face was found.
    Raises UserError for a face that is too small or a sideways video.
    """
    tracked = ~np.isnan(landmarks[:, 0, 0])
    boxes = landmark_box(landmarks[tracked])
    size_px = face_size(boxes)
    if size_px < cfg.min_face_px:
        raise UserError(f"face too small in {video.name}: {size_px:.0f} px (need >= {cfg.min_face_px} px); "
                        "use a closer or higher-resolution video")
    crop = choose_crop(boxes, info.width, info.height, cfg.portrait_scale, cfg.crop_scale)
    norm = crop.normalise(landmarks)
    subject, params = fit_landmarks(norm, tracked, cfg.fps or info.fps, cfg.expression_dims, cfg.expression_reg,
                                    cfg.identity_frames, cfg.smooth, train_fraction=cfg.train_fraction)
    roll = float(np.median(params.euler()[tracked, 2]))
    if abs(roll) > 60:
        raise UserError(f"{video.name} is sideways: the face is rolled {roll:.0f} degrees in the image; "
                        "rotate the video (or fix its rotation metadata) first")
    return crop, norm, subject, params, size_px


def driver_config() -> PreprocessConfig:
    """How a driver (or an output to be scored) is tracked: unsmoothed, every frame in the fit (no held-out
    split), faces down to 32 px, frames without a face filled from their neighbours."""
    return dataclasses.replace(PreprocessConfig(), smooth=0.0, train_fraction=1.0, min_tracked_fraction=0.0,
                               min_face_px=32)


def track_video(video: Path, cfg: PreprocessConfig, progress: bool = True
                ) -> tuple[VideoInfo, np.ndarray, CropBox, np.ndarray, SubjectModel, FrameParams]:
    """Track and fit a whole video without writing anything (drivers of reenactment).

    Returns the video info, the frame times (N,) in seconds, the crop box, the crop-normalised landmarks
    (N, 478, 3), the fitted face model and per-frame parameters. Raises UserError when too few frames
    have a face (``cfg.min_tracked_fraction``) and for the other bad inputs of :func:`fit_tracked`.
    """
    info = probe(video)
    landmarks, times, _, misses = track_landmarks(video, info, cfg, StepClock(), progress)
    check_tracked(video, landmarks, misses, cfg)
    crop, norm, subject, params, _ = fit_tracked(video, info, cfg, landmarks)
    return info, times, crop, norm, subject, params


def _small_face_size(rgb: np.ndarray, tiles: int = 5) -> float | None:
    """Size in pixels of a face too small for the tracker, found by looking at enlarged tiles of the frame."""
    h, w = rgb.shape[:2]
    th, tw = h // 3, w // 3  # overlapping third-size tiles on a tiles x tiles grid
    for y in np.linspace(0, h - th, tiles).astype(int):
        for x in np.linspace(0, w - tw, tiles).astype(int):
            k = 512 / max(th, tw)
            tile = cv2.resize(rgb[y:y + th, x:x + tw], None, fx=k, fy=k, interpolation=cv2.INTER_CUBIC)
            boxes = detect_face_boxes(tile)
            if boxes:
                return max(max(b[2] - b[0], b[3] - b[1]) for b in boxes) / k
    return None


def check_tracked(video: Path, landmarks: np.ndarray, misses: list, cfg: PreprocessConfig) -> None:
    """Raise :func:`explain_missing_face`'s error when no frame, or too few (``cfg.min_tracked_fraction``),
    of (N, 478, 3) ``landmarks`` have a face (NaN rows)."""
    fraction = float((~np.isnan(landmarks[:, 0, 0])).mean())
    if fraction == 0 or fraction < cfg.min_tracked_fraction:
        raise explain_missing_face(video, misses, cfg, fraction)


def explain_missing_face(video: Path, misses: list, cfg: PreprocessConfig, fraction: float) -> UserError:
    """Say why tracking failed: a face too small, a sideways video, or simply no face."""
    small = [size for _, rgb in misses[:3] if (size := _small_face_size(rgb)) is not None]
    if small and max(small) < cfg.min_face_px:
        return UserError(f"face too small in {video.name}: about {max(small):.0f} px (need >= {cfg.min_face_px} px); "
                         "use a closer or higher-resolution video")
    sample = [rgb for _, rgb in misses[:4]]
    for k, name in ((1, "counter-clockwise"), (3, "clockwise")):
        hits = sum(bool(detect_face_boxes(np.ascontiguousarray(np.rot90(rgb, k)))) for rgb in sample)
        if sample and hits > len(sample) / 2:
            return UserError(f"{video.name} is sideways: the face is upright only when the video is turned 90 "
                                 f"degrees {name}; rotate the video (or fix its rotation metadata) first")
    if fraction == 0:
        return UserError(f"no face found in {video.name}")
    return UserError(f"a face was found in only {100 * fraction:.0f}% of the frames of {video.name} "
                     f"(need {100 * cfg.min_tracked_fraction:.0f}%); trim the video to where the face is visible")
