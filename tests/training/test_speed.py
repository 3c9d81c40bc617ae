"""The start-up probes' figures: the half batch's cost must not follow one slow stretch of a shared machine."""
from __future__ import annotations

import time

import pytest

from styleavatar.training.speed import batch_for, half_batch_cost


def _step(seconds: list[float]):
    """A step that sleeps the next of ``seconds`` (the last one once they run out)."""
    calls = iter(seconds)

    def step() -> None:
        time.sleep(next(calls, seconds[-1]))
    return step


def test_half_batch_cost_is_the_median_round_not_a_slow_stretch():
    # the full step takes 30 ms; the half step 18 ms (0.6 of it), except in the first two timed rounds, where a
    # slow stretch makes it 60 ms: both of the runs the earlier best-of-two probe took (it read 2.0, not 0.6)
    full = _step([0.03])
    half = _step([0.018, 0.06, 0.06, 0.018])  # the warm-up, two slow runs, then the usual time
    cost = half_batch_cost(full, half)  # the rounds a new run's probe takes
    assert cost == pytest.approx(0.6, abs=0.1)
    assert batch_for(4, cost, 0.7) == 2


def test_a_slow_stretch_over_a_whole_round_leaves_its_ratio():
    # a round where both steps are twice as slow still reads 0.6
    full = _step([0.03, 0.06, 0.03])
    half = _step([0.018, 0.036, 0.018])
    assert half_batch_cost(full, half, rounds=3) == pytest.approx(0.6, abs=0.1)
