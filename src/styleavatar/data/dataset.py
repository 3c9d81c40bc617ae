"""The dataset format (documented in docs/dataset-format.md) and a reader for it.

A dataset is a folder; it is complete when ``meta.json`` exists with ``format == "styleavatar-dataset"``
(it is the last file written, and the folder is renamed into place only after it).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from safetensors.numpy import load_file, save_file

from ..errors import UserError
from ..tracking.fit import FrameParams, SubjectModel
from ..tracking.face_model import default_forehead_reach, render_topology

FORMAT = "styleavatar-dataset"
FORMAT_VERSION = 1
FACE_MODEL_FORMAT = "styleavatar-face-model"
FACE_MODEL_VERSION = 1


def frame_name(i: int) -> str:
    return f"{i:06d}"


def centre_window(crop_size: int, output_size: int) -> tuple[slice, slice]:
    """(rows, columns) of a crop_size^2 image that an avatar's centred output_size^2 window covers."""
    start = (crop_size - output_size) // 2
    return np.s_[start:start + output_size, start:start + output_size]


def save_face_model(folder: Path, subject: SubjectModel) -> None:
    """Write ``face_model.safetensors`` (arrays) and ``face_model.json`` (what they mean)."""
    topo = render_topology(subject.forehead)
    tensors = {
        "identity": subject.neutral.astype(np.float32),  # file key of format v1: the neutral shape
        "basis": subject.basis.astype(np.float32),
        "coeff_rms": subject.coeff_rms.astype(np.float32),
        "coeff_min": subject.coeff_min.astype(np.float32),
        "coeff_max": subject.coeff_max.astype(np.float32),
        "texture": subject.texture.astype(np.uint8),
        "render_uvs": topo.uvs.astype(np.float32),
        "render_triangles": topo.triangles.astype(np.int32),
        "render_source": topo.source.astype(np.int32),
    }
    if subject.forehead:
        tensors["forehead_reach"] = np.asarray(subject.forehead_reach, np.float64)  # exact round trip
    if subject.closed_texture is not None:
        tensors["closed_texture"] = subject.closed_texture.astype(np.uint8)
        tensors["eye_openness"] = subject.eye_openness.astype(np.float32)
    save_file(tensors, str(folder / "face_model.safetensors"))
    (folder / "face_model.json").write_text(json.dumps({
        "format": FACE_MODEL_FORMAT, "version": FACE_MODEL_VERSION,
        "expression_dims": int(subject.basis.shape[0]), "points": int(subject.neutral.shape[0]),
        "texture_size": int(subject.texture.shape[0]),
        "head_frame": "canonical MediaPipe face mesh units (cm); x right, y down, z away from the viewer",
    }, indent=2) + "\n")


def load_face_model(folder: Path) -> SubjectModel:
    """Read a face model; its stored render mesh tells whether it has the forehead band (older ones do not),
    and a band made before its reach was fitted per subject has the default reach."""
    t = load_file(str(Path(folder) / "face_model.safetensors"))
    forehead = ()
    if len(t["render_source"]) != len(render_topology(forehead=False).source):
        forehead = tuple(float(r) for r in t["forehead_reach"]) if "forehead_reach" in t else default_forehead_reach()
    return SubjectModel(t["identity"].astype(np.float64), t["basis"].astype(np.float64),
                        t["coeff_rms"].astype(np.float64), t["coeff_min"].astype(np.float64),
                        t["coeff_max"].astype(np.float64), t["texture"], t.get("closed_texture"),
                        t["eye_openness"].astype(np.float64) if "eye_openness" in t else None, forehead)


def save_params(path: Path, params: FrameParams, landmarks: np.ndarray, times: np.ndarray,
                source_index: np.ndarray) -> None:
    """Write the per-frame parameters (see docs/dataset-format.md for each array)."""
    save_file({
        "tracked": params.tracked.astype(np.uint8),
        "scale": params.scale.astype(np.float32),
        "rotation": params.rotation.astype(np.float32),
        "euler_deg": params.euler().astype(np.float32),
        "translation": params.translation.astype(np.float32),
        "expression": params.expression.astype(np.float32),
        "gaze": params.gaze.astype(np.float32),
        "landmarks": np.nan_to_num(landmarks, nan=-1.0).astype(np.float32),
        "time": times.astype(np.float64),
        "source_index": source_index.astype(np.int64),
    }, str(path))


def load_params(path: Path) -> tuple[FrameParams, dict[str, np.ndarray]]:
    """Per-frame parameters and the raw arrays of ``params.safetensors``."""
    t = load_file(str(path))
    f64 = {k: v.astype(np.float64) for k, v in t.items() if v.dtype.kind == "f"}
    params = FrameParams(t["tracked"].astype(bool), f64["scale"], f64["rotation"], f64["translation"],
                         f64["expression"], f64["gaze"])
    return params, t


def is_complete(folder: Path) -> bool:
    """True when ``folder`` holds a finished dataset (its meta.json was written)."""
    try:
        return json.loads((folder / "meta.json").read_text()).get("format") == FORMAT
    except (OSError, ValueError):
        return False


@dataclass
class Dataset:
    """Read access to a preprocessed dataset folder."""

    root: Path
    meta: dict
    params: FrameParams
    arrays: dict[str, np.ndarray]
    subject: SubjectModel

    @classmethod
    def open(cls, root: str | Path) -> "Dataset":
        root = Path(root)
        if not is_complete(root):
            raise UserError(f"not a complete styleavatar dataset: {root} (run `styleavatar preprocess`)")
        meta = json.loads((root / "meta.json").read_text())
        if meta.get("version", 0) > FORMAT_VERSION:
            raise UserError(f"{root} has dataset format version {meta['version']}; this styleavatar reads "
                            f"up to {FORMAT_VERSION}: upgrade styleavatar")
        params, arrays = load_params(root / "params.safetensors")
        return cls(root, meta, params, arrays, load_face_model(root))

    def __len__(self) -> int:
        return int(self.meta["frame_count"])

    @property
    def train_indices(self) -> range:
        return range(*self.meta["split"]["train"])

    @property
    def test_indices(self) -> range:
        return range(*self.meta["split"]["test"])

    def frame(self, i: int) -> np.ndarray:
        """(size, size, 3) uint8 RGB frame."""
        return cv2.cvtColor(cv2.imread(str(self.root / "frames" / f"{frame_name(i)}.jpg")), cv2.COLOR_BGR2RGB)

    def frame_window(self, i: int, crop_size: int, output_size: int) -> np.ndarray:
        """(output_size, output_size, 3) uint8: frame i resized to crop_size, its centred output window.

        This is what an avatar network's output covers (the crop is larger by the canvas scale).
        """
        from ..rendering.render import resize_image

        return resize_image(self.frame(i), crop_size)[centre_window(crop_size, output_size)]

    def feature_window(self, i: int, crop_size: int, output_size: int) -> np.ndarray:
        """(output_size, output_size) float32 in [0, 1]: the eyes and mouth of frame i (its tracked landmarks,
        :func:`styleavatar.rendering.regions.feature_map`) over the same window as :meth:`frame_window`."""
        from ..rendering.regions import feature_map

        return feature_map(self.arrays["landmarks"][i], crop_size)[centre_window(crop_size, output_size)]

    def mask(self, i: int) -> np.ndarray:
        """(size, size) float32 person mask in [0, 1]."""
        return cv2.imread(str(self.root / "masks" / f"{frame_name(i)}.png"), cv2.IMREAD_GRAYSCALE) / np.float32(255)

    def render(self, i: int) -> np.ndarray:
        """(render_size, render_size, 3) uint8 RGB texture render."""
        return cv2.cvtColor(cv2.imread(str(self.root / "renders" / f"{frame_name(i)}.png")), cv2.COLOR_BGR2RGB)

    def uv(self, i: int) -> np.ndarray:
        """(render_size, render_size, 3) float32 UV render: u, v in [0, 1], coverage in {0, 1}."""
        raw = cv2.imread(str(self.root / "uv" / f"{frame_name(i)}.png"), cv2.IMREAD_UNCHANGED)
        return raw[..., ::-1].astype(np.float32) / 65535.0


def encode_uv(uv: np.ndarray) -> np.ndarray:
    """(H, W, 3) float UV render -> uint16 BGR image for cv2.imwrite (so the file's R channel is u)."""
    return np.round(np.clip(uv[..., ::-1], 0, 1) * 65535).astype(np.uint16)
