// NVRTC compiles every kernel configuration the heuristic can pick, on the CPU, and the SASS
// is what the design needs: FP8 wgmma (QGMMA), TMA loads and stores, no local memory.
#include <catch2/catch.hpp>

#include <algorithm>
#include <array>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>

#include <unistd.h>

#include "gemm/config.hpp"
#include "jit/nvrtc_compiler.hpp"

namespace {

namespace fs = std::filesystem;

// KILN_CUOBJDUMP, else cuobjdump on PATH (the test command installs it from PyPI).
std::string cuobjdump() {
  if (const char* env = std::getenv("KILN_CUOBJDUMP"); env && *env) return env;
  return "cuobjdump";
}

std::string run(const std::string& command) {
  std::string out;
  FILE* pipe = popen(command.c_str(), "r");
  REQUIRE(pipe != nullptr);
  std::array<char, 4096> buffer{};
  size_t got = 0;
  while ((got = fread(buffer.data(), 1, buffer.size(), pipe)) > 0) out.append(buffer.data(), got);
  const int status = pclose(pipe);
  INFO(command << "\n" << out);
  REQUIRE(status == 0);
  return out;
}

size_t count(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

// DeepSeek-V3 dense (N, K) and odd ones from the GPU tests.
constexpr int kShapes[][2] = {{2112, 7168}, {24576, 1536}, {32768, 512}, {7168, 16384},
                              {4096, 7168}, {7168, 2048},  {200, 400},   {72, 144}};

}  // namespace

TEST_CASE("every heuristic configuration compiles to QGMMA + TMA with no spills",
          "[compile][sass]") {
  std::set<std::string> seen;
  std::vector<kiln::gemm::KernelSpec> specs;
  for (const auto& nk : kShapes)
    for (int sms : {132, 114})
      for (int m : kiln::gemm::heuristic_m_breakpoints(8192, nk[0], nk[1], sms)) {
        kiln::gemm::KernelSpec spec;
        spec.n = nk[0], spec.k = nk[1];
        spec.config = kiln::gemm::heuristic_config(m, nk[0], nk[1], sms);
        if (seen.insert(kiln::gemm::name_expression(spec)).second) specs.push_back(spec);
      }
  // kiln tune may pick any candidate: all of them, for a shape with every split available.
  for (const auto& config : kiln::gemm::candidate_configs(2112, 7168)) {
    kiln::gemm::KernelSpec spec;
    spec.n = 2112, spec.k = 7168, spec.config = config;
    if (seen.insert(kiln::gemm::name_expression(spec)).second) specs.push_back(spec);
  }
  // The grouped kinds: every candidate (they have neither split-K nor multicast), also at an
  // odd K-block count (K = 1152: the producer's registers once overflowed only there).
  for (auto kind : {kiln::gemm::Kind::kGroupedByRow, kiln::gemm::Kind::kGroupedByOffset,
                    kiln::gemm::Kind::kGroupedMasked})
    for (int k : {7168, 1152})
      for (const auto& config : kiln::gemm::candidate_configs(4096, k, kind)) {
        kiln::gemm::KernelSpec spec;
        spec.kind = kind, spec.n = 4096, spec.k = k, spec.config = config;
        if (seen.insert(kiln::gemm::name_expression(spec)).second) specs.push_back(spec);
      }
  REQUIRE(specs.size() >= 8);
  // Both cluster modes are compiled: split-K (the heuristic's) and multicast (a candidate).
  CHECK(std::any_of(specs.begin(), specs.end(), [](const auto& s) { return s.config.split_k > 1; }));
  CHECK(std::any_of(specs.begin(), specs.end(),
                    [](const auto& s) { return s.config.multicast_n > 1; }));

  const fs::path dir = fs::temp_directory_path() / ("kiln-sass-" + std::to_string(getpid()));
  fs::create_directories(dir);
  for (const auto& spec : specs) {
    INFO(kiln::gemm::describe(spec));
    const kiln::jit::CompileResult r = kiln::jit::compile(
        {kiln::gemm::kernel_source(spec), kiln::gemm::name_expression(spec),
         kiln::gemm::arch_name(spec.arch), kiln::gemm::describe(spec)});
    CHECK(r.spill_bytes == 0);
    // ptxas serializing wgmma (C7510, C7514...) or injecting waits (C7517) costs throughput.
    CHECK(r.log.find("wgmma.mma_async instructions are serialized") == std::string::npos);
    CHECK(r.log.find("C7517") == std::string::npos);
    CHECK(r.stack_bytes == 0);
    CHECK(r.registers > 0);
    const fs::path cubin = dir / "kernel.cubin";
    std::ofstream(cubin, std::ios::binary).write(r.cubin.data(), r.cubin.size());
    const std::string sass = run(cuobjdump() + " -sass " + cubin.string() + " 2>&1");
    // Four k32 steps per batch, one batch per wgmma_n columns of the tile, in every copy of
    // the K-block body: the tile's first K block and the others. Tiles up to 128 columns take
    // K blocks in pairs: a single first block where the count is odd, else a first pair, then
    // pairs (with split-K the count is known only at run time: all three, 1 + 2 + 2 K blocks).
    // Dense 256-column tiles that defer their store (from 16 K blocks on) have a third body:
    // the K blocks that store one slab of the previous tile's output each. 176-column tiles
    // have a copy of the loop per four places a tile starts in a 128-column scale block
    // (multiples of 16: all 8 for these N, so two copies).
    const int mma_n = kiln::gemm::wgmma_n(spec.config);
    const int k_blocks = (spec.k + 127) / 128;
    const bool spread_store = spec.kind == kiln::gemm::Kind::kDense &&
                              spec.config.block_n == 256 && k_blocks >= 16;
    std::set<int> starts;
    for (int n0 = 0; n0 < spec.n; n0 += spec.config.block_n) starts.insert(n0 % 128 / 64);
    const int bodies = spec.config.block_n == 176 ? 1 + int(starts.size())
                       : spec.config.block_n > 128 ? (spread_store ? 3 : 2)
                       : spec.config.split_k > 1 ? 5
                                                 : (k_blocks % 2 ? 1 : 2) + (k_blocks > 2 ? 2 : 0);
    CHECK(count(sass, "QGMMA.64x" + std::to_string(mma_n) + "x32.F32.E4M3.E4M3") ==
          size_t(bodies * 4 * spec.config.block_n / mma_n));
    CHECK(count(sass, "UTMALDG.2D") >= 2);
    CHECK(count(sass, "MEMBAR.ALL.GPU") <= 3);  // only around cluster barriers
    // Split-K: a thread pushes its partial to CTA 0 as block_n / 8 16-byte st.async.
    if (spec.config.split_k > 1)
      CHECK(count(sass, "STAS.128") == size_t(spec.config.block_n / 8));
    // Every kind stores by TMA: split-K's CTA 0 the sum, grouped kinds their full tiles
    // (partial ones row by row).
    CHECK(count(sass, "UTMASTG.2D") >= 1);
    if (spec.config.multicast_n == 2) CHECK(count(sass, "UTMALDG.2D.MULTICAST") >= 1);
    CHECK(count(sass, "LDL") == 0);
    CHECK(count(sass, "STL") == 0);
    if (spec.config.block_m == 128) {  // two math warpgroups: registers are rebalanced
      CHECK(count(sass, "USETMAXREG.DEALLOC") == 1);
      CHECK(count(sass, "USETMAXREG.TRY_ALLOC") == 1);
    }
  }
  fs::remove_all(dir);
}
