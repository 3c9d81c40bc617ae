"""Typed, frozen configuration dataclasses with one docstring per field, and named presets.

Every field's docstring (the string literal under it) is the single source of the command-line help,
so a field is documented once. ``to_json``/``from_dict`` give the resolved config written beside every
output.
"""
from __future__ import annotations

import ast
import dataclasses
import functools
import inspect
import json
import textwrap
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class PreprocessConfig:
    """How a portrait video becomes a tracked, rendered training dataset (paper Sec. 3.1)."""

    size: int = 512
    """Side of the square output frames and masks, in pixels (the crop is resized to it)."""
    render_size: int = 256
    """Side of the square UV and texture renders, in pixels; they cover the same crop as the frames."""
    max_frames: int | None = None
    """Keep at most this many frames from the start of the video (None: all)."""
    fps: float | None = None
    """Resample the video to this constant frame rate by picking the nearest frames (None: keep every frame)."""
    smooth: float = 1.0
    """Temporal smoothing strength of the tracked parameters: 0 turns it off, 1 is the default, 2-4 is strong."""
    portrait_scale: float = 2.2
    """Side of the portrait region around the face, as a multiple of the median face size."""
    crop_scale: float = 1.5
    """Enlargement of the portrait region so the head can move (StyleAvatar uses 1.5)."""
    min_tracked_fraction: float = 0.8
    """Stop with an error when fewer than this fraction of frames have a face."""
    min_face_px: int = 64
    """Smallest median face size (landmark box side, in source pixels) that is accepted."""
    max_faces: int = 2
    """How many faces the landmark detector looks for; the largest is the subject, then followed by overlap."""
    expression_dims: int = 32
    """Number K of expression coefficients (PCA basis learnt from the subject's own video)."""
    expression_reg: float = 1e-3
    """Ridge weight of the expression least squares, relative to the mean diagonal of the normal matrix."""
    identity_frames: int = 100
    """Number of first tracked frames whose per-vertex median defines the subject's identity shape."""
    texture_size: int = 256
    """Side of the subject's UV texture, in texels."""
    texture_frames: int = 24
    """Number of frontal, near-neutral frames blended into the subject's UV texture."""
    rasterizer: Literal["auto", "gl", "torch"] = "auto"
    """Rasteriser backend: 'gl' (moderngl, headless EGL), 'torch' (reference), or 'auto' (gl if it works)."""
    jpeg_quality: int = 95
    """JPEG quality of the stored frames (1-100)."""
    preview: bool = True
    """Write track.mp4 (frame | texture render | UV render | mask) to check the tracking by eye."""
    train_fraction: float = 0.8
    """Fraction of frames, from the start, in the train split; the rest is the held-out test split."""


PREPROCESS_PRESETS: dict[str, PreprocessConfig] = {
    "tiny": PreprocessConfig(size=128, render_size=64, texture_size=128, texture_frames=8, preview=False),
    "cpu": PreprocessConfig(),
    "paper": PreprocessConfig(size=1024, render_size=256, texture_size=512),
}
"""Named presets: ``tiny`` for tests, ``cpu`` (the default), ``paper`` (1024^2 frames, 256^2 renders)."""


@functools.lru_cache(maxsize=None)
def field_docs(cls: type) -> dict[str, str]:
    """Map each field of a dataclass to the docstring written under it in the source."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    body = tree.body[0].body  # type: ignore[attr-defined]
    docs: dict[str, str] = {}
    for stmt, nxt in zip(body, body[1:]):
        if (isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name)
                and isinstance(nxt, ast.Expr) and isinstance(nxt.value, ast.Constant)
                and isinstance(nxt.value.value, str)):
            docs[stmt.target.id] = " ".join(nxt.value.value.split())
    return docs


def to_dict(cfg: Any) -> dict[str, Any]:
    """The config as a plain dict (JSON-ready)."""
    return dataclasses.asdict(cfg)


def to_json(cfg: Any) -> str:
    """The resolved config as indented JSON, with its class name."""
    return json.dumps({"class": type(cfg).__name__, **to_dict(cfg)}, indent=2) + "\n"


def from_dict(cls: type[T], data: dict[str, Any]) -> T:
    """Build ``cls`` from a dict, ignoring the ``class`` key and rejecting unknown fields."""
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = set(data) - names - {"class"}
    if unknown:
        raise ValueError(f"unknown {cls.__name__} fields: {sorted(unknown)}")
    return cls(**{k: v for k, v in data.items() if k in names})
