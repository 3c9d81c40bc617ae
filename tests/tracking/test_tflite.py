"""The TFLite executor: each face model's ONNX fast path against its PyTorch reference, and the
operators whose semantics are easy to get subtly wrong (padding, depth-to-space, MediaPipe's custom ops)."""
import numpy as np
import pytest
import torch

from styleavatar.errors import UserError
from styleavatar.tracking import tflite as tfl
from styleavatar.tracking.model_files import MODELS, ModelRunner, fetch_face_models, model_path


@pytest.mark.parametrize("name", list(MODELS))
def test_onnx_runtime_agrees_with_pytorch_reference(name):
    fast, ref = ModelRunner(name, "onnxruntime"), ModelRunner(name, "torch")
    net = tfl.TfliteNet(model_path(name))
    x = np.random.default_rng(0).random(net.input_shapes[0], dtype=np.float32)
    outs_fast, outs_ref = fast(x), ref(x)
    assert [o.shape for o in outs_fast] == net.output_shapes
    for a, b in zip(outs_fast, outs_ref):
        scale = max(1.0, float(np.abs(b).max()))
        assert np.abs(a - b).max() <= 1e-4 * scale


def test_model_signatures():
    net = tfl.TfliteNet(model_path("face_landmark_with_attention"))
    assert net.input_shapes == [(1, 192, 192, 3)]
    assert net.output_shapes[0] == (1, 1, 1, 1404) and net.output_shapes[-1] == (1, 1, 1, 1)
    assert not any(op.name == "DEQUANTIZE" for op in net.ops)  # fp16 weights folded into fp32 constants


def test_same_padding_puts_the_odd_pixel_after():
    assert tfl._same_padding(4, 3, 2) == (0, 1)
    assert tfl._same_padding(5, 3, 1) == (1, 1)
    assert tfl._same_padding(192, 2, 2) == (0, 0)


def test_depth_to_space_matches_tensorflow_order():
    b, c, h, w = 2, 3, 2, 2
    nhwc = np.arange(h * w * b * b * c, dtype=np.float32).reshape(1, h, w, b * b * c)
    want = np.zeros((1, h * b, w * b, c), np.float32)
    for y in range(h):
        for x in range(w):
            for i in range(b):
                for j in range(b):
                    want[0, y * b + i, x * b + j] = nhwc[0, y, x, (i * b + j) * c:(i * b + j + 1) * c]

    class _Net:  # what the kernel asks of its network: the declared output shape
        def out_shape(self, op):
            return (1, h * b, w * b, c)

    out = tfl._depth_to_space(_Net(), None, torch.from_numpy(nhwc).permute(0, 3, 1, 2))
    assert np.array_equal(out.permute(0, 2, 3, 1).numpy(), want)


def _op(**options):
    return tfl._Op("custom", [], [], options)


def test_landmarks_to_matrix_maps_grid_onto_the_rotated_box():
    # four landmarks on a square of side 8 centred at (20, 10), turned by 30 degrees
    a = np.radians(30)
    rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    square = np.array([[-4, -4], [4, -4], [4, 4], [-4, 4]], np.float32) @ rot.T + [20, 10]
    pts = torch.tensor(np.c_[square, np.zeros(4)], dtype=torch.float32)[None]
    op = _op(left_rotation_idx=0, right_rotation_idx=1, subset_idxs=[0, 1, 2, 3], target_rotation_radians=0.0,
             output_width=16, output_height=16, scale_x=1.0, scale_y=1.0)
    m = tfl._landmarks_to_matrix(None, op, pts)[0].numpy()
    corners = np.array([[0, 0, 0, 1], [16, 0, 0, 1], [16, 16, 0, 1], [0, 16, 0, 1]], np.float32)
    mapped = (m @ corners.T).T[:, :2]
    assert np.allclose(mapped, square, atol=1e-4)  # output grid corners land on the square's corners


def test_transform_tensor_with_identity_matrix_reads_the_map():
    x = torch.arange(2 * 6 * 6, dtype=torch.float32).reshape(1, 2, 6, 6)
    eye = torch.eye(4)[None]
    out = tfl._transform_tensor(None, _op(output_height=4, output_width=4), x, eye)
    assert torch.allclose(out, x[:, :, :4, :4], atol=1e-5)
    shifted = eye.clone()
    shifted[0, 0, 3] = 10.0  # samples far to the right of the map are zero
    assert torch.count_nonzero(tfl._transform_tensor(None, _op(output_height=4, output_width=4), x, shifted)) == 0


def test_missing_models_say_how_to_fetch(tmp_path, monkeypatch):
    monkeypatch.setenv("STYLEAVATAR_CACHE", str(tmp_path))
    with pytest.raises(UserError, match="fetch-weights"):
        ModelRunner("face_detection_short_range")


def test_fetch_refuses_a_wheel_with_the_wrong_checksum(tmp_path, monkeypatch):
    monkeypatch.setenv("STYLEAVATAR_CACHE", str(tmp_path / "cache"))
    fake = tmp_path / "mediapipe-0.10.21-cp312-cp312-manylinux_2_28_x86_64.whl"
    fake.write_bytes(b"not a wheel")
    with pytest.raises(UserError, match="sha256"):
        fetch_face_models(fake)
    assert not (tmp_path / "cache").exists()
