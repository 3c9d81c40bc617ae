"""Retargeting: a driver's tracked motion -> the avatar's per-frame face-model parameters.

The one definition of how an avatar follows someone else, used by ``reenact``, motion templates, ``live``,
``serve`` and ``evaluate``. Offline and live differ only in where the driver's rest comes from (the whole
video, or the frames seen so far) and in the smoothing (zero-lag, or causal).

1. **Rest** (automatic neutral): each side's most neutral frames (:func:`~.fit.rest_frames`: lips closed,
   eyes open, usual head pose). Expression and pose are transferred as changes from the driver's rest,
   applied to the avatar's rest, so a driver that starts mid-word does not shut the avatar's lips.
2. **Expression**: the driver's head-frame deformation from its rest, solved into the avatar's basis by
   weighted, regularised least squares that favour the points people look at (lips, eyelids, brows)
   and trust x, y more than MediaPipe's depth.
3. **Openness**: the avatar's signed lip gap and eyelid gap follow the driver's change of gap / width (a
   ratio that compares across people), within the range the avatar saw in training.
4. **Limits**: the expression is scaled back *along its own direction* (never clipped per coefficient)
   when it leaves the avatar's training range (box and ellipsoid, soft); yaw, pitch, roll, position and
   size are softly limited to the avatar's training range. StyleAvatar cannot render what it never saw.
5. **Smoothing**: the same One-Euro filter on the output parameters, run forwards and backwards
   (offline) or forwards only (live); the expression gets a quarter of the head's strength
   (``EXPRESSION_SMOOTHING``) so blinks and syllables keep their depth.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.linalg import cho_factor, cho_solve
from scipy.spatial.transform import Rotation

from ..config import Openness, TransferOptions
from ..errors import UserError
from .face_model import BROWS, EYES, INNER_LIP_RING, LEFT_EYE_RING, MOUTH, NUM_POINTS, \
    OUTER_LIP_RING, RIGHT_EYE_RING, openness
from .fit import POSE_DIMS, FrameParams, Pose, SubjectModel, channel_strengths, rest_frames
from .procrustes import euler_degrees, rotation_from_euler
from .smoothing import OneEuroFilter, smooth_offline, strength_to_params

FEATURE_WEIGHT = 8.0
"""Weight of a lip, eyelid or brow point in the expression solve, against 1 for every other point."""
DEPTH_WEIGHT = 0.25
"""Weight of the depth (z) of a point against its x and y (MediaPipe's depth is its least reliable axis)."""
EXPRESSION_REG = 0.01
"""Ridge weight of the expression solve, in the avatar's normalised units, relative to the data term."""
REST_FRACTION = 0.1
"""Share of a video's frames (at most ``REST_FRAMES``) averaged into its rest."""
REST_FRAMES = 100
KNEE = 0.2
"""Soft limits act over the last fifth of an allowed range (identity below it, tanh above)."""
POSE_MARGIN_DEG = 10.0
"""Yaw, pitch and roll follow the driver up to the edge of the avatar's training range, then ease to at
most this many degrees beyond it."""
TRANSLATION_MARGIN = 0.05
"""Crop-normalised shift eased into beyond the training range (5% of the crop)."""
SCALE_MARGIN = 0.1
"""Log-scale (about 10% of size) eased into beyond the training range."""
SMOOTH_UNITS = (0.05, 0.02, 0.01, 0.05)
"""One-Euro units of rotation (rad), log scale, translation (crop) and gaze (eye widths); expression
coefficients are smoothed in units of the avatar's spread."""
EXPRESSION_SMOOTHING = 0.25
"""Strength of the expression coefficients' smoothing as a share of ``--smooth`` (pose and gaze take all of
it). A blink lasts a few frames and a syllable a few more: at the head's strength the filter drew ten of eleven
drivers' blinks at x0.79-0.93 of their depth and moved the lips about half as far per frame as unsmoothed; at
a quarter of it the blinks keep x0.90-1.04, the lips 0.75-0.92 of their unsmoothed steps, and the retargeted
mesh still jitters at most 0.67x the driver's (BENCHMARKS.md, "driving's smoothing")."""


def point_axis_weights() -> np.ndarray:
    """(468, 3) weights of the expression solve: ``FEATURE_WEIGHT`` on lips, eyelids and brows, 1
    elsewhere; z times ``DEPTH_WEIGHT``."""
    w = np.ones(NUM_POINTS)
    features = [*INNER_LIP_RING, *OUTER_LIP_RING, *RIGHT_EYE_RING, *LEFT_EYE_RING, *BROWS[0], *BROWS[1]]
    w[features] = FEATURE_WEIGHT
    return w[:, None] * np.array([1.0, 1.0, DEPTH_WEIGHT])


def soft_clip(x: np.ndarray, lo: np.ndarray, hi: np.ndarray, knee: np.ndarray | float | None = None) -> np.ndarray:
    """Identity inside [lo + knee, hi - knee], easing (tanh) towards lo and hi over the last ``knee``
    (default: ``KNEE`` of the width); never outside [lo, hi]."""
    knee = np.maximum((np.asarray(hi) - lo) * KNEE if knee is None else knee, 1e-9)
    a, b = lo + knee, hi - knee
    out = np.where(x > b, b + knee * np.tanh((x - b) / knee), x)
    return np.where(x < a, a - knee * np.tanh((a - x) / knee), out)


def soft_limit_ratio(t: np.ndarray) -> np.ndarray:
    """Factor that scales a vector of size ``t`` (in units of the allowed size) to its soft-limited size:
    1 below ``1 - KNEE``, then easing so that the size never exceeds 1."""
    a = 1 - KNEE
    soft = a + KNEE * np.tanh((t - a) / KNEE)
    return np.where(t > a, soft / np.maximum(t, 1e-9), 1.0)


SPAN_PERCENTILES = (2.0, 98.0)
"""A driver's openness span: these percentiles over its frames (robust to a few mistracked frames)."""


@dataclass(frozen=True)
class Rest:
    """A face at rest (its head-frame shape, pose and openness), with the span of its openness."""

    shape: np.ndarray
    """(468, 3) head-frame shape."""
    pose: Pose
    mouth: float
    eyes: float
    mouth_span: tuple[float, float] = (-np.inf, np.inf)
    """Low and high mouth openness over the sequence (``SPAN_PERCENTILES``)."""
    eyes_span: tuple[float, float] = (-np.inf, np.inf)
    """Low and high eye openness over the sequence."""

    @classmethod
    def of_frames(cls, shapes: np.ndarray, params: FrameParams, neutral: str = "auto") -> "Rest":
        """The rest of a sequence: 'auto' (mean of its most neutral tracked frames; pose: median over all
        tracked frames), 'first' (the first tracked frame) or a frame number (that frame)."""
        tracked = np.flatnonzero(params.tracked) if params.tracked.any() else np.arange(len(params))
        if neutral == "auto":
            count = min(REST_FRAMES, max(1, int(len(tracked) * REST_FRACTION)))
            idx = tracked[rest_frames(shapes[tracked], params.euler()[tracked], count)]
            shape, pose = shapes[idx].mean(0), Pose.median(params, tracked)
        else:
            i = int(tracked[0]) if neutral == "first" else _frame_number(neutral, len(params))
            shape, pose = shapes[i], Pose.of_frame(params, i)
        spans = [tuple(np.percentile(openness(shapes[tracked], parts), SPAN_PERCENTILES)) for parts in (MOUTH, EYES)]
        return cls(shape, pose, float(openness(shape, MOUTH)), float(openness(shape, EYES)), *spans)


def _frame_number(text: str, n: int) -> int:
    try:
        i = int(text)
    except ValueError:
        raise UserError(f"--neutral must be 'auto', 'first' or a frame number, got {text!r}") from None
    if not 0 <= i < n:
        raise UserError(f"--neutral frame {i} is outside the driver's {n} frames")
    return i


@dataclass(frozen=True)
class AvatarRange:
    """What the avatar saw in training: its rest, and the range of its expression, openness and pose."""

    rest: Rest
    rest_coeffs: np.ndarray
    """(K,) expression coefficients of the avatar's rest."""
    spread: np.ndarray
    """(K,) root-mean-square of each coefficient's change from the rest over the training frames."""
    upper: np.ndarray
    """(K,) largest increase of each coefficient from the rest seen in training (> 0)."""
    lower: np.ndarray
    """(K,) largest decrease of each coefficient from the rest seen in training (> 0)."""
    radius: float
    """Largest size of an expression change seen in training, in units of ``spread``."""
    mouth: tuple[float, float]
    """Smallest and largest mouth openness seen in training (in :func:`openness_gradient`'s linear model, as
    is the rest's)."""
    eyes: tuple[float, float]
    """Smallest and largest eye openness seen in training."""
    euler: np.ndarray
    """(2, 3) smallest and largest yaw, pitch, roll (degrees) seen in training."""
    translation: np.ndarray
    """(2, 3) smallest and largest crop-normalised translation."""
    log_scale: tuple[float, float]
    """Smallest and largest log of the crop-normalised scale."""

    @classmethod
    def of_training(cls, subject: SubjectModel, params: FrameParams, indices) -> "AvatarRange":
        """From the avatar's fitted parameters over its training frames ``indices``."""
        p = params.select(np.asarray(indices))
        p = p.select(p.tracked) if p.tracked.any() else p
        shapes = subject.shape(p.expression)
        count = min(REST_FRAMES, max(1, int(len(p) * REST_FRACTION)))
        rest_coeffs = p.expression[rest_frames(shapes, p.euler(), count)].mean(0)
        change = p.expression - rest_coeffs
        spread = np.sqrt((change ** 2).mean(0)) + 1e-6
        # Openness in the linear model that retargeting steers with (exact at the rest, close elsewhere).
        (am, bm), (ae, be) = openness_gradient(subject, MOUTH), openness_gradient(subject, EYES)
        mouth, eyes = p.expression @ am + bm, p.expression @ ae + be
        rest = Rest(subject.shape(rest_coeffs[None])[0], Pose.median(p), float(rest_coeffs @ am + bm),
                    float(rest_coeffs @ ae + be))
        euler, log_scale = p.euler(), np.log(p.scale)
        return cls(rest, rest_coeffs, spread, np.maximum(change.max(0), spread), np.maximum(-change.min(0), spread),
                   float(np.linalg.norm(change / spread, axis=1).max()), (float(mouth.min()), float(mouth.max())),
                   (float(eyes.min()), float(eyes.max())), np.stack([euler.min(0), euler.max(0)]),
                   np.stack([p.translation.min(0), p.translation.max(0)]),
                   (float(log_scale.min()), float(log_scale.max())))


def openness_gradient(subject: SubjectModel, parts) -> tuple[np.ndarray, float]:
    """Openness as a linear function of the coefficients: (K,) gradient a and offset b (open = a.c + b).

    Widths are taken from the neutral shape (they barely change) and the head frame is upright, so the
    gap ratio is linear in c.
    """
    grads, offsets = [], []
    for (upper, lower), (c0, c1) in parts:
        width = np.linalg.norm(subject.neutral[c0] - subject.neutral[c1])
        grads.append((subject.basis[:, lower, 1] - subject.basis[:, upper, 1]) / width)
        offsets.append((subject.neutral[lower, 1] - subject.neutral[upper, 1]) / width)
    return np.mean(grads, axis=0), float(np.mean(offsets))


def meet_openness(coeffs: np.ndarray, subject: SubjectModel, targets: list[tuple[tuple, np.ndarray]],
                  spread: np.ndarray | None = None) -> np.ndarray:
    """Change each row of (N, K) coefficients the least (in units of ``spread``) so that the openness of
    each (parts, (N,) target) pair is met at once."""
    if not targets:
        return coeffs
    d = np.ones(coeffs.shape[1]) if spread is None else spread ** 2  # metric of the change
    linear = [openness_gradient(subject, parts) for parts, _ in targets]
    grads, offsets = np.stack([a for a, _ in linear]), np.array([b for _, b in linear])  # (M, K), (M,)
    miss = np.stack([t for _, t in targets], 1) - (coeffs @ grads.T + offsets)  # (N, M)
    # Least-norm solution of grads @ delta = miss in the metric diag(1/d): delta = D G^T (G D G^T)^-1 miss.
    gram = (grads * d) @ grads.T + 1e-12 * np.eye(len(grads))
    return coeffs + np.linalg.solve(gram, miss.T).T @ (grads * d)


def apply_openness(coeffs: np.ndarray, subject: SubjectModel,
                   controls: list[tuple[tuple, Openness | None]]) -> np.ndarray:
    """The user's eye/mouth controls: (parts, control) pairs, e.g. (EYES, Openness(0.3)); None is skipped."""
    targets = []
    for parts, c in controls:
        if c is None:
            continue
        a, b = openness_gradient(subject, parts)
        current = coeffs @ a + b
        targets.append((parts, current * c.value if c.multiplier else np.full(len(coeffs), c.value)))
    return meet_openness(coeffs, subject, targets)


class Retargeter:
    """Maps driver frames (head-frame shapes and poses) to the avatar's parameters, frame by frame."""

    def __init__(self, subject: SubjectModel, avatar: AvatarRange, options: TransferOptions = TransferOptions()):
        self.subject, self.avatar, self.options = subject, avatar, options
        k = subject.basis.shape[0]
        b = subject.basis.reshape(k, -1)
        self.bw = b * point_axis_weights().reshape(-1)  # (K, 1404) = B^T W
        normal = self.bw @ b.T  # (K, K) = B^T W B
        prior = (avatar.spread.mean() / avatar.spread) ** 2  # cheap to move the components that move a lot
        normal[np.diag_indices(k)] += EXPRESSION_REG * np.trace(normal) / k * prior
        self.factor = cho_factor(normal)

    def expression(self, deformation: np.ndarray, mouth: np.ndarray, eyes: np.ndarray, rest: Rest) -> np.ndarray:
        """(N, K) avatar coefficients from the driver's (N, 468, 3) deformation from its rest and its (N,)
        mouth and eye openness."""
        opts, av = self.options, self.avatar
        rhs = deformation.reshape(len(deformation), -1) * opts.expression_scale @ self.bw.T
        coeffs = av.rest_coeffs + self._limit(cho_solve(self.factor, rhs.T).T)
        targets = [(MOUTH, self._openness(mouth, rest.mouth, rest.mouth_span, av.rest.mouth, av.mouth)),
                   (EYES, self._openness(eyes, rest.eyes, rest.eyes_span, av.rest.eyes, av.eyes))]
        coeffs = meet_openness(coeffs, self.subject, targets, av.spread)
        return apply_openness(coeffs, self.subject, [(EYES, opts.eyes), (MOUTH, opts.mouth)])

    def _openness(self, now: np.ndarray, was: float, span: tuple[float, float], base: float,
                  seen: tuple[float, float]) -> np.ndarray:
        """The avatar's (N,) openness target: its rest ``base`` plus the driver's change from its rest ``was``,
        scaled down (each way on its own) where the driver's span is wider than the avatar's ``seen`` range,
        then eased into at most ``clamp_margin`` of that range beyond it."""
        change = (now - was) * self.options.expression_scale
        up = min(1.0, (seen[1] - base) / max(span[1] - was, 1e-6))
        down = min(1.0, (base - seen[0]) / max(was - span[0], 1e-6))
        pad = self.options.clamp_margin * (seen[1] - seen[0])
        return soft_clip(base + change * np.where(change > 0, up, down), seen[0] - pad, seen[1] + pad, pad)

    def _limit(self, change: np.ndarray) -> np.ndarray:
        """Scale each row of (N, K) changes from the rest back along itself into the training range."""
        av, m = self.avatar, 1 + self.options.clamp_margin
        box = np.where(change > 0, change / av.upper, -change / av.lower).max(1) / m
        ellipsoid = np.linalg.norm(change / av.spread, axis=1) / (av.radius * m)
        return change * soft_limit_ratio(np.maximum(box, ellipsoid))[:, None]

    def pose(self, params: FrameParams, rest: Rest) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(N,) scale, (N, 3, 3) rotation, (N, 3) translation of the avatar: the driver's change from its
        rest pose applied to the avatar's (or the driver's absolute pose), softly limited."""
        av, ref, d = self.avatar, self.avatar.rest.pose, rest.pose
        if self.options.relative:
            rotation = params.rotation @ d.rotation.T @ ref.rotation
            ratio = ref.scale / d.scale
            scale = params.scale * ratio
            translation = ref.translation + (params.translation - d.translation) * ratio
        else:
            rotation, scale, translation = params.rotation, params.scale, params.translation
        euler = soft_clip(euler_degrees(rotation), av.euler[0] - POSE_MARGIN_DEG, av.euler[1] + POSE_MARGIN_DEG,
                          POSE_MARGIN_DEG)
        euler = euler + np.asarray(self.options.pose_offset)[None]
        translation = soft_clip(translation, av.translation[0] - TRANSLATION_MARGIN,
                                av.translation[1] + TRANSLATION_MARGIN, TRANSLATION_MARGIN)
        log_scale = soft_clip(np.log(scale), av.log_scale[0] - SCALE_MARGIN, av.log_scale[1] + SCALE_MARGIN,
                              SCALE_MARGIN)
        return np.exp(log_scale), rotation_from_euler(euler), translation

    def frames(self, shapes: np.ndarray, params: FrameParams, rest: Rest) -> FrameParams:
        """The avatar's parameters for N driver frames (no smoothing).

        Args:
            shapes: (N, 468, 3) the driver's head-frame shapes.
            params: the driver's N frames (pose, gaze and ``tracked`` are used; expression is not).
            rest: the driver's rest.
        """
        coeffs = self.expression(shapes - rest.shape, openness(shapes, MOUTH), openness(shapes, EYES), rest)
        scale, rotation, translation = self.pose(params, rest)
        return FrameParams(params.tracked.copy(), scale, rotation, translation, coeffs, params.gaze.copy())

    # ----------------------------------------------------------------------------- smoothing
    def to_vector(self, p: FrameParams) -> np.ndarray:
        """(N, D) parameters in One-Euro units (rotation relative to the avatar's rest pose): columns
        [0, POSE_DIMS) the pose (rotation vector 3, log scale 1, translation 3), then the K expression
        coefficients, then the gaze (dx, dy per iris)."""
        ref = Rotation.from_matrix(self.avatar.rest.pose.rotation)
        rotvec = (Rotation.from_matrix(p.rotation) * ref.inv()).as_rotvec()
        r, s, t, g = SMOOTH_UNITS
        return np.concatenate([rotvec / r, np.log(p.scale)[:, None] / s, p.translation / t,
                               (p.expression - self.avatar.rest_coeffs) / self.avatar.spread, p.gaze / g], 1)

    def strengths(self, smooth: float, expression_share: float = EXPRESSION_SMOOTHING) -> np.ndarray:
        """(D,) One-Euro strength of each channel of :meth:`to_vector`: ``smooth`` for pose and gaze,
        ``smooth * expression_share`` for the expression coefficients."""
        return channel_strengths(len(self.avatar.spread), smooth, smooth * expression_share, smooth)

    def smooth(self, out: FrameParams, fps: float, smooth: float,
               expression_share: float = EXPRESSION_SMOOTHING) -> FrameParams:
        """Zero-lag smoothing of a whole retargeted sequence at :meth:`strengths` (``smooth`` 0: ``out``)."""
        if smooth <= 0:
            return out
        v = smooth_offline(self.to_vector(out), fps, self.strengths(smooth, expression_share), units=1.0)
        return self.from_vector(v, out.tracked)

    def from_vector(self, v: np.ndarray, tracked: np.ndarray) -> FrameParams:
        """Inverse of :meth:`to_vector`."""
        r, s, t, g = SMOOTH_UNITS
        k = len(self.avatar.spread)
        ref = Rotation.from_matrix(self.avatar.rest.pose.rotation)
        rotation = (Rotation.from_rotvec(v[:, :3] * r) * ref).as_matrix()
        return FrameParams(tracked.copy(), np.exp(v[:, 3] * s), rotation, v[:, 4:POSE_DIMS] * t,
                           self.avatar.rest_coeffs + v[:, POSE_DIMS:POSE_DIMS + k] * self.avatar.spread,
                           v[:, POSE_DIMS + k:] * g)


def retarget(shapes: np.ndarray, params: FrameParams, fps: float, subject: SubjectModel, avatar: AvatarRange,
             options: TransferOptions = TransferOptions()) -> FrameParams:
    """Offline retargeting of a whole driver sequence, smoothed without lag.

    Args:
        shapes: (N, 468, 3) the driver's head-frame shapes.
        params: the driver's N frames (crop-normalised pose, gaze).
        fps: the driver's frame rate (for smoothing).
        subject: the avatar's face model; avatar: what it saw in training.
    Returns:
        the avatar's N frames.
    """
    rt = Retargeter(subject, avatar, options)
    return rt.smooth(rt.frames(shapes, params, Rest.of_frames(shapes, params, options.neutral)), fps, options.smooth)


class LiveRetargeter:
    """Causal retargeting, one frame at a time: the driver's rest is refined from the frames seen during the
    first ``calibration_s`` seconds (same rule as offline; with ``neutral='first'`` it is the first frame, and
    a frame number counts as 'auto'), then held; smoothing is the forward pass only."""

    def __init__(self, subject: SubjectModel, avatar: AvatarRange, fps: float,
                 options: TransferOptions = TransferOptions(), calibration_s: float = 10.0, refresh: int = 15):
        self.rt = Retargeter(subject, avatar, options)
        self.options = options
        self.capacity, self.refresh = max(1, int(calibration_s * fps)), refresh
        self.shapes: list[np.ndarray] = []
        self.params: list[FrameParams] = []
        self.rest: Rest | None = None
        self.filter = (OneEuroFilter(fps, *strength_to_params(self.rt.strengths(options.smooth)))
                       if options.smooth > 0 else None)

    def _update_rest(self, shape: np.ndarray, p: FrameParams) -> None:
        if len(self.shapes) >= self.capacity:
            return
        self.shapes.append(shape)
        self.params.append(p)
        if self.rest is None or len(self.shapes) % self.refresh == 0 or len(self.shapes) == self.capacity:
            neutral = self.options.neutral if self.options.neutral in ("auto", "first") else "auto"
            self.rest = Rest.of_frames(np.stack(self.shapes), FrameParams.concat(self.params), neutral)

    def __call__(self, shape: np.ndarray, p: FrameParams) -> FrameParams:
        """The avatar's parameters for one driver frame: (468, 3) head-frame shape and its 1-frame params."""
        self._update_rest(shape, p)
        out = self.rt.frames(shape[None], p, self.rest)
        if self.filter is None:
            return out
        return self.rt.from_vector(self.filter(self.rt.to_vector(out)[0])[None], out.tracked)
