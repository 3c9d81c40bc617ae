"""Temporal smoothing of tracked parameters with the One-Euro filter (Casiez et al. 2012).

The filter is a first-order low-pass whose cut-off rises with the signal's speed, so it removes landmark
jitter on slow motion while keeping blinks and mouth motion responsive. :class:`OneEuroFilter` is causal
(for live use); :func:`smooth_offline` runs it forwards and backwards and averages, which cancels the lag.
"""
from __future__ import annotations

import math

import numpy as np


def _alpha(cutoff: np.ndarray | float, dt: float) -> np.ndarray | float:
    tau = 1.0 / (2 * math.pi * cutoff)
    return 1.0 / (1.0 + tau / dt)


def strength_to_params(strength: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
    """Map the user-facing ``--smooth`` strength to (min_cutoff in Hz, beta per unit/s), per channel.

    Signals are expected in units of their own standard deviation. Strength 1 keeps motion below about
    1.5 Hz untouched-ish; doubling the strength halves the cut-off. A channel of strength 0 gets an infinite
    cut-off: the filter passes it through unchanged.
    """
    s = np.asarray(strength, np.float64)
    on = s > 0
    safe = np.where(on, s, 1.0)
    return np.where(on, 1.5 / safe, np.inf), np.where(on, 0.3 / safe, 0.0)


class OneEuroFilter:
    """Causal One-Euro filter over vectors of D channels, one sample per call; ``min_cutoff`` and ``beta`` are
    scalars or (D,) per channel."""

    def __init__(self, fps: float, min_cutoff: np.ndarray | float, beta: np.ndarray | float,
                 d_cutoff: float = 1.0) -> None:
        self.dt = 1.0 / fps
        self.min_cutoff, self.beta, self.d_cutoff = min_cutoff, beta, d_cutoff
        self.x: np.ndarray | None = None
        self.dx: np.ndarray | None = None

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, np.float64)
        if self.x is None:
            self.x, self.dx = x.copy(), np.zeros_like(x)
            return x.copy()
        dx = (x - self.x) / self.dt
        self.dx = self.dx + _alpha(self.d_cutoff, self.dt) * (dx - self.dx)
        cutoff = self.min_cutoff + self.beta * np.abs(self.dx)
        self.x = self.x + _alpha(cutoff, self.dt) * (x - self.x)
        return self.x.copy()

    def reset(self) -> None:
        self.x = self.dx = None


def _run(x: np.ndarray, fps: float, min_cutoff: np.ndarray, beta: np.ndarray) -> np.ndarray:
    f = OneEuroFilter(fps, min_cutoff, beta)
    return np.stack([f(row) for row in x])


def smooth_offline(x: np.ndarray, fps: float, strength: np.ndarray | float,
                   units: np.ndarray | float | None = None) -> np.ndarray:
    """Zero-lag smoothing of a whole sequence.

    Args:
        x: (N, D) signal, one row per frame.
        fps: frame rate in Hz.
        strength: scalar or (D,) per channel; 0 leaves a channel unchanged, larger is smoother (see
            :func:`strength_to_params`).
        units: (D,) or scalar unit of each channel (the filter works in these units); None: each channel's
            standard deviation over the sequence.
    Returns:
        (N, D) smoothed signal.
    """
    x = np.asarray(x, np.float64)
    strength = np.broadcast_to(np.asarray(strength, np.float64), x.shape[1:])
    if not (strength > 0).any() or len(x) < 3:
        return x.copy()
    scale = x.std(0) + 1e-8 if units is None else units  # the filter works in these units
    z = x / scale
    min_cutoff, beta = strength_to_params(strength)
    fwd = _run(z, fps, min_cutoff, beta)
    bwd = _run(z[::-1], fps, min_cutoff, beta)[::-1]
    out = (fwd + bwd) / 2 * scale
    out[:, strength <= 0] = x[:, strength <= 0]  # exactly, not through the scaling's rounding
    return out
