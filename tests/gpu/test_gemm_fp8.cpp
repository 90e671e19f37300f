// [gpu] correctness of the dense FP8 GEMM against an FP64 reference on random data.
#include <catch2/catch.hpp>

#include <filesystem>

#include "gemm/launch.hpp"
#include "gpu_support.hpp"
#include "kiln/error.hpp"
#include "kiln/runtime.hpp"

namespace {

using kiln::ScaleLayout;
using kiln::test::Fp8Problem;

// BF16 rounding of the output alone gives about 1.7e-3 on random data.
constexpr double kTolerance = 4e-3;

void check_problem(Fp8Problem& p) {
  kiln::gemm_fp8(p.args(), nullptr);
  const auto d = p.download_d();
  const auto ref = kiln::test::reference(p);
  const auto c = kiln::test::compare(p, d, ref);
  INFO("m=" << p.m << " n=" << p.n << " k=" << p.k << " lda=" << p.lda << " ldd=" << p.ldd
            << " layout=" << (p.sa_layout == ScaleLayout::kRowMajor ? "row" : "col")
            << " rel_l2=" << c.rel_l2 << " unwritten=" << c.unwritten);
  CHECK(c.unwritten == 0);
  CHECK(c.outside_touched == 0);
  CHECK(c.rel_l2 < kTolerance);
}

// The GEMM with a forced configuration (as kiln tune or the tests of every candidate run it):
// every output element written and close to the FP64 reference.
kiln::test::Comparison check_forced(Fp8Problem& p, const kiln::gemm::Config& config) {
  const auto ref = kiln::test::reference(p);
  p.poison_d();
  kiln::gemm::launch_fp8(kiln::Runtime::instance(), p.args(), &config, nullptr);
  const auto c = kiln::test::compare(p, p.download_d(), ref);
  INFO("m=" << p.m << " n=" << p.n << " k=" << p.k << " ldd=" << p.ldd << " block="
            << config.block_m << "x" << config.block_n << " split_k=" << config.split_k
            << " group_m=" << config.group_m
            << (p.sa_layout == ScaleLayout::kColMajor ? " column-major SA" : "")
            << " rel_l2=" << c.rel_l2);
  CHECK(c.unwritten == 0);
  CHECK(c.rel_l2 < kTolerance);
  return c;
}

}  // namespace

TEST_CASE("dense FP8 GEMM matches FP64 on the DeepSeek-V3 shapes", "[gpu]") {
  KILN_REQUIRE_GPU();
  const int nk[][2] = {{2112, 7168}, {24576, 1536}, {32768, 512},
                       {7168, 16384}, {4096, 7168},  {7168, 2048}};
  for (int m : {64, 128, 4096})
    for (const auto& s : nk) {
      auto p = Fp8Problem::make(m, s[0], s[1]);
      check_problem(*p);
    }
}

TEST_CASE("dense FP8 GEMM handles odd shapes", "[gpu]") {
  KILN_REQUIRE_GPU();
  const int shapes[][3] = {{1, 2112, 7168},  {17, 4096, 7168}, {300, 7168, 2048},
                           {4097, 2112, 7168}, {1, 7168, 16384}, {33, 200, 400},
                           {129, 72, 144},    {65, 1032, 1040}, {5, 8, 16},
                           {257, 24576, 1536}};
  for (const auto& s : shapes) {
    auto p = Fp8Problem::make(s[0], s[1], s[2]);
    check_problem(*p);
  }
}

TEST_CASE("bands of block-rows taller than M and a partial last band", "[gpu]") {
  KILN_REQUIRE_GPU();
  // The heuristic's bands of 32 block-rows (band_rows) over 36 block-rows of 128: a band of
  // 32 and one of 4, the last block-row partial, 180 tiles of 128 x 256 (more than the SMs);
  // over 33 block-rows of 64 with 64 x 128 tiles; and bands taller than all of M (with
  // multicast pairs in the last).
  check_forced(*Fp8Problem::make(4500, 1032, 512), {128, 256, 3, 32});
  check_forced(*Fp8Problem::make(2100, 1032, 512), {64, 128, 8, 32});
  check_forced(*Fp8Problem::make(1000, 2112, 1024), {128, 176, 4, 16});
  check_forced(*Fp8Problem::make(300, 1032, 512), {128, 128, 5, 32, 2});
}

TEST_CASE("dense FP8 GEMM on small shapes (for compute-sanitizer)", "[gpu][small]") {
  KILN_REQUIRE_GPU();
  // K = 2048 has more K blocks than stages, so every ring slot is reused.
  const int shapes[][3] = {{33, 200, 400}, {129, 72, 144}, {300, 256, 512}, {64, 128, 128},
                           {96, 256, 2048}, {200, 2112, 2048}};
  for (const auto& s : shapes) {
    auto p = Fp8Problem::make(s[0], s[1], s[2]);
    check_problem(*p);
  }
}

TEST_CASE("split-K on small shapes (for compute-sanitizer)", "[gpu][small][split]") {
  KILN_REQUIRE_GPU();
  // racecheck does not finish these kernels (CTA 0 waits on a barrier that the other CTAs'
  // stores complete; it hangs there under racecheck only), so scripts/device-check.sh runs
  // racecheck on [small]~[split] and memcheck and synccheck on all of [small].
  // One and two math warpgroups, two to four CTAs per cluster: the other CTAs push their
  // partials into CTA 0's shared memory while it may still be in its own K loop, and exit.
  // Partial M and N tiles; both SA layouts.
  const kiln::gemm::Config configs[] = {
      {128, 128, 3, 8, 1, 2}, {64, 64, 8, 8, 1, 3}, {128, 64, 4, 8, 1, 4}};
  for (const auto& config : configs)
    for (ScaleLayout layout : {ScaleLayout::kRowMajor, ScaleLayout::kColMajor})
      check_forced(*Fp8Problem::make(200, 520, 1024, layout), config);
  // With at least 8 K blocks per CTA, CTA 0 takes two more than the others; a padded ldd
  // (CTA 0 stores the sum by TMA, which must not touch the padding).
  const auto c = check_forced(*Fp8Problem::make(200, 520, 2048, ScaleLayout::kRowMajor, 0, 536),
                              {64, 64, 8, 8, 1, 2});
  CHECK(c.outside_touched == 0);
  check_forced(*Fp8Problem::make(130, 264, 3072), {64, 64, 8, 8, 1, 3});
}

TEST_CASE("the wide tiles on small shapes (for compute-sanitizer)", "[gpu][small]") {
  KILN_REQUIRE_GPU();
  // 128 x 176, 128 x 192 and 128 x 256 tiles (two wgmma batches per K block), which the
  // heuristic picks only for large problems: partial M and N tiles, more K blocks than stages
  // (at N = 520 the third 176-column tile spans three B scale blocks, and its output goes out
  // as one unswizzled box). Both SA layouts.
  const kiln::gemm::Config configs[] = {{128, 176, 4, 8}, {128, 192, 4, 8}, {128, 256, 3, 8}};
  for (const auto& config : configs)
    for (ScaleLayout layout : {ScaleLayout::kRowMajor, ScaleLayout::kColMajor})
      check_forced(*Fp8Problem::make(200, 520, 1024, layout), config);
  // 128 x 256 with 16 K blocks, where its tiles defer their store (at K = 1024 above they
  // store at once). One tile per CTA: the K blocks with the slab loop, and the pending
  // tile's store after the last tile.
  check_forced(*Fp8Problem::make(200, 520, 2048), {128, 256, 3, 8});
  // 128 x 176 over N = 1424: tiles start at all eight multiples of 16 in a scale block (two
  // of them span three), the last is partial; 3 K blocks (fewer than the stages, so each
  // tile stores at once instead of during the next) and a padded ldd.
  const kiln::gemm::Config wide176{128, 176, 4, 8};
  for (ScaleLayout layout : {ScaleLayout::kRowMajor, ScaleLayout::kColMajor}) {
    const auto c = check_forced(*Fp8Problem::make(130, 1424, 384, layout, 0, 1440), wide176);
    INFO("block=128x176 n=1424 k=384: elements past n in the padded ldd"
         << (layout == ScaleLayout::kColMajor ? ", column-major SA" : ""));
    CHECK(c.outside_touched == 0);
  }
  // ... and over more tiles than SMs (16 x 9 = 144): CTAs go on to a tile at another start
  // (another copy of the K loop, other scale slots from the scale warp) while the previous
  // tile's output is stored during the next one's first K block (8 K blocks: deferred).
  check_forced(*Fp8Problem::make(2000, 1424, 1024), wide176);
}

TEST_CASE("dense FP8 GEMM honours leading dimensions and both SA layouts", "[gpu]") {
  KILN_REQUIRE_GPU();
  SECTION("column-major SA") {
    auto p = Fp8Problem::make(300, 2112, 7168, ScaleLayout::kColMajor);
    check_problem(*p);
  }
  SECTION("column-major SA with an odd m") {
    auto p = Fp8Problem::make(301, 2112, 7168, ScaleLayout::kColMajor);
    check_problem(*p);
  }
  SECTION("padded lda, ldd and ld_sb") {
    auto p = Fp8Problem::make(130, 1024, 640, ScaleLayout::kRowMajor, 704, 1040, 8);
    check_problem(*p);
  }
  SECTION("the same shape on new buffers (cached TMA descriptors get the new addresses)") {
    auto first = Fp8Problem::make(200, 1024, 1024);
    check_problem(*first);
    auto second = Fp8Problem::make(200, 1024, 1024);
    check_problem(*second);
    auto third = Fp8Problem::make(200, 1024, 1024);
    check_problem(*third);
  }
  SECTION("M = 0 launches nothing") {
    auto p = Fp8Problem::make(0, 256, 256);
    REQUIRE_NOTHROW(kiln::gemm_fp8(p->args(), nullptr));
  }
}

TEST_CASE("back-to-back GEMMs on one stream keep stream order (programmatic launch)", "[gpu]") {
  KILN_REQUIRE_GPU();
  // With programmatic launch a GEMM may start while the one before it runs, and must still
  // write D after it. Both write the same D, a long GEMM first and a short one right behind
  // it: D must hold the short one's result.
  kiln::RuntimeOptions options;
  options.programmatic_launch = true;
  kiln::Runtime runtime(options);
  const auto& cu = kiln::driver::get();
  CUstream stream = nullptr;
  KILN_CU(cu.cuStreamCreate(&stream, CU_STREAM_NON_BLOCKING));
  auto slow = Fp8Problem::make(512, 4096, 16384);
  auto fast = Fp8Problem::make(512, 4096, 256);
  const auto ref = kiln::test::reference(*fast);
  kiln::GemmFp8Args second = fast->args();
  second.d = slow->args().d;  // same shape and ldd
  for (int round = 0; round < 5; ++round) {
    slow->poison_d();
    kiln::gemm_fp8(runtime, slow->args(), stream);
    kiln::gemm_fp8(runtime, second, stream);
    KILN_CU(cu.cuStreamSynchronize(stream));
    const auto c = kiln::test::compare(*fast, slow->download_d(), ref);
    INFO("round " << round << " rel_l2=" << c.rel_l2 << " unwritten=" << c.unwritten);
    CHECK(c.unwritten == 0);
    CHECK(c.rel_l2 < kTolerance);
  }
  KILN_CU(cu.cuStreamDestroy(stream));
}

TEST_CASE("every candidate configuration is correct", "[gpu][configs]") {
  KILN_REQUIRE_GPU();
  // What kiln tune may pick must be as right as what the heuristic picks.
  // 300 x 1032 x 1040 also with column-major SA and padded SB rows (ld_sb 12).
  const int shapes[][4] = {
      {300, 1032, 1040, 0}, {300, 1032, 1040, 1}, {64, 2112, 7168, 0}, {1, 256, 2048, 0}};
  for (const auto& s : shapes) {
    auto p = s[3] ? Fp8Problem::make(s[0], s[1], s[2], ScaleLayout::kColMajor, 0, 0, 12)
                  : Fp8Problem::make(s[0], s[1], s[2]);
    const auto ref = kiln::test::reference(*p);
    for (const auto& config : kiln::gemm::candidate_configs(s[1], s[2])) {
      p->poison_d();
      kiln::gemm::launch_fp8(kiln::Runtime::instance(), p->args(), &config, nullptr);
      const auto c = kiln::test::compare(*p, p->download_d(), ref);
      INFO("m=" << s[0] << " n=" << s[1] << " k=" << s[2] << (s[3] ? " column-major SA" : "")
                << " block=" << config.block_m << "x"
                << config.block_n << " multicast=" << config.multicast_n
                << " split_k=" << config.split_k << " rel_l2=" << c.rel_l2);
      CHECK(c.unwritten == 0);
      CHECK(c.rel_l2 < kTolerance);
    }
  }
}

TEST_CASE("results are stable across repeated launches", "[gpu]") {
  KILN_REQUIRE_GPU();
  // 128 x 256 tiles, and a split-K GEMM (64 x 64 split three ways), whose CTA 0 adds the
  // others' partials in rank order whenever they arrive: bitwise the same every time.
  const int shapes[][3] = {{4096, 4096, 7168}, {64, 2112, 7168}};
  for (const auto& s : shapes) {
    auto p = Fp8Problem::make(s[0], s[1], s[2]);
    kiln::gemm_fp8(p->args(), nullptr);
    const auto first = p->download_d();
    for (int i = 0; i < 5; ++i) {
      p->poison_d();
      kiln::gemm_fp8(p->args(), nullptr);
      INFO("m=" << s[0] << " n=" << s[1] << " k=" << s[2] << " launch " << i + 2);
      REQUIRE(p->download_d() == first);
    }
  }
}

TEST_CASE("a new runtime loads kernels from the disk cache without compiling", "[gpu]") {
  KILN_REQUIRE_GPU();
  const auto dir = std::filesystem::temp_directory_path() / "kiln-gpu-test-cache";
  std::filesystem::remove_all(dir);
  auto p = Fp8Problem::make(64, 2112, 7168);
  {
    kiln::Runtime first(kiln::RuntimeOptions{dir.string(), true, ""});
    kiln::gemm_fp8(first, p->args(), nullptr);
    CHECK(first.stats().kernels_compiled == 1);
    CHECK(first.stats().disk_hits == 0);
  }
  kiln::Runtime second(kiln::RuntimeOptions{dir.string(), true, ""});
  p->poison_d();
  kiln::gemm_fp8(second, p->args(), nullptr);
  CHECK(second.stats().kernels_compiled == 0);
  CHECK(second.stats().disk_hits == 1);
  const auto c = kiln::test::compare(*p, p->download_d(), kiln::test::reference(*p));
  CHECK(c.unwritten == 0);
  CHECK(c.rel_l2 < kTolerance);
  std::filesystem::remove_all(dir);
}

TEST_CASE("CUDA graph capture: warmed kernels replay, cold ones are refused", "[gpu]") {
  KILN_REQUIRE_GPU();
  const auto& cu = kiln::driver::get();
  CUstream stream = nullptr;
  KILN_CU(cu.cuStreamCreate(&stream, CU_STREAM_NON_BLOCKING));
  kiln::Runtime runtime(kiln::RuntimeOptions{"", false, ""});

  auto p = Fp8Problem::make(96, 4096, 7168);
  kiln::warm_up_gemm_fp8(runtime, 256, 4096, 7168);
  const auto compiled = runtime.stats().kernels_compiled;

  CUgraph graph = nullptr;
  KILN_CU(cu.cuStreamBeginCapture(stream, CU_STREAM_CAPTURE_MODE_THREAD_LOCAL));
  kiln::gemm_fp8(runtime, p->args(), stream);
  KILN_CU(cu.cuStreamEndCapture(stream, &graph));
  CUgraphExec exec = nullptr;
  KILN_CU(cu.cuGraphInstantiate(&exec, graph, 0));
  KILN_CU(cu.cuGraphLaunch(exec, stream));
  KILN_CU(cu.cuStreamSynchronize(stream));
  CHECK(runtime.stats().kernels_compiled == compiled);
  const auto c = kiln::test::compare(*p, p->download_d(), kiln::test::reference(*p));
  CHECK(c.unwritten == 0);
  CHECK(c.rel_l2 < kTolerance);

  auto cold = Fp8Problem::make(64, 1024, 512);
  KILN_CU(cu.cuStreamBeginCapture(stream, CU_STREAM_CAPTURE_MODE_THREAD_LOCAL));
  try {
    kiln::gemm_fp8(runtime, cold->args(), stream);
    FAIL("a kernel compiled inside capture");
  } catch (const kiln::Error& e) {
    CHECK(e.code() == kiln::ErrorCode::kNotWarmedUp);
  }
  CUgraph discarded = nullptr;
  cu.cuStreamEndCapture(stream, &discarded);
  if (discarded) cu.cuGraphDestroy(discarded);
  cu.cuGraphExecDestroy(exec);
  cu.cuGraphDestroy(graph);
  cu.cuStreamDestroy(stream);
}
