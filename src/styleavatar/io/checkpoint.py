"""Model files: ``NAME.safetensors`` (tensors) + ``NAME.json`` (format, version, config, metadata).

Both are written under temporary names and renamed, the JSON first and the safetensors last, so a
file pair is complete exactly when the ``.safetensors`` exists. No pickle is ever read.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from ..errors import UserError
from .atomic import atomic_file

CHECKPOINT_FORMAT = "styleavatar-checkpoint"
AVATAR_FORMAT = "styleavatar-avatar"
VERSION = 1


def save_tensors(path: str | Path, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> Path:
    """Write ``path`` (.safetensors) and its JSON sibling atomically; returns the safetensors path."""
    path = Path(path).with_suffix(".safetensors")
    with atomic_file(path.with_suffix(".json")) as tmp:
        tmp.write_text(json.dumps(meta, indent=2) + "\n")
    clean = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    with atomic_file(path) as tmp:
        save_file(clean, str(tmp), metadata={"format": str(meta.get("format", "")), "version": str(VERSION)})
    return path


def load_tensors(path: str | Path, expect_format: str) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read a pair written by :func:`save_tensors`; a clear error for a missing or foreign file."""
    path = Path(path).with_suffix(".safetensors")
    meta_path = path.with_suffix(".json")
    if not path.exists() or not meta_path.exists():
        raise UserError(f"no model file at {path} (with {meta_path.name} beside it)")
    try:
        meta = json.loads(meta_path.read_text())
    except ValueError as exc:
        raise UserError(f"{meta_path} is not valid JSON: {exc}") from None
    if meta.get("format") != expect_format:
        raise UserError(f"{path} is a {meta.get('format', 'unknown')!r} file, expected {expect_format!r}")
    if int(meta.get("version", 0)) > VERSION:
        raise UserError(f"{path} has format version {meta['version']}; this styleavatar reads up to {VERSION}")
    try:
        tensors = load_file(str(path))
    except Exception as exc:  # safetensors raises its own error types for damaged files
        raise UserError(f"{path} is damaged or not a safetensors file ({exc})") from None
    return tensors, meta


def list_checkpoints(folder: str | Path) -> list[Path]:
    """Complete checkpoints ``ckpt-NNNNNNNN.safetensors`` in ``folder``, oldest first."""
    folder = Path(folder)
    return sorted(p for p in folder.glob("ckpt-*.safetensors") if p.with_suffix(".json").exists())


def prune_checkpoints(folder: str | Path, keep: int) -> None:
    """Delete all but the newest ``keep`` checkpoints."""
    for old in list_checkpoints(folder)[:-keep] if keep > 0 else []:
        old.unlink(missing_ok=True)
        old.with_suffix(".json").unlink(missing_ok=True)
