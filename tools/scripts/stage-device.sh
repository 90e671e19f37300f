#!/usr/bin/env bash
# Builds on this (CPU) machine and copies what the GPU machine needs into .device/bin.
set -euo pipefail
cd "$(dirname "$0")/../.."
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j2
mkdir -p .device/bin
cp build/tools/kiln build/tests/kiln_gpu_tests .device/bin/
strip .device/bin/kiln || true
du -sh .device/bin
