"""A driver's per-frame motion: tracked from a video, or saved to / loaded from a motion template.

A motion template (``styleavatar motion VIDEO -o motion.npz``) holds only geometry: per-frame pose,
expression coefficients, gaze, and the driver's neutral shape and expression basis (so its head-frame
shapes can be rebuilt). No face pixels and no pickled objects; it is read with ``allow_pickle=False``.
Motion is stored unsmoothed: smoothing belongs to retargeting (:mod:`..tracking.retarget`).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import UserError
from ..io.atomic import atomic_file
from ..tracking.face_model import canonical_mesh
from ..tracking.fit import FrameParams
from ..tracking.video import driver_config, track_video

MOTION_FORMAT = "styleavatar-motion"
MOTION_VERSION = 2
"""2 adds the driver's neutral shape; version 1 templates load with the canonical mesh in its place."""
MAX_MOTION_FRAMES = 216_000
"""Most frames a motion template may hold (two hours at 30 frames/s)."""
MAX_MOTION_BYTES = 1 << 30
"""Most bytes its arrays may take once decompressed (a template of two hours takes about 0.2 GB)."""


def check_motion_file(path: Path) -> None:
    """Read only the array headers of a motion template and refuse one that would be too large to load.

    A .npz is a zip: a few kilobytes of compressed zeros can declare gigabytes of frames, so sizes are
    checked before anything is decompressed."""
    import zipfile

    total = 0
    try:
        with zipfile.ZipFile(path) as zf:
            for info in zf.infolist():
                with zf.open(info) as f:
                    major, _ = np.lib.format.read_magic(f)
                    read = np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
                    shape, _, dtype = read(f)
                if dtype.hasobject:
                    raise UserError(f"{path.name} holds Python objects, not a motion template")
                if info.filename == "tracked.npy" and shape and shape[0] > MAX_MOTION_FRAMES:
                    raise UserError(f"{path.name} declares {shape[0]} frames; at most {MAX_MOTION_FRAMES} are accepted")
                total += int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    except (zipfile.BadZipFile, ValueError, OSError) as exc:
        raise UserError(f"cannot read motion template {path}: {exc}") from None
    if total > MAX_MOTION_BYTES:
        raise UserError(f"{path.name} would take {total / 2 ** 30:.1f} GB once decompressed; at most "
                        f"{MAX_MOTION_BYTES / 2 ** 30:.0f} GB are accepted")


@dataclass
class DriverMotion:
    """Per-frame motion of a driver (N frames, K expression dimensions of the driver's own basis).

    Poses are crop-normalised (the driver's own crop); shapes are in the head frame.
    """

    fps: float
    params: FrameParams
    neutral: np.ndarray
    """(468, 3) the driver's neutral shape, head frame."""
    basis: np.ndarray
    """(K, 468, 3) the driver's expression basis."""
    source: str = ""
    """Where the motion came from (a file name; informative only)."""

    def __len__(self) -> int:
        return len(self.params)

    def shapes(self) -> np.ndarray:
        """(N, 468, 3) the driver's head-frame shape in every frame."""
        return self.neutral + np.einsum("nk,kpc->npc", self.params.expression, self.basis)

    # ------------------------------------------------------------------------------------ files
    def save(self, path: str | Path) -> Path:
        """Write a motion template (.npz, no pickles) atomically."""
        path = Path(path)
        p = self.params
        with atomic_file(path, suffix=".npz") as tmp:
            with open(tmp, "wb") as f:
                np.savez_compressed(
                    f, format=np.array(MOTION_FORMAT), version=np.array(MOTION_VERSION), fps=np.array(self.fps),
                    source=np.array(self.source), tracked=p.tracked, scale=p.scale, rotation=p.rotation,
                    translation=p.translation, expression=p.expression, gaze=p.gaze, neutral=self.neutral,
                    basis=self.basis)
        return path

    @classmethod
    def load(cls, path: str | Path) -> "DriverMotion":
        path = Path(path)
        check_motion_file(path)
        try:
            with np.load(path, allow_pickle=False) as z:
                data = {k: z[k] for k in z.files}
        except (OSError, ValueError) as exc:
            raise UserError(f"cannot read motion template {path}: {exc}") from None
        if str(data.get("format", "")) != MOTION_FORMAT:
            raise UserError(f"{path} is not a styleavatar motion template")
        if int(data["version"]) > MOTION_VERSION:
            raise UserError(f"{path} has motion format version {int(data['version'])}; upgrade styleavatar")
        params = FrameParams(data["tracked"].astype(bool), data["scale"], data["rotation"], data["translation"],
                             data["expression"], data["gaze"])
        neutral = data["neutral"] if "neutral" in data else canonical_mesh().vertices
        return cls(float(data["fps"]), params, neutral, data["basis"], str(data["source"]))

    @classmethod
    def from_video(cls, video: str | Path, progress: bool = True) -> "DriverMotion":
        """Track a driver video with the same tracker and fit as preprocess (unsmoothed; every frame shapes
        the driver's neutral and basis).

        Frames where the face is lost are filled from the neighbouring good frames (held at the ends);
        a video with no face at all is an error.
        """
        info, _, _, _, subject, params = track_video(Path(video), driver_config(), progress)
        return cls(info.fps, params, subject.neutral, subject.basis, Path(video).name)


def load_motion(source: str | Path, progress: bool = True) -> DriverMotion:
    """A motion template (.npz) or a video file -> DriverMotion; clear errors for missing/bad files."""
    source = Path(source)
    if not source.exists():
        raise UserError(f"driver not found: {source}")
    if source.suffix.lower() == ".npz":
        return DriverMotion.load(source)
    return DriverMotion.from_video(source, progress)
