"""Motion transfer: zero motion keeps the avatar neutral, relative pose adds the driver's rotation."""
from __future__ import annotations

import numpy as np
import pytest

from styleavatar.errors import UserError
from styleavatar.inference.motion import DriverMotion
from styleavatar.config import Openness, TransferOptions
from styleavatar.inference.transfer import openness_gradient, transfer
from styleavatar.tracking.face_model import EYES, MOUTH
from styleavatar.tracking.face_model import canonical_mesh
from styleavatar.tracking.fit import FrameParams, Pose, SubjectModel
from styleavatar.tracking.procrustes import rotation_angle_degrees, rotation_from_euler


def _subject(rng, k=6) -> SubjectModel:
    identity = canonical_mesh().vertices.copy()
    q, _ = np.linalg.qr(rng.normal(size=(identity.size, k)))
    basis = q.T.reshape(k, *identity.shape)  # orthonormal rows
    return SubjectModel(identity, basis, np.ones(k), -np.full(k, 5.0), np.full(k, 5.0))


def _motion(subject, expression, euler, translation=None) -> DriverMotion:
    n = len(expression)
    params = FrameParams(np.ones(n, bool), np.full(n, 0.02), rotation_from_euler(euler),
                         np.zeros((n, 3)) if translation is None else translation, expression, np.zeros((n, 4)))
    return DriverMotion(25.0, params, subject.basis, np.ones(subject.basis.shape[0]))


def test_zero_motion_leaves_the_avatar_neutral_at_its_reference_pose(rng):
    driver, avatar = _subject(rng), _subject(np.random.default_rng(1))
    c = np.repeat(rng.normal(size=(1, 6)), 5, 0)  # the same (non-zero) expression in every frame
    motion = _motion(driver, c, np.repeat([[5.0, -3.0, 2.0]], 5, 0))
    ref = Pose(0.03, rotation_from_euler([[-4.0, 2.0, 1.0]])[0], np.array([0.5, 0.55, 0.0]))
    out = transfer(motion, avatar, ref)
    assert np.allclose(out.expression, 0, atol=1e-9)
    assert np.allclose(rotation_angle_degrees(out.rotation, np.repeat(ref.rotation[None], 5, 0)), 0, atol=1e-4)
    assert np.allclose(out.scale, 0.03) and np.allclose(out.translation, ref.translation)


def test_relative_pose_adds_the_drivers_rotation_and_translation(rng):
    subj = _subject(rng)
    euler = np.array([[0.0, 0, 0], [10.0, 0, 0], [0, -7.0, 0]])
    trans = np.array([[0.5, 0.5, 0], [0.52, 0.5, 0], [0.5, 0.46, 0]])
    motion = _motion(subj, np.zeros((3, 6)), euler, trans)
    ref = Pose(0.04, rotation_from_euler([[3.0, 0, 0]])[0], np.array([0.4, 0.6, 0.0]))
    out = transfer(motion, subj, ref)
    angles = rotation_angle_degrees(out.rotation, np.repeat(ref.rotation[None], 3, 0))
    assert np.allclose(angles, [0, 10, 7], atol=1e-4)
    # translation moves by the driver's shift times the avatar/driver scale ratio (0.04 / 0.02)
    assert np.allclose(out.translation[1] - ref.translation, [0.04, 0, 0])
    absolute = transfer(motion, subj, ref, TransferOptions(relative=False))
    assert np.allclose(absolute.translation, trans)
    offset = transfer(motion, subj, ref, TransferOptions(pose_offset=(0.0, 0.0, 12.0)))
    assert np.allclose(rotation_angle_degrees(offset.rotation[:1], out.rotation[:1]), 12, atol=1e-4)


def test_expression_deformation_is_transferred_and_clamped(rng):
    subj = _subject(rng)
    c = np.array([[0.5, 0, 0, 0, 0, 0], [1.5, -1.0, 0, 0, 0, 0], [50.0, 0, 0, 0, 0, 0]])
    out = transfer(_motion(subj, c, np.zeros((3, 3))), subj, Pose(0.02, np.eye(3), np.zeros(3)))
    assert np.allclose(out.expression[1], [1.0, -1.0, 0, 0, 0, 0])  # relative to the first frame
    assert out.expression[2, 0] == pytest.approx(5.0 + 0.1 * 10.0)  # clamped to the range + 10% margin
    scaled = transfer(_motion(subj, c, np.zeros((3, 3))), subj, Pose(0.02, np.eye(3), np.zeros(3)),
                      TransferOptions(expression_scale=0.5))
    assert np.allclose(scaled.expression[1], [0.5, -0.5, 0, 0, 0, 0])


def test_openness_controls_hit_their_targets(rng):
    subj = _subject(rng)
    c = rng.normal(size=(4, 6)) * 0.3
    motion = _motion(subj, np.concatenate([np.zeros((1, 6)), c]), np.zeros((5, 3)))
    pose = Pose(0.02, np.eye(3), np.zeros(3))
    plain = transfer(motion, subj, pose)
    out = transfer(motion, subj, pose, TransferOptions(eyes=Openness(0.3), mouth=Openness.parse("x2")))
    a, b = openness_gradient(subj, EYES)
    assert np.allclose(out.expression @ a + b, 0.3)
    am, bm = openness_gradient(subj, MOUTH)
    assert np.allclose(out.expression @ am + bm, 2 * (plain.expression @ am + bm))
    with pytest.raises(UserError):
        Openness.parse("wide")


def test_most_neutral_frame_and_neutral_option(rng):
    subj = _subject(rng)
    c = rng.normal(size=(6, 6))
    c[3] = 0.01
    motion = _motion(subj, c, np.zeros((6, 3)))
    assert motion.most_neutral_frame() == 3
    out = transfer(motion, subj, Pose(0.02, np.eye(3), np.zeros(3)), TransferOptions(neutral="auto"))
    assert np.allclose(out.expression[3], 0)
    with pytest.raises(UserError):
        transfer(motion, subj, Pose(0.02, np.eye(3), np.zeros(3)), TransferOptions(neutral="99"))
