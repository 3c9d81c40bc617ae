"""The demo runs end to end (tiny preset, seconds) and a second run reuses every finished step."""
from __future__ import annotations

from styleavatar.demo import run_demo


def test_demo_end_to_end_and_rerun(tmp_path):
    logs: list[str] = []
    s = run_demo(tmp_path / "demo", minutes=0.1, train_seconds_of_video=3, preset="tiny", progress=False,
                 log=logs.append)
    assert (s.report / "index.html").exists() and s.video.exists()
    assert (tmp_path / "demo/dataset/meta.json").exists()
    mtimes = {p: p.stat().st_mtime for p in (s.video, s.report / "metrics.json", tmp_path / "demo/astronaut_train.mp4")}
    again: list[str] = []
    run_demo(tmp_path / "demo", minutes=0.1, train_seconds_of_video=3, preset="tiny", progress=False, log=again.append)
    assert all(p.stat().st_mtime == t for p, t in mtimes.items())  # nothing redone
    assert "demo finished" in s.describe()
