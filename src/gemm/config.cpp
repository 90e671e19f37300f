#include "gemm/config.hpp"

#include <fmt/format.h>

#include <algorithm>
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

int threads_per_block(const Config& c) { return (c.block_m / 64 + 1) * 128; }

int shared_memory_bytes(const Config& c) {
  const int stage = (c.block_m + c.block_n) * 128;
  const int d = c.split_k > 1 ? c.block_m * (c.block_n + 4) * 4 : c.block_m * c.block_n * 2;
  const int scales = (c.stages * c.block_m + (c.stages + 3) / 4 * 4) * 4;
  return 1024 + c.stages * stage + d + scales + 2 * c.stages * 8;
}

int max_stages(int block_m, int block_n, int split_k) {
  // 4100 bytes are kept for the static group table of the grouped kinds.
  int stages = 1;
  while (stages < 8 && shared_memory_bytes({block_m, block_n, stages + 1, 8, 1, split_k}) + 4100 <=
                           kSharedMemoryLimit)
    ++stages;
  return stages;
}

int num_tiles(const Config& c, int m, int n) {
  return (m + c.block_m - 1) / c.block_m * ((n + c.block_n - 1) / c.block_n);
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
      for (int split : {1, 2, 4, 8}) {
        if (split > k_blocks) continue;
        configs.push_back({block_m, block_n, max_stages(block_m, block_n, split), 8, 1, split});
      }
      configs.push_back({block_m, block_n, max_stages(block_m, block_n), 8, 2, 1});
    }
  return configs;
}

namespace {

// Relative time of one 128-K block of a tile, by block shape, when the tiles fill the machine
// (kiln tune on an H200, M = 4096, N = 2112, K = 7168: 126.6 / 150.1 / 149.0 / 187.3 us over
// 5 / 8 / 9 / 16 waves). Smaller tiles cost less each but do less work per byte of shared
// memory read by the tensor cores, and a 64-row tile has one math warpgroup.
double k_block_cost(int block_m, int block_n) {
  if (block_m == 128) return block_n == 128 ? 1.0 : 0.74;
  return block_n == 128 ? 0.655 : 0.46;
}

// The block shape with the fewest estimated tile waves x cost for an M x N problem whose
// 128 x 128 tiles at least fill the machine: the partial last wave is what it weighs.
void choose_block_shape(int m, int n, int num_sms, Config* c) {
  double best = 0;
  for (int block_m : {128, 64})
    for (int block_n : {128, 64}) {
      const Config shape{block_m, block_n};
      const int waves = (num_tiles(shape, m, n) + num_sms - 1) / num_sms;
      const double cost = waves * k_block_cost(block_m, block_n);
      if (best == 0 || cost < best * 0.99) best = cost, c->block_m = block_m, c->block_n = block_n;
    }
}

}  // namespace

Config heuristic_config(int m, int n, int k, int num_sms, Kind kind) {
  Config c;
  c.block_m = m <= 64 ? 64 : 128;
  const int m_blocks = (m + c.block_m - 1) / c.block_m;
  // Narrow tiles when wide ones would leave most SMs idle.
  c.block_n = m_blocks * ((n + 127) / 128) * 2 <= num_sms ? 64 : 128;
  // Above 64 rows, when 128 x 128 tiles fill the machine: the block shape whose last wave
  // wastes least (e.g. M = 1024, N = 2112: 136 tiles of 128 x 128 are 2 waves on 132 SMs,
  // 264 of 128 x 64 exactly 2: 41.4 instead of 52.3 us).
  if (m > 64 && num_tiles(Config{}, m, n) >= num_sms) choose_block_shape(m, n, num_sms, &c);
  const int tiles = num_tiles(c, m, n);
  const int k_blocks = (k + 127) / 128;
  // Fewer tiles than SMs: split K across a cluster while every cluster still fits at once
  // (clusters of 4 place on about 120 of 132 SMs: GPCs are not multiples of 4) and every
  // split keeps a few K blocks to pipeline.
  auto capacity = [&](int cluster) { return cluster <= 2 ? num_sms : num_sms * 10 / 11; };
  while (kind == Kind::kDense && c.split_k < 4 && tiles * c.split_k * 2 <= capacity(c.split_k * 2) &&
         k_blocks / (c.split_k * 2) >= 4)
    c.split_k *= 2;
  // No multicast pairs: over the 18 benchmark shapes they never beat single CTAs (-0.4 to
  // -2.5% at M = 4096; docs/PERFORMANCE.md), so only kiln tune picks them.
  c.stages = max_stages(c.block_m, c.block_n, c.split_k);
  c.group_m = 8;
  return c;
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
    // From 10 waves of 128 x 128 tiles on, choose_block_shape keeps 128 x 128 (the others'
    // partial waves no longer outweigh their cost per K block) and nothing else changes.
    if (num_tiles(Config{}, static_cast<int>(m), n) >= 10 * num_sms) break;
    // the next M, or above 64 rows the first M of the next 64-row block
    m = m <= 64 ? m + 1 : (m + 63) / 64 * 64 + 1;
  }
  return ms;
}

std::string arch_name(int arch) { return fmt::format("sm_{}a", arch); }

std::string describe(const KernelSpec& s) {
  static const char* const kNames[] = {"dense", "grouped_contiguous", "grouped_offsets",
                                      "grouped_masked"};
  return fmt::format("sm{}_fp8_gemm_{} n={} k={} block={}x{} stages={}{}{}", s.arch,
                     kNames[static_cast<int>(s.kind)], s.n, s.k, s.config.block_m,
                     s.config.block_n, s.config.stages,
                     s.config.multicast_n > 1 ? fmt::format(" multicast={}", s.config.multicast_n) : "",
                     s.config.split_k > 1 ? fmt::format(" split_k={}", s.config.split_k) : "");
}

std::string config_name(const Config& c) {
  return fmt::format("{}x{}x{}{}{}", c.block_m, c.block_n, c.stages,
                     c.multicast_n > 1 ? fmt::format("m{}", c.multicast_n) : "",
                     c.split_k > 1 ? fmt::format("k{}", c.split_k) : "");
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
  return fmt::format(
      "// generated by kiln: {}\n"
      "#include \"kiln/ptx/wgmma.cuh\"\n"
      "{}"
      "#include \"kiln/gemm/sm90_fp8_gemm.cuh\"\n",
      describe(s), jit::wgmma_fp8_definition(s.config.block_n));
}

}  // namespace kiln::gemm
