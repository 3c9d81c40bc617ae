"""uint8 images to network tensors and back."""
from __future__ import annotations

import numpy as np
import torch
from torch.profiler import ProfilerActivity, profile

from styleavatar.io.image import to_tensor, to_uint8

VIEW_OPS = {"aten::as_strided", "aten::lift_fresh", "aten::permute", "aten::unsqueeze", "aten::view",
            "aten::slice", "aten::select", "aten::alias"}
"""Ops that make a view of existing memory: no arithmetic, no copy, no thread team."""


def torch_ops(fn) -> set[str]:
    """Names of the torch ops that ``fn()`` runs."""
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        fn()
    return {e.name for e in prof.events()}


def test_to_tensor_values_layout_and_round_trip():
    images = np.array([0, 1, 127, 128, 254, 255], np.uint8).reshape(1, 1, 2, 3).repeat(2, axis=0)
    signed, unit = to_tensor(images), to_tensor(images, signed=False)
    assert signed.shape == unit.shape == (2, 3, 1, 2) and signed.dtype == unit.dtype == torch.float32
    levels = np.float32([0, 1, 127]) / np.float32(127.5) - np.float32(1)  # float32 arithmetic, as documented
    assert signed[0, :, 0, 0].tolist() == levels.tolist() and float(signed.max()) == 1.0
    assert torch.equal(unit, torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255)
    assert np.array_equal(to_uint8(signed), images)  # every level survives the round trip


def test_to_tensor_runs_no_torch_kernel():
    """It runs in loader threads beside the training step: views only (see to_tensor's docstring)."""
    images = np.random.default_rng(0).integers(0, 256, (4, 64, 64, 3), dtype=np.uint8)
    assert torch_ops(lambda: (to_tensor(images), to_tensor(images, signed=False))) <= VIEW_OPS
