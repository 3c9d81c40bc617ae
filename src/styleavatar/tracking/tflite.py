"""Run a TensorFlow Lite model file with PyTorch: MediaPipe's face models on any Python, no TFLite runtime.

:class:`TfliteNet` reads a ``.tflite`` flatbuffer (with the pure-Python ``tflite`` schema package), turns
its constant tensors into PyTorch tensors once (fp16 weights are dequantised to fp32) and executes the
graph's operators in order. It covers the operators of the three MediaPipe models this project uses
(face detector, face landmarks with attention, selfie segmentation), including MediaPipe's own custom
operators; any other operator is a clear error when the file is opened, not when it runs.

Layout: TFLite tensors are NHWC. Every 4-D tensor is kept NCHW here (what PyTorch's convolutions want);
the operators that depend on the axis order (RESHAPE, CONCATENATION, PAD, STRIDED_SLICE) translate.
Inputs and outputs keep TFLite's NHWC shapes, so callers see exactly the model's signature.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import UserError

_NUMPY_TYPES = {0: np.float32, 1: np.float16, 2: np.int32, 3: np.uint8, 4: np.int64, 9: np.int8}
_SAME, _VALID = 0, 1  # tflite.Padding
_ACTIVATIONS = {0: None, 1: F.relu, 3: F.relu6}  # tflite.ActivationFunctionType: NONE, RELU, RELU6


@dataclass
class _Op:
    """One operator: its name, input/output tensor indices (-1 = absent) and parsed options."""

    name: str
    inputs: list[int]
    outputs: list[int]
    options: dict


def _to_nchw(t: torch.Tensor) -> torch.Tensor:
    return t.permute(0, 3, 1, 2) if t.dim() == 4 else t


def _to_nhwc(t: torch.Tensor) -> torch.Tensor:
    return t.permute(0, 2, 3, 1) if t.dim() == 4 else t


def _axis_nchw(axis: int, ndim: int) -> int:
    """An NHWC axis index -> the same axis of the NCHW tensor (N, H, W, C -> 0, 2, 3, 1)."""
    axis %= ndim
    return (0, 2, 3, 1)[axis] if ndim == 4 else axis


def _same_padding(size: int, kernel: int, stride: int, dilation: int = 1) -> tuple[int, int]:
    """TFLite SAME padding of one axis: (before, after); the extra pixel goes after, as in TensorFlow."""
    out = -(-size // stride)
    total = max((out - 1) * stride + (kernel - 1) * dilation + 1 - size, 0)
    return total // 2, total - total // 2


def _pad_same(x: torch.Tensor, kh: int, kw: int, sh: int, sw: int, dh: int = 1, dw: int = 1,
              value: float = 0.0) -> torch.Tensor:
    top, bottom = _same_padding(x.shape[2], kh, sh, dh)
    left, right = _same_padding(x.shape[3], kw, sw, dw)
    if top or bottom or left or right:
        x = F.pad(x, (left, right, top, bottom), value=value)
    return x


def _broadcastable(const: torch.Tensor, other: torch.Tensor) -> torch.Tensor:
    """A constant in NHWC broadcasting form, made to broadcast against an NCHW 4-D tensor."""
    if other.dim() != 4 or const.dim() == 0:
        return const
    shape = (1,) * (4 - const.dim()) + tuple(const.shape)
    return const.reshape(shape).permute(0, 3, 1, 2)


class TfliteNet(torch.nn.Module):
    """A ``.tflite`` model as a PyTorch module (inference only, batch 1, fp32, CPU).

    ``forward(*inputs)`` takes NHWC float32 tensors shaped like the model's inputs and returns the
    list of its outputs (NHWC, float32), in the model's output order. ``input_shapes``,
    ``output_names`` and ``output_shapes`` describe the signature.
    """

    def __init__(self, path: str | Path) -> None:
        super().__init__()
        import tflite  # the flatbuffer schema, pure Python

        self.path = Path(path)
        model = tflite.Model.GetRootAsModel(self.path.read_bytes(), 0)
        graph = model.Subgraphs(0)
        self._tflite = tflite
        self._model, self._graph = model, graph
        self.inputs = graph.InputsAsNumpy().tolist()
        self.outputs = graph.OutputsAsNumpy().tolist()
        shapes = [graph.Tensors(i).ShapeAsNumpy().tolist() for i in range(graph.TensorsLength())]
        self.input_shapes = [tuple(shapes[i]) for i in self.inputs]
        self.output_shapes = [tuple(shapes[i]) for i in self.outputs]
        self.output_names = [graph.Tensors(i).Name().decode() for i in self.outputs]
        self._shapes = shapes
        self._op_names = {v: k for k, v in vars(tflite.BuiltinOperator).items() if not k.startswith("_")}
        self._consts: dict[int, torch.Tensor] = {}
        self.ops = [self._parse_op(graph.Operators(k)) for k in range(graph.OperatorsLength())]
        self._fold_dequantize()
        self._prepare_weights()
        del self._model, self._graph, self._tflite, self._op_names  # only needed while parsing

    # ---- reading the file -------------------------------------------------------------------------
    def _const(self, index: int) -> np.ndarray | None:
        """The constant data of tensor ``index`` (in its NHWC shape), or None if it is computed."""
        tensor = self._graph.Tensors(index)
        data = self._model.Buffers(tensor.Buffer()).DataAsNumpy()
        if isinstance(data, int) or data.size == 0:
            return None
        if tensor.Sparsity() is not None:
            raise UserError(f"{self.path.name}: sparse tensors are not supported")
        dtype = _NUMPY_TYPES[tensor.Type()]
        return data.view(dtype).reshape(self._shapes[index])

    def _parse_op(self, op) -> _Op:
        code = self._model.OperatorCodes(op.OpcodeIndex())
        builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())  # old files use the deprecated field
        name = self._op_names.get(builtin, str(builtin))
        options: dict = {}
        if name == "CUSTOM":
            name = code.CustomCode().decode()
            if op.CustomOptionsLength():
                from flatbuffers import flexbuffers

                raw = op.CustomOptionsAsNumpy().tobytes()
                options = flexbuffers.Loads(raw) if name != "Convolution2DTransposeBias" else {}
        else:
            options = self._builtin_options(name, op.BuiltinOptions())
        if name not in _KERNELS:
            raise UserError(f"{self.path.name}: operator {name} is not supported")
        ins, outs = op.InputsAsNumpy().tolist(), op.OutputsAsNumpy().tolist()
        for i in ins:
            if i >= 0 and i not in self._consts and (data := self._const(i)) is not None:
                self._consts[i] = torch.from_numpy(np.array(data))
        return _Op(name, ins, outs, options)

    def _builtin_options(self, name: str, table) -> dict:
        tfl = self._tflite
        if table is None:
            return {}
        fields = {
            "CONV_2D": (tfl.Conv2DOptions, ("Padding", "StrideH", "StrideW", "DilationHFactor",
                                            "DilationWFactor", "FusedActivationFunction")),
            "DEPTHWISE_CONV_2D": (tfl.DepthwiseConv2DOptions, (
                "Padding", "StrideH", "StrideW", "DilationHFactor", "DilationWFactor",
                "FusedActivationFunction", "DepthMultiplier")),
            "MAX_POOL_2D": (tfl.Pool2DOptions, ("Padding", "StrideH", "StrideW", "FilterHeight",
                                                "FilterWidth", "FusedActivationFunction")),
            "AVERAGE_POOL_2D": (tfl.Pool2DOptions, ("Padding", "StrideH", "StrideW", "FilterHeight",
                                                    "FilterWidth", "FusedActivationFunction")),
            "ADD": (tfl.AddOptions, ("FusedActivationFunction",)),
            "MUL": (tfl.MulOptions, ("FusedActivationFunction",)),
            "CONCATENATION": (tfl.ConcatenationOptions, ("Axis", "FusedActivationFunction")),
            "RESIZE_BILINEAR": (tfl.ResizeBilinearOptions, ("AlignCorners", "HalfPixelCenters")),
            "STRIDED_SLICE": (tfl.StridedSliceOptions, ("BeginMask", "EndMask", "ShrinkAxisMask",
                                                        "EllipsisMask", "NewAxisMask")),
        }.get(name)
        if fields is None:
            return {}
        cls, keys = fields
        opt = cls()
        opt.Init(table.Bytes, table.Pos)
        return {k: getattr(opt, k)() for k in keys}

    def _fold_dequantize(self) -> None:
        """DEQUANTIZE of a constant (fp16 weights) becomes an fp32 constant; the operator is dropped."""
        kept = []
        for op in self.ops:
            if op.name == "DEQUANTIZE" and op.inputs[0] in self._consts:
                self._consts[op.outputs[0]] = self._consts[op.inputs[0]].float()
            else:
                kept.append(op)
        self.ops = kept

    def _prepare_weights(self) -> None:
        """Convolution filters to PyTorch layout, once (OHWI -> OIHW; depthwise 1HWC -> C1HW)."""
        self._weights: dict[int, torch.Tensor] = {}
        for op in self.ops:
            if op.name == "CONV_2D":
                self._weights[op.inputs[1]] = self._consts[op.inputs[1]].permute(0, 3, 1, 2).contiguous()
            elif op.name == "DEPTHWISE_CONV_2D":
                self._weights[op.inputs[1]] = self._consts[op.inputs[1]].permute(3, 0, 1, 2).contiguous()
            elif op.name == "Convolution2DTransposeBias":  # OHWI -> (I, O, H, W) for conv_transpose2d
                self._weights[op.inputs[1]] = self._consts[op.inputs[1]].permute(3, 0, 1, 2).contiguous()

    # ---- running it -------------------------------------------------------------------------------
    def forward(self, *inputs: torch.Tensor) -> list[torch.Tensor]:
        if len(inputs) != len(self.inputs):
            raise ValueError(f"{self.path.name} takes {len(self.inputs)} inputs, got {len(inputs)}")
        values: dict[int, torch.Tensor] = dict(self._consts)
        for index, x, shape in zip(self.inputs, inputs, self.input_shapes):
            if tuple(x.shape) != shape:
                raise ValueError(f"{self.path.name}: input shape {tuple(x.shape)}, expected {shape}")
            values[index] = _to_nchw(x.float())
        for op in self.ops:
            args = [values[i] if i >= 0 else None for i in op.inputs]
            values[op.outputs[0]] = _KERNELS[op.name](self, op, *args)
        return [_to_nhwc(values[i]).contiguous() for i in self.outputs]

    def weight(self, index: int) -> torch.Tensor:
        return self._weights[index]

    def out_shape(self, op: _Op) -> tuple[int, ...]:
        """The NHWC shape the file declares for the operator's first output."""
        return tuple(self._shapes[op.outputs[0]])


def _activate(x: torch.Tensor, options: dict) -> torch.Tensor:
    code = options.get("FusedActivationFunction", 0)
    if code not in _ACTIVATIONS:
        raise ValueError(f"fused activation {code} is not supported")
    fn = _ACTIVATIONS[code]
    return fn(x) if fn else x


def _conv(net: TfliteNet, op: _Op, x, w, b=None):
    """CONV_2D, and DEPTHWISE_CONV_2D (one group per input channel; weights laid out by _prepare_weights)."""
    o = op.options
    weight = net.weight(op.inputs[1])
    if o["Padding"] == _SAME:
        x = _pad_same(x, weight.shape[2], weight.shape[3], o["StrideH"], o["StrideW"],
                      o["DilationHFactor"], o["DilationWFactor"])
    groups = x.shape[1] if op.name == "DEPTHWISE_CONV_2D" else 1
    y = F.conv2d(x, weight, b, (o["StrideH"], o["StrideW"]), 0, (o["DilationHFactor"], o["DilationWFactor"]),
                 groups=groups)
    return _activate(y, o)


def _pool(op: _Op, x, kind: str):
    o = op.options
    k, s = (o["FilterHeight"], o["FilterWidth"]), (o["StrideH"], o["StrideW"])
    if kind == "max":
        if o["Padding"] == _SAME:
            x = _pad_same(x, *k, *s, value=-math.inf)
        return _activate(F.max_pool2d(x, k, s), o)
    if o["Padding"] == _SAME:  # TFLite averages over the valid pixels of a window only
        ones = _pad_same(torch.ones_like(x[:, :1]), *k, *s)
        x = _pad_same(x, *k, *s)
        return _activate(F.avg_pool2d(x, k, s) / F.avg_pool2d(ones, k, s), o)
    return _activate(F.avg_pool2d(x, k, s), o)


def _binary(op: _Op, a, b, fn):
    if a.dim() != b.dim():  # one side is a constant in NHWC broadcasting form
        a, b = (a, _broadcastable(b, a)) if a.dim() == 4 else (_broadcastable(a, b), b)
    return _activate(fn(a, b), op.options)


def _prelu(net: TfliteNet, op: _Op, x, alpha):
    if x.dim() == 4 and alpha.numel() == x.shape[1]:  # one slope per channel: PyTorch's (and ONNX's) PReLU
        return F.prelu(x, alpha.reshape(-1))
    return torch.where(x >= 0, x, x * _broadcastable(alpha, x))


def _reshape(net: TfliteNet, op: _Op, x, shape=None):
    target = net.out_shape(op)
    y = _to_nhwc(x).reshape(target)  # reshape in TFLite's NHWC element order
    return _to_nchw(y)


def _concat(net: TfliteNet, op: _Op, *xs):
    axis = _axis_nchw(op.options["Axis"], xs[0].dim())
    return _activate(torch.cat(xs, axis), op.options)


def _pad(net: TfliteNet, op: _Op, x, paddings):
    p = paddings.tolist()  # [[before, after]] per NHWC axis
    if x.dim() == 4:
        p = [p[0], p[3], p[1], p[2]]  # -> NCHW order
    flat = [v for pair in reversed(p) for v in pair]  # F.pad wants the last axis first
    return F.pad(x, flat)


def _resize_bilinear(net: TfliteNet, op: _Op, x, size):
    o = op.options
    h, w = (int(v) for v in size.tolist())
    if o["AlignCorners"]:
        return F.interpolate(x, (h, w), mode="bilinear", align_corners=True)
    if o["HalfPixelCenters"]:
        return F.interpolate(x, (h, w), mode="bilinear", align_corners=False)
    raise ValueError("RESIZE_BILINEAR without half-pixel centres or aligned corners is not supported")


def _depth_to_space(net: TfliteNet, op: _Op, x):
    # TensorFlow orders the block as (row, column, channel) inside the depth axis; pixel_shuffle
    # expects (channel, row, column), so regroup the channels first.
    n, c, h, w = x.shape
    b = net.out_shape(op)[1] // h
    x = x.reshape(n, b, b, c // (b * b), h, w).permute(0, 3, 1, 2, 4, 5).reshape(n, c, h, w)
    return F.pixel_shuffle(x, b)


def _strided_slice(net: TfliteNet, op: _Op, x, begin, end, strides):
    o = op.options
    if o["EllipsisMask"] or o["NewAxisMask"]:
        raise ValueError("STRIDED_SLICE with ellipsis or new-axis masks is not supported")
    y = _to_nhwc(x)
    index = []
    for axis, (b, e, s) in enumerate(zip(begin.tolist(), end.tolist(), strides.tolist())):
        if o["ShrinkAxisMask"] >> axis & 1:
            index.append(b)
            continue
        index.append(slice(None if o["BeginMask"] >> axis & 1 else b, None if o["EndMask"] >> axis & 1 else e, s))
    return _to_nchw(y[tuple(index)])


# ---- MediaPipe's custom operators (mediapipe/util/tflite/operations) --------------------------------
def _landmarks_to_matrix(net: TfliteNet, op: _Op, landmarks):
    """Landmarks2TransformMatrix v2: (1, N, 3) landmarks -> (1, 4, 4) matrix from an output grid of
    ``output_width`` x ``output_height`` cells to the input feature map: a box around the landmark
    subset, rotated so the line from the left to the right rotation landmark is horizontal."""
    o = op.options
    pts = landmarks[0, :, :2]
    left, right = pts[o["left_rotation_idx"]], pts[o["right_rotation_idx"]]
    angle = o["target_rotation_radians"] - torch.atan2(right[1] - left[1], right[0] - left[0])
    cos, sin = torch.cos(angle), torch.sin(angle)
    subset = pts[torch.tensor(o["subset_idxs"])]
    rotated = torch.stack([cos * subset[:, 0] - sin * subset[:, 1], sin * subset[:, 0] + cos * subset[:, 1]], 1)
    lo, hi = rotated.min(0).values, rotated.max(0).values
    mid = (lo + hi) / 2
    centre = torch.stack([cos * mid[0] + sin * mid[1], -sin * mid[0] + cos * mid[1]])  # rotate back
    size = hi - lo
    sx = o["scale_x"] * size[0] / o["output_width"]
    sy = o["scale_y"] * size[1] / o["output_height"]
    # shift(centre) @ rotate(-angle) @ scale(sx, sy) @ shift(-output_size / 2), as one 2x3 affine map
    a, b, c, d = cos * sx, sin * sy, -sin * sx, cos * sy
    tx = centre[0] - a * o["output_width"] / 2 - b * o["output_height"] / 2
    ty = centre[1] - c * o["output_width"] / 2 - d * o["output_height"] / 2
    zero, one = torch.zeros(()), torch.ones(())
    return torch.stack([a, b, zero, tx, c, d, zero, ty, zero, zero, one, zero, zero, zero, zero, one]).reshape(1, 4, 4)


def _transform_tensor(net: TfliteNet, op: _Op, x, matrix):
    """TransformTensorBilinear v2: sample the NCHW feature map at ``matrix @ (x + 0.5, y + 0.5) - 0.5``
    for every output cell; samples outside the map are zero, as are neighbours past its edge."""
    h_out, w_out = op.options["output_height"], op.options["output_width"]
    _, _, h, w = x.shape
    m = matrix[0]
    ys, xs = torch.meshgrid(torch.arange(h_out, dtype=x.dtype) + 0.5, torch.arange(w_out, dtype=x.dtype) + 0.5,
                            indexing="ij")
    px = m[0, 0] * xs + m[0, 1] * ys + m[0, 3] - 0.5
    py = m[1, 0] * xs + m[1, 1] * ys + m[1, 3] - 0.5
    inside = (px >= 0) & (px <= w - 1) & (py >= 0) & (py <= h - 1)
    grid = torch.stack([(px + 0.5) / w * 2 - 1, (py + 0.5) / h * 2 - 1], -1)[None]
    out = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return out * inside.to(x.dtype)


def _transform_landmarks(net: TfliteNet, op: _Op, landmarks, matrix):
    """TransformLandmarks v2: apply the matrix's 2-D affine part to (1, N, 2 or 3) points (z is kept)."""
    m = matrix[0]
    xy = landmarks[..., :2] @ m[:2, :2].T + m[:2, 3]
    return torch.cat([xy, landmarks[..., 2:]], -1)


def _transpose_conv_bias(net: TfliteNet, op: _Op, x, w, bias):
    """Convolution2DTransposeBias: a stride-2 transposed convolution with SAME padding, plus bias."""
    weight = net.weight(op.inputs[1])
    kh, kw = weight.shape[2:]
    h_out, w_out = net.out_shape(op)[1:3]
    y = F.conv_transpose2d(x, weight, bias, stride=(h_out // x.shape[2], w_out // x.shape[3]))
    top, left = (y.shape[2] - h_out) // 2, (y.shape[3] - w_out) // 2
    return y[:, :, top:top + h_out, left:left + w_out]


_KERNELS = {
    "CONV_2D": _conv,
    "DEPTHWISE_CONV_2D": _conv,
    "MAX_POOL_2D": lambda net, op, x: _pool(op, x, "max"),
    "AVERAGE_POOL_2D": lambda net, op, x: _pool(op, x, "avg"),
    "ADD": lambda net, op, a, b: _binary(op, a, b, torch.add),
    "MUL": lambda net, op, a, b: _binary(op, a, b, torch.mul),
    "RELU": lambda net, op, x: F.relu(x),
    "LOGISTIC": lambda net, op, x: torch.sigmoid(x),
    "HARD_SWISH": lambda net, op, x: F.hardswish(x),
    "PRELU": _prelu,
    "RESHAPE": _reshape,
    "CONCATENATION": _concat,
    "PAD": _pad,
    "RESIZE_BILINEAR": _resize_bilinear,
    "DEPTH_TO_SPACE": _depth_to_space,
    "STRIDED_SLICE": _strided_slice,
    "DEQUANTIZE": lambda net, op, x: x.float(),
    "Landmarks2TransformMatrix": _landmarks_to_matrix,
    "TransformTensorBilinear": _transform_tensor,
    "TransformLandmarks": _transform_landmarks,
    "Convolution2DTransposeBias": _transpose_conv_bias,
}
