#!/usr/bin/env python3
"""The web app under hostile use: many uploads at once, an over-long video, a crafted motion file.

    .venv/bin/python benchmarks/web.py [--uploads 20] [--upload-mb 50]

Starts ``styleavatar serve`` in its own process (default settings) and samples that process's resident
memory every 20 ms while:
1. ``--uploads`` clients upload a ``--upload-mb`` file each at the same time;
2. a 2-hour video (small frames, so the file is small) is given to "Make avatar";
3. a tiny avatar is made from a 4-second astronaut clip (a real job, for comparison);
4. a 9 kB motion file that declares 10^7 frames is given to "Drive" (with an avatar made before the start).
Writes the "web app under hostile use" section of BENCHMARKS.md.
"""
from __future__ import annotations

import argparse
import concurrent.futures
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, write_section  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def _rss_mb(pid: int) -> float:
    """Resident memory of ``pid`` and its children, in MB (from /proc)."""
    total = 0
    for p in [pid, *_children(pid)]:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total / 1024


def _children(pid: int) -> list[int]:
    try:
        kids = [int(k) for k in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []
    return kids + [g for k in kids for g in _children(k)]


class Sampler:
    """Peak resident memory of a process tree, sampled in a thread."""

    def __init__(self, pid: int) -> None:
        self.pid, self.peak, self.stop = pid, 0.0, threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self.stop.is_set():
            self.peak = max(self.peak, _rss_mb(self.pid))
            time.sleep(0.02)

    def __enter__(self) -> "Sampler":
        self.peak = _rss_mb(self.pid)
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_server(work: Path) -> tuple[subprocess.Popen, str]:
    port = _free_port()
    proc = subprocess.Popen([str(ROOT / ".venv/bin/styleavatar"), "serve", "--port", str(port), "--workdir", str(work)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/"
    import httpx

    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            time.sleep(0.5)
    proc.kill()
    raise RuntimeError("the server did not start")


def _upload(url: str, path: Path) -> int:
    import httpx

    with open(path, "rb") as f:  # streamed from the file, as a browser does
        r = httpx.post(url + "gradio_api/upload", files={"files": (path.name, f, "video/mp4")}, timeout=600)
    return r.status_code


def _long_video(path: Path, hours: float = 2.0) -> None:
    """A valid H.264 video of ``hours`` at 1 frame/s, 32 x 32 pixels (a few hundred kB)."""
    from styleavatar.io.video import VideoWriter

    with VideoWriter(path, fps=1.0, crf=40) as w:
        frame = np.full((32, 32, 3), 90, np.uint8)
        for i in range(int(hours * 3600)):
            frame[:, :, 0] = i % 256
            w.write(frame)


def _tiny_avatar(clip: Path, work: Path) -> None:
    """work/avatars/astro: a tiny-preset avatar of ``clip`` (10 iterations), made before the server starts."""
    from styleavatar.config import MODEL_PRESETS, PREPROCESS_PRESETS, TRAIN_PRESETS
    from styleavatar.data.preprocess import preprocess
    from styleavatar.training.trainer import train

    preprocess(clip, work / "datasets" / "astro", PREPROCESS_PRESETS["tiny"], progress=False, log=lambda m: None)
    train([work / "datasets" / "astro"], work / "avatars" / "astro", MODEL_PRESETS["tiny"], TRAIN_PRESETS["tiny"],
          iters=10, progress=False, log=lambda m: None)


def _error_of(fn) -> tuple[str, float]:
    """The error message a gradio call ends with ('' if it succeeded) and its seconds."""
    t0 = time.perf_counter()
    try:
        fn()
    except Exception as exc:  # gradio_client raises AppError carrying the app's message
        return str(exc).splitlines()[0][:160], time.perf_counter() - t0
    return "", time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--uploads", type=int, default=20)
    ap.add_argument("--upload-mb", type=int, default=50)
    args = ap.parse_args()
    from gradio_client import Client, handle_file

    from styleavatar.serve import MAX_VIDEO_MINUTES, MAX_VIDEO_SIDE

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        blob = tmp / "upload.mp4"
        with open(blob, "wb") as f:
            f.write(os.urandom(args.upload_mb << 20))
        long_clip = tmp / "two_hours.mp4"
        _long_video(long_clip)
        from styleavatar.data.synthetic import make_clip

        clip = make_clip(tmp / "astro.mp4", frames=100, size=512, kind="train").path
        crafted = tmp / "crafted.npz"
        np.savez_compressed(crafted, tracked=np.zeros(10 ** 7, bool))
        _tiny_avatar(clip, tmp / "work")  # an avatar the Drive tab lists from the start
        proc, url = _start_server(tmp / "work")
        try:
            idle = _rss_mb(proc.pid)
            with Sampler(proc.pid) as s, concurrent.futures.ThreadPoolExecutor(args.uploads) as pool:
                t0 = time.perf_counter()
                codes = list(pool.map(lambda _: _upload(url, blob), range(args.uploads)))
                seconds = time.perf_counter() - t0
            ok = sum(c == 200 for c in codes)
            rows.append((f"{args.uploads} uploads of {args.upload_mb} MB at once",
                         f"{ok} of {args.uploads} stored in {seconds:.1f} s", s.peak))
            client = Client(url, verbose=False)
            with Sampler(proc.pid) as s:
                msg, sec = _error_of(lambda: client.predict(handle_file(str(long_clip)), "long", "tiny", 0.1,
                                                            api_name="/make"))
            rows.append((f"a 2-hour video ({long_clip.stat().st_size >> 10} kB) to Make avatar",
                         f"refused in {sec:.1f} s: \"{msg}\"", s.peak))
            with Sampler(proc.pid) as s:
                msg, sec = _error_of(lambda: client.predict(handle_file(str(clip)), "made", "tiny", 0.1,
                                                            api_name="/make"))
            rows.append(("make a tiny avatar of a 4-second clip (control: a real job)",
                         "made" if not msg else f"failed: {msg}", s.peak))
            with Sampler(proc.pid) as s:
                msg, sec = _error_of(lambda: client.predict("astro", handle_file(str(crafted)), 1, 1, 0, 0, 0, 1,
                                                            False, api_name="/drive"))
            rows.append((f"a {crafted.stat().st_size >> 10} kB motion file declaring 10^7 frames to Drive",
                         f"refused in {sec:.1f} s: \"{msg}\"", s.peak))
        finally:
            proc.terminate()
            proc.wait(30)
    table = "\n".join(f"| {what} | {result} | {peak:.0f} |" for what, result, peak in rows)
    text = (f"## web app under hostile use\n\n`.venv/bin/python benchmarks/web.py --uploads {args.uploads} "
            f"--upload-mb {args.upload_mb}`, {machine()}. The server runs in its own process with default settings "
            f"(500 MB upload cap, videos up to {MAX_VIDEO_MINUTES:g} minutes and {MAX_VIDEO_SIDE} pixels a side); its "
            "resident memory is "
            f"sampled every 20 ms. Idle after start: {idle:.0f} MB.\n\n"
            "| what | result | peak server memory (MB) |\n| --- | --- | ---: |\n" + table + "\n")
    print(text)
    write_section("web app under hostile use", text)


if __name__ == "__main__":
    main()
