"""The GPU benchmark in its reduced form (tiny preset, CPU): every section runs and checks what it measures."""
from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]


def _gpu_benchmark():
    spec = importlib.util.spec_from_file_location("gpu_benchmark", ROOT / "benchmarks" / "gpu.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_gpu_benchmark_runs_reduced_on_the_cpu(tmp_path, capsys):
    before = (ROOT / "BENCHMARKS.md").read_text()
    out = tmp_path / "gpu.json"
    result = _gpu_benchmark().main(["--device", "cpu", "--reduced", "--json", str(out)])
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
