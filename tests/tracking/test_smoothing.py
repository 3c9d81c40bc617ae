import numpy as np

from styleavatar.tracking.smoothing import OneEuroFilter, smooth_offline


def test_removes_jitter_but_keeps_slow_motion(rng):
    t = np.arange(250) / 25
    slow = np.sin(2 * np.pi * 0.3 * t)[:, None]
    noisy = slow + rng.normal(0, 0.05, slow.shape)
    out = smooth_offline(noisy, 25, 1.0)
    assert np.abs(out - slow).std() < 0.6 * np.abs(noisy - slow).std()
    # zero lag: the smoothed curve is not shifted in time
    lag = np.argmax(np.correlate(out[:, 0] - out.mean(), slow[:, 0], "full")) - (len(t) - 1)
    assert lag == 0


def test_stronger_smoothing_removes_more_jitter(rng):
    noisy = rng.normal(0, 1, (300, 2))
    jitter = [np.abs(np.diff(smooth_offline(noisy, 25, s), axis=0)).mean() for s in (0.5, 1, 2, 4)]
    assert all(a > b for a, b in zip(jitter, jitter[1:]))


def test_strength_zero_is_identity(rng):
    x = rng.normal(size=(20, 3))
    np.testing.assert_array_equal(smooth_offline(x, 25, 0.0), x)


def test_fast_motion_stays_responsive():
    step = np.r_[np.zeros(50), np.ones(50)][:, None]
    f = OneEuroFilter(25, min_cutoff=1.5, beta=0.3)
    out = np.array([f(x) for x in step])
    assert out[60, 0] > 0.9  # within 10 frames of the jump
