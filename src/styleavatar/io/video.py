"""Reading videos with PyAV (any container/codec ffmpeg reads) and writing H.264 mp4 files.

Frames are returned as RGB ``uint8`` arrays of shape (H, W, 3), already turned upright according to
the stream's rotation metadata (display matrix), with their presentation time in seconds, so
variable-frame-rate videos keep their real timing.
"""
from __future__ import annotations

import math
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from ..errors import UserError
from .atomic import atomic_file
from .provenance import Mark, make_signer, sign_mp4
from .watermark import embed


@dataclass(frozen=True)
class VideoInfo:
    """What a video file holds, as displayed (rotation applied)."""

    path: Path
    width: int
    """Displayed width in pixels (after rotation)."""
    height: int
    """Displayed height in pixels (after rotation)."""
    fps: float
    """Average frame rate in frames per second."""
    frame_count: int
    """Number of frames (from the container, or estimated from duration x fps)."""
    duration: float
    """Duration in seconds."""
    rotation: int
    """Counter-clockwise display rotation in degrees (0, 90, 180 or 270) applied to every frame."""
    codec: str
    audio_codec: str | None
    """Codec of the first audio stream, or None when the video has no audio."""


@dataclass(frozen=True)
class Frame:
    """One decoded, upright video frame."""

    index: int
    """Index among the frames returned (0, 1, 2, ...)."""
    source_index: int
    """Index of the frame in the source video's decoding order."""
    time: float
    """Presentation time in seconds from the start of the stream."""
    rgb: np.ndarray
    """(H, W, 3) uint8 RGB."""


def _open(path: Path) -> av.container.InputContainer:
    if not path.exists():
        raise UserError(f"video not found: {path}")
    if path.is_dir():
        raise UserError(f"expected a video file, got a folder: {path}")
    try:
        container = av.open(str(path))
    except av.error.FFmpegError as exc:
        raise UserError(f"cannot read video {path}: not a video file, or truncated ({exc.strerror})") from None
    if not container.streams.video:
        container.close()
        raise UserError(f"cannot read video {path}: it has no video stream")
    return container


def _upright(rgb: np.ndarray, rotation: int) -> np.ndarray:
    # rotation is counter-clockwise in degrees; np.rot90(k) rotates counter-clockwise by k*90.
    k = (rotation // 90) % 4
    return np.ascontiguousarray(np.rot90(rgb, k)) if k else rgb


def probe(path: str | Path) -> VideoInfo:
    """Read a video's header and first frame; raise ``UserError`` if it cannot be decoded."""
    path = Path(path)
    with _open(path) as container:
        stream = container.streams.video[0]
        try:
            first = next(container.decode(stream))
        except (StopIteration, av.error.FFmpegError) as exc:
            raise UserError(f"cannot read video {path}: no decodable frame ({exc})") from None
        rotation = int(round(first.rotation or 0)) % 360
        fps = float(stream.average_rate or stream.guessed_rate or 0) or 25.0
        if stream.duration is not None and stream.time_base is not None:
            duration = float(stream.duration * stream.time_base)
        elif container.duration is not None:
            duration = container.duration / av.time_base
        else:
            duration = 0.0
        frame_count = stream.frames or int(round(duration * fps))
        w, h = first.width, first.height
        if rotation % 180 == 90:
            w, h = h, w
        audio = container.streams.audio[0].codec_context.name if container.streams.audio else None
        return VideoInfo(path, w, h, fps, frame_count, duration, rotation, stream.codec_context.name, audio)


def read_frames(path: str | Path, fps: float | None = None, max_frames: int | None = None) -> Iterator[Frame]:
    """Decode a video frame by frame.

    Args:
        path: any file ffmpeg reads.
        fps: if given, resample to this constant rate: output frame k is the latest source frame whose
            time is at or before k / fps (frames are repeated or dropped; the source is never interpolated).
        max_frames: stop after this many output frames.

    Raises ``UserError`` when the file cannot be decoded part way (a truncated or corrupt file).
    """
    path = Path(path)
    count = 0
    with _open(path) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        t0: float | None = None
        try:
            for source_index, frame in enumerate(container.decode(stream)):
                time = float(frame.time) if frame.time is not None else source_index / float(stream.average_rate or 25)
                t0 = time if t0 is None else t0
                time -= t0
                if fps is None:
                    repeats = 1
                else:  # output ticks k/fps reached by this frame's time (1e-6 absorbs rounding of time stamps)
                    repeats = max(0, math.floor(time * fps + 1e-6) + 1 - count)
                if repeats == 0:
                    continue
                rgb = _upright(frame.to_ndarray(format="rgb24"), int(round(frame.rotation or 0)))
                for _ in range(repeats):
                    if max_frames is not None and count >= max_frames:
                        return
                    yield Frame(count, source_index, count / fps if fps else time, rgb)
                    count += 1
        except av.error.FFmpegError as exc:
            raise UserError(f"cannot read video {path}: decoding failed after {count} frames "
                            f"(truncated or corrupt file: {exc.strerror})") from None


class VideoWriter:
    """Write RGB frames to an H.264 mp4 (yuv420p), atomically: the file appears only on ``close()``.

    Use as a context manager; if the block raises, no output file is left behind.
    Optionally copies (and trims) the audio of ``audio_from`` into the output. With a ``mark`` (every video of
    generated frames), each frame gets the invisible mark, the file a metadata tag and a signed C2PA manifest
    (:mod:`.provenance`); ``frames_marked``: the caller already marked the frames (live, for all its outputs).
    """

    def __init__(self, path: str | Path, fps: float, crf: int = 18, preset: str = "veryfast",
                 audio_from: str | Path | None = None, audio_start: float = 0.0,
                 audio_duration: float | None = None, mark: Mark | None = None,
                 frames_marked: bool = False) -> None:
        self.path = Path(path)
        self.mark = mark
        self.embed = mark is not None and not frames_marked
        self._signer = None
        self.fps = Fraction(fps).limit_denominator(1001)
        self.options = {"crf": str(crf), "preset": preset}
        self.audio = (Path(audio_from), audio_start, audio_duration) if audio_from else None
        self._ctx = atomic_file(self.path, suffix=".mp4")
        self._tmp: Path | None = None
        self._container = None
        self._stream = None
        self._audio_stream = None
        self.frames = 0

    def __enter__(self) -> "VideoWriter":
        self._signer = make_signer(self.mark.options) if self.mark is not None and self.mark.options.c2pa else None
        self._tmp = self._ctx.__enter__()
        self._container = av.open(str(self._tmp), "w", format="mp4")
        if self.mark is not None:
            self._container.metadata["comment"] = self.mark.tag()
        return self

    def write(self, rgb: np.ndarray) -> None:
        """Append one (H, W, 3) uint8 RGB frame; H and W must be even and the same for all frames."""
        if self._stream is None:
            h, w = rgb.shape[:2]
            self._stream = self._container.add_stream("libx264", rate=self.fps, options=self.options)
            self._stream.width, self._stream.height = w - w % 2, h - h % 2
            self._stream.pix_fmt = "yuv420p"
            if self.audio is not None:  # every stream must exist before the first packet is muxed
                self._add_audio_stream()
        rgb = rgb[: self._stream.height, : self._stream.width]
        if self.embed:
            rgb = embed(rgb, self.mark.payload)
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
        for packet in self._stream.encode(frame):
            self._container.mux(packet)
        self.frames += 1

    def _add_audio_stream(self) -> None:
        with av.open(str(self.audio[0])) as inp:
            if inp.streams.audio:
                rate = inp.streams.audio[0].codec_context.sample_rate or 44100
                self._audio_stream = self._container.add_stream("aac", rate=rate)

    def _mux_audio(self) -> None:
        src, start, duration = self.audio
        transcode_audio(src, self._container, self._audio_stream, start, duration)

    def __exit__(self, exc_type, exc, tb) -> bool:
        try:
            if exc_type is None:
                if self._stream is None:
                    raise UserError(f"no frames to write to {self.path}")
                for packet in self._stream.encode():
                    self._container.mux(packet)
                if self._audio_stream is not None:
                    self._mux_audio()
            self._container.close()
            if self._signer is not None:
                signer, self._signer = self._signer, None
                if exc_type is None:
                    sign_mp4(self._tmp, self.mark, self.path.name, signer)
                else:
                    signer.close()
        except BaseException:
            self._ctx.__exit__(*sys.exc_info())
            raise
        self._ctx.__exit__(exc_type, exc, tb)
        return False


def transcode_audio(src: Path, container, stream, start: float = 0.0, duration: float | None = None) -> None:
    """Decode the first audio stream of ``src`` between ``start`` and ``start + duration`` seconds and
    encode it into ``stream`` (AAC) of the open output ``container``."""
    end = None if duration is None else start + duration
    with av.open(str(src)) as inp:
        ain = inp.streams.audio[0]
        resampler = av.AudioResampler(format="fltp", layout="stereo" if ain.channels > 1 else "mono",
                                      rate=stream.codec_context.sample_rate)
        for frame in inp.decode(ain):
            if frame.time is not None and (frame.time < start or (end is not None and frame.time >= end)):
                continue
            for rf in resampler.resample(frame):
                rf.pts = None
                for packet in stream.encode(rf):
                    container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)


def write_audio(src: str | Path, dst: str | Path, start: float = 0.0, duration: float | None = None) -> bool:
    """Write the audio of ``src`` (trimmed) to an AAC ``.m4a`` file, atomically.

    Returns False (and writes nothing) when ``src`` has no audio stream.
    """
    src = Path(src)
    with av.open(str(src)) as inp:
        if not inp.streams.audio:
            return False
        rate = inp.streams.audio[0].codec_context.sample_rate or 44100
    with atomic_file(Path(dst), suffix=".m4a") as tmp:
        with av.open(str(tmp), "w", format="mp4") as out:
            stream = out.add_stream("aac", rate=rate)
            transcode_audio(src, out, stream, start, duration)
    return True
