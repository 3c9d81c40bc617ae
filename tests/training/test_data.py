"""Training batches: assembled in a loader thread, so without torch kernels."""
from __future__ import annotations

import numpy as np
import torch

from styleavatar.config import MODEL_PRESETS
from styleavatar.training.data import FrameStore, background_image, batches, make_batch

from ..io.test_image import VIEW_OPS, torch_ops


def _store(n: int = 6) -> FrameStore:
    cfg, rng = MODEL_PRESETS["tiny"], np.random.default_rng(0)
    crop, r = cfg.crop_size, cfg.render_size
    return FrameStore(frames=rng.integers(0, 256, (n, crop, crop, 3), dtype=np.uint8),
                      masks=rng.integers(0, 256, (n, crop, crop), dtype=np.uint8),
                      renders=rng.integers(0, 256, (n, r, r, 3), dtype=np.uint8),
                      uvs=rng.random((n, r, r, 3)).astype(np.float16),
                      frame_index=np.arange(n, dtype=np.int64), identity=np.zeros(n, np.int64))


def test_a_batch_is_assembled_without_torch_kernels():
    cfg, store = MODEL_PRESETS["tiny"], _store()
    stream = batches(store, cfg, batch=4, seed=0, start=0, sigma=0.1, prob=1.0, max_offset=2)
    assert torch_ops(lambda: next(stream)) <= VIEW_OPS


def test_a_batch_holds_the_stores_pixels_in_network_ranges():
    cfg, store = MODEL_PRESETS["tiny"], _store()
    rows, out = np.array([3, 1]), cfg.output_size
    b = make_batch(store, rows, [(1, 0), (0, 0)], cfg)
    start = (cfg.crop_size - out) // 2
    assert b.image.shape == (2, 3, out, out) and b.mask.shape == (2, 1, out, out)
    x0 = start + 8  # one cell to the right: 8 image pixels
    truth = torch.from_numpy(store.frames[3, start:start + out, x0:x0 + out]).permute(2, 0, 1).float() / 127.5 - 1
    assert torch.allclose(b.image[0], truth, atol=1e-6)
    assert torch.equal(b.mask[1, 0], torch.from_numpy(store.masks[1, start:start + out, start:start + out]) / 255.0)
    assert torch.equal(b.uv, torch.from_numpy(store.uvs[rows].astype(np.float32)).permute(0, 3, 1, 2))
    assert b.frame_index.tolist() == [3, 1] and b.offsets == [(1, 0), (0, 0)]


def test_background_image_is_the_median_with_the_face_inpainted():
    """A face that moves over a static two-colour background: outside the places it covered the result is the
    median; where it covered, the background's colours and never the face's."""
    crop, r, n = 64, 16, 9
    scene = np.zeros((crop, crop, 3), np.uint8)
    scene[:, :crop // 2] = (0, 0, 200)  # blue left half, green right half
    scene[:, crop // 2:] = (0, 200, 0)
    frames, coverage = np.repeat(scene[None], n, 0), np.zeros((n, r, r), np.float16)
    for i, dx in enumerate(np.linspace(-2, 2, n).round().astype(int)):  # the face moves sideways, in render pixels
        coverage[i, 6:10, 6 + dx:10 + dx] = 1
        frames[i, 24:40, 24 + 4 * dx:40 + 4 * dx] = (230, 160, 120)  # skin, 4 crop pixels per render pixel
    out = background_image(frames, coverage, margin=2)
    assert np.array_equal(out[:20], np.median(frames, 0).astype(np.uint8)[:20])  # above the face: the median
    assert np.array_equal(out[:, :10], frames[0, :, :10])
    assert np.median(frames, 0)[32, 32, 0] == 230  # the median holds the face where it sat most
    face = out[24:40, 18:46].astype(int)
    assert face[..., 0].max() < 60  # no skin's red left where the face was
    assert np.abs(face[:, :4] - (0, 0, 200)).max() < 40 and np.abs(face[:, -4:] - (0, 200, 0)).max() < 40
