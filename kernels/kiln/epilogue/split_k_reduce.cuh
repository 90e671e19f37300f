// Split-K epilogue: the kSplitK CTAs of a cluster each hold the FP32 partial product of one
// K range of the same tile, in the math threads' registers (wgmma fragment layout). CTA 0
// owns the tile. Every other CTA pushes its partial into one receive buffer of the owner's
// shared memory with st.async, whose bytes complete the owner's receive barrier, and exits:
// no cluster barrier after the K loop, no CTA waits for another's reads. The owner waits for
// the barrier, adds the partials to its own in rank order (so results are deterministic),
// and stores the tile like any other (bf16_tma_store.cuh).
// Receive buffers: [kSplitK - 1][kBlockN / 8][math threads] x 16 bytes: math thread t's
// j-th four floats at (j * threads + t) * 16, so a warp's pushes and reads are contiguous.
#pragma once
#include "kiln/common.cuh"
#include "kiln/ptx/cluster.cuh"

namespace kiln {

template <int kBlockM, int kBlockN, int kSplitK>
struct SplitKReceive {
  static constexpr int kThreads = kBlockM * 2;  // math threads: 128 per 64 rows
  static constexpr int kVecs = kBlockN / 8;     // four floats each: a thread's kBlockN / 2
  static constexpr int kPartBytes = kBlockM * kBlockN * 4;
  static constexpr int kBytes = (kSplitK - 1) * kPartBytes;
};

// Math thread t (of kBlockM * 2) of a CTA with rank > 0: its partial into the owner's (rank 0)
// buffer for this rank, completing the owner's barrier `recv_bar` (both local addresses; the
// owner's are at the same offsets). The owner's barrier must be initialized (cluster_wait).
template <int kBlockM, int kBlockN, int kSplitK>
__device__ __forceinline__ void push_partial(const float* total, const void* recv, u64* recv_bar,
                                             u32 rank, int t) {
  using R = SplitKReceive<kBlockM, kBlockN, kSplitK>;
  const u32 bar = ptx::map_shared_rank(smem_u32(recv_bar), 0);
  const u32 base = ptx::map_shared_rank(smem_u32(recv), 0) + (rank - 1) * R::kPartBytes + t * 16;
#pragma unroll
  for (int j = 0; j < R::kVecs; ++j)
    ptx::st_async_v4(base + j * R::kThreads * 16, total + 4 * j, bar);
}

// Math thread t of the owner, once the receive barrier has completed: adds the other CTAs'
// partials to its own, in rank order.
template <int kBlockM, int kBlockN, int kSplitK>
__device__ __forceinline__ void add_partials(float* total, const void* recv, int t) {
  using R = SplitKReceive<kBlockM, kBlockN, kSplitK>;
  const float4* in = reinterpret_cast<const float4*>(recv);
#pragma unroll
  for (int p = 0; p < kSplitK - 1; ++p)
#pragma unroll
    for (int j = 0; j < R::kVecs; ++j) {
      const float4 v = in[(p * R::kVecs + j) * R::kThreads + t];
      total[4 * j] += v.x, total[4 * j + 1] += v.y, total[4 * j + 2] += v.z,
          total[4 * j + 3] += v.w;
    }
}

}  // namespace kiln
