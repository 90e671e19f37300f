// sm90_fp8_gemm: D[M,N] (BF16) = A[M,K] (E4M3) * B[N,K]^T (E4M3) with DeepSeek-V3 scaling:
// SA[m, kb] per 1x128 group of A, SB[nb, kb] per 128x128 block of B. N and K are compile-time
// constants of the instantiation; M is a run-time argument.
//
// Warp roles, kBlockM / 64 + 1 warpgroups:
//   math warpgroups 0..kBlockM/64-1: each owns 64 rows of the kBlockM x kBlockN tile. Per
//     128-K block it issues four wgmma k32 into fresh accumulators, releases the stage, and
//     promotes the partial product into FP32 totals scaled by SA * SB (the FP8 tensor-core
//     sum is not exact FP32, so it is never carried across more than 128 K).
//   producer warpgroup (last): one thread issues the TMA loads of A and B into the ring.
// Shared memory, 1024-byte aligned:
//   kStages x { A: kBlockM x 128 B | B: kBlockN x 128 B }   128-byte swizzle (TMA + wgmma)
//   D: kBlockN/64 slabs of kBlockM x 128 B                  BF16 tile for the TMA store
//   full[kStages], empty[kStages]                            mbarriers
// Pipeline: full[s] completes when the stage's TMA bytes land; empty[s] when all math warps
// have read it. Tiles are persistent (TileScheduler), so the producer runs ahead into the
// next tile while the math warpgroups run the epilogue of this one.
#pragma once
#include "kiln/common.cuh"
#include "kiln/epilogue/bf16_tma_store.cuh"
#include "kiln/ptx/mbarrier.cuh"
#include "kiln/ptx/sync.cuh"
#include "kiln/ptx/tma.cuh"
#include "kiln/ptx/wgmma.cuh"
#include "kiln/scheduler/tile_scheduler.cuh"

namespace kiln {

template <int kBlockM, int kBlockN, int kStages>
struct Fp8GemmSmem {
  static constexpr int kA = kBlockM * 128;
  static constexpr int kB = kBlockN * 128;
  static constexpr int kStage = kA + kB;
  static constexpr int kD = kBlockM * kBlockN * 2;
  static constexpr int kBarriers = 2 * kStages * 8;
  // + 1024 so the base can be aligned for the 128-byte swizzle
  static constexpr int kTotal = 1024 + kStages * kStage + kD + kBarriers;
};

template <int kN, int kK, int kBlockM, int kBlockN, int kStages, int kGroupM>
__global__ void __launch_bounds__((kBlockM / 64 + 1) * 128, 1)
    sm90_fp8_gemm(const __grid_constant__ TensorMap tmap_a, const __grid_constant__ TensorMap tmap_b,
                  const __grid_constant__ TensorMap tmap_d, const float* __restrict__ sa,
                  const float* __restrict__ sb, int m, i64 sa_stride_m, i64 sa_stride_k,
                  i64 sb_stride) {
  constexpr int kMathWarpgroups = kBlockM / 64;
  constexpr int kKBlocks = ceil_div(kK, 128);
  constexpr int kNBlocks = ceil_div(kN, kBlockN);
  using Smem = Fp8GemmSmem<kBlockM, kBlockN, kStages>;
  static_assert(kBlockM % 64 == 0 && kMathWarpgroups <= 2, "kBlockM is 64 or 128");
  static_assert(128 % kBlockN == 0, "a tile lies in one 128-column scale block of B");
  static_assert(Smem::kTotal <= 232448, "shared memory exceeds the sm_90 limit");

  extern __shared__ u8 smem_raw[];
  u8* smem = smem_raw + ((1024 - (smem_u32(smem_raw) & 1023)) & 1023);
  auto smem_a = [&](int s) { return smem + s * Smem::kStage; };
  auto smem_b = [&](int s) { return smem + s * Smem::kStage + Smem::kA; };
  u8* smem_d = smem + kStages * Smem::kStage;
  u64* full = reinterpret_cast<u64*>(smem_d + Smem::kD);
  u64* empty = full + kStages;

  const int warpgroup = threadIdx.x / 128;
  if (threadIdx.x == 0) {
    ptx::tma_prefetch_descriptor(&tmap_a);
    ptx::tma_prefetch_descriptor(&tmap_b);
    ptx::tma_prefetch_descriptor(&tmap_d);
#pragma unroll
    for (int s = 0; s < kStages; ++s) {
      ptx::mbarrier_init(&full[s], 1);
      ptx::mbarrier_init(&empty[s], kMathWarpgroups * 4);  // one arrival per math warp
    }
    ptx::fence_barrier_init();
  }
  __syncthreads();

  TileScheduler<kBlockM, kNBlocks, kGroupM> scheduler(m);
  int m_block = 0, n_block = 0;

  if (warpgroup == kMathWarpgroups) {
    // ---- producer ----
    if constexpr (kMathWarpgroups == 2) ptx::setmaxnreg_dec<40>();
    if (threadIdx.x % 128 == 0) {
      int stage = 0;
      u32 phase = 0;
      while (scheduler.next(m_block, n_block)) {
        for (int kb = 0; kb < kKBlocks; ++kb) {
          ptx::mbarrier_wait(&empty[stage], phase ^ 1);
          ptx::mbarrier_arrive_expect_tx(&full[stage], Smem::kStage);
          ptx::tma_load_2d(smem_a(stage), &tmap_a, &full[stage], kb * 128, m_block * kBlockM);
          ptx::tma_load_2d(smem_b(stage), &tmap_b, &full[stage], kb * 128, n_block * kBlockN);
          if (++stage == kStages) stage = 0, phase ^= 1;
        }
      }
    }
    return;
  }

  // ---- math ----
  if constexpr (kMathWarpgroups == 2) ptx::setmaxnreg_inc<232>();
  const int tid = threadIdx.x % 128;
  const int warp = tid / 32, lane = tid % 32;
  const int row_in_tile = warpgroup * 64 + warp * 16 + lane / 4;  // and row_in_tile + 8

  float acc[kBlockN / 2];
  float total[kBlockN / 2];
  int stage = 0;
  u32 phase = 0;

  while (scheduler.next(m_block, n_block)) {
    const int r0 = m_block * kBlockM + row_in_tile;
    const int r1 = r0 + 8;
    const float* sa_r0 = sa + r0 * sa_stride_m;
    const float* sa_r1 = sa + r1 * sa_stride_m;
    const float* sb_n = sb + (n_block * kBlockN / 128) * sb_stride;
    // Scales of K block kb + 1 are loaded while block kb multiplies.
    float s0 = r0 < m ? __ldg(sa_r0) : 0.f;
    float s1 = r1 < m ? __ldg(sa_r1) : 0.f;
    float sbk = __ldg(sb_n);

#pragma unroll
    for (int i = 0; i < kBlockN / 2; ++i) total[i] = 0.f;

#pragma unroll 1
    for (int kb = 0; kb < kKBlocks; ++kb) {
      const int kn = kb + 1 < kKBlocks ? kb + 1 : kb;
      const float next_s0 = r0 < m ? __ldg(sa_r0 + kn * sa_stride_k) : 0.f;
      const float next_s1 = r1 < m ? __ldg(sa_r1 + kn * sa_stride_k) : 0.f;
      const float next_sbk = __ldg(sb_n + kn);

      ptx::mbarrier_wait(&full[stage], phase);
      const u64 desc_a = ptx::smem_desc_k_major_sw128(smem_a(stage) + warpgroup * 64 * 128);
      const u64 desc_b = ptx::smem_desc_k_major_sw128(smem_b(stage));
#pragma unroll
      for (int i = 0; i < kBlockN / 2; ++i) ptx::fence_register(acc[i]);
      ptx::wgmma_fence();
#pragma unroll
      for (int k = 0; k < 4; ++k)  // 32 bytes of K per wgmma: +2 in 16-byte descriptor units
        ptx::WgmmaFp8<kBlockN>::mma(desc_a + 2 * k, desc_b + 2 * k, acc, k > 0);
      ptx::wgmma_commit_group();
#pragma unroll
      for (int i = 0; i < kBlockN / 2; ++i) ptx::fence_register(acc[i]);
      ptx::wgmma_wait_group<0>();
      if (lane == 0) ptx::mbarrier_arrive(&empty[stage]);
      if (++stage == kStages) stage = 0, phase ^= 1;

      const float scale0 = s0 * sbk, scale1 = s1 * sbk;
#pragma unroll
      for (int i = 0; i < kBlockN / 8; ++i) {
        total[4 * i + 0] += acc[4 * i + 0] * scale0;
        total[4 * i + 1] += acc[4 * i + 1] * scale0;
        total[4 * i + 2] += acc[4 * i + 2] * scale1;
        total[4 * i + 3] += acc[4 * i + 3] * scale1;
      }
      s0 = next_s0, s1 = next_s1, sbk = next_sbk;
    }

    store_tile_bf16<kBlockM, kBlockN>(total, smem_d, &tmap_d, warpgroup, m_block * kBlockM,
                                      n_block * kBlockN);
  }
  if (tid == 0) ptx::tma_store_wait_all();
}

}  // namespace kiln
