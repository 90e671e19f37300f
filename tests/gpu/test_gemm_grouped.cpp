// [gpu] grouped (MoE) FP8 GEMMs against a per-group FP64 reference: contiguous layouts
// (group index per row, or row offsets) and the masked layout, including CUDA graph replay
// with new masked_m values. Outputs are poisoned first; rows that are not some group's
// valid rows must stay untouched.
#include <catch2/catch.hpp>

#include <numeric>

#include "gemm/fp8_host.hpp"
#include "gemm/launch.hpp"
#include "gpu_support.hpp"
#include "kiln/error.hpp"
#include "kiln/runtime.hpp"

namespace {

using kiln::GroupedLayout;
using kiln::ScaleLayout;
using kiln::driver::DeviceBuffer;

constexpr double kTolerance = 4e-3;

struct Grouped {
  GroupedLayout layout;
  int groups, n, k;
  int m = 0;                // rows of A (contiguous) or rows per group (masked)
  std::vector<int> counts;  // valid rows per group
  std::vector<int> starts;  // first row of each group in A / D
  std::vector<int> info;    // group_info as uploaded
  // Column-major SA: [ceil(k/128), m] (masked: per group), else [rows, ceil(k/128)].
  ScaleLayout sa_layout = ScaleLayout::kRowMajor;
  DeviceBuffer a, b, sa, sb, d, info_buf;

  // pad_last = false: the by-row layout's last group is not padded (m ends with its rows).
  Grouped(GroupedLayout l, std::vector<int> rows, int n_, int k_, int m_per_group = 0,
          bool pad_last = true)
      : layout(l), groups(static_cast<int>(rows.size())), n(n_), k(k_), counts(std::move(rows)) {
    const int align = kiln::grouped_m_alignment();
    if (layout == GroupedLayout::kMasked) {
      m = m_per_group;
      for (int g = 0; g < groups; ++g) starts.push_back(g * m);
      info = counts;
    } else {
      for (int g = 0; g < groups; ++g) {
        starts.push_back(m);
        const bool pad = layout == GroupedLayout::kContiguousByRow && (pad_last || g + 1 < groups);
        m += pad ? (counts[g] + align - 1) / align * align : counts[g];
      }
      if (layout == GroupedLayout::kContiguousByRow) {
        info.assign(m, -1);  // padding rows
        for (int g = 0; g < groups; ++g)
          std::fill(info.begin() + starts[g], info.begin() + starts[g] + counts[g], g);
      } else {
        info = starts;
        info.push_back(m);
      }
    }
    const int kb = (k + 127) / 128, nb = (n + 127) / 128;
    const size_t a_rows = layout == GroupedLayout::kMasked ? size_t(m) * groups : size_t(m);
    auto& rng = kiln::test::test_rng();
    a = DeviceBuffer(std::max<size_t>(a_rows * k, 16));
    b = DeviceBuffer(size_t(groups) * n * k);
    sa = DeviceBuffer(std::max<size_t>(a_rows * kb, 1) * 4);
    sb = DeviceBuffer(size_t(groups) * nb * kb * 4);
    d = DeviceBuffer(std::max<size_t>(a_rows * n, 8) * 2);
    info_buf = DeviceBuffer(std::max<size_t>(info.size(), 1) * 4);
    if (a_rows) a.upload(kiln::gemm::random_e4m3(a_rows * k, rng));
    b.upload(kiln::gemm::random_e4m3(size_t(groups) * n * k, rng));
    if (a_rows) sa.upload(kiln::gemm::random_scales(a_rows * kb, rng));
    sb.upload(kiln::gemm::random_scales(size_t(groups) * nb * kb, rng));
    if (!info.empty()) info_buf.upload(info);
    poison();
  }

  void poison() { KILN_CU(kiln::driver::get().cuMemsetD8(d.ptr(), 0xFF, d.bytes())); }

  void set_masked_m(const std::vector<int>& rows) {
    counts = rows;
    info = rows;
    info_buf.upload(info);
  }

  kiln::GroupedGemmFp8Args args() const {
    kiln::GroupedGemmFp8Args x;
    x.layout = layout, x.num_groups = groups, x.m = m, x.n = n, x.k = k;
    x.a = a.get_as(), x.b = b.get_as(), x.sa = sa.get_as<float>(), x.sb = sb.get_as<float>();
    x.d = d.get_as(), x.group_info = info_buf.get_as<int>(), x.sa_layout = sa_layout;
    return x;
  }

  // Every group's valid rows match the reference; every other row is untouched.
  void check() const {
    KILN_CU(kiln::driver::get().cuCtxSynchronize());
    const size_t rows = layout == GroupedLayout::kMasked ? size_t(m) * groups : size_t(m);
    const auto out = d.download<uint16_t>(rows * n);
    const int kb = (k + 127) / 128, nb = (n + 127) / 128;
    std::vector<char> valid(rows, 0);
    for (int g = 0; g < groups; ++g) {
      for (int r = 0; r < counts[g]; ++r) valid[starts[g] + r] = 1;
      if (counts[g] == 0) continue;
      // Group g's first SA element and its strides.
      const bool row_major = sa_layout == ScaleLayout::kRowMajor;
      const size_t sa_first = row_major ? size_t(starts[g]) * kb
                              : layout == GroupedLayout::kMasked ? size_t(g) * kb * m
                                                                  : size_t(starts[g]);
      const auto ref = kiln::test::reference(
          a.ptr() + size_t(starts[g]) * k, b.ptr() + size_t(g) * n * k, sa.ptr() + sa_first * 4,
          sb.ptr() + size_t(g) * nb * kb * 4, counts[g], n, k, k, k, row_major ? kb : 1,
          row_major ? 1 : m, kb);
      size_t unwritten = 0;
      const double err =
          kiln::test::rel_l2_rows(out, n, starts[g], counts[g], n, ref, &unwritten);
      INFO("group " << g << " of " << groups << ", rows " << counts[g] << ", n " << n << ", k "
                    << k << ": rel_l2 " << err << ", unwritten " << unwritten);
      CHECK(unwritten == 0);
      CHECK(err < kTolerance);
    }
    size_t touched = 0;
    for (size_t r = 0; r < rows; ++r)
      if (!valid[r])
        for (int j = 0; j < n; ++j) touched += out[r * n + j] != 0xFFFF;
    CHECK(touched == 0);
  }
};

std::vector<int> random_counts(int groups, int lo, int hi) {
  std::uniform_int_distribution<int> dist(lo, hi);
  std::vector<int> counts(groups);
  for (auto& c : counts) c = dist(kiln::test::test_rng());
  return counts;
}

}  // namespace

TEST_CASE("grouped contiguous GEMM on the DeepSeek-V3 MoE shapes", "[gpu][grouped]") {
  KILN_REQUIRE_GPU();
  const int shapes[][4] = {{4, 8192, 4096, 7168}, {4, 8192, 7168, 2048},
                           {8, 4096, 4096, 7168}, {8, 4096, 7168, 2048}};
  for (const auto& s : shapes) {
    Grouped p(GroupedLayout::kContiguousByRow, std::vector<int>(s[0], s[1]), s[2], s[3]);
    kiln::gemm_fp8_grouped(p.args(), nullptr);
    p.check();
  }
}

TEST_CASE("grouped masked GEMM on the DeepSeek-V3 decode shapes", "[gpu][grouped]") {
  KILN_REQUIRE_GPU();
  const int shapes[][4] = {{1, 1024, 4096, 7168}, {2, 512, 4096, 7168}, {4, 256, 4096, 7168},
                           {4, 256, 7168, 2048},  {16, 256, 4096, 7168}};
  for (const auto& s : shapes) {
    auto counts = random_counts(s[0], 0, s[1]);
    counts[0] = s[1];  // one full group
    Grouped p(GroupedLayout::kMasked, counts, s[2], s[3], s[1]);
    auto args = p.args();
    args.expected_m = s[1] / 2;
    kiln::gemm_fp8_grouped(args, nullptr);
    p.check();
  }
}

TEST_CASE("grouped GEMM edge cases", "[gpu][grouped]") {
  KILN_REQUIRE_GPU();
  SECTION("an expert with zero rows, padding rows, uneven counts") {
    Grouped p(GroupedLayout::kContiguousByRow, {300, 0, 1, 129, 77}, 2112, 7168);
    kiln::gemm_fp8_grouped(p.args(), nullptr);
    p.check();
  }
  SECTION("all rows in one expert") {
    Grouped p(GroupedLayout::kContiguousByRow, {0, 0, 1000, 0}, 1024, 1536);
    kiln::gemm_fp8_grouped(p.args(), nullptr);
    p.check();
  }
  SECTION("G = 1 (a dense GEMM by another name)") {
    Grouped p(GroupedLayout::kContiguousByRow, {517}, 7168, 2048);
    kiln::gemm_fp8_grouped(p.args(), nullptr);
    p.check();
  }
  SECTION("G = 256, row offsets with arbitrary counts (no padding)") {
    Grouped p(GroupedLayout::kContiguousByOffset, random_counts(256, 0, 40), 512, 256);
    kiln::gemm_fp8_grouped(p.args(), nullptr);
    p.check();
  }
  SECTION("G = 256 masked") {
    Grouped p(GroupedLayout::kMasked, random_counts(256, 0, 64), 256, 512, 64);
    kiln::gemm_fp8_grouped(p.args(), nullptr);
    p.check();
  }
  SECTION("masked_m = 0 everywhere and = Mmax everywhere") {
    Grouped p(GroupedLayout::kMasked, std::vector<int>(4, 0), 4096, 7168, 128);
    kiln::gemm_fp8_grouped(p.args(), nullptr);
    p.check();
    p.set_masked_m(std::vector<int>(4, 128));
    kiln::gemm_fp8_grouped(p.args(), nullptr);
    p.check();
  }
}

TEST_CASE("every grouped candidate configuration is correct", "[gpu][grouped][configs]") {
  KILN_REQUIRE_GPU();
  // Row-major SA, and column-major SA ([ceil(k/128), m], per group when masked).
  Grouped by_row(GroupedLayout::kContiguousByRow, {200, 0, 130}, 1032, 1040);
  Grouped masked(GroupedLayout::kMasked, {33, 64, 0}, 1032, 1040, 64);
  Grouped masked_col(GroupedLayout::kMasked, {33, 64, 17}, 1032, 1040, 64);
  masked_col.sa_layout = ScaleLayout::kColMajor;
  Grouped by_offset_col(GroupedLayout::kContiguousByOffset, {45, 0, 130}, 1032, 1040);
  by_offset_col.sa_layout = ScaleLayout::kColMajor;
  for (Grouped* p : {&by_row, &masked, &masked_col, &by_offset_col})
    for (const auto& config : kiln::gemm::candidate_configs(
             1032, 1040,
             p->layout == GroupedLayout::kMasked ? kiln::gemm::Kind::kGroupedMasked
                                                 : kiln::gemm::Kind::kGroupedByRow)) {
      INFO("layout " << int(p->layout) << " sa_layout " << int(p->sa_layout) << " block "
                     << config.block_m << "x" << config.block_n);
      p->poison();
      kiln::gemm::launch_fp8_grouped(kiln::Runtime::instance(), p->args(), &config, nullptr);
      p->check();
    }
}

TEST_CASE("contiguous groups: partial tiles between full ones and several tiles per CTA",
          "[gpu][grouped][configs]") {
  KILN_REQUIRE_GPU();
  // Enough tiles (~4000 rows) that every CTA takes several, full ones and a group's end
  // (by row: a block whose last rows are padding, the last row alone too (127), all-padding
  // blocks in 64-row tiles (129), and a last group without padding, so the last block ends
  // at m; by offset: blocks shared with the next group), in every candidate configuration.
  auto counts = random_counts(12, 300, 700);
  counts[0] = 3 * 128, counts[1] = 129, counts[2] = 0, counts[3] = 127, counts[11] = 201;
  for (const GroupedLayout layout :
       {GroupedLayout::kContiguousByRow, GroupedLayout::kContiguousByOffset}) {
    for (const bool pad_last : {true, false}) {
      if (layout == GroupedLayout::kContiguousByOffset && !pad_last) continue;  // no padding
      Grouped p(layout, counts, 4096, 2048, 0, pad_last);
      for (const auto& config :
           kiln::gemm::candidate_configs(4096, 2048, kiln::gemm::Kind::kGroupedByRow)) {
        INFO("layout " << int(layout) << " pad_last " << pad_last << " block " << config.block_m
                       << "x" << config.block_n << " stages " << config.stages);
        p.poison();
        kiln::gemm::launch_fp8_grouped(kiln::Runtime::instance(), p.args(), &config, nullptr);
        p.check();
      }
    }
  }
}

TEST_CASE("a captured masked GEMM replays correctly with new masked_m", "[gpu][grouped]") {
  KILN_REQUIRE_GPU();
  const auto& cu = kiln::driver::get();
  CUstream stream = nullptr;
  KILN_CU(cu.cuStreamCreate(&stream, CU_STREAM_NON_BLOCKING));
  Grouped p(GroupedLayout::kMasked, {10, 200, 0, 256}, 4096, 7168, 256);
  kiln::warm_up_gemm_fp8_grouped(GroupedLayout::kMasked, 256 * 4, 4096, 7168);
  auto args = p.args();
  args.expected_m = 128;
  kiln::gemm_fp8_grouped(args, stream);  // loads the kernel outside capture
  KILN_CU(cu.cuStreamSynchronize(stream));

  CUgraph graph = nullptr;
  KILN_CU(cu.cuStreamBeginCapture(stream, CU_STREAM_CAPTURE_MODE_THREAD_LOCAL));
  kiln::gemm_fp8_grouped(args, stream);
  KILN_CU(cu.cuStreamEndCapture(stream, &graph));
  CUgraphExec exec = nullptr;
  KILN_CU(cu.cuGraphInstantiate(&exec, graph, 0));
  for (const auto& rows : std::vector<std::vector<int>>{
           {10, 200, 0, 256}, {256, 0, 1, 77}, {0, 0, 0, 0}, {128, 128, 128, 128}}) {
    p.set_masked_m(rows);
    p.poison();
    KILN_CU(cu.cuGraphLaunch(exec, stream));
    KILN_CU(cu.cuStreamSynchronize(stream));
    p.check();
  }
  cu.cuGraphExecDestroy(exec);
  cu.cuGraphDestroy(graph);
  cu.cuStreamDestroy(stream);
}
