#!/usr/bin/env bash
# kiln's main job on this machine: build, then compile and cache the DeepSeek-V3 kernel set
# for sm_90a (works without a GPU), and with a Hopper GPU also benchmark against cuBLASLt.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
build/tools/kiln info
build/tools/kiln warm --model deepseek-v3 --arch sm_90a
if build/tools/kiln info --json | grep -q '"compute_capability": "9.0"'; then
  build/tools/kiln bench
else
  echo "run: no Hopper GPU here; kernels are compiled and cached, benchmark skipped"
fi
