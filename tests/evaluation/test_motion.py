"""Motion agreement: a video against itself scores ~0; against a time-shifted copy the errors grow."""
from __future__ import annotations

import dataclasses

import numpy as np

from styleavatar.evaluation.motion import Track, compare, jitter, network_agreement


def _shifted(track: Track, k: int) -> Track:
    roll = lambda a: np.roll(a, k, axis=0)  # noqa: E731
    p = track.params
    params = dataclasses.replace(p, rotation=roll(p.rotation), expression=roll(p.expression))
    return Track(roll(track.landmarks), params, track.subject)


def test_self_comparison_is_zero_and_shift_grows(drive_clip):
    track = Track.of_video(drive_clip.path, progress=False)
    same = compare(track, track)
    assert same["pose_error_deg"] < 1e-3 and same["expression_error_mm"] < 1e-6
    assert same["mouth_openness_corr"] > 0.999 and same["jitter_ratio"] == 1.0
    errors = [compare(track, _shifted(track, k)) for k in (2, 6)]
    assert 0.5 < errors[0]["pose_error_deg"] < errors[1]["pose_error_deg"]
    assert 0 < errors[0]["expression_error_mm"] < errors[1]["expression_error_mm"]
    assert errors[1]["mouth_openness_corr"] < 0.9


def test_pose_error_ignores_how_each_head_is_held_and_one_badly_tracked_first_frame(drive_clip):
    """Another person holds the head otherwise (a constant rotation in every frame): no error. A first
    frame tracked 6 degrees off is one frame's error, not every frame's (as when motion was taken relative
    to the first frame)."""
    from styleavatar.tracking.procrustes import rotation_from_euler

    track = Track.of_video(drive_clip.path, progress=False)
    p, n = track.params, len(track.params)
    held = dataclasses.replace(p, rotation=p.rotation @ rotation_from_euler(np.array([8.0, -5.0, 3.0]))[0])
    assert compare(track, Track(track.landmarks, held, track.subject))["pose_error_deg"] < 1e-3
    first_off = p.rotation.copy()
    first_off[0] = first_off[0] @ rotation_from_euler(np.array([0.0, 6.0, 0.0]))[0]
    off = compare(track, Track(track.landmarks, dataclasses.replace(p, rotation=first_off), track.subject))
    assert off["pose_error_deg"] < 3 * 6.0 / n, (off["pose_error_deg"], n)


def test_range_ratio_tells_a_mouth_that_opens_half_as_far(drive_clip):
    """The correlation cannot see a mouth that follows every move at half the size; the range ratio can."""
    from styleavatar.tracking.face_model import MOUTH

    track = Track.of_video(drive_clip.path, progress=False)
    (upper, lower), _ = MOUTH[0]
    lm = track.landmarks.copy()
    lm[:, lower] = lm[:, upper] + 0.5 * (lm[:, lower] - lm[:, upper])  # the lips' gap halved in every frame
    half = compare(track, Track(lm, track.params, track.subject))
    assert half["mouth_openness_corr"] > 0.99 and abs(half["mouth_range_ratio"] - 0.5) < 0.01
    assert compare(track, track)["eye_range_ratio"] == 1.0


def test_jitter_grows_with_noise(rng):
    t = np.linspace(0, 1, 50)
    pts = np.zeros((50, 478, 3))
    pts[..., 0] = np.linspace(0, 1, 478)[None] + t[:, None] * 0.1
    pts[..., 1] = np.linspace(0, 1, 478)[None]
    assert jitter(pts) < 1e-9
    assert jitter(pts + rng.normal(0, 1e-3, pts.shape)) < jitter(pts + rng.normal(0, 1e-2, pts.shape))


def test_mesh_agreement_tells_a_mouth_moving_against_the_driver(drive_clip):
    """A model that follows the driver scores 1; one whose lips move the other way scores about -1."""
    from styleavatar.evaluation.motion import mesh_agreement
    from styleavatar.tracking.face_model import MOUTH, openness
    from styleavatar.tracking.retarget import openness_gradient

    track = Track.of_video(drive_clip.path, progress=False)
    subject, p = track.subject, track.params
    shapes = subject.shape(p.expression)
    same = mesh_agreement(shapes, p, p, subject)
    assert same["mesh_mouth_corr"] > 0.999 and same["mesh_eye_corr"] > 0.999 and same["mesh_brow_corr"] > 0.999
    assert same["mesh_pose_error_deg"] < 1e-6 and same["mesh_eye_range_ratio"] == 1.0
    # Mirror the lip gap around its mean through the mouth's gradient direction: the lips now close as the
    # driver's open.
    a, b = openness_gradient(subject, MOUTH)
    gap = p.expression @ a + b
    against = p.expression + np.outer(2 * (gap.mean() - gap), a) / (a @ a)
    assert np.corrcoef(openness(subject.shape(against), MOUTH), gap)[0, 1] < -0.9
    flipped = mesh_agreement(shapes, p, dataclasses.replace(p, expression=against), subject)
    assert flipped["mesh_mouth_corr"] < -0.9


def test_network_agreement_is_high_for_the_video_a_model_was_fitted_to_and_falls_when_it_lags(drive_clip):
    """The face model fitted to a video, as the \"asked\" motion, agrees with that video's own tracking; the same
    video three frames late does not."""
    track = Track.of_video(drive_clip.path, progress=False)
    same = network_agreement(track.params, track.subject, track)
    assert same["net_pose_error_deg"] < 1e-6
    assert same["net_mouth_corr"] > 0.9 and same["net_eye_corr"] > 0.8
    late = network_agreement(track.params, track.subject, _shifted(track, 3))
    assert late["net_pose_error_deg"] > 0.5
    assert late["net_mouth_corr"] < same["net_mouth_corr"] - 0.1
