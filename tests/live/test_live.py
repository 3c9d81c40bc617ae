"""The live loop headless on a video file, its MJPEG server, bench output and bad inputs."""
from __future__ import annotations

import json
import socket
import threading
import time
import urllib.request

import numpy as np

from styleavatar.cli import main
from styleavatar.config import TransferOptions
from styleavatar.inference.avatar import Avatar
from styleavatar.live.driver import LiveDriver
from styleavatar.live.pipeline import MJPEGServer, run_pipeline, video_source
from styleavatar.io.verify import verify
from styleavatar.io.video import read_frames
from styleavatar.io.watermark import embed


def test_live_loop_runs_headless_and_holds_motion_when_the_face_is_lost(tiny_run, drive_clip):
    avatar = Avatar.load(tiny_run)
    shown = []
    frames = list(video_source(drive_clip.path, 20))
    frames[8:12] = [np.zeros_like(frames[0])] * 4  # the face is lost for four frames
    times = run_pipeline(avatar, iter(frames), [shown.append], fps=25, show_stats=False)
    assert times.frames == len(shown) == 18  # 2 warm-up frames; lost frames repeat the last good motion
    assert shown[0].shape == (64, 64, 3)
    # shown[k] is frame k + 2: frames 8-11 (no face) repeat frame 7's avatar, later frames move again
    assert all(np.array_equal(shown[k], shown[5]) for k in range(6, 10))
    assert not all(np.array_equal(shown[k], shown[5]) for k in range(10, 18))
    s = times.summary()
    assert s["frames"] == 18 and s["stages"]["network"]["p50_ms"] <= s["latency"]["p50_ms"] <= s["latency"]["p95_ms"]


def test_live_marks_every_frame_once_before_any_output(tiny_run, drive_clip):
    avatar = Avatar.load(tiny_run)
    frames = list(video_source(drive_clip.path, 12))
    plain, marked = [], []
    run_pipeline(avatar, iter(frames), [plain.append], fps=25, show_stats=False)
    times = run_pipeline(avatar, iter(frames), [marked.append], fps=25, show_stats=False,
                         mark=avatar.mark().payload)
    assert len(marked) == len(plain) == 10 and len(times.stages["mark"]) == 10
    for p, m in zip(plain, marked):
        assert np.array_equal(m, embed(p, avatar.mark().payload))


def test_live_driver_zero_motion_is_the_avatars_rest(tiny_run, drive_clip):
    avatar = Avatar.load(tiny_run)
    # the same frame again and again: the same landmarks, so zero motion
    driver = LiveDriver(avatar.subject, avatar.motion_range(), options=TransferOptions(smooth=0), static=True)
    first = next(iter(read_frames(drive_clip.path))).rgb
    out = [driver(first) for _ in range(5)]
    driver.close()
    assert out[0] is None and out[1] is None  # warm-up
    for p in out[2:]:
        assert np.allclose(p.expression, avatar.motion_range().rest_coeffs, atol=1e-6)
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


def _get(url: str, host: str | None = None):
    """(status, first bytes) of a GET, with an optional Host header."""
    import urllib.error

    req = urllib.request.Request(url, headers={"Host": host} if host else {})
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, resp.read(64)
    except urllib.error.HTTPError as exc:
        return exc.code, b""


def test_mjpeg_server_refuses_foreign_hosts_and_extra_viewers():
    server = MJPEGServer(0, max_clients=1)
    try:
        port = server.httpd.server_address[1]
        assert _get(server.url, host=f"evil.example.com:{port}")[0] == 403  # DNS rebinding
        viewer = socket.create_connection(("127.0.0.1", port))  # holds the only slot
        viewer.sendall(f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
        viewer.recv(64)  # the 200 and headers: it is being served
        assert _get(server.url, host=f"localhost:{port}")[0] == 503
    finally:
        server.close()
        viewer.close()


def test_mjpeg_viewers_end_when_the_server_closes():
    server = MJPEGServer(0)
    before = threading.active_count()
    port = server.httpd.server_address[1]
    viewers = [socket.create_connection(("127.0.0.1", port)) for _ in range(3)]
    for v in viewers:
        v.sendall(f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
        v.recv(64)
    assert threading.active_count() >= before + 3
    server.close()
    deadline = time.monotonic() + 5
    while threading.active_count() > before - 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    for v in viewers:
        v.close()
    assert threading.active_count() <= before - 1  # the handlers and the serving thread are gone


def test_live_and_bench_commands(tiny_run, drive_clip, tmp_path, capsys):
    out, turned = tmp_path / "live.mp4", tmp_path / "turned.mp4"
    assert main(["live", str(tiny_run), "--video", str(drive_clip.path), "--output", str(out), "--seconds", "30",
                 "--no-stats"]) == 0
    assert "fps" in capsys.readouterr().out
    driver_frames = list(read_frames(drive_clip.path))
    recorded = list(read_frames(out))
    assert len(recorded) == len(driver_frames) - 2  # every frame after the 2-frame warm-up, none dropped
    v = verify(out)
    assert v.tag and v.c2pa.synthetic
    assert main(["live", str(tiny_run), "--video", str(drive_clip.path), "--output", str(turned), "--seconds", "30",
                 "--pose-offset", "30,0,0", "--no-stats"]) == 0  # the transfer options reach the live loop
    moved = np.mean([np.abs(a.rgb.astype(int) - b.rgb).mean() for a, b in zip(recorded, read_frames(turned))])
    assert moved > 3, moved
    js = tmp_path / "bench.json"
    assert main(["bench", str(tiny_run), "--video", str(drive_clip.path), "--frames", "20", "--json", str(js)]) == 0
    text = capsys.readouterr().out
    assert "| network |" in text and "end to end" in text
    data = json.loads(js.read_text())
    assert data["frames"] >= 20 and set(data["stages"]) >= {"decode", "landmarks+fit", "rasterise", "network"}
    assert main(["live", str(tmp_path), "--video", str(drive_clip.path)]) == 2
    assert "not a styleavatar run folder" in capsys.readouterr().err
    assert main(["live", str(tiny_run), "--camera", "7"]) == 2  # no sink chosen
