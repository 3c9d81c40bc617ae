"""A loaded avatar runs the way its probe chose, and every choice draws the same frame as plain fp32."""
from __future__ import annotations

import numpy as np

from styleavatar.inference.avatar import Avatar
from styleavatar.runtime import cpu_info


def _frames(avatar: Avatar) -> np.ndarray:
    render, uv = avatar.inputs(avatar.params.select(np.arange(3)))
    return avatar.generate(render, uv)[0].astype(np.float32)


def test_runtime_choices_agree_with_plain_fp32(tiny_run):
    reference = _frames(Avatar.load(tiny_run, precision="fp32", channels_last=False))
    chosen = Avatar.load(tiny_run)
    assert chosen.runtime.precision in ("fp32", "bf16") and chosen.runtime.reason
    assert chosen.runtime.precision == "fp32" or cpu_info().native_bf16
    layout = _frames(Avatar.load(tiny_run, precision="fp32", channels_last=True))
    assert np.abs(layout - reference).max() <= 1  # uint8 frames: rounding only
    auto = _frames(chosen)
    tolerance = 1 if chosen.runtime.precision == "fp32" else 12  # bf16 keeps 8 bits of mantissa
    assert np.abs(auto - reference).mean() < tolerance / 4 and np.abs(auto - reference).max() <= 4 * tolerance
