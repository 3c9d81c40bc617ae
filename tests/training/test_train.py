"""Training at the tiny preset: the loss falls, runs resume exactly after SIGKILL, DDP keeps replicas equal."""
from __future__ import annotations

import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from styleavatar.cli import main
from styleavatar.config import MODEL_PRESETS, TRAIN_PRESETS
from styleavatar.errors import UserError
from styleavatar.io.checkpoint import list_checkpoints, load_tensors
from styleavatar.training.trainer import train

TINY_M = MODEL_PRESETS["tiny"]
TINY_T = dataclasses.replace(TRAIN_PRESETS["tiny"], gan_start=4, r1_every=2, vgg_every=2, threads=1,
                             sample_minutes=100.0, snapshot_minutes=100.0)


def _losses(run):
    rows = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    return [r for r in rows if "l1" in r]


def test_training_reduces_the_loss_and_writes_the_run(astro_dataset, tmp_path):
    run = tmp_path / "run"
    cfg = dataclasses.replace(TINY_T, log_every=5, eval_minutes=100.0, eval_frames=8, gan_start=30)
    summary = train([astro_dataset.output], run, TINY_M, cfg, iters=60, progress=False, log=lambda m: None)
    rows = _losses(run)
    first, last = sum(r["l1"] for r in rows[:2]) / 2, sum(r["l1"] for r in rows[-2:]) / 2
    assert last < 0.8 * first, (first, last)
    assert summary.iterations == 60 and "gan" in summary.losses and "d" in summary.losses
    # losses computed every 2nd step (perceptual, R1) are in every logged row, with their last value
    assert all("vgg" in r for r in rows) and all({"r1", "d_gap"} <= set(r) for r in rows if r["iteration"] > 30)
    assert summary.evals[-1]["psnr"] > summary.evals[0]["psnr"] + 3, summary.evals
    for name in ("config.json", "avatar.safetensors", "avatar.json", "subjects/0/face_model.safetensors",
                 "subjects/0/face_model.json"):
        assert (run / name).exists(), name
    assert list((run / "samples").glob("*.png")) and list((run / "tensorboard").iterdir())
    tensors, meta = load_tensors(run / "avatar.safetensors", "styleavatar-avatar")
    assert meta["iteration"] == 60 and bool(tensors["features_frozen"])
    assert json.loads((run / "config.json").read_text())["model"]["output_size"] == 64
    assert "PSNR" in summary.describe()


def test_the_learning_rate_falls_over_the_tail_of_an_iteration_budget(astro_dataset, tmp_path):
    cfg = dataclasses.replace(TINY_T, log_every=1, lr_tail=0.5, lr_tail_floor=0.1)
    train([astro_dataset.output], tmp_path / "run", TINY_M, cfg, iters=8, progress=False, log=lambda m: None)
    rows = _losses(tmp_path / "run")
    # the row of iteration i is logged after the step that iteration i - 1 ran, with i - 1 of 8 iterations spent
    assert [r["lr"] for r in rows] == pytest.approx([cfg.lr_at(r["iteration"] - 1, (r["iteration"] - 1) / 8)
                                                     for r in rows])
    assert [r["iteration"] for r in rows] == list(range(1, 9)) and rows[3]["lr"] == cfg.lr > rows[-1]["lr"]


def _train_args(ds, run, iters, extra=()):
    return ["train", str(ds), "-o", str(run), "--preset", "tiny", "--iters", str(iters), "--quiet",
            "--threads", "1", "--gan-start", "4", "--r1-every", "2", "--vgg-every", "2", "--snapshot-every", "5",
            "--freeze-features-at", "12", "--sample-minutes", "100", "--precision", "fp32", "--no-channels-last",
            *extra]  # a fixed runtime: runs compared number for number must not let the probe choose apart


def test_resume_after_sigkill_matches_an_uninterrupted_run(astro_dataset, tmp_path):
    ds = astro_dataset.output
    ref = tmp_path / "ref"
    assert main(_train_args(ds, ref, 20)) == 0
    run = tmp_path / "killed"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "styleavatar.cli", *_train_args(ds, run, 20)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and not (run / "ckpt-00000010.safetensors").exists():
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    ckpts = list_checkpoints(run)
    assert ckpts and ckpts[-1].name < "ckpt-00000020.safetensors", "the run was not interrupted"
    assert main(_train_args(ds, run, 20, ["--resume"])) == 0
    a, _ = load_tensors(ref / "ckpt-00000020", "styleavatar-checkpoint")
    b, meta = load_tensors(run / "ckpt-00000020", "styleavatar-checkpoint")
    assert meta["iteration"] == 20
    for key in a:
        if key.startswith(("G.", "G_ema.", "D.")):
            assert torch.allclose(a[key].float(), b[key].float(), atol=1e-5), key


def test_existing_run_needs_resume_and_budget_errors(astro_dataset, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(_train_args(astro_dataset.output, run, 2)) == 0
    assert main(_train_args(astro_dataset.output, run, 4)) == 2
    assert "--resume" in capsys.readouterr().err
    assert main(["train", str(tmp_path / "nope"), "-o", str(tmp_path / "r2"), "--iters", "1"]) == 2
    assert "not a complete styleavatar dataset" in capsys.readouterr().err


def test_fine_tune_from_a_pretrained_run(astro_dataset, tmp_path):
    ds = astro_dataset.output
    pre = tmp_path / "pre"
    two = _train_args(ds, pre, 60)
    two.insert(2, str(ds))  # train DS DS -o PRE ...: two identities
    assert main(two) == 0
    assert json.loads((pre / "avatar.json").read_text())["identities"] == 2
    fine, scratch = tmp_path / "fine", tmp_path / "scratch"
    assert main(_train_args(ds, fine, 10, ["--init", str(pre)])) == 0
    assert main(_train_args(ds, scratch, 10)) == 0
    # the pre-trained networks start where the pre-training ended: after 10 iterations the fine-tuned run is
    # nearer the pre-trained loss than half way from a fresh network's (measured: 0.46 / 0.49 / 0.57)
    pre_l1, fine_l1, scratch_l1 = (_losses(r)[-1]["l1"] for r in (pre, fine, scratch))
    assert fine_l1 - pre_l1 < 0.5 * (scratch_l1 - pre_l1), (pre_l1, fine_l1, scratch_l1)
    # the fine-tuned avatar names what it learnt from: the pre-trained run, its iteration and its datasets
    pre_config = json.loads((pre / "config.json").read_text())
    for record in (json.loads((fine / n).read_text())["init"] for n in ("config.json", "avatar.json")):
        assert Path(record["path"]).parent == pre.resolve() and record["iteration"] == 60, record
        assert record["dataset_ids"] == pre_config["dataset_ids"] and len(record["datasets"]) == 2
        assert record["init"] is None
    assert json.loads((scratch / "avatar.json").read_text())["init"] is None and pre_config["init"] is None
    assert main(_train_args(ds, tmp_path / "kb", 2, ["--init", str(pre), "--known-base"])) == 0  # from a run without
    with pytest.raises(UserError, match="does not match the model size"):
        train([ds], tmp_path / "other", MODEL_PRESETS["small"], TINY_T, iters=1, init=pre, progress=False,
              log=lambda m: None)


@pytest.mark.skipif(sys.platform != "linux", reason="gloo test uses Linux process spawning")
def test_ddp_gloo_keeps_replicas_identical(astro_dataset, tmp_path):
    # each process holds its own shard of the frames; the known base's background starts from rank 0's
    run = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port", "29517",
           "-m", "styleavatar.cli", *_train_args(astro_dataset.output, run, 6, ["--known-base"])]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=300,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr[-2000:]
    sync = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines() if "replicas" in line]
    assert sync and sync[-1]["replicas"]["world_size"] == 2
    assert sync[-1]["replicas"]["max_abs_diff"] < 1e-6


def test_runtime_is_measured_logged_and_a_hopeless_budget_warns(astro_dataset, tmp_path):
    logs: list[str] = []
    cfg = dataclasses.replace(TINY_T, threads=None, usable_iterations=10**6, log_every=2)
    summary = train([astro_dataset.output], tmp_path / "run", TINY_M, cfg, minutes=0.1, progress=False,
                    log=logs.append)
    runtime = json.loads((tmp_path / "run/config.json").read_text())["runtime"]
    assert runtime["precision"] in ("fp32", "bf16") and runtime["threads"] >= 1
    assert len(runtime["step_ms"]) >= 2 and all(ms > 0 for ms in runtime["step_ms"].values())  # both layouts timed
    assert runtime["precision"] == "fp32" or "bf16" in runtime["step_ms"]
    assert any(line.startswith("runtime: ") and "measured per step" in line for line in logs)
    warning = next(line for line in logs if line.startswith("warning: "))
    assert "needs about 1000000" in warning and "--minutes" in warning
    # the summary restates it from what the run reached, not from its first seconds
    assert f"reached {summary.iterations} iterations" in summary.warning and summary.warning in summary.describe()
    rows = [json.loads(line) for line in (tmp_path / "run/log.jsonl").read_text().splitlines()]
    assert any("speed_warning" in r and r["speed_warning"]["usable_iterations"] == 10**6 for r in rows)


def test_resume_refuses_what_it_cannot_continue_and_skips_a_damaged_checkpoint(astro_dataset, tmp_path, capsys):
    from styleavatar.io.atomic import folder_lock

    ds = tmp_path / "ds"
    shutil.copytree(astro_dataset.output, ds)
    run = tmp_path / "run"
    assert main(_train_args(ds, run, 0, ["--resume"])) == 2  # nothing to resume: said, not started afresh
    assert "no checkpoint" in capsys.readouterr().err and not list_checkpoints(run)
    assert main(_train_args(ds, run, 10)) == 0  # checkpoints at 5 and 10
    with folder_lock(run, "a test"):  # another process training in the folder
        assert main(_train_args(ds, run, 12, ["--resume"])) == 2
    assert "in use" in capsys.readouterr().err
    other = tmp_path / "other"
    shutil.copytree(astro_dataset.output, other)
    assert main(_train_args(other, run, 12, ["--resume"])) == 2  # other data given with --resume
    assert "datasets it started with" in capsys.readouterr().err
    newest = run / "ckpt-00000010.safetensors"
    newest.write_bytes(newest.read_bytes()[: newest.stat().st_size // 2])  # cut short by a power loss
    assert main(_train_args(ds, run, 12, ["--resume"])) == 0  # falls back to ckpt 5, trains to 12
    assert json.loads((run / "ckpt-00000012.json").read_text())["iteration"] == 12
    capsys.readouterr()
    assert main(_train_args(ds, run, 13, ["--resume", "--lr", "0.5"])) == 0  # said, not silently dropped
    assert "ignored: " in (err := capsys.readouterr().err) and "--lr" in err and "--threads" not in err
    meta = json.loads((ds / "meta.json").read_text())
    meta["source"]["sha256"] = "0" * 64  # preprocess --force wrote another video into the folder
    (ds / "meta.json").write_text(json.dumps(meta))
    assert main(_train_args(ds, run, 15, ["--resume"])) == 2
    assert "not the dataset this run was trained on" in capsys.readouterr().err


def test_known_base_starts_from_the_composite_and_exports(astro_dataset, drive_clip, tmp_path):
    from styleavatar.config import DistillConfig
    from styleavatar.inference.export import export_onnx
    from styleavatar.inference.reenact import reenact
    from styleavatar.training.distill import distill

    run = tmp_path / "kb"
    cfg = dataclasses.replace(TINY_T, log_every=5, eval_minutes=100.0, eval_frames=8)
    summary = train([astro_dataset.output], run, dataclasses.replace(TINY_M, known_base=True), cfg, iters=20,
                    progress=False, log=lambda m: None)
    # iteration 0 already shows the texture render over the median frame (a fresh network: about 7.7 dB)
    assert min(e["psnr"] for e in summary.evals) > 14, summary.evals  # and stays there while the decoder starts
    tensors, meta = load_tensors(run / "avatar.safetensors", "styleavatar-avatar")
    assert tensors["background_images"].abs().mean() > 0.1 and float(tensors["correction_gain"]) != 0
    assert bool(tensors["inference_latents_set"])
    assert export_onnx(run, tmp_path / "kb.onnx").max_abs_diff < 1e-3  # the composite exports with the network
    student = distill(run, tmp_path / "student", DistillConfig(width=16), minutes=None, iters=2, progress=False)
    assert student.psnr_vs_teacher > 15
    assert reenact(tmp_path / "student", drive_clip.path, tmp_path / "s.mp4", progress=False).frames == 50


def test_frame_store_shards_partition_the_frames(astro_dataset):
    from styleavatar.data.dataset import Dataset
    from styleavatar.training.data import FrameStore, split_codes

    ds = [Dataset.open(astro_dataset.output)]
    cfg = MODEL_PRESETS["tiny"]
    whole = FrameStore.load(ds, "train", cfg, progress=False)
    parts = [FrameStore.load(ds, "train", cfg, progress=False, shard=(r, 3)) for r in range(3)]
    assert sorted(i for p in parts for i in p.frame_index.tolist()) == sorted(whole.frame_index.tolist())
    assert sum(len(p) for p in parts) == len(whole) and all(len(p) >= len(whole) // 3 for p in parts)
    first = parts[1].frame_index[0]
    row = int(np.flatnonzero(whole.frame_index == first)[0])
    assert np.array_equal(parts[1].frames[0], whole.frames[row])
    codes = split_codes(ds, "train")  # every process knows every training frame's code
    assert np.array_equal(codes[0], whole.frame_index) and np.array_equal(codes[1], whole.identity)


def test_the_gan_phase_switches_the_learning_rate_and_checkpoints_it(astro_dataset, tmp_path):
    run = tmp_path / "lr"
    cfg = dataclasses.replace(TINY_T, lr=3e-3, gan_lr=1e-3, gan_start=2)
    train([astro_dataset.output], run, TINY_M, cfg, iters=3, progress=False, log=lambda m: None)
    _, meta = load_tensors(list_checkpoints(run)[-1], "styleavatar-checkpoint")
    assert meta["opt_G"]["param_groups"][0]["lr"] == 1e-3  # switched at gan_start
    ratio = cfg.r1_every / (cfg.r1_every + 1)  # lazy R1
    assert meta["opt_D"]["param_groups"][0]["lr"] == 1e-3 * ratio
    assert meta["scalers"] == {"opt_G": {}, "opt_D": {}}  # no loss scaling outside fp16


def test_a_run_without_the_gan_has_no_discriminator_and_can_resume_with_one(astro_dataset, tmp_path):
    run, logs = tmp_path / "nogan", []
    cfg = dataclasses.replace(TINY_T, gan_weight=0.0, gan_start=2)
    train([astro_dataset.output], run, TINY_M, cfg, iters=3, progress=False, log=logs.append)
    tensors, meta = load_tensors(list_checkpoints(run)[-1], "styleavatar-checkpoint")
    assert not any(k.startswith("D.") or k.startswith("opt_D.") for k in tensors) and "opt_D" not in meta
    assert any(k.startswith("G_ema.") for k in tensors) and "opt_G" in meta
    saved = json.loads((run / "config.json").read_text())
    saved["train"]["gan_weight"] = 1.0  # the documented way to change a resumed run's settings
    (run / "config.json").write_text(json.dumps(saved))
    train([astro_dataset.output], run, TINY_M, cfg, iters=5, resume=True, progress=False, log=logs.append)
    assert any("a new one starts here" in line for line in logs)
    tensors, meta = load_tensors(list_checkpoints(run)[-1], "styleavatar-checkpoint")
    assert meta["iteration"] == 5 and any(k.startswith("D.") for k in tensors) and "opt_D" in meta


def test_a_dataset_made_before_the_forehead_band_trains_and_drives_without_it_and_says_so(astro_dataset,
                                                                                           tmp_path):
    from styleavatar.data.dataset import Dataset, save_face_model
    from styleavatar.inference.avatar import Avatar
    from styleavatar.tracking.face_model import render_topology

    old = tmp_path / "old"
    shutil.copytree(astro_dataset.output, old)
    ds = Dataset.open(old)
    save_face_model(old, dataclasses.replace(ds.subject, forehead_reach=()))
    logs: list[str] = []
    train([old], tmp_path / "run", TINY_M, TINY_T, iters=2, progress=False, log=logs.append)
    assert sum("hairline" in m for m in logs) == 1
    avatar = Avatar.load(tmp_path / "run", device="cpu")
    assert not avatar.subject.forehead
    assert len(ds.params.select(slice(0, 1)).vertices(avatar.subject)[0]) == len(render_topology(False).source)
    texture, uv = avatar.renders(ds.params, 0)
    assert texture.shape[:2] == uv.shape[:2] and uv[..., 2].max() > 0
    logs.clear()
    train([astro_dataset.output], tmp_path / "new", TINY_M, TINY_T, iters=1, progress=False, log=logs.append)
    assert not any("hairline" in m for m in logs)


def test_the_probe_halves_the_batch_of_a_new_run_only_where_half_a_step_is_cheap(astro_dataset, tmp_path,
                                                                                  monkeypatch):
    """``half_batch_below``: the batch the loop draws, the config the run records and what resume keeps."""
    import styleavatar.training.trainer as trainer_module

    drawn: list[int] = []
    real_batches = trainer_module.batches

    def spy(store, m, batch, *args, **kwargs):  # the real stream; records the batch the loop asked for
        drawn.append(batch)
        return real_batches(store, m, batch, *args, **kwargs)

    monkeypatch.setattr(trainer_module, "batches", spy)
    saved = lambda run: json.loads((run / "config.json").read_text())["train"]  # noqa: E731
    for threshold, expected in ((100.0, 1), (1e-6, 2)):  # any cost passes 100; none passes 1e-6
        logs: list[str] = []
        run = tmp_path / f"run{threshold:g}"
        train([astro_dataset.output], run, TINY_M, dataclasses.replace(TINY_T, half_batch_below=threshold),
              iters=2, progress=False, log=logs.append)
        line = next(line for line in logs if line.startswith("batch "))
        assert line.startswith(f"batch {expected}: a step of 1 frames") and "on this machine" in line, line
        assert drawn[-1] == expected and saved(run)["batch"] == expected
    logs = []
    train([astro_dataset.output], tmp_path / "run100", TINY_M, TINY_T, iters=4, resume=True, progress=False,
          log=logs.append)
    assert drawn[-1] == 1 and saved(tmp_path / "run100")["batch"] == 1  # resumed: not measured, not halved again
    assert not any(line.startswith("batch ") for line in logs)
    plain: list[str] = []
    train([astro_dataset.output], tmp_path / "plain", TINY_M, TINY_T, iters=1, progress=False, log=plain.append)
    assert drawn[-1] == TINY_T.batch and not any(line.startswith("batch ") for line in plain)  # 0: not probed


def test_an_explicit_batch_is_kept_as_given():
    from styleavatar.cli import build_parser, train_config_from_args

    def cfg(*options):
        return train_config_from_args(build_parser().parse_args(["train", "d", "-o", "r", *options]))

    assert cfg().half_batch_below == TRAIN_PRESETS["cpu"].half_batch_below > 0
    assert cfg("--batch", "4").half_batch_below == 0 and cfg("--batch", "4").batch == 4
    assert cfg("--batch", "8", "--half-batch-below", "0.6").half_batch_below == 0.6
    assert cfg("--preset", "tiny").half_batch_below == 0
