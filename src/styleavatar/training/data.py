"""Training frames in memory at the network's sides, and batches with sliding-window augmentation.

A dataset's frames cover the whole crop; the network's output covers a window of it (see
:mod:`styleavatar.models.avatar`). Frames and masks are held at ``crop_size`` (8 output pixels per feature
cell), renders at ``render_size`` (2 render pixels per feature cell), so a window offset of k cells is a
shift of 8k image pixels and 2k render pixels.
"""
from __future__ import annotations

from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import cv2
import numpy as np
import torch
from tqdm import tqdm

from ..config import ModelConfig
from ..data.dataset import Dataset
from ..io.image import to_tensor
from ..rendering.render import resize_image, resize_uv
from ..tracking.face_model import EYES, MOUTH, openness

RARITY_BANDWIDTH = 0.5
"""Kernel width of the expression density, in robust standard deviations of each openness."""
RARITY_CAP = 4.0
"""No frame is drawn more than this many times as often as a frame of median density."""


@dataclass
class FrameStore:
    """Frames of one or more datasets in memory.

    frames (N, crop, crop, 3) uint8; masks (N, crop, crop) uint8; renders (N, R, R, 3) uint8;
    uvs (N, R, R, 3) float16; frame_index (N,) index within its video; identity (N,) dataset number.
    """

    frames: np.ndarray
    masks: np.ndarray
    renders: np.ndarray
    uvs: np.ndarray
    frame_index: np.ndarray
    identity: np.ndarray

    @classmethod
    def load(cls, datasets: Sequence[Dataset], split: str, cfg: ModelConfig, limit: int | None = None,
             progress: bool = True, threads: int = 2, shard: tuple[int, int] = (0, 1)) -> "FrameStore":
        """Load the ``split`` ('train' or 'test') of each dataset; ``limit`` keeps that many evenly spaced.

        shard: (rank, world) keeps every world-th frame from the rank-th: with several training processes
        each holds its own part (a frame of the paper preset takes ~10.8 MB), and together they hold all."""
        items = []
        for ident, ds in enumerate(datasets):
            idx = np.array(ds.train_indices if split == "train" else ds.test_indices)
            if limit is not None and len(idx) > limit:
                idx = idx[np.linspace(0, len(idx) - 1, limit).round().astype(int)]
            items += [(ds, ident, int(i)) for i in idx]
        rank, world = shard
        items = items[rank::world]
        if not items:
            raise ValueError(f"no frames in the {split} split")
        crop, r = cfg.crop_size, cfg.render_size

        def one(item):
            ds, ident, i = item
            mask = np.round(ds.mask(i) * 255).astype(np.uint8)
            return (resize_image(ds.frame(i), crop), resize_image(mask, crop), resize_image(ds.render(i), r),
                    resize_uv(ds.uv(i), r).astype(np.float16), i, ident)

        with ThreadPoolExecutor(threads) as pool:
            rows = list(tqdm(pool.map(one, items), total=len(items), disable=not progress,
                             desc=f"loading {split} frames", unit="frame"))
        cols = list(zip(*rows))
        return cls(np.stack(cols[0]), np.stack(cols[1]), np.stack(cols[2]), np.stack(cols[3]),
                   np.array(cols[4], dtype=np.int64), np.array(cols[5], dtype=np.int64))

    def __len__(self) -> int:
        return len(self.frames)


@dataclass
class Batch:
    """One training batch (tensors on the CPU; images in [-1, 1]).

    render, uv: (B, 3, R, R) over the crop; image: (B, 3, out, out) ground truth inside the window;
    mask: (B, 1, out, out) in [0, 1]; render_window: (B, 3, out, out) the texture render inside the window,
    upsampled (discriminator condition); frame_index, identity: (B,) long; offsets: window offsets in cells.
    """

    render: torch.Tensor
    uv: torch.Tensor
    image: torch.Tensor
    mask: torch.Tensor
    render_window: torch.Tensor
    frame_index: torch.Tensor
    identity: torch.Tensor
    offsets: list[tuple[int, int]]

    def to(self, device: torch.device, channels_last: bool = False) -> "Batch":
        fmt = torch.channels_last if channels_last else torch.contiguous_format
        moved = {k: (v.to(device, non_blocking=True, memory_format=fmt) if isinstance(v, torch.Tensor) and v.ndim == 4
                     else v.to(device) if isinstance(v, torch.Tensor) else v) for k, v in vars(self).items()}
        return Batch(**moved)

    def pinned(self) -> "Batch":
        """The batch in page-locked host memory, so :meth:`to` a GPU copies asynchronously (call it in the
        loader thread, where the copy into pinned memory overlaps the GPU's work)."""
        return Batch(**{k: v.pin_memory() if isinstance(v, torch.Tensor) else v for k, v in vars(self).items()})


def background_image(frames: np.ndarray, coverage: np.ndarray, margin: int) -> np.ndarray:
    """A static camera's background without the person's face: the per-pixel median of ``frames``
    (N, crop, crop, 3) uint8, inpainted wherever the mesh covered any of them (``coverage`` (N, R, R), > 0 on
    the mesh, at R = crop / 4) grown by ``margin`` crop pixels. The median alone holds the person's average
    face, which a driven head moved off that place uncovered as a skin-coloured crescent. Returns (crop, crop, 3)
    uint8."""
    median = np.median(frames, axis=0).astype(np.uint8)
    side = frames.shape[1]
    face = cv2.resize((coverage > 0).any(axis=0).astype(np.uint8), (side, side), interpolation=cv2.INTER_NEAREST)
    face = cv2.dilate(face, np.ones((2 * margin + 1, 2 * margin + 1), np.uint8))
    return cv2.inpaint(median, face, 5, cv2.INPAINT_TELEA)


def make_batch(store: FrameStore, rows: np.ndarray, offsets: list[tuple[int, int]], cfg: ModelConfig) -> Batch:
    """Assemble the frames ``rows`` of ``store`` with the given window offsets (cells)."""
    out, win = cfg.output_size, cfg.window
    start_img, start_r = (cfg.crop_size - out) // 2, (cfg.render_size - 2 * win) // 2
    imgs, masks, rwin = [], [], []
    for row, (dx, dy) in zip(rows, offsets):
        y0, x0 = start_img + 8 * dy, start_img + 8 * dx  # 8 image pixels per feature cell
        imgs.append(store.frames[row, y0:y0 + out, x0:x0 + out])
        masks.append(store.masks[row, y0:y0 + out, x0:x0 + out])
        ry, rx = start_r + 2 * dy, start_r + 2 * dx  # 2 render pixels per feature cell
        rwin.append(cv2.resize(store.renders[row, ry:ry + 2 * win, rx:rx + 2 * win], (out, out),
                               interpolation=cv2.INTER_LINEAR))
    return Batch(
        render=to_tensor(store.renders[rows]),
        uv=torch.from_numpy(store.uvs[rows].astype(np.float32)).permute(0, 3, 1, 2),
        image=to_tensor(np.stack(imgs)),
        mask=torch.from_numpy(np.stack(masks)[:, None] / np.float32(255)),
        render_window=to_tensor(np.stack(rwin)),
        frame_index=torch.from_numpy(store.frame_index[rows]),
        identity=torch.from_numpy(store.identity[rows]),
        offsets=list(offsets),
    )


def split_codes(datasets: Sequence[Dataset], split: str = "train") -> tuple[np.ndarray, np.ndarray]:
    """(frame index, identity) of every frame of ``split`` over ``datasets``: (N,) int64 each."""
    idx = [np.asarray(ds.train_indices if split == "train" else ds.test_indices, np.int64) for ds in datasets]
    return np.concatenate(idx), np.concatenate([np.full(len(i), k, np.int64) for k, i in enumerate(idx)])


def sample_offsets(rng: np.random.Generator, n: int, cfg: ModelConfig, sigma: float, prob: float,
                   max_offset: int) -> list[tuple[int, int]]:
    """Sliding-window offsets (cells): N(0, sigma * output_size px) rounded to cells, clipped to the canvas."""
    sigma_cells = sigma * cfg.output_size / 8
    d = np.clip(np.round(rng.normal(0, sigma_cells, size=(n, 2))), -max_offset, max_offset).astype(int)
    d[rng.random(n) >= prob] = 0
    return [(int(a), int(b)) for a, b in d]


def rarity_weights(openness_pairs: np.ndarray, strength: float) -> np.ndarray:
    """How often to draw each frame so that rare expressions are seen more: (N, 2) eye and mouth openness of
    one person's frames -> (N,) weights, 1 at the median density.

    Each openness is scaled by its robust spread (1.4826 x its median absolute deviation) and the frames'
    density estimated with a Gaussian kernel of ``RARITY_BANDWIDTH`` in those units; a frame's weight is
    (density / median density) ^ -strength, at most ``RARITY_CAP``. A talking head's eyes are open in most
    frames: with strength 0.5, anchor_71s's frames with half-closed or closed eyes (a tenth of them) make up a
    quarter of the draws. strength 0: all 1 (uniform)."""
    x = np.asarray(openness_pairs, np.float64)
    if strength <= 0 or len(x) < 2:
        return np.ones(len(x))
    spread = np.maximum(np.median(np.abs(x - np.median(x, 0)), 0) * 1.4826, 1e-6)
    z = x / spread
    density = np.empty(len(z))
    for start in range(0, len(z), 256):  # (256, N) distances at a time
        d2 = ((z[start:start + 256, None] - z[None]) ** 2).sum(-1)
        density[start:start + 256] = np.exp(-d2 / (2 * RARITY_BANDWIDTH ** 2)).mean(1)
    return np.minimum((density / np.median(density)) ** -strength, RARITY_CAP)


def store_rarity(store: FrameStore, datasets: Sequence[Dataset], strength: float) -> np.ndarray:
    """:func:`rarity_weights` of each row of ``store`` (training frames), computed per person from the
    tracked landmarks of all of that dataset's training frames, so every process of a sharded run weighs a frame
    alike. Untracked frames (``params.tracked`` False) count as median. Returns (len(store),) weights."""
    out = np.ones(len(store))
    for ident, ds in enumerate(datasets):
        idx = np.asarray(ds.train_indices)
        lm, ok = ds.arrays["landmarks"][idx], ds.params.tracked[idx]
        w = np.ones(len(idx))
        w[ok] = rarity_weights(np.stack([openness(lm[ok], EYES), openness(lm[ok], MOUTH)], 1), strength)
        rows = np.flatnonzero(store.identity == ident)
        out[rows] = w[np.searchsorted(idx, store.frame_index[rows])]
    return out


def batches(store: FrameStore, cfg: ModelConfig, batch: int, seed: int, start: int, sigma: float, prob: float,
            max_offset: int, rank: int = 0, weights: np.ndarray | None = None) -> Iterator[Batch]:
    """Endless batches; batch number i depends only on (seed, rank, i), so a resumed run draws the same ones.
    ``weights`` (len(store),): draw rows in proportion to them (None: uniformly)."""
    p = None if weights is None else weights / weights.sum()
    i = start
    while True:
        rng = np.random.default_rng([seed, rank, i])
        rows = rng.integers(0, len(store), size=batch) if p is None else rng.choice(len(store), size=batch, p=p)
        yield make_batch(store, rows, sample_offsets(rng, batch, cfg, sigma, prob, max_offset), cfg)
        i += 1
