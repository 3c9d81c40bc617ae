"""The files of a training run: what ``train`` writes and what ``--resume`` and inference read back.

Run folder layout::

    RUN/config.json            resolved model + training config, datasets and their ids, runtime, CPU
    RUN/ckpt-NNNNNNNN.*        resumable checkpoints (generator, EMA, discriminator when training with the GAN,
                               optimisers, RNG)
    RUN/avatar.safetensors     the EMA generator with cached feature maps: what inference loads
    RUN/avatar.json
    RUN/subjects/K/            face model, per-frame parameters and meta of dataset K (to drive the avatar)
    RUN/log.jsonl              scalars every few iterations, and held-out PSNR/SSIM
    RUN/tensorboard/           the same for TensorBoard, with sample grids
    RUN/samples/               PNG strips of held-in frames: truth | avatar | texture render

Every file is written to a temporary name and renamed, so a crash never leaves half a file that looks whole.
"""
from __future__ import annotations

import copy
import json
import shutil
from collections.abc import Collection, Sequence
from pathlib import Path

import torch
from torch import nn

from ..config import ModelConfig, TrainConfig, from_dict, to_dict
from ..data.dataset import Dataset
from ..errors import UserError
from ..io.atomic import atomic_file
from ..io.checkpoint import AVATAR_FORMAT, CHECKPOINT_FORMAT, VERSION, list_checkpoints, load_tensors, \
    prune_checkpoints, save_tensors
from ..runtime import Runtime, cpu_info

RESUME_OPTIONS = ("precision", "channels_last", "threads", "snapshot_minutes", "snapshot_every", "sample_minutes",
                  "eval_minutes", "workers", "log_every", "keep_checkpoints", "usable_iterations")
"""TrainConfig fields that may change when a run is resumed (how it runs, not what it learns); the run's
saved config decides every other field."""

SUBJECT_FILES = ("face_model.safetensors", "face_model.json", "meta.json", "texture.png", "params.safetensors")
"""The files of a dataset that driving its avatar needs, copied to ``subjects/K/``."""


def optimizer_state(opt: torch.optim.Optimizer, prefix: str) -> tuple[dict[str, torch.Tensor], dict]:
    """Flatten an optimiser's state into named tensors + JSON-able param groups."""
    sd = opt.state_dict()
    tensors = {f"{prefix}.{pid}.{name}": (v if torch.is_tensor(v) else torch.tensor(v))
               for pid, st in sd["state"].items() for name, v in st.items()}
    return tensors, {"param_groups": sd["param_groups"]}


def load_optimizer_state(opt: torch.optim.Optimizer, prefix: str, tensors: dict[str, torch.Tensor],
                         groups: dict) -> None:
    """Inverse of :func:`optimizer_state`."""
    state: dict[int, dict] = {}
    for key, v in tensors.items():
        if key.startswith(prefix + "."):
            pid, name = key[len(prefix) + 1:].split(".", 1)  # "opt_G.12.exp_avg" -> 12, "exp_avg"
            state.setdefault(int(pid), {})[name] = v
    opt.load_state_dict({"state": state, "param_groups": groups["param_groups"]})


def prefixed(module: nn.Module, prefix: str) -> dict[str, torch.Tensor]:
    return {f"{prefix}.{k}": v for k, v in module.state_dict().items()}


def unprefixed(tensors: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix) + 1:]: v for k, v in tensors.items() if k.startswith(prefix + ".")}


def dataset_id(ds: Dataset) -> dict:
    """What a dataset was made from: its source video's sha256 and its frame count."""
    return {"sha256": ds.meta.get("source", {}).get("sha256"), "frames": len(ds)}


def resumed_config(run: Path, train_cfg: TrainConfig, datasets: Sequence[Path]
                   ) -> tuple[ModelConfig, TrainConfig, list[Path], dict]:
    """The saved run's model config, its training config with ``train_cfg``'s :data:`RESUME_OPTIONS`,
    its datasets (others given with --resume are an error, not silently ignored) and the saved JSON."""
    saved = json.loads((run / "config.json").read_text())
    own = [Path(p) for p in saved["datasets"]]
    if datasets and sorted(str(Path(p).resolve()) for p in datasets) != sorted(str(p) for p in own):
        raise UserError("--resume continues a run on the datasets it started with ("
                        + ", ".join(str(p) for p in own) + "); start a new run (or use --init) for other data")
    free = {k: getattr(train_cfg, k) for k in RESUME_OPTIONS}
    return from_dict(ModelConfig, saved["model"]), from_dict(TrainConfig, {**saved["train"], **free}), own, saved


def check_same_data(saved: dict, datasets: list[Dataset]) -> None:
    """Refuse to resume when a dataset folder now holds another video (e.g. after preprocess --force)."""
    for ds, old in zip(datasets, saved.get("dataset_ids") or []):  # runs from before ids were kept: no check
        new = dataset_id(ds)
        if new != old:
            raise UserError(f"{ds.root} is not the dataset this run was trained on (source sha256 "
                            f"{str(old.get('sha256'))[:12]}..., {old.get('frames')} frames; now "
                            f"{str(new['sha256'])[:12]}..., {new['frames']} frames): start a new run")


def write_run_files(run: Path, mcfg: ModelConfig, tcfg: TrainConfig, datasets: list[Dataset], world: int,
                    runtime: Runtime | None, init: dict | None = None) -> None:
    """config.json and each dataset's face model (needed to drive the avatar) in subjects/K/.

    ``init``: the :func:`init_record` of the run it was initialised from (``--init``), or None."""
    run.mkdir(parents=True, exist_ok=True)
    with atomic_file(run / "config.json") as tmp:  # never half a config beside checkpoints
        tmp.write_text(json.dumps({
            "model": to_dict(mcfg), "train": to_dict(tcfg), "datasets": [str(ds.root.resolve()) for ds in datasets],
            "dataset_ids": [dataset_id(ds) for ds in datasets], "world_size": world,
            "runtime": runtime.to_dict() if runtime else None, "cpu": cpu_info().describe(), "init": init},
            indent=2) + "\n")
    for i, ds in enumerate(datasets):
        copy_subject(ds.root, run / "subjects" / str(i))


def copy_subject(dataset: Path, dst: Path) -> None:
    """Copy the :data:`SUBJECT_FILES` of a dataset folder (or of another run's subject) into ``dst``."""
    dst.mkdir(parents=True, exist_ok=True)
    for name in SUBJECT_FILES:
        if (dataset / name).exists():
            with atomic_file(dst / name) as tmp:
                shutil.copy2(dataset / name, tmp)


def avatar_meta(mcfg: ModelConfig, datasets: list[Dataset], iteration: int, init: dict | None = None) -> dict:
    """avatar.json: what inference needs besides the weights, and the :func:`init_record` of the run it
    was initialised from (None when trained from scratch): the avatar carries what that run learnt."""
    return {"init": init, "format": AVATAR_FORMAT, "version": VERSION, "iteration": iteration, "model": to_dict(mcfg),
            "identities": len(datasets), "datasets": [str(ds.root.resolve()) for ds in datasets],
            "subjects": [f"subjects/{i}" for i in range(len(datasets))],
            "crop_box": [ds.meta.get("crop_box") for ds in datasets], "fps": [ds.meta.get("fps") for ds in datasets]}


def save_avatar(run: Path, net: nn.Module, meta: dict) -> Path:
    """Write avatar.safetensors/json: ``net`` (an AvatarNet) with its feature maps cached (inference model)."""
    if not bool(net.features_frozen):
        net = copy.deepcopy(net)
        net.freeze_features()
    return save_tensors(run / "avatar", net.state_dict(), meta)


def save_checkpoint(run: Path, nets: dict[str, nn.Module], opts: dict[str, torch.optim.Optimizer], meta: dict,
                    keep: int) -> None:
    """ckpt-<iteration>: networks, optimisers and the torch RNG under their names; keep the newest ``keep``."""
    tensors = {k: v for name, net in nets.items() for k, v in prefixed(net, name).items()}
    meta = {"format": CHECKPOINT_FORMAT, "version": VERSION, **meta}
    for name, opt in opts.items():
        t, meta[name] = optimizer_state(opt, name)
        tensors.update(t)
    tensors["rng.torch"] = torch.get_rng_state()
    save_tensors(run / f"ckpt-{int(meta['iteration']):08d}", tensors, meta)
    prune_checkpoints(run, keep)


def load_checkpoint(path: Path, nets: dict[str, nn.Module], opts: dict[str, torch.optim.Optimizer],
                    optional: Collection[str] = ()) -> dict:
    """Restore what :func:`save_checkpoint` wrote into ``nets`` and ``opts``; returns its meta. A name in
    ``optional`` that the checkpoint lacks keeps its fresh state."""
    tensors, meta = load_tensors(path, CHECKPOINT_FORMAT)
    for name, net in nets.items():
        state = unprefixed(tensors, name)
        if not state and name in optional:
            continue
        if bool(state.get("features_frozen", False)):
            net.freeze_features()  # the same parameters stop training as in the original run
        net.load_state_dict(state)
    for name, opt in opts.items():
        if name not in meta and name in optional:
            continue
        load_optimizer_state(opt, name, tensors, meta[name])
    torch.set_rng_state(tensors["rng.torch"])
    return meta


def load_newest_usable(run: Path, nets: dict[str, nn.Module], opts: dict[str, torch.optim.Optimizer],
                       log, optional: Collection[str] = ()) -> tuple[Path, dict]:
    """Load the newest checkpoint that reads whole, falling back to older ones (a power cut can leave the
    newest damaged); returns its path and meta. ``optional``: see :func:`load_checkpoint`."""
    ckpts = list_checkpoints(run)
    for path in reversed(ckpts):
        try:
            return path, load_checkpoint(path, nets, opts, optional)
        except UserError as exc:
            log(f"warning: cannot resume from {path.name} ({exc}); trying the one before")
    raise UserError(f"no usable checkpoint in {run}: all {len(ckpts)} are damaged")


def init_record(meta: dict) -> dict:
    """Where an ``--init`` run's weights came from, from :func:`load_generator_state`'s meta: the file, its
    iteration, the datasets it trained on (paths, and their source videos' ids when its run folder says),
    and what *it* was initialised from in turn."""
    path = Path(meta["path"])
    saved = path.parent / "config.json"
    config = json.loads(saved.read_text()) if saved.exists() else {}
    return {"path": str(path.resolve()), "iteration": meta.get("iteration"), "datasets": meta.get("datasets"),
            "dataset_ids": config.get("dataset_ids"), "init": config.get("init", meta.get("init"))}


def load_generator_state(path: Path) -> tuple[dict[str, torch.Tensor], dict]:
    """The (EMA) generator weights of a run folder, checkpoint or avatar file, and its meta (for --init)."""
    path = Path(path)
    if path.is_dir():
        ckpts = list_checkpoints(path)
        path = ckpts[-1] if ckpts else path / "avatar.safetensors"
    fmt = CHECKPOINT_FORMAT if path.name.startswith("ckpt-") else AVATAR_FORMAT
    tensors, meta = load_tensors(path, fmt)
    return unprefixed(tensors, "G_ema") or tensors, {**meta, "path": str(path)}
