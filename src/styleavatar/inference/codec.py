"""``styleavatar encode`` / ``decode``: a talking-head video of the avatar's own person as a few numbers per
frame (the idea of StyleGAN2 latent video encoding: one model, a few dozen parameters per frame).

Encoding tracks the video, fits the avatar's own face model to it (its neutral shape and expression basis,
unchanged; :func:`..tracking.fit.fit_to_subject`) and quantises per frame: head rotation (rotation vector,
3), log scale (1), translation (3), the first ``dims`` expression coefficients (the basis is ordered by
variance) and gaze (4). Decoding renders those parameters with the avatar's network (absolute pose, no
retargeting) and muxes the audio back.

Stream (``.sam``), version 2; integers little-endian:

- ``MAGIC`` (16 bytes), then a u32 length and the header, UTF-8 JSON: ``format``, ``version``, ``avatar``
  (sha256 of the run's ``avatar.safetensors``), ``identity``, ``fps``, ``frames``, ``dims``, ``steps`` (the
  quantiser step of each of the D values of a frame), ``chunk_frames``, ``audio`` ("opus" or null).
- Chunks, each a kind byte, a u32 length and a payload: ``A`` (first, when the header says so) holds the
  audio as an Ogg Opus file; ``P`` holds up to ``chunk_frames`` frames, coded by :class:`LevelCoder` (each
  value's change from the frame before, adaptive Golomb-Rice, a CRC-32): chunks decode in order, each as
  soon as it arrives, so decoding can start before the stream ends; ``E`` (empty) ends the stream. A
  stream without ``E`` is truncated.

Version 1 streams (each ``P`` chunk raw deflate of zigzag varints, decoded on its own) are still read.
Dequantised values are within half a step of the encoder's values (the bound the tests check).
"""
from __future__ import annotations

import dataclasses
import io
import json
import struct
import sys
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
from scipy.spatial.transform import Rotation
from tqdm import tqdm

from ..config import CodecOptions, PreprocessConfig, ProvenanceOptions
from ..errors import UserError
from ..io.atomic import atomic_file
from ..io.provenance import Mark
from ..io.video import VideoWriter, probe
from .avatar import avatar_id
from ..tracking.crop import CropBox, choose_crop
from ..tracking.fit import GAZE_DIMS, POSE_DIMS, FrameParams, SubjectModel, channel_strengths, fit_to_subject
from ..tracking.landmarks import landmark_box
from ..tracking.video import StepClock, check_tracked, driver_config, track_landmarks

MAGIC = b"STYLEAVATAR-SAM\n"
STREAM_FORMAT = "styleavatar-stream"
STREAM_VERSION = 2
CHUNK_FRAMES = 25
"""Frames per parameter chunk (one second at 25 fps): the unit of streaming and of damage."""
MAX_HEADER_BYTES = 1 << 16
MAX_CHUNK_BYTES = 1 << 26
"""Largest chunk accepted (64 MB; an hour of Opus audio at 48 kbit/s is about 22 MB)."""
BASE_STEPS = {"rotation": 0.002, "log_scale": 0.002, "translation": 0.0005, "expression": 0.1, "gaze": 0.01}
"""Quantiser steps at ``quality`` 1: rotation vector (rad, ~0.1 degree), log scale, translation (fraction of
the crop), expression (times each coefficient's RMS over the training frames), gaze (eye widths)."""


def steps(subject: SubjectModel, dims: int, quality: float) -> np.ndarray:
    """(D,) quantiser step of each value of a frame (D = POSE_DIMS + dims + GAZE_DIMS)."""
    b = BASE_STEPS
    return np.concatenate([[b["rotation"]] * 3, [b["log_scale"]], [b["translation"]] * 3,
                           b["expression"] * subject.coeff_rms[:dims], [b["gaze"]] * GAZE_DIMS]) / quality


def to_values(params: FrameParams, dims: int) -> np.ndarray:
    """(N, D) the values a stream carries for each frame."""
    rotvec = Rotation.from_matrix(params.rotation).as_rotvec()
    return np.concatenate([rotvec, np.log(params.scale)[:, None], params.translation,
                           params.expression[:, :dims], params.gaze], 1)


def from_values(values: np.ndarray, k: int) -> FrameParams:
    """(N, D) stream values -> FrameParams with K expression coefficients (those not carried are 0)."""
    n, dims = len(values), values.shape[1] - POSE_DIMS - GAZE_DIMS
    expression = np.zeros((n, k))
    expression[:, :dims] = values[:, POSE_DIMS:POSE_DIMS + dims]
    return FrameParams(np.ones(n, bool), np.exp(values[:, 3]), Rotation.from_rotvec(values[:, :3]).as_matrix(),
                       values[:, 4:POSE_DIMS], expression, values[:, POSE_DIMS + dims:])


# ------------------------------------------------------------------------------------------- stream
def _chunk(kind: bytes, payload: bytes) -> bytes:
    return kind + struct.pack("<I", len(payload)) + payload


def varint(values: np.ndarray) -> bytes:
    """Signed integers (|x| < 2^31) -> zigzag LEB128 bytes: small changes of either sign take one byte."""
    u = ((values.astype(np.int64) << 1) ^ (values.astype(np.int64) >> 63)).astype(np.uint64).ravel()
    nbytes = 1 + sum((u >= np.uint64(1 << (7 * k))).astype(np.int64) for k in range(1, 5))
    start = np.cumsum(nbytes) - nbytes
    out = np.zeros(int(nbytes.sum()), np.uint8)
    for k in range(5):  # byte k of every value that has one: 7 bits, high bit set when more follow
        has = nbytes > k
        bits = (u[has] >> np.uint64(7 * k)) & np.uint64(127)
        out[start[has] + k] = bits.astype(np.uint8) | ((nbytes[has] > k + 1).astype(np.uint8) << 7)
    return out.tobytes()


def unvarint(data: bytes) -> np.ndarray:
    """Inverse of :func:`varint`: int64 values."""
    b = np.frombuffer(data, np.uint8)
    ends = np.flatnonzero(b < 128)
    if not len(b) or ends[-1] != len(b) - 1:
        raise UserError("damaged stream: a parameter chunk ends inside a number")
    start = np.concatenate([[0], ends[:-1] + 1])
    length = ends - start + 1
    if length.max() > 5:
        raise UserError("damaged stream: a number in a parameter chunk is too long")
    u = np.zeros(len(ends), np.uint64)
    for k in range(5):
        has = length > k
        u[has] |= (b[start[has] + k] & np.uint8(127)).astype(np.uint64) << np.uint64(7 * k)
    return (u >> np.uint64(1)).astype(np.int64) ^ -(u & np.uint64(1)).astype(np.int64)


def deflate_levels(levels: np.ndarray) -> bytes:
    """Version 1's ``P`` payload of (F, D) int levels: value-major, each value's first level then its
    frame-to-frame changes, as zigzag varints, raw-deflated. Kept to read old streams and as the yardstick
    of BENCHMARKS.md's codec section."""
    delta = np.diff(levels, axis=0, prepend=np.zeros((1, levels.shape[1]), levels.dtype))
    c = zlib.compressobj(9, zlib.DEFLATED, -15)  # raw deflate: no container bytes per chunk
    return c.compress(varint(np.ascontiguousarray(delta.T))) + c.flush()


def inflate_levels(payload: bytes, d: int) -> np.ndarray:
    """Inverse of :func:`deflate_levels`: (F, D) int64 levels of a version 1 chunk."""
    inflate = zlib.decompressobj(-15)
    try:
        raw = inflate.decompress(payload, d * CHUNK_FRAMES * 5)  # at most one chunk's frames
    except zlib.error as exc:
        raise UserError(f"damaged stream: a parameter chunk does not decompress ({exc})") from None
    if not inflate.eof or inflate.unconsumed_tail:
        raise UserError("damaged stream: a parameter chunk is cut short or holds more than its frames")
    delta = unvarint(raw)
    if len(delta) % d or len(delta) > d * CHUNK_FRAMES:
        raise UserError("damaged stream: a parameter chunk holds a partial frame")
    return np.cumsum(delta.reshape(d, -1).T, axis=0)


RICE_RESET = 8
"""The Golomb-Rice statistics of a value are halved when they hold this many changes. The tracked motion
changes pace often: on anchor_71s's held-out frames, 19 values at quality 1 took 1.34 / 1.37 / 1.39 / 1.46 /
1.53 kbit/s at 4 / 6 / 8 / 16 / 32 (version 1's deflate: 1.88)."""
RICE_LIMIT = 20
"""Unary lengths from here on are escaped: RICE_LIMIT ones, then the change's zigzag code in 32 bits."""


class LevelCoder:
    """Adaptive Golomb-Rice coding of (F, D) quantised levels, chunk after chunk (stream version 2).

    Each value is predicted by its level in the frame before (0 before the first frame of the stream). The
    change x is zigzag-mapped to u = 2x or -2x - 1 (u >= 0, small either way) and written as u >> k in
    unary (ones, then a zero) followed by the low k bits of u. k follows each value's recent changes as in
    LOCO-I (JPEG-LS): the smallest k with n * 2^k >= a, a being the sum of the last n codes u. Encoder and
    decoder update the same state, so a stream's chunks are coded and decoded in order; one coder per stream.

    Payload: u8 frame count F, the codes frame-major (frame 0's D values, then frame 1's, ...), zero bits
    to a whole byte, then the CRC-32 of all that (u32).
    """

    def __init__(self, d: int) -> None:
        self.last = [0] * d
        self.a, self.n = [2] * d, [1] * d

    def _k(self, j: int) -> int:
        k = 0
        while self.n[j] << k < self.a[j]:
            k += 1
        return k

    def _seen(self, j: int, u: int) -> None:
        self.a[j] += u
        self.n[j] += 1
        if self.n[j] >= RICE_RESET:
            self.a[j] >>= 1
            self.n[j] >>= 1

    def encode(self, levels: np.ndarray) -> bytes:
        """(F, D) int levels (F <= CHUNK_FRAMES, |level| < 2^30) -> one ``P`` payload."""
        bits = []
        for frame in levels.tolist():
            for j, level in enumerate(frame):
                x, self.last[j] = level - self.last[j], level
                u, k = (x << 1) ^ (x >> 63), self._k(j)
                if u >> k < RICE_LIMIT:
                    bits.append("1" * (u >> k) + "0" + (format(u & ((1 << k) - 1), f"0{k}b") if k else ""))
                else:
                    bits.append("1" * RICE_LIMIT + format(u, "032b"))
                self._seen(j, u)
        text = "".join(bits)
        text += "0" * (-len(text) % 8)
        body = bytes([len(levels)]) + (int(text, 2).to_bytes(len(text) // 8, "big") if text else b"")
        return body + struct.pack("<I", zlib.crc32(body))

    def decode(self, payload: bytes) -> np.ndarray:
        """Inverse of :meth:`encode`: (F, D) int64 levels; a damaged payload is a :class:`UserError`."""
        body, crc = payload[:-4], payload[-4:]
        if len(payload) < 5 or struct.pack("<I", zlib.crc32(body)) != crc:
            raise UserError("damaged stream: a parameter chunk fails its checksum")
        frames, d = body[0], len(self.last)
        if not 1 <= frames <= CHUNK_FRAMES:
            raise UserError(f"damaged stream: a parameter chunk of {frames} frames")
        text, pos = "".join(format(b, "08b") for b in body[1:]), 0
        out = np.zeros((frames, d), np.int64)
        for f in range(frames):
            for j in range(d):
                u, pos = _read_code(text, pos, self._k(j))
                self.last[j] += (u >> 1) ^ -(u & 1)
                out[f, j] = self.last[j]
                self._seen(j, u)
        if len(text) - pos >= 8:
            raise UserError("damaged stream: a parameter chunk holds more than its frames")
        return out


def _read_code(text: str, pos: int, k: int) -> tuple[int, int]:
    """The code u at bit ``pos`` of ``text`` (a string of '0'/'1') and the position after it."""
    zero = text.find("0", pos, pos + RICE_LIMIT)
    if zero < 0:  # RICE_LIMIT ones: an escaped code (or the bits ran out)
        end = pos + RICE_LIMIT + 32
        u = int(text[pos + RICE_LIMIT:end], 2) if end <= len(text) else -1
    else:
        end = zero + 1 + k
        u = ((zero - pos) << k) | (int(text[zero + 1:end], 2) if k else 0) if end <= len(text) else -1
    if u < 0:
        raise UserError("damaged stream: a parameter chunk ends inside a number")
    return u, end


def level_decoder(header: dict):
    """The function that turns each ``P`` payload of a stream with this header into (F, D) int64 levels, in
    stream order (the header's version decides the coding)."""
    d = len(header["steps"])
    if int(header.get("version", 1)) == 1:
        return lambda payload: inflate_levels(payload, d)
    return LevelCoder(d).decode


def read_levels(f: BinaryIO, header: dict) -> np.ndarray:
    """(N, D) int64 levels of all ``P`` chunks of the rest of a stream (whose header was just read)."""
    decode = level_decoder(header)
    parts = [decode(payload) for kind, payload in read_chunks(f) if kind == b"P"]
    return np.concatenate(parts) if parts else np.zeros((0, len(header["steps"])), np.int64)


class StreamWriter:
    """Writes a stream as frames come (``encode`` and ``live --encode``): a parameter chunk goes out each
    time ``CHUNK_FRAMES`` frames have been added; :meth:`close` writes the rest and the end marker."""

    def __init__(self, out: BinaryIO, header: dict, audio: bytes | None = None) -> None:
        self.out, self.step = out, np.asarray(header["steps"])
        self.coder = LevelCoder(len(self.step))
        self.pending: list[np.ndarray] = []
        self.video_bytes, self.frames = 0, 0
        blob = json.dumps(header).encode()
        out.write(MAGIC + struct.pack("<I", len(blob)) + blob)
        if audio:
            out.write(_chunk(b"A", audio))

    def add(self, values: np.ndarray) -> None:
        """Queue (D,) or (N, D) values; full chunks are written at once."""
        levels = np.round(np.atleast_2d(values) / self.step).astype(np.int64)
        if np.abs(levels).max(initial=0) >= 2 ** 30:  # keeps every change's code within 32 bits
            raise UserError("a value is too large for the stream's quantiser (is the tracking broken?)")
        self.pending.extend(levels)
        self.frames += len(levels)
        while len(self.pending) >= CHUNK_FRAMES:
            self._flush(CHUNK_FRAMES)

    def _flush(self, n: int) -> None:
        chunk = _chunk(b"P", self.coder.encode(np.stack(self.pending[:n])))
        del self.pending[:n]
        self.video_bytes += len(chunk)
        self.out.write(chunk)
        self.out.flush()

    def close(self) -> None:
        if self.pending:
            self._flush(len(self.pending))
        self.out.write(_chunk(b"E", b""))
        self.out.flush()


def write_stream(out: BinaryIO, header: dict, values: np.ndarray, audio: bytes | None) -> int:
    """Write a whole stream of (N, D) values; returns the bytes of the parameter chunks (the video part)."""
    writer = StreamWriter(out, header, audio)
    writer.add(values)
    writer.close()
    return writer.video_bytes


def _read_exact(f: BinaryIO, n: int, what: str) -> bytes:
    data = f.read(n)
    if len(data) != n:
        raise UserError(f"truncated stream: it ends inside {what}")
    return data


def read_header(f: BinaryIO) -> dict:
    """Check the magic and return the header; clear errors for other files and newer versions."""
    if f.read(len(MAGIC)) != MAGIC:
        raise UserError("not a styleavatar stream (.sam): wrong magic bytes")
    (n,) = struct.unpack("<I", _read_exact(f, 4, "the header"))
    if n > MAX_HEADER_BYTES:
        raise UserError(f"damaged stream: a header of {n} bytes")
    try:
        header = json.loads(_read_exact(f, n, "the header"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise UserError("damaged stream: the header is not JSON") from None
    if header.get("format") != STREAM_FORMAT:
        raise UserError("not a styleavatar stream: its header names another format")
    if int(header.get("version", 0)) > STREAM_VERSION:
        raise UserError(f"stream version {header['version']} is newer than this styleavatar reads "
                        f"({STREAM_VERSION}); upgrade styleavatar")
    return header


def read_chunks(f: BinaryIO) -> Iterator[tuple[bytes, bytes]]:
    """(kind, payload) of each chunk up to ``E``; a stream that stops before ``E`` is an error."""
    while True:
        kind = f.read(1)
        if not kind:
            raise UserError("truncated stream: it ends without its end marker")
        (n,) = struct.unpack("<I", _read_exact(f, 4, "a chunk header"))
        if n > MAX_CHUNK_BYTES:
            raise UserError(f"damaged stream: a chunk of {n} bytes")
        payload = _read_exact(f, n, "a chunk")
        if kind == b"E":
            return
        if kind not in (b"P", b"A"):
            raise UserError(f"damaged stream: unknown chunk kind {kind!r}")
        yield kind, payload


# ------------------------------------------------------------------------------------------- audio
def opus_audio(video: Path, duration: float | None = None, bitrate: int = 24000) -> bytes | None:
    """The video's audio (its first ``duration`` seconds) as an Ogg Opus file in memory, or None."""
    import av

    from ..io.video import transcode_audio

    if probe(video).audio_codec is None:
        return None
    buf = io.BytesIO()
    with av.open(buf, "w", format="ogg") as out:
        stream = out.add_stream("libopus", rate=48000)
        stream.bit_rate = bitrate
        transcode_audio(video, out, stream, 0.0, duration)
    return buf.getvalue()


# ------------------------------------------------------------------------------------------- commands
@dataclass
class CodecSummary:
    output: Path
    frames: int
    fps: float
    video_bytes: int
    audio_bytes: int
    seconds: float
    dims: int = 0
    marked: str = ""
    """What a decoded video carries to say that it is synthetic ('' for a stream)."""

    @property
    def kbit_s(self) -> float:
        """Bitrate of the parameter chunks (the video part), kbit/s."""
        return self.video_bytes * 8 / 1000 / max(self.frames / self.fps, 1e-9)

    def describe(self, verb: str) -> str:
        audio = f" + audio {self.audio_bytes * 8 / 1000 / max(self.frames / self.fps, 1e-9):.1f} kbit/s" \
            if self.audio_bytes else ""
        return (f"{verb} {self.output}: {self.frames} frames at {self.fps:g} fps, video {self.kbit_s:.2f} kbit/s "
                f"({self.video_bytes} bytes){audio}, {self.seconds:.1f} s "
                f"({self.frames / max(self.seconds, 1e-9):.1f} frames/s)" + (f"; {self.marked}" if self.marked else ""))


def _subject_and_meta(run: Path, identity: int) -> tuple[SubjectModel, dict]:
    """The face model and dataset meta of one identity, without loading the network."""
    from .avatar import load_subject

    meta_path = run / "avatar.json"
    if not meta_path.exists():
        raise UserError(f"{run} is not a styleavatar run folder (no avatar.json)")
    subject, ds_meta, _ = load_subject(run, json.loads(meta_path.read_text()), identity)
    return subject, ds_meta


def _crop(ds_meta: dict, landmarks: np.ndarray, width: int, height: int) -> tuple[CropBox, str]:
    """The avatar's own crop when the video has its source's size (the same camera set-up), else one chosen
    by preprocess's rule around this video's face."""
    src = ds_meta.get("source", {})
    box = ds_meta["crop_box"]
    if (src.get("width"), src.get("height")) == (width, height):
        return CropBox(box["x0"], box["y0"], box["side"]), "the avatar's crop"
    tracked = ~np.isnan(landmarks[:, 0, 0])
    cfg = PreprocessConfig()
    return choose_crop(landmark_box(landmarks[tracked]), width, height, cfg.portrait_scale, cfg.crop_scale), \
        "a crop around this video's face"


def encode(video: str | Path, run: str | Path, output: str | Path, options: CodecOptions = CodecOptions(),
           identity: int = 0, progress: bool = True) -> CodecSummary:
    """Track ``video`` (the avatar's own person) and write its stream to ``output`` (.sam)."""
    t0 = time.perf_counter()
    video, run, output = Path(video), Path(run), Path(output)
    if not video.exists():
        raise UserError(f"video not found: {video}")
    subject, ds_meta = _subject_and_meta(run, identity)
    _check_options(options, subject)
    info = probe(video)
    cfg = dataclasses.replace(driver_config(), smooth=float(ds_meta.get("config", {}).get("smooth", 1.0)))
    landmarks, _, _, misses = track_landmarks(video, info, cfg, StepClock(), progress)
    check_tracked(video, landmarks, misses, cfg)
    crop, which = _crop(ds_meta, landmarks, info.width, info.height)
    tracked = ~np.isnan(landmarks[:, 0, 0])
    pose = cfg.smooth if options.pose_smoothing is None else options.pose_smoothing
    params = fit_to_subject(crop.normalise(np.nan_to_num(landmarks)), tracked, subject, info.fps,
                            smooth=channel_strengths(subject.basis.shape[0], pose, cfg.smooth, pose))
    values = to_values(params, options.dims)
    audio = opus_audio(video, len(params) / info.fps) if options.audio else None
    header = {"format": STREAM_FORMAT, "version": STREAM_VERSION, "avatar": avatar_id(run), "identity": identity,
              "fps": info.fps, "frames": len(params), "dims": options.dims,
              "steps": steps(subject, options.dims, options.quality).tolist(), "chunk_frames": CHUNK_FRAMES,
              "audio": "opus" if audio else None, "crop": which}
    with atomic_file(output, suffix=".sam") as tmp, open(tmp, "wb") as f:
        video_bytes = write_stream(f, header, values, audio)
    return CodecSummary(output, len(params), info.fps, video_bytes, len(audio or b""), time.perf_counter() - t0,
                        options.dims)


class LiveEncoder:
    """``live --encode``: the stream of a camera session, written as it goes (the sending side of a call).

    Use as a context manager; :meth:`add` takes each frame's landmarks (source pixels; None when the face
    is lost). They are fitted to the avatar's own face model in the crop chosen at the first face (see
    :func:`_crop`), unsmoothed (causal); a lost face repeats the last values; the stream starts at the
    first face. Its header's ``frames`` is null (not known in advance). The file appears when the block
    ends without an error.
    """

    def __init__(self, run: str | Path, output: str | Path, fps: float, options: CodecOptions = CodecOptions(),
                 identity: int = 0) -> None:
        run = Path(run)
        self.subject, self.ds_meta = _subject_and_meta(run, identity)
        _check_options(options, self.subject)
        self.fps, self.dims = fps, options.dims
        self.header = {"format": STREAM_FORMAT, "version": STREAM_VERSION, "avatar": avatar_id(run),
                       "identity": identity, "fps": fps, "frames": None, "dims": options.dims,
                       "steps": steps(self.subject, options.dims, options.quality).tolist(),
                       "chunk_frames": CHUNK_FRAMES, "audio": None, "crop": None}
        self._ctx = atomic_file(Path(output), suffix=".sam")
        self.writer: StreamWriter | None = None
        self.crop: CropBox | None = None
        self.last: np.ndarray | None = None

    def __enter__(self) -> "LiveEncoder":
        self._file = open(self._ctx.__enter__(), "wb")
        return self

    def add(self, landmarks: np.ndarray | None, width: int, height: int) -> None:
        """One camera frame: its (478, 3) source-pixel landmarks, or None; the frame's size in pixels."""
        if landmarks is None:
            if self.last is not None:
                self.writer.add(self.last)
            return
        if self.writer is None:
            self.crop, self.header["crop"] = _crop(self.ds_meta, landmarks[None], width, height)
            self.writer = StreamWriter(self._file, self.header)
        params = fit_to_subject(self.crop.normalise(landmarks)[None], np.ones(1, bool), self.subject, self.fps,
                                smooth=0.0)
        self.last = to_values(params, self.dims)[0]
        self.writer.add(self.last)

    def __exit__(self, exc_type, exc, tb) -> bool:
        try:
            if exc_type is None:
                if self.writer is None:
                    raise UserError("no face was seen during the session: nothing was encoded")
                self.writer.close()
        except BaseException:
            self._file.close()
            self._ctx.__exit__(*sys.exc_info())
            raise
        self._file.close()
        self._ctx.__exit__(exc_type, exc, tb)
        return False

    @property
    def frames(self) -> int:
        return 0 if self.writer is None else self.writer.frames


def _check_options(options: CodecOptions, subject: SubjectModel) -> None:
    if not 1 <= options.dims <= subject.basis.shape[0]:
        raise UserError(f"--dims must be 1..{subject.basis.shape[0]} (the avatar's expression coefficients)")
    if options.quality <= 0:
        raise UserError("--quality must be positive")


def decode(stream: str | Path | BinaryIO, run: str | Path, output: str | Path, progress: bool = True,
           device: str = "auto", provenance: ProvenanceOptions = ProvenanceOptions()) -> CodecSummary:
    """Render a stream with the avatar in ``run`` into ``output`` (mp4, marked as synthetic and signed per
    ``provenance``). ``stream`` may be a file or an open binary file (a pipe): frames are rendered chunk by
    chunk as they arrive."""
    import tempfile

    from .avatar import Avatar
    from .reenact import avatar_frames

    t0 = time.perf_counter()
    run, output = Path(run), Path(output)
    with _open(stream) as f:
        header = read_header(f)
        mine = avatar_id(run)
        if header["avatar"] != mine:
            raise UserError(f"this stream was made for avatar {header['avatar'][:12]}, not for {run} "
                            f"({mine[:12]}); decode it with the avatar it was encoded for")
        avatar = Avatar.load(run, int(header.get("identity", 0)), device)
        if progress:
            print(avatar.placement(), file=sys.stderr)
        step, fps, k = np.asarray(header["steps"]), float(header["fps"]), avatar.subject.basis.shape[0]
        chunks, levels_of = read_chunks(f), level_decoder(header)
        audio, frames, video_bytes = None, 0, 0
        total = None if header.get("frames") is None else int(header["frames"])  # None: a live stream
        bar = tqdm(total=total, desc="decoding", unit="frame", disable=not progress, file=sys.stderr,
                   dynamic_ncols=True)
        with tempfile.TemporaryDirectory() as tmp, bar:
            audio_path = Path(tmp) / "audio.ogg"
            if header.get("audio"):  # the audio chunk comes first, so the mp4 can be written as frames arrive
                kind, audio = next(chunks, (b"", None))
                if kind != b"A":
                    raise UserError("damaged stream: its header promises audio that it does not hold")
                audio_path.write_bytes(audio)
            with VideoWriter(output, fps, audio_from=audio_path if audio else None,
                             audio_duration=None if total is None else total / fps,
                             mark=Mark.for_avatar(mine, provenance)) as writer:  # the id hashed above
                for kind, payload in chunks:
                    if kind != b"P":
                        raise UserError("damaged stream: a second audio chunk")
                    video_bytes += len(payload) + 5
                    params = from_values(levels_of(payload) * step, k)
                    for image in avatar_frames(avatar, params):
                        writer.write(image)
                        frames += 1
                        bar.update()
    return CodecSummary(output, frames, fps, video_bytes, len(audio or b""), time.perf_counter() - t0,
                        int(header["dims"]), writer.mark.describe())


class _open:
    """Context manager: a path is opened (and closed), an open binary file is used as it is."""

    def __init__(self, stream: str | Path | BinaryIO) -> None:
        self.stream, self.owned = stream, None

    def __enter__(self) -> BinaryIO:
        if hasattr(self.stream, "read"):
            return self.stream
        path = Path(self.stream)
        if not path.exists():
            raise UserError(f"stream not found: {path}")
        self.owned = open(path, "rb")
        return self.owned

    def __exit__(self, *exc) -> None:
        if self.owned is not None:
            self.owned.close()
