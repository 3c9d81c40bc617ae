#!/usr/bin/env python3
"""Robustness, false positives and cost of the invisible mark (``styleavatar verify``).

    .venv/bin/python benchmarks/provenance.py [--run RUN] [--workers 2]
    .venv/bin/python benchmarks/provenance.py --live RUN   # the live loop with the mark (styleavatar bench)
    .venv/bin/python benchmarks/provenance.py --windows    # the goal's attack on every 3 s window

Marked content: 6 s (150 frames, 25 fps) at 256^2 of every video in ../shared/data (centre square), of two
synthetic astronaut clips, and (with ``--run``) the avatar driven by each driver video through ``reenact``;
written as ``reenact`` writes (H.264 CRF 18, marked). Unmarked content: the same real and astronaut clips
without the mark, the later 6 s windows (from 6, 12 and 18 s) of the longer videos, and the photos in
../shared/data/photos.

Each clip is attacked and checked exactly as ``styleavatar verify`` checks a file:

- video: as written; a 3 s excerpt re-encoded with H.264 at CRF 23, 28 and 35; downscaled to 50% (CRF 23);
  downscaled to 50% and CRF 28; cropped by 10% of each side (CRF 23);
- single frames: 5 frames per marked clip (20 per unmarked clip) as PNG and as JPEG quality 75.

Writes the "provenance" section of BENCHMARKS.md: detection rate per attack (marked) and false positives
(unmarked), PSNR of marked against unmarked frames, embedding time per 256^2 frame, and the same attacks on
the ``invisible-watermark`` library's marks when it is installed.

``--windows`` cuts every video and both astronaut clips into back-to-back 3 s windows (256^2), writes each
marked and unmarked, applies the attack the goal names (50% downscale, then H.264 CRF 28) and checks it: the
detection rate on about a hundred clips instead of 25. It writes its own section.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from multiprocessing import Pool
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESTRICT_ENV, ROOT, cpu_class, machine, restriction_note, write_section  # noqa: E402

DATA = ROOT.parent / "shared" / "data"
SIZE, FPS, FRAMES = 256, 25.0, 150
EXCERPT = (37, 112)
"""Frames of the 3 s excerpt (from 1.5 s to 4.5 s)."""
CLIP_ATTACKS = {  # name: (3 s excerpt, scale, crop fraction per side, CRF of the re-encoding; None: as written)
    "as written": (False, 1.0, 0.0, None),
    "3 s excerpt, CRF 23": (True, 1.0, 0.0, 23),
    "3 s excerpt, CRF 28": (True, 1.0, 0.0, 28),
    "3 s excerpt, CRF 35": (True, 1.0, 0.0, 35),
    "3 s, 50% downscale, CRF 23": (True, 0.5, 0.0, 23),
    "3 s, 50% downscale, CRF 28": (True, 0.5, 0.0, 28),
    "3 s, 10% crop each side, CRF 23": (True, 1.0, 0.1, 23),
}
FRAME_ATTACKS = ("frame as PNG", "frame as JPEG q75")


def _square(rgb: np.ndarray) -> np.ndarray:
    import cv2

    h, w = rgb.shape[:2]
    s = min(h, w)
    y, x = (h - s) // 2, (w - s) // 2
    return cv2.resize(rgb[y:y + s, x:x + s], (SIZE, SIZE), interpolation=cv2.INTER_AREA)


def _write(path: Path, frames, mark=None, crf: int = 18) -> None:
    from styleavatar.io.video import VideoWriter

    with VideoWriter(path, FPS, crf=crf, mark=mark) as writer:
        for f in frames:
            writer.write(f)


def _frames(path: Path) -> list[np.ndarray]:
    from styleavatar.io.video import read_frames

    return [f.rgb for f in read_frames(path)]


def _clip_attack(name: str, written: Path, frames: list[np.ndarray], tmp: Path) -> Path:
    """Apply one of :data:`CLIP_ATTACKS` to a written clip (its decoded ``frames``); returns the file to check."""
    excerpt, scale, crop, crf = CLIP_ATTACKS[name]
    if crf is None:
        return written
    return _reencode(frames[EXCERPT[0]:EXCERPT[1]] if excerpt else frames, scale, crop, crf, tmp / "attacked.mp4")


def _reencode(part: list[np.ndarray], scale: float, crop: float, crf: int, out: Path) -> Path:
    """Write ``part`` (frames) scaled by ``scale``, cropped by ``crop`` of each side, with H.264 at ``crf``."""
    import cv2

    if scale != 1.0:
        side = int(SIZE * scale)
        part = [cv2.resize(f, (side, side), interpolation=cv2.INTER_AREA) for f in part]
    if crop:
        c = int(round(part[0].shape[0] * crop))
        part = [f[c:-c, c:-c] for f in part]
    _write(out, part, crf=crf)
    return out


def _sources() -> tuple[list[Path], list[tuple[str, str]]]:
    """The videos of ../shared/data, and (name, source) of each of them and of both astronaut clips."""
    videos = sorted((DATA / "train").glob("*.mp4")) + sorted((DATA / "drive").glob("*.*"))
    return videos, [(p.stem, str(p)) for p in videos] + [("astronaut (train motion)", "astronaut:train"),
                                                         ("astronaut (drive motion)", "astronaut:drive")]


def _source_frames(src: str, tmp: Path, n: int, start: int = 0) -> list[np.ndarray]:
    """Up to ``n`` square frames (from ``start``) of a video path, or of the synthetic 'astronaut:KIND' clip
    (made in ``tmp``; :data:`FRAMES` frames)."""
    if src.startswith("astronaut:"):
        from styleavatar.data.synthetic import make_clip

        make_clip(tmp / "astro.mp4", FRAMES, FPS, kind=src.split(":")[1], size=SIZE)
        return _frames(tmp / "astro.mp4")
    return [_square(f.rgb) for f in _read(Path(src), n, start)]


def _check_source(job: tuple[str, str, bool]) -> list[dict]:
    """All attacks on one source, marked or not. ``job``: (name, video path or 'astronaut:kind' or
    'avatar:RUN:driver', marked)."""
    import cv2

    from styleavatar.config import ProvenanceOptions
    from styleavatar.io.provenance import Mark
    from styleavatar.io.verify import verify
    from styleavatar.io.watermark import Payload

    name, src, marked = job
    payload = Payload.for_avatar("5a7a" + "0" * 60)
    mark = Mark(payload, ProvenanceOptions(c2pa=False)) if marked else None
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        written = tmp / "written.mp4"
        if src.startswith("avatar:"):
            from styleavatar.config import ReenactOptions
            from styleavatar.inference.reenact import reenact

            _, run, driver = src.split(":", 2)
            clip = tmp / "driver.mp4"
            _write(clip, [f.rgb for f in _read(Path(driver), FRAMES)])
            reenact(run, clip, written, ReenactOptions(provenance=ProvenanceOptions(c2pa=False)), progress=False)
            payload = verify(written).watermark.payload or payload  # the avatar's own id
        else:
            path, _, start = src.partition("@")
            _write(written, _source_frames(path, tmp, FRAMES, int(start or 0)), mark=mark)
        frames = _frames(written)
        for attack in CLIP_ATTACKS:
            v = verify(_clip_attack(attack, written, frames, tmp)).watermark
            rows.append(_row(name, marked, attack, v, payload))
        picks = np.linspace(0, len(frames) - 1, 5 if marked else 20).round().astype(int)
        for i in picks:
            for attack, suffix, params in (("frame as PNG", ".png", []),
                                           ("frame as JPEG q75", ".jpg", [cv2.IMWRITE_JPEG_QUALITY, 75])):
                path = tmp / f"shot{suffix}"
                cv2.imwrite(str(path), frames[i][..., ::-1], params)
                rows.append(_row(name, marked, attack, verify(path).watermark, payload))
    print(f"{name} ({'marked' if marked else 'unmarked'}): "
          f"{sum(r['found'] for r in rows)}/{len(rows)} found", flush=True)
    return rows


WINDOW = 75
"""Frames of each window of ``--windows`` (3 s at :data:`FPS`)."""
GOAL_ATTACK = "3 s, 50% downscale, CRF 28"
"""The attack of the detection goal (>= 99% found), applied to every window by ``--windows``."""


def _check_windows(job: tuple[str, str]) -> list[dict]:
    """Every back-to-back 3 s window of one source (a video path or 'astronaut:kind'), marked and unmarked,
    after :data:`GOAL_ATTACK`."""
    from styleavatar.config import ProvenanceOptions
    from styleavatar.io.provenance import Mark
    from styleavatar.io.verify import verify
    from styleavatar.io.watermark import Payload

    name, src = job
    _, scale, crop, crf = CLIP_ATTACKS[GOAL_ATTACK]
    payload = Payload.for_avatar("5a7a" + "0" * 60)
    mark = Mark(payload, ProvenanceOptions(c2pa=False))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        raw = _source_frames(src, tmp, 10 ** 6)
        for start in range(0, len(raw) - WINDOW + 1, WINDOW):
            for marked in (True, False):
                _write(tmp / "written.mp4", raw[start:start + WINDOW], mark=mark if marked else None)
                attacked = _reencode(_frames(tmp / "written.mp4"), scale, crop, crf, tmp / "attacked.mp4")
                row = _row(f"{name} @{start / FPS:.0f} s", marked, GOAL_ATTACK, verify(attacked).watermark, payload)
                rows.append({**row, "video": name})
    print(f"{name}: {len(rows) // 2} windows", flush=True)
    return rows


def _windows(workers: int) -> None:
    """``--windows``: write the section "provenance: the goal's attack on every 3 s window"."""
    _, jobs = _sources()
    t0 = time.perf_counter()
    with Pool(workers) as pool:
        rows = [r for part in pool.map(_check_windows, jobs, chunksize=1) for r in part]
    table = ("| source | windows | marked: found | lowest score (uncropped test) | unmarked: false positives | "
             "unmarked: highest score (uncropped test) |\n| --- | ---: | ---: | ---: | ---: | ---: |\n")
    for name in [n for n, _ in jobs] + ["all"]:
        m = [r for r in rows if r["marked"] and name in ("all", r["video"])]
        u = [r for r in rows if not r["marked"] and name in ("all", r["video"])]
        low = min(m, key=lambda r: r["score"])
        table += (f"| {'**all**' if name == 'all' else name} | {len(m)} | {sum(r['found'] for r in m)}/{len(m)} | "
                  f"{low['score']:.1f} ({low['prior_score']:.1f}) | {sum(r['found'] for r in u)}/{len(u)} | "
                  f"{max(r['score'] for r in u):.1f} ({max(r['prior_score'] for r in u):.1f}) |\n")
    title = "provenance: the goal's attack on every 3 s window"
    text = (f"## {title}\n\n`.venv/bin/python benchmarks/provenance.py --windows`\n\n{machine()}; "
            f"{(time.perf_counter() - t0) / 60:.1f} min. Every video in ../shared/data and both astronaut clips, "
            f"centre square at 256^2, cut into back-to-back 3 s windows; each written marked and unmarked as "
            f"`reenact` writes (H.264 CRF 18), then downscaled to 50% and re-encoded at CRF 28, then checked as "
            f"`styleavatar verify` checks a file.\n\n{table}")
    write_section(title, text)
    print(text)


def _read(path: Path, n: int, start: int = 0) -> list:
    """``n`` frames of ``path`` at :data:`FPS` from frame ``start``."""
    from styleavatar.io.video import read_frames

    return list(read_frames(path, fps=FPS, max_frames=start + n))[start:]


def _row(name: str, marked: bool, attack: str, d, payload) -> dict:
    return {"source": name, "marked": marked, "attack": attack, "found": bool(d.found), "score": d.score,
            "prior_score": d.prior_score, "payload_ok": d.payload == payload}


def _photos() -> list[dict]:
    from styleavatar.io.verify import verify

    return [_row(p.name, False, "photo", verify(p).watermark, None) for p in sorted((DATA / "photos").glob("*"))
            if p.suffix.lower() in (".jpg", ".png")]


def _cost() -> dict:
    """PSNR of marked against unmarked frames (real 256^2 crops) and embedding time per 256^2 frame."""
    from styleavatar.io.watermark import Payload, embed

    payload = Payload.for_avatar("5a7a")
    frames = [_square(f.rgb) for f in _read(DATA / "train" / "anchor_71s.mp4", 200)]
    psnr, ms = [], []
    for f in frames:
        t = time.perf_counter()
        m = embed(f, payload)
        ms.append(1000 * (time.perf_counter() - t))
        psnr.append(10 * np.log10(255.0 ** 2 / np.mean((m.astype(np.float64) - f) ** 2)))
    return {"psnr_median": float(np.median(psnr)), "psnr_min": float(np.min(psnr)), "embed_ms": float(np.median(ms))}


def _library(frames: list[np.ndarray]) -> str:
    """The same single-frame attacks on the ``invisible-watermark`` package's two methods, if installed."""
    try:
        from imwatermark import WatermarkDecoder, WatermarkEncoder
    except ImportError:
        return ("`invisible-watermark` is not installed here (`pip install --no-deps invisible-watermark PyWavelets`): "
                "not compared.")
    import cv2

    bits = list(np.random.default_rng(0).integers(0, 2, 32).astype(bool))
    attacks = {"none": lambda x: x,
               "JPEG q75": lambda x: cv2.imdecode(cv2.imencode(".jpg", x, [cv2.IMWRITE_JPEG_QUALITY, 75])[1], 1),
               "50% downscale (scaled back)": lambda x: cv2.resize(cv2.resize(x, (SIZE // 2, SIZE // 2),
                                                                              interpolation=cv2.INTER_AREA), (SIZE, SIZE)),
               "10% crop (scaled back)": lambda x: cv2.resize(x[SIZE // 10:-SIZE // 10, SIZE // 10:-SIZE // 10],
                                                              (SIZE, SIZE))}
    lines = []
    for method in ("dwtDct", "dwtDctSvd"):
        enc = WatermarkEncoder()
        enc.set_watermark("bits", bits)
        dec = WatermarkDecoder("bits", 32)
        psnr, acc = [], {k: [] for k in attacks}
        for f in frames:
            m = enc.encode(f[..., ::-1].copy(), method)
            psnr.append(10 * np.log10(255.0 ** 2 / np.mean((m.astype(np.float64) - f[..., ::-1]) ** 2)))
            for k, fn in attacks.items():
                acc[k].append(np.all(np.array(dec.decode(fn(m), method)) == np.array(bits)))
        lines.append(f"| {method} | {np.median(psnr):.1f} | "
                     + " | ".join(f"{100 * np.mean(v):.0f}%" for v in acc.values()) + " |")
    head = ("| invisible-watermark method | PSNR (dB) | " + " | ".join(f"all 32 bits right: {k}" for k in attacks)
            + " |\n| --- | ---: |" + " ---: |" * len(attacks) + "\n")
    return head + "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", type=Path, help="also mark the avatar of this run driven by every driver video")
    ap.add_argument("--workers", type=int, default=2, help="processes (default: 2)")
    ap.add_argument("--json", type=Path, help="also write every row to this JSON file")
    ap.add_argument("--live", type=Path, metavar="RUN", help="only time the live loop of RUN with the mark on")
    ap.add_argument("--windows", action="store_true", help="only the goal's attack on every 3 s window")
    args = ap.parse_args()
    if args.live:
        return _live(args.live)
    if args.windows:
        return _windows(args.workers)
    from styleavatar.io.video import probe

    if not DATA.exists():
        sys.exit(f"no test data at {DATA}")
    videos, sources = _sources()
    jobs = [(n, s, m) for n, s in sources for m in (True, False)]
    for p in videos:  # more unmarked content: later 6 s windows of the longer videos
        seconds = probe(p).duration
        jobs += [(f"{p.stem} from {t} s", f"{p}@{int(t * FPS)}", False) for t in (6, 12, 18) if t + 6 <= seconds]
    if args.run:
        jobs += [(f"avatar driven by {p.stem}", f"avatar:{args.run}:{p}", True) for p in sorted((DATA / "drive").glob("*.*"))]
    t0 = time.perf_counter()
    with Pool(args.workers) as pool:
        rows = [r for part in pool.map(_check_source, jobs, chunksize=1) for r in part]
    rows += _photos()
    cost = _cost()
    library = _library([_square(f.rgb) for f in _read(DATA / "train" / "anchor_71s.mp4", 40)][::4])
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "cost": cost}, indent=1))
    _report(args, rows, cost, library, time.perf_counter() - t0)


def _live(run: Path) -> None:
    """The live loop (``styleavatar bench``: 150 frames of the run's own video) with its ``mark`` stage."""
    from styleavatar.cli import main as cli

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "bench.json"
        cli(["bench", str(run), "--frames", "150", "--json", str(out)])
        s = json.loads(out.read_text())
    mark, net = s["stages"]["mark"], s["stages"]["network"]
    title = f"provenance: the live loop with the mark, {cpu_class()}"
    env = " ".join(f"{k}={os.environ[k]}" for k in RESTRICT_ENV if k in os.environ)
    text = (f"## {title}\n\n`{(env + ' ') if env else ''}.venv/bin/python benchmarks/provenance.py --live {run}`"
            f"\n\n{machine()}; {cpu_class()}. `styleavatar bench` ({s['frames']} frames of the run's own video, "
            f"{run.name}, 256^2): the mark is embedded on the network's thread after each frame, "
            f"{mark['p50_ms']} ms median ({mark['p95_ms']} ms p95) against the network's {net['p50_ms']} ms; the "
            f"loop ran at {s['fps']:.1f} fps end to end with it.\n\n{restriction_note()}")
    write_section(title, text)
    print(text)


def _report(args, rows: list[dict], cost: dict, library: str, seconds: float) -> None:
    from styleavatar.io.watermark import Z_AT_PRIOR, Z_MARK, Z_WITH_PAYLOAD

    table = ("| attack | marked: found | of them payload right | median score | unmarked: false positives | "
             "unmarked: highest score (uncropped test) |\n| --- | ---: | ---: | ---: | ---: | ---: |\n")
    for attack in (*CLIP_ATTACKS, *FRAME_ATTACKS, "photo"):
        m = [r for r in rows if r["attack"] == attack and r["marked"]]
        u = [r for r in rows if r["attack"] == attack and not r["marked"]]
        found = sum(r["found"] for r in m)
        table += (f"| {attack} | " + (f"{found}/{len(m)} ({100 * found / len(m):.0f}%) | "
                                      f"{sum(r['found'] and r['payload_ok'] for r in m)}/{found} | "
                                      f"{np.median([r['score'] for r in m]):.1f} | " if m else "- | - | - | ")
                  + f"{sum(r['found'] for r in u)}/{len(u)} | {max(r['score'] for r in u):.1f} "
                    f"({max(r['prior_score'] for r in u):.1f}) |\n")
    unmarked = [r for r in rows if not r["marked"]]
    avatar = [r for r in rows if r["source"].startswith("avatar")]
    per_source = ""
    if avatar:
        per_source = ("\nThe avatar's own output (driven by each driver), found: "
                      + ", ".join(f"{a}: {sum(r['found'] for r in avatar if r['attack'] == a)}/"
                                  f"{sum(r['attack'] == a for r in avatar)}" for a in CLIP_ATTACKS) + ".\n")
    command = ".venv/bin/python benchmarks/provenance.py" + (f" --run {args.run}" if args.run else "")
    text = (f"## provenance (invisible mark, `verify`)\n\n`{command}`\n\n{machine()}. numpy and OpenCV code: "
            "it does not use PyTorch's kernels, so there is no separate AVX2-restricted figure. "
            f"{len(rows)} checks in {seconds / 60:.1f} min.\n\n"
            f"Marked frames against unmarked: PSNR median {cost['psnr_median']:.1f} dB, lowest "
            f"{cost['psnr_min']:.1f} dB (anchor_71s, 200 frames at 256^2). Embedding: "
            f"{cost['embed_ms']:.1f} ms per 256^2 frame (median). False positives: "
            f"{sum(r['found'] for r in unmarked)} of {len(unmarked)} unmarked clips, frames and photos.\n\n"
            "Scores are in standard deviations of the correlation map: the full search over shifts and tile sizes "
            f"(found at {Z_MARK:g}, or at {Z_WITH_PAYLOAD:g} with a payload whose CRC matches) and, in brackets, the "
            f"test where an uncropped frame's tile is (found at {Z_AT_PRIOR:g}; 351 trials instead of about 1.3 "
            "million).\n\n"
            f"{table}{per_source}\nFor comparison, the `invisible-watermark` package (32 bits, the same 256^2 "
            f"crops; it refuses images under 256^2, so attacked images are scaled back):\n\n{library}\n")
    write_section("provenance (invisible mark, `verify`)", text)
    print(text)


if __name__ == "__main__":
    main()
