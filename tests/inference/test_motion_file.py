"""Motion templates from strangers: sizes are checked before anything is decompressed."""
import time
import zipfile

import numpy as np
import pytest

from styleavatar.errors import UserError
from styleavatar.inference.motion import MAX_MOTION_FRAMES, DriverMotion


def _bomb(path, frames: int) -> None:
    """A valid-looking .npz whose 'rotation' array of `frames` x 3 x 3 float64 zeros is streamed through
    deflate: megabytes on disk, frames * 72 bytes once loaded."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, shape, dtype in (("format", (), "<U18"), ("tracked", (frames,), "|b1"),
                                   ("rotation", (frames, 3, 3), "<f8")):
            with zf.open(f"{name}.npy", "w", force_zip64=True) as f:
                np.lib.format.write_array_header_1_0(f, {"descr": dtype, "fortran_order": False, "shape": shape})
                size = int(np.prod(shape)) * np.dtype(dtype).itemsize
                chunk = bytes(1 << 22)
                for start in range(0, size, len(chunk)):
                    f.write(chunk[:min(len(chunk), size - start)])


def test_a_template_declaring_too_many_frames_is_refused_before_loading(tmp_path):
    path = tmp_path / "bomb.npz"
    _bomb(path, 3_000_000)  # 216 MB of rotations in about 0.2 MB of file
    assert path.stat().st_size < 2 << 20
    start = time.perf_counter()
    with pytest.raises(UserError, match=f"at most {MAX_MOTION_FRAMES}"):
        DriverMotion.load(path)
    assert time.perf_counter() - start < 1.0  # only the headers were read


def test_a_template_holding_objects_is_refused(tmp_path):
    path = tmp_path / "objects.npz"
    np.savez(path, tracked=np.array([object()], dtype=object))
    with pytest.raises(UserError, match="objects"):
        DriverMotion.load(path)


def test_a_version_1_template_loads_with_the_canonical_neutral(tmp_path):
    """Templates written before the neutral shape was stored still drive (deformations are unchanged)."""
    from styleavatar.tracking.face_model import canonical_mesh

    n, k = 4, 3
    basis = np.zeros((k, 468, 3))
    basis[0, 14, 1] = 1.0
    path = tmp_path / "v1.npz"
    np.savez_compressed(path, format=np.array("styleavatar-motion"), version=np.array(1), fps=np.array(25.0),
                        source=np.array("old"), tracked=np.ones(n, bool), scale=np.full(n, 0.02),
                        rotation=np.repeat(np.eye(3)[None], n, 0), translation=np.zeros((n, 3)),
                        expression=np.arange(n * k, dtype=float).reshape(n, k), gaze=np.zeros((n, 4)),
                        basis=basis, coeff_rms=np.ones(k))
    motion = DriverMotion.load(path)
    shapes = motion.shapes()
    assert np.allclose(shapes[:, 13], canonical_mesh().vertices[13])
    assert np.allclose(shapes[:, 14, 1] - canonical_mesh().vertices[14, 1], [0, 3, 6, 9])
