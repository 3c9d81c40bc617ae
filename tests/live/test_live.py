"""The live loop headless on a video file, its MJPEG server, bench output and bad inputs."""
from __future__ import annotations

import json
import threading
import urllib.request

import numpy as np

from styleavatar.cli import main
from styleavatar.inference.avatar import Avatar
from styleavatar.live.driver import LiveDriver
from styleavatar.live.pipeline import MJPEGServer, run_pipeline, video_source
from styleavatar.io.video import read_frames


def test_live_loop_runs_headless_and_holds_motion_when_the_face_is_lost(tiny_run, drive_clip):
    avatar = Avatar.load(tiny_run)
    shown = []
    frames = list(video_source(drive_clip.path, 20))
    frames[8:12] = [np.zeros_like(frames[0])] * 4  # the face is lost for four frames
    times = run_pipeline(avatar, iter(frames), [shown.append], fps=25)
    assert times.frames == len(shown) == 18  # 2 warm-up frames; lost frames repeat the last good motion
    assert shown[0].shape == (64, 64, 3)
    s = times.summary()
    assert s["fps"] > 0 and s["stages"]["network"]["p50_ms"] > 0 and s["latency"]["p95_ms"] > 0


def test_live_driver_zero_motion_is_the_reference_pose(tiny_run, drive_clip):
    avatar = Avatar.load(tiny_run)
    driver = LiveDriver(avatar.subject, avatar.reference_pose(), smooth=0, static=True)  # same frame, same marks
    first = next(iter(read_frames(drive_clip.path))).rgb
    out = [driver(first) for _ in range(5)]
    driver.close()
    assert out[0] is None and out[1] is None  # warm-up
    for p in out[2:]:
        assert np.allclose(p.expression, 0, atol=1e-6)
        assert np.allclose(p.rotation, avatar.reference_pose().rotation, atol=1e-6)


def test_mjpeg_server_streams_on_localhost():
    server = MJPEGServer(0)
    try:
        assert server.url.startswith("http://127.0.0.1:")
        timer = threading.Timer(0.3, lambda: server(np.full((32, 32, 3), 128, np.uint8)))
        timer.start()
        with urllib.request.urlopen(server.url, timeout=5) as resp:
            assert resp.headers["Content-Type"].startswith("multipart/x-mixed-replace")
            chunk = resp.read(200)
        assert b"image/jpeg" in chunk
    finally:
        server.close()


def test_live_and_bench_commands(tiny_run, drive_clip, tmp_path, capsys):
    out = tmp_path / "live.mp4"
    assert main(["live", str(tiny_run), "--video", str(drive_clip.path), "--output", str(out), "--seconds", "30"]) == 0
    assert "fps" in capsys.readouterr().out and out.exists()
    js = tmp_path / "bench.json"
    assert main(["bench", str(tiny_run), "--video", str(drive_clip.path), "--frames", "20", "--json", str(js)]) == 0
    text = capsys.readouterr().out
    assert "| network |" in text and "end to end" in text
    data = json.loads(js.read_text())
    assert data["frames"] >= 20 and set(data["stages"]) >= {"decode", "landmarks+fit", "rasterise", "network"}
    assert main(["live", str(tmp_path), "--video", str(drive_clip.path)]) == 2
    assert "not a styleavatar run folder" in capsys.readouterr().err
    assert main(["live", str(tiny_run), "--camera", "7"]) == 2  # no sink chosen
