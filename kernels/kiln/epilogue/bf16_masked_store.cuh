// BF16 epilogue for a grouped GEMM's partial tile: FP32 accumulators -> BF16 in shared memory
// (the layout of bf16_tma_store.cuh) -> 16-byte stores of the valid rows only. Rows
// past a group's end belong to padding or to another group, which a TMA store (clipping only
// at the tensor's edge) would overwrite. Each math warpgroup stores its own 64 rows.
#pragma once
#include "kiln/common.cuh"
#include "kiln/epilogue/bf16_tma_store.cuh"
#include "kiln/ptx/sync.cuh"

namespace kiln {

// row_valid(r): r is a row of the tile (0 .. kBlockM - 1); columns past kN are skipped.
template <int kBlockM, int kBlockN, int kN, typename RowValid>
__device__ __forceinline__ void store_tile_bf16_masked(const float* acc, u8* smem_d, u16* d,
                                                       i64 ldd, int warpgroup, int row0, int n0,
                                                       RowValid row_valid) {
  constexpr int kChunksPerRow = kBlockN / 8;  // 16-byte chunks
  const int tid = threadIdx.x % 128;

  // The previous tile's reads of smem_d (a TMA store's, this warpgroup's) are done.
  if (tid == 0) ptx::tma_store_wait_read();
  ptx::named_barrier_sync(1 + warpgroup, 128);
  u32 packed[kBlockN / 4];
  pack_tile_bf16<kBlockN>(acc, packed);
  write_tile_bf16<kBlockM, kBlockN>(packed, smem_d, warpgroup);
  ptx::named_barrier_sync(1 + warpgroup, 128);

  for (int i = tid; i < 64 * kChunksPerRow; i += 128) {
    const int r = warpgroup * 64 + i / kChunksPerRow;
    const int c = i % kChunksPerRow;
    if (!row_valid(r) || n0 + c * 8 >= kN) continue;
    const uint4 v =
        *reinterpret_cast<const uint4*>(smem_d + d_chunk_offset<kBlockM, kBlockN>(r, c));
    *reinterpret_cast<uint4*>(d + (row0 + r) * ldd + n0 + c * 8) = v;
  }
}

}  // namespace kiln
