#include "gemm/config.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <nlohmann/json.hpp>

#include "jit/codegen.hpp"

namespace kiln::gemm {

const char* to_string(Kind kind) {
  switch (kind) {
    case Kind::kDense: return "dense";
    case Kind::kGroupedByRow: return "grouped-contiguous";
    case Kind::kGroupedByOffset: return "grouped-offsets";
    case Kind::kGroupedMasked: return "grouped-masked";
  }
  return "?";
}

bool parse_kind(const std::string& name, Kind* kind) {
  for (Kind k : {Kind::kDense, Kind::kGroupedByRow, Kind::kGroupedByOffset, Kind::kGroupedMasked})
    if (name == to_string(k)) {
      *kind = k;
      return true;
    }
  return false;
}

Kind kind_of(GroupedLayout layout) {
  switch (layout) {
    case GroupedLayout::kContiguousByRow: return Kind::kGroupedByRow;
    case GroupedLayout::kContiguousByOffset: return Kind::kGroupedByOffset;
    case GroupedLayout::kMasked: return Kind::kGroupedMasked;
  }
  return Kind::kGroupedByRow;
}

GroupedLayout layout_of(Kind kind) {
  return kind == Kind::kGroupedMasked   ? GroupedLayout::kMasked
         : kind == Kind::kGroupedByOffset ? GroupedLayout::kContiguousByOffset
                                          : GroupedLayout::kContiguousByRow;
}

size_t KernelSpecHash::operator()(const KernelSpec& s) const noexcept {
  uint64_t h = static_cast<uint64_t>(s.kind) | static_cast<uint64_t>(s.arch) << 8;
  h = h * 0x9E3779B97F4A7C15ull ^ static_cast<uint64_t>(s.n);
  h = h * 0x9E3779B97F4A7C15ull ^ static_cast<uint64_t>(s.k);
  h = h * 0x9E3779B97F4A7C15ull ^
      (static_cast<uint64_t>(s.config.block_m) | static_cast<uint64_t>(s.config.block_n) << 16 |
       static_cast<uint64_t>(s.config.stages) << 32 | static_cast<uint64_t>(s.config.group_m) << 40 |
       static_cast<uint64_t>(s.config.multicast_n) << 52 | static_cast<uint64_t>(s.config.split_k) << 56);
  return static_cast<size_t>(h ^ (h >> 29));
}

namespace {

// 128 x 176 tiles are for dense GEMMs only: no grouped (MoE) shape needs them, and the
// grouped-by-row kernel spills with them. check_config, the candidates and the heuristic all
// ask here.
bool width_fits_kind(int block_n, Kind kind) { return block_n != 176 || kind == Kind::kDense; }

}  // namespace

int sb_per_stage(int block_n) {
  // Tiles start at multiples of block_n, so within a 128-column scale block at a multiple of
  // gcd(block_n, 128): 64 and 128 columns lie in one block, 192 and 256 span two, 176 three.
  const int align = std::min(block_n & -block_n, 128);
  // 176: seven scale slots (four starts per loop copy), padded to 8 for 16-byte loads
  if (align == 16) return 8;
  return (128 - align + block_n - 1) / 128 + 1;
}

int wgmma_n(const Config& c) { return c.block_n == 256 ? 128 : c.block_n; }

int threads_per_block(const Config& c) { return (c.block_m / 64 + 1) * 128; }

int shared_memory_bytes(const Config& c) {
  const int stage = (c.block_m + c.block_n) * 128;
  const int d = c.block_m * c.block_n * 2;
  // Split-K: receive buffers for the other CTAs' FP32 partials, and their barrier.
  const int recv = (c.split_k - 1) * c.block_m * c.block_n * 4;
  const int sb = sb_per_stage(c.block_n);
  const int scales = (c.stages * c.block_m + (c.stages * sb + 3) / 4 * 4) * 4;
  const int barriers = (2 * c.stages + (c.split_k > 1 ? 1 : 0)) * 8;
  return 1024 + c.stages * stage + d + recv + scales + barriers;
}

int max_stages(int block_m, int block_n, int split_k) {
  // 4100 bytes are kept for the static group table of the grouped kinds.
  int stages = 1;
  while (stages < 8 && shared_memory_bytes({block_m, block_n, stages + 1, 8, 1, split_k}) + 4100 <=
                           kSharedMemoryLimit)
    ++stages;
  return stages;
}

bool split_fits(int block_m, int block_n, int split_k) {
  return split_k == 1 || max_stages(block_m, block_n, split_k) >= kMinSplitStages;
}

int num_tiles(const Config& c, int m, int n) {
  return (m + c.block_m - 1) / c.block_m * ((n + c.block_n - 1) / c.block_n);
}

std::string check_config(const Config& c, int /*n*/, int k, Kind kind) {
  if (c.block_m != 64 && c.block_m != 128)
    return fmt::format("block_m {} (64 or 128)", c.block_m);
  const bool wide = c.block_n == 176 || c.block_n == 192 || c.block_n == 256;
  if (c.block_n != 64 && c.block_n != 128 && !wide)
    return fmt::format("block_n {} (64, 128, 176, 192 or 256)", c.block_n);
  if (wide && (c.block_m != 128 || c.split_k != 1 || c.multicast_n != 1))
    return fmt::format("block_n {} needs block_m 128, no split-K and no multicast", c.block_n);
  if (!width_fits_kind(c.block_n, kind))
    return fmt::format("block_n {} is for dense GEMMs only (not {})", c.block_n, to_string(kind));
  if (c.multicast_n != 1 && c.multicast_n != 2)
    return fmt::format("multicast_n {} (1 or 2)", c.multicast_n);
  if (c.split_k != 1 && c.split_k != 2 && c.split_k != 3 && c.split_k != 4 && c.split_k != 8)
    return fmt::format("split_k {} (1, 2, 3, 4 or 8)", c.split_k);
  if (c.multicast_n > 1 && c.split_k > 1) return "multicast and split-K together";
  if (kind != Kind::kDense && c.cluster_size() > 1)
    return fmt::format("{} GEMMs use neither split-K nor multicast", to_string(kind));
  if (c.split_k > (k + 127) / 128)
    return fmt::format("split_k {} with {} K blocks", c.split_k, (k + 127) / 128);
  if (c.group_m < 1) return fmt::format("group_m {} (at least 1)", c.group_m);
  if (!split_fits(c.block_m, c.block_n, c.split_k))
    return fmt::format("split_k {} with {} x {} tiles (the other CTAs' FP32 partials leave "
                       "shared memory for fewer than {} stages)",
                       c.split_k, c.block_m, c.block_n, kMinSplitStages);
  const int deepest = max_stages(c.block_m, c.block_n, c.split_k);
  if (c.stages < 2 || c.stages > deepest)
    return fmt::format("stages {} (2 to {} for this block shape)", c.stages, deepest);
  return {};
}

int band_rows(int block_m, int k, Kind kind) {
  // Measured at M = 2048-16384 (docs/PERFORMANCE.md): bands of 32 block-rows against 8 are
  // 1-3% faster on an H200 at K = 512-1536 (7.8% on an H100 at 4096 x 32768 x 512, where the
  // 268 MB of output written per run evict B between bands of 8), level at K = 2048, and
  // about 1% slower at K >= 7168, where a band of 32 holds 29-67 MB of A.
  constexpr int64_t kBandBytes = int64_t(50) * 1024 * 1024 / 4;
  // Grouped: bands of 32 measured ~1% faster at K = 2048 (contiguous, 4-8 groups of 4096-8192
  // rows) but 0.5-1% slower at K = 7168 and 3.4% slower with 16 masked groups of 256 rows,
  // where a band spans 16 groups' B; no rule here covers both, so they keep 8.
  if (kind != Kind::kDense) return 8;
  for (int rows : {32, 16})
    if (int64_t(rows) * block_m * k <= kBandBytes) return rows;
  return 8;
}

std::vector<Config> candidate_configs(int /*n*/, int k, Kind kind) {
  const int k_blocks = (k + 127) / 128;
  std::vector<Config> configs;
  for (int block_m : {64, 128})
    for (int block_n : {64, 128}) {
      if (kind != Kind::kDense) {
        configs.push_back({block_m, block_n, max_stages(block_m, block_n), 8, 1, 1});
        continue;
      }
      for (int split : {1, 2, 3, 4, 8}) {
        if (split > k_blocks || !split_fits(block_m, block_n, split)) continue;
        configs.push_back({block_m, block_n, max_stages(block_m, block_n, split), 8, 1, split});
      }
      configs.push_back({block_m, block_n, max_stages(block_m, block_n), 8, 2, 1});
    }
  // 128 x 176, 128 x 192 and 128 x 256 tiles: more MMA work per K block for the same
  // per-block overhead (neither split-K nor multicast: split over 2-4 CTAs measured 4-15%
  // slower than the best narrow candidate on every shape tried, docs/PERFORMANCE.md). 176
  // divides N = 2112 (DeepSeek-V3's q/kv down-projection) into 12 tiles where 192 makes 11,
  // and at mid M fills the waves better for N = 4096 and 7168 too.
  for (int block_n : {176, 192, 256})
    if (width_fits_kind(block_n, kind))
      configs.push_back({128, block_n, max_stages(128, block_n), 8, 1, 1});
  for (Config& c : configs) c.group_m = band_rows(c.block_m, k, kind);
  return configs;
}

namespace {

// Microseconds one CTA spends per 128-K block of its tile, by block shape, and the fixed costs
// of a launch and of a split-K cluster reduction: fitted to kiln tune's timings of every
// candidate on 18 dense shapes (M 16..8192) on an H200 (docs/PERFORMANCE.md). Larger tiles
// cost more per K block but do more MMA work per byte read and per step of the math loop.
// 128 x 256 was fitted later, to 10 shapes (M 256..4096), relative to 128 x 192; 128 x 128
// lowered from 0.44 once those tiles took K blocks in pairs (measured 0.40-0.41 at M = 256
// and 4096). The 64-row and 128 x 64 constants and the 3-way split were refitted after the
// pairs (which sped up 64-row tiles most) to every candidate's time on 73 shapes (M 64..4096):
// the stale ones picked 128 x 128 split two ways at 192 x 4096 x 7168, 25.7 us against 18.6
// for 64 x 128 tiles. 128 x 176 from 4096 x 2112 x 7168 (96.7 us in three waves; 4096 x 4096 x
// 7168 then predicted 187.3, measured 189.0-189.4).
// The epilogue of a tile: both math warpgroups convert and store it while the tensor cores
// idle. Fitted with the K-block costs on the 10 shapes above as about 17 ns per KiB of BF16
// output (per shape: 64 x 64 0.22, 128 x 128 0.50, 128 x 192 0.84, 128 x 256 1.11 us), which
// the values below are. It is what makes wide tiles lose at small K. 128 x 256 refitted from
// 1.088 after every candidate was timed again on the 32 H200 shapes with M >= 768
// (2026-11-27): with the early scale reads its tiles beat 128 x 192 at N = 24576, K = 1536
// and N = 32768, K = 512 (0.1-1.0% at M = 960-4096), where 1.088 picked 192.
struct TileCost {
  double k_block_us;  // per 128-K block
  double tile_us;     // per tile: the epilogue
};
TileCost tile_cost(int block_m, int block_n) {
  if (block_m == 128)
    return block_n == 256   ? TileCost{0.729, 1.008}
           : block_n == 192 ? TileCost{0.549, 0.816}
           : block_n == 176 ? TileCost{0.526, 0.748}
           : block_n == 128 ? TileCost{0.41, 0.544}
                            : TileCost{0.30, 0.272};
  return block_n == 128 ? TileCost{0.26, 0.272} : TileCost{0.185, 0.136};
}
constexpr double kLaunchUs = 6.05;  // 6.19 before the epilogue term, less one 64 x 64's
double split_k_us(int split_k) {
  return split_k == 1 ? 0.0 : split_k == 2 ? 3.05 : split_k == 3 ? 3.6 : 5.42;
}
// Memory bandwidth the estimate assumes (GB/s): the H200's ~4.3 TB/s copy rate, less what a
// GEMM's access pattern loses. Only memory-bound shapes (small M) feel it.
constexpr double kBandwidthGBs = 4000;

// Tile waves from 20 waves of 128 x 128 tiles on count as a fraction: the last partial wave
// no longer matters much, and the choice stops depending on M (heuristic_m_breakpoints relies
// on it). Below that the persistent kernel takes as long as its busiest SM: whole waves (at
// M = 4096, N = 7168: 10 waves of 128 x 192 tiles against 7 of 128 x 256, 772 vs 718 us).
constexpr int kFractionalWaves = 20;

// Clusters of 4 place on about 120 of 132 SMs (GPCs are not multiples of 4).
int cluster_capacity(int cluster, int num_sms) {
  return cluster <= 2 ? num_sms : num_sms * 10 / 11;
}

}  // namespace

TimeEstimate estimate_time(const Config& c, int m, int n, int k, int num_sms) {
  const int tiles = num_tiles(c, m, n);
  const int ctas = tiles * c.split_k;
  const int capacity = cluster_capacity(c.cluster_size(), num_sms);
  const int whole_waves = (ctas + capacity - 1) / capacity;
  const bool fractional = num_tiles(Config{}, m, n) >= kFractionalWaves * num_sms;
  const double waves = fractional ? double(ctas) / num_sms : whole_waves;
  // (With split-K, CTA 0 takes two more K blocks where each CTA has at least 8: not modelled;
  // split_k_us was fitted before that and before the push reduction, and is kept: a lower
  // value picked worse splits, docs/PERFORMANCE.md.)
  const int k_blocks = ((k + 127) / 128 + c.split_k - 1) / c.split_k;
  const double fixed_us = kLaunchUs + split_k_us(c.split_k);
  TimeEstimate e;
  const TileCost cost = tile_cost(c.block_m, c.block_n);
  e.compute_us = fixed_us + waves * (k_blocks * cost.k_block_us + cost.tile_us);
  // The last wave's output is written after its last MMA, with nothing left to overlap it
  // (128 x 32768 x 512: one wave of 128 x 256 tiles writes 8 MiB at the end and loses to two
  // of 128 x 128, 12.3 vs 11.1 us).
  const int last_tiles = fractional ? std::min(tiles, num_sms / c.split_k)
                                    : tiles - (whole_waves - 1) * (capacity / c.split_k);
  // Above 64 rows M counts in whole 64-row blocks, like the tiles (heuristic_m_breakpoints
  // relies on it).
  const double rows = m <= 64 ? m : (m + 63) / 64 * 64.0;
  e.compute_us += last_tiles * 2.0 * std::min(rows, double(c.block_m)) * c.block_n /
                  kBandwidthGBs / 1e3;
  // Streaming the operands: slower when a partial last wave leaves SMs idle (fewer SMs
  // draw less bandwidth, though not proportionally less).
  const double busy = fractional ? 1.0 : double(ctas) / (double(whole_waves) * num_sms);
  const double bytes = double(n) * k + rows * k + 2.0 * rows * n;
  const double memory_us = bytes / kBandwidthGBs / 1e3 / (0.5 + 0.5 * busy);
  e.total_us = std::max(e.compute_us, fixed_us + memory_us);
  return e;
}

Config heuristic_config(int m, int n, int k, int num_sms, Kind kind) {
  // Every block shape and split (not multicast: over the 18 benchmark shapes it never beat
  // single CTAs, so only kiln tune picks it) by estimated time. Within 1%: where both are at
  // the memory floor, the one with more bytes in flight (stages x stage size x CTAs at once)
  // streams faster (128 x 24576 x 1536: 64 x 128 tiles, 8 stages, 16.3 us on an H200 and
  // 19.9 on an H100, against 128 x 192, 4 stages, 16.7 and 21.1); otherwise, and between
  // equals, the one with less compute time, which has more slack. Only 64-row tiles up to
  // 64 rows.
  const int k_blocks = (k + 127) / 128;
  // From kFractionalWaves waves of 128 x 128 tiles on, choose as at the first such M: the
  // partial last wave matters little there, and the choice stays put as M grows (the fixed
  // costs would otherwise tip near-ties one way or the other; heuristic_m_breakpoints relies
  // on it).
  const int n_blocks = (n + 127) / 128;
  const int64_t m_fractional =
      (int64_t(kFractionalWaves * num_sms + n_blocks - 1) / n_blocks - 1) * 128 + 1;
  if (m > m_fractional) m = static_cast<int>(m_fractional);
  // Bytes in flight: stages x stage size x CTAs resident at once (only near-ties need it).
  auto in_flight = [&](const Config& c) {
    return int64_t(max_stages(c.block_m, c.block_n, c.split_k)) * (c.block_m + c.block_n) *
           128 * std::min(num_tiles(c, m, n) * c.split_k, num_sms);
  };
  Config best;
  TimeEstimate best_e;
  bool have = false;
  for (const auto& [block_m, block_n] :
       {std::pair{128, 128}, {128, 176}, {128, 192}, {128, 256}, {128, 64}, {64, 128}, {64, 64}}) {
    if (m <= 64 && block_m != 64) continue;
    if (!width_fits_kind(block_n, kind)) continue;
    for (int split : {1, 2, 3, 4}) {
      // Split K only for dense GEMMs, up to 128 columns, when every cluster fits at once and
      // every split keeps a few K blocks to pipeline.
      if (split > 1 && (kind != Kind::kDense || block_n > 128 || k_blocks / split < 4 ||
                        !split_fits(block_m, block_n, split) ||
                        num_tiles(Config{block_m, block_n}, m, n) * split >
                            cluster_capacity(split, num_sms)))
        continue;
      const Config c{block_m, block_n, 0, 8, 1, split};  // stages: below, for the winner
      const TimeEstimate e = estimate_time(c, m, n, k, num_sms);
      bool better = !have || e.total_us < best_e.total_us * 0.99;
      if (!better && e.total_us < best_e.total_us * 1.01) {
        const bool streaming = e.total_us > e.compute_us && best_e.total_us > best_e.compute_us;
        const int64_t mine = streaming ? in_flight(c) : 0, theirs = streaming ? in_flight(best) : 0;
        better = mine != theirs ? mine > theirs : e.compute_us < best_e.compute_us;
      }
      if (better) best = c, best_e = e, have = true;
    }
  }
  best.stages = max_stages(best.block_m, best.block_n, best.split_k);
  best.group_m = band_rows(best.block_m, k, kind);
  return best;
}

std::vector<int> heuristic_m_breakpoints(int max_m, int n, int k, int num_sms, Kind kind) {
  // The heuristic depends on M only through M <= 64 and the numbers of 64- and 128-row blocks,
  // and is constant once the tiles fill the machine many times over: visit one M per 64-row
  // block until then.
  std::vector<int> ms;
  Config last{};
  for (int64_t m = 1; m <= max_m;) {
    const Config c = heuristic_config(static_cast<int>(m), n, k, num_sms, kind);
    if (ms.empty() || !(c == last)) ms.push_back(static_cast<int>(m)), last = c;
    // From kFractionalWaves waves of 128 x 128 tiles on, heuristic_config chooses as at the
    // first M there (this one), so the choice stops changing.
    if (num_tiles(Config{}, static_cast<int>(m), n) >= kFractionalWaves * num_sms) break;
    // the next M, or above 64 rows the first M of the next 64-row block
    m = m <= 64 ? m + 1 : (m + 63) / 64 * 64 + 1;
  }
  return ms;
}

std::string arch_name(int arch) { return fmt::format("sm_{}a", arch); }

std::string describe(const KernelSpec& s) {
  static const char* const kNames[] = {"dense", "grouped_contiguous", "grouped_offsets",
                                      "grouped_masked"};
  return fmt::format("sm{}_fp8_gemm_{} n={} k={} block={}x{} stages={}{}{}{}", s.arch,
                     kNames[static_cast<int>(s.kind)], s.n, s.k, s.config.block_m,
                     s.config.block_n, s.config.stages,
                     s.config.multicast_n > 1 ? fmt::format(" multicast={}", s.config.multicast_n) : "",
                     s.config.split_k > 1 ? fmt::format(" split_k={}", s.config.split_k) : "",
                     s.config.group_m != 8 ? fmt::format(" group_m={}", s.config.group_m) : "");
}

std::string config_name(const Config& c) {
  return fmt::format("{}x{}x{}{}{}{}", c.block_m, c.block_n, c.stages,
                     c.multicast_n > 1 ? fmt::format("m{}", c.multicast_n) : "",
                     c.split_k > 1 ? fmt::format("k{}", c.split_k) : "",
                     c.group_m != 8 ? fmt::format("g{}", c.group_m) : "");
}

bool parse_config_name(const std::string& name, Config* config) {
  Config c;
  int used = 0;
  if (std::sscanf(name.c_str(), "%dx%dx%d%n", &c.block_m, &c.block_n, &c.stages, &used) != 3)
    return false;
  const char* rest = name.c_str() + used;
  if (std::strncmp(rest, "m2", 2) == 0) c.multicast_n = 2, rest += 2;
  if (*rest == 'k' && std::sscanf(rest, "k%d%n", &c.split_k, &used) == 1) rest += used;
  if (*rest && (std::sscanf(rest, "g%d", &c.group_m) != 1 || c.group_m < 1)) return false;
  // Whatever the scans skipped or left (junk, signs, zeros, spaces) fails the round trip.
  if (config_name(c) != name) return false;
  *config = c;
  return true;
}

std::string config_json(const KernelSpec& s) {
  nlohmann::json j = {{"kind", to_string(s.kind)}, {"arch", arch_name(s.arch)},
                      {"n", s.n}, {"k", s.k}, {"block_m", s.config.block_m},
                      {"block_n", s.config.block_n}, {"stages", s.config.stages},
                      {"group_m", s.config.group_m}, {"multicast_n", s.config.multicast_n},
                      {"split_k", s.config.split_k}};
  return j.dump();
}

std::string name_expression(const KernelSpec& s) {
  return fmt::format("kiln::sm90_fp8_gemm<{}, {}, {}, {}, {}, {}, {}, {}, {}>",
                     static_cast<int>(s.kind), s.n, s.k,
                     s.config.block_m, s.config.block_n, s.config.stages, s.config.group_m,
                     s.config.multicast_n, s.config.split_k);
}

std::string kernel_source(const KernelSpec& s) {
  // The launch gives the kernel shared_memory_bytes(): the kernel's own layout must agree.
  const Config& c = s.config;
  return fmt::format(
      "// generated by kiln: {}\n"
      "#include \"kiln/ptx/wgmma.cuh\"\n"
      "{}"
      "#include \"kiln/gemm/sm90_fp8_gemm.cuh\"\n"
      "static_assert(kiln::Fp8GemmSmem<{}, {}, {}, {}>::kTotal == {},\n"
      "              \"the host's shared_memory_bytes() and the kernel's layout disagree\");\n",
      describe(s), jit::wgmma_fp8_definition(wgmma_n(c)), c.block_m, c.block_n, c.stages,
      c.split_k, shared_memory_bytes(c));
}

}  // namespace kiln::gemm
