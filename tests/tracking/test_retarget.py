"""Retargeting on synthetic face models: rest to rest, relative pose, limits that keep direction, controls."""
from __future__ import annotations

import numpy as np
import pytest

from styleavatar.config import Openness, TransferOptions
from styleavatar.errors import UserError
from styleavatar.tracking.face_model import EYES, MOUTH, canonical_mesh, openness
from styleavatar.tracking.fit import FrameParams, SubjectModel, rest_frames
from styleavatar.tracking.procrustes import rotation_angle_degrees, rotation_from_euler
from styleavatar.tracking.retarget import (AvatarRange, LiveRetargeter, Rest, Retargeter, openness_gradient,
                                           retarget, soft_clip, soft_limit_ratio)

K = 6


def _subject(rng) -> SubjectModel:
    neutral = canonical_mesh().vertices.copy()
    q, _ = np.linalg.qr(rng.normal(size=(neutral.size, K)))
    return SubjectModel(neutral, q.T.reshape(K, *neutral.shape), np.ones(K), -np.full(K, 5.0), np.full(K, 5.0))


def _params(expression, euler, translation=None, scale=0.02) -> FrameParams:
    n = len(expression)
    return FrameParams(np.ones(n, bool), np.full(n, scale), rotation_from_euler(euler),
                       np.full((n, 3), 0.5) if translation is None else translation, expression, np.zeros((n, 4)))


def _avatar(rng, subject) -> AvatarRange:
    """Training frames with coefficients in +-2, yaw/pitch/roll in +-25 degrees, positions in 0.4-0.6."""
    n = 400
    return AvatarRange.of_training(subject, _params(rng.uniform(-2, 2, (n, K)), rng.uniform(-25, 25, (n, 3)),
                                                    rng.uniform(0.4, 0.6, (n, 3))), range(n))


def test_a_driver_at_rest_leaves_the_avatar_at_its_rest(rng):
    avatar_subject, driver = _subject(rng), _subject(np.random.default_rng(1))
    avatar = _avatar(rng, avatar_subject)
    c = np.repeat(rng.normal(size=(1, K)), 5, 0)  # the same (non-zero) expression in every frame
    p = _params(c, np.repeat([[5.0, -3.0, 2.0]], 5, 0))
    out = retarget(driver.shape(c), p, 25.0, avatar_subject, avatar)
    assert np.allclose(out.expression, avatar.rest_coeffs, atol=1e-6)
    ref = avatar.rest.pose
    assert np.allclose(rotation_angle_degrees(out.rotation, np.repeat(ref.rotation[None], 5, 0)), 0, atol=1e-4)
    assert np.allclose(out.scale, ref.scale) and np.allclose(out.translation, ref.translation)


def test_relative_pose_adds_the_drivers_rotation_and_translation(rng):
    subject = _subject(rng)
    avatar = _avatar(rng, subject)
    euler = np.array([[0.0, 0, 0], [10.0, 0, 0], [0, -7.0, 0]])
    trans = np.array([[0.5, 0.5, 0], [0.51, 0.5, 0], [0.5, 0.49, 0]])
    p = _params(np.zeros((3, K)), euler, trans)
    shapes = subject.shape(p.expression)
    opts = TransferOptions(smooth=0, neutral="first")
    out = retarget(shapes, p, 25.0, subject, avatar, opts)
    ref = avatar.rest.pose
    angles = rotation_angle_degrees(out.rotation, np.repeat(ref.rotation[None], 3, 0))
    assert np.allclose(angles, [0, 10, 7], atol=0.05)
    # translation moves by the driver's shift times the avatar/driver scale ratio
    assert np.allclose(out.translation[1] - ref.translation, [0.01 * ref.scale / 0.02, 0, 0], atol=1e-9)
    offset = retarget(shapes, p, 25.0, subject, avatar, TransferOptions(smooth=0, neutral="first",
                                                                         pose_offset=(0.0, 0.0, 12.0)))
    assert np.allclose(rotation_angle_degrees(offset.rotation[:1], out.rotation[:1]), 12, atol=1e-4)


def test_pose_beyond_the_avatars_range_is_eased_not_followed(rng):
    subject = _subject(rng)
    avatar = _avatar(rng, subject)
    yaw = np.array([0.0, 20.0, 60.0, 120.0])
    p = _params(np.zeros((4, K)), np.stack([yaw, 0 * yaw, 0 * yaw], 1))
    out = retarget(subject.shape(p.expression), p, 25.0, subject, avatar, TransferOptions(smooth=0, neutral="first"))
    got = out.euler()[:, 0]
    assert got[0] + 20 < avatar.euler[1, 0]
    assert got[1] - got[0] == pytest.approx(20, abs=0.5)  # inside the range: followed
    assert got[3] < avatar.euler[1, 0] + 10.0 + 1e-6  # never past the training range + 10 degrees
    assert got[3] >= got[2] >= got[1]  # and still monotone


def test_expression_limit_scales_back_along_its_own_direction(rng):
    subject = _subject(rng)
    avatar = _avatar(rng, subject)
    rt = Retargeter(subject, avatar, TransferOptions())
    change = np.outer([0.5, 3.0, 30.0], rng.normal(size=K))  # small, past the range, far past it
    limited = rt._limit(change)
    assert np.allclose(limited[0], change[0])  # well inside: untouched
    for row, orig in zip(limited[1:], change[1:]):
        cos = row @ orig / np.linalg.norm(row) / np.linalg.norm(orig)
        assert cos == pytest.approx(1.0, abs=1e-12)  # the same direction
        ratio = np.where(row > 0, row / avatar.upper, -row / avatar.lower).max()
        assert ratio <= 1.1 + 1e-9  # inside the box (training range + 10%)
    assert np.linalg.norm(limited[2]) >= np.linalg.norm(limited[1])


def test_soft_clip_is_identity_inside_and_bounded_outside():
    x = np.linspace(-10, 10, 201)
    y = soft_clip(x, -2.0, 3.0, 1.0)
    inside = (x >= -1) & (x <= 2)
    assert np.allclose(y[inside], x[inside])
    assert y.min() >= -2 and y.max() <= 3 and np.all(np.diff(y) >= 0)
    assert np.allclose(soft_limit_ratio(np.array([0.1, 0.79])), 1.0)
    t = np.array([1.0, 5.0, 50.0])
    assert np.all(t * soft_limit_ratio(t) <= 1.0) and np.all(np.diff(t * soft_limit_ratio(t)) >= 0)


def test_openness_controls_hit_their_targets(rng):
    subject = _subject(rng)
    avatar = _avatar(rng, subject)
    c = rng.normal(size=(5, K)) * 0.3
    p = _params(c, np.zeros((5, 3)))
    plain = retarget(subject.shape(c), p, 25.0, subject, avatar, TransferOptions(smooth=0))
    out = retarget(subject.shape(c), p, 25.0, subject, avatar,
                   TransferOptions(smooth=0, eyes=Openness(0.3), mouth=Openness.parse("x2")))
    a, b = openness_gradient(subject, EYES)
    assert np.allclose(out.expression @ a + b, 0.3)
    am, bm = openness_gradient(subject, MOUTH)
    assert np.allclose(out.expression @ am + bm, 2 * (plain.expression @ am + bm))
    with pytest.raises(UserError):
        Openness.parse("wide")


def test_mouth_and_eyes_follow_the_drivers_change_of_openness(rng):
    """A driver whose lips part by a known ratio moves the avatar's lip gap by the same ratio."""
    subject, driver = _subject(rng), _subject(np.random.default_rng(3))
    avatar = _avatar(rng, subject)
    shapes = np.repeat(driver.neutral[None], 3, 0)
    width = np.linalg.norm(driver.neutral[78] - driver.neutral[308])
    shapes[1, 14, 1] += 0.05 * width  # lower inner lip down: 0.05 more open
    shapes[2, 14, 1] -= 0.02 * width  # and up
    p = _params(np.zeros((3, K)), np.zeros((3, 3)))
    rest = Rest.of_frames(shapes, p, "first")
    out = Retargeter(subject, avatar).frames(shapes, p, rest)
    am, bm = openness_gradient(subject, MOUTH)
    got = out.expression @ am + bm - avatar.rest.mouth
    assert got[0] == pytest.approx(0, abs=1e-9)
    assert got[1] == pytest.approx(0.05, abs=0.01) and got[2] == pytest.approx(-0.02, abs=0.01)


def test_default_smoothing_steadies_the_head_and_keeps_a_blink(rng):
    """A three-frame blink under a shaking head: the default ``smooth`` takes most of the shake out of the
    pose and leaves the blink as deep as unsmoothed retargeting draws it."""
    subject, driver = _subject(rng), _subject(np.random.default_rng(4))
    avatar = _avatar(rng, subject)
    n = 60
    shapes = np.repeat(driver.neutral[None], n, 0)
    width = np.linalg.norm(driver.neutral[33] - driver.neutral[133])
    shapes[30:33, [159, 386], 1] += 0.25 * width  # both upper lids down: the eyes shut for 3 frames
    p = _params(np.zeros((n, K)), rng.normal(0, 1.0, (n, 3)))  # 1 degree of tracking noise per angle
    sharp = retarget(shapes, p, 25.0, subject, avatar, TransferOptions(smooth=0))
    smooth = retarget(shapes, p, 25.0, subject, avatar, TransferOptions())

    def blink_depth(o: FrameParams) -> float:
        eyes = openness(subject.shape(o.expression), EYES)
        return eyes[:30].mean() - eyes[31]

    def shake(o: FrameParams) -> float:  # mean change of the frame-to-frame rotation, degrees
        return np.abs(np.diff(rotation_angle_degrees(o.rotation[1:], o.rotation[:-1]))).mean()

    assert blink_depth(sharp) > 0.02 and blink_depth(smooth) > 0.9 * blink_depth(sharp)
    assert shake(smooth) < 0.6 * shake(sharp)


def test_rest_frames_prefer_closed_lips_and_open_eyes(rng):
    subject = _subject(rng)
    shapes = np.repeat(subject.neutral[None], 6, 0)
    width = np.linalg.norm(subject.neutral[78] - subject.neutral[308])
    shapes[:, 14, 1] += np.array([0.3, 0.2, 0.0, 0.1, 0.0, 0.25])[:, None][:, 0] * width
    shapes[4, 145, 1] = shapes[4, 159, 1]  # frame 4: closed lips but a blink
    shapes[4, 374, 1] = shapes[4, 386, 1]
    assert openness(shapes[4], EYES) < openness(shapes[2], EYES)
    assert rest_frames(shapes, np.zeros((6, 3)), 2).tolist() == [2, 3]


def test_neutral_option(rng):
    subject = _subject(rng)
    avatar = _avatar(rng, subject)
    c = rng.normal(size=(6, K))
    p = _params(c, np.zeros((6, 3)))
    out = retarget(subject.shape(c), p, 25.0, subject, avatar, TransferOptions(smooth=0, neutral="3"))
    assert np.allclose(out.expression[3], avatar.rest_coeffs, atol=1e-6)
    with pytest.raises(UserError, match="outside the driver's 6 frames"):
        retarget(subject.shape(c), p, 25.0, subject, avatar, TransferOptions(neutral="99"))
    with pytest.raises(UserError, match="frame number"):
        retarget(subject.shape(c), p, 25.0, subject, avatar, TransferOptions(neutral="middle"))


def test_live_retargeting_matches_offline_once_its_rest_has_settled(rng):
    subject, driver = _subject(rng), _subject(np.random.default_rng(5))
    avatar = _avatar(rng, subject)
    n = 60
    c = rng.normal(size=(n, K)) * 0.5
    p = _params(c, rng.uniform(-5, 5, (n, 3)))
    shapes = driver.shape(c)
    opts = TransferOptions(smooth=0)
    offline = retarget(shapes, p, 25.0, subject, avatar, opts)
    live = LiveRetargeter(subject, avatar, 25.0, opts, calibration_s=n / 25.0)
    frames = [live(shapes[i], p.select(slice(i, i + 1))) for i in range(n)]
    again = FrameParams.concat([live(shapes[i], p.select(slice(i, i + 1))) for i in range(n)])
    assert len(frames) == n
    assert np.allclose(again.expression, offline.expression, atol=1e-9)  # rest now from all frames
    assert np.allclose(again.rotation, offline.rotation, atol=1e-9)
