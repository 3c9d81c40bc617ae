"""The demo runs end to end (tiny preset, seconds), a second run reuses every finished step, and a run
whose avatar is broken ends with an error instead of 'finished'."""
from __future__ import annotations

import pytest

from styleavatar.demo import run_demo
from styleavatar.errors import UserError


def test_demo_end_to_end_and_rerun(tmp_path):
    logs: list[str] = []
    s = run_demo(tmp_path / "demo", minutes=0.1, train_seconds_of_video=3, preset="tiny", progress=False,
                 log=logs.append, min_psnr=None)  # a 6-second smoke run: its score says nothing
    assert (s.report / "index.html").exists() and s.video.exists()
    assert (tmp_path / "demo/dataset/meta.json").exists()
    mtimes = {p: p.stat().st_mtime for p in (s.video, s.report / "metrics.json", tmp_path / "demo/astronaut_train.mp4")}
    again: list[str] = []
    run_demo(tmp_path / "demo", minutes=0.1, train_seconds_of_video=3, preset="tiny", progress=False, log=again.append,
             min_psnr=None)
    assert all(p.stat().st_mtime == t for p, t in mtimes.items())  # nothing redone
    assert "demo finished" in s.describe()

    # The same run judged against a floor it cannot reach: a clear error naming the score, no "finished".
    with pytest.raises(UserError, match=r"not usable: held-out PSNR \d+\.\d dB.*styleavatar doctor"):
        run_demo(tmp_path / "demo", minutes=0.1, train_seconds_of_video=3, preset="tiny", progress=False,
                 log=again.append, min_psnr=60.0)
    assert not any("finished" in line for line in again)
