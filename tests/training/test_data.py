"""Training batches: assembled in a loader thread, so without torch kernels."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import torch

from styleavatar.config import MODEL_PRESETS
from styleavatar.tracking.face_model import EYES, MOUTH, openness
from styleavatar.training.data import (RARITY_CAP, FrameStore, background_image, batches, make_batch, rarity_weights,
                                       store_rarity)

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


def _talking_eyes(rng: np.random.Generator, n: int = 1000) -> np.ndarray:
    """(n, 2) eye and mouth openness of a talking head: eyes open in 90 frames of 100 (ratio about 0.33), the
    rest spread from closed to half open; the mouth moves throughout."""
    eyes = np.where(rng.random(n) < 0.9, rng.normal(0.33, 0.015, n), rng.uniform(0.0, 0.25, n))
    return np.stack([eyes, rng.uniform(0.0, 0.25, n)], 1)


def test_rare_eye_states_are_drawn_more_often(rng):
    """Closed and half-closed eyes (a tenth of the frames) get more than twice their share of the draws, each
    frame within the cap; strength 0 is uniform."""
    x = _talking_eyes(rng)
    rare = x[:, 0] < 0.27
    assert np.array_equal(rarity_weights(x, 0.0), np.ones(len(x)))
    w = rarity_weights(x, 0.5)
    assert w[rare].sum() / w.sum() > 2 * rare.mean()
    assert w.max() <= RARITY_CAP and np.median(w[~rare]) < 1.1 < np.median(w[rare])
    assert np.allclose(rarity_weights(x * 3 + 1, 0.5), w)  # units and offsets of the openness do not matter


def test_store_rows_get_their_own_frames_weights(rng):
    """A sharded store holds every other training frame: each row gets the weight its frame has among all
    of that person's training frames; frames without landmarks weigh as the median."""
    n = 400

    class Person:  # what store_rarity reads of a Dataset
        train_indices = range(10, 10 + n)
        arrays = {"landmarks": rng.random((10 + n, 478, 3)).astype(np.float32)}
        params = SimpleNamespace(tracked=np.ones(10 + n, bool))

    Person.arrays["landmarks"][50] = -1  # untracked: stored as -1, flagged in params
    Person.params.tracked[50] = False
    store = _store(n // 2)
    store.frame_index = np.arange(10, 10 + n, 2)
    got = store_rarity(store, [Person], 0.5)
    lm = Person.arrays["landmarks"][10:10 + n]
    ok = np.ones(n, bool)
    ok[40] = False
    full = np.ones(n)
    full[ok] = rarity_weights(np.stack([openness(lm[ok], EYES), openness(lm[ok], MOUTH)], 1), 0.5)
    assert np.allclose(got, full[::2]) and got[20] == 1.0


def test_weighted_batches_follow_the_weights_and_repeat_on_resume():
    cfg, store = MODEL_PRESETS["tiny"], _store()
    weights = np.array([1.0, 0, 0, 0, 0, 3.0])
    stream = batches(store, cfg, batch=4, seed=0, start=0, sigma=0.1, prob=1.0, max_offset=2, weights=weights)
    rows = np.concatenate([next(stream).frame_index.numpy() for _ in range(200)])
    assert set(rows) == {0, 5} and 0.7 < (rows == 5).mean() < 0.8
    fresh = batches(store, cfg, batch=4, seed=0, start=0, sigma=0.1, prob=1.0, max_offset=2, weights=weights)
    resumed = batches(store, cfg, batch=4, seed=0, start=7, sigma=0.1, prob=1.0, max_offset=2, weights=weights)
    for _ in range(7):
        next(fresh)
    assert np.array_equal(next(resumed).frame_index, next(fresh).frame_index)
