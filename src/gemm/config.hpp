// Kernel configurations of the FP8 GEMM, the heuristic that picks one, and the source that
// instantiates one.
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "kiln/gemm.hpp"

namespace kiln::gemm {

// Values match GemmKind in kernels/kiln/scheduler/tile_scheduler.cuh.
enum class Kind : uint8_t { kDense = 0, kGroupedByRow = 1, kGroupedByOffset = 2, kGroupedMasked = 3 };
const char* to_string(Kind kind);  // "dense", "grouped-contiguous", ...
bool parse_kind(const std::string& name, Kind* kind);  // the inverse of to_string
Kind kind_of(GroupedLayout layout);
GroupedLayout layout_of(Kind kind);  // a grouped kind's layout

struct Config {
  int block_m = 128;  // 64 (one math warpgroup) or 128 (two)
  int block_n = 128;  // 64, 128, or 176 (dense) / 192 / 256 (block_m 128, no split-K or multicast)
  int stages = 4;     // depth of the shared-memory ring
  int group_m = 8;    // rasterization: block-rows per band of tiles (band_rows)
  int multicast_n = 1;  // 2: CTA pairs on adjacent N blocks share A by TMA multicast
  int split_k = 1;      // > 1: a cluster of split_k CTAs splits K; partials pushed to CTA 0
  int cluster_size() const { return multicast_n * split_k; }
  friend bool operator==(const Config& a, const Config& b) {
    return a.block_m == b.block_m && a.block_n == b.block_n && a.stages == b.stages &&
           a.group_m == b.group_m && a.multicast_n == b.multicast_n && a.split_k == b.split_k;
  }
};

// One compiled kernel: everything that is a template argument or a compile option.
struct KernelSpec {
  Kind kind = Kind::kDense;
  int arch = 90;  // sm_90a
  int n = 0;
  int k = 0;
  Config config;
  friend bool operator==(const KernelSpec& a, const KernelSpec& b) {
    return a.kind == b.kind && a.arch == b.arch && a.n == b.n && a.k == b.k &&
           a.config == b.config;
  }
};

struct KernelSpecHash {
  size_t operator()(const KernelSpec& s) const noexcept;
};

inline constexpr int kSharedMemoryLimit = 232448;  // sm_90 opt-in maximum per block

int threads_per_block(const Config& config);
// Columns of one wgmma: the tile's, except 256-column tiles, which issue two 128-column
// batches per K block (one per B scale block) so that their accumulators fit in registers.
int wgmma_n(const Config& config);
// B scale values a stage holds for a tile of block_n columns: one per 128-column scale block
// it spans at most, or for 176 columns (a copy of the K loop per four tile starts) one per
// scale slot a tile takes (7), padded to 8 for 16-byte loads. Mirrors kSbPerStage in the
// kernel (the generated source asserts the shared-memory total).
int sb_per_stage(int block_n);
int shared_memory_bytes(const Config& config);  // mirrors Fp8GemmSmem in the kernel
int max_stages(int block_m, int block_n, int split_k = 1);
// Split-K keeps the other CTAs' FP32 partials in shared memory next to the ring: a split is
// offered only where that leaves at least kMinSplitStages stages (128 x 128 tiles split two
// ways, 64 x 128 and 128 x 64 up to four ways, 64 x 64 up to eight).
inline constexpr int kMinSplitStages = 3;
bool split_fits(int block_m, int block_n, int split_k);
// Tiles (work units of one CTA) of an M x N problem.
int num_tiles(const Config& config, int m, int n);

// Empty if the kernel supports `config` for (n, k, kind), else what is wrong with it (for
// configurations from outside kiln, e.g. a hand-edited tuning database).
std::string check_config(const Config& config, int n, int k, Kind kind);
// Block-rows per band of the tile order (Config::group_m) for tiles of block_m rows: tiles go
// M first within a band, so a band's A rows stay in L2 while it sweeps N and each B block is
// read from memory once per band. Dense: 32, else 16, whose A band (group_m x block_m x k
// bytes) fits a quarter of the 50 MiB L2 of an H100 (the H200 has 60), else 8; grouped: 8.
int band_rows(int block_m, int k, Kind kind);
// Every configuration the kernel supports for (n, k), deepest pipeline first.
std::vector<Config> candidate_configs(int n, int k, Kind kind = Kind::kDense);
// Estimated time of a configuration for an M x N x K problem on num_sms SMs, from a model
// fitted to H200 timings: compute_us counts tile waves x (K blocks x cost per K block + the
// tile's epilogue) plus fixed costs; total_us is at least the time to stream the operands.
struct TimeEstimate {
  double total_us = 0, compute_us = 0;
};
TimeEstimate estimate_time(const Config& config, int m, int n, int k, int num_sms);
// The configuration gemm_fp8 uses for (m, n, k) on a device with num_sms SMs: the one with
// the least estimated time (see config.cpp for the candidates). For grouped kinds m is the
// total rows (contiguous) or expected rows per group times num_groups (masked); they use
// neither split-K nor multicast.
Config heuristic_config(int m, int n, int k, int num_sms, Kind kind = Kind::kDense);
// M values at which heuristic_config can change for (n, k): warm-up compiles one per bucket.
std::vector<int> heuristic_m_breakpoints(int max_m, int n, int k, int num_sms,
                                        Kind kind = Kind::kDense);

std::string arch_name(int arch);  // 90 -> "sm_90a"
std::string describe(const KernelSpec& spec);
// Short name of a configuration for tables: block_m x block_n x stages, then "m2" for
// multicast pairs, "kN" for split-K over N CTAs and "gN" for bands of N block-rows other than
// 8 ("128x64x7k2", "128x256x3g32").
std::string config_name(const Config& config);
// The inverse of config_name; false if `name` is not one.
bool parse_config_name(const std::string& name, Config* config);
std::string config_json(const KernelSpec& spec);
std::string kernel_source(const KernelSpec& spec);
std::string name_expression(const KernelSpec& spec);

}  // namespace kiln::gemm
