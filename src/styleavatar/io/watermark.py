"""An invisible, robust mark in the pixels of every synthetic frame, and its detector.

Scheme (spread spectrum on a periodic tile, after Kutter's self-referencing marks):

* A **tile** of 16 x 16 cells holds 142 *sync* cells (a fixed pseudo-random +-1 chip each) and 114 *payload*
  cells: the 32 payload bits, convolutionally coded (rate 1/3, constraint length 7), one coded bit per cell
  scattered over the tile, chip x (+1 for a 1 bit, -1 for a 0 bit).
  The chips and the layout come from :data:`KEY`: a detector without it sees noise.
* The tile is repeated over the frame (its side is a quarter of the frame's shorter side, at least 64 px) and
  added to the luminance (the same value to R, G and B), scaled by the local texture so that flat skin gets
  less than hair or background. The root-mean-square change is :data:`AMPLITUDE` levels of 255 (PSNR about
  40.9 dB). The same tile is in every frame, so a clip's frames add up.
* **Detection** needs no original: the image is high-passed and brought to a common local contrast (a clip: each
  frame, then averaged), cut into tile-sized
  pieces that are summed ("folded"), and the fold is correlated with the sync chips at every cyclic shift
  (one FFT). Cropping only shifts the tile, so the shift search undoes it; scaling changes the tile's size in
  pixels, so the fold is tried first where an uncropped frame's tile is at any scale (a quarter or half of
  the shorter side, or all of it, starting at the corner), then at all shifts and all sizes from 18% to 105%
  of it (0.6% steps, then refined). The peak's height in standard deviations of the correlation map is the
  detection score ``z``.
* The payload is read at the peak (soft-decision Viterbi) and checked with a CRC-8. A mark is *found*
  when ``z`` passes :data:`Z_AT_PRIOR` at the prior sizes, :data:`Z_MARK` anywhere, or
  :data:`Z_WITH_PAYLOAD` with a matching CRC. The payload needs a stronger signal than the sync (32 bits from
  114 cells, one yes/no from 142): after heavy re-encoding the mark is often found with its payload unreadable.

Everything is numpy + OpenCV on (H, W, 3) uint8 RGB frames; no network, no file I/O.
"""
from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

KEY = "styleavatar/watermark/v1"
"""Seeds the chips and the cell layout; it is the project's identity in the mark."""
FORMAT_VERSION = 1
"""Payload format version (4 bits)."""
CELLS = 16
"""Cells per tile side."""
BITS = 32
"""Payload bits: version (4), flags (4), avatar id prefix (16), CRC-8 (8)."""
CODE_GENERATORS = (0o133, 0o171, 0o165)
"""Convolutional code of the payload: rate 1/3, constraint length 7 (the generators of LTE's control
channel), terminated with 6 zero bits and decoded by soft-decision Viterbi."""
CONSTRAINT = 7
CODED_BITS = len(CODE_GENERATORS) * (BITS + CONSTRAINT - 1)
"""Coded payload bits, one cell each (114)."""
SYNC_CELLS = CELLS * CELLS - CODED_BITS
"""Cells carrying the fixed sync chips (142); the others carry one coded payload bit each."""
CANONICAL_CELL = 4
"""Cell side in pixels of the detector's working scale (the tile is ``CELLS * CANONICAL_CELL`` = 64 px there)."""
MIN_TILE = 64
"""Smallest tile side in pixels of a marked frame (frames of 64-256 px carry a 64-px tile)."""
TILES_PER_SIDE = 4
"""Tiles across the shorter side of frames larger than ``MIN_TILE * TILES_PER_SIDE``."""
AMPLITUDE = 2.45
"""Root-mean-square change of each frame, in levels of 255 (PSNR = 20 log10(255 / AMPLITUDE) = 40.4 dB before
rounding to 8 bits; measured on real 256^2 frames: 40.9 dB median, 40.8 lowest). Frames marked at the earlier
2.2 are found by the same detector, a little less robustly."""
Z_MARK = 8.0
"""Detection score (standard deviations of the sync correlation map's values) above which the mark counts as
found on its own: only this project's frames carry the sync chips of :data:`KEY`. Unmarked clips, frames and
photos score at most 7.0 there (BENCHMARKS.md, provenance: a 50% downscale plus CRF 28 puts H.264's block grid
at a tile size of the search)."""
Z_AT_PRIOR = 5.0
"""Score that counts as found where an uncropped frame's tile is, at any scale: tile sides of a quarter, half
or all of the shorter side (see :func:`tile_side`; scaling keeps that ratio), starting at the top-left corner
(:data:`CORNER`). 351 (size, shift) pairs are tried there against about 1.3 million in the full search, so
noise peaks are far lower (unmarked content: at most 4.4 in BENCHMARKS.md's set)."""
Z_WITH_PAYLOAD = 6.0
"""Score of the full search that counts as found when the payload's CRC-8 also matches (1 in 256 by accident)."""
PRIOR_FRACTIONS = (1 / TILES_PER_SIDE, 1 / 2, 1.0)
"""Tile sides of uncropped frames, as fractions of the shorter side."""
FINE_STEPS = np.arange(-0.006, 0.0061, 0.001)
"""Log-scale offsets tried around a candidate tile size (0.1% steps over +-0.6%)."""
SEARCH_STEP = math.log(1.006)
"""Log-scale step of the full search over :data:`TILE_RANGE` (0.6%)."""
SYNTHETIC_FLAG = 1
"""Flag bit: the frame was generated by a network (always set by this project)."""
TILE_RANGE = (0.18, 1.05)
"""Tile sizes tried by the detector, as fractions of the image's shorter side."""
WHITEN_SIGMA = 0.8
"""Gaussian sigma (pixels of the image being whitened: a frame of a clip, or the detector's working scale) of the
blur subtracted to high-pass images and templates."""
CONTRAST_SIGMA = 4.0
"""Gaussian sigma (pixels, as :data:`WHITEN_SIGMA`) of the window over which the high-passed image's local
root-mean-square is measured and divided out: hair, edges and block artefacts then count no more than the
flat skin where the mark stands alone (:func:`_whiten`)."""
CONTRAST_FLOOR = 0.5
"""Added to the local root-mean-square, as a fraction of the whole image's, so that flat areas (where the
high-pass is mostly rounding) are not blown up."""


@dataclass(frozen=True)
class Payload:
    """What a mark says."""

    avatar: int = 0
    """First 16 bits of the avatar's id (sha256 of its ``avatar.safetensors``), 0 when unknown."""
    version: int = FORMAT_VERSION
    """Payload format version, 0-15."""
    flags: int = SYNTHETIC_FLAG
    """4 flag bits; bit 0: synthetic."""

    @classmethod
    def for_avatar(cls, avatar_sha256: str | None) -> "Payload":
        """The payload of frames made by the avatar whose sha256 (hex) is given."""
        return cls(avatar=int(avatar_sha256[:4], 16) if avatar_sha256 else 0)

    @property
    def avatar_prefix(self) -> str:
        """The avatar id prefix as 4 hex digits: the start of the sha256 of its ``avatar.safetensors``."""
        return f"{self.avatar:04x}"

    @property
    def synthetic(self) -> bool:
        return bool(self.flags & SYNTHETIC_FLAG)

    def bits(self) -> np.ndarray:
        """(32,) uint8 0/1, most significant first: version, flags, avatar, CRC-8 of the first 3 bytes."""
        head = bytes([(self.version & 15) << 4 | (self.flags & 15), self.avatar >> 8 & 255, self.avatar & 255])
        return np.unpackbits(np.frombuffer(head + bytes([crc8(head)]), np.uint8))

    @classmethod
    def from_bits(cls, bits: np.ndarray) -> "Payload | None":
        """Inverse of :meth:`bits`; None when the CRC does not match."""
        data = np.packbits(np.asarray(bits, np.uint8)).tobytes()
        if crc8(data[:3]) != data[3]:
            return None
        return cls(avatar=data[1] << 8 | data[2], version=data[0] >> 4, flags=data[0] & 15)


def crc8(data: bytes) -> int:
    """CRC-8 (polynomial 0x07, as in ATM HEC / SMBus) of ``data``."""
    crc = 0
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc << 1 ^ 0x07) & 255 if crc & 128 else crc << 1 & 255
    return crc


def _parity(x: np.ndarray) -> np.ndarray:
    """Parity (0/1) of each integer in ``x``."""
    x = np.asarray(x, np.int64)
    out = np.zeros_like(x)
    while np.any(x):
        out ^= x & 1
        x = x >> 1
    return out


@lru_cache(maxsize=1)
def _trellis() -> tuple[np.ndarray, np.ndarray]:
    """(next state, coded outputs) of the convolutional code, shapes (64, 2) and (64, 2, 3): for each state
    (the last 6 input bits, newest in the high bit) and input bit."""
    states = np.arange(1 << (CONSTRAINT - 1))
    nxt = np.empty((len(states), 2), np.int64)
    out = np.empty((len(states), 2, len(CODE_GENERATORS)), np.int64)
    for b in (0, 1):
        reg = b << (CONSTRAINT - 1) | states  # the 7-bit shift register: new bit, then the state
        nxt[:, b] = reg >> 1
        out[:, b] = np.stack([_parity(reg & g) for g in CODE_GENERATORS], axis=-1)
    return nxt, out


def encode_bits(bits: np.ndarray) -> np.ndarray:
    """(BITS,) 0/1 -> (CODED_BITS,) 0/1: the convolutional code of ``bits`` followed by 6 zero tail bits."""
    nxt, out = _trellis()
    state, coded = 0, []
    for b in [*np.asarray(bits, int), *[0] * (CONSTRAINT - 1)]:
        coded.extend(out[state, b])
        state = nxt[state, b]
    return np.array(coded, np.uint8)


def viterbi(soft: np.ndarray) -> tuple[np.ndarray, float]:
    """Soft-decision decoding of :func:`encode_bits`. ``soft``: (CODED_BITS,) values, positive for a 1 bit.

    Returns the (BITS,) 0/1 bits of the most likely terminated path and its agreement (-1..1): the path's
    correlation with ``soft`` over the sum of |soft| (1: every coded bit on the path's side)."""
    nxt, out = _trellis()
    n_states, k = nxt.shape[0], len(CODE_GENERATORS)
    steps = soft.reshape(-1, k)
    metric = np.full(n_states, -np.inf)
    metric[0] = 0.0
    back = []
    # each next state t = (b << 5) | (p >> 1) has two predecessors p = 2 (t & 31) + {0, 1}, both with input b
    t = np.arange(n_states)
    b = t >> (CONSTRAINT - 2)
    prev = np.stack([(t & (n_states // 2 - 1)) << 1, ((t & (n_states // 2 - 1)) << 1) | 1], axis=1)  # (64, 2)
    for s in steps:
        gain = ((2.0 * out[prev, b[:, None]] - 1.0) * s).sum(axis=-1)  # (64, 2): branch correlation
        total = metric[prev] + gain
        pick = np.argmax(total, axis=1)
        metric = total[t, pick]
        back.append(np.stack([prev[t, pick], b], axis=1))  # survivor: (previous state, input bit)
    state, bits = 0, []  # the tail returns the encoder to state 0
    for src in reversed(back):
        state, b = src[state]
        bits.append(b)
    decoded = np.array(bits[::-1][:BITS], np.uint8)
    return decoded, float(metric[0] / (np.abs(soft).sum() + 1e-12))


@dataclass(frozen=True)
class _Layout:
    chips: np.ndarray
    """(CELLS, CELLS) float32 +-1 pseudo-random chip of each cell."""
    sync: np.ndarray
    """(CELLS, CELLS) bool: the sync cells."""
    bit_of_cell: np.ndarray
    """(CELLS, CELLS) int: payload bit index of each payload cell, -1 on sync cells."""


@lru_cache(maxsize=1)
def _layout() -> _Layout:
    seed = int.from_bytes(hashlib.sha256(KEY.encode()).digest()[:8], "little")
    rng = np.random.default_rng(seed)
    order = rng.permutation(CELLS * CELLS)
    chips = rng.choice(np.array([-1.0, 1.0], np.float32), CELLS * CELLS)
    bit_of_cell = np.full(CELLS * CELLS, -1)
    bit_of_cell[order[SYNC_CELLS:]] = np.arange(CODED_BITS)  # coded bit k on one pseudo-randomly placed cell
    return _Layout(chips.reshape(CELLS, CELLS), (bit_of_cell < 0).reshape(CELLS, CELLS),
                   bit_of_cell.reshape(CELLS, CELLS))


def _cell_values(payload: Payload) -> np.ndarray:
    """(CELLS, CELLS) float32 +-1: each cell's chip times its sign (sync: +1, payload: 2 b - 1)."""
    lay = _layout()
    sign = np.where(lay.sync, 1.0, 2.0 * encode_bits(payload.bits())[lay.bit_of_cell] - 1.0)
    return (lay.chips * sign).astype(np.float32)


def tile_side(height: int, width: int) -> int:
    """Tile side in pixels of a marked frame of this size."""
    return max(MIN_TILE, round(min(height, width) / TILES_PER_SIDE))


@lru_cache(maxsize=8)
def _frame_pattern(payload: Payload, height: int, width: int) -> np.ndarray:
    """(H, W) float32 +-1: the tile repeated over the frame from its top-left corner."""
    side = tile_side(height, width)
    tile = cv2.resize(_cell_values(payload), (side, side), interpolation=cv2.INTER_NEAREST)
    reps = (math.ceil(height / side), math.ceil(width / side))
    return np.tile(tile, reps)[:height, :width]


def _luma(rgb: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 RGB -> (H, W) float32 luminance (BT.601), 0-255."""
    return rgb.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)


def _texture_mask(luma: np.ndarray) -> np.ndarray:
    """(H, W) float32 weight, 0.5-2.0, of each pixel by the local standard deviation of the luminance:
    the mark hides in texture and stays faint on flat skin and sky."""
    mean = cv2.GaussianBlur(luma, (0, 0), 2.0)
    std = np.sqrt(np.maximum(cv2.GaussianBlur(luma * luma, (0, 0), 2.0) - mean * mean, 0.0))
    return np.clip(std / 6.0, 0.5, 2.0)


def embed(rgb: np.ndarray, payload: Payload) -> np.ndarray:
    """Mark one frame. (H, W, 3) uint8 RGB -> (H, W, 3) uint8 RGB, root-mean-square change ~AMPLITUDE."""
    h, w = rgb.shape[:2]
    delta = _frame_pattern(payload, h, w) * _texture_mask(_luma(rgb))
    delta *= AMPLITUDE / max(float(np.sqrt(np.mean(delta * delta))), 1e-6)
    return np.clip(rgb.astype(np.float32) + delta[..., None] + 0.5, 0, 255).astype(np.uint8)


@dataclass(frozen=True)
class Detection:
    """What the detector found in an image or clip."""

    found: bool
    """The mark is there: the content was made by this project."""
    score: float
    """Height of the sync correlation peak in standard deviations, the higher of the prior tile sizes and the full
    search (unmarked content: at most 7.0 in BENCHMARKS.md's set)."""
    prior_score: float
    """The same at the prior tile sizes only (:data:`PRIOR_FRACTIONS`)."""
    payload: Payload | None
    """The decoded payload, None when its CRC does not match."""
    tile: float
    """Tile side in pixels of the input where the peak was found (its scale relative to the original)."""
    agreement: float
    """How well the decoded payload's coded bits match what was read (-1..1; 1: all on the right side)."""

    @property
    def false_alarm(self) -> float:
        """Chance that unmarked content scores this high (and passes the CRC, when it does), treating the
        correlation map's values as Gaussian: tile sizes x shifts tried, times 2^-8 for the CRC."""
        shifts = (CELLS * CANONICAL_CELL) ** 2
        search = math.log(TILE_RANGE[1] / TILE_RANGE[0]) / SEARCH_STEP + len(FINE_STEPS)
        prior = len(PRIOR_FRACTIONS) * len(FINE_STEPS) * len(CORNER)
        chances = [shifts * search * _tail(self.score) * (2.0 ** -8 if self.payload is not None else 1.0)]
        if self.prior_score >= Z_AT_PRIOR:
            chances.append(prior * _tail(self.prior_score))
        return min(1.0, *chances)


def _tail(z: float) -> float:
    """P(N(0, 1) > z)."""
    return 0.5 * math.erfc(z / math.sqrt(2.0))


def high_pass(rgb: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 RGB -> (H, W) float32 high-passed luminance; a clip's mean of these is what
    :func:`detect` takes for video (the mark is the same in every frame, the content is not)."""
    return _whiten(_luma(rgb))


def _whiten(luma: np.ndarray) -> np.ndarray:
    """High-pass (luminance minus its Gaussian blur), divided by its local root-mean-square (plus a floor:
    :data:`CONTRAST_SIGMA`, :data:`CONTRAST_FLOOR`) and clipped at 3 standard deviations, so that textured
    content and edges, the detector's noise, do not outweigh the mark.

    The division weights each pixel by the inverse of the content's local strength. On the benchmark's 14 marked
    real and astronaut clips (mark at 2.2 levels) after a 50% downscale plus CRF 28, it raised the three weakest
    scores from 4.8-4.9 to 5.0-6.2 (found: 11 -> 13 of 14)."""
    r = luma - cv2.GaussianBlur(luma, (0, 0), WHITEN_SIGMA)
    sq = r * r
    local = np.sqrt(cv2.GaussianBlur(sq, (0, 0), CONTRAST_SIGMA))
    r = r / (local + CONTRAST_FLOOR * float(np.sqrt(sq.mean())) + 1e-6)
    s = 3.0 * float(r.std()) + 1e-6
    return np.clip(r, -s, s)


def _fold(r: np.ndarray, side: int) -> np.ndarray:
    """Sum an (H, W) map over its side x side pieces (cyclically: pixel (y, x) adds to (y % side, x % side))."""
    h, w = r.shape
    hp, wp = -h % side, -w % side
    padded = np.pad(r, ((0, hp), (0, wp)))
    return padded.reshape(padded.shape[0] // side, side, padded.shape[1] // side, side).sum(axis=(0, 2))


def _whiten_tile(cells: np.ndarray) -> np.ndarray:
    """(CELLS, CELLS) cell values -> (64, 64) float32 canonical tile, high-passed as :func:`_whiten` does
    (with wrap-around: the tile is periodic)."""
    side = CELLS * CANONICAL_CELL
    tile = cv2.resize(cells.astype(np.float32), (side, side), interpolation=cv2.INTER_NEAREST)
    big = np.tile(tile, (3, 3))
    return (big - cv2.GaussianBlur(big, (0, 0), WHITEN_SIGMA))[side:2 * side, side:2 * side].copy()


@lru_cache(maxsize=1)
def _templates() -> tuple[np.ndarray, np.ndarray]:
    """Matched filters at the detector's scale: the sync cells' tile (64, 64), and one tile per payload bit
    holding only that bit's cell with its chip sign (CODED_BITS, 64, 64), all float32 and whitened."""
    lay = _layout()
    sync = _whiten_tile(np.where(lay.sync, lay.chips, 0.0))
    bits = np.stack([_whiten_tile(np.where(lay.bit_of_cell == k, lay.chips, 0.0)) for k in range(CODED_BITS)])
    return sync, bits


CORNER = np.array([(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)])
"""Cyclic shifts (canonical pixels) where an uncropped frame's tile starts: at its top-left corner, give or take
the rounding of a resize."""


def _sync_peak(luma: np.ndarray, side: float, corner: bool = False) -> tuple[float, tuple[int, int], np.ndarray]:
    """Fold ``luma`` at tile side ``side`` (pixels of ``luma``), correlate with the sync template at every cyclic
    shift, or only at :data:`CORNER` (``corner``).

    Returns (z score of the peak against the whole correlation map, its cyclic shift (dy, dx) in canonical
    pixels, the canonical fold)."""
    canon = CELLS * CANONICAL_CELL
    f = canon / side
    h, w = luma.shape
    size = (max(canon, round(w * f)), max(canon, round(h * f)))
    scaled = cv2.resize(luma, size, interpolation=cv2.INTER_AREA if f < 1 else cv2.INTER_LINEAR)
    fold = _fold(_whiten(scaled), canon)
    sync, _ = _templates()
    corr = np.fft.irfft2(np.fft.rfft2(fold) * np.conj(np.fft.rfft2(sync)), s=fold.shape)
    if corner:
        ys, xs = CORNER[:, 0] % canon, CORNER[:, 1] % canon
        i = int(np.argmax(corr[ys, xs]))
        shift = (int(ys[i]), int(xs[i]))
    else:
        shift = divmod(int(np.argmax(corr)), canon)
    z = (corr[shift] - corr.mean()) / (corr.std() + 1e-12)
    return float(z), shift, fold


def _read_payload(fold: np.ndarray, shift: tuple[int, int]) -> tuple[Payload | None, float]:
    """Soft-decode the 32 bits from a canonical fold whose tile starts at ``shift``."""
    _, bits = _templates()
    aligned = np.roll(fold, (-shift[0], -shift[1]), axis=(0, 1))
    soft = np.tensordot(bits, aligned, axes=([1, 2], [0, 1]))  # (CODED_BITS,) correlation with each cell
    decoded, agreement = viterbi(soft)
    return Payload.from_bits(decoded), agreement


def _best(luma: np.ndarray, sides, corner: bool = False) -> tuple[float, tuple[int, int], np.ndarray, float]:
    """:func:`_sync_peak`'s (score, shift, fold) and the tile side of the highest peak over ``sides``, each
    refined by :data:`FINE_STEPS` (the first of equal peaks)."""
    candidates = [float(s * f) for s in sides for f in np.exp(FINE_STEPS)]
    return max(((*_sync_peak(luma, s, corner), s) for s in candidates), key=lambda r: r[0])


def detect(rgb: np.ndarray) -> Detection:
    """Look for the mark in an (H, W, 3) uint8 RGB image, or in a clip's mean :func:`high_pass` (H, W).

    Tries the prior tile sizes, then all sizes over :data:`TILE_RANGE` of the shorter side (0.6% steps,
    the best refined in 0.1% steps), and reads the payload at the higher peak. About 0.3 s for 256^2."""
    luma = _luma(rgb) if rgb.ndim == 3 else rgb.astype(np.float32)
    short = min(luma.shape)
    prior = _best(luma, [f * short for f in PRIOR_FRACTIONS], corner=True)
    lo, hi = max(16.0, TILE_RANGE[0] * short), TILE_RANGE[1] * short
    sides = np.exp(np.arange(math.log(lo), math.log(hi), SEARCH_STEP))
    search = _best(luma, [max(sides, key=lambda s: _sync_peak(luma, s)[0])])
    prior_z, search_z = prior[0], search[0]
    _, shift, fold, side = prior if prior_z >= Z_AT_PRIOR or prior_z >= search_z else search
    payload, agreement = _read_payload(fold, shift)
    found = prior_z >= Z_AT_PRIOR or search_z >= Z_MARK or (search_z >= Z_WITH_PAYLOAD and payload is not None)
    return Detection(found=found, score=max(prior_z, search_z), prior_score=prior_z, payload=payload, tile=side,
                     agreement=agreement)
