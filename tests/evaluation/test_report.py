"""The evaluate command writes a complete report (metrics.json, index.html, strips, curves, videos)."""
from __future__ import annotations

import json

import numpy as np
import pytest

from styleavatar.cli import main
from styleavatar.data.dataset import Dataset
from styleavatar.inference.avatar import Avatar
from styleavatar.rendering.render import resize_image, resize_uv

from ..conftest import SELF_RETRACK_MOUTH_RANGE


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
    features = [x for x in s["per_frame"]["psnr_features"] if x is not None]  # the astronaut's eyes and mouth
    assert len(features) == 8 and s["mean"]["psnr_features"] == pytest.approx(np.mean(features), abs=1e-4)
    assert "could not be tracked" in s["motion"]["error"]  # a seconds-old test avatar draws no face yet
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
    assert "mouth corr (mesh)" in page and "eyes and mouth" in page and "could not be tracked" in page
    for name in ("strips.png", "curves.png", "self_reenactment.mp4", "cross_drive.mp4", "cross_second.mp4"):
        assert (out / name).exists(), name
    assert "held-out" in capsys.readouterr().out
    assert main(["evaluate", str(tiny_run), "--dataset", str(tmp_path), "-o", str(out)]) == 2


def test_held_out_motion_of_the_person_itself_follows_the_person(astro_dataset, tmp_path):
    """The held-out frames themselves, as if an avatar had drawn them perfectly: re-tracked, they follow the
    dataset's tracking of the same frames (the frames and their tracking line up)."""
    from styleavatar.config import MODEL_PRESETS
    from styleavatar.evaluation.report import held_out_motion

    ds, cfg = Dataset.open(astro_dataset.output), MODEL_PRESETS["cpu"]
    idx = np.array(ds.test_indices)
    frames = [ds.frame_window(int(i), cfg.crop_size, cfg.output_size) for i in idx]
    same = held_out_motion(frames, ds, idx, tmp_path, progress=False)
    assert same["frames"] == len(idx) and same["pose_error_deg"] < 2.0, same
    low, high = SELF_RETRACK_MOUTH_RANGE
    assert same["mouth_openness_corr"] > 0.95 and low < same["mouth_range_ratio"] < high, same
    late = held_out_motion(frames[3:] + frames[:3], ds, idx, tmp_path, progress=False)  # 3 frames off
    assert late["mouth_openness_corr"] < same["mouth_openness_corr"] - 0.3, late
    assert late["pose_error_deg"] > 2 * same["pose_error_deg"], late
    assert not list(tmp_path.iterdir())  # the re-tracked video is not left behind
