"""Write files and folders under a temporary name and rename them into place only when complete.

An interrupted run therefore never leaves a file or folder that looks finished.
"""
from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

from ..errors import UserError


def partial_path(path: Path) -> Path:
    """The temporary sibling used while ``path`` is being written: ``.NAME.partial`` (hidden)."""
    return path.with_name(f".{path.name}.partial")


def fsync_path(path: Path) -> None:
    """Flush a file's data, or a folder's entries (a rename into it), to the disk.

    Without it a power loss soon after a rename can leave the new name pointing at an empty file."""
    flags = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) if path.is_dir() else os.O_RDONLY
    try:
        fd = os.open(path, flags)
    except OSError:  # folders cannot be opened on some systems (Windows): nothing more to do there
        return
    try:
        os.fsync(fd)
    except OSError:  # file systems without fsync (some network mounts) accept the rename as it is
        pass
    finally:
        os.close(fd)


STALE_AFTER_S = 86400.0
"""A writer's temporary file untouched for this long belongs to a process that was killed (SIGKILL,
power loss) and can never finish it."""


def sweep_stale(folder: Path, older_than_s: float = STALE_AFTER_S) -> None:
    """Remove the temporary files of :func:`atomic_file` in ``folder`` left by killed writers."""
    cutoff = time.time() - older_than_s
    try:
        entries = list(os.scandir(folder))
    except OSError:  # the folder does not exist yet
        return
    for entry in entries:
        if entry.name.startswith(".") and ".partial" in entry.name and entry.is_file(follow_symlinks=False):
            try:
                if entry.stat(follow_symlinks=False).st_mtime < cutoff:
                    os.unlink(entry.path)
            except OSError:  # removed meanwhile by another sweeper
                pass


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike[str], suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` when the block succeeds.

    The temporary name is unique to this writer (``.NAME.<pid>.<random>.partial``), so two writers of
    one target never write into each other's file; the last to finish wins whole. The file is flushed
    to disk before the rename and the folder after it. ``suffix`` is appended to the temporary name so
    that writers which pick a format from the extension (PyAV, OpenCV) still see it. On error the
    temporary file is removed.
    """
    path = Path(path)
    sweep_stale(path.parent)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.partial{suffix}")
    try:
        yield tmp
        fsync_path(tmp)
        os.replace(tmp, path)
        fsync_path(path.parent)
    finally:
        tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def folder_lock(folder: Path, what: str) -> Iterator[None]:
    """Hold ``folder/.lock`` exclusively while the block runs; a second holder gets a clear error.

    The lock is the operating system's (flock): it goes with the process, so a killed run never
    leaves a stale lock behind. Where flock does not exist (Windows) nothing is locked."""
    try:
        import fcntl
    except ImportError:
        yield
        return
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".lock", "a") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise UserError(f"{folder} is in use by {what} in another process; wait for it or stop it") from None
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


STALE_FOLDER_S = 7 * 86400.0
"""An interrupted ``.NAME.partial`` folder (resumable by running the same command again) untouched for
this long is removed by the next command that writes beside it."""


def in_use(folder: Path) -> bool:
    """Whether a process holds ``folder``'s :func:`folder_lock` now."""
    try:
        import fcntl
    except ImportError:
        return False
    try:
        with open(folder / ".lock", "a") as f:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            fcntl.flock(f, fcntl.LOCK_UN)
    except BlockingIOError:
        return True
    except OSError:  # gone meanwhile, or not writable: nobody is working in it through a lock
        return False
    return False


def sweep_partial_folders(parent: Path, older_than_s: float = STALE_FOLDER_S) -> list[Path]:
    """Remove the ``.NAME.partial`` folders in ``parent`` that no process holds and that have not changed
    for ``older_than_s`` seconds (interrupted runs nobody resumed); returns what was removed."""
    cutoff = time.time() - older_than_s
    try:
        entries = [Path(e.path) for e in os.scandir(parent)
                   if e.name.startswith(".") and e.name.endswith(".partial") and e.is_dir(follow_symlinks=False)]
    except OSError:  # the folder does not exist yet
        return []
    removed = []
    for folder in entries:
        try:
            newest = max([folder.stat().st_mtime] + [c.stat().st_mtime for c in folder.iterdir()])
            if newest < cutoff and not in_use(folder):
                remove(folder)
                removed.append(folder)
        except OSError:  # removed meanwhile by another sweeper
            pass
    return removed


def remove(path: Path) -> None:
    """Remove a file or a folder tree if it exists."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()
