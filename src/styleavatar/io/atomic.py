"""Write files and folders under a temporary name and rename them into place only when complete.

An interrupted run therefore never leaves a file or folder that looks finished.
"""
from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path


def partial_path(path: Path) -> Path:
    """The temporary sibling used while ``path`` is being written: ``.NAME.partial`` (hidden)."""
    return path.with_name(f".{path.name}.partial")


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike[str], suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` when the block succeeds.

    ``suffix`` is appended to the temporary name so that writers which pick a format from the
    extension (PyAV, OpenCV) still see it. On error the temporary file is removed.
    """
    path = Path(path)
    tmp = partial_path(path).with_name(partial_path(path).name + suffix)
    tmp.unlink(missing_ok=True)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def remove(path: Path) -> None:
    """Remove a file or a folder tree if it exists."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()
