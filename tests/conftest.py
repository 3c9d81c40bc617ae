"""Shared fixtures: the synthetic astronaut clip (built once per session) and ../shared/data."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def shared_video(relative: str) -> Path:
    """A file under ../shared/data, or skip the test with the reason."""
    path = SHARED_DATA / relative
    if not path.exists():
        pytest.skip(f"real test video not available: {path} (../shared/data is absent)")
    return path


SELF_RETRACK_MOUTH_RANGE = (0.65, 1.35)
"""Bounds of the mouth range ratio of a dataset's own held-out frames re-tracked (a flawless avatar's). The
256^2 window re-tracked reads the shut mouth of the astronaut a little open (0.22-0.25 against the dataset's 0.20
from the 512^2 frames), so the ratio is below 1 and depends on the CPU's kernels: over 0.8 on an AMD EPYC (AVX2),
0.72 on an Intel Xeon with AVX-512 and no AMX. A scale fault would read 0.5 or 2."""


@pytest.fixture(scope="session")
def astronaut_rgb():
    """scikit-image's astronaut photo (512x512 RGB uint8, public domain)."""
    from skimage import data

    return np.ascontiguousarray(data.astronaut())


@pytest.fixture(scope="session")
def astro_clip(tmp_path_factory):
    """100 frames (4 s) of the astronaut with scripted head rotation, mouth opening and blinks."""
    from styleavatar.data.synthetic import make_clip

    return make_clip(tmp_path_factory.mktemp("clip") / "astro.mp4", frames=100, size=512)


@pytest.fixture(scope="session")
def astro_dataset(astro_clip, tmp_path_factory):
    """The astronaut clip preprocessed at 256^2 frames and renders."""
    from styleavatar.config import PreprocessConfig
    from styleavatar.data.preprocess import preprocess

    out = tmp_path_factory.mktemp("ds") / "astro"
    summary = preprocess(astro_clip.path, out, PreprocessConfig(size=256, render_size=256), progress=False)
    return summary


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture(scope="session")
def drive_clip(tmp_path_factory):
    """50 frames of the astronaut with the 'drive' motion script (a different rhythm from training)."""
    from styleavatar.data.synthetic import make_clip

    return make_clip(tmp_path_factory.mktemp("drive") / "drive.mp4", frames=50, size=256, kind="drive")


@pytest.fixture(scope="session")
def tiny_run(astro_dataset, tmp_path_factory):
    """A tiny-preset avatar trained for a few iterations on the astronaut dataset (a valid run folder)."""
    import dataclasses

    from styleavatar.config import MODEL_PRESETS, TRAIN_PRESETS
    from styleavatar.training.trainer import train

    run = tmp_path_factory.mktemp("run") / "tiny"
    cfg = dataclasses.replace(TRAIN_PRESETS["tiny"], threads=1, sample_minutes=1e9, snapshot_minutes=1e9)
    train([astro_dataset.output], run, MODEL_PRESETS["tiny"], cfg, iters=10, progress=False, log=lambda m: None)
    return run
