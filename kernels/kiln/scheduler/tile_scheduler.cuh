// Tile schedulers. A tile is kBlockM rows of one group (expert) times one kBlockN block of
// N; its rows are [row0, row0 + rows) of A and D (rows < kBlockM only at a group's end; in
// the by-row layout those rows may still end with padding rows).
//
// Work units are numbered in groups of kGroupM block-rows, M fastest inside a group, so the
// CTAs running at one time share a few A and B blocks in L2. Cluster c takes units c,
// c + clusters, ... (persistent when the grid is smaller than the work). With multicast a
// unit is kMulticastN adjacent N blocks, one per CTA of the pair (which share the A tile);
// with split-K every CTA of the cluster takes the same tile.
#pragma once
#include "kiln/common.cuh"

namespace kiln {

// How the rows of A map to groups.
enum GemmKind : int {
  kDense = 0,            // one group of m rows
  kGroupedByRow = 1,     // contiguous: int group_info[m], each row's group, -1 = padding
  kGroupedByOffset = 2,  // contiguous: int group_info[G + 1], group g = rows [o[g], o[g+1])
  kGroupedMasked = 3,    // masked: int group_info[G] valid rows of each group, group g at
                         // rows [g * group_rows, g * group_rows + group_info[g])
};

inline constexpr int kMaxGroups = 1024;

struct Tile {
  int group;
  int row0;        // first row in A and D
  int local_row0;  // first row within the group (what SA's group stride is relative to)
  int rows;        // rows from row0 that may be valid (the rest are padding or another
                   // group's); kBlockM only where all are
  int n_block;
};

// The block-row of a work unit (and, in n_group, its N group) under grouped rasterization.
__device__ __forceinline__ int unit_m_block(int unit, int units_per_group_rows, int num_m_blocks,
                                            int group_m, int& n_group) {
  const int band = unit / units_per_group_rows;
  const int first_m = band * group_m;
  const int rows_in_band = min(group_m, num_m_blocks - first_m);
  const int in_band = unit - band * units_per_group_rows;
  n_group = in_band / rows_in_band;
  return first_m + in_band % rows_in_band;
}

// kLookAhead: the by-row kind loads each block's groups a tile ahead (load_ahead).
template <int kKind, int kBlockM, int kNumNBlocks, int kGroupM, int kClusterSize,
          int kMulticastN, bool kLookAhead = false>
struct TileScheduler {
  static constexpr int kNumNGroups = ceil_div(kNumNBlocks, kMulticastN);
  const int* group_info;
  int group_rows;
  int num_groups;
  int m;
  int num_m_blocks;  // grouped by offset / masked (the others derive it from m)
  int next_unit;
  int rank;
  int* prefix;  // grouped by offset / masked: m-blocks before each group, in shared memory
  // Grouped by row: the group of the first (even lanes) or last (odd lanes) row of unit
  // next_unit's block, loaded one tile ahead (load_ahead).
  int ahead = -1;

  // prefix_smem: kMaxGroups + 1 ints of shared memory for the grouped-by-offset and masked
  // kinds; every thread of the CTA must construct the scheduler (it synchronizes).
  __device__ __forceinline__ TileScheduler(int m_, const int* info, int groups, int g_rows,
                                           int* prefix_smem)
      : group_info(info), group_rows(g_rows), num_groups(groups), m(m_), num_m_blocks(0),
        next_unit(blockIdx.x / kClusterSize), rank(blockIdx.x % kClusterSize),
        prefix(prefix_smem) {
    if constexpr (kKind == kGroupedByOffset || kKind == kGroupedMasked) {
      // Warp 0 scans the per-group block counts: lane l owns a contiguous run of groups.
      if (threadIdx.x < 32) {
        const int lane = threadIdx.x;
        const int per_lane = ceil_div(groups, 32);
        const int g0 = min(groups, lane * per_lane), g1 = min(groups, g0 + per_lane);
        int sum = 0;
        for (int g = g0; g < g1; ++g) sum += ceil_div(group_row_count(g), kBlockM);
        int inclusive = sum;
#pragma unroll
        for (int offset = 1; offset < 32; offset *= 2) {
          const int other = __shfl_up_sync(0xffffffff, inclusive, offset);
          if (lane >= offset) inclusive += other;
        }
        int running = inclusive - sum;
        for (int g = g0; g < g1; ++g) {
          prefix[g] = running;
          running += ceil_div(group_row_count(g), kBlockM);
        }
        if (lane == 31) prefix[groups] = inclusive;
      }
      __syncthreads();
      num_m_blocks = prefix[groups];
    }
    load_ahead();
  }

  // The block-row of a work unit (and, in n_group, its N group).
  __device__ __forceinline__ int m_block_of(int unit, int& n_group) const {
    return unit_m_block(unit, kGroupM * kNumNGroups, m_blocks(), kGroupM, n_group);
  }

  // Grouped by row (kLookAhead): starts the load of `ahead` for unit next_unit (a no-op
  // otherwise). Each lane of a pair loads from an address of its own, so the value stays in a
  // vector register and the thread waits for it only where next() reads it, a tile later.
  // (Waiting at every tile start, for a load that often misses L2 under the GEMM's traffic,
  // cost ~3%. The other grouped kinds read group_info per group, not per row, and measured
  // no gain from loading ahead.)
  __device__ __forceinline__ void load_ahead() {
    if constexpr (kKind == kGroupedByRow && kLookAhead) {
      if (next_unit >= num_units()) return;
      int n_group = 0;
      const int row0 = m_block_of(next_unit, n_group) * kBlockM;
      ahead = __ldg(group_info + (threadIdx.x % 2 == 0 ? row0 : min(row0 + kBlockM, m) - 1));
    }
  }

  // Derived from m where it can be, rather than kept: a value live across the warp-role
  // branch must fit the producer's 56 registers too.
  __device__ __forceinline__ int m_blocks() const {
    if constexpr (kKind == kGroupedByOffset || kKind == kGroupedMasked) return num_m_blocks;
    else return ceil_div(m, kBlockM);
  }

  __device__ __forceinline__ int group_row_count(int g) const {
    if constexpr (kKind == kGroupedByOffset) return __ldg(group_info + g + 1) - __ldg(group_info + g);
    else return min(max(__ldg(group_info + g), 0), group_rows);
  }

  __device__ __forceinline__ int num_units() const { return m_blocks() * kNumNGroups; }

  // kWholeWarp: every lane of the warp calls it at once; otherwise one thread, lane 0 of its
  // warp, which with kLookAhead learns only the group (tile.rows is then not reduced for a
  // padding last row).
  template <bool kWholeWarp>
  __device__ __forceinline__ bool next(Tile& tile) {
    const int units = num_units();
    while (next_unit < units) {
      const int unit = next_unit;
      next_unit += gridDim.x / kClusterSize;
      int n_group = 0;
      const int mb = m_block_of(unit, n_group);
      tile.n_block = n_group * kMulticastN + (kMulticastN > 1 ? rank : 0);
      if constexpr (kKind == kDense) {
        tile.group = 0;
        tile.row0 = tile.local_row0 = mb * kBlockM;
        tile.rows = min(kBlockM, m - tile.row0);
        return true;
      } else if constexpr (kKind == kGroupedByRow) {
        // Groups start at multiples of the alignment (>= kBlockM): a block holds one group
        // and then padding, so its first row names the group; an all-padding block is skipped.
        // Its last row tells whether the group fills it.
        tile.row0 = tile.local_row0 = mb * kBlockM;
        tile.rows = min(kBlockM, m - tile.row0);
        if constexpr (!kLookAhead) {
          tile.group = __ldg(group_info + tile.row0);
          if (__ldg(group_info + tile.row0 + tile.rows - 1) != tile.group) tile.rows -= 1;
        } else {
          if constexpr (kWholeWarp) {
            tile.group = __shfl_sync(0xffffffff, ahead, 0);
            if (__shfl_sync(0xffffffff, ahead, 1) != tile.group) tile.rows -= 1;  // padding
          } else {
            tile.group = ahead;  // lane 0's
          }
          load_ahead();
        }
        if (tile.group >= 0) return true;
      } else {
        int lo = 0, hi = num_groups - 1;  // the group g with prefix[g] <= mb < prefix[g + 1]
        while (lo < hi) {
          const int mid = (lo + hi + 1) / 2;
          if (prefix[mid] <= mb) lo = mid;
          else hi = mid - 1;
        }
        const int local_block = mb - prefix[lo];
        tile.group = lo;
        tile.local_row0 = local_block * kBlockM;
        const int count = group_row_count(lo);
        tile.rows = min(kBlockM, count - tile.local_row0);
        if constexpr (kKind == kGroupedByOffset) {
          tile.row0 = __ldg(group_info + lo) + tile.local_row0;
          tile.local_row0 = tile.row0;  // SA rows are absolute for the contiguous layout
        } else {
          tile.row0 = lo * group_rows + tile.local_row0;
        }
        return true;
      }
    }
    return false;
  }
};

}  // namespace kiln
