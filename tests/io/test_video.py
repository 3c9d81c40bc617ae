from __future__ import annotations

import av
import numpy as np
import pytest

from styleavatar.errors import UserError
from styleavatar.io.video import VideoWriter, probe, read_frames, write_audio


def _pattern(i: int, h: int = 48, w: int = 64) -> np.ndarray:
    img = np.zeros((h, w, 3), np.uint8)
    img[:, : w // 2] = 255  # left half white
    img[: h // 4, :, 0] = (i * 10) % 256
    return img


def test_write_then_read_round_trip(tmp_path):
    path = tmp_path / "a.mp4"
    with VideoWriter(path, 25, crf=0) as w:
        for i in range(10):
            w.write(_pattern(i))
    info = probe(path)
    assert (info.width, info.height, info.fps, info.frame_count) == (64, 48, 25.0, 10)
    frames = list(read_frames(path))
    assert len(frames) == 10
    assert frames[3].time == pytest.approx(3 / 25)
    assert np.abs(frames[3].rgb.astype(int) - _pattern(3)).mean() < 3


def test_rotation_metadata_is_applied(tmp_path):
    path = tmp_path / "rot.mp4"
    container = av.open(str(path), "w")
    stream = container.add_stream("libx264", rate=25)
    stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
    stream.set_display_rotation(90)  # display turned 90 degrees counter-clockwise
    for i in range(3):
        for p in stream.encode(av.VideoFrame.from_ndarray(_pattern(i), format="rgb24")):
            container.mux(p)
    for p in stream.encode():
        container.mux(p)
    container.close()
    info = probe(path)
    assert (info.width, info.height, info.rotation) == (48, 64, 90)
    rgb = next(read_frames(path)).rgb
    assert rgb.shape == (64, 48, 3)
    # The white left half ends up at the bottom after a counter-clockwise quarter turn.
    assert rgb[40:].mean() > 200 and rgb[:24, :, 1:].mean() < 50


def test_fps_resampling_and_max_frames(tmp_path):
    path = tmp_path / "a.mp4"
    with VideoWriter(path, 30) as w:
        for i in range(60):
            w.write(_pattern(i))
    frames = list(read_frames(path, fps=10))
    assert len(frames) == 20
    assert [f.source_index for f in frames[:4]] == [0, 3, 6, 9]
    assert len(list(read_frames(path, max_frames=7))) == 7


def test_writer_is_atomic(tmp_path):
    path = tmp_path / "a.mp4"
    with pytest.raises(RuntimeError):
        with VideoWriter(path, 25) as w:
            w.write(_pattern(0))
            raise RuntimeError("interrupted")
    assert list(tmp_path.iterdir()) == []


def test_bad_files_give_clear_errors(tmp_path):
    with pytest.raises(UserError, match="not found"):
        probe(tmp_path / "missing.mp4")
    text = tmp_path / "notes.mp4"
    text.write_text("this is not a video\n" * 100)
    with pytest.raises(UserError, match="not a video file"):
        probe(text)
    good = tmp_path / "good.mp4"
    with VideoWriter(good, 25) as w:
        for i in range(50):
            w.write(np.random.default_rng(i).integers(0, 255, (64, 64, 3), dtype=np.uint8))
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(UserError, match="truncated"):
        probe(cut)


def test_audio_is_copied_and_trimmed(tmp_path):
    src = tmp_path / "with_audio.mp4"
    container = av.open(str(src), "w")
    v = container.add_stream("libx264", rate=25)
    v.width, v.height, v.pix_fmt = 64, 48, "yuv420p"
    a = container.add_stream("aac", rate=16000)
    for i in range(50):
        for p in v.encode(av.VideoFrame.from_ndarray(_pattern(i), format="rgb24")):
            container.mux(p)
    t = np.arange(16000 * 2) / 16000
    tone = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None]
    frame = av.AudioFrame.from_ndarray(tone, format="fltp", layout="mono")
    frame.sample_rate = 16000
    for p in a.encode(frame):
        container.mux(p)
    for s in (v, a):
        for p in s.encode():
            container.mux(p)
    container.close()
    assert probe(src).audio_codec == "aac"
    out = tmp_path / "a.m4a"
    assert write_audio(src, out, 0.0, 1.0)
    with av.open(str(out)) as c:
        samples = sum(f.samples for f in c.decode(audio=0))
    assert 0.9 * 16000 <= samples <= 1.15 * 16000
    silent = tmp_path / "silent.mp4"
    with VideoWriter(silent, 25) as w:
        w.write(_pattern(0))
    assert not write_audio(silent, tmp_path / "none.m4a")
