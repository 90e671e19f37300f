// sm90_fp8_gemm: D[M,N] (BF16) = A[M,K] (E4M3) * B[N,K]^T (E4M3) with DeepSeek-V3 scaling:
// SA[m, kb] per 1x128 group of A, SB[nb, kb] per 128x128 block of B. N and K are compile-time
// constants of the instantiation; M is a run-time argument.
// Grouped kinds (MoE, see GemmKind): B is [G, N, K] and SB [G, ...]; each tile belongs to
// one group, reads that group's B, and stores only its valid rows.
//
// Warp roles, kBlockM / 64 + 1 warpgroups:
//   math warpgroups 0..kBlockM/64-1: each owns 64 rows of the kBlockM x kBlockN tile. Per
//     128-K block it issues four wgmma k32 into fresh accumulators, releases the stage, and
//     promotes the partial product into FP32 totals scaled by SA * SB (the FP8 tensor-core
//     sum is not exact FP32, so it is never carried across more than 128 K). Two math
//     warpgroups take turns issuing (ping-pong), so one promotes while the other's batch runs.
//     A 256-column tile is done as two 128-column batches per K block, one per B scale
//     block, into the same accumulators: 128 totals + 64 accumulators fit the 224 registers
//     where 128 + 128 would not. A dense tile's output (BF16 pairs in registers) is stored
//     during the next tile's first K block, while the other warpgroup's batch runs (a
//     256-column tile's TMA store then goes out one 64-column slab per K block).
//   producer warpgroup (last): warp 0 (one thread) issues the TMA loads of A and B; warp 1
//     copies the stage's scales (kBlockM of SA, 1 or 2 of SB, 7 for 176 columns: scale_slot)
//     into shared memory with cp.async.
//     Loading scales in the math loop instead puts a global-memory latency on every K block.
// Shared memory, 1024-byte aligned:
//   kStages x { A: kBlockM x 128 B | B: kBlockN x 128 B }   128-byte swizzle (TMA + wgmma)
//   D: BF16 tile for the TMA store (64-column slabs of kBlockM x 128 B, or plain rows for
//      176 columns: bf16_tma_store.cuh)
//   split-K: kSplitK - 1 FP32 partial tiles received from the other CTAs (SplitKReceive)
//   SA[kStages][kBlockM], SB[kStages][1, 2 or 8] (FP32)     scales of each stage
//   full[kStages], empty[kStages], split-K: recv            mbarriers
// Pipeline: full[s] completes when the stage's TMA bytes and scales land (1 TMA arrival + 32
// cp.async arrivals); empty[s] when every math thread that read it has released it (each
// thread arrives for its own reads of the scales, so compute-sanitizer's racecheck sees
// them ordered before the next cp.async into the slot; with multicast, lane 0 of every math
// warp of both CTAs arrives after a __syncwarp).
// Clusters (one of, or neither):
//   kMulticastN = 2: two CTAs take adjacent N blocks of the same M block; each loads half of
//     the A tile and multicasts it to both (half the L2 traffic for A). Persistent.
//   kSplitK > 1: kSplitK CTAs take the same tile, each a K range; the others push their FP32
//     partials into CTA 0's receive buffers, and CTA 0 stores the sum
//     (epilogue/split_k_reduce.cuh). One tile per cluster.
#pragma once
#include "kiln/common.cuh"
#include "kiln/epilogue/bf16_masked_store.cuh"
#include "kiln/epilogue/bf16_tma_store.cuh"
#include "kiln/epilogue/split_k_reduce.cuh"
#include "kiln/ptx/cluster.cuh"
#include "kiln/ptx/cp_async.cuh"
#include "kiln/ptx/mbarrier.cuh"
#include "kiln/ptx/sync.cuh"
#include "kiln/ptx/tma.cuh"
#include "kiln/ptx/wgmma.cuh"
#include "kiln/scheduler/tile_scheduler.cuh"

namespace kiln {

// Tile widths: 64 and 128 columns lie in one 128-column scale block of B. 192 columns start 0
// or 64 columns into one and 256 at a multiple of 256: both span two. 176 columns (N = 2112 in
// 12 tiles) start at any multiple of 16 and span up to three.
template <int kBlockN>
inline constexpr bool kTileWidthOk =
    kBlockN == 64 || kBlockN == 128 || kBlockN == 176 || kBlockN == 192 || kBlockN == 256;
// The start of a tile within its first scale block is a multiple of gcd(kBlockN, 128).
template <int kBlockN>
inline constexpr int kTileAlign = (kBlockN & -kBlockN) < 128 ? (kBlockN & -kBlockN) : 128;
// The most scale blocks a tile spans.
template <int kBlockN>
inline constexpr int kScaleBlocksN = (128 - kTileAlign<kBlockN> + kBlockN - 1) / 128 + 1;
// Tile starts per copy of the K loop: 176-column tiles start at all eight multiples of 16 in
// a scale block, and each copy serves four of them (scale_slot); other widths have one copy.
template <int kBlockN>
inline constexpr int kStartsPerCopy = kTileAlign<kBlockN> == 16 ? 4 : 1;
// Which of a K block's scales column group j (of 8 columns) takes. Groups before j1 lie in
// the tile's first B scale block, those before j2 in its second, the others in its third:
// slots 0, 1, 2. With one copy of the K loop for `starts` tile starts 16 columns apart (j1,
// j2 those of the first), the starts - 1 pairs of groups before each boundary lie on either
// side of it depending on the start: each pair takes a slot of its own (slot_past_boundary),
// and the three blocks take slots 0, starts and 2 * starts.
__device__ constexpr int scale_slot(int j1, int j2, int starts, int j) {
  const int lo1 = j1 - 2 * (starts - 1), lo2 = j2 - 2 * (starts - 1);
  return j < lo1 ? 0
         : j < j1 ? 1 + (j - lo1) / 2
         : j < lo2 ? starts
         : j < j2 ? starts + 1 + (j - lo2) / 2
                  : 2 * starts;
}
// The scale slots some column group of a kBlockN-column tile takes, over the copies' first
// starts (for 176 columns 0 to 6: a tile's last group lies before the second boundary's
// window ends, so slots 7 and 8 are never taken).
template <int kBlockN, int kStarts>
__device__ constexpr int reachable_slots() {
  int slots = 0;
  for (int o = 0; o < 8; o += kStarts)
    for (int j = 0; j < kBlockN / 8; ++j)
      if (scale_slot(16 - 2 * o, 32 - 2 * o, kStarts, j) >= slots)
        slots = scale_slot(16 - 2 * o, 32 - 2 * o, kStarts, j) + 1;
  return slots;
}
// B scales per stage: one per scale block the tile spans, or with several starts per copy one
// per scale slot (scale_slot), padded to a multiple of four for 16-byte loads.
template <int kBlockN>
inline constexpr int kSbSlots = kStartsPerCopy<kBlockN> > 1
                                    ? reachable_slots<kBlockN, kStartsPerCopy<kBlockN>>()
                                    : kScaleBlocksN<kBlockN>;
template <int kBlockN>
inline constexpr int kSbPerStage =
    kStartsPerCopy<kBlockN> > 1 ? (kSbSlots<kBlockN> + 3) / 4 * 4 : kSbSlots<kBlockN>;
// Bit o is set where some tile of the N range starts 16 * o columns into a scale block.
template <int kN, int kBlockN>
__device__ constexpr u32 tile_offsets() {
  u32 mask = 0;
  for (int n0 = 0; n0 < kN; n0 += kBlockN) mask |= 1u << (n0 % 128 / 16);
  return mask;
}
// Columns of one wgmma batch: the tile, or for 256-column tiles one scale block (see above).
template <int kBlockN>
inline constexpr int kMmaN = kBlockN == 256 ? 128 : kBlockN;

template <int kBlockM, int kBlockN, int kStages, int kSplitK>
struct Fp8GemmSmem {
  static constexpr int kA = kBlockM * 128;
  static constexpr int kB = kBlockN * 128;
  static constexpr int kStage = kA + kB;
  static constexpr int kRing = kStages * kStage;
  static constexpr int kD = kBlockM * kBlockN * 2;
  // Split-K: the other CTAs' partials, pushed while this CTA may still be in its K loop, so
  // they cannot overlay the ring.
  static constexpr int kRecv = SplitKReceive<kBlockM, kBlockN, kSplitK>::kBytes;
  static constexpr int kScales =
      (kStages * kBlockM + (kStages * kSbPerStage<kBlockN> + 3) / 4 * 4) * 4;
  static constexpr int kBarriers = (2 * kStages + (kSplitK > 1 ? 1 : 0)) * 8;
  // + 1024 so the base can be aligned for the 128-byte swizzle
  static constexpr int kTotal = 1024 + kRing + kD + kRecv + kScales + kBarriers;
};

// Whether slot i takes the block after its own (i / kStarts): for the tile that starts d
// starts after its copy's first, the pairs of a boundary's window from kStarts - 1 - d on lie
// past the boundary.
template <int kStarts>
__device__ __forceinline__ bool slot_past_boundary(int i, int d) {
  return i % kStarts != 0 && d >= kStarts - 1 - (i - 1) % kStarts;
}

// total += acc * scale for one K block (total = acc * scale for the first, kFirst): rows r and
// r + 8 of this thread's fragment; column group j takes scale[2 * slot] for row r and
// scale[2 * slot + 1] for r + 8 (scale_slot).
template <int kBlockN, int kJ1, int kJ2, bool kFirst, int kStarts = 1>
__device__ __forceinline__ void promote(float* total, const float* acc, const float* scale) {
#pragma unroll
  for (int j = 0; j < kBlockN / 8; ++j) {
    const int b = scale_slot(kJ1, kJ2, kStarts, j);
    const float s_lo = scale[2 * b], s_hi = scale[2 * b + 1];
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const float s = i < 2 ? s_lo : s_hi;
      total[4 * j + i] = kFirst ? acc[4 * j + i] * s : total[4 * j + i] + acc[4 * j + i] * s;
    }
  }
}

// f(IntConstant<o>) for a tile that starts 16 * o = 16 * offset columns into its first B
// scale block, over the starts that occur (bits of kOffsets): one uniform branch per start,
// none for the last.
template <u32 kOffsets, int kOffset = 0, typename F>
__device__ __forceinline__ void with_tile_offset(int offset, F&& f) {
  if constexpr (kOffset < 8) {
    if constexpr ((kOffsets >> kOffset) & 1) {
      if ((kOffsets >> (kOffset + 1)) == 0 || offset == kOffset) {
        f(IntConstant<kOffset>{});
        return;
      }
    }
    with_tile_offset<kOffsets, kOffset + 1>(offset, f);
  }
}

// The copies' first starts: each start's bit moved down to a multiple of kStarts.
template <int kStarts>
__device__ constexpr u32 copy_offsets(u32 offsets) {
  u32 mask = 0;
  for (int o = 0; o < 8; ++o)
    if ((offsets >> o) & 1) mask |= 1u << (o / kStarts * kStarts);
  return mask;
}

template <int kKind, int kN, int kK, int kBlockM, int kBlockN, int kStages, int kGroupM,
          int kMulticastN, int kSplitK>
__global__ void __launch_bounds__((kBlockM / 64 + 1) * 128, 1)
    sm90_fp8_gemm(const __grid_constant__ TensorMap tmap_a, const __grid_constant__ TensorMap tmap_b,
                  const __grid_constant__ TensorMap tmap_d, const float* __restrict__ sa,
                  const float* __restrict__ sb, u16* __restrict__ d, int m, i64 sa_stride_m,
                  i64 sa_stride_k, i64 sb_stride, i64 ldd, const int* __restrict__ group_info,
                  int num_groups, int group_rows, i64 sa_group_stride, i64 sb_group_stride,
                  int a_load_rows) {
  constexpr int kMathWarpgroups = kBlockM / 64;
  constexpr int kKBlocks = ceil_div(kK, 128);
  constexpr int kNBlocks = ceil_div(kN, kBlockN);
  constexpr int kClusterSize = kMulticastN * kSplitK;
  using Smem = Fp8GemmSmem<kBlockM, kBlockN, kStages, kSplitK>;
  static_assert(kBlockM % 64 == 0 && kMathWarpgroups <= 2, "kBlockM is 64 or 128");
  constexpr int kSbPerStage = ::kiln::kSbPerStage<kBlockN>, kSbSlots = ::kiln::kSbSlots<kBlockN>;
  constexpr int kStartsPerCopy = ::kiln::kStartsPerCopy<kBlockN>;
  static_assert(kTileWidthOk<kBlockN>, "tiles are 64, 128, 176, 192 or 256 columns wide");
  static_assert(kBlockN <= 128 || (kSplitK == 1 && kMulticastN == 1 && kMathWarpgroups == 2),
                "tiles over 128 columns are 128 rows and use neither split-K nor multicast");
  static_assert(kBlockN != 176 || kKind == kDense, "176-column tiles are dense only");
  constexpr int kBatches = kBlockN / kMmaN<kBlockN>;  // wgmma batches per K block
  static_assert(kMulticastN == 1 || kSplitK == 1, "multicast and split-K are not combined");
  static_assert(kMulticastN == 1 || kMulticastN == 2, "multicast pairs only");
  static_assert(kSplitK <= kKBlocks, "every split needs at least one K block");
  static_assert(kKind == kDense || (kMulticastN == 1 && kSplitK == 1),
                "grouped kernels use neither multicast nor split-K");
  static_assert(Smem::kTotal + (kKind >= kGroupedByOffset ? 4 * (kMaxGroups + 1) : 0) <= 232448,
                "shared memory exceeds the sm_90 limit");
  __shared__ int group_prefix[kKind >= kGroupedByOffset ? kMaxGroups + 1 : 1];

  extern __shared__ u8 smem_raw[];
  u8* smem = smem_raw + ((1024 - (smem_u32(smem_raw) & 1023)) & 1023);
  auto smem_a = [&](int s) { return smem + s * Smem::kStage; };
  auto smem_b = [&](int s) { return smem + s * Smem::kStage + Smem::kA; };
  u8* smem_d = smem + Smem::kRing;
  u8* smem_recv = smem_d + Smem::kD;
  float* smem_sa = reinterpret_cast<float*>(smem_recv + Smem::kRecv);  // [kStages][kBlockM]
  float* smem_sb = smem_sa + kStages * kBlockM;                        // [kStages][kSbPerStage]
  u64* full = reinterpret_cast<u64*>(smem_recv + Smem::kRecv + Smem::kScales);
  u64* empty = full + kStages;
  u64* recv = empty + kStages;  // split-K only: the partials have arrived

  const int warpgroup = threadIdx.x / 128;
  const u32 rank = kClusterSize > 1 ? ptx::cluster_ctarank() : 0;
  if (threadIdx.x == 0) {
    ptx::tma_prefetch_descriptor(&tmap_a);
    ptx::tma_prefetch_descriptor(&tmap_b);
    ptx::tma_prefetch_descriptor(&tmap_d);
#pragma unroll
    for (int s = 0; s < kStages; ++s) {
      ptx::mbarrier_init(&full[s], 1 + 32);  // TMA thread + the scale warp's lanes
      // arrivals: every math thread (or, with multicast, every math warp of both CTAs)
      ptx::mbarrier_init(&empty[s], kMulticastN == 1 ? kMathWarpgroups * 128  // every thread
                                                     : kMathWarpgroups * 4 * kMulticastN);
    }
    if constexpr (kSplitK > 1) ptx::mbarrier_init(recv, 1);  // the owner's expect_tx
    ptx::fence_barrier_init();
  }

  // Programmatic dependent launch: the code before griddep_wait may overlap the previous
  // kernel in the stream; nothing touches global memory before it. (Prefetching the first
  // tile's B into L2 before it made every launch 0.8-1.5 us slower, with or without PDL.)
  // The next kernel may start launching once every CTA of this grid is past
  // griddep_launch_dependents, so it never takes an SM this grid still needs.
  // A dense GEMM's tiles follow from m alone (no memory read), so every thread finds its
  // first tile before the wait (~350 cycles: an integer division), where it overlaps the
  // previous kernel (docs/PERFORMANCE.md). The grouped kinds read group_info for it: after
  // the wait. Not where two math warpgroups take their tiles one by one: there the tile, live
  // across the producer's register cut (setmaxnreg), spilled.
  constexpr bool kFirstTileEarly = kKind == kDense && (kMathWarpgroups == 1 || kSplitK > 1);
  if constexpr (!kFirstTileEarly) ptx::griddep_wait();
  // The by-row kind's group lookups, one tile ahead (TileScheduler::load_ahead), except in
  // 192-column tiles: there the producer's 56 registers spilled at some K-block counts.
  constexpr bool kLookAhead = kKind == kGroupedByRow && kBlockN != 192;
  TileScheduler<kKind, kBlockM, kNBlocks, kGroupM, kClusterSize, kMulticastN, kLookAhead> scheduler(
      m, group_info, num_groups, group_rows, group_prefix);
  Tile tile{};
  // The first tile, found here (dense; split-K: the cluster's one tile, the same in each CTA)
  // and handed out by next_tile's first call.
  bool first_tile = kFirstTileEarly && scheduler.template next<true>(tile);

  if constexpr (kMulticastN > 1) ptx::cluster_sync();  // partners see initialized barriers
  else __syncthreads();
  // Split-K: the other CTAs push into this one's receive buffers only after cluster_wait,
  // which this arrival (after the barrier's initialization) lets pass.
  if constexpr (kSplitK > 1) ptx::cluster_arrive_relaxed();
  if constexpr (kFirstTileEarly) ptx::griddep_wait();
  ptx::griddep_launch_dependents();

  // With split-K each CTA of the cluster takes one K range of the same tile: balanced
  // ranges, none empty (kSplitK <= kKBlocks), except that CTA 0 takes two more K blocks where
  // every CTA has at least 8, so that the others' partials are on their way while it works
  // (0.2-0.4 us per split GEMM on an H200; four more measured the same).
  constexpr int kOwnerExtra = kSplitK > 1 && kKBlocks >= 8 * kSplitK ? 2 : 0;
  constexpr int kShared = kKBlocks - kOwnerExtra;  // K blocks split evenly
  const int kb_begin = kSplitK > 1 && rank > 0 ? kOwnerExtra + int(rank) * kShared / kSplitK : 0;
  const int kb_end = kSplitK > 1 ? kOwnerExtra + (int(rank) + 1) * kShared / kSplitK : kKBlocks;

  // whole_warp: Constant<true> where every lane of the warp calls it, <false> for one
  // thread, lane 0 of its warp (TileScheduler::next).
  auto next_tile = [&](auto whole_warp) -> bool {
    if (first_tile) {
      first_tile = false;
      return true;
    }
    if constexpr (kSplitK > 1) return false;  // one tile per cluster
    else return scheduler.template next<decltype(whole_warp)::value>(tile);
  };
  // A tile's B rows and scales: group g's B is rows [g * kN, (g + 1) * kN) of the 2D map.
  // n_block can be one past the end in a multicast pair: clamp the scale row it reads.
  // Scale block i (< kScaleBlocksN) of the tile: a block past N is only read for columns past N.
  // Where the current tile starts in its first scale block, in 16-column steps (0..7).
  auto tile_offset = [&]() { return int(u32(tile.n_block * kBlockN) % 128 / 16); };
  auto sb_of = [&](const Tile& t, int i) {
    return sb + t.group * sb_group_stride +
           min(min(t.n_block * kBlockN, kN - 1) / 128 + i, (kN - 1) / 128) * sb_stride;
  };

  // Split-K: whether this thread has waited on the cluster barrier it arrived on at the start
  // (pushing threads wait before their first remote store; every other thread before exit).
  bool cluster_waited = false;
  if (warpgroup == kMathWarpgroups) {
    // ---- producer ----
    // 56 + 2 x 224 registers per thread slot of an SM sub-partition (3 warps x 168 at launch).
    if constexpr (kMathWarpgroups == 2) ptx::setmaxnreg_dec<56>();
    const int producer_warp = (threadIdx.x % 128) / 32, lane = threadIdx.x % 32;
    if (producer_warp == 1) {
      // Scales: lane l copies SA rows l, l + 32, ... of the tile and lane i < kSbSlots the SB
      // value of the tile's i-th scale block, or of scale slot i (scale_slot).
      int stage = 0;
      u32 phase = 0;
      while (next_tile(Constant<true>{})) {
        int block = lane < kSbSlots ? lane : 0;
        if constexpr (kStartsPerCopy > 1) {
          const int d = tile_offset() % kStartsPerCopy;
          block = block / kStartsPerCopy + slot_past_boundary<kStartsPerCopy>(block, d);
        }
        const float* sb_n = sb_of(tile, block);
        const float* sa_g = sa + tile.group * sa_group_stride;
        for (int kb = kb_begin; kb < kb_end; ++kb) {
          ptx::mbarrier_wait(&empty[stage], phase ^ 1);
#pragma unroll
          for (int i = lane; i < kBlockM; i += 32) {
            const bool valid = i < tile.rows;
            ptx::cp_async_4(&smem_sa[stage * kBlockM + i],
                            sa_g + (valid ? tile.local_row0 + i : 0) * sa_stride_m +
                                kb * sa_stride_k,
                            valid);
          }
          if (lane < kSbSlots)
            ptx::cp_async_4(&smem_sb[stage * kSbPerStage + lane], sb_n + kb, true);
          ptx::cp_async_mbarrier_arrive_noinc(&full[stage]);
          if (++stage == kStages) stage = 0, phase ^= 1;
        }
      }
    } else if (threadIdx.x % 128 == 0) {
      int stage = 0;
      u32 phase = 0;
      while (next_tile(Constant<false>{})) {
        for (int kb = kb_begin; kb < kb_end; ++kb) {
          ptx::mbarrier_wait(&empty[stage], phase ^ 1);
          // A: a_load_rows per CTA of the pair (with multicast both halves land here), B: all.
          ptx::mbarrier_arrive_expect_tx(&full[stage], kMulticastN * a_load_rows * 128 + Smem::kB);
          if constexpr (kMulticastN == 2) {
            constexpr int kHalf = kBlockM / 2;
            ptx::tma_load_2d_multicast(smem_a(stage) + rank * kHalf * 128, &tmap_a, &full[stage],
                                       kb * 128, tile.row0 + rank * kHalf, 0b11);
          } else {
            ptx::tma_load_2d(smem_a(stage), &tmap_a, &full[stage], kb * 128, tile.row0);
          }
          ptx::tma_load_2d(smem_b(stage), &tmap_b, &full[stage], kb * 128,
                           tile.group * kN + tile.n_block * kBlockN);
          if (++stage == kStages) stage = 0, phase ^= 1;
        }
      }
    }
  } else {
    // ---- math ----
    if constexpr (kMathWarpgroups == 2) ptx::setmaxnreg_inc<224>();
    const int tid = threadIdx.x % 128;
    const int warp = tid / 32, lane = tid % 32;
    const int row_in_tile = warpgroup * 64 + warp * 16 + lane / 4;  // and row_in_tile + 8

    constexpr int kAcc = kMmaN<kBlockN> / 2;  // accumulators of one batch
    float acc[kAcc];
    float total[kBlockN / 2];  // set by the tile's first K block
    // Dense tiles store their output during the next tile's first K block, while the other
    // warpgroup's batch runs: BF16 pairs wait here (half the registers of the totals, which
    // the next tile then reuses). Where a tile fills the ring (with fewer K blocks ptxas
    // injected a wgmma wait, C7517). A 256-column tile stores before its stage is released
    // (registers), so there only from 16 K blocks on (K = 512, 1024 x 32768: 2.5% slower;
    // K = 1536: 0.6-1.2% slower; K = 2048 level). Grouped tiles store at once: deferring their
    // full tiles measured 0-1.5% slower in every grouped kind (docs/PERFORMANCE.md).
    constexpr bool kDeferStore = kKind == kDense && kSplitK == 1 &&
                                 kKBlocks >= (kBatches == 1 ? kStages : 16);
    u32 packed[kDeferStore ? kBlockN / 4 : 1];
    bool store_pending = false;
    int pending_m0 = 0, pending_n0 = 0;
    // A 256-column tile's deferred store goes out one 64-column slab per K block (the first
    // with the shared-memory write, the others after the next K blocks' releases): at once,
    // its 32 KiB per warpgroup cost 4096 x 7168 x 2048 ~3% more (with 192 columns spreading
    // was 0.4-1.8% slower).
    constexpr int kSlabs = kDSlabs<kBlockN>, kSlabsAtOnce = kBatches == 2 ? 1 : kSlabs;
    constexpr bool kSpreadStore = kDeferStore && kSlabsAtOnce < kSlabs;
    static_assert(!kSpreadStore || kKBlocks >= kSlabs - kSlabsAtOnce + 1,
                  "a tile's slabs are all stored before the next tile's output is pending");
    int next_slab = kSlabs;  // the next slab of the pending store; kSlabs: none left
    auto store_next_slab = [&]() {
      if constexpr (kSpreadStore)
        if (next_slab < kSlabs) {
          if (tid == 0) {
            store_slab<kBlockM, kBlockN>(smem_d, &tmap_d, warpgroup, pending_m0, pending_n0,
                                         next_slab);
            ptx::tma_store_commit();
          }
          ++next_slab;
        }
    };
    int stage = 0;
    u32 phase = 0;
    // Two math warpgroups take turns issuing their wgmma batches (named barriers 3 and 4),
    // so the tensor cores run one batch after the other instead of interleaving both: the
    // first warpgroup then promotes while the second one's batch still runs.
    constexpr u32 kTurnBarrier = 3;
    // (Named barriers 1 and 2 are the epilogue's, one per warpgroup.)
    // Stage 0's descriptors; stage s and K step k add s * kStage / 16 + 2 * k.
    const u32 desc_a0 = ptx::smem_desc_sw128_lo(smem_a(0) + warpgroup * 64 * 128);
    const u32 desc_b0 = ptx::smem_desc_sw128_lo(smem_b(0));
    if constexpr (kMathWarpgroups == 2)
      if (warpgroup == 1) ptx::named_barrier_arrive(kTurnBarrier, 256);

    // Four k32 wgmmas over stage s into one accumulator set; batch b reads B rows
    // [b * kMmaN, (b + 1) * kMmaN) of the stage.
    auto issue_batch = [&](int s, int batch, float* out) {
      const u32 a_offset = s * (Smem::kStage >> 4);  // descriptor units
      const u32 b_offset = a_offset + batch * (kMmaN<kBlockN> * 128 >> 4);
#pragma unroll
      for (int k = 0; k < 4; ++k)  // 32 bytes of K per wgmma: +2 in 16-byte descriptor units
        ptx::WgmmaFp8<kMmaN<kBlockN>>::mma(ptx::smem_desc_sw128(desc_a0 + a_offset + 2 * k),
                                           ptx::smem_desc_sw128(desc_b0 + b_offset + 2 * k), out,
                                           k > 0);
    };
    // SA of this thread's row r (half 0) or r + 8 (half 1) for stage s.
    auto row_sa = [&](int s, int half) { return smem_sa[s * kBlockM + row_in_tile + half * 8]; };
    auto release = [&](int s) {
      if constexpr (kMulticastN == 2) {
        __syncwarp();
        if (lane == 0) {
          ptx::mbarrier_arrive_cluster(&empty[s], 0);
          ptx::mbarrier_arrive_cluster(&empty[s], 1);
        }
      } else {
        ptx::mbarrier_arrive(&empty[s]);
      }
    };
    auto next_stage = [&]() {
      if (++stage == kStages) stage = 0, phase ^= 1;
    };
    auto store_pending_tile = [&]() {
      if constexpr (kDeferStore)
        if (store_pending) {
          store_packed_tile<kBlockM, kBlockN, kSlabsAtOnce>(packed, smem_d, &tmap_d, warpgroup,
                                                            pending_m0, pending_n0);
          store_pending = false;
          next_slab = kSlabsAtOnce;
        }
    };

    // Where the tile's columns change B scale block depends on where it starts: 16 * offset
    // columns into a scale block (with_tile_offset). 176-column tiles start at all eight
    // multiples of 16; the K loop has a copy per four of them (kStartsPerCopy, scale_slot).
    constexpr u32 kOffsets = kScaleBlocksN<kBlockN> == 1 ? 1u : tile_offsets<kN, kBlockN>();
    constexpr u32 kCopyOffsets = copy_offsets<kStartsPerCopy>(kOffsets);
    auto copy_offset = [&]() { return tile_offset() & ~(kStartsPerCopy - 1); };

    // One K block of the tile; kFirst (the tile's first) sets the totals instead of adding.
    // kSlab: after its release, store the next slab of the previous tile's output.
    // start: IntConstant<offset> (of the copy), or IntConstant<-1> to find it here (once per
    // tile: one copy of the block for all starts).
    auto k_block = [&](auto first, auto slab, auto start) {
      constexpr bool kFirst = decltype(first)::value, kSlab = decltype(slab)::value;
      constexpr int kStart = decltype(start)::value;
      ptx::mbarrier_wait(&full[stage], phase);
      // SA * SB for rows r / r + 8 (scale[2i] / scale[2i + 1]) in the tile's B scale block i,
      // or in scale slot i (scale_slot).
      float scale[2 * kSbSlots];
      auto read_scales = [&]() {
        const float sa0 = row_sa(stage, 0), sa1 = row_sa(stage, 1);
        alignas(16) float sb_stage[kSbPerStage];
        if constexpr (kSbPerStage % 4 == 0) {
#pragma unroll
          for (int i = 0; i < kSbPerStage; i += 4)
            *reinterpret_cast<float4*>(&sb_stage[i]) =
                *reinterpret_cast<const float4*>(&smem_sb[stage * kSbPerStage + i]);
        } else {
#pragma unroll
          for (int i = 0; i < kSbPerStage; ++i) sb_stage[i] = smem_sb[stage * kSbPerStage + i];
        }
#pragma unroll
        for (int i = 0; i < kSbSlots; ++i)
          scale[2 * i] = sa0 * sb_stage[i], scale[2 * i + 1] = sa1 * sb_stage[i];
      };
      // The stage's scales, read as soon as the stage is full, before the turn and the batch:
      // after issuing the batch (as the K-block pairs below do: they were 1-2% slower this
      // way) the wide tiles at M = 4096 were 0.5-1.4% slower. Grouped 256-column tiles read
      // them after issuing their first batch, as before (the by-row kernel spilled).
      constexpr bool kEarlyScales = kKind == kDense || kBatches == 1;
      if constexpr (kEarlyScales) read_scales();
#pragma unroll
      for (int batch = 0; batch < kBatches; ++batch) {
#pragma unroll
        for (int i = 0; i < kAcc; ++i) ptx::fence_register(acc[i]);
        if constexpr (kMathWarpgroups == 2)
          ptx::named_barrier_sync(kTurnBarrier + warpgroup, 256);
        ptx::wgmma_fence();
        issue_batch(stage, batch, acc);
        ptx::wgmma_commit_group();
        if constexpr (kMathWarpgroups == 2)
          ptx::named_barrier_arrive(kTurnBarrier + 1 - warpgroup, 256);
        // (before the stage is released)
        if constexpr (!kEarlyScales)
          if (batch == 0) read_scales();
#pragma unroll
        for (int i = 0; i < kAcc; ++i) ptx::fence_register(acc[i]);
        ptx::wgmma_wait_group<0>();
        if (batch == kBatches - 1) {
          release(stage);
          if constexpr (kSlab) store_next_slab();
        }
        // The previous tile's output, while the other warpgroup's batch runs: after the
        // stage is released (holding it delays the next tile's loads: 13% slower at K = 512)
        // or, for 256 columns, before the first half's totals are set (registers).
        if constexpr (kFirst)
          if (batch == 0) store_pending_tile();
        if constexpr (kBatches == 2) {
          // 256 columns: batch b is scale block b of the tile.
          promote<kAcc * 2, 16, 16, kFirst>(total + batch * kAcc, acc, scale + 2 * batch);
        } else {
          auto promote_from = [&](auto offset) {
            // 16 - 2 * offset column groups in the first block, 16 in the second
            constexpr int kJ1 = 16 - 2 * decltype(offset)::value;
            promote<kBlockN, kJ1, kJ1 + 16, kFirst, kStartsPerCopy>(total, acc, scale);
          };
          if constexpr (kStart >= 0) promote_from(start);
          else with_tile_offset<kCopyOffsets>(copy_offset(), promote_from);
        }
      }
      next_stage();
    };

    // Tiles up to 128 columns (one batch and one B scale block per K block) go two K blocks
    // at a time: their batches go out back to back into two accumulator sets (one turn of
    // the ping-pong) and are waited for together, so a warpgroup pays the wgmma latency and
    // the turn once per two K blocks (nothing reads the accumulators in between, so the
    // wgmmas stay asynchronous). Wider tiles have no registers for a second set.
    constexpr bool kPairs = kBlockN <= 128;
    float acc2[kPairs ? kAcc : 1];
    auto k_block_pair = [&](auto first) {
      constexpr bool kFirst = decltype(first)::value;
      const int s0 = stage;
      const u32 p0 = phase;
      next_stage();
      const int s1 = stage;
      const u32 p1 = phase;
      next_stage();
#pragma unroll
      for (int i = 0; i < kAcc; ++i) ptx::fence_register(acc[i]), ptx::fence_register(acc2[i]);
      // Both stages first: a barrier wait between the wgmmas would serialize them (C7520).
      ptx::mbarrier_wait(&full[s0], p0);
      ptx::mbarrier_wait(&full[s1], p1);
      if constexpr (kMathWarpgroups == 2) ptx::named_barrier_sync(kTurnBarrier + warpgroup, 256);
      ptx::wgmma_fence();
      issue_batch(s0, 0, acc);
      ptx::wgmma_commit_group();
      issue_batch(s1, 0, acc2);
      ptx::wgmma_commit_group();
      if constexpr (kMathWarpgroups == 2)
        ptx::named_barrier_arrive(kTurnBarrier + 1 - warpgroup, 256);
      const float sb0 = smem_sb[s0], sb1 = smem_sb[s1];
      const float scale0[2] = {row_sa(s0, 0) * sb0, row_sa(s0, 1) * sb0};
      const float scale1[2] = {row_sa(s1, 0) * sb1, row_sa(s1, 1) * sb1};
#pragma unroll
      for (int i = 0; i < kAcc; ++i) ptx::fence_register(acc[i]), ptx::fence_register(acc2[i]);
      // The first stage goes back as soon as its batch is done: with few K blocks per tile
      // the ring holds little more than a tile, and holding it delays the next tile's loads.
      ptx::wgmma_wait_group<1>();
      release(s0);
      ptx::wgmma_wait_group<0>();
      release(s1);
      if constexpr (kFirst) store_pending_tile();
      promote<kBlockN, 16, 16, kFirst>(total, acc, scale0);
      promote<kBlockN, 16, 16, false>(total, acc2, scale1);
    };

    while (next_tile(Constant<true>{})) {
      if constexpr (kPairs) {
        // An odd count starts with a single K block.
        int kb = kb_begin;
        if ((kb_end - kb_begin) % 2 == 1) {
          k_block(Constant<true>{}, Constant<false>{}, IntConstant<0>{});
          kb += 1;
        } else {
          k_block_pair(Constant<true>{});
          kb += 2;
        }
#pragma unroll 1
        for (; kb < kb_end; kb += 2) k_block_pair(Constant<false>{});
      } else {
        k_block(Constant<true>{}, Constant<false>{}, IntConstant<-1>{});
        int kb = kb_begin + 1;
        auto k_loop = [&](auto start) {
          // The slabs a spread store left, one per K block, in a loop of their own.
          if constexpr (kSpreadStore)
#pragma unroll 1
            for (; kb < kb_begin + 1 + kSlabs - kSlabsAtOnce; ++kb)
              k_block(Constant<false>{}, Constant<true>{}, start);
#pragma unroll 1
          for (; kb < kb_end; ++kb) k_block(Constant<false>{}, Constant<false>{}, start);
        };
        // 176-column tiles (eight starts) get a copy of the loop per four starts, with each
        // column group's scale slot fixed (scale_slot). Choosing the start per K block instead,
        // ptxas merged the eight promotions into one behind ~17 register moves per start passed
        // (20% slower); two copies with the groups that differ selecting at run time were 6%
        // slower (the selects wait for registers the FFMAs free). With slots the math warps
        // select nothing: the scale warp copies each slot's SB value (its block chosen once
        // per tile), so the path from the wgmma wait is the FFMAs alone. A copy per start
        // compiled in ~0.8 s, one per four starts in ~0.3 s (0.3-1.1% slower: 6-10 more FMULs
        // before the wait); one copy for all eight put 20 FMULs after the wait.
        // 192-column tiles (two starts) choose per K block as before: the copies spilled in
        // grouped kernels.
        if constexpr (kStartsPerCopy > 1)
          with_tile_offset<kCopyOffsets>(copy_offset(), k_loop);
        else
          k_loop(IntConstant<-1>{});
      }

      if constexpr (kSplitK > 1) {
        const int t = warpgroup * 128 + tid;
        if (rank != 0) {
          ptx::cluster_wait();  // the owner's receive barrier is initialized
          cluster_waited = true;
          push_partial<kBlockM, kBlockN, kSplitK>(total, smem_recv, recv, rank, t);
        } else {
          if (t == 0) ptx::mbarrier_arrive_expect_tx(recv, Smem::kRecv);
          ptx::mbarrier_wait_cluster(recv, 0);
          add_partials<kBlockM, kBlockN, kSplitK>(total, smem_recv, t);
          store_tile_bf16<kBlockM, kBlockN>(total, smem_d, &tmap_d, warpgroup, tile.row0,
                                            tile.n_block * kBlockN);
        }
      } else if constexpr (kDeferStore) {
        pack_tile_bf16<kBlockN>(total, packed);
        store_pending = true;
        pending_m0 = tile.row0, pending_n0 = tile.n_block * kBlockN;
      } else if constexpr (kKind == kDense) {
        store_tile_bf16<kBlockM, kBlockN>(total, smem_d, &tmap_d, warpgroup, tile.row0,
                                          tile.n_block * kBlockN);
      } else {
        // A full tile of one group (the common case) goes out by TMA like a dense one; a
        // group's last, partial tile row by row (the scheduler found which is which).
        const Tile t = tile;
        if (t.rows == kBlockM) {
          store_tile_bf16<kBlockM, kBlockN>(total, smem_d, &tmap_d, warpgroup, t.row0,
                                            t.n_block * kBlockN);
        } else {
          store_tile_bf16_masked<kBlockM, kBlockN, kN>(
              total, smem_d, d, ldd, warpgroup, t.row0, t.n_block * kBlockN, [&](int r) {
                if (r >= t.rows) return false;
                if constexpr (kKind == kGroupedByRow)
                  return __ldg(group_info + t.row0 + r) == t.group;
                return true;
              });
        }
      }
    }
    store_pending_tile();  // the last tile's
    if constexpr (kSpreadStore)
      while (next_slab < kSlabs) store_next_slab();
    // The second warpgroup's last turn signal (it arrives once more than the first waits).
    if constexpr (kMathWarpgroups == 2)
      if (warpgroup == 0) ptx::named_barrier_sync(kTurnBarrier, 256);
    if (tid == 0) ptx::tma_store_wait_read();
  }

  if constexpr (kSplitK > 1)
    if (!cluster_waited) ptx::cluster_wait();
  if constexpr (kMulticastN > 1) {
    ptx::cluster_sync();  // no CTA exits while its partner may still signal its barriers
  }
}

}  // namespace kiln
