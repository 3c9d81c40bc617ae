import numpy as np

from styleavatar.tracking.smoothing import OneEuroFilter, smooth_offline, strength_to_params


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


def test_per_channel_strength_smooths_each_channel_on_its_own(rng):
    x = rng.normal(size=(120, 3))
    out = smooth_offline(x, 25, np.array([0.0, 1.0, 2.0]))
    np.testing.assert_array_equal(out[:, 0], x[:, 0])  # strength 0: untouched
    for c, s in ((1, 1.0), (2, 2.0)):
        np.testing.assert_allclose(out[:, c], smooth_offline(x[:, c:c + 1], 25, s)[:, 0], atol=1e-12)


def test_a_causal_channel_of_strength_zero_passes_through(rng):
    x = rng.normal(size=(50, 2))
    f = OneEuroFilter(25, *strength_to_params(np.array([0.0, 1.0])))
    out = np.array([f(row) for row in x])
    np.testing.assert_allclose(out[:, 0], x[:, 0], atol=1e-12)
    assert np.abs(np.diff(out[:, 1])).mean() < 0.8 * np.abs(np.diff(x[:, 1])).mean()
