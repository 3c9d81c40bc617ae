#!/usr/bin/env python3
"""The live loop's speed while its MJPEG stream has many viewers, half of them stalled; writes BENCHMARKS.md.

    .venv/bin/python benchmarks/mjpeg.py [--viewers 50] [--repeats 3]

A tiny-preset avatar of the built-in astronaut clip is driven by a 250-frame scripted clip, as fast as the
machine allows, with the MJPEG server as the only sink (default settings: at most 8 viewers, 10 s socket
timeout). Half of the viewers read the stream; the other half connect, ask for it and never read. The
end-to-end fps is compared with the same loop without viewers (median of the repeats).
"""
from __future__ import annotations

import argparse
import socket
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, write_section  # noqa: E402


def _viewer(port: int, reads: bool, stop: threading.Event) -> None:
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=30)
        s.sendall(f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
        while not stop.is_set():
            if reads:
                if not s.recv(1 << 16):
                    break
            else:
                time.sleep(0.1)  # connected, never reads: the server's socket buffer fills up
        s.close()
    except OSError:  # refused (past the viewer cap) or dropped (stalled past the timeout)
        pass


def _run(avatar, frames, viewers: int) -> float:
    from styleavatar.live.pipeline import MJPEGServer, run_pipeline

    server = MJPEGServer(0)
    port = server.httpd.server_address[1]
    stop = threading.Event()
    threads = [threading.Thread(target=_viewer, args=(port, i % 2 == 0, stop), daemon=True) for i in range(viewers)]
    for t in threads:
        t.start()
    time.sleep(0.5)  # everyone connected (or refused)
    try:
        timings = run_pipeline(avatar, iter(frames), [server], fps=1000.0, show_stats=False)
    finally:
        stop.set()
        server.close()
    return timings.summary()["fps"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--viewers", type=int, default=50)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--no-write", action="store_true", help="print only; leave BENCHMARKS.md alone")
    args = ap.parse_args()
    from styleavatar.config import MODEL_PRESETS, PREPROCESS_PRESETS, TRAIN_PRESETS
    from styleavatar.data.preprocess import preprocess
    from styleavatar.data.synthetic import make_clip
    from styleavatar.inference.avatar import Avatar
    from styleavatar.io.video import read_frames
    from styleavatar.training.trainer import train

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        clip = make_clip(root / "astro.mp4", frames=100, size=512)
        ds = preprocess(clip.path, root / "ds", PREPROCESS_PRESETS["tiny"], progress=False, log=lambda m: None).output
        train([ds], root / "run", MODEL_PRESETS["tiny"], TRAIN_PRESETS["tiny"], iters=10, progress=False,
              log=lambda m: None)
        avatar = Avatar.load(root / "run")
        drive = make_clip(root / "drive.mp4", frames=250, size=512, kind="drive")
        frames = [f.rgb for f in read_frames(drive.path)]
        rates = {0: [], args.viewers: []}
        for _ in range(args.repeats):  # interleaved, so drift of the machine's speed hits both alike
            for n in rates:
                rates[n].append(_run(avatar, frames, n))
    base, loaded = (statistics.median(rates[n]) for n in rates)
    drop = 100 * (1 - loaded / base)
    text = "\n".join([
        "## live loop with MJPEG viewers", "",
        f"`{' '.join(['.venv/bin/python', 'benchmarks/mjpeg.py'] + sys.argv[1:])}`, {machine()}: a tiny-preset "
        f"avatar driven by a 250-frame clip as fast as possible, the MJPEG server (defaults: 8 viewers at most, "
        f"10 s timeout) its only sink; median of {args.repeats} interleaved runs.", "",
        "| viewers | end-to-end fps |", "| --- | ---: |",
        f"| none | {base:.1f} |",
        f"| {args.viewers} ({args.viewers // 2} reading, {args.viewers - args.viewers // 2} stalled) | {loaded:.1f} |",
        "", f"Drop: {drop:.1f}% (goal: under 10%). The tiny preset's frames are "
        f"{MODEL_PRESETS['tiny'].output_size}^2, so each JPEG is small; larger frames cost the reading viewers' "
        "threads more.", ""])
    print(text)
    if not args.no_write:
        write_section("live loop with MJPEG viewers", text)


if __name__ == "__main__":
    main()
