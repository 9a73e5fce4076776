#!/usr/bin/env bash
# Installs everything the project needs on a fresh Debian machine: the BLAS/LAPACK/oneDNN libraries the
# native addon links, a C++ toolchain, a font for the rendered plots (wct compare), Mesa's EGL/GLES software
# renderer (llvmpipe: the GPU tests run on it through Dawn's OpenGL ES backend), then the npm dependencies
# (which builds the addon and the TS).
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(g++ make python3 pkg-config libopenblas-openmp-dev liblapacke-dev libdnnl-dev fonts-dejavu-core
  libegl1 libegl-mesa0 libgles2 libgl1-mesa-dri)
missing=()
for p in "${APT_PACKAGES[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  echo "setup: installing ${missing[*]}" >&2
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
npm ci --no-audit --no-fund
