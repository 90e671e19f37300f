// Static persistent tile scheduler: CTA b takes tiles b, b + gridDim.x, b + 2*gridDim.x, ...
// Tiles are numbered in groups of kGroupM block-rows, M fastest inside a group, so the CTAs
// running at one time share a few A row-blocks and a few B column-blocks in L2.
#pragma once
#include "kiln/common.cuh"

namespace kiln {

template <int kBlockM, int kNumNBlocks, int kGroupM>
struct TileScheduler {
  int num_m_blocks;
  int num_tiles;
  int next_tile;

  __device__ __forceinline__ explicit TileScheduler(int m)
      : num_m_blocks(ceil_div(m, kBlockM)),
        num_tiles(ceil_div(m, kBlockM) * kNumNBlocks),
        next_tile(blockIdx.x) {}

  __device__ __forceinline__ bool next(int& m_block, int& n_block) {
    const int tile = next_tile;
    if (tile >= num_tiles) return false;
    next_tile += gridDim.x;
    const int tiles_per_group = kGroupM * kNumNBlocks;
    const int group = tile / tiles_per_group;
    const int first_m = group * kGroupM;
    const int rows_in_group = min(kGroupM, num_m_blocks - first_m);
    const int in_group = tile - group * tiles_per_group;
    m_block = first_m + in_group % rows_in_group;
    n_block = in_group / rows_in_group;
    return true;
  }
};

}  // namespace kiln
