"""ONNX Runtime's providers: chosen for the device, with TensorRT's cache and profile, TF32 off for checks."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from styleavatar.errors import UserError
from styleavatar.io import onnx

ALL = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")


def test_cpu_only_build_gets_the_cpu_provider():
    assert onnx.provider_list(["CPUExecutionProvider"]) == ["CPUExecutionProvider"]
    with pytest.raises(UserError, match="this build offers CPUExecutionProvider"):
        onnx.provider_list(["CPUExecutionProvider"], ("CUDAExecutionProvider",))


def test_gpu_providers_carry_cache_profile_and_tf32_settings():
    got = onnx.provider_list(ALL, device_id=1, inputs={"render": (3, 96, 96), "uv": (3, 96, 96)}, fp16=True)
    (trt, trt_opts), (cuda, cuda_opts), cpu = got
    assert (trt, cuda, cpu) == ALL
    assert trt_opts["device_id"] == 1 and trt_opts["trt_fp16_enable"] is True
    assert trt_opts["trt_engine_cache_enable"] and trt_opts["trt_engine_cache_path"].endswith("tensorrt")
    assert trt_opts["trt_profile_min_shapes"] == "render:1x3x96x96,uv:1x3x96x96"
    assert trt_opts["trt_profile_max_shapes"] == f"render:{onnx.MAX_BATCH}x3x96x96,uv:{onnx.MAX_BATCH}x3x96x96"
    assert cuda_opts == {"device_id": 1, "use_tf32": 1}
    # the parity check: no TensorRT, and the CUDA provider in full fp32
    exact = onnx.provider_list(ALL, exact=True)
    assert [p if isinstance(p, str) else p[0] for p in exact] == list(ALL[1:])
    assert exact[0][1]["use_tf32"] == 0


def test_a_cpu_only_onnxruntime_beside_a_cuda_pytorch_is_named():
    why = onnx.missing_gpu_provider(True, ["CPUExecutionProvider"])
    assert "pip install onnxruntime-gpu" in why and "CPUExecutionProvider" in why
    assert onnx.missing_gpu_provider(False, ["CPUExecutionProvider"]) is None
    assert onnx.missing_gpu_provider(True, ALL) is None


class _TwoOutputs(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(6, 4, 3, padding=1)

    def forward(self, render, uv):
        h = self.conv(torch.cat([render, uv], 1))
        return h[:, :3], torch.sigmoid(h[:, 3:])


def test_bound_run_equals_a_plain_run(tmp_path):
    torch.manual_seed(0)
    path = tmp_path / "m.onnx"
    render, uv = torch.randn(2, 3, 8, 8), torch.rand(2, 3, 8, 8)
    torch.onnx.export(_TwoOutputs(), (render, uv), str(path), input_names=["render", "uv"],
                      output_names=["image", "mask"], opset_version=17, dynamo=False,
                      dynamic_axes={n: {0: "b"} for n in ("render", "uv", "image", "mask")})
    sess = onnx.session(path, onnx.CPU_ONLY)
    assert "CPUExecutionProvider" in onnx.describe(sess)
    plain = sess.run(None, {"render": render.numpy(), "uv": uv.numpy()})
    bound = onnx.run_bound(sess, {"render": render, "uv": uv}, {"image": (2, 3, 8, 8), "mask": (2, 1, 8, 8)})
    np.testing.assert_array_equal(bound["image"].numpy(), plain[0])
    np.testing.assert_array_equal(bound["mask"].numpy(), plain[1])
