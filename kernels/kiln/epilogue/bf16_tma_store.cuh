// BF16 epilogue: FP32 accumulators -> BF16 in shared memory -> TMA stores. Tiles whose width
// is a multiple of 64 stage the output as 64-column slabs (128-byte swizzle, one TMA store
// per slab); other widths (176) as plain rows of the whole tile width, one unswizzled TMA box
// per warpgroup (a swizzled box is at most 128 bytes wide, and a 64-column box would write
// into the next tile's columns). Each math warpgroup stores its own 64 rows, so only the
// warpgroup synchronizes (named barrier 1 + warpgroup index).
#pragma once
#include "kiln/common.cuh"
#include "kiln/ptx/stmatrix.cuh"
#include "kiln/ptx/sync.cuh"
#include "kiln/ptx/tma.cuh"

namespace kiln {

__device__ __forceinline__ u32 pack_bf16x2(float lo, float hi) {
  u32 out;
  asm("cvt.rn.bf16x2.f32 %0, %1, %2;" : "=r"(out) : "f"(hi), "f"(lo));
  return out;
}

// This thread's accumulator fragment (m64 x kBlockN, FP32) as BF16 pairs: packed[2 * j + h]
// holds columns 8j + 2q, 8j + 2q + 1 of row r + 8h (q = lane % 4, r its first row).
template <int kBlockN>
__device__ __forceinline__ void pack_tile_bf16(const float* acc, u32* packed) {
#pragma unroll
  for (int i = 0; i < kBlockN / 4; ++i) packed[i] = pack_bf16x2(acc[2 * i], acc[2 * i + 1]);
}

// The staged tile's layout (the host's D tensor map matches it: a 64 x 64 box with the
// 128-byte swizzle, or a kBlockN x 64 box without).
template <int kBlockN>
inline constexpr bool kSlabbedD = kBlockN % 64 == 0;
// TMA stores per warpgroup and tile: one per 64-column slab, or one for the whole width.
template <int kBlockN>
inline constexpr int kDSlabs = kSlabbedD<kBlockN> ? kBlockN / 64 : 1;

// Byte offset in smem_d of 16-byte chunk c (columns 8c .. 8c + 7) of tile row r: in slab
// c / 8, chunks swizzled by row (the TMA 128-byte swizzle), or plain rows of kBlockN * 2 bytes.
template <int kBlockM, int kBlockN>
__device__ __forceinline__ int d_chunk_offset(int r, int c) {
  if constexpr (kSlabbedD<kBlockN>)
    return (c / 8) * kBlockM * 128 + r * 128 + ((c % 8) ^ (r % 8)) * 16;
  else
    return r * kBlockN * 2 + c * 16;
}

// Writes this thread's packed fragment (rows of `warpgroup`) into smem_d (d_chunk_offset). A
// warp's 16 rows x 8 columns of column group j are two 8x8 matrices (packed[2j],
// packed[2j + 1]) in the stmatrix layout, so one stmatrix.x4 stores groups j and j + 1. In
// slabs each matrix's 8 rows land in 8 different chunks (all 32 banks); in plain rows of a
// 176-column tile (352 bytes, 88 words) two rows share each bank (two-way conflicts, once per
// tile).
template <int kBlockM, int kBlockN>
__device__ __forceinline__ void write_tile_bf16(const u32* packed, u8* smem_d, int warpgroup) {
  static_assert(kBlockN % 16 == 0, "column groups go in pairs");
  const int tid = threadIdx.x % 128;
  const int warp = tid / 32, lane = tid % 32;
  // This lane addresses row lane % 8 of matrix lane / 8: column group j + (lane / 8) / 2,
  // rows + 8 for odd matrices.
  const int r = warpgroup * 64 + warp * 16 + (lane / 8 % 2) * 8 + lane % 8;
  const int dj = lane / 16;
  const u32 base = smem_u32(smem_d);
#pragma unroll
  for (int j = 0; j < kBlockN / 8; j += 2) {
    const u32 addr = base + d_chunk_offset<kBlockM, kBlockN>(r, j + dj);
    ptx::stmatrix_x4(addr, packed[2 * j], packed[2 * j + 1], packed[2 * j + 2], packed[2 * j + 3]);
  }
}

// Thread 0 of a warpgroup: stores slab s (64 columns, or with plain rows the whole width) of
// its 64 rows of smem_d (commit to follow).
template <int kBlockM, int kBlockN>
__device__ __forceinline__ void store_slab(u8* smem_d, const TensorMap* tmap_d, int warpgroup,
                                           int m0, int n0, int s) {
  if constexpr (kSlabbedD<kBlockN>)
    ptx::tma_store_2d(tmap_d, smem_d + s * kBlockM * 128 + warpgroup * 64 * 128, n0 + s * 64,
                      m0 + warpgroup * 64);
  else
    ptx::tma_store_2d(tmap_d, smem_d + warpgroup * 64 * kBlockN * 2, n0, m0 + warpgroup * 64);
}

// smem_d: kBlockM rows x kBlockN columns (d_chunk_offset).
// packed: this thread's fragment of the warpgroup's 64 rows (pack_tile_bf16).
// Stores the first kSlabs slabs; the caller stores the others (store_slab) before the next
// call, which waits until every store has read smem_d.
template <int kBlockM, int kBlockN, int kSlabs = kDSlabs<kBlockN>>
__device__ __forceinline__ void store_packed_tile(const u32* packed, u8* smem_d,
                                                  const TensorMap* tmap_d, int warpgroup,
                                                  int m0, int n0) {
  const int tid = threadIdx.x % 128;

  // The previous tile's stores must have read smem_d before it is overwritten.
  if (tid == 0) ptx::tma_store_wait_read();
  ptx::named_barrier_sync(1 + warpgroup, 128);

  write_tile_bf16<kBlockM, kBlockN>(packed, smem_d, warpgroup);
  ptx::fence_proxy_async_shared();
  ptx::named_barrier_sync(1 + warpgroup, 128);

  if (tid == 0) {
#pragma unroll
    for (int s = 0; s < kSlabs; ++s)
      store_slab<kBlockM, kBlockN>(smem_d, tmap_d, warpgroup, m0, n0, s);
    ptx::tma_store_commit();
  }
}

// acc: this thread's wgmma accumulator fragment (m64 x kBlockN, FP32).
template <int kBlockM, int kBlockN>
__device__ __forceinline__ void store_tile_bf16(const float* acc, u8* smem_d,
                                                const TensorMap* tmap_d, int warpgroup,
                                                int m0, int n0) {
  u32 packed[kBlockN / 4];
  pack_tile_bf16<kBlockN>(acc, packed);
  store_packed_tile<kBlockM, kBlockN>(packed, smem_d, tmap_d, warpgroup, m0, n0);
}

}  // namespace kiln
