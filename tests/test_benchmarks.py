"""Benchmark scripts in reduced form (tiny preset, CPU): each runs and checks what it measures."""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from .conftest import SELF_RETRACK_MOUTH_RANGE

ROOT = Path(__file__).resolve().parents[1]


def _load_benchmark(name: str):
    """benchmarks/NAME.py as a module (each script puts benchmarks/ on sys.path for its helpers)."""
    spec = importlib.util.spec_from_file_location(f"{name}_benchmark", ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_gpu_benchmark_runs_reduced_on_the_cpu(tmp_path, capsys):
    before = (ROOT / "BENCHMARKS.md").read_text()
    out = tmp_path / "gpu.json"
    result = _load_benchmark("gpu").main(["--device", "cpu", "--reduced", "--json", str(out)])
    assert json.loads(out.read_text()) == json.loads(json.dumps(result))
    assert (ROOT / "BENCHMARKS.md").read_text() == before  # the reduced form leaves the figures alone
    assert result["preset"] == "tiny" and result["device"].startswith("cpu")
    (train,) = result["train"]
    assert train["precision"] == "fp32" and train["batch"] == 2 and train["peak_gib"] is None
    onnx_rows = [n for n in result["network"] if n["runtime"].startswith("ONNX Runtime")]
    assert [n["runtime"] for n in onnx_rows] == ["ONNX Runtime CPU"]
    assert onnx_rows[0]["max_abs_diff"] < 1e-3  # parity with PyTorch on the same device
    if os.environ.get("STYLEAVATAR_REQUIRE_GL"):
        assert result["rasteriser"]["backend"] == "gl" and "OpenGL" in result["rasteriser"]["renderer"]
    assert result["live"] == {"skipped": "needs --run and --video"}
    assert result["multi_gpu"]["skipped"] == f"{torch.cuda.device_count()} GPU(s) here"
    table = capsys.readouterr().out
    assert "| per-frame network, batch 1 | ONNX Runtime CPU |" in table and "| training step | fp32, batch 2" in table


def test_budget_benchmark_rebuilds_the_avatar_a_checkpoint_holds(tiny_run, astro_dataset, tmp_path):
    """The quality-per-minute benchmark scores checkpoints as avatars: the avatar it rebuilds from the run's last
    checkpoint draws exactly the frames of the avatar `train` wrote at that iteration."""
    import numpy as np

    from styleavatar.data.dataset import Dataset
    from styleavatar.inference.avatar import Avatar

    budget = _load_benchmark("budget")
    ((minutes, iteration, ckpt),) = budget.checkpoint_times(tiny_run)
    assert iteration == 10 and 0 < minutes < 5
    rebuilt = Avatar.load(budget.avatar_at(tiny_run, ckpt, iteration, tmp_path / "at10"), device="cpu")
    original = Avatar.load(tiny_run, device="cpu")
    ds = Dataset.open(astro_dataset.output)
    idx = np.array(ds.test_indices[:3])
    a, b = budget.avatar_frames(rebuilt, ds, idx), budget.avatar_frames(original, ds, idx)
    assert torch.equal(a, b)

    before = (ROOT / "BENCHMARKS.md").read_text()
    (row,) = budget.main([str(tiny_run), "--dataset", str(astro_dataset.output), "--minutes", f"{minutes:.4f}",
                          "--frames", "4", "--no-write"])
    assert (ROOT / "BENCHMARKS.md").read_text() == before
    name, where, at, its, held, train_psnr = row
    runtime = json.loads((tiny_run / "config.json").read_text())["runtime"]
    assert (name, its) == ("tiny", 10) and runtime["precision"] in where  # the run's own CPU class and runtime
    held_idx = budget.evenly(ds.test_indices, 4)
    direct = budget.image_scores(budget.avatar_frames(original, ds, held_idx),
                                 budget.truth_frames(ds, held_idx, original.cfg),
                                 budget.feature_windows(ds, held_idx, original.cfg))
    assert {k: held[k] for k in direct} == pytest.approx(direct, abs=1e-4)  # the run's own avatar's figures
    assert held["eye_openness_corr"] is None  # a seconds-old test avatar draws no face to re-track yet
    truth = budget.truth_frames(ds, held_idx, original.cfg)  # the eyes and mouth scored apart: a flawless avatar
    spoilt = truth.clone()  # but for a grey band over its forehead keeps full marks there
    spoilt[:, :, :4] = 0.5
    assert budget.image_scores(spoilt, truth, budget.feature_windows(ds, held_idx, original.cfg))["psnr_features"] > 60
    seen = budget.evenly(ds.train_indices, 4)
    seen_psnr = budget.image_scores(budget.avatar_frames(original, ds, seen),
                                    budget.truth_frames(ds, seen, original.cfg))["psnr"]
    assert train_psnr == pytest.approx(seen_psnr, abs=1e-4)


def test_roofline_counts_flops_as_torch_does_and_through_r1():
    """The roofline's counter agrees with torch's FlopCounterMode where both work, and also counts R1's double
    backward (which FlopCounterMode refuses); the GAN phase costs more than the reconstruction phase."""
    from torch.utils.flop_counter import FlopCounterMode

    roofline = _load_benchmark("roofline")
    conv, x = torch.nn.Conv2d(4, 4, 3, padding=1), torch.randn(2, 4, 8, 8, requires_grad=True)
    with FlopCounterMode(display=False) as reference:
        conv(x).sum().backward()
    with roofline.flop_counter() as ours:
        conv(x).sum().backward()
    assert ours.total == reference.get_total_flops() == 3 * 2 * 9 * 4 * 4 * 8 * 8 * 2  # fwd, grad x, grad w
    with roofline.flop_counter() as double:
        (grad,) = torch.autograd.grad(conv(x).sum(), x, create_graph=True)
        grad.pow(2).sum().backward()
    assert double.total > ours.total

    before = (ROOT / "BENCHMARKS.md").read_text()
    rows = roofline.main(["--presets", "tiny", "--no-write"])
    assert (ROOT / "BENCHMARKS.md").read_text() == before
    recon, gan = rows
    assert (recon["phase"], gan["phase"]) == ("reconstruction phase", "GAN phase")
    assert gan["gflop"] > recon["gflop"] and gan["seconds"] > 0
    assert recon["bound"] * recon["gflop"] == pytest.approx(gan["bound"] * gan["gflop"])  # one ceiling


def test_provenance_windows_find_every_marked_window_after_the_goals_attack():
    """``provenance.py --windows`` on a synthetic clip: two 3 s windows, each written marked and unmarked,
    downscaled to 50% and re-encoded at CRF 28; the marked ones are found, the unmarked ones are not."""
    rows = _load_benchmark("provenance")._check_windows(("astronaut", "astronaut:drive"))
    assert [r["marked"] for r in rows] == [True, False, True, False]
    assert all(r["found"] and r["prior_score"] >= 5.5 for r in rows if r["marked"])
    assert not any(r["found"] for r in rows if not r["marked"])


def test_codec_counts_a_setting_as_free_only_when_the_lips_and_eyelids_follow(tmp_path, monkeypatch):
    """Two cheaper settings score the default's LPIPS and PSNR; the one whose eyelids stop following the full fit
    is not free, the other is, and the headline names it with the ratio H.264 needs."""
    codec_bench = _load_benchmark("codec")
    written = {}
    monkeypatch.setattr(codec_bench, "write_section", lambda title, text: written.update(text=text))
    row = {"numbers": 35, "v1_kbit_s": 4.0, "encode_fps": 80.0, "decode_fps": 10.0, "psnr": 25.0, "ssim": 0.82,
           "lpips": 0.15, "feature_mm": 0.2, "mouth_corr": 0.995, "eye_corr": 0.997}
    rows = [{**row, "coder": "avatar, dims 24, quality 1", "kbit_s": 3.0},
            {**row, "coder": "avatar, dims 4, quality 0.5", "kbit_s": 0.8, "eye_corr": 0.4},
            {**row, "coder": "avatar, dims 20, quality 1", "kbit_s": 2.5}]
    h264 = [{"coder": f"H.264 at {k} kbit/s target", "kbit_s": float(k), "psnr": 25.0, "ssim": 0.8,
             "lpips": lp} for k, lp in ((10, 0.3), (20, 0.15), (40, 0.05))]
    args = type("Args", (), {"run": tmp_path, "dataset": tmp_path, "frames": 64, "plot": tmp_path / "codec.png",
                             "pose_smoothing": None, "no_write": False})
    codec_bench._write(args, rows, h264, 356, 25.0)
    text = written["text"]
    assert "**The default stream, dims 24, quality 1: 3.00 kbit/s, LPIPS 0.150; H.264 needs 20.0 kbit/s" in text
    assert "**dims 20, quality 1: 2.50 kbit/s, LPIPS 0.150; H.264 needs 20.0 kbit/s for that LPIPS, 8.0x**" in text
    assert "dims 4, quality 0.5: 0.80" not in text
    assert (tmp_path / "codec.png").exists()


def test_render_motion_scores_the_frames_as_flawless_and_the_render_as_the_input(astro_dataset):
    from styleavatar.data.dataset import Dataset

    render_motion = _load_benchmark("render_motion")
    before = (ROOT / "BENCHMARKS.md").read_text()
    rows = render_motion.main(["--dataset", str(astro_dataset.output), "--sizes", "256", "--no-write"])
    assert (ROOT / "BENCHMARKS.md").read_text() == before
    (first, frames), (second, render) = rows
    assert first == "the frames themselves" and second == "texture render at 256^2 over the crop"
    low, high = SELF_RETRACK_MOUTH_RANGE
    assert frames["mouth_openness_corr"] > 0.95 and low < frames["mouth_range_ratio"] < high, frames
    held = len(Dataset.open(astro_dataset.output).test_indices)
    assert render["frames"] == frames["frames"] == held  # every held-out frame, as the avatar's are scored
    assert render["mouth_openness_corr"] > 0.5, render  # the render follows the mouth, if less closely


@pytest.mark.parametrize("variant,to_tensor,thread", [("torch loader", "__main__", True),
                                                      ("no loader thread", "styleavatar.io.image", False)])
def test_loader_benchmark_trains_each_variant_as_named(astro_dataset, variant, to_tensor, thread):
    """Each variant runs in a process of its own (it patches the trainer): the reduced form trains 8 tiny steps."""
    cmd = [sys.executable, str(ROOT / "benchmarks/loader.py"), "--iters", "8", "--one", str(astro_dataset.output),
           "tiny", variant]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    row = json.loads(out.strip().splitlines()[-1])
    assert row["steps"] == 8 and row["to_tensor"].endswith(to_tensor) and row["loader_thread"] is thread
    assert row["runtime"] in ("fp32", "fp32+cl", "bf16", "bf16+cl")


def test_perceptual_benchmark_times_every_variant_reduced(capsys):
    before = (ROOT / "BENCHMARKS.md").read_text()
    text = _load_benchmark("perceptual").main(["--preset", "tiny", "--crop", "32", "--rounds", "1", "--no-write"])
    assert (ROOT / "BENCHMARKS.md").read_text() == before
    rows = [line.split(" | ") for line in text.splitlines() if line.startswith("| fp32 |")]
    assert [r[1] for r in rows] == ["whole 64^2", "crop 32^2 of 64^2", "no perceptual loss"] and rows[0][3] == "1.00 |"
    boxes = [line for line in text.splitlines() if "average pool (before)" in line or "box_mean" in line]
    assert len(boxes) == 4  # both filters, at the training batch and for one frame


def _fp32_rows(text: str) -> list[list[str]]:
    """The cells of each fp32 row of the Markdown tables in ``text``."""
    return [[c.strip() for c in line.split("|")[1:-1]] for line in text.splitlines() if line.startswith("| fp32 |")]


def test_half_batch_benchmark_times_both_batches_reduced():
    before = (ROOT / "BENCHMARKS.md").read_text()
    text = _load_benchmark("half_batch").main(["--preset", "tiny", "--rounds", "1", "--no-write"])
    assert (ROOT / "BENCHMARKS.md").read_text() == before
    rows = _fp32_rows(text)
    assert [r[1] for r in rows] == ["2", "1"] and rows[0][4] == "1.00"
    assert 0 < float(rows[1][5]) < 5 and rows[1][6] == "batch 2"  # tiny never halves (half_batch_below 0)


def test_step_parts_benchmark_times_every_variant_at_both_batches_reduced():
    before = (ROOT / "BENCHMARKS.md").read_text()
    bench = _load_benchmark("step_parts")
    variants = bench.VARIANTS
    text = bench.main(["--preset", "tiny", "--rounds", "1", "--no-write"])
    assert (ROOT / "BENCHMARKS.md").read_text() == before
    training, inference = text.split("At inference")
    rows = _fp32_rows(training)
    assert [(r[1], r[2]) for r in rows] == [(b, v) for b in ("2", "1") for v in variants]
    assert [r[4] for r in rows if "paper" in r[2]] == ["1.00", "1.00"]  # each batch against its own canvas pass
    assert all(float(r[3]) > 0 for r in rows)
    rows = _fp32_rows(inference)
    assert [r[1] for r in rows] == [v for v, (_, frozen) in variants.items() if not frozen]
    assert rows[0][3] == "1.00" and all(float(r[2]) > 0 for r in rows)
