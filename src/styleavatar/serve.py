"""``styleavatar serve``: a browser UI (gradio) for making, driving and evaluating avatars.

Everything the app writes lives in its working folder: ``uploads/`` (files copied under generated
names: a user's file name never becomes a path), ``datasets/``, ``avatars/`` (run folders),
``results/``. Only ``results/`` can be fetched over HTTP: uploads, datasets and avatar weights are
personal data and never leave the machine through the app. One job runs at a time across all buttons.
The server binds to 127.0.0.1 unless told otherwise, needs ``auth`` on any other address, answers only
requests addressed to it by an IP address, ``localhost`` or the machine's own name (no DNS rebinding),
and refuses uploads over the size cap and videos over the duration and resolution caps.
"""
from __future__ import annotations

import contextlib
import os
import re
import shutil
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

from .errors import UserError
from .io.atomic import sweep_partial_folders
from .live.hosts import host_allowed

VIDEO_SUFFIXES = {".mp4", ".mov", ".webm", ".mkv", ".avi", ".m4v"}
MOTION_SUFFIXES = {".npz"}
MAX_VIDEO_MINUTES = 5.0
"""Longest accepted upload: preprocess holds every frame in memory for training (about 0.7 MB a frame at
the cpu preset), so 5 minutes at 30 frames/s is about 6 GB, within a 24 GB machine with room to spare."""
MAX_VIDEO_SIDE = 4096
"""Largest accepted frame side in pixels (decoding 8K video is slow and memory-hungry for no gain: the
avatar is learnt from a crop of at most 1024^2)."""
JOB = "job"
"""The concurrency group of every button that starts work: one job at a time across the app."""
LOOPBACK = {"127.0.0.1", "localhost", "::1"}
RESULTS_KEPT = 50
"""Newest entries of results/ kept; older ones are removed when a job starts (disk stays bounded)."""
CACHE_CLEANING = (600, 3600)
"""gradio's own cache of uploads and outputs: every 10 minutes, files older than an hour are removed."""


class Workspace:
    """The app's working folder and the only place it reads user data from or writes to."""

    def __init__(self, root: str | Path, max_minutes: float = MAX_VIDEO_MINUTES,
                 max_side: int = MAX_VIDEO_SIDE) -> None:
        self.root = Path(root).resolve()
        self.max_minutes, self.max_side = max_minutes, max_side
        for sub in ("uploads", "datasets", "avatars", "results"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        # the app never resumes a preprocess: what a killed server left half-written is garbage
        sweep_partial_folders(self.root / "datasets", older_than_s=0)

    @property
    def results(self) -> Path:
        """The only folder whose files the app hands to the browser."""
        return self.root / "results"

    def check_video(self, path: Path) -> None:
        """Refuse a video over the duration or resolution caps before any work starts (probe only)."""
        from .io.video import probe

        info = probe(path)
        if info.duration > self.max_minutes * 60:
            raise UserError(f"the video is {info.duration / 60:.1f} minutes long; the app takes at most "
                            f"{self.max_minutes:g} (about two minutes is best): trim it first")
        if max(info.width, info.height) > self.max_side:
            raise UserError(f"the video is {info.width}x{info.height}; the app takes at most {self.max_side} "
                            "pixels a side: scale it down first")

    def publish(self, path: Path | None, name: str) -> str | None:
        """A copy of ``path`` in results/ (as ``name``) that the browser may fetch, or None. Copied only
        when ``path`` is newer than the copy (callers poll it every few seconds)."""
        if path is None:
            return None
        dst = self.results / name
        if not dst.exists() or dst.stat().st_mtime < path.stat().st_mtime:
            shutil.copyfile(path, dst)
        return str(dst)

    def take_upload(self, path: str | Path | None, allowed: set[str], what: str) -> Path:
        """Copy an uploaded temp file into uploads/ under a generated name; only the suffix is kept."""
        if not path:
            raise UserError(f"upload a {what} first")
        src = Path(path)
        suffix = src.suffix.lower()
        if suffix not in allowed:
            raise UserError(f"{what} must be one of {', '.join(sorted(allowed))}, got '{suffix or 'no extension'}'")
        dst = self.root / "uploads" / f"{uuid.uuid4().hex}{suffix}"
        shutil.copyfile(src, dst)
        if suffix in VIDEO_SUFFIXES:
            try:
                self.check_video(dst)
            except UserError:
                dst.unlink()
                raise
        return dst

    @contextlib.contextmanager
    def upload(self, path: str | Path | None, allowed: set[str], what: str) -> Iterator[Path]:
        """:meth:`take_upload` for the length of a block; the copy is removed afterwards (what a job
        keeps of it lives in its dataset or result)."""
        dst = self.take_upload(path, allowed, what)
        try:
            yield dst
        finally:
            dst.unlink(missing_ok=True)

    def prune_results(self, keep: int = RESULTS_KEPT) -> None:
        """Remove all but the ``keep`` newest files and folders of results/."""
        from .io.atomic import remove

        entries = sorted(self.results.iterdir(), key=lambda p: p.stat().st_mtime, reverse=True)
        for old in entries[keep:]:
            remove(old)

    def avatar_names(self) -> list[str]:
        return sorted(p.name for p in (self.root / "avatars").iterdir() if (p / "avatar.safetensors").exists())

    def avatar(self, name: str | None) -> Path:
        """An avatar folder by name; names are checked so they cannot leave the workspace."""
        if not name or not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", name):
            raise UserError("choose an avatar")
        path = self.root / "avatars" / name
        if not (path / "avatar.safetensors").exists():
            raise UserError(f"no avatar called {name}")
        return path

    def new_name(self, wanted: str | None) -> str:
        base = re.sub(r"[^A-Za-z0-9_-]+", "-", (wanted or "").strip())[:40].strip("-") or "avatar"
        name, k = base, 2
        while (self.root / "avatars" / name).exists() or (self.root / "datasets" / name).exists():
            name, k = f"{base}-{k}", k + 1
        return name


def _newest(folder: Path, pattern: str) -> Path | None:
    files = sorted(folder.glob(pattern)) if folder.exists() else []
    return files[-1] if files else None


def make_avatar(ws: Workspace, video: str | None, name: str | None, preset: str, minutes: float,
                stop: threading.Event | None = None):
    """Generator for the UI: preprocess, then train in a thread while reporting progress and samples.

    ``stop`` (set when the browser tab closes) ends training early; so does closing the generator.
    Either way the avatar learnt so far is written."""
    from .config import MODEL_PRESETS, PREPROCESS_PRESETS, TRAIN_PRESETS
    from .data.preprocess import preprocess
    from .training.trainer import train

    ws.prune_results()
    with ws.upload(video, VIDEO_SUFFIXES, "video") as src:
        name = ws.new_name(name)
        yield f"preprocessing {name} ...", None
        dataset = ws.root / "datasets" / name
        pcfg = PREPROCESS_PRESETS["tiny" if preset == "tiny" else "cpu"]
        summary = preprocess(src, dataset, pcfg, progress=False, log=lambda m: None)
    yield summary.describe(), None
    run = ws.root / "avatars" / name
    result: dict = {}
    stop = stop or threading.Event()

    def work() -> None:
        try:
            result["summary"] = train([dataset], run, MODEL_PRESETS[preset], TRAIN_PRESETS[preset],
                                      minutes=minutes, progress=False, log=lambda m: None, stop=stop)
        except BaseException as exc:  # shown in the UI
            result["error"] = exc

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    started = time.monotonic()
    try:
        while thread.is_alive():
            thread.join(timeout=2.0)
            elapsed = time.monotonic() - started
            yield (f"training {name}: {elapsed / 60:.1f} of {minutes:g} min",
                   ws.publish(_newest(run / "samples", "[0-9]*.png"), f"{name}-sample.png"))
    finally:  # normal end, or the client went away and the generator is closed: no training left behind
        stop.set()
        thread.join()
    if "error" in result:
        raise result["error"]
    yield (result["summary"].describe().replace(str(ws.root) + "/", ""),
           ws.publish(_newest(run / "samples", "[0-9]*.png"), f"{name}-sample.png"))


def drive_avatar(ws: Workspace, name: str | None, driver: str | None, eyes: float, mouth: float, yaw: float,
                 pitch: float, roll: float, expression: float, side_by_side: bool) -> tuple[str, str]:
    """Reenact: returns (video path, status line)."""
    from .config import Openness, ReenactOptions, TransferOptions
    from .inference.reenact import reenact

    ws.prune_results()
    with ws.upload(driver, VIDEO_SUFFIXES | MOTION_SUFFIXES, "driver video or motion template") as drive:
        run = ws.avatar(name)
        opts = ReenactOptions(transfer=TransferOptions(
            eyes=None if eyes == 1 else Openness(eyes, True), mouth=None if mouth == 1 else Openness(mouth, True),
            pose_offset=(yaw, pitch, roll), expression_scale=expression),
            side_by_side=side_by_side and drive.suffix != ".npz")
        out = ws.results / f"{name}-{uuid.uuid4().hex[:8]}.mp4"
        summary = reenact(run, drive, out, opts, progress=False)
    return str(out), summary.describe().replace(str(ws.root) + "/", "")


def evaluate_avatar(ws: Workspace, name: str | None, driver: str | None) -> tuple[dict, str]:
    from .evaluation.report import evaluate

    from .io.atomic import atomic_file

    ws.prune_results()
    with contextlib.ExitStack() as stack:
        drives = [stack.enter_context(ws.upload(driver, VIDEO_SUFFIXES, "driver video"))] if driver else []
        run = ws.avatar(name)
        out = ws.results / f"{name}-report"
        summary = evaluate(run, ws.root / "datasets" / name, drives, out, max_frames=64, progress=False)
    m = summary.metrics
    table = {"held-out": m["self_reenactment"]["mean"], "cross-driving": m["cross_reenactment"]}
    archive = out.with_suffix(".zip")
    with atomic_file(archive, suffix=".zip") as tmp:  # a half-written zip never looks like a report
        shutil.make_archive(str(tmp.with_suffix("")), "zip", out)
    return table, str(archive)


def build_app(workdir: str | Path = "serve_output", ws: Workspace | None = None):
    """The gradio Blocks app (not launched)."""
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"  # no calls home, whatever the environment says
    import gradio as gr

    ws = ws or Workspace(workdir)

    def guard(fn):
        """Turn bad input into a message in the UI instead of a stack trace (without our folder's path)."""
        def wrapped(*args):
            try:
                result = fn(*args)
                if hasattr(result, "__next__"):
                    yield from result
                else:
                    yield result
            except UserError as exc:
                raise gr.Error(str(exc).replace(str(ws.root) + "/", "")) from None
        return wrapped

    jobs: dict[str, threading.Event] = {}  # browser session -> the stop switch of its running training

    def make(video, name, preset, minutes, request: gr.Request):
        stop = jobs[request.session_hash] = threading.Event()
        try:
            yield from guard(lambda *a: make_avatar(ws, *a, stop=stop))(video, name, preset, minutes)
        finally:
            jobs.pop(request.session_hash, None)

    def closed(request: gr.Request):
        """The tab was closed or reloaded: its training stops (and keeps what it learnt)."""
        if request.session_hash in jobs:
            jobs[request.session_hash].set()

    # gradio passes the request to a parameter annotated gr.Request; with postponed annotations (this
    # module's `from __future__ import annotations`) it needs the class itself, not its name
    make.__annotations__["request"] = closed.__annotations__["request"] = gr.Request

    def refresh():
        names = ws.avatar_names()
        return [gr.update(choices=names, value=names[-1] if names else None) for _ in range(2)]

    with gr.Blocks(title="styleavatar", delete_cache=CACHE_CLEANING) as app:
        gr.Markdown("# styleavatar\nMake a drivable portrait avatar from one video. Get consent from the person "
                    "in it; never present the output as real footage.")
        with gr.Tab("Make an avatar"):
            video = gr.File(label="portrait video (about 2 minutes, one face)", file_types=sorted(VIDEO_SUFFIXES),
                            elem_id="make_video")
            with gr.Row():
                name = gr.Textbox(label="name", value="me", elem_id="make_name")
                preset = gr.Dropdown(["tiny", "cpu"], value="cpu", label="preset (tiny = seconds, a test)",
                                     elem_id="make_preset")
                minutes = gr.Slider(0.1, 240, value=60, step=0.1, label="training minutes", elem_id="make_minutes")
            make_btn = gr.Button("Make avatar", variant="primary", elem_id="make_button")
            status = gr.Textbox(label="progress", elem_id="make_status")
            sample = gr.Image(label="latest sample: truth | avatar | render", elem_id="make_sample")
        with gr.Tab("Drive"):
            with gr.Row():
                drive_name = gr.Dropdown(ws.avatar_names(), label="avatar", elem_id="drive_avatar")
                driver = gr.File(label="driver video or motion .npz", elem_id="drive_file")
            with gr.Row():
                eyes = gr.Slider(0, 2, value=1, step=0.05, label="eyes (x driver)")
                mouth = gr.Slider(0, 2, value=1, step=0.05, label="mouth (x driver)")
                expr = gr.Slider(0, 2, value=1, step=0.05, label="expression scale")
            with gr.Row():
                yaw = gr.Slider(-30, 30, value=0, step=1, label="yaw offset (deg)")
                pitch = gr.Slider(-30, 30, value=0, step=1, label="pitch offset (deg)")
                roll = gr.Slider(-30, 30, value=0, step=1, label="roll offset (deg)")
            sbs = gr.Checkbox(value=True, label="side by side with the driver")
            drive_btn = gr.Button("Drive", variant="primary", elem_id="drive_button")
            result = gr.Video(label="result", elem_id="drive_result")
            drive_status = gr.Textbox(label="status", elem_id="drive_status")
        with gr.Tab("Evaluate"):
            eval_name = gr.Dropdown(ws.avatar_names(), label="avatar", elem_id="eval_avatar")
            eval_driver = gr.File(label="optional driver video for cross-driving", elem_id="eval_file")
            eval_btn = gr.Button("Evaluate", variant="primary", elem_id="eval_button")
            metrics = gr.JSON(label="metrics")
            report = gr.File(label="report (zip: index.html, metrics.json, videos)")
        make_btn.click(make, [video, name, preset, minutes], [status, sample],
                       concurrency_id=JOB, concurrency_limit=1, api_name="make") \
            .then(refresh, None, [drive_name, eval_name])
        drive_btn.click(guard(lambda *a: drive_avatar(ws, *a)),
                        [drive_name, driver, eyes, mouth, yaw, pitch, roll, expr, sbs], [result, drive_status],
                        concurrency_id=JOB, concurrency_limit=1, api_name="drive")
        eval_btn.click(guard(lambda *a: evaluate_avatar(ws, *a)), [eval_name, eval_driver], [metrics, report],
                       concurrency_id=JOB, concurrency_limit=1, api_name="evaluate")
        app.load(refresh, None, [drive_name, eval_name])
        app.unload(closed)
    app.queue(default_concurrency_limit=1)
    return app


def check_exposure(host: str, auth: tuple[str, str] | None) -> None:
    """Refuse to listen beyond this machine without a password."""
    if host not in LOOPBACK and auth is None:
        raise UserError(f"--host {host} makes the app reachable from other machines: give --auth USER:PASSWORD "
                        "(people's faces and avatars are personal data)")


class HostCheck:
    """ASGI middleware: 403 for requests whose Host header is not ours (see :mod:`.live.hosts`)."""

    def __init__(self, app, allowed_hosts: tuple[str, ...] = ()) -> None:
        self.app, self.allowed_hosts = app, allowed_hosts

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] in ("http", "websocket"):
            host = dict(scope.get("headers") or []).get(b"host", b"").decode("latin-1")
            if not host_allowed(host, self.allowed_hosts):
                if scope["type"] == "websocket":
                    await send({"type": "websocket.close", "code": 1008})
                else:
                    await send({"type": "http.response.start", "status": 403,
                                "headers": [(b"content-type", b"text/plain")]})
                    await send({"type": "http.response.body", "body": b"forbidden host\n"})
                return
        await self.app(scope, receive, send)


def serve(host: str = "127.0.0.1", port: int = 7860, workdir: str | Path = "serve_output", max_upload_mb: int = 500,
          block: bool = True, auth: tuple[str, str] | None = None, allowed_hosts: tuple[str, ...] = (),
          max_minutes: float = MAX_VIDEO_MINUTES, max_side: int = MAX_VIDEO_SIDE):
    """Launch the app; returns it (with ``block=False``, for tests).

    auth: (user, password) asked by the browser; required when ``host`` is not a loopback address.
    allowed_hosts: names besides IP addresses, localhost and this machine's name under which the app
    may be reached (for example a reverse proxy's)."""
    check_exposure(host, auth)
    from starlette.middleware import Middleware

    ws = Workspace(workdir, max_minutes, max_side)
    app = build_app(ws=ws)
    app.launch(server_name=host, server_port=port, max_file_size=f"{max_upload_mb}mb", prevent_thread_lock=not block,
               allowed_paths=[str(ws.results)], show_error=True, quiet=True, share=False, auth=auth,
               app_kwargs={"middleware": [Middleware(HostCheck, allowed_hosts=tuple(allowed_hosts))]})
    return app
