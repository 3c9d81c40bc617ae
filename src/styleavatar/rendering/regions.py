"""Soft maps of the face's features (eyes and mouth) drawn from tracked landmarks.

People judge a face by its eyes and mouth, yet together they cover about a 25th of a portrait window, so a
loss or score averaged over the whole frame barely sees them. A feature map marks each eye and the mouth
with a soft ellipse fitted to its contour: 1 at the centre, about 0.6 on the lids and lips, fading to 0 at
twice that distance. ``evaluate`` and the quality benchmarks score there, beside the whole frame.
"""
from __future__ import annotations

import numpy as np

from ..tracking.face_model import LEFT_EYE_RING, NUM_POINTS, OUTER_LIP_RING, RIGHT_EYE_RING

FEATURE_RINGS = (RIGHT_EYE_RING, LEFT_EYE_RING, OUTER_LIP_RING)
"""The contours whose insides are the features: the two eyes' lid rings and the outer lip ring."""
MIN_ASPECT = 0.35
"""A closed eye's ring is a line: its ellipse keeps at least this ratio of minor to major axis."""
REACH = 2.0
"""The map is 0 beyond this many ring-radii from a feature's centre."""


def _ellipse(points: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(P, 2) points around a closed contour -> centre (2,), axes as rows (2, 2), semi-axis lengths (2,).

    Points spread evenly around an ellipse of semi-axes a, b have variances a^2 / 2 and b^2 / 2 along its
    axes, so the semi-axes are sqrt(2 * eigenvalues) of the points' covariance."""
    centre = points.mean(0)
    var, vec = np.linalg.eigh(np.cov((points - centre).T))
    semi = np.sqrt(2 * np.maximum(var, 0))
    semi = np.maximum(semi, MIN_ASPECT * semi.max())
    return centre, vec.T, np.maximum(semi, 1e-6)


def feature_map(landmarks: np.ndarray, size: int) -> np.ndarray:
    """(478 or 468, 2+) landmarks in [0, 1] of a crop -> (size, size) float32 map in [0, 1] over that crop.

    Each feature's value is exp(-r^2 / 2), r = distance from its ellipse's centre in semi-axis units (so 1 on
    its contour), cut to 0 at r = REACH; the map is the largest over the features. Untracked landmarks (any
    coordinate < 0, the dataset's mark) give an all-zero map."""
    pts = np.asarray(landmarks, np.float64)[:NUM_POINTS, :2]
    out = np.zeros((size, size), np.float32)
    if (pts < 0).any():
        return out
    for ring in FEATURE_RINGS:
        centre, axes, semi = _ellipse(pts[list(ring)])
        # only the pixels of the box around the ellipse's reach: (y0:y1, x0:x1), clipped to the crop
        lo = np.clip(np.floor((centre - REACH * semi.max()) * size).astype(int), 0, size)
        hi = np.clip(np.ceil((centre + REACH * semi.max()) * size).astype(int) + 1, 0, size)
        xs, ys = np.meshgrid(np.arange(lo[0], hi[0]), np.arange(lo[1], hi[1]))
        grid = (np.stack([xs, ys], -1) + 0.5) / size  # pixel centres in crop-normalised units
        r2 = ((((grid - centre) @ axes.T) / semi) ** 2).sum(-1)
        box = out[lo[1]:hi[1], lo[0]:hi[0]]
        np.maximum(box, np.where(r2 < REACH ** 2, np.exp(-0.5 * r2), 0).astype(np.float32), out=box)
    return out
