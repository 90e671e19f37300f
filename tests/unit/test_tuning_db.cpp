// The tuning database: M ranges, lookup, persistence, and tolerance of bad files.
#include <catch2/catch.hpp>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <vector>

#include "gemm/tuning_db.hpp"

using kiln::gemm::Config;
using kiln::gemm::Kind;
using kiln::gemm::TunedEntry;
using kiln::gemm::TuningDb;

namespace {

TunedEntry entry(int m, int block_n) {
  TunedEntry e;
  e.device = "NVIDIA H200", e.sms = 132, e.n = 2112, e.k = 7168, e.m_tuned = m;
  const int split = block_n == 64 ? 4 : 1;
  e.config = Config{128, block_n, kiln::gemm::max_stages(128, block_n, split), 8, 1, split};
  e.us = 10, e.heuristic_us = 12;
  return e;
}

}  // namespace

TEST_CASE("tuned entries cover the M ranges between tuned points", "[unit][tuning]") {
  TuningDb db;
  db.upsert(entry(128, 64));
  db.upsert(entry(16, 128));
  db.upsert(entry(4096, 128));
  const uint64_t h200 = kiln::gemm::device_hash("NVIDIA H200");
  REQUIRE(db.find(h200, 132, Kind::kDense, 2112, 7168, 1) != nullptr);
  CHECK(db.find(h200, 132, Kind::kDense, 2112, 7168, 16)->block_n == 128);
  CHECK(db.find(h200, 132, Kind::kDense, 2112, 7168, 17)->block_n == 64);
  CHECK(db.find(h200, 132, Kind::kDense, 2112, 7168, 128)->block_n == 64);
  CHECK(db.find(h200, 132, Kind::kDense, 2112, 7168, 129)->block_n == 128);
  CHECK(db.find(h200, 132, Kind::kDense, 2112, 7168, 4097) == nullptr);  // beyond: heuristic
  CHECK(db.find(h200, 114, Kind::kDense, 2112, 7168, 64) == nullptr);    // other SM count
  CHECK(db.find(kiln::gemm::device_hash("NVIDIA H100"), 132, Kind::kDense, 2112, 7168, 64) ==
        nullptr);
  CHECK(db.find(h200, 132, Kind::kDense, 4096, 7168, 64) == nullptr);  // other N

  db.upsert(entry(128, 128));  // re-tuning a point replaces it
  CHECK(db.entries().size() == 3);
  CHECK(db.find(h200, 132, Kind::kDense, 2112, 7168, 100)->block_n == 128);
}

TEST_CASE("warm-up reaches the entries whose M ranges start within max_m", "[unit][tuning]") {
  TuningDb db;
  db.upsert(entry(16, 128));    // M 1..16
  db.upsert(entry(128, 64));    // M 17..128
  db.upsert(entry(4096, 128));  // M 129..4096
  TunedEntry other_sms = entry(16, 64);
  other_sms.sms = 114;
  db.upsert(other_sms);
  TunedEntry other_device = entry(32, 64);  // another device name, same SM count: reached
  other_device.device = "NVIDIA H100";
  db.upsert(other_device);
  auto m_tuned = [&](int max_m, Kind kind = Kind::kDense, int n = 2112) {
    std::vector<int> out;
    for (const TunedEntry* e : db.reachable(132, kind, n, 7168, max_m)) out.push_back(e->m_tuned);
    std::sort(out.begin(), out.end());
    return out;
  };
  CHECK(m_tuned(1) == std::vector<int>{16, 32});
  CHECK(m_tuned(17) == std::vector<int>{16, 32, 128});
  CHECK(m_tuned(129) == std::vector<int>{16, 32, 128, 4096});
  CHECK(m_tuned(8192, Kind::kGroupedMasked).empty());
  CHECK(m_tuned(8192, Kind::kDense, 4096).empty());
}

TEST_CASE("the tuning database survives save and load", "[unit][tuning]") {
  const auto path = std::filesystem::temp_directory_path() / "kiln-test-tuning.json";
  TuningDb db;
  TunedEntry small = entry(64, 64);
  small.kernels = "0123abcd";  // the kernel digest of the kiln that timed it
  db.upsert(small);
  db.upsert(entry(4096, 128));
  std::string error;
  REQUIRE(db.save(path, &error));
  const TuningDb loaded = TuningDb::load(path);
  REQUIRE(loaded.entries().size() == 2);
  const uint64_t h200 = kiln::gemm::device_hash("NVIDIA H200");
  CHECK(loaded.find(h200, 132, Kind::kDense, 2112, 7168, 30)->block_n == 64);
  CHECK(loaded.find(h200, 132, Kind::kDense, 2112, 7168, 30)->split_k == 4);  // cluster modes kept
  CHECK(loaded.find(h200, 132, Kind::kDense, 2112, 7168, 3000)->block_n == 128);
  const TunedEntry* e = loaded.find_tuned("NVIDIA H200", 132, Kind::kDense, 2112, 7168, 64);
  REQUIRE(e != nullptr);
  CHECK(e->us == 10);
  CHECK(e->heuristic_us == 12);
  CHECK(e->m_min == 1);
  CHECK(e->m_max == 64);
  CHECK(e->kernels == "0123abcd");
  std::filesystem::remove(path);
}

TEST_CASE("an entry saved without a kernel digest loads with none", "[unit][tuning]") {
  // Files written before the digest was kept: their entries apply, and kiln tune times them
  // again because their digest ("") is not the current one.
  const auto path = std::filesystem::temp_directory_path() / "kiln-test-tuning-old.json";
  std::ofstream(path) << R"({"version": 1, "entries": [{"arch": "sm_90a",
      "device": "NVIDIA H200", "sms": 132, "kind": "dense", "n": 7168, "k": 2048,
      "m_min": 1, "m_max": 4096, "m_tuned": 4096, "us": 93.3, "heuristic_us": 93.3,
      "config": {"block_m": 128, "block_n": 256, "stages": 3, "group_m": 8,
                 "multicast_n": 1, "split_k": 1}}]})";
  const TuningDb loaded = TuningDb::load(path);
  const TunedEntry* e = loaded.find_tuned("NVIDIA H200", 132, Kind::kDense, 7168, 2048, 4096);
  REQUIRE(e != nullptr);
  CHECK(e->kernels.empty());
  CHECK(e->config == Config{128, 256, 3, 8, 1, 1});
  std::filesystem::remove(path);
}

TEST_CASE("a missing or malformed tuning database is empty, never an error", "[unit][tuning]") {
  const auto path = std::filesystem::temp_directory_path() / "kiln-test-tuning-bad.json";
  std::filesystem::remove(path);
  CHECK(TuningDb::load(path).empty());
  for (const char* text : {"not json", "{\"version\": 99, \"entries\": []}",
                           "{\"version\": 1, \"entries\": [{\"n\": 1}]}"}) {
    std::ofstream(path) << text;
    CHECK(TuningDb::load(path).empty());
  }
  std::filesystem::remove(path);
}

TEST_CASE("tuning database entries with unsupported configurations are skipped", "[unit][tuning]") {
  const auto path = std::filesystem::temp_directory_path() / "kiln-test-tuning-configs.json";
  const Config good{128, 256, 3, 8, 1, 1};
  const Config bad[] = {
      {128, 96, 4, 8, 1, 1},  // block_n
      {64, 256, 3, 8, 1, 1},  // 256 columns need 128 rows
      {64, 64, 20, 8, 1, 1},  // deeper than shared memory allows
      {64, 64, 8, 8, 2, 2},   // multicast and split-K
      {64, 64, 8, 8, 1, 5},   // split_k
  };
  auto make = [](Kind kind, int m_tuned, const Config& c) {
    TunedEntry e;
    e.device = "Dev", e.sms = 132, e.kind = kind, e.n = 7168, e.k = 2048;
    e.m_tuned = m_tuned, e.config = c, e.us = 10, e.heuristic_us = 12;
    return e;
  };
  TuningDb db;
  db.upsert(make(Kind::kDense, 64, good));
  int m = 64;
  for (const Config& c : bad) db.upsert(make(Kind::kDense, m += 100, c));
  db.upsert(make(Kind::kGroupedMasked, 64, {64, 64, 8, 8, 1, 2}));  // grouped: no split-K
  std::string error;
  REQUIRE(db.save(path, &error));
  const TuningDb loaded = TuningDb::load(path);
  const uint64_t dev = kiln::gemm::device_hash("Dev");
  const Config* found = loaded.find(dev, 132, Kind::kDense, 7168, 2048, 64);
  REQUIRE(found != nullptr);
  CHECK(*found == good);
  for (int mm = 164; mm <= m; mm += 100)
    CHECK(loaded.find(dev, 132, Kind::kDense, 7168, 2048, mm) == nullptr);
  CHECK(loaded.find(dev, 132, Kind::kGroupedMasked, 7168, 2048, 64) == nullptr);
  CHECK(loaded.entries().size() == 1);
  std::filesystem::remove(path);
}

TEST_CASE("check_config accepts every candidate and names what is wrong", "[unit][config]") {
  for (auto kind : {Kind::kDense, Kind::kGroupedByRow, Kind::kGroupedMasked})
    for (const auto& c : kiln::gemm::candidate_configs(2112, 7168, kind))
      CHECK(kiln::gemm::check_config(c, 2112, 7168, kind).empty());
  using Catch::Matchers::Contains;
  CHECK_THAT(kiln::gemm::check_config({128, 96, 4, 8, 1, 1}, 2112, 7168, Kind::kDense),
             Contains("block_n 96"));
  CHECK_THAT(kiln::gemm::check_config({64, 64, 8, 8, 1, 4}, 2112, 256, Kind::kDense),
             Contains("split_k 4 with 2 K blocks"));
  CHECK_THAT(kiln::gemm::check_config({128, 128, 9, 8, 1, 1}, 2112, 7168, Kind::kDense),
             Contains("stages 9"));
  // 176-column tiles are dense only, and grouped candidates leave them out
  CHECK(kiln::gemm::check_config({128, 176, 4, 8, 1, 1}, 2112, 7168, Kind::kDense).empty());
  CHECK_THAT(kiln::gemm::check_config({128, 176, 4, 8, 1, 1}, 2112, 7168, Kind::kGroupedMasked),
             Contains("block_n 176 is for dense GEMMs only"));
  CHECK_THAT(kiln::gemm::check_config({64, 176, 8, 8, 1, 1}, 2112, 7168, Kind::kDense),
             Contains("block_n 176 needs block_m 128"));
  for (auto kind : {Kind::kGroupedByRow, Kind::kGroupedByOffset, Kind::kGroupedMasked})
    for (const auto& c : kiln::gemm::candidate_configs(2112, 7168, kind)) CHECK(c.block_n != 176);
}
