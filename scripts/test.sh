#!/usr/bin/env bash
# Builds kiln and runs its tests: unit, NVRTC compile + SASS checks, CLI, package, and the
# [gpu] tests (which skip, saying so, when no Hopper GPU is present).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh

# cuobjdump + nvdisasm for the SASS checks: from PyPI, unpacked into .tools/ (no install).
tools=.tools/cuda-bin
if [[ ! -x $tools/cuobjdump || ! -x $tools/nvdisasm ]]; then
  rm -rf .tools/wheels .tools/unpacked && mkdir -p .tools/wheels "$tools"
  python3 -m pip download --quiet --no-deps --only-binary=:all: -d .tools/wheels \
    nvidia-cuda-cuobjdump nvidia-cuda-nvdisasm
  for w in .tools/wheels/*.whl; do python3 -m zipfile -e "$w" .tools/unpacked; done
  cp "$(find .tools/unpacked -name cuobjdump -type f)" "$(find .tools/unpacked -name nvdisasm -type f)" "$tools/"
  chmod +x "$tools"/*
fi
export PATH="$PWD/$tools:$PATH" KILN_CUOBJDUMP="$PWD/$tools/cuobjdump"
export KILN_CACHE_DIR
KILN_CACHE_DIR=$(mktemp -d /tmp/kiln-test-cache.XXXXXX)
trap 'rm -rf "$KILN_CACHE_DIR"' EXIT

if ! command -v nvidia-smi >/dev/null 2>&1 || ! nvidia-smi -L >/dev/null 2>&1; then
  echo "test: no GPU here: the [gpu] tests will report themselves skipped"
fi
ctest --test-dir build --output-on-failure -j"$(nproc)"
