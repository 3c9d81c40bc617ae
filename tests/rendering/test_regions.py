"""The eyes-and-mouth map: soft ellipses fitted to the lid and lip rings of tracked landmarks."""
from __future__ import annotations

import numpy as np
import pytest

from styleavatar.rendering.regions import FEATURE_RINGS, MIN_ASPECT, REACH, feature_map
from styleavatar.tracking.face_model import NUM_LANDMARKS


def _face(centres, semi, angle=0.0):
    """(478, 3) landmarks whose three feature rings are ellipses (crop-normalised) at ``centres`` with
    semi-axes ``semi`` turned by ``angle`` (radians); every other point sits in a corner."""
    pts = np.full((NUM_LANDMARKS, 3), 0.02)
    c, s = np.cos(angle), np.sin(angle)
    for ring, centre, (a, b) in zip(FEATURE_RINGS, centres, semi):
        t = np.linspace(0, 2 * np.pi, len(ring), endpoint=False)
        x, y = a * np.cos(t), b * np.sin(t)
        pts[list(ring), 0] = centre[0] + c * x - s * y
        pts[list(ring), 1] = centre[1] + s * x + c * y
    return pts


CENTRES = ((0.35, 0.4), (0.65, 0.4), (0.5, 0.75))
SEMI = ((0.06, 0.03), (0.06, 0.03), (0.1, 0.04))


def _at(m, x, y):
    """The map's value at crop-normalised (x, y)."""
    size = m.shape[0]
    return m[int(y * size), int(x * size)]


def test_each_feature_peaks_at_its_centre_and_fades_by_its_own_size():
    m = feature_map(_face(CENTRES, SEMI), 400)
    assert m.dtype == np.float32 and m.shape == (400, 400)
    for (cx, cy), (a, b) in zip(CENTRES, SEMI):
        assert _at(m, cx, cy) == pytest.approx(1.0, abs=0.01)
        assert _at(m, cx + a, cy) == pytest.approx(np.exp(-0.5), abs=0.05)  # on the ring
        assert _at(m, cx, cy + b) == pytest.approx(np.exp(-0.5), abs=0.08)  # the short axis is the ring's too
        assert _at(m, cx + 0.9 * REACH * a, cy) > 0.1
        assert _at(m, cx + 1.1 * REACH * a, cy) == 0.0  # cut beyond its reach
    assert _at(m, 0.5, 0.1) == 0.0 and _at(m, 0.1, 0.9) == 0.0  # forehead and corner: no feature


def test_a_turned_head_turns_the_ellipses():
    angle = np.radians(30)
    m = feature_map(_face(CENTRES, SEMI, angle), 400)
    (cx, cy), (a, _) = CENTRES[2], SEMI[2]
    along = (cx + 0.9 * a * np.cos(angle), cy + 0.9 * a * np.sin(angle))
    across = (cx + 0.9 * a * np.cos(angle + np.pi / 2), cy + 0.9 * a * np.sin(angle + np.pi / 2))
    assert _at(m, *along) > 0.5 > _at(m, *across)


def test_a_closed_eye_keeps_an_area_to_learn():
    semi = ((0.06, 0.0), (0.06, 0.03), (0.1, 0.04))  # the right eye shut: its ring is a line
    m = feature_map(_face(CENTRES, semi), 400)
    (cx, cy), a = CENTRES[0], semi[0][0]
    assert _at(m, cx, cy + 0.9 * MIN_ASPECT * a) > 0.5  # as tall as MIN_ASPECT of its width


def test_an_untracked_frame_has_no_features():
    lm = _face(CENTRES, SEMI)
    lm[5] = -1.0  # the dataset's mark of a frame without a face
    assert not feature_map(lm, 64).any()


def test_the_map_is_the_same_at_any_size():
    lm = _face(CENTRES, SEMI)
    small, large = feature_map(lm, 100), feature_map(lm, 400)
    assert np.abs(small - large.reshape(100, 4, 100, 4).mean((1, 3))).max() < 0.08
