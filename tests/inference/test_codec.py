"""encode / decode: a video as a few numbers per frame, and back through the avatar."""
from __future__ import annotations

import io
import json
import os
import struct
import threading
import wave

import numpy as np
import pytest

from styleavatar.cli import main
from styleavatar.config import CodecOptions, ProvenanceOptions
from styleavatar.data.dataset import Dataset, load_face_model
from styleavatar.errors import UserError
from styleavatar.inference import codec
from styleavatar.inference.avatar import Avatar
from styleavatar.inference.reenact import avatar_frames
from styleavatar.io.verify import verify
from styleavatar.io.video import VideoWriter, probe, read_frames


def _levels_and_header(path):
    with open(path, "rb") as f:
        header = codec.read_header(f)
        chunks = list(codec.read_chunks(f))
    decode = codec.level_decoder(header)
    levels = np.concatenate([decode(p) for k, p in chunks if k == b"P"])
    return header, levels, chunks


def test_stream_round_trip_is_within_half_a_step(rng):
    values = np.cumsum(rng.normal(0, 0.05, (93, 12)), axis=0)  # 93 frames: a last, partial chunk
    values[50, 3] += 1e4  # a jump far past the unary codes: escaped, both ways
    step = np.linspace(0.001, 0.05, 12)
    buf = io.BytesIO()
    header = {"format": codec.STREAM_FORMAT, "version": codec.STREAM_VERSION, "steps": step.tolist()}
    codec.write_stream(buf, header, values, None)
    buf.seek(0)
    got = codec.read_levels(buf, codec.read_header(buf)) * step
    assert got.shape == values.shape
    assert np.all(np.abs(got - values) <= step / 2 + 1e-12)


def test_adaptive_rice_beats_version_1s_deflate_and_old_streams_still_decode(rng):
    """Smooth motion with jitter, like tracked parameters: version 2 is smaller, and a version 1 stream (deflated
    varints, one chunk at a time) still reads back exactly."""
    levels = np.round(np.cumsum(rng.normal(0, 2, (100, 19)), axis=0) + rng.normal(0, 1, (100, 19))).astype(int)
    coder = codec.LevelCoder(19)
    v2 = [coder.encode(levels[i:i + 25]) for i in range(0, 100, 25)]
    v1 = [codec.deflate_levels(levels[i:i + 25]) for i in range(0, 100, 25)]
    assert sum(map(len, v2)) < 0.85 * sum(map(len, v1))
    for version, payloads in ((1, v1), (2, v2)):
        decode = codec.level_decoder({"version": version, "steps": [1.0] * 19})
        assert np.array_equal(np.concatenate([decode(p) for p in payloads]), levels)


def test_a_damaged_chunk_is_an_error_not_wrong_motion(rng):
    levels = np.cumsum(rng.integers(-3, 4, (25, 9)), axis=0)
    payload = codec.LevelCoder(9).encode(levels)
    for i in (0, 1, len(payload) // 2, len(payload) - 1):  # frame count, codes, checksum
        bad = bytearray(payload)
        bad[i] ^= 0x10
        with pytest.raises(UserError, match="damaged stream"):
            codec.LevelCoder(9).decode(bytes(bad))
    with pytest.raises(UserError, match="damaged stream"):
        codec.LevelCoder(9).decode(payload[:3])


def test_encode_carries_the_avatars_own_fit(tiny_run, astro_clip, astro_dataset, tmp_path):
    """The avatar's own training video, encoded, gives back its dataset's parameters within quantisation."""
    out = tmp_path / "clip.sam"
    summary = codec.encode(astro_clip.path, tiny_run, out, CodecOptions(dims=32, audio=False), progress=False)
    header, levels, _ = _levels_and_header(out)
    assert header["avatar"] == codec.avatar_id(tiny_run) and header["frames"] == 100 == summary.frames
    assert header["crop"] == "the avatar's crop"
    step = np.asarray(header["steps"])
    ds = Dataset.open(astro_dataset.output)
    truth = codec.to_values(ds.params, 32)
    assert np.all(np.abs(levels * step - truth) <= step / 2 + 1e-6)
    assert summary.kbit_s < 10  # 43 numbers per frame in a few kilobits per second
    fewer = codec.encode(astro_clip.path, tiny_run, tmp_path / "fewer.sam", CodecOptions(dims=8, quality=0.5,
                                                                                      audio=False), progress=False)
    assert fewer.video_bytes < summary.video_bytes
    assert len(codec.steps(load_face_model(ds.root), 8, 1.0)) == 7 + 8 + 4


def test_pose_smoothing_stills_the_head_and_leaves_the_expression(tiny_run, astro_clip, tmp_path):
    """--pose-smoothing smooths the pose and gaze channels of the stream only (the tiny dataset is unsmoothed)."""
    def values(smoothing):
        out = tmp_path / f"s{smoothing}.sam"
        codec.encode(astro_clip.path, tiny_run, out, CodecOptions(dims=32, audio=False, pose_smoothing=smoothing),
                     progress=False)
        header, levels, _ = _levels_and_header(out)
        return levels * np.asarray(header["steps"])

    raw, smoothed = values(0.0), values(2.0)
    pose, gaze = slice(0, codec.POSE_DIMS), slice(-codec.GAZE_DIMS, None)
    assert np.array_equal(raw[:, codec.POSE_DIMS:-codec.GAZE_DIMS], smoothed[:, codec.POSE_DIMS:-codec.GAZE_DIMS])
    for part in (pose, gaze):
        wiggle = [np.abs(np.diff(v[:, part], 2, axis=0)).sum() for v in (raw, smoothed)]
        assert wiggle[1] < 0.7 * wiggle[0]


def test_decode_renders_the_dequantised_motion(tiny_run, astro_clip, tmp_path):
    stream, video = tmp_path / "clip.sam", tmp_path / "out.mp4"
    assert main(["encode", str(astro_clip.path), "--avatar", str(tiny_run), "-o", str(stream), "--quiet",
                 "--dims", "16"]) == 0
    assert main(["decode", str(stream), "--avatar", str(tiny_run), "-o", str(video), "--quiet"]) == 0
    header, levels, _ = _levels_and_header(stream)
    avatar = Avatar.load(tiny_run)
    params = codec.from_values(levels * np.asarray(header["steps"]), avatar.subject.basis.shape[0])
    mark = avatar.mark(ProvenanceOptions(c2pa=False))  # the same H.264 settings and the same pixel mark
    with VideoWriter(tmp_path / "expected.mp4", header["fps"], mark=mark) as writer:
        for image in avatar_frames(avatar, params):
            writer.write(image)
    expected = np.stack([f.rgb for f in read_frames(tmp_path / "expected.mp4")]).astype(float)
    got = np.stack([f.rgb for f in read_frames(video)]).astype(float)
    assert got.shape == expected.shape
    assert np.abs(got - expected).mean() < 0.5
    assert probe(video).fps == pytest.approx(header["fps"])
    v = verify(video)
    assert v.tag and v.c2pa.synthetic and v.watermark.payload in (None, mark.payload)


def test_decode_reads_a_pipe_as_it_arrives(tiny_run, astro_clip, tmp_path):
    stream = tmp_path / "clip.sam"
    codec.encode(astro_clip.path, tiny_run, stream, CodecOptions(audio=False), progress=False)
    data = stream.read_bytes()
    read_end, write_end = os.pipe()

    def feed():
        with os.fdopen(write_end, "wb") as w:
            for i in range(0, len(data), 97):  # in small pieces, as a network would deliver them
                w.write(data[i:i + 97])
                w.flush()

    threading.Thread(target=feed, daemon=True).start()
    with os.fdopen(read_end, "rb") as r:
        piped = codec.decode(r, tiny_run, tmp_path / "piped.mp4", progress=False)
    direct = codec.decode(stream, tiny_run, tmp_path / "direct.mp4", progress=False)
    assert piped.frames == direct.frames == 100
    a = [f.rgb for f in read_frames(tmp_path / "piped.mp4")]
    b = [f.rgb for f in read_frames(tmp_path / "direct.mp4")]
    assert all(np.array_equal(x, y) for x, y in zip(a, b))


def test_bad_streams_get_one_line_errors(tiny_run, astro_clip, tmp_path):
    stream = tmp_path / "clip.sam"
    codec.encode(astro_clip.path, tiny_run, stream, CodecOptions(audio=False), progress=False)
    data = stream.read_bytes()
    out = tmp_path / "out.mp4"
    cases = {
        "truncated": (data[:len(data) // 2], "truncated stream"),
        "no end marker": (data[:-5], "truncated stream"),
        "not a stream": (b"\x00" * 64, "not a styleavatar stream"),
    }
    n = struct.unpack("<I", data[16:20])[0]
    header = json.loads(data[20:20 + n])
    for key, value, name in (("version", 99, "newer version"), ("avatar", "0" * 64, "another avatar")):
        blob = json.dumps({**header, key: value}).encode()
        match = "newer than this styleavatar" if key == "version" else "made for avatar 000000000000"
        cases[name] = (data[:16] + struct.pack("<I", len(blob)) + blob + data[20 + n:], match)
    for name, (content, match) in cases.items():
        bad = tmp_path / f"{name.replace(' ', '_')}.sam"
        bad.write_bytes(content)
        with pytest.raises(UserError, match=match):
            codec.decode(bad, tiny_run, out, progress=False)
        assert not out.exists(), name  # nothing half-written
    assert main(["decode", str(tmp_path / "truncated.sam"), "--avatar", str(tiny_run), "-o", str(out)]) == 2
    with pytest.raises(UserError, match="dims must be"):
        codec.encode(astro_clip.path, tiny_run, tmp_path / "x.sam", CodecOptions(dims=99), progress=False)


def test_audio_travels_as_opus(tiny_run, astro_clip, tmp_path):
    """A clip with a 440 Hz tone: the stream holds Opus audio and the decoded mp4 has the audio back."""
    wav = tmp_path / "tone.wav"
    rate = 48000
    tone = (np.sin(2 * np.pi * 440 * np.arange(rate * 2) / rate) * 12000).astype("<i2")
    with wave.open(str(wav), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(tone.tobytes())
    clip = tmp_path / "with_audio.mp4"
    with VideoWriter(clip, 25, audio_from=wav, audio_duration=2.0) as writer:
        for i, frame in enumerate(read_frames(astro_clip.path)):
            if i == 50:
                break
            writer.write(frame.rgb)
    stream, video = tmp_path / "a.sam", tmp_path / "a.mp4"
    summary = codec.encode(clip, tiny_run, stream, progress=False)
    header, _, chunks = _levels_and_header(stream)
    assert header["audio"] == "opus" and chunks[0][0] == b"A" and summary.audio_bytes > 1000
    codec.decode(stream, tiny_run, video, progress=False)
    assert probe(video).audio_codec is not None


def test_live_encode_writes_the_sessions_stream(tiny_run, astro_clip, tmp_path):
    """`live --encode`: frame-by-frame fits of the camera's person give the offline encoder's motion."""
    live, offline = tmp_path / "live.sam", tmp_path / "offline.sam"
    assert main(["live", str(tiny_run), "--video", str(astro_clip.path), "--encode", str(live), "--no-stats"]) == 0
    codec.encode(astro_clip.path, tiny_run, offline, CodecOptions(audio=False), progress=False)
    h_live, l_live, _ = _levels_and_header(live)
    h_off, l_off, _ = _levels_and_header(offline)
    assert h_live["frames"] is None and h_live["avatar"] == h_off["avatar"] and len(l_live) == 100
    step = np.asarray(h_off["steps"])
    live_v, off_v = l_live * step, l_off * step
    assert np.abs(live_v[:, :3] - off_v[:, :3]).mean() < 0.02  # rotation within about a degree
    mouth = 7  # the first expression coefficient (the largest motion of the clip)
    assert np.corrcoef(live_v[:, mouth], off_v[:, mouth])[0, 1] > 0.9
    codec.decode(live, tiny_run, tmp_path / "live.mp4", progress=False)
    assert len(list(read_frames(tmp_path / "live.mp4"))) == 100
