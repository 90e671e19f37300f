// Static tile scheduler over clusters. A work unit is one block-row of A (m_block) and
// kMulticastN adjacent block-columns of B, one per CTA of the cluster (which share the A
// tile by TMA multicast); with split-K every CTA of the cluster takes the same tile.
// Cluster c takes units c, c + clusters, c + 2 * clusters, ... (persistent when the grid is
// smaller than the work). Units are numbered in groups of kGroupM block-rows, M fastest
// inside a group, so the CTAs running at one time share a few A and B blocks in L2.
#pragma once
#include "kiln/common.cuh"

namespace kiln {

template <int kBlockM, int kNumNBlocks, int kGroupM, int kClusterSize, int kMulticastN>
struct TileScheduler {
  static constexpr int kNumNGroups = ceil_div(kNumNBlocks, kMulticastN);
  int num_m_blocks;
  int num_units;
  int next_unit;
  int rank;

  __device__ __forceinline__ explicit TileScheduler(int m)
      : num_m_blocks(ceil_div(m, kBlockM)),
        num_units(ceil_div(m, kBlockM) * kNumNGroups),
        next_unit(blockIdx.x / kClusterSize),
        rank(blockIdx.x % kClusterSize) {}

  // n_block may be kNumNBlocks (past the end) for the last CTA of a multicast pair when
  // kNumNBlocks is odd: it still loads its half of A for its partner; its B tile is out of
  // bounds (zeros) and its store is clipped.
  __device__ __forceinline__ bool next(int& m_block, int& n_block) {
    const int unit = next_unit;
    if (unit >= num_units) return false;
    next_unit += gridDim.x / kClusterSize;
    const int units_per_group = kGroupM * kNumNGroups;
    const int group = unit / units_per_group;
    const int first_m = group * kGroupM;
    const int rows_in_group = min(kGroupM, num_m_blocks - first_m);
    const int in_group = unit - group * units_per_group;
    m_block = first_m + in_group % rows_in_group;
    n_block = (in_group / rows_in_group) * kMulticastN + (kMulticastN > 1 ? rank : 0);
    return true;
  }
};

}  // namespace kiln
