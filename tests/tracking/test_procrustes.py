import numpy as np
import pytest

from styleavatar.tracking.face_model import canonical_mesh, point_weights
from styleavatar.tracking.procrustes import (apply_similarity, euler_degrees, fit_pose_2d, invert_similarity,
                                             rotation_angle_degrees, rotation_from_euler, weighted_procrustes)


def _random_pose(rng, n):
    euler = rng.uniform(-40, 40, (n, 3))
    return rng.uniform(0.5, 2.0, n), rotation_from_euler(euler), rng.normal(0, 5, (n, 3)), euler


def test_recovers_a_known_similarity(rng):
    model = canonical_mesh().vertices
    s, r, t, euler = _random_pose(rng, 5)
    targets = apply_similarity(np.broadcast_to(model, (5, *model.shape)), s, r, t)
    s2, r2, t2 = weighted_procrustes(model, targets, point_weights())
    np.testing.assert_allclose(s2, s, rtol=1e-9)
    assert rotation_angle_degrees(r2, r).max() < 1e-4  # arccos near 1 limits precision
    np.testing.assert_allclose(t2, t, atol=1e-9)
    np.testing.assert_allclose(euler_degrees(r2), euler, atol=1e-6)
    np.testing.assert_allclose(invert_similarity(targets, s2, r2, t2), np.broadcast_to(model, targets.shape),
                               atol=1e-9)


def test_never_returns_a_reflection(rng):
    model = rng.normal(size=(30, 3))
    mirrored = model * np.array([-1, 1, 1])  # best fit would be a reflection
    _, r, _ = weighted_procrustes(model, mirrored[None], np.ones(30))
    assert np.linalg.det(r[0]) == pytest.approx(1.0)


def test_weights_ignore_outliers(rng):
    model = rng.normal(size=(40, 3))
    s, r, t, _ = _random_pose(rng, 1)
    target = apply_similarity(model[None], s, r, t)
    target[0, :10] += rng.normal(0, 50, (10, 3))  # corrupted points with zero weight
    w = np.ones(40)
    w[:10] = 0
    _, r2, _ = weighted_procrustes(model, target, w)
    assert rotation_angle_degrees(r2, r)[0] < 1e-4


def test_2d_pose_fit_ignores_wrong_depth(rng):
    model = canonical_mesh().vertices
    s, r, t, _ = _random_pose(rng, 8)
    targets = apply_similarity(np.broadcast_to(model, (8, *model.shape)), s, r, t)
    noisy = targets.copy()
    noisy[..., 2] *= 0.5  # depth guessed too flat, as a landmark detector may
    _, r3d, _ = weighted_procrustes(model, noisy, np.ones(len(model)))
    _, r2d, _ = fit_pose_2d(model, noisy, np.ones(len(model)), iterations=200)
    assert rotation_angle_degrees(r2d, r).max() < 0.2 < rotation_angle_degrees(r3d, r).max()
