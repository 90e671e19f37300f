// wgmma (warpgroup MMA, sm_90a): shared-memory descriptors, fences, and the FP8 MMA.
//
// The MMA itself, Wgmma<kN>::mma, is declared here and defined by the generated translation
// unit for the one N the kernel uses: its inline asm names N/2 accumulator registers, and
// spelling out every N here would be most of the header for no benefit.
#pragma once
#include "kiln/common.cuh"

namespace kiln::ptx {

// Descriptor of a K-major tile in shared memory written by TMA with 128-byte swizzle:
// rows of 128 bytes, groups of 8 rows 1024 bytes apart.
__device__ __forceinline__ u64 smem_desc_k_major_sw128(const void* smem) {
  const u64 addr = smem_u32(smem);
  u64 desc = 0;
  desc |= (addr & 0x3FFFF) >> 4;            // start address, 16-byte units
  desc |= u64(1) << 16;                     // leading byte offset (unused for swizzled K-major)
  desc |= u64(1024 >> 4) << 32;             // stride byte offset: 8 rows x 128 B
  desc |= u64(1) << 62;                     // layout: 128-byte swizzle
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
