import os
import time

from styleavatar.io import atomic
from styleavatar.io.atomic import atomic_file


def test_two_writers_of_one_target_do_not_share_a_temporary_file(tmp_path):
    target = tmp_path / "ckpt.safetensors"
    with atomic_file(target) as first:
        first.write_bytes(b"first")
        with atomic_file(target) as second:  # e.g. two `train --resume` of one run folder
            assert second != first
            second.write_bytes(b"second")
        assert first.read_bytes() == b"first"  # the other writer neither removed nor overwrote it
    assert target.read_bytes() == b"first"  # the last to finish wins, whole
    assert not list(tmp_path.glob(".*partial*"))


def test_data_and_rename_are_flushed_to_disk(tmp_path, monkeypatch):
    synced = []
    real_fsync = os.fsync
    monkeypatch.setattr(atomic.os, "fsync", lambda fd: (synced.append(os.readlink(f"/proc/self/fd/{fd}")),
                                                        real_fsync(fd)))
    target = tmp_path / "config.json"
    with atomic_file(target) as tmp:
        tmp.write_text("{}")
        temporary = str(tmp)
    assert synced == [temporary, str(tmp_path)]  # the file before the rename, its folder after


def test_a_failed_write_leaves_nothing(tmp_path):
    target = tmp_path / "out.mp4"
    try:
        with atomic_file(target, suffix=".mp4") as tmp:
            assert tmp.name.endswith(".mp4")
            tmp.write_bytes(b"half")
            raise RuntimeError("interrupted")
    except RuntimeError:
        pass
    assert not target.exists() and not list(tmp_path.iterdir())


def test_temporary_files_of_killed_writers_are_swept(tmp_path):
    old = tmp_path / ".ckpt-00000010.safetensors.4242.abcd1234.partial"
    old.write_bytes(b"half")
    os.utime(old, (1, 1))  # untouched for decades: its writer is gone
    fresh = tmp_path / ".ckpt-00000011.safetensors.4243.abcd1234.partial"
    fresh.write_bytes(b"being written")
    with atomic_file(tmp_path / "config.json") as tmp:
        tmp.write_text("{}")
    assert not old.exists() and fresh.exists()


def test_old_unheld_partial_folders_are_swept_and_others_kept(tmp_path):
    old, recent, held = (tmp_path / f".{n}.partial" for n in ("old", "recent", "held"))
    for folder in (old, recent, held):
        (folder / "frames").mkdir(parents=True)
    week_ago = time.time() - 8 * 86400
    for folder in (old, held):
        for p in (folder / "frames", folder):
            os.utime(p, (week_ago, week_ago))
    (tmp_path / "dataset").mkdir()
    os.utime(tmp_path / "dataset", (week_ago, week_ago))  # a finished folder is never touched
    with atomic.folder_lock(held, "a preprocess"):  # a long run still working in it
        for p in (held / ".lock", held):  # taking the lock made its file and touched the folder
            os.utime(p, (week_ago, week_ago))
        assert atomic.sweep_partial_folders(tmp_path) == [old]
    assert not old.exists() and recent.exists() and held.exists() and (tmp_path / "dataset").exists()
    assert sorted(atomic.sweep_partial_folders(tmp_path, older_than_s=0)) == sorted([recent, held])
