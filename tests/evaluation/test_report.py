"""The evaluate command writes a complete report (metrics.json, index.html, strips, curves, videos)."""
from __future__ import annotations

import json

from styleavatar.cli import main


def test_evaluate_writes_the_report(tiny_run, astro_dataset, drive_clip, tmp_path, capsys):
    out = tmp_path / "report"
    assert main(["evaluate", str(tiny_run), "--dataset", str(astro_dataset.output), "--drive",
                 str(drive_clip.path), "-o", str(out), "--max-frames", "8", "--quiet"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["format"] == "styleavatar-metrics" and metrics["version"] == 1
    s = metrics["self_reenactment"]
    assert s["frames"] == 8 and len(s["per_frame"]["psnr"]) == 8
    for k in ("psnr", "ssim", "lpips", "l1", "psnr_person", "ssim_person", "lpips_person", "l1_person"):
        assert k in s["mean"]
    assert len(metrics["cross_reenactment"]) == 1 and "skipped" in metrics["fid"]["reason"]
    page = (out / "index.html").read_text()
    assert "Self-reenactment" in page and "strips.png" in page and "curves.png" in page
    for name in ("strips.png", "curves.png", "self_reenactment.mp4", "cross_drive.mp4"):
        assert (out / name).exists(), name
    assert "held-out" in capsys.readouterr().out
    assert main(["evaluate", str(tiny_run), "--dataset", str(tmp_path), "-o", str(out)]) == 2
