#!/usr/bin/env bash
# Builds on this (CPU) machine and copies what the GPU machine needs into .device/bin
# (ignored by git; carried to the GPU machine), for scripts/device-check.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
mkdir -p .device/bin
cp build/tools/kiln build/tests/kiln_gpu_tests .device/bin/
strip .device/bin/kiln
du -sh .device/bin
