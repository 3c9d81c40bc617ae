"""The web app in a real browser: Debian's Chromium driven by Playwright makes a tiny avatar and drives it."""
from __future__ import annotations

import shutil
import socket
from pathlib import Path

import pytest

from styleavatar.errors import UserError
from styleavatar.serve import VIDEO_SUFFIXES, Workspace

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"


def test_workspace_keeps_user_names_out_of_paths(tmp_path, astro_clip):
    ws = Workspace(tmp_path / "ws")
    evil = tmp_path / "..%2F..%2Fetc passwd.MP4"
    shutil.copyfile(astro_clip.path, evil)
    copied = ws.take_upload(evil, VIDEO_SUFFIXES, "video")
    assert copied.parent == ws.root / "uploads" and copied.suffix == ".mp4" and "passwd" not in copied.name
    with pytest.raises(UserError):
        ws.take_upload(tmp_path / "notes.txt", VIDEO_SUFFIXES, "video")
    with pytest.raises(UserError):
        ws.avatar("../../etc")
    assert ws.new_name("../My Avatar!") == "My-Avatar"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_uploads_are_removed_after_their_job_and_results_stay_bounded(tmp_path, astro_clip):
    import os

    ws = Workspace(tmp_path / "ws")
    with ws.upload(astro_clip.path, VIDEO_SUFFIXES, "video") as copy:
        assert copy.exists()
    assert not list((ws.root / "uploads").iterdir())
    for i in range(5):
        (ws.results / f"r{i}.mp4").write_bytes(b"x")
        os.utime(ws.results / f"r{i}.mp4", (1000 + i, 1000 + i))
    (ws.results / "old-report").mkdir()
    os.utime(ws.results / "old-report", (1, 1))
    ws.prune_results(keep=3)
    assert sorted(p.name for p in ws.results.iterdir()) == ["r2.mp4", "r3.mp4", "r4.mp4"]


def _get(port: int, path: str, host: str | None = None) -> int:
    import urllib.error
    import urllib.request

    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers={"Host": host} if host else {})
    try:
        with urllib.request.urlopen(req, timeout=20) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_server_answers_only_its_own_hosts_and_serves_only_results(tmp_path, monkeypatch):
    from styleavatar.serve import serve

    monkeypatch.setenv("GRADIO_ANALYTICS_ENABLED", "True")  # the environment cannot switch analytics back on
    port = _free_port()
    app = serve("127.0.0.1", port, tmp_path / "ws", block=False)
    try:
        import os

        assert os.environ["GRADIO_ANALYTICS_ENABLED"] == "False"
        ws = tmp_path / "ws"
        for sub in ("datasets", "avatars", "uploads"):  # personal data: never fetched over HTTP
            secret = ws / sub / "frame.png"
            secret.write_bytes(b"face")
            assert _get(port, f"/gradio_api/file={secret.resolve()}") in (403, 404), sub
        result = ws / "results" / "clip.txt"
        result.write_text("a result")
        assert _get(port, f"/gradio_api/file={result.resolve()}") == 200
        assert _get(port, "/") == 200 and _get(port, "/", host=f"localhost:{port}") == 200
        assert _get(port, "/", host=f"evil.example.com:{port}") == 403  # DNS rebinding
        assert _get(port, f"/gradio_api/file={result.resolve()}", host="evil.example.com") == 403
    finally:
        app.close()


def test_every_job_shares_one_queue_slot(tmp_path):
    from styleavatar.serve import JOB, build_app

    app = build_app(tmp_path / "ws")
    jobs = [fn for fn in app.fns.values() if fn.name != "refresh" and fn.concurrency_id == JOB]
    assert len(jobs) == 3 and all(fn.concurrency_limit == 1 for fn in jobs)  # make, drive, evaluate


def test_exposed_host_needs_a_password(tmp_path):
    from styleavatar.cli import main
    from styleavatar.serve import serve

    with pytest.raises(UserError, match="--auth"):
        serve("0.0.0.0", _free_port(), tmp_path / "ws", block=False)
    assert main(["serve", "--host", "0.0.0.0", "--port", str(_free_port()), "--workdir", str(tmp_path)]) == 2


def test_long_or_huge_videos_are_refused_before_any_work(astro_clip, tmp_path):
    ws = Workspace(tmp_path / "ws", max_minutes=0.05)  # 3 s; the clip is 4 s
    with pytest.raises(UserError, match="minutes long"):
        ws.take_upload(astro_clip.path, VIDEO_SUFFIXES, "video")
    assert not list((ws.root / "uploads").iterdir())  # the refused copy is gone
    with pytest.raises(UserError, match="pixels a side"):
        Workspace(tmp_path / "ws2", max_side=256).take_upload(astro_clip.path, VIDEO_SUFFIXES, "video")
    assert Workspace(tmp_path / "ws3").take_upload(astro_clip.path, VIDEO_SUFFIXES, "video").exists()


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (make test installs it as root)")
def test_browser_makes_and_drives_an_avatar(astro_clip, drive_clip, tmp_path):
    from playwright.sync_api import sync_playwright

    from styleavatar.serve import serve

    port = _free_port()
    app = serve("127.0.0.1", port, tmp_path / "ws", block=False)
    ARTIFACTS.mkdir(exist_ok=True)
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=[
                "--no-sandbox", "--disable-background-networking", "--disable-component-update",
                "--disable-dev-shm-usage", "--no-first-run"])
            page = browser.new_page(viewport={"width": 1200, "height": 1600})
            page.goto(f"http://127.0.0.1:{port}/")
            page.set_input_files("#make_video input[type=file]", str(astro_clip.path))
            page.locator("#make_preset input").click()
            page.get_by_role("option", name="tiny").click()
            minutes = page.locator("#make_minutes input[type=number]")
            minutes.fill("0.1")
            minutes.press("Enter")
            page.locator("#make_button").click()
            page.wait_for_function(  # the training summary, or an error toast (fails the next line)
                "() => (document.querySelector('#make_status textarea')?.value || '').includes('iterations')"
                " || document.body.innerText.includes('Error')", timeout=240_000)
            assert "iterations" in page.locator("#make_status textarea").input_value(), page.inner_text("body")
            page.get_by_role("tab", name="Drive").click()
            page.wait_for_function("() => !!document.querySelector('#drive_avatar input')?.value")  # list refreshed
            page.set_input_files("#drive_file input[type=file]", str(drive_clip.path))
            page.locator("#drive_button").click()
            page.wait_for_selector("#drive_result video[src]", timeout=240_000)
            page.screenshot(path=str(ARTIFACTS / "serve.png"), full_page=True)
            page.get_by_role("tab", name="Evaluate").click()
            bad = tmp_path / "notes.txt"
            bad.write_text("not a video")
            page.set_input_files("#eval_file input[type=file]", str(bad))
            page.locator("#eval_button").click()
            page.get_by_text("must be one of").first.wait_for(timeout=60_000)  # a clear message, no crash
            browser.close()
    finally:
        app.close()
    results = list((tmp_path / "ws/results").glob("*.mp4"))
    assert results and results[0].stat().st_size > 1000
    assert not list((tmp_path / "ws/uploads").iterdir())  # each upload is removed when its job ends


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (make test installs it as root)")
def test_closing_the_tab_stops_its_training(astro_clip, tmp_path):
    import threading
    import time

    from playwright.sync_api import sync_playwright

    from styleavatar.serve import serve

    port = _free_port()
    app = serve("127.0.0.1", port, tmp_path / "ws", block=False)
    run = tmp_path / "ws" / "avatars" / "closed"
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-dev-shm-usage"])
            page = browser.new_page()
            page.goto(f"http://127.0.0.1:{port}/")
            page.set_input_files("#make_video input[type=file]", str(astro_clip.path))
            page.locator("#make_name textarea, #make_name input").first.fill("closed")
            page.locator("#make_preset input").click()
            page.get_by_role("option", name="tiny").click()
            minutes = page.locator("#make_minutes input[type=number]")
            minutes.fill("10")  # far longer than this test waits
            minutes.press("Enter")
            page.locator("#make_button").click()
            page.wait_for_function("() => (document.querySelector('#make_status textarea')?.value || '')"
                                   ".startsWith('training')", timeout=240_000)
            page.close()  # the user closes the tab

            def training() -> bool:  # the app runs in this process: its training thread is visible here
                return any(t.name.endswith("(work)") and t.is_alive() for t in threading.enumerate())

            assert training()
            deadline = time.monotonic() + 90
            while time.monotonic() < deadline and training():
                time.sleep(0.5)
            browser.close()
        assert not training(), "training went on after its tab was closed"
        assert (run / "avatar.safetensors").exists()  # what it learnt is kept
    finally:
        app.close()
