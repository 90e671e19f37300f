// Thread-block clusters: rank, cluster-wide barrier, distributed shared memory, and remote
// mbarrier arrivals.
#pragma once
#include "kiln/common.cuh"

namespace kiln::ptx {

__device__ __forceinline__ u32 cluster_ctarank() {
  u32 rank;
  asm volatile("mov.u32 %0, %%cluster_ctarank;" : "=r"(rank));
  return rank;
}

// Every thread of every CTA in the cluster; release/acquire orders shared memory accesses
// (local and distributed) before and after.
__device__ __forceinline__ void cluster_sync() {
  asm volatile("barrier.cluster.arrive.release.aligned;\n"
               "barrier.cluster.wait.acquire.aligned;" ::: "memory");
}

// The same barrier in two halves: every thread arrives once (relaxed: the caller orders
// what must be seen, e.g. fence_barrier_init) and waits later, until every non-exited thread
// of the cluster has arrived. The wait is not .aligned: it may sit in divergent code.
__device__ __forceinline__ void cluster_arrive_relaxed() {
  asm volatile("barrier.cluster.arrive.relaxed.aligned;" ::: "memory");
}
__device__ __forceinline__ void cluster_wait() {
  asm volatile("barrier.cluster.wait.acquire;" ::: "memory");
}

// The shared::cluster address of `smem` (a shared::cta address) in CTA `rank`.
__device__ __forceinline__ u32 map_shared_rank(u32 smem, u32 rank) {
  u32 remote;
  asm volatile("mapa.shared::cluster.u32 %0, %1, %2;" : "=r"(remote) : "r"(smem), "r"(rank));
  return remote;
}

// Stores four floats at `addr` (shared::cluster, 16-byte aligned) in another CTA; the bytes
// complete the transaction count of the mbarrier at `bar` (shared::cluster, same CTA).
__device__ __forceinline__ void st_async_v4(u32 addr, const float* v, u32 bar) {
  asm volatile(
      "st.async.shared::cluster.mbarrier::complete_tx::bytes.v4.f32 [%0], {%1, %2, %3, %4}, [%5];"
      ::"r"(addr), "f"(v[0]), "f"(v[1]), "f"(v[2]), "f"(v[3]), "r"(bar)
      : "memory");
}

// Arrives on the mbarrier at the same shared-memory offset in CTA `rank`. Used to release a
// stage after wgmma.wait_group: the reads are complete, so no cluster-scope release fence is
// needed (".release.cluster" costs a MEMBAR.ALL.GPU per arrival).
__device__ __forceinline__ void mbarrier_arrive_cluster(u64* bar, u32 rank) {
  asm volatile(
      "mbarrier.arrive.shared::cluster.b64 _, [%0];" ::"r"(
          map_shared_rank(smem_u32(bar), rank))
      : "memory");
}

}  // namespace kiln::ptx
