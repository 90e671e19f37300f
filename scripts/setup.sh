#!/usr/bin/env bash
# Installs what kiln needs (Debian packages; the CUDA 13 toolkit must be at /usr/local/cuda)
# and builds it into build/. Used by scripts/run.sh and scripts/test.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(cmake ninja-build g++ libfmt-dev libspdlog-dev libxxhash-dev catch2 libcli11-dev
          nlohmann-json3-dev python3)
command -v pip3 >/dev/null 2>&1 || python3 -m pip --version >/dev/null 2>&1 || packages+=(python3-pip)
missing=()
for p in "${packages[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if ((${#missing[@]})); then
  sudo=""
  [[ $(id -u) -ne 0 ]] && sudo=sudo
  echo "setup: installing ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi
CUDA=${CUDA_HOME:-/usr/local/cuda}
if [[ ! -f $CUDA/include/nvrtc.h ]]; then
  echo "setup: the CUDA toolkit (13.x) was not found at $CUDA; install it or set CUDA_HOME" >&2
  exit 1
fi
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE="${BUILD_TYPE:-RelWithDebInfo}" \
      -DCUDAToolkit_ROOT="$CUDA" >/dev/null
cmake --build build -j"$(nproc)"
