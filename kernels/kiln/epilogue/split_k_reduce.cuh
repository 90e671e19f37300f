// Split-K epilogue: the kSplitK CTAs of a cluster each hold the FP32 partial product of one
// K range for the same tile. Each writes its partial into its own shared memory; after a
// cluster barrier, CTA r sums rows [r * ceil(kBlockM / kSplitK), ...) of all partials through
// distributed shared memory (in rank order, so results are deterministic), converts to BF16
// and writes D directly. A second cluster barrier keeps every CTA's shared memory alive until
// all reads are done.
#pragma once
#include "kiln/common.cuh"
#include "kiln/epilogue/bf16_tma_store.cuh"
#include "kiln/ptx/cluster.cuh"

namespace kiln {

template <int kBlockN>
struct SplitKBuffer {
  static constexpr int kStride = kBlockN + 4;  // floats per row; keeps 16-byte rows, fewer conflicts
};

// Math threads: store this thread's accumulator fragment (rows of its warpgroup) as FP32.
template <int kBlockN>
__device__ __forceinline__ void store_partial(const float* acc, float* red, int warpgroup) {
  const int tid = threadIdx.x % 128;
  const int warp = tid / 32, lane = tid % 32;
  const int row = warpgroup * 64 + warp * 16 + lane / 4;
  const int col = (lane % 4) * 2;
#pragma unroll
  for (int j = 0; j < kBlockN / 8; ++j)
#pragma unroll
    for (int half = 0; half < 2; ++half) {
      float2* dst = reinterpret_cast<float2*>(
          red + (row + half * 8) * SplitKBuffer<kBlockN>::kStride + j * 8 + col);
      *dst = make_float2(acc[4 * j + 2 * half], acc[4 * j + 2 * half + 1]);
    }
}

// All threads of the CTA (kThreads of them), after the first cluster_sync.
template <int kBlockM, int kBlockN, int kSplitK, int kThreads, int kN>
__device__ __forceinline__ void reduce_partials(const float* red, u16* d, i64 ldd, int m,
                                                int m0, int n0, u32 rank) {
  constexpr int kRows = ceil_div(kBlockM, kSplitK);  // the last CTA may have fewer
  constexpr int kVecPerRow = kBlockN / 4;
  const u32 local = smem_u32(red);
  const int rows = min(kRows, kBlockM - int(rank) * kRows);
  for (int i = threadIdx.x; i < rows * kVecPerRow; i += kThreads) {
    const int row = rank * kRows + i / kVecPerRow;
    const int col = (i % kVecPerRow) * 4;
    const u32 offset = (row * SplitKBuffer<kBlockN>::kStride + col) * 4;
    float x = 0.f, y = 0.f, z = 0.f, w = 0.f;
#pragma unroll
    for (int src = 0; src < kSplitK; ++src) {
      float a, b, c, e;
      ptx::ld_shared_cluster_v4(ptx::map_shared_rank(local + offset, src), a, b, c, e);
      x += a, y += b, z += c, w += e;
    }
    const int gm = m0 + row, gn = n0 + col;
    if (gm < m && gn < kN) {  // kN % 8 == 0, so a 4-column group is all in or all out
      uint2 packed = make_uint2(pack_bf16x2(x, y), pack_bf16x2(z, w));
      *reinterpret_cast<uint2*>(d + gm * ldd + gn) = packed;
    }
  }
}

}  // namespace kiln
