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


def test_workspace_keeps_user_names_out_of_paths(tmp_path):
    ws = Workspace(tmp_path / "ws")
    evil = tmp_path / "..%2F..%2Fetc passwd.MP4"
    evil.write_bytes(b"x")
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
