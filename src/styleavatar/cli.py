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
from .config import PREPROCESS_PRESETS, PreprocessConfig, field_docs
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="styleavatar",
        description="Learn a photo-realistic, drivable portrait avatar from one video (StyleAvatar).")
    parser.add_argument("--version", action="version", version=f"styleavatar {__version__}")
    sub = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)
    _preprocess_parser(sub)
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
