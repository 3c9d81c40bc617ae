"""Typed, frozen configuration dataclasses with one docstring per field, and named presets.

Every field's docstring (the string literal under it) is the single source of the command-line help,
so a field is documented once. ``to_json``/``from_dict`` give the resolved config written beside every
output.
"""
from __future__ import annotations

import ast
import dataclasses
import functools
import inspect
import json
import math
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

from .errors import UserError

T = TypeVar("T")


@dataclass(frozen=True)
class PreprocessConfig:
    """How a portrait video becomes a tracked, rendered training dataset (paper Sec. 3.1)."""

    size: int = 512
    """Side of the square output frames and masks, in pixels (the crop is resized to it)."""
    render_size: int = 256
    """Side of the square UV and texture renders, in pixels; they cover the same crop as the frames."""
    max_frames: int | None = None
    """Keep at most this many frames from the start of the video (None: all)."""
    fps: float | None = None
    """Resample the video to this constant frame rate by picking the nearest frames (None: keep every frame)."""
    smooth: float = 0.0
    """Temporal smoothing strength of the tracked parameters: 0 (the default) turns it off, 1 is light, 2-4
    strong. Off, each frame's render shows its own blink and lip gap: on anchor_71s the avatar's held-out eyes
    and mouth then follow the person at 0.96 / 0.93 correlation (0.90 / 0.83 at 1), at equal PSNR per
    iteration (BENCHMARKS.md, "quality per CPU-minute"). Driving smooths the driver's motion on its own."""
    portrait_scale: float = 2.2
    """Side of the portrait region around the face, as a multiple of the median face size."""
    crop_scale: float = 1.5
    """Enlargement of the portrait region so the head can move (StyleAvatar uses 1.5)."""
    min_tracked_fraction: float = 0.8
    """Stop with an error when fewer than this fraction of frames have a face."""
    min_face_px: int = 64
    """Smallest median face size (landmark box side, in source pixels) that is accepted."""
    max_faces: int = 2
    """How many faces the landmark detector looks for; the largest is the subject, then followed by overlap."""
    expression_dims: int = 32
    """Number K of expression coefficients (PCA basis learnt from the subject's own video)."""
    expression_reg: float = 1e-3
    """Ridge weight of the expression least squares, relative to the mean diagonal of the normal matrix."""
    identity_frames: int = 100
    """Most frames whose per-vertex median defines the subject's neutral face shape: the most neutral training
    frames (lips closed, eyes open, usual head pose), at most a tenth of them."""
    texture_size: int = 256
    """Side of the subject's UV texture, in texels."""
    texture_frames: int = 24
    """Number of frontal, near-neutral frames blended into the subject's UV texture."""
    rasterizer: Literal["auto", "gl", "torch"] = "auto"
    """Rasteriser backend: 'gl' (moderngl, headless EGL), 'torch' (reference), or 'auto' (gl if it works)."""
    jpeg_quality: int = 95
    """JPEG quality of the stored frames (1-100)."""
    preview: bool = True
    """Write track.mp4 (frame | texture render | UV render | mask) to check the tracking by eye."""
    train_fraction: float = 0.8
    """Fraction of frames, from the start, in the train split; the rest is the held-out test split."""


PREPROCESS_PRESETS: dict[str, PreprocessConfig] = {
    "tiny": PreprocessConfig(size=128, render_size=64, texture_size=128, texture_frames=8, preview=False),
    "small": PreprocessConfig(size=256, render_size=128),
    "cpu": PreprocessConfig(),
    "paper": PreprocessConfig(size=1536, render_size=384, texture_size=512),
}
"""Named presets: ``tiny`` for tests, ``cpu`` (the default), ``paper`` (1536^2 crop: 1024^2 output + margin)."""


@functools.lru_cache(maxsize=None)
def field_docs(cls: type) -> dict[str, str]:
    """Map each field of a dataclass to the docstring written under it in the source."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    body = tree.body[0].body  # type: ignore[attr-defined]
    docs: dict[str, str] = {}
    for stmt, nxt in zip(body, body[1:]):
        if (isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name)
                and isinstance(nxt, ast.Expr) and isinstance(nxt.value, ast.Constant)
                and isinstance(nxt.value.value, str)):
            docs[stmt.target.id] = " ".join(nxt.value.value.split())
    return docs


def to_dict(cfg: Any) -> dict[str, Any]:
    """The config as a plain dict (JSON-ready)."""
    return dataclasses.asdict(cfg)


def to_json(cfg: Any) -> str:
    """The resolved config as indented JSON, with its class name."""
    return json.dumps({"class": type(cfg).__name__, **to_dict(cfg)}, indent=2) + "\n"


def from_dict(cls: type[T], data: dict[str, Any]) -> T:
    """Build ``cls`` from a dict, ignoring the ``class`` key and rejecting unknown fields."""
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = set(data) - names - {"class"}
    if unknown:
        raise ValueError(f"unknown {cls.__name__} fields: {sorted(unknown)}")
    return cls(**{k: v for k, v in data.items() if k in names})


@dataclass(frozen=True)
class ModelConfig:
    """Size of the StyleAvatar networks (paper Sec. 3.2-3.3); stored with every checkpoint."""

    output_size: int = 256
    """Side of the generated image in pixels (a multiple of 32). The feature window is output_size / 8."""
    canvas_scale: float = 1.5
    """Side of the whole crop (the canvas the sliding window moves over) as a multiple of the output side."""
    feature_channels: int = 32
    """Channels of the face, foreground and background feature maps that are blended (paper: 256)."""
    uv_size: int = 64
    """Side of the static face feature map in UV space (neural texture), in texels (paper: 128)."""
    max_channels: int = 128
    """Widest layer of the networks (paper: 512)."""
    channel_base: int = 4096
    """Channels of a layer at resolution r are min(max_channels, channel_base / r) (paper: 32768)."""
    render_depth: int = 3
    """Down-sampling steps of the render StyleUNet's encoder (canvas feature side must divide by 2^depth)."""
    image_depth: int = 2
    """Down-sampling steps of the image StyleUNet's encoder (skips at window, /2, /4 for 2)."""
    style_dim: int = 64
    """Dimension of the latent codes (mapping network width)."""
    mapping_layers: int = 4
    """Linear layers of the mapping networks."""
    frame_code_octaves: int = 32
    """Octaves of the frame code (paper: z_tmp) the network sees; the higher ones are zeroed. 32 gives every
    frame its own code, which the network can use to memorise that frame; fewer keep only slow drift (light,
    framing), octave k varying over about 10000 / 2^k frames; 0 gives every frame the identity's code only.
    The `cpu` and `small` presets use 0: an hour on anchor_71s scored 27.26 dB held-out against 26.45 with 32,
    and the mouth kept x0.83 of its range against x0.73 (BENCHMARKS.md, "the frame code"); the 10-minute demo
    scored 26.10 dB at 1030 iterations against 25.02 at 1052 (BENCHMARKS.md, "demo")."""
    disc_max_channels: int = 128
    """Widest layer of the discriminator."""
    noise: bool = True
    """Inject noise into the image decoder, sampled through the UV render so it moves with the face."""
    known_base: bool = False
    """Predict the image as a correction of what is already known: the texture render where the mesh covers
    the crop, blended over a narrow band inside the mesh's edge into a learnt background image (starting as
    the median training frame with the face inpainted). The correction's gain starts at 0, so the first
    iteration shows that composite."""
    render_crop: bool = False
    """Run the render StyleUNet on the window's box of the renders only, instead of on the whole canvas with
    zeros outside the box (the paper pads the box to the canvas). The box is all the network sees either way;
    cropped, the network costs (window / canvas)^2 of the canvas pass (0.44 at canvas_scale 1.5), its output is
    the window itself, and it moves with the window (the canvas pass sees where on the canvas the box lies).
    The CPU presets use it: a `cpu` training step of 2 frames cost 0.90 of the canvas pass's on an AVX2-only CPU,
    and the held-out PSNR per iteration was 0.25 dB higher at 5, 10 and 15 minutes and 0.45 dB at the hour,
    with the training frames lower (BENCHMARKS.md, "the render StyleUNet on the window's box"); ``small``'s
    10-minute demo scored 0.12 dB higher with 2 frames a step and 0.24 dB with 4 ("the demo on a slow AVX2 CPU")."""

    @property
    def window(self) -> int:
        """Side of the feature window (B, C, window, window) that the image StyleUNet decodes."""
        return self.output_size // 8

    @property
    def canvas(self) -> int:
        """Side of the canvas feature maps (foreground and background) covering the whole crop."""
        return round(self.window * self.canvas_scale)

    @property
    def render_size(self) -> int:
        """Side of the texture/UV render input covering the whole crop (twice the canvas feature side)."""
        return 2 * self.canvas

    @property
    def crop_size(self) -> int:
        """Side, in output pixels, of the whole crop (frames are resized to it for training)."""
        return self.canvas * 8

    def channels(self, res: int) -> int:
        """Channel count of a generator layer working at side ``res``."""
        return _channel_rule(self.channel_base, self.max_channels, res)

    def disc_channels(self, res: int) -> int:
        """Channel count of a discriminator layer working at side ``res``."""
        return _channel_rule(self.channel_base, self.disc_max_channels, res)

    def validate(self) -> None:
        if self.output_size % 32:
            raise ValueError(f"output_size must be a multiple of 32, got {self.output_size}")
        if self.canvas < self.window or (self.canvas - self.window) % 2:
            raise ValueError("canvas_scale must give a canvas at least as large as the window, with an even margin")
        if self.canvas % (2 ** self.render_depth) or self.window % (2 ** self.image_depth):
            raise ValueError("canvas / window sides must be divisible by 2^render_depth / 2^image_depth")
        if self.render_crop and self.window % (2 ** self.render_depth):
            raise ValueError("with render_crop the window side must be divisible by 2^render_depth")


def _channel_rule(base: int, widest: int, res: int) -> int:
    """StyleGAN's rule: channels fall as the side ``res`` grows (base / res), between 8 and ``widest``."""
    return max(8, min(widest, base // res))


def parse_ema_ramp(text: str) -> float:
    """'40' -> 40.0. The EMA's warm-up constant must be above 1: at 1 or below the average would start at its
    full decay and hold the random initial weights for thousands of iterations."""
    try:
        ramp = float(text)
    except ValueError:
        ramp = float("nan")
    if not ramp > 1:
        raise UserError(f"--ema-ramp must be a number above 1, got {text!r}")
    return ramp


def parse_fraction(text: str) -> float:
    """'0.3' -> 0.3: a fraction from 0 to 1 (``--lr-tail``, ``--lr-tail-floor``)."""
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0 <= value <= 1:
        raise UserError(f"expected a fraction from 0 to 1, got {text!r}")
    return value


def parse_vgg_crop(text: str) -> int | None:
    """'96' -> 96; '0' -> None (the whole image). A crop's side is a whole number of pixels, at least 32: VGG16
    halves it four times before its last features."""
    try:
        side = int(text)
    except ValueError:
        side = -1
    if side != 0 and side < 32:
        raise UserError(f"--vgg-crop must be a side in pixels of at least 32, or 0 for the whole image, got {text!r}")
    return side or None


@dataclass(frozen=True)
class TrainConfig:
    """How an avatar is trained (paper Sec. 3.4; defaults are the paper's)."""

    batch: int = 4
    """Frames per optimisation step (per process when distributed)."""
    half_batch_below: float = 0.0
    """Train a new run with half the batch where the start-up probe measures a half-batch step at no more than
    this fraction of a full one (0: always ``batch``; an explicit ``--batch`` is kept as given). Where a step
    barely shrinks with the batch, the full batch learns more per minute; where it shrinks by nearly half, the
    extra iterations win (BENCHMARKS.md, "half the batch on a slow AVX2 CPU"). The chosen batch is what
    config.json records."""
    lr: float = 2e-3
    """AdamW learning rate of the generator (and of the discriminator, unless ``gan_lr`` is set)."""
    gan_lr: float | None = None
    """Learning rate of both networks from ``gan_start`` on (None: ``lr`` throughout): the reconstruction-only
    start takes a higher rate than adversarial training does. With ``gan_weight`` 0 the generator's rate still
    drops to it at ``gan_start``."""
    lr_tail: float = field(default=0.0, metadata={"parse": parse_fraction, "metavar": "FRACTION"})
    """Fraction of the run's budget (its ``--minutes``, or its ``--iters``) at the end over which the generator's
    learning rate falls along a half cosine to ``lr_tail_floor`` times its value (0: a constant rate). Resuming
    with a larger budget starts the fall again at the new budget's end."""
    lr_tail_floor: float = field(default=0.1, metadata={"parse": parse_fraction, "metavar": "FRACTION"})
    """The learning rate at the end of the budget as a fraction of its value before ``lr_tail`` (0 to 1)."""
    beta1: float = 0.0
    """AdamW beta1."""
    beta2: float = 0.99
    """AdamW beta2."""
    weight_decay: float = 0.0
    """AdamW weight decay."""
    l1_weight: float = 1.0
    """Weight of the L1 image loss."""
    vgg_weight: float = 0.01
    """Weight of the VGG16 perceptual loss (sum of L1 distances of 5 feature levels)."""
    vgg_size: int | None = None
    """Compute the perceptual loss on images area-resized to this side (None: full size; saves CPU time)."""
    vgg_crop: int | None = field(default=None, metadata={"parse": parse_vgg_crop, "metavar": "SIDE"})
    """Then compute it on a random square crop of this side (pixels, after ``vgg_size``) of each image, at the same
    place in the output and the truth (None, or 0 as an option: the whole image). Saves CPU time: a crop of 96
    from 128 costs about 56/100 of the whole."""
    vgg_every: int = 1
    """Apply the perceptual loss every this many iterations only (lazy; saves CPU time)."""
    mask_weight: float = 3.0
    """Weight of the L1 loss between the predicted foreground mask and the dataset's person mask."""
    gan_weight: float = 1.0
    """Weight of the non-saturating GAN loss (0 turns the discriminator off)."""
    gan_start: int = 0
    """Iteration at which the GAN loss (and discriminator training) starts."""
    r1_gamma: float = 5.0
    """R1 gradient penalty weight on real images."""
    r1_every: int = 16
    """Lazy regularisation: R1 is applied every this many iterations (scaled up to match)."""
    grad_clip: float = 1.0
    """Clip the gradient norm of each network to this value (0: off)."""
    ema_decay: float = 0.9978
    """Decay of the generator's exponential moving average used for samples, evaluation and export."""
    ema_ramp: float = field(default=10.0, metadata={"parse": parse_ema_ramp, "metavar": "R"})
    """Warm-up of that average: at iteration i its decay is (1 + i) / (ema_ramp + i) until it reaches
    ``ema_decay``, so it lags about i / ema_ramp iterations behind the network (must be above 1; larger: a
    shorter average, for short runs whose network still improves quickly)."""
    freeze_features_at: int = 10000
    """Iteration after which the face/background feature generators are frozen and their maps cached."""
    window_sigma: float = 0.042
    """Std of the sliding-window offset as a fraction of the output side (paper: 43 px at 1024)."""
    window_prob: float = 1.0
    """Probability that a training sample uses a shifted window (else the centred one)."""
    rare_expressions: float = 0.0
    """Draw frames with rare eye and mouth states (blinks, half-closed eyes, wide-open mouths) more often: each
    frame in proportion to the density of its eye and mouth openness among the person's frames to this power,
    negated, at most 4 times the usual (0: every frame alike, as in the paper)."""
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"
    """Autocast precision. auto: on a CPU, bf16 only where it is native and a few timed steps show it faster,
    else fp32; on CUDA, bf16 where native, else fp16."""
    channels_last: bool | None = None
    """Use the channels_last memory format (None: whichever a few timed steps show faster here)."""
    threads: int | None = None
    """CPU threads for PyTorch (None: every core this process may use)."""
    seed: int = 0
    """Random seed (weights, sampling, augmentation)."""
    snapshot_minutes: float = 5.0
    """Write a resumable checkpoint at least this often (also on exit)."""
    snapshot_every: int = 0
    """Also write a checkpoint every this many iterations (0: only by time)."""
    keep_checkpoints: int = 3
    """How many checkpoints to keep in the run folder."""
    sample_minutes: float = 5.0
    """Write a samples/ PNG strip (held-in frames: truth | avatar) this often."""
    eval_minutes: float = 0.0
    """Score PSNR/SSIM on the held-out test split this often and log it (0: off)."""
    eval_frames: int = 64
    """Held-out frames used by the periodic evaluation (evenly spaced over the test split)."""
    log_every: int = 10
    """Write scalars to TensorBoard and the JSON-lines log every this many iterations."""
    workers: int = 1
    """Background threads preparing batches."""
    usable_iterations: int = 1500
    """Iterations this model size needs for a usable avatar; a time-budgeted run warns early when its
    measured speed will not reach them."""

    def lr_at(self, iteration: int, spent: float = 0.0) -> float:
        """The generator's learning rate at ``iteration`` (see ``gan_lr``), with ``spent`` (0 to 1) of the run's
        budget gone (see ``lr_tail``)."""
        lr = self.gan_lr if self.gan_lr is not None and iteration >= self.gan_start else self.lr
        if self.lr_tail <= 0 or spent <= 1 - self.lr_tail:
            return lr
        x = min(1.0, (spent - (1 - self.lr_tail)) / self.lr_tail)  # 0 where the fall starts, 1 at the end
        return lr * (self.lr_tail_floor + (1 - self.lr_tail_floor) * 0.5 * (1 + math.cos(math.pi * x)))


@dataclass(frozen=True)
class DistillConfig:
    """How a slimmer student network learns to imitate a trained avatar (MegaPortraits-style distillation).

    The student trains with the teacher run's own TrainConfig (learning rate, betas, clipping, loss weights,
    perceptual loss size and interval), without the GAN; the fields below override it."""

    width: int = 64
    """Widest layer of the student, in channels (must be below the teacher's max_channels)."""
    perturbation: float = 1.0
    """Strength of the random pose and expression changes of half of each batch (1: yaw and pitch sd 7.5 deg,
    expression sd half its spread in the video, clipped to the range the teacher saw)."""
    batch: int | None = None
    """Frames per step (None: the teacher run's batch)."""
    lr: float | None = None
    """AdamW learning rate (None: the teacher run's)."""
    seed: int = 0
    """Random seed of the student's weights and of the frames and perturbations it sees."""


@dataclass(frozen=True)
class Openness:
    """An eye/mouth openness control: a target ratio (gap / width), or a multiplier of the driver's."""

    value: float
    multiplier: bool = False

    @classmethod
    def parse(cls, text: str | None) -> "Openness | None":
        """'0.25' -> target ratio 0.25; 'x1.5' -> 1.5 times the transferred openness; None -> no control."""
        if text is None:
            return None
        try:
            if text.lower().startswith("x"):
                return cls(float(text[1:]), True)
            return cls(float(text))
        except ValueError:
            raise UserError(f"openness must be a ratio like 0.3 or a multiplier like x1.5, got {text!r}") from None


def parse_pose_offset(text: str) -> tuple[float, float, float]:
    """'10,0,-5' -> (yaw, pitch, roll) in degrees."""
    try:
        yaw, pitch, roll = (float(v) for v in text.split(","))
    except ValueError:
        raise UserError(f"expected yaw,pitch,roll in degrees, got {text!r}") from None
    return yaw, pitch, roll


@dataclass(frozen=True)
class TransferOptions:
    """How a driver's motion becomes the avatar's (``reenact``, ``live``, ``motion``, the web app).

    Fields with a ``parse`` in their metadata are read from text by it on the command line."""

    relative: bool = True
    """Pose and translation relative to the driver's reference frame (else the driver's absolute pose)."""
    neutral: str = "auto"
    """Driver's rest (what counts as no expression and the usual head pose): 'auto' (its most neutral frames:
    lips closed, eyes open, usual pose), 'first' (its first frame with a face) or a frame number."""
    smooth: float = 1.0
    """Temporal smoothing of the driver's head pose and gaze: 0 off, 1 default, 2-4 strong; the expression
    gets a quarter of it, so blinks and syllables keep their depth."""
    expression_scale: float = 1.0
    """Multiplier of the transferred expression (0 = neutral face, >1 exaggerates)."""
    eyes: Openness | None = field(default=None, metadata={"parse": Openness.parse, "metavar": "RATIO|xM"})
    """Eye openness: a target ratio (lid gap / eye width, e.g. 0.3) or a multiplier of the driver's (e.g. x1.5);
    default: follow the driver."""
    mouth: Openness | None = field(default=None, metadata={"parse": Openness.parse, "metavar": "RATIO|xM"})
    """Mouth openness: a target ratio (lip gap / mouth width) or a multiplier (e.g. x0.5)."""
    pose_offset: tuple[float, float, float] = field(default=(0.0, 0.0, 0.0), metadata={
        "parse": parse_pose_offset, "metavar": "YAW,PITCH,ROLL"})
    """Degrees added to the avatar's head rotation (e.g. 10,0,0 turns it 10 degrees)."""
    clamp_margin: float = 0.1
    """How far past the avatar's training range (a fraction of it) expression and openness may go before the
    soft limit holds them."""


@dataclass(frozen=True)
class CodecOptions:
    """How ``encode`` trades the size of a stream for fidelity."""

    dims: int = 24
    """Expression coefficients kept per frame (of the avatar's 32; its basis is ordered by variance). Fewer
    score the same full-frame PSNR and LPIPS but lose lip and eyelid motion (BENCHMARKS.md, "codec")."""
    quality: float = 1.0
    """Divides every quantiser step: 2 halves the quantisation error and costs about one bit more per value."""
    pose_smoothing: float | None = None
    """One-Euro strength of the head pose and gaze before quantising (0: off; None: the avatar dataset's
    --smooth); the expression keeps the dataset's. 1 saves about 6 in 100 bits of an unsmoothed dataset's
    stream for 0.02 dB PSNR (BENCHMARKS.md, "codec")."""
    audio: bool = True
    """Keep the video's audio (Opus, 24 kbit/s)."""


@dataclass(frozen=True)
class ProvenanceOptions:
    """How a written video is signed. The invisible mark in its pixels and its metadata tag are always written."""

    c2pa: bool = True
    """Sign a C2PA manifest (action "created", digitalSourceType trainedAlgorithmicMedia) into each mp4."""
    sign_cert: Path | None = None
    """PEM certificate chain (signing certificate first, ES256) for the C2PA manifest; default: a local
    certificate made on first use in the cache folder (proves the file is unchanged, not who made it)."""
    sign_key: Path | None = None
    """PEM private key of --sign-cert."""


@dataclass(frozen=True)
class ReenactOptions:
    """What ``reenact`` writes, besides the motion transfer."""

    transfer: TransferOptions = TransferOptions()
    """How the driver's motion is transferred."""
    side_by_side: bool = False
    """Write driver | avatar side by side (needs a driver video)."""
    paste_back: bool = False
    """Composite the avatar into its own full-resolution source video with a feathered border."""
    batch: int = 4
    """Frames per network call."""
    crf: int = 18
    """H.264 quality of the output, lower is better."""
    identity: int = 0
    """Which identity (training video) of a multi-video run to drive."""
    onnx: Path | None = None
    """Run the per-frame network from this exported ONNX file (None: PyTorch)."""
    provenance: ProvenanceOptions = ProvenanceOptions()
    """How the output is signed (the invisible mark is always embedded)."""


MODEL_PRESETS: dict[str, ModelConfig] = {
    "tiny": ModelConfig(output_size=64, feature_channels=8, uv_size=32, max_channels=32, channel_base=512,
                        render_depth=2, image_depth=2, style_dim=32, mapping_layers=2, disc_max_channels=32),
    "small": ModelConfig(output_size=128, uv_size=64, channel_base=2048, known_base=True, frame_code_octaves=0,
                         render_crop=True),
    "cpu": ModelConfig(known_base=True, frame_code_octaves=0, render_crop=True),
    "paper": ModelConfig(output_size=1024, feature_channels=256, uv_size=128, max_channels=512,
                         channel_base=32768, render_depth=4, image_depth=2, disc_max_channels=512),
}
"""Network sizes: ``tiny`` (64^2, tests), ``small`` (128^2, the 10-minute demo), ``cpu`` (256^2, ~1 hour on
2 cores), ``paper`` (1024^2, GPUs). The CPU presets predict the image as a correction of the known composite
(``known_base``): after 15 minutes on anchor_71s's held-out frames it scored LPIPS 0.21 against 0.30 and
SSIM 0.80 against 0.73, with PSNR 0.3 dB lower (BENCHMARKS.md, "known base"); ``paper`` keeps the paper's
design. Both also run their render StyleUNet on the window's box alone (``render_crop``; measured on ``cpu`` at
15 and 60 minutes and on ``small``'s demo, BENCHMARKS.md "the render StyleUNet on the window's box" and "the demo
on a slow AVX2 CPU")."""

TRAIN_PRESETS: dict[str, TrainConfig] = {
    "tiny": TrainConfig(batch=2, gan_start=200, freeze_features_at=100000, snapshot_minutes=1.0,
                        sample_minutes=1.0, r1_every=4, usable_iterations=300),
    "small": TrainConfig(batch=4, half_batch_below=0.7, lr=8e-3, gan_lr=2e-3, vgg_size=64, vgg_every=2,
                         vgg_weight=0.02, gan_start=3000, gan_weight=0.0, freeze_features_at=5000,
                         usable_iterations=600),
    "cpu": TrainConfig(batch=4, half_batch_below=0.7, lr=8e-3, gan_lr=2e-3, vgg_size=128, vgg_crop=96, vgg_every=4,
                       vgg_weight=0.08, lr_tail=0.3, gan_start=3000, gan_weight=0.0, freeze_features_at=5000,
                       usable_iterations=700, rare_expressions=0.5, ema_ramp=40.0),
    "paper": TrainConfig(batch=4, usable_iterations=20000),
}
"""Training presets matching MODEL_PRESETS. ``small`` computes its perceptual loss at 64^2: the same held-out
PSNR per iteration as at 128^2 for a quarter of the cost (AVX2-only CPU, 10-minute demo: 1005 iterations and
19.1 dB against 563 and 17.4 dB). ``usable_iterations`` come from measured curves (BENCHMARKS.md):
tiny overfits its test frames in ~300, small's demo is recognisable from ~600 (held-out ~19 dB), cpu reaches
24 dB held-out on anchor_71s at ~700; paper: the paper's networks train for tens of thousands. ``cpu`` trains at
four times the paper's learning rate until the GAN starts (then the paper's, ``gan_lr``) and weighted its perceptual
loss 0.04, the paper's per-iteration weight since it runs every 4th step (BENCHMARKS.md, "recipe ablation":
at 1200 iterations on anchor_71s, held-out +1.26 dB and LPIPS -0.013 from twice the rate, LPIPS -0.017 from the
weight, at the same cost per step; "learning rate x4": 30 minutes on an AVX2 CPU, +1.08 dB, LPIPS -0.042 against
twice the rate, the eyes closing less deep). ``small`` takes the same recipe (its perceptual loss runs every
2nd step, so 0.02): twice the rate took the 10-minute demo from 24.1 dB, LPIPS 0.091 in 1846 iterations to
25.1 dB, LPIPS 0.072 in 1413; four times, from 25.7 dB, LPIPS 0.066 to 27.1 dB, LPIPS 0.055 in 1555 each.
Both train without the discriminator (``gan_weight`` 0; the rate still drops to ``gan_lr`` at ``gan_start``):
started at iteration 3000 of a `cpu` hour, it had not told real from generated frames after 700 steps (logits
equal to 0.001) and cost a quarter of the speed; the last 15 minutes without it scored 26.94 dB, LPIPS 0.086
against 26.77, 0.086 with it (BENCHMARKS.md, "the `cpu` preset for an hour"). ``paper`` keeps the GAN;
``--gan-weight 1`` turns it back on. ``cpu`` draws frames with rare eye and mouth states more often
(``rare_expressions`` 0.5: anchor_71s's closed and half-closed eyes, a tenth of its frames, make a quarter of the
draws): after an hour on an AVX2 CPU the avatar's eyes followed three other people's at image-level correlation
0.79 / 0.92 / 0.90 against 0.65 / 0.83 / 0.81 and blinked at x1.01 of the person's depth against x0.82, for the
same held-out PSNR (27.25 dB against 27.18 at about 3500 iterations; LPIPS 0.093 against 0.086; BENCHMARKS.md, "rare
expressions drawn more often"). ``small`` (the demo) was not measured with it and draws uniformly. ``cpu``'s
moving average also warms up faster (``ema_ramp`` 40: it lags about i / 40 iterations behind the network at
iteration i, against i / 10): on one AVX2 training run, scored through several averages of its weights,
15 minutes gave LPIPS 0.164 against 0.174 and the eyes and mouth 23.40 dB against 22.97, the hour 27.32 dB,
SSIM 0.876, LPIPS 0.089 against 27.29, 0.874, 0.092 (BENCHMARKS.md, "the average's warm-up"); ``small`` keeps
10 (not measured). ``cpu`` computes its perceptual loss on a random 96^2 crop of the 128^2 image (``vgg_crop``;
the crop always holds the middle half of each side, where the face is): its step costs 0.82-0.90 of the whole
image's, and 15 minutes gave 25.40 dB, LPIPS 0.152 against 25.30, 0.158 on an AVX2 CPU and 25.95 dB, LPIPS 0.138
against 25.41, 0.149 natively (BENCHMARKS.md, "the perceptual loss on a crop"); ``small`` keeps its whole 64^2
image. ``cpu`` trains a new run with 2 frames a step where the probe measures such a step at no more than 0.7 of
one of 4 (``half_batch_below``): on an AMD Zen 1 CPU (AVX2, 0.57-0.62) 15 minutes gave 24.87 dB, LPIPS 0.178 in
823 iterations against 23.79 dB, LPIPS 0.217 in 474 with 4; on a Zen 3 (0.83) 2 frames scored 0.35 dB below 4
(BENCHMARKS.md, "half the batch on a slow AVX2 CPU"). ``small`` follows the same rule: on the Zen 1 its probe
measured 0.62 (its real step 0.75) and the 10-minute demo gave 25.77 dB, LPIPS 0.058 in 1164 iterations of 2 frames
against 24.38 dB, LPIPS 0.073 in 753 of 4 (BENCHMARKS.md, "the demo on a slow AVX2 CPU"). ``cpu`` now weights
its perceptual loss 0.08, twice the paper's per-iteration weight: on the Zen 1 the hour gave 27.46 dB, SSIM 0.873,
LPIPS 0.089 against 27.70, 0.873, 0.097 at 0.04, and LPIPS was 0.01-0.02 lower at 15, 30 and 45 minutes too. Its
learning rate falls over the last 0.3 of the budget along a half cosine to a tenth (``lr_tail``): 15 minutes gave
25.20-25.42 dB (four seeds, two days) against 25.00 and 25.02 without the fall, and the hour 27.52 dB, SSIM 0.874,
LPIPS 0.088; a fall over half the budget gave less at 15 minutes (BENCHMARKS.md, "the perceptual loss at twice the
weight, and the rate's fall at the end", "the `cpu` preset for an hour with the rate's fall"). ``small`` keeps 0.02
and a constant rate (not measured)."""
