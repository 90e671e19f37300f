// cp.async (LDGSTS): small asynchronous global -> shared copies whose completion an mbarrier
// tracks, so a loader thread never waits on global-memory latency.
#pragma once
#include "kiln/common.cuh"

namespace kiln::ptx {

// Copies 4 bytes, or writes 4 zero bytes when !valid (nothing is read then).
__device__ __forceinline__ void cp_async_4(void* smem, const void* gmem, bool valid) {
  asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;" ::"r"(smem_u32(smem)), "l"(gmem),
               "r"(valid ? 4 : 0)
               : "memory");
}

// Arrives on bar once every cp.async this thread issued so far has completed. The arrival
// counts toward the barrier's expected count (.noinc), so the init count includes it.
__device__ __forceinline__ void cp_async_mbarrier_arrive_noinc(u64* bar) {
  asm volatile("cp.async.mbarrier.arrive.noinc.shared::cta.b64 [%0];" ::"r"(smem_u32(bar))
               : "memory");
}

}  // namespace kiln::ptx
