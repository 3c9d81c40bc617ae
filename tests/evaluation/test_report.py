"""The evaluate command writes a complete report (metrics.json, index.html, strips, curves, videos)."""
from __future__ import annotations

import json

import numpy as np
import pytest

from styleavatar.cli import main
from styleavatar.data.dataset import Dataset
from styleavatar.inference.avatar import Avatar
from styleavatar.rendering.render import resize_image, resize_uv


def test_evaluate_writes_the_report(tiny_run, astro_dataset, drive_clip, tmp_path, capsys):
    out = tmp_path / "report"
    second = tmp_path / "second.mp4"
    second.write_bytes(drive_clip.path.read_bytes())
    assert main(["evaluate", str(tiny_run), "--dataset", str(astro_dataset.output), "--drive",
                 str(drive_clip.path), "-o", str(out), "--max-frames", "8", "--quiet", "--drive", str(second)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["format"] == "styleavatar-metrics" and metrics["version"] == 1
    s = metrics["self_reenactment"]
    assert s["frames"] == 8 and len(s["per_frame"]["psnr"]) == 8
    for k in ("psnr", "ssim", "lpips", "l1", "psnr_person", "ssim_person", "lpips_person", "l1_person"):
        assert s["mean"][k] == pytest.approx(np.mean(s["per_frame"][k]), abs=1e-4), k  # means of what is listed
    assert all(80 <= i < 100 for i in s["frame_indices"])  # held-out frames only
    assert 0 < s["mean"]["ssim"] < 1 and 0 < s["mean"]["lpips"] < 1
    # the first frame's PSNR, recomputed here from the avatar's output and the dataset's frame
    avatar, ds, i = Avatar.load(tiny_run), Dataset.open(astro_dataset.output), s["frame_indices"][0]
    r, cfg = avatar.cfg.render_size, avatar.cfg
    image, _ = avatar.generate(*avatar.to_tensors([resize_image(ds.render(i), r)], [resize_uv(ds.uv(i), r)]))
    truth = ds.frame_window(i, cfg.crop_size, cfg.output_size)
    mse = np.mean((image[0] / 255.0 - truth / 255.0) ** 2)
    assert s["per_frame"]["psnr"][0] == pytest.approx(10 * np.log10(1 / mse), abs=0.05)
    cross = metrics["cross_reenactment"]
    assert [c["driver"] for c in cross] == ["drive.mp4", "second.mp4"]  # every --drive is scored
    assert "skipped" in metrics["fid"]["reason"]
    for c in cross:  # the mesh level (retargeting alone) beside the image level
        assert c["mesh_mouth_corr"] > 0.8 and c["mesh_pose_error_deg"] < 2.5, c
        assert c["mesh_mouth_corr"] == pytest.approx(cross[0]["mesh_mouth_corr"])
    page = (out / "index.html").read_text()
    assert "Self-reenactment" in page and "strips.png" in page and "curves.png" in page
    assert "mouth corr (mesh)" in page
    for name in ("strips.png", "curves.png", "self_reenactment.mp4", "cross_drive.mp4", "cross_second.mp4"):
        assert (out / name).exists(), name
    assert "held-out" in capsys.readouterr().out
    assert main(["evaluate", str(tiny_run), "--dataset", str(tmp_path), "-o", str(out)]) == 2
