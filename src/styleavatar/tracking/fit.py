"""Fitting the face model to a whole video's landmarks (paper Eq. 1-2, with the MediaPipe mesh).

Per frame: scale, rotation and translation by weighted Procrustes on the rigid points; the subject's
neutral shape is the per-vertex median of its most neutral training frames (lips closed, eyes open, facing
the camera; :func:`rest_frames`), aligned; the expression is K coefficients of a basis learnt from the
training frames of the subject's own video, solved by regularised least squares; gaze comes from the
iris landmarks. Missing frames are filled by interpolating the parameters, and everything is smoothed
over time.

Coordinates: landmarks and translations are *crop-normalised* (x, y in [0, 1] over the crop, z in the
same unit); shapes are in the *head frame* (canonical centimetres, image-frame axes).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
from scipy.spatial.transform import Rotation, Slerp

from .expression import learn_basis, solve_coefficients
from .face_model import (EYES, FOREHEAD_ARC, FOREHEAD_REACH_RANGE, IRIS_CENTRES, MOUTH, NUM_POINTS, canonical_mesh,
                         default_forehead_reach, eye_frames, forehead_band, openness, openness_per_eye,
                         point_weights, render_vertices)
from .procrustes import apply_similarity, euler_degrees, fit_pose_2d, invert_similarity, weighted_procrustes
from .smoothing import smooth_offline


@dataclass
class SubjectModel:
    """The subject's personal face model (the analogue of FaceVerse's fitted shape and texture)."""

    neutral: np.ndarray
    """(468, 3) neutral shape in the head frame."""
    basis: np.ndarray
    """(K, 468, 3) expression basis (orthonormal as 1404-vectors)."""
    coeff_rms: np.ndarray
    """(K,) root-mean-square of each coefficient over the training frames."""
    coeff_min: np.ndarray
    """(K,) smallest coefficient seen in the training frames."""
    coeff_max: np.ndarray
    """(K,) largest coefficient seen in the training frames."""
    texture: np.ndarray | None = None
    """(T, T, 3) uint8 RGB texture in UV space, or None before it is baked."""
    closed_texture: np.ndarray | None = None
    """(T, T, 3) uint8 RGB: the texture with each eye's region as the subject's blinks show it (shut lids, the
    unseen opening inpainted from them); elsewhere the open texture's. None: renders keep the open eyes'
    texture (no blink, or older datasets)."""
    eye_openness: np.ndarray | None = None
    """(2, 2) with ``closed_texture``: per eye (right, left of :data:`EYES`) its openness when open (median of
    the training frames) and when shut (mean of the blinks the closed texture was baked from)."""
    forehead_reach: tuple[float, ...] = dataclasses.field(default_factory=default_forehead_reach)
    """The forehead band's reach at each point of its arc, temple to temple, in steps of the mesh
    (:func:`~styleavatar.tracking.face_model.forehead_band`; fitted to the subject's head by
    :func:`fit_forehead_reach`). Empty for face models made before the band, whose textures and avatars know
    the mesh without it."""

    @property
    def forehead(self) -> bool:
        """Whether the render mesh has the forehead band."""
        return bool(self.forehead_reach)

    def shape(self, expression: np.ndarray) -> np.ndarray:
        """(N, K) coefficients -> (N, 468, 3) head-frame shapes."""
        return self.neutral + np.einsum("nk,kpc->npc", expression, self.basis)

    def eye_closure(self, expression: np.ndarray) -> np.ndarray:
        """(N, K) coefficients -> (N, 2) how far each eye (right, left) is shut: 0 open or wider, 1 as shut as
        the blinks of ``closed_texture`` (all 0 without one)."""
        if self.eye_openness is None:
            return np.zeros((len(expression), 2))
        now = openness_per_eye(self.shape(expression))
        opened, shut = self.eye_openness[:, 0], self.eye_openness[:, 1]
        return np.clip((opened - now) / np.maximum(opened - shut, 1e-6), 0.0, 1.0)


POSE_DIMS = 7
"""Numbers of a frame's pose as a flat vector (smoothing, the codec's stream): rotation vector (3), log scale
(1), translation (3), in that order."""
GAZE_DIMS = 2 * len(IRIS_CENTRES)
"""Numbers of a frame's gaze: (dx, dy) per iris."""


@dataclass
class FrameParams:
    """Per-frame parameters of the fitted model (N frames)."""

    tracked: np.ndarray
    """(N,) bool: a face was found in this frame (False: filled by interpolation)."""
    scale: np.ndarray
    """(N,) crop-normalised units per head-frame unit."""
    rotation: np.ndarray
    """(N, 3, 3) head-to-image rotation."""
    translation: np.ndarray
    """(N, 3) crop-normalised translation."""
    expression: np.ndarray
    """(N, K) expression coefficients."""
    gaze: np.ndarray
    """(N, 4) iris offsets from each eye's centre in eye widths (right dx, dy, left dx, dy)."""

    def __len__(self) -> int:
        return len(self.scale)

    def select(self, idx) -> "FrameParams":
        """The frames ``idx`` (an index array, slice or list) as a new FrameParams."""
        return FrameParams(*(getattr(self, f.name)[idx] for f in dataclasses.fields(self)))

    @staticmethod
    def concat(parts: list["FrameParams"]) -> "FrameParams":
        """Frames of several FrameParams one after the other."""
        return FrameParams(*(np.concatenate([getattr(p, f.name) for p in parts])
                             for f in dataclasses.fields(FrameParams)))

    def euler(self) -> np.ndarray:
        """(N, 3) yaw, pitch, roll in degrees."""
        return euler_degrees(self.rotation)

    def points(self, subject: SubjectModel) -> np.ndarray:
        """(N, 468, 3) crop-normalised model points."""
        return apply_similarity(subject.shape(self.expression), self.scale, self.rotation, self.translation)

    def vertices(self, subject: SubjectModel) -> np.ndarray:
        """(N, R, 3) crop-normalised render-mesh vertices (with eye and mouth patches)."""
        head = render_vertices(subject.shape(self.expression), self.gaze, subject.forehead_reach)
        return apply_similarity(head, self.scale, self.rotation, self.translation)


@dataclass(frozen=True)
class Pose:
    """A reference pose: crop-normalised scale, (3, 3) head-to-image rotation, (3,) translation."""

    scale: float
    rotation: np.ndarray
    translation: np.ndarray

    @classmethod
    def median(cls, params: FrameParams, indices: np.ndarray | range | None = None) -> "Pose":
        idx = np.asarray(indices if indices is not None else range(len(params)))
        idx = idx[params.tracked[idx]] if params.tracked[idx].any() else idx
        rot = Rotation.from_matrix(params.rotation[idx]).mean().as_matrix()
        return cls(float(np.median(params.scale[idx])), rot, np.median(params.translation[idx], axis=0))

    @classmethod
    def of_frame(cls, params: FrameParams, i: int) -> "Pose":
        return cls(float(params.scale[i]), params.rotation[i], params.translation[i])


def gaze_offsets(aligned: np.ndarray, landmarks_head: np.ndarray) -> np.ndarray:
    """Iris offsets (N, 4) in eye widths, from head-frame points (N, 478, 3)."""
    centres, widths = eye_frames(aligned)
    iris = landmarks_head[:, list(IRIS_CENTRES), :2]
    # MediaPipe's iris order is not documented per side: pair each iris with its nearest eye.
    d = np.linalg.norm(np.median(iris, 0)[:, None] - np.median(centres[..., :2], 0)[None], axis=-1)
    if d[0, 1] + d[1, 0] < d[0, 0] + d[1, 1]:
        iris = iris[:, ::-1]
    return ((iris - centres[..., :2]) / widths[..., None]).reshape(len(aligned), 4)


BLINK_FRACTION = 0.8
"""Eyes under this fraction of their median openness count as closing (a blink or a squint)."""
REST_TURN_DEG = 15.0
"""Frames turned further than this (yaw + pitch, degrees) from the median pose are not taken as a rest."""


def rest_frames(shapes: np.ndarray, euler: np.ndarray, count: int) -> np.ndarray:
    """Indices of the ``count`` most neutral frames: lips closed, eyes open, head near its usual pose.

    Frames that blink (eyes under 80% of their median openness) or whose yaw + pitch are over
    ``REST_TURN_DEG`` from the median pose are passed over while others remain; the rest are ranked by
    the mouth's openness, most closed first. (Shapes are in the head frame, so a moderate turn does not
    change them; a large one distorts MediaPipe's mesh.)

    Args:
        shapes: (N, 468, >=2) head-frame shapes or landmarks (y down).
        euler: (N, 3) yaw, pitch, roll in degrees.
        count: how many frames to return (capped by N).
    Returns:
        (min(count, N),) frame indices, most neutral first.
    """
    mouth, eyes = openness(shapes, MOUTH), openness(shapes, EYES)
    turn = np.abs(euler[:, :2] - np.median(euler[:, :2], 0)).sum(1)
    passed_over = (eyes < BLINK_FRACTION * np.median(eyes)) | (turn > REST_TURN_DEG)
    order = np.lexsort((mouth, passed_over))  # eligible frames first, then by mouth openness
    return order[:max(1, min(count, len(order)))]


def _interpolate(values: np.ndarray, known: np.ndarray) -> np.ndarray:
    """Fill rows where ``known`` is False by linear interpolation over the frame index (held at the ends)."""
    out = values.copy()
    idx = np.arange(len(values))
    for c in range(values.shape[1]):
        out[~known, c] = np.interp(idx[~known], idx[known], values[known, c])
    return out


def _interpolate_rotations(rot: np.ndarray, known: np.ndarray) -> np.ndarray:
    idx = np.arange(len(rot))
    k = idx[known]
    if len(k) == 1:
        return np.repeat(rot[known], len(rot), 0)
    q = np.clip(idx, k[0], k[-1]).astype(np.float64)
    return Slerp(k, Rotation.from_matrix(rot[known]))(q).as_matrix()


def _align(shape: np.ndarray, targets: np.ndarray, weights: np.ndarray):
    s, r, t = weighted_procrustes(shape, targets, weights)
    return s, r, t, invert_similarity(targets, s, r, t)


def fit_landmarks(landmarks: np.ndarray, tracked: np.ndarray, fps: float, expression_dims: int = 32,
                  expression_reg: float = 1e-3, identity_frames: int = 100, smooth: float = 1.0,
                  iterations: int = 2, train_fraction: float = 1.0) -> tuple[SubjectModel, FrameParams]:
    """Fit the face model to a video's landmarks.

    Args:
        landmarks: (N, 478, 3) crop-normalised landmarks (rows of untracked frames are ignored).
        tracked: (N,) bool, True where a face was found; at least one frame.
        fps: frame rate (for smoothing).
        expression_dims: K.
        expression_reg: ridge weight of the expression solve (relative).
        identity_frames: how many of the most neutral training frames define the neutral shape (per-vertex
            median; at most a tenth of the training frames).
        smooth: smoothing strength (0 = off).
        iterations: alternations of the rigid fit (Eq. 1) and the expression solve (Eq. 2).
        train_fraction: the first ``round(train_fraction * N)`` frames are the training split: only they
            shape the neutral, the basis and the coefficient statistics (the rest stays held out).
    Returns:
        the subject model (without texture) and the per-frame parameters (all N frames).
    """
    tracked = np.asarray(tracked, bool)
    obs = landmarks[tracked]
    pts = obs[:, :NUM_POINTS]
    w = point_weights()
    # Training rows among the tracked ones (at least one, so that a tiny clip still fits).
    train = np.arange(len(landmarks))[tracked] < max(1, round(train_fraction * len(landmarks)))
    train[0] = True
    _, rc, _, aligned = _align(canonical_mesh().vertices, pts, w)
    rest = rest_frames(aligned[train], euler_degrees(rc[train]), min(identity_frames, max(1, train.sum() // 10)))
    neutral = np.median(aligned[train][rest], axis=0)
    s, r, t = fit_pose_2d(neutral, pts, w)
    basis, _ = learn_basis(invert_similarity(pts, s, r, t)[train] - neutral, expression_dims)
    s, r, t, coeffs, gaze = _fit_frames(obs, neutral, basis, expression_reg, iterations, first_pose=(s, r, t))
    params = _fill_and_smooth(tracked, s, r, t, coeffs, gaze, fps, smooth)
    seen = coeffs[train]
    subject = SubjectModel(neutral, basis, np.sqrt((seen ** 2).mean(0)), seen.min(0), seen.max(0))
    return subject, params


def fit_to_subject(landmarks: np.ndarray, tracked: np.ndarray, subject: SubjectModel, fps: float,
                   expression_reg: float = 1e-3, smooth: float | np.ndarray = 1.0,
                   iterations: int = 2) -> FrameParams:
    """Fit a known subject's face model (its neutral shape and basis, unchanged) to a video's landmarks.

    The same per-frame solve, gap filling and smoothing as :func:`fit_landmarks` (used for the subject's
    own new recordings, whose motion is coded in the subject's basis). Arguments as there, but ``smooth``
    may also be one strength per channel (:func:`channel_strengths`).
    """
    tracked = np.asarray(tracked, bool)
    s, r, t, coeffs, gaze = _fit_frames(landmarks[tracked], subject.neutral, subject.basis, expression_reg,
                                        iterations)
    return _fill_and_smooth(tracked, s, r, t, coeffs, gaze, fps, smooth)


def _fit_frames(obs: np.ndarray, neutral: np.ndarray, basis: np.ndarray, reg: float, iterations: int,
                first_pose: tuple | None = None):
    """Pose (Eq. 1) and expression (Eq. 2), alternated, and gaze, for (M, 478, 3) tracked landmarks.

    ``first_pose``: the first pass's pose fit to the neutral shape, when the caller has it already.
    Returns (M,) scales, (M, 3, 3) rotations, (M, 3) translations, (M, K) coefficients, (M, 4) gaze."""
    pts, w = obs[:, :NUM_POINTS], point_weights()
    shape = neutral
    for i in range(iterations):  # fit the pose to the current shape, then the expression to the aligned points
        s, r, t = first_pose if i == 0 and first_pose is not None else fit_pose_2d(shape, pts, w)
        aligned = invert_similarity(pts, s, r, t)
        coeffs = solve_coefficients(aligned - neutral, basis, reg=reg)
        shape = neutral + np.einsum("nk,kpc->npc", coeffs, basis)
    return s, r, t, coeffs, gaze_offsets(aligned, invert_similarity(obs, s, r, t))


def _fill_and_smooth(tracked: np.ndarray, s, r, t, coeffs, gaze, fps: float,
                     smooth: float | np.ndarray) -> FrameParams:
    """Per-frame parameters of the tracked frames -> all N frames: gaps interpolated, then smoothed
    (``smooth``: one strength, or one per channel as :func:`channel_strengths` gives)."""
    n = len(tracked)

    def full(a: np.ndarray) -> np.ndarray:
        out = np.zeros((n, *a.shape[1:]))
        out[tracked] = a
        return out

    rot = _interpolate_rotations(full(r), tracked)
    flat = _interpolate(np.concatenate([np.log(full(s) + (~tracked))[:, None], full(t), full(coeffs),
                                        full(gaze)], 1), tracked)
    # Smooth rotations as rotation vectors relative to the median pose (well inside +-180 deg).
    ref = Rotation.from_matrix(rot).mean()
    rotvec = (ref.inv() * Rotation.from_matrix(rot)).as_rotvec()
    both = smooth_offline(np.concatenate([rotvec, flat], 1), fps, smooth)
    rot = (ref * Rotation.from_rotvec(both[:, :3])).as_matrix()
    k = coeffs.shape[1]
    return FrameParams(tracked, np.exp(both[:, 3]), rot, both[:, 4:POSE_DIMS], both[:, POSE_DIMS:POSE_DIMS + k],
                       both[:, POSE_DIMS + k:])


def channel_strengths(k: int, pose: float, expression: float, gaze: float) -> np.ndarray:
    """(POSE_DIMS + k + GAZE_DIMS,) One-Euro strength of each channel a fit smooths, in the order of its
    parameter vector: the pose (rotation 3, log scale 1, translation 3), the k expression coefficients,
    then the gaze."""
    return np.concatenate([np.full(POSE_DIMS, float(pose)), np.full(k, float(expression)),
                           np.full(GAZE_DIMS, float(gaze))])


def reprojection_error(subject: SubjectModel, params: FrameParams, landmarks: np.ndarray) -> np.ndarray:
    """(N,) mean 2D distance between the fitted model points and the 468 landmarks, crop-normalised
    (multiply by a render size for pixels); NaN for untracked frames."""
    d = np.linalg.norm(params.points(subject)[..., :2] - landmarks[:, :NUM_POINTS, :2], axis=-1).mean(-1)
    return np.where(params.tracked, d, np.nan)


FOREHEAD_MARGIN = 0.5
"""Steps of the mesh (about 0.8 cm) the fitted forehead band stays inside the head's outline."""
FOREHEAD_QUANTILE = 0.1
"""Which quantile over the sampled frames of where the head's outline lies sets the band's reach: the band stays
on the person in nine frames in ten even where the outline moves with the hair or the segmentation."""


def outline_reach(masks: np.ndarray, params: FrameParams, subject: SubjectModel) -> np.ndarray:
    """(M, B) how far out (in steps of the mesh) each forehead-band arc point can be carried before it leaves
    the person, per frame: the last reach, in tenths of a step up to ``FOREHEAD_REACH_RANGE[1]`` plus the
    margin, whose point lies on ``masks`` (M, S, S) > 0.5; the arc point itself off the person gives 0.

    ``params`` are the M frames' crop-normalised parameters (the masks cover the same crop, S pixels a side).
    """
    size = masks.shape[-1]
    shapes = subject.shape(params.expression)
    arc = shapes[:, list(FOREHEAD_ARC)]
    one_step = np.einsum("bp,npc->nbc", forehead_band((1.0,) * len(FOREHEAD_ARC)), shapes)
    # A similarity is affine, so the image of arc + r * step is the image of arc plus r times that of the step.
    a = apply_similarity(arc, params.scale, params.rotation, params.translation)[..., :2] * size
    b = apply_similarity(one_step, params.scale, params.rotation, params.translation)[..., :2] * size
    reaches = np.arange(0.0, FOREHEAD_REACH_RANGE[1] + FOREHEAD_MARGIN + 1e-9, 0.1)
    pts = a[:, :, None] + reaches[:, None] * (b - a)[:, :, None]  # (M, B, R, 2) pixels
    xy = np.round(pts - 0.5).astype(int)  # pixel centres at +0.5
    inside = ((xy >= 0) & (xy < size)).all(-1)
    xy = np.clip(xy, 0, size - 1)
    frame = np.arange(len(masks))[:, None, None]
    on = inside & (masks[frame, xy[..., 1], xy[..., 0]] > 0.5)
    # Index of the first sample off the person (R when none is): the reach just before it.
    first_off = np.where(on.all(-1), len(reaches), np.argmin(on, axis=-1))
    return np.where(first_off > 0, reaches[np.maximum(first_off - 1, 0)], 0.0)


def fit_forehead_reach(masks: np.ndarray, params: FrameParams, subject: SubjectModel) -> tuple[float, ...]:
    """The forehead band's reach at each arc point, fitted to the subject's own head outline: the
    ``FOREHEAD_QUANTILE`` over frames of :func:`outline_reach`, less ``FOREHEAD_MARGIN``, within
    ``FOREHEAD_REACH_RANGE``, and no further than the mean with its neighbours (no spikes along the band).

    Args: masks (M, S, S) person masks in [0, 1] of M training frames; params their crop-normalised parameters.
    """
    reach = np.quantile(outline_reach(masks, params, subject), FOREHEAD_QUANTILE, axis=0) - FOREHEAD_MARGIN
    reach = np.clip(reach, *FOREHEAD_REACH_RANGE)
    padded = np.pad(reach, 1, mode="edge")
    reach = np.minimum(reach, 0.25 * padded[:-2] + 0.5 * padded[1:-1] + 0.25 * padded[2:])
    return tuple(round(float(r), 3) for r in reach)
