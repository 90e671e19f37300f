// wgmma (warpgroup MMA, sm_90a): shared-memory descriptors, fences, and the FP8 MMA.
//
// The MMA itself, Wgmma<kN>::mma, is declared here and defined by the generated translation
// unit for the one N the kernel uses: its inline asm names N/2 accumulator registers, and
// spelling out every N here would be most of the header for no benefit.
#pragma once
#include "kiln/common.cuh"

namespace kiln::ptx {

// Descriptor of a K-major tile in shared memory written by TMA with 128-byte swizzle:
// rows of 128 bytes, groups of 8 rows 1024 bytes apart. It is built from two 32-bit words so
// that stepping through stages and K (the start address, low word) is one 32-bit add:
//   low word:  start address in 16-byte units (bits 0-13), leading byte offset 1 (16-29;
//              unused for swizzled K-major)
//   high word: stride byte offset 1024 B in 16-byte units (bits 0-13), layout 128-byte
//              swizzle (bits 30-31 = 1)
__device__ __forceinline__ u32 smem_desc_sw128_lo(const void* smem) {
  return ((smem_u32(smem) & 0x3FFFF) >> 4) | (1u << 16);
}

__device__ __forceinline__ u64 smem_desc_sw128(u32 lo) {
  constexpr u32 kHi = (1024 >> 4) | (1u << 30);
  u64 desc;
  asm("mov.b64 %0, {%1, %2};" : "=l"(desc) : "r"(lo), "r"(kHi));
  return desc;
}

__device__ __forceinline__ void wgmma_fence() {
  asm volatile("wgmma.fence.sync.aligned;" ::: "memory");
}

__device__ __forceinline__ void wgmma_commit_group() {
  asm volatile("wgmma.commit_group.sync.aligned;" ::: "memory");
}

template <int kPending>
__device__ __forceinline__ void wgmma_wait_group() {
  asm volatile("wgmma.wait_group.sync.aligned %0;" ::"n"(kPending) : "memory");
}

// Keeps the compiler from moving accesses of an accumulator register across wgmma fences.
__device__ __forceinline__ void fence_register(float& reg) {
  asm volatile("" : "+f"(reg)::"memory");
}

// D[64 x kN] (+)= A[64 x 32] * B[kN x 32]^T, FP8 E4M3 inputs from shared memory, FP32
// accumulators in registers (kN / 2 per thread). scale_d = false overwrites D.
template <int kN>
struct WgmmaFp8 {
  __device__ static void mma(u64 desc_a, u64 desc_b, float* d, bool scale_d);
};

}  // namespace kiln::ptx
