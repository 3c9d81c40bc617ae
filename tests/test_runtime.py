"""Precision, layout and threads are chosen by capability and measurement, never assumed."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest
import torch

from styleavatar.runtime import BF16_MARGIN, CpuInfo, candidates, choose, cpu_info

AVX2_ONLY = {"ONEDNN_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "avx2"}
"""Restricts oneDNN and PyTorch's own kernels to AVX2: an AVX-512 machine then behaves like most laptops."""


def _python(code: str, env: dict[str, str]) -> str:
    out = subprocess.run([sys.executable, "-c", code], env={**os.environ, **env}, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout


def _info(**kw) -> CpuInfo:
    base = dict(model="test", flags=("avx2", "avx512f", "avx512_bf16"), torch_capability="AVX512", onednn_bf16=True,
                cores=2)
    return CpuInfo(**{**base, **kw})


def test_native_bf16_needs_the_flag_the_kernels_and_onednn():
    assert _info().native_bf16
    assert "no native bf16" in _info(flags=("avx2", "fma")).bf16_missing()
    if os.uname().machine == "x86_64":
        assert "limited to AVX2" in _info(torch_capability="AVX2").bf16_missing()
    assert "oneDNN" in _info(onednn_bf16=False).bf16_missing()


def test_restricted_to_avx2_the_choice_is_fp32():
    code = ("import json, torch; from styleavatar.runtime import candidates, cpu_info; i = cpu_info(); "
            "print(json.dumps([i.torch_capability, i.native_bf16, candidates(torch.device('cpu'))[0]]))")
    capability, native, pairs = json.loads(_python(code, AVX2_ONLY))
    assert capability in ("AVX2", "DEFAULT") and not native
    assert {p for p, _ in pairs} == {"fp32"}


def test_bf16_is_a_candidate_only_where_native():
    pairs, why = candidates(torch.device("cpu"))
    precisions = {p for p, _ in pairs}
    assert precisions == ({"fp32", "bf16"} if cpu_info().native_bf16 else {"fp32"}), why
    assert candidates(torch.device("cpu"), "fp32", False) == ([("fp32", False)], "fp32 as requested")


def _sleeper(ms: dict[str, float]):
    """make_step whose steps take the given milliseconds per candidate name."""
    def make_step(precision, channels_last):
        name = precision + ("+channels_last" if channels_last else "")
        return lambda: time.sleep(ms[name] / 1000)
    return make_step


def test_choose_measures_and_wants_a_margin_for_bf16(monkeypatch):
    monkeypatch.setattr("styleavatar.runtime.cpu_info", lambda: _info())
    cpu = torch.device("cpu")
    slow_bf16 = {"fp32": 60, "fp32+channels_last": 40, "bf16": 200, "bf16+channels_last": 300}
    rt = choose(cpu, _sleeper(slow_bf16), threads=torch.get_num_threads())
    assert (rt.precision, rt.channels_last) == ("fp32", True)
    assert set(rt.step_ms) == set(slow_bf16) and rt.step_ms["bf16"] >= 200 and "measured" in rt.reason
    barely = {"fp32": 50, "fp32+channels_last": 60, "bf16": 50 * 0.97, "bf16+channels_last": 80}  # 3% buys no bf16
    assert BF16_MARGIN > 0.03
    assert choose(cpu, _sleeper(barely), threads=torch.get_num_threads()).precision == "fp32"
    fast = {"fp32": 90, "fp32+channels_last": 90, "bf16": 30, "bf16+channels_last": 45}
    rt = choose(cpu, _sleeper(fast), threads=torch.get_num_threads())
    assert (rt.precision, rt.channels_last, rt.dtype) == ("bf16", False, torch.bfloat16)


def test_choose_with_nothing_to_choose_does_not_measure():
    def never(precision, channels_last):
        raise AssertionError("no probe expected")
    rt = choose(torch.device("cpu"), never, "fp32", False, threads=torch.get_num_threads())
    assert (rt.precision, rt.channels_last, rt.step_ms) == ("fp32", False, {})


@pytest.mark.parametrize("restricted", [False, True], ids=["native", "avx2"])
def test_doctor_reports_the_machine_and_a_measured_speed(restricted):
    out = subprocess.run([sys.executable, "-m", "styleavatar.cli", "doctor", "--presets", "tiny"],
                         env={**os.environ, **(AVX2_ONLY if restricted else {})}, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    text = out.stdout
    for key in ("cpu ", "cpu flags", "torch", "cuda", "rasteriser", "perceptual weights", "onnxruntime", "train tiny"):
        assert key in text, key
    line = next(x for x in text.splitlines() if x.startswith("train tiny"))
    rate = float(line.split("tiny: ")[1].split(" it/s")[0])
    assert rate > 0.5, line  # a tiny-preset step takes milliseconds on any CPU
    assert "measured per step" in text or "nothing to measure" in text
    if restricted:
        assert "kernels AVX2" in text and "not native" in text and "(fp32" in line


def test_one_device_rule_for_every_command():
    from styleavatar.errors import UserError
    from styleavatar.runtime import pick_device

    assert pick_device("cpu") == torch.device("cpu")
    assert pick_device("auto") == (torch.device("cuda", 0) if torch.cuda.is_available() else torch.device("cpu"))
    for bad in ("tpu", "gpu0", "cuda:x"):
        with pytest.raises(UserError, match="auto, cpu, cuda"):
            pick_device(bad)
    if not torch.cuda.is_available():  # a CPU machine refuses a GPU in one line that says why
        for asked in ("cuda", "cuda:1"):
            with pytest.raises(UserError, match="PyTorch sees no CUDA device"):
                pick_device(asked)
    else:
        with pytest.raises(UserError, match="numbered from 0"):
            pick_device(f"cuda:{torch.cuda.device_count()}")


def test_gpus_get_bf16_only_where_it_is_in_hardware(monkeypatch):
    """Emulated bf16 (pre-Ampere) would be slower than fp16: such GPUs get fp16 with loss scaling."""
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "test GPU")
    for capability, half in (((7, 5), "fp16"), ((8, 0), "bf16"), ((9, 0), "bf16")):
        monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None, c=capability: c)
        pairs, why = candidates(torch.device("cuda", 0))
        assert pairs == [(half, True)] and why.startswith(f"{half} on test GPU")
