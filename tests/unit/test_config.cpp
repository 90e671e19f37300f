// Kernel configurations (gemm/config.cpp): the heuristic picks only supported, fitting
// configurations; the warm-up breakpoints cover every change; names and JSON are faithful.
#include <catch2/catch.hpp>

#include <algorithm>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <tuple>
#include <unordered_set>
#include <vector>

#include "gemm/config.hpp"

using namespace kiln::gemm;
using Catch::Matchers::Contains;
using Catch::Matchers::StartsWith;

namespace {

// DeepSeek-V3 dense GEMMs (N, K), plus small and odd shapes the checks allow.
constexpr int kDeepSeekNK[][2] = {{2112, 7168}, {24576, 1536}, {32768, 512},
                                  {7168, 16384}, {4096, 7168},  {7168, 2048}};
constexpr int kOddNK[][2] = {{8, 16}, {72, 144}, {200, 400}, {128, 128}, {136, 7168}};
constexpr int kSmCounts[] = {132, 114, 78};

// M values: every M up to 300 (both block_m and the narrow/wide switch live there),
// then a geometric sweep to 8192 with the neighbours of each power of two.
std::vector<int> sample_ms() {
  std::vector<int> ms;
  for (int m = 1; m <= 300; ++m) ms.push_back(m);
  for (int p = 512; p <= 8192; p *= 2)
    for (int m : {p - 1, p, p + 1, p + p / 2}) ms.push_back(m);
  ms.erase(std::remove_if(ms.begin(), ms.end(), [](int m) { return m > 8192; }), ms.end());
  return ms;
}

bool contains_config(const std::vector<Config>& configs, const Config& c) {
  return std::find(configs.begin(), configs.end(), c) != configs.end();
}

KernelSpec spec_of(int n, int k, const Config& c) {
  KernelSpec s;
  s.n = n, s.k = k, s.config = c;
  return s;
}

}  // namespace

TEST_CASE("shared memory and thread counts of the tile shapes", "[unit][config]") {
  // Mirrors Fp8GemmSmem: 1 KiB alignment pad + stages * (A + B tiles) + D tile + per-stage
  // scales (block_m of SA, SB padded to 4 floats) + barriers.
  CHECK(shared_memory_bytes({128, 128, 5, 8}) ==
        1024 + 5 * 32768 + 32768 + (5 * 128 + 8) * 4 + 2 * 5 * 8);
  CHECK(shared_memory_bytes({64, 64, 8, 8}) == 1024 + 8 * 16384 + 8192 + (8 * 64 + 8) * 4 + 2 * 8 * 8);
  // split-K adds receive buffers for the other CTAs' FP32 partials (the owner stores the BF16
  // tile like any other) and their barrier
  CHECK(shared_memory_bytes({64, 64, 8, 8, 1, 4}) ==
        1024 + 8 * 16384 + 8192 + 3 * 16384 + (8 * 64 + 8) * 4 + (2 * 8 + 1) * 8);
  CHECK(shared_memory_bytes({128, 128, 2, 8, 1, 2}) ==
        1024 + 2 * 32768 + 32768 + 65536 + (2 * 128 + 4) * 4 + (2 * 2 + 1) * 8);
  CHECK(max_stages(128, 128, 2) == 3);
  CHECK(max_stages(128, 128) == 5);
  CHECK(max_stages(64, 64, 3) == 8);  // DeepSeek-V3's splits keep the deepest ring
  CHECK(max_stages(64, 64, 8) == 6);
  CHECK(max_stages(64, 128, 4) == 4);
  // A split is offered only where the partials leave kMinSplitStages stages.
  CHECK(split_fits(128, 128, 1));
  CHECK(split_fits(128, 128, 2));
  CHECK_FALSE(split_fits(128, 128, 3));
  CHECK(split_fits(64, 128, 4));
  CHECK_FALSE(split_fits(64, 128, 8));
  CHECK_FALSE(split_fits(128, 64, 8));
  CHECK(split_fits(64, 64, 8));
  CHECK_THAT(check_config({128, 128, 2, 8, 1, 3}, 7168, 16384, Kind::kDense),
             Contains("split_k 3 with 128 x 128 tiles"));
  CHECK(max_stages(64, 64) == 8);
  CHECK(max_stages(64, 128) == 8);
  CHECK(max_stages(128, 64) == 8);
  for (int bm : {64, 128})
    for (int bn : {64, 128}) {
      const int s = max_stages(bm, bn);
      CHECK(shared_memory_bytes({bm, bn, s, 8}) <= kSharedMemoryLimit);
      // Deepest: one more stage would not fit (or the cap of 8 is reached).
      CHECK((s == 8 || shared_memory_bytes({bm, bn, s + 1, 8}) > kSharedMemoryLimit));
    }
  // a 192-column tile spans two B scale blocks: two SB floats per stage
  CHECK(shared_memory_bytes({128, 192, 4, 8}) ==
        1024 + 4 * 40960 + 49152 + (4 * 128 + 8) * 4 + 2 * 4 * 8);
  CHECK(max_stages(128, 192) == 4);
  // a 176-column tile starts at a multiple of 16 and may span three scale blocks; each copy
  // of its K loop serves four starts, with seven scale slots: 8 SB floats per stage (padded
  // for 16-byte loads), and a BF16 tile of plain 352-byte rows
  CHECK(sb_per_stage(64) == 1);
  CHECK(sb_per_stage(128) == 1);
  CHECK(sb_per_stage(176) == 8);
  CHECK(sb_per_stage(192) == 2);
  CHECK(sb_per_stage(256) == 2);
  CHECK(shared_memory_bytes({128, 176, 4, 8}) ==
        1024 + 4 * 38912 + 45056 + (4 * 128 + 32) * 4 + 2 * 4 * 8);
  CHECK(max_stages(128, 176) == 4);
  CHECK(wgmma_n({128, 176, 4, 8}) == 176);
  // 256 columns: 48 KiB stages and a 64 KiB output tile leave room for three
  CHECK(max_stages(128, 256) == 3);
  CHECK(wgmma_n({128, 256, 3, 8}) == 128);  // two batches of 128 columns per K block
  CHECK(wgmma_n({128, 192, 4, 8}) == 192);
  CHECK(wgmma_n({64, 64, 8, 8}) == 64);
  CHECK(threads_per_block({64, 128, 4, 8}) == 256);   // producer + one math warpgroup
  CHECK(threads_per_block({128, 64, 4, 8}) == 384);   // producer + two
}

TEST_CASE("candidate configurations are valid and deepest first", "[unit][config]") {
  const std::vector<Config> configs = candidate_configs(2112, 7168);
  REQUIRE(!configs.empty());
  for (size_t i = 0; i < configs.size(); ++i) {
    const Config& c = configs[i];
    INFO(describe(spec_of(2112, 7168, c)));
    CHECK((c.block_m == 64 || c.block_m == 128));
    CHECK((c.block_n == 64 || c.block_n == 128 ||
           ((c.block_n == 176 || c.block_n == 192 || c.block_n == 256) && c.block_m == 128)));
    if (c.block_n > 128) CHECK((c.split_k == 1 && c.multicast_n == 1));
    CHECK(c.stages >= 2);  // a ring of one stage cannot overlap loads with math
    CHECK(c.group_m == band_rows(c.block_m, 7168, Kind::kDense));
    CHECK(shared_memory_bytes(c) <= kSharedMemoryLimit);
    CHECK((threads_per_block(c) == 256 || threads_per_block(c) == 384));
    for (size_t j = 0; j < i; ++j) CHECK_FALSE(configs[j] == c);  // no duplicates
  }
  // Every tile shape appears, first without split-K, and every candidate has the deepest
  // pipeline its shared memory allows.
  for (const auto& [bm, bn] :
       {std::pair{64, 64}, {64, 128}, {128, 64}, {128, 128}, {128, 176}, {128, 192}, {128, 256}}) {
    INFO("block " << bm << "x" << bn);
    const auto first = std::find_if(configs.begin(), configs.end(), [&](const Config& c) {
      return c.block_m == bm && c.block_n == bn;
    });
    REQUIRE(first != configs.end());
    CHECK(first->split_k == 1);
    for (auto it = first; it != configs.end(); ++it)
      if (it->block_m == bm && it->block_n == bn)
        CHECK(it->stages == max_stages(bm, bn, it->split_k));
  }
}

TEST_CASE("the heuristic picks a candidate that fits, for every shape and SM count",
          "[unit][config]") {
  std::vector<std::pair<int, int>> shapes;
  for (const auto& nk : kDeepSeekNK) shapes.push_back({nk[0], nk[1]});
  for (const auto& nk : kOddNK) shapes.push_back({nk[0], nk[1]});
  const std::vector<int> ms = sample_ms();
  int checked = 0;
  for (const auto& [n, k] : shapes) {
    const std::vector<Config> candidates = candidate_configs(n, k);
    for (int sms : kSmCounts)
      for (int m : ms) {
        const Config c = heuristic_config(m, n, k, sms);
        // Only report on failure: there are thousands of combinations.
        if (!contains_config(candidates, c) || shared_memory_bytes(c) > kSharedMemoryLimit ||
            (threads_per_block(c) != 256 && threads_per_block(c) != 384) ||
            (m <= 64 && c.block_m != 64)) {
          FAIL_CHECK("m=" << m << " n=" << n << " k=" << k << " sms=" << sms << ": "
                          << describe(spec_of(n, k, c)));
        }
        ++checked;
      }
  }
  CHECK(checked == int(shapes.size() * 3 * ms.size()));
}

TEST_CASE("the heuristic picks what kiln tune found fastest on an H200", "[unit][config]") {
  // The best of every candidate timed by kiln tune on an H200 (132 SMs), docs/PERFORMANCE.md.
  struct Case {
    int m, n, k;
    Config best;
  };
  const Case cases[] = {
      {64, 4096, 7168, {64, 64, 8, 8, 1, 2}},      // 128 CTAs instead of 64
      {64, 2112, 7168, {64, 64, 8, 8, 1, 3}},      // 99 CTAs of 19 K blocks, not 66 of 28
                                                   // (11.1 vs 12.2 us)
      {64, 7168, 16384, {64, 64, 8, 8}},
      {64, 24576, 1536, {64, 64, 8, 8}},           // 2.9 waves of 384 tiles, not 1.45 of 192
      {128, 2112, 7168, {64, 64, 8, 8, 1, 2}},     // 132 CTAs instead of 66
      {128, 7168, 16384, {64, 128, 8, 8}},         // 37.8 us; 128 x 128 split two ways 38.6
      {128, 24576, 1536, {64, 128, 8, 8}},         // memory-bound: more bytes in flight than
                                                   // 128 x 192 (16.3 vs 16.7 us; H100 19.9, 21.1)
      {128, 32768, 512, {64, 128, 8, 8}},          // 10.9 us as 128 x 128 (H100 12.0 vs 12.5);
                                                   // 128 x 256: one wave, 12.3 us
      {4096, 2112, 7168, {128, 176, 4, 8}},        // 3 waves of 12 N blocks: 96.7 us; 128 x
                                                   // 192 (11 N blocks) 100.1; 128 x 128 5 waves
      {4096, 7168, 16384, {128, 256, 3, 8}},       // 7 waves instead of 10 (718 vs 772 us)
      {4096, 4096, 7168, {128, 256, 3, 8}},        // 4 waves instead of 6 (184 vs 203 us)
      {4096, 7168, 2048, {128, 256, 3, 8}},
      {1024, 2112, 7168, {128, 176, 4, 8}},
      {256, 7168, 16384, {128, 128, 5, 8}},        // 56 tiles of 128 x 256 leave 76 SMs idle
      {192, 4096, 7168, {64, 128, 8, 8}},          // 18.6 us; 128 x 128 split two ways 25.7
      {1984, 2112, 7168, {64, 128, 8, 8}},         // 4 waves: 59.0 us; 128 x 192 67.4
  };
  for (const Case& c : cases) {
    INFO("m=" << c.m << " n=" << c.n << " k=" << c.k);
    Config best = c.best;  // timed with bands of 8 block-rows; the band follows band_rows
    best.group_m = band_rows(best.block_m, c.k, Kind::kDense);
    CHECK(config_name(heuristic_config(c.m, c.n, c.k, 132)) == config_name(best));
  }
}

TEST_CASE("bands of block-rows: as tall as fits a quarter of the L2 in A, dense only",
          "[unit][config]") {
  // 128-row tiles: 32 rows x 128 x K bytes <= 12.5 MiB up to K = 3200, 16 up to K = 6400.
  CHECK(band_rows(128, 512, Kind::kDense) == 32);
  CHECK(band_rows(128, 1536, Kind::kDense) == 32);
  CHECK(band_rows(128, 3200, Kind::kDense) == 32);
  CHECK(band_rows(128, 3328, Kind::kDense) == 16);
  CHECK(band_rows(128, 4096, Kind::kDense) == 16);
  CHECK(band_rows(128, 6400, Kind::kDense) == 16);
  CHECK(band_rows(128, 7168, Kind::kDense) == 8);
  CHECK(band_rows(128, 16384, Kind::kDense) == 8);
  CHECK(band_rows(64, 7168, Kind::kDense) == 16);
  for (Kind kind : {Kind::kGroupedByRow, Kind::kGroupedByOffset, Kind::kGroupedMasked})
    CHECK(band_rows(128, 512, kind) == 8);
  // The heuristic and every candidate take it, so kiln tune times what the heuristic runs.
  CHECK(heuristic_config(4096, 32768, 512, 132).group_m == 32);
  CHECK(heuristic_config(4096, 7168, 16384, 132).group_m == 8);
  CHECK(heuristic_config(4096, 7168, 2048, 132, Kind::kGroupedByRow).group_m == 8);
  for (const auto& nk : kDeepSeekNK)
    for (const Config& c : candidate_configs(nk[0], nk[1]))
      CHECK(c.group_m == band_rows(c.block_m, nk[1], Kind::kDense));
  CHECK(config_name(heuristic_config(4096, 32768, 512, 132)) == "128x256x3g32");
  // A configuration stored before the bands is valid but no longer a candidate, so kiln tune
  // times the shape again; the grouped kinds kept bands of 8.
  CHECK(contains_config(candidate_configs(32768, 512),
                        heuristic_config(4096, 32768, 512, 132)));
  CHECK(contains_config(candidate_configs(32768, 512, Kind::kDense), {128, 256, 3, 32}));
  CHECK_FALSE(contains_config(candidate_configs(32768, 512, Kind::kDense), {128, 256, 3, 8}));
  CHECK(check_config({128, 256, 3, 8}, 32768, 512, Kind::kDense).empty());
  CHECK(contains_config(candidate_configs(7168, 16384, Kind::kDense), {128, 256, 3, 8}));
  CHECK(contains_config(candidate_configs(7168, 2048, Kind::kGroupedByRow), {128, 256, 3, 8}));
  // not the deepest ring
  CHECK_FALSE(contains_config(candidate_configs(32768, 512, Kind::kDense), {128, 256, 2, 32}));
}

TEST_CASE("the heuristic's choice has the least estimated time", "[unit][config]") {
  for (int sms : kSmCounts)
    for (const auto& nk : kDeepSeekNK)
      for (int m : {1, 16, 64, 100, 128, 256, 512, 1024, 4096, 8192}) {
        const int n = nk[0], k = nk[1];
        const Config chosen = heuristic_config(m, n, k, sms);
        const TimeEstimate e = estimate_time(chosen, m, n, k, sms);
        INFO("m=" << m << " n=" << n << " k=" << k << " sms=" << sms << ": "
                  << config_name(chosen));
        CHECK(e.total_us >= e.compute_us);
        // No candidate the heuristic may pick is estimated more than 1% faster.
        for (const Config& c : candidate_configs(n, k)) {
          const int clusters_fit = c.split_k <= 2 ? sms : sms * 10 / 11;
          if (c.multicast_n > 1 || (m <= 64 && c.block_m != 64) ||
              (c.split_k > 1 && (num_tiles(c, m, n) * c.split_k > clusters_fit ||
                                 (k + 127) / 128 / c.split_k < 4)))
            continue;
          CHECK(estimate_time(c, m, n, k, sms).total_us >= e.total_us * 0.99);
        }
        if (chosen.block_n > 128) CHECK((chosen.split_k == 1 && chosen.multicast_n == 1));
      }
}

TEST_CASE("heuristic M breakpoints cover every change of configuration", "[unit][config]") {
  for (const auto& nk : kDeepSeekNK)
    for (int sms : kSmCounts) {
      const int n = nk[0], k = nk[1];
      INFO("n=" << n << " k=" << k << " sms=" << sms);
      const std::vector<int> bps = heuristic_m_breakpoints(8192, n, k, sms);
      REQUIRE(!bps.empty());
      CHECK(bps.front() == 1);
      CHECK(std::is_sorted(bps.begin(), bps.end()));
      CHECK(std::adjacent_find(bps.begin(), bps.end()) == bps.end());  // strictly increasing
      CHECK(bps.back() <= 8192);
      for (size_t i = 1; i < bps.size(); ++i)  // each breakpoint is a real change
        CHECK_FALSE(heuristic_config(bps[i], n, k, sms) == heuristic_config(bps[i] - 1, n, k, sms));
      // Between breakpoints the configuration is constant, so warm-up misses nothing.
      size_t bucket = 0;
      int mismatches = 0;
      for (int m = 1; m <= 8192; ++m) {
        while (bucket + 1 < bps.size() && bps[bucket + 1] <= m) ++bucket;
        if (!(heuristic_config(m, n, k, sms) == heuristic_config(bps[bucket], n, k, sms)))
          ++mismatches;
      }
      CHECK(mismatches == 0);
    }
  // max_m cuts the list.
  CHECK(heuristic_m_breakpoints(1, 2112, 7168, 132) == std::vector<int>{1});
  CHECK(heuristic_m_breakpoints(64, 2112, 7168, 132) == std::vector<int>{1});
  CHECK(heuristic_m_breakpoints(65, 2112, 7168, 132).front() == 1);
  CHECK(heuristic_m_breakpoints(65, 2112, 7168, 132).back() <= 65);
  CHECK(heuristic_m_breakpoints(0, 2112, 7168, 132).empty());
}

TEST_CASE("KernelSpec equality and hash agree", "[unit][config]") {
  const KernelSpec base = spec_of(2112, 7168, {64, 64, 8, 8});
  const KernelSpec same = spec_of(2112, 7168, {64, 64, 8, 8});
  KernelSpecHash hash;
  CHECK(base == same);
  CHECK(hash(base) == hash(same));

  // Changing any one field makes a different spec with a different hash.
  std::vector<KernelSpec> variants;
  for (int i = 0; i < 7; ++i) variants.push_back(base);
  variants[0].arch = 100;
  variants[1].n = 2120;
  variants[2].k = 7184;
  variants[3].config.block_m = 128;
  variants[4].config.block_n = 128;
  variants[5].config.stages = 7;
  variants[6].config.group_m = 4;
  for (const KernelSpec& v : variants) {
    INFO(describe(v) << " group_m=" << v.config.group_m);
    CHECK_FALSE(v == base);
    CHECK(hash(v) != hash(base));
  }

  // In a hash map, every spec the heuristic can produce finds itself and nothing else.
  std::unordered_set<KernelSpec, KernelSpecHash> specs;
  std::vector<KernelSpec> all;
  for (const auto& nk : kDeepSeekNK)
    for (const Config& c : candidate_configs(nk[0], nk[1])) {
      all.push_back(spec_of(nk[0], nk[1], c));
      specs.insert(all.back());
    }
  CHECK(specs.size() == all.size());
  for (const KernelSpec& s : all) CHECK(specs.count(s) == 1);
  std::set<size_t> hashes;
  for (const KernelSpec& s : all) hashes.insert(hash(s));
  CHECK(hashes.size() == all.size());  // no collisions among these
}

TEST_CASE("names, descriptions and JSON show the spec", "[unit][config]") {
  for (const auto& nk : kDeepSeekNK)
    for (int m : {1, 64, 65, 4096}) {
      const int n = nk[0], k = nk[1];
      const KernelSpec s = spec_of(n, k, heuristic_config(m, n, k, 132));
      const Config& c = s.config;
      INFO(describe(s));

      // The template arguments: the kind (0 = dense), the shape and the tile (more follow).
      const std::string name = name_expression(s);
      CHECK_THAT(name, StartsWith("kiln::sm90_fp8_gemm<0, " + std::to_string(n) + ", " +
                                  std::to_string(k) + ", " + std::to_string(c.block_m) + ", " +
                                  std::to_string(c.block_n) + ", " + std::to_string(c.stages) +
                                  ", " + std::to_string(c.group_m)));
      CHECK(name.back() == '>');

      const std::string d = describe(s);
      CHECK_THAT(d, Contains("n=" + std::to_string(n) + " "));
      CHECK_THAT(d, Contains("k=" + std::to_string(k) + " "));
      CHECK_THAT(d, Contains("block=" + std::to_string(c.block_m) + "x" +
                             std::to_string(c.block_n)));
      CHECK_THAT(d, Contains("stages=" + std::to_string(c.stages)));
      CHECK_THAT(d, Contains("dense"));

      const nlohmann::json j = nlohmann::json::parse(config_json(s));
      CHECK(j.is_object());
      CHECK(j.at("kind") == "dense");
      CHECK(j.at("arch") == "sm_90a");
      CHECK(j.at("n") == n);
      CHECK(j.at("k") == k);
      CHECK(j.at("block_m") == c.block_m);
      CHECK(j.at("block_n") == c.block_n);
      CHECK(j.at("stages") == c.stages);
      CHECK(j.at("group_m") == c.group_m);
    }
  CHECK(arch_name(90) == "sm_90a");
  CHECK(std::string(to_string(Kind::kDense)) == "dense");
}

TEST_CASE("kernel source instantiates the wgmma width of the tile", "[unit][config]") {
  for (int bn : {64, 128}) {
    const KernelSpec s = spec_of(4096, 7168, {128, bn, max_stages(128, bn), 8});
    const std::string src = kernel_source(s);
    INFO(src.substr(0, 400));
    CHECK_THAT(src, Contains("// generated by kiln: " + describe(s)));
    CHECK_THAT(src, Contains("WgmmaFp8<" + std::to_string(bn) + ">::mma"));
    CHECK_THAT(src, Contains("m64n" + std::to_string(bn) + "k32"));
    // wgmma.cuh declares the template, the definition follows, then the kernel.
    const size_t ptx = src.find("#include \"kiln/ptx/wgmma.cuh\"");
    const size_t def = src.find("WgmmaFp8<");
    const size_t kernel = src.find("#include \"kiln/gemm/sm90_fp8_gemm.cuh\"");
    REQUIRE(ptx != std::string::npos);
    REQUIRE(kernel != std::string::npos);
    CHECK(ptx < def);
    CHECK(def < kernel);
  }
  // Specs that differ get different sources (the source is the cache key's main field).
  CHECK(kernel_source(spec_of(2112, 7168, {64, 64, 8, 8})) !=
        kernel_source(spec_of(2120, 7168, {64, 64, 8, 8})));
  CHECK(kernel_source(spec_of(2112, 7168, {64, 64, 8, 8})) !=
        kernel_source(spec_of(2112, 7168, {64, 64, 7, 8})));
}

TEST_CASE("config names parse back", "[unit][config]") {
  for (const auto& nk : kDeepSeekNK)
    for (const Config& c : candidate_configs(nk[0], nk[1])) {
      Config parsed;
      INFO(config_name(c));
      REQUIRE(parse_config_name(config_name(c), &parsed));
      CHECK(parsed == c);
    }
  Config c;
  REQUIRE(parse_config_name("64x64x8k2g16", &c));
  CHECK((c.split_k == 2 && c.group_m == 16 && c.multicast_n == 1 && c.stages == 8));
  for (const char* bad : {"", "128x128", "128x128x5k", "128x128x5x", "128x128x5k2m2", " 64x64x8",
                          "64x64x08", "64x64x8k2 ", "64x64x8m3", "64x64x8g", "64x64x8g8",
                          "64x64x8g016", "64x64x8g16k2", "64x64x8k2g16x", "64x64x8g0",
                          "64x64x8g-1", "64x64x8k2g-5"})
    CHECK_FALSE(parse_config_name(bad, &c));
}
