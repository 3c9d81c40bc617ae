"""``styleavatar live`` and ``styleavatar bench``: capture -> landmarks -> fit -> render -> network -> show.

Three worker threads joined by small queues (capture+tracking, rendering, network) so the stages
overlap; the main thread shows/sends the frames. Every frame carries its capture time, so the
on-screen latency is capture-to-display. With a camera, frames that arrive while the pipeline is busy
are dropped (the newest wins); with a video file every frame is processed.
"""
from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import cv2
import numpy as np

from ..config import TransferOptions
from ..errors import UserError
from ..inference.avatar import Avatar
from ..inference.codec import LiveEncoder
from ..io.video import read_frames
from ..io.watermark import Payload, embed
from .driver import CAMERA_FPS, LiveDriver
from .hosts import host_allowed

JPEG_QUALITY = 85
"""Quality of the MJPEG stream's frames (1-100): sharp enough to judge the avatar, ~4x smaller than 95."""
STAGES = ("decode", "landmarks+fit", "rasterise", "network", "mark", "encode")
_DONE = object()


@dataclass
class Timings:
    """Seconds per frame for each stage, and capture-to-output latency."""

    stages: dict[str, list[float]] = field(default_factory=lambda: {s: [] for s in STAGES})
    latency: list[float] = field(default_factory=list)
    frames: int = 0
    seconds: float = 0.0

    def add(self, stage: str, seconds: float) -> None:
        self.stages[stage].append(seconds)

    def summary(self) -> dict:
        def stats(v: list[float]) -> dict:
            if not v:
                return {"mean_ms": None, "p50_ms": None, "p95_ms": None}
            a = np.asarray(v) * 1000
            return {"mean_ms": round(float(a.mean()), 2), "p50_ms": round(float(np.percentile(a, 50)), 2),
                    "p95_ms": round(float(np.percentile(a, 95)), 2)}
        return {"frames": self.frames, "fps": round(self.frames / max(self.seconds, 1e-9), 2),
                "stages": {k: stats(v) for k, v in self.stages.items()}, "latency": stats(self.latency)}

    def table(self) -> str:
        s = self.summary()
        rows = ["| stage | mean ms | p50 ms | p95 ms |", "| --- | ---: | ---: | ---: |"]
        for name, v in [*s["stages"].items(), ("latency (capture to output)", s["latency"])]:
            if v["mean_ms"] is not None:
                rows.append(f"| {name} | {v['mean_ms']:.1f} | {v['p50_ms']:.1f} | {v['p95_ms']:.1f} |")
        rows.append(f"| **end to end** | {1000 / max(s['fps'], 1e-9):.1f} | | | ")
        return "\n".join(rows) + f"\n\n{s['frames']} frames, **{s['fps']:.1f} fps** end to end"


# ------------------------------------------------------------------------------------------- sources
def video_source(path: str | Path, max_frames: int | None = None) -> Iterator[np.ndarray]:
    for frame in read_frames(path, max_frames=max_frames):
        yield frame.rgb


def camera_source(index: int, max_frames: int | None = None) -> Iterator[np.ndarray]:
    cap = cv2.VideoCapture(index)
    if not cap.isOpened():
        raise UserError(f"cannot open camera {index} (is one connected, and not used by another program?)")
    try:
        n = 0
        while max_frames is None or n < max_frames:
            ok, bgr = cap.read()
            if not ok:
                raise UserError(f"camera {index} stopped delivering frames")
            yield cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            n += 1
    finally:
        cap.release()


# --------------------------------------------------------------------------------------------- sinks
class MJPEGServer:
    """Serves the newest frame as an MJPEG stream at http://HOST:PORT/ (127.0.0.1: this machine only).

    Hardened for a loop that must not slow down: at most ``max_clients`` viewers (others get 503), a
    viewer that stops reading is dropped after ``timeout`` seconds, requests whose Host header is not
    ours get 403 (see :mod:`.hosts`), and every viewer's handler ends when the server closes."""

    def __init__(self, port: int, host: str = "127.0.0.1", max_clients: int = 8, timeout: float = 10.0,
                 allowed_hosts: tuple[str, ...] = ()) -> None:
        self.frame: bytes | None = None
        self.cond = threading.Condition()
        self.closed = threading.Event()
        self.slots = threading.BoundedSemaphore(max_clients)
        server = self

        class Handler(BaseHTTPRequestHandler):
            def setup(self) -> None:
                self.timeout = timeout  # socket timeout for reads and writes of this connection
                super().setup()

            def do_GET(self) -> None:  # noqa: N802 (http.server naming)
                if not host_allowed(self.headers.get("Host"), allowed_hosts):
                    self.send_error(403, "forbidden host")
                    return
                if not server.slots.acquire(blocking=False):
                    self.send_error(503, "too many viewers")
                    return
                try:
                    self._stream()
                finally:
                    server.slots.release()

            def _stream(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
                self.end_headers()
                try:
                    while not server.closed.is_set():
                        with server.cond:
                            server.cond.wait(timeout=1)
                            jpg = server.frame
                        if jpg is None or server.closed.is_set():
                            continue
                        self.wfile.write(b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: "
                                         + str(len(jpg)).encode() + b"\r\n\r\n" + jpg + b"\r\n")
                except (BrokenPipeError, ConnectionResetError, TimeoutError):
                    return

            def log_message(self, *args) -> None:
                return

        try:
            self.httpd = ThreadingHTTPServer((host, port), Handler)
        except OSError as exc:
            raise UserError(f"cannot serve on {host}:{port}: {exc.strerror}") from None
        self.httpd.daemon_threads = True
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}/"

    @staticmethod
    def encode(rgb: np.ndarray) -> bytes:
        """(H, W, 3) uint8 RGB -> one JPEG frame of the stream."""
        return cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])[1].tobytes()

    def __call__(self, rgb: np.ndarray) -> None:
        jpg = self.encode(rgb)
        with self.cond:
            self.frame = jpg
            self.cond.notify_all()

    def close(self) -> None:
        """Stop accepting viewers and end every viewer's stream."""
        self.closed.set()
        with self.cond:
            self.cond.notify_all()
        self.httpd.shutdown()
        self.httpd.server_close()


def window_sink(title: str = "styleavatar") -> Callable[[np.ndarray], None]:
    try:
        cv2.namedWindow(title, cv2.WINDOW_NORMAL)
    except cv2.error:
        raise UserError("--window needs an OpenCV build with a GUI (pip install opencv-python); this one is "
                        "headless: use --http PORT and open the address in a browser") from None

    def show(rgb: np.ndarray) -> None:
        cv2.imshow(title, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        if cv2.waitKey(1) & 0xFF in (27, ord("q")):
            raise KeyboardInterrupt
    return show


def virtual_camera_sink(size: int, fps: float) -> Callable[[np.ndarray], None]:
    try:
        import pyvirtualcam
    except ImportError:
        raise UserError("--virtual-cam needs pyvirtualcam (pip install pyvirtualcam) and a virtual camera "
                        "driver (v4l2loopback on Linux, OBS on Windows/macOS)") from None
    cam = pyvirtualcam.Camera(width=size, height=size, fps=fps)
    return cam.send


def overlay(rgb: np.ndarray, fps: float, latency_ms: float) -> np.ndarray:
    """Draw 'NN fps | NN ms' in the top-left corner."""
    out = np.ascontiguousarray(rgb.copy())
    text = f"{fps:4.1f} fps | {latency_ms:3.0f} ms"
    scale = max(0.35, out.shape[0] / 700)
    cv2.putText(out, text, (6, int(18 * scale * 1.6)), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(out, text, (6, int(18 * scale * 1.6)), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1,
                cv2.LINE_AA)
    return out


# ------------------------------------------------------------------------------------------ pipeline
def _put(q: queue.Queue, item, stop: threading.Event) -> None:
    """Blocking put that gives up once ``stop`` is set."""
    while not stop.is_set():
        try:
            q.put(item, timeout=0.05)
            return
        except queue.Full:
            continue


def _worker(fn, inbox: queue.Queue, outbox: queue.Queue, errors: list, stop: threading.Event) -> threading.Thread:
    def loop() -> None:
        try:
            while not stop.is_set():
                try:
                    item = inbox.get(timeout=0.05)
                except queue.Empty:
                    continue
                if item is _DONE:
                    break
                result = fn(item)
                if result is not None:
                    _put(outbox, result, stop)
        except BaseException as exc:  # handed to the main thread
            errors.append(exc)
        finally:
            _put(outbox, _DONE, stop)
    t = threading.Thread(target=loop, daemon=True)
    t.start()
    return t


def _drain(queues: list[queue.Queue], threads: list[threading.Thread], timeout: float = 10.0) -> None:
    """Empty the queues until every thread has finished (they may be blocked on a full queue)."""
    deadline = time.perf_counter() + timeout
    while any(t.is_alive() for t in threads) and time.perf_counter() < deadline:
        for q in queues:
            try:
                while True:
                    q.get_nowait()
            except queue.Empty:
                pass
        time.sleep(0.005)


def run_pipeline(avatar: Avatar, frames: Iterator[np.ndarray], sinks: list[Callable[[np.ndarray], None]],
                 fps: float = CAMERA_FPS, options: TransferOptions = TransferOptions(),
                 drop_frames: bool = False, show_stats: bool = True, max_seconds: float | None = None,
                 progress: Callable[[int], None] | None = None, encoder: LiveEncoder | None = None,
                 mark: Payload | None = None) -> Timings:
    """Run the live loop until ``frames`` ends (or ``max_seconds``); returns the timings. ``encoder`` also
    receives every frame's landmarks (``live --encode``); ``mark``: embed this invisible mark in every frame
    before any output sees it (``live`` always does)."""
    times = Timings()
    driver = LiveDriver(avatar.subject, avatar.motion_range(), fps, options)
    q_track, q_render, q_net, q_out = (queue.Queue(maxsize=2) for _ in range(4))
    errors: list[BaseException] = []

    def track(item):
        t_cap, rgb = item
        t0 = time.perf_counter()
        params = driver(rgb)
        if encoder is not None:
            encoder.add(driver.landmarks, rgb.shape[1], rgb.shape[0])
        times.add("landmarks+fit", time.perf_counter() - t0)
        return None if params is None else (t_cap, params)

    def render(item):
        t_cap, params = item
        t0 = time.perf_counter()
        tex, uv = avatar.renders(params, 0)
        tensors = avatar.to_tensors([tex], [uv])
        times.add("rasterise", time.perf_counter() - t0)
        return t_cap, tensors

    def network(item):
        t_cap, (r, uv) = item
        t0 = time.perf_counter()
        image = avatar.generate(r, uv)[0][0]
        times.add("network", time.perf_counter() - t0)
        if mark is not None:
            t0 = time.perf_counter()
            image = embed(image, mark)
            times.add("mark", time.perf_counter() - t0)
        return t_cap, image

    stop = threading.Event()
    threads = [_worker(track, q_track, q_render, errors, stop), _worker(render, q_render, q_net, errors, stop),
               _worker(network, q_net, q_out, errors, stop)]

    def feed() -> None:
        try:
            it = iter(frames)
            while not stop.is_set():
                t0 = time.perf_counter()
                rgb = next(it, None)
                if rgb is None:
                    break
                times.add("decode", time.perf_counter() - t0)
                item = (time.perf_counter(), rgb)
                if drop_frames:
                    try:
                        q_track.put_nowait(item)
                    except queue.Full:  # the pipeline is busy: skip this camera frame
                        pass
                else:
                    _put(q_track, item, stop)
        except BaseException as exc:
            errors.append(exc)
        finally:
            _put(q_track, _DONE, stop)

    feeder = threading.Thread(target=feed, daemon=True)
    start = time.perf_counter()
    feeder.start()
    recent: list[float] = []
    try:
        while True:
            try:
                item = q_out.get(timeout=0.1)
            except queue.Empty:
                if errors:
                    break
                continue
            if item is _DONE:
                break
            t_cap, image = item
            now = time.perf_counter()
            times.latency.append(now - t_cap)
            recent = [t for t in recent if now - t < 1.0] + [now]
            t0 = time.perf_counter()
            shown = overlay(image, len(recent), 1000 * (now - t_cap)) if show_stats else image
            for sink in sinks:
                sink(shown)
            times.add("encode", time.perf_counter() - t0)
            times.frames += 1
            if progress:
                progress(times.frames)
            if max_seconds is not None and now - start > max_seconds:
                break
    finally:
        stop.set()
        times.seconds = time.perf_counter() - start
        _drain([q_track, q_render, q_net, q_out], [feeder, *threads])
        driver.close()
    if errors:
        raise errors[0]
    return times
