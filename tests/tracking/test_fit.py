"""The forehead band's reach fitted to a person's outline (``fit_forehead_reach``)."""
from __future__ import annotations

import dataclasses

import cv2
import numpy as np

from styleavatar.tracking import face_model as fm
from styleavatar.tracking.fit import FOREHEAD_MARGIN, FrameParams, SubjectModel, fit_forehead_reach, outline_reach

SIZE = 256


def _frames(count: int) -> tuple[SubjectModel, FrameParams]:
    """The canonical face, upright and frontal, in the middle of a SIZE^2 crop (about a third of its width)."""
    shape = fm.canonical_mesh().vertices
    subject = SubjectModel(shape, np.zeros((1, fm.NUM_POINTS, 3)), np.ones(1), -np.ones(1), np.ones(1))
    params = FrameParams(np.ones(count, bool), np.full(count, 0.02), np.repeat(np.eye(3)[None], count, 0),
                         np.tile([0.5, 0.55, 0.0], (count, 1)), np.zeros((count, 1)), np.zeros((count, 4)))
    return subject, params


def _band_pixels(subject: SubjectModel, params: FrameParams, reach: tuple[float, ...]) -> np.ndarray:
    """(B, 2) pixel positions of the band's upper edge in the first frame."""
    verts = params.select(slice(0, 1)).vertices(dataclasses.replace(subject, forehead_reach=reach))
    return verts[0, fm.render_topology().forehead, :2] * SIZE


def test_the_band_reaches_to_just_inside_the_outline():
    subject, params = _frames(4)
    # a head outline 3 steps past the middle of the forehead: a disc through that point, centred on the face
    top = _band_pixels(subject, params, (3.0,) * len(fm.FOREHEAD_ARC))[len(fm.FOREHEAD_ARC) // 2]
    centre = np.array([0.5, 0.55]) * SIZE
    yy, xx = np.mgrid[:SIZE, :SIZE] + 0.5
    disc = (np.hypot(xx - centre[0], yy - centre[1]) < np.linalg.norm(top - centre)).astype(np.float32)
    reach = fit_forehead_reach(np.repeat(disc[None], 4, 0), params, subject)
    middle = reach[len(reach) // 2]
    assert 3.0 - FOREHEAD_MARGIN - 0.25 <= middle <= 3.0 - FOREHEAD_MARGIN + 0.05
    # every band point at its fitted reach lies on the person, with the margin to spare
    edge = _band_pixels(subject, params, tuple(r + FOREHEAD_MARGIN - 0.1 for r in reach))
    assert (np.hypot(*(edge - centre).T) < np.linalg.norm(top - centre)).all()


def test_the_reach_keeps_to_its_range_and_to_the_frames_that_cut_it_short():
    subject, params = _frames(10)
    everywhere = np.ones((10, SIZE, SIZE), np.float32)
    assert fit_forehead_reach(everywhere, params, subject) == (fm.FOREHEAD_REACH_RANGE[1],) * len(fm.FOREHEAD_ARC)
    # the face alone (a bald head that ends at the mesh's outline): the smallest reach
    hull = cv2.convexHull(np.round(params.points(subject)[0, :, :2] * SIZE).astype(np.int32))
    face_only = np.repeat(cv2.dilate(cv2.fillConvexPoly(np.zeros((SIZE, SIZE), np.uint8), hull, 1),
                                     np.ones((3, 3), np.uint8))[None].astype(np.float32), 10, 0)
    assert fit_forehead_reach(face_only, params, subject) == (fm.FOREHEAD_REACH_RANGE[0],) * len(fm.FOREHEAD_ARC)
    # one frame in ten with the hair cut short 2 steps above the middle of the forehead does not decide; two do
    middle = len(fm.FOREHEAD_ARC) // 2
    short = everywhere.copy()
    short[:, : int(_band_pixels(subject, params, (2.0,) * 13)[middle, 1])] = 0
    per_frame = outline_reach(np.concatenate([everywhere[:9], short[:1]]), params, subject)
    assert per_frame[:9, middle].min() == 4.5 and 1.8 <= per_frame[9, middle] <= 2.0
    one = fit_forehead_reach(np.concatenate([everywhere[:9], short[:1]]), params, subject)
    two = fit_forehead_reach(np.concatenate([everywhere[:8], short[:2]]), params, subject)
    assert one[middle] > 3.5 and two[middle] <= 2.0 - FOREHEAD_MARGIN


def test_a_fitted_band_has_no_spike_and_the_default_is_the_band_of_older_face_models():
    subject, params = _frames(3)
    masks = np.ones((3, SIZE, SIZE), np.float32)
    # a notch in the outline above one arc point only
    p = _band_pixels(subject, params, (1.0,) * 13)[4]
    masks[:, : int(p[1]) + 1, int(p[0]) - 3: int(p[0]) + 4] = 0
    reach = np.array(fit_forehead_reach(masks, params, subject))
    assert reach[4] <= 1.0 and reach[3] < 5.0 and reach[5] < 5.0  # the neighbours step down towards it
    rise = np.sin(np.pi * np.arange(13) / 12)
    np.testing.assert_allclose(fm.default_forehead_reach(), 2.5 * (0.6 + 0.4 * rise))
