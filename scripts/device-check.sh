#!/usr/bin/env bash
# Runs on the GPU machine over binaries built on the CPU machine (copied to .device/bin by
# scripts/stage-device.sh): [gpu] tests, compute-sanitizer on small shapes, benchmark.
# Full logs go to $OUT; a short summary is printed last.
set -u -o pipefail
BIN=${BIN:-.device/bin}
OUT=${OUT:-/tmp/kiln-out}
mkdir -p "$OUT"
export KILN_CACHE_DIR=${KILN_CACHE_DIR:-/tmp/kiln-cache}
what=${1:-all}

nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem --format=csv,noheader | tee "$OUT/gpu.txt"
"$BIN/kiln" info | tee -a "$OUT/gpu.txt"

summary=()
if [[ $what == all || $what == tests ]]; then
  "$BIN/kiln_gpu_tests" --durations yes > "$OUT/gpu_tests.log" 2>&1
  summary+=("gpu tests: rc=$? $(tail -n 3 "$OUT/gpu_tests.log" | tr '\n' ' ')")
fi
if [[ $what == all || $what == sanitize ]]; then
  for tool in memcheck racecheck synccheck; do
    # racecheck hangs in split-K kernels, whose CTA 0 waits for the other CTAs' pushes
    # (tests/gpu/test_gemm_fp8.cpp)
    filter="[small]"
    [[ $tool == racecheck ]] && filter="[small]~[split]"
    compute-sanitizer --tool $tool --error-exitcode 3 "$BIN/kiln_gpu_tests" "$filter" > "$OUT/sanitize_$tool.log" 2>&1
    summary+=("compute-sanitizer $tool: rc=$? $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' "$OUT/sanitize_$tool.log" | tail -n 1)")
  done
fi
if [[ $what == all || $what == bench ]]; then
  "$BIN/kiln" bench --iters ${ITERS:-30} --json > "$OUT/bench.json" 2> "$OUT/bench.err"
  "$BIN/kiln" bench --iters ${ITERS:-30} 2>&1 | tee "$OUT/bench.txt"
fi
printf '%s\n' "${summary[@]}"
