"""Distillation: the student learns to imitate its teacher and is a run folder like any other."""
from __future__ import annotations

import json

import pytest

from styleavatar.config import DistillConfig
from styleavatar.errors import UserError
from styleavatar.inference.reenact import reenact
from styleavatar.training.distill import distill, student_train_config


def test_student_learns_the_teacher_and_drives(tiny_run, drive_clip, tmp_path):
    cfg = DistillConfig(width=16)
    untrained = distill(tiny_run, tmp_path / "s0", cfg, minutes=None, iters=0, progress=False)
    trained = distill(tiny_run, tmp_path / "s1", cfg, minutes=None, iters=60, progress=False)
    assert trained.iterations == 60 and trained.student_params < trained.teacher_params
    # 60 steps of the trainer's generator step move the student well towards its teacher
    assert trained.psnr_vs_teacher > untrained.psnr_vs_teacher + 3, (untrained, trained)
    assert trained.psnr_vs_truth is not None  # the teacher's dataset is still there
    saved = json.loads((tmp_path / "s1" / "config.json").read_text())
    teacher = json.loads((tiny_run / "config.json").read_text())["train"]
    assert saved["train"]["lr"] == teacher["lr"] and saved["train"]["gan_weight"] == 0  # the teacher's recipe
    assert saved["distill"]["width"] == 16
    assert reenact(tmp_path / "s1", drive_clip.path, tmp_path / "s.mp4", progress=False).frames == 50
    with pytest.raises(UserError, match="not an empty folder"):
        distill(tiny_run, tmp_path / "s1", cfg, iters=1, minutes=None, progress=False)
    with pytest.raises(UserError, match="not slimmer"):
        distill(tiny_run, tmp_path / "s2", DistillConfig(width=512), iters=1, minutes=None, progress=False)
    assert not (tmp_path / "s2").exists() and not (tmp_path / ".s2.partial").exists()


def test_student_config_overrides_the_teachers(tiny_run):
    t = student_train_config(tiny_run, DistillConfig(batch=3, lr=1e-4, seed=7))
    assert (t.batch, t.lr, t.seed, t.gan_weight) == (3, 1e-4, 7, 0.0)
