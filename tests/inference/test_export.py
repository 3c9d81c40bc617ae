"""ONNX export agrees with PyTorch on real renders and drives reenact."""
from __future__ import annotations

import json
import shutil

import numpy as np

from styleavatar.cli import main
from styleavatar.inference.export import export_onnx
from styleavatar.config import ReenactOptions
from styleavatar.inference.reenact import reenact
from styleavatar.io.checkpoint import AVATAR_FORMAT, load_tensors, save_tensors

from .test_reenact import _frames


def test_onnx_export_matches_pytorch_and_reenacts(tiny_run, drive_clip, tmp_path, capsys):
    out = tmp_path / "avatar.onnx"
    summary = export_onnx(tiny_run, out)
    assert summary.max_abs_diff < 1e-3 and summary.frames_checked == 4
    assert json.loads((tmp_path / "avatar.onnx.json").read_text())["max_abs_diff"] < 1e-3
    assert json.loads((tiny_run / "avatar.json").read_text())["format"] == "styleavatar-avatar"  # untouched
    # Lossless H.264 (crf 0): the two networks' outputs differ by about 1e-6, which flips a few pixels by one
    # level; a lossy encoder can turn those flips into different decisions over whole frames.
    a, b = tmp_path / "torch.mp4", tmp_path / "onnx.mp4"
    reenact(tiny_run, drive_clip.path, a, ReenactOptions(crf=0), progress=False)
    reenact(tiny_run, drive_clip.path, b, ReenactOptions(crf=0, onnx=out), progress=False)
    diff = np.abs(np.stack(_frames(a)).astype(int) - np.stack(_frames(b)))
    assert diff.shape[0] == 50 and diff.mean(axis=(1, 2, 3)).max() < 0.02 and diff.max() <= 6
    assert main(["export", str(tiny_run), "--onnx", str(tmp_path / "half.onnx"), "--fp16"]) == 0
    assert "max |onnx - torch|" in capsys.readouterr().out
    assert main(["reenact", str(tiny_run), "--drive", str(drive_clip.path), "-o", str(b), "--backend", "onnx",
                 "--onnx", str(tmp_path / "missing.onnx"), "--quiet"]) == 2


def test_onnx_export_of_an_avatar_with_the_render_crop_matches_pytorch(tiny_run, tmp_path):
    """The render StyleUNet on the window's box alone (``render_crop``, as the `cpu` preset trains):
    the same weights as tiny_run's, the flag set in a copy of its metadata."""
    run = tmp_path / "crop"
    shutil.copytree(tiny_run, run)
    tensors, meta = load_tensors(run / "avatar.safetensors", AVATAR_FORMAT)
    assert meta["model"].get("render_crop") is False
    meta["model"]["render_crop"] = True
    save_tensors(run / "avatar.safetensors", tensors, meta)
    summary = export_onnx(run, tmp_path / "crop.onnx")
    assert summary.max_abs_diff < 1e-3 and summary.frames_checked == 4
