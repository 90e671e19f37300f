// `kiln score` (no GPU) through the built binary (KILN_CLI_PATH): the heuristic's picks scored
// against kiln tune --json timings, its bad inputs, and the timings stored in data/tune/,
// which every change of the heuristic must keep within 5% of the fastest.
#include <catch2/catch.hpp>

#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "gemm/config.hpp"
#include "support.hpp"

namespace fs = std::filesystem;
using Catch::Matchers::Contains;
using nlohmann::json;
using Run = kiln::test::ProcessResult;

namespace {

Run kiln_cli(const kiln::test::TempDir& dir, const std::vector<std::string>& args) {
  REQUIRE(fs::exists(KILN_CLI_PATH));  // the kiln_cli target must be built
  static int runs = 0;
  kiln::test::Command command;
  command.out = dir.path() / ("run" + std::to_string(runs) + ".out");
  command.err = dir.path() / ("run" + std::to_string(runs++) + ".err");
  kiln::test::EnvChanges changes = kiln::test::unset_kiln_variables();
  changes["KILN_CACHE_DIR"] = (dir.path() / "cache").string();
  command.env = kiln::test::environment_with(changes);
  command.argv = {KILN_CLI_PATH};
  command.argv.insert(command.argv.end(), args.begin(), args.end());
  command.timeout_s = 60;
  const Run r = kiln::test::run_process(command);
  INFO("stdout: " << r.out << "\nstderr: " << r.err);
  REQUIRE(r.exited);
  return r;
}

std::string pick(int m, int n, int k) {
  return kiln::gemm::config_name(kiln::gemm::heuristic_config(m, n, k, 132));
}

// A kiln tune --json document: shape A's pick is the fastest, shape B's pick is 20 us against
// 19 for another config (5.3% slower; a faster timing of a configuration the kernels no longer
// support does not count), shape C's pick was not timed.
json tune_output() {
  auto shape = [](int m, int n, int k, json candidates) {
    return json{{"kind", "dense"}, {"m", m}, {"n", n}, {"k", k}, {"m_config", m},
                {"candidates", candidates}};
  };
  const std::string other = "128x256x3";  // never the heuristic's pick at these M
  REQUIRE(pick(64, 2112, 7168) != other);
  REQUIRE(pick(192, 4096, 7168) != other);
  // 128 x 128 split two ways leaves room for 3 stages next to its receive buffers, not 6.
  REQUIRE_FALSE(kiln::gemm::check_config({128, 128, 6, 8, 1, 2}, 4096, 7168,
                                         kiln::gemm::Kind::kDense)
                    .empty());
  return {{"device", "NVIDIA H200"},
          {"sms", 132},
          {"results",
           {shape(64, 2112, 7168, {{{"config", pick(64, 2112, 7168)}, {"us", 10.0}},
                                   {{"config", other}, {"us", 30.0}}}),
            shape(192, 4096, 7168, {{{"config", pick(192, 4096, 7168)}, {"us", 20.0}},
                                    {{"config", other}, {"us", 19.0}},
                                    {{"config", "128x128x6k2"}, {"us", 5.0}}}),
            shape(64, 7168, 2048, {{{"config", other}, {"us", 9.0}}})}}};
}

}  // namespace

TEST_CASE("kiln score compares the heuristic's picks with the fastest timed", "[unit][cli]") {
  kiln::test::TempDir dir("kiln-score-test");
  const fs::path file = dir.path() / "tune.json";
  kiln::test::write_text(file, tune_output().dump());

  const Run text = kiln_cli(dir, {"score", file.string()});
  CHECK(text.exit_code == 0);
  CHECK_THAT(text.out, Contains("5.3%"));       // shape B
  CHECK_THAT(text.out, Contains("not timed"));  // shape C
  CHECK_THAT(text.out, Contains("2 shapes scored"));
  CHECK_THAT(text.out, Contains("192 x 4096 x 7168"));  // the worst

  const json j = kiln::test::success_json(kiln_cli(dir, {"score", file.string(), "--json"}));
  CHECK(j.at("scored").get<int>() == 2);
  CHECK(j.at("heuristic_not_timed").get<int>() == 1);
  CHECK(j.at("worst_slowdown").get<double>() == Approx(20.0 / 19.0));
  CHECK(j.at("mean_slowdown").get<double>() == Approx(std::sqrt(20.0 / 19.0)));
  CHECK(j.at("shapes").size() == 3);
  CHECK(j.at("stale_timings").get<int>() == 1);
  CHECK_THAT(text.out, Contains("1 timings of configurations the current kernels no longer"));

  // A limit below the worst pick fails (exit 1) and says so; one above it passes.
  const Run strict = kiln_cli(dir, {"score", file.string(), "--max-regret", "5"});
  CHECK(strict.exit_code == 1);
  CHECK_THAT(strict.err, Contains("--max-regret"));
  CHECK(kiln_cli(dir, {"score", file.string(), "--max-regret", "6"}).exit_code == 0);
}

TEST_CASE("kiln score matches a pick with bands to timings stored without them",
          "[unit][cli]") {
  // 4096 x 32768 x 512: the pick has bands of 32 (128x256x3g32). Shape D's file timed the
  // same block shape before the bands (no g suffix) at 10 us, another config at 12; shape E's
  // holds both, the exact name (10 us) counting over the unsuffixed one (30 us).
  const std::string picked = pick(4096, 32768, 512);
  REQUIRE(picked == "128x256x3g32");
  auto shape = [](json candidates) {
    return json{{"kind", "dense"}, {"m", 4096}, {"n", 32768}, {"k", 512}, {"m_config", 4096},
                {"candidates", candidates}};
  };
  kiln::test::TempDir dir("kiln-score-test");
  const fs::path d = dir.path() / "d.json", e = dir.path() / "e.json";
  auto doc = [](json result) {
    return json{{"device", "NVIDIA H200"}, {"sms", 132}, {"results", {result}}}.dump();
  };
  kiln::test::write_text(d, doc(shape({{{"config", "128x256x3"}, {"us", 10.0}},
                                       {{"config", "128x192x4g32"}, {"us", 12.0}}})));
  kiln::test::write_text(e, doc(shape({{{"config", picked}, {"us", 10.0}},
                                       {{"config", "128x256x3"}, {"us", 30.0}},
                                       {{"config", "128x192x4g32"}, {"us", 12.0}}})));
  for (const fs::path& f : {d, e}) {
    INFO(f.filename());
    const json j = kiln::test::success_json(kiln_cli(dir, {"score", f.string(), "--json"}));
    CHECK(j.at("scored").get<int>() == 1);
    CHECK(j.at("heuristic_not_timed").get<int>() == 0);
    CHECK(j.at("worst_slowdown").get<double>() == Approx(1.0));
  }
}

TEST_CASE("kiln score rejects what is not kiln tune --json output", "[unit][cli]") {
  kiln::test::TempDir dir("kiln-score-test");
  const fs::path not_json = dir.path() / "a.json", wrong = dir.path() / "b.json";
  kiln::test::write_text(not_json, "dense 64 2112 7168\n");
  kiln::test::write_text(wrong, R"({"device": "NVIDIA H200", "results": []})");  // no "sms"
  const fs::path bad_config = dir.path() / "c.json";
  kiln::test::write_text(bad_config, R"({"device": "NVIDIA H200", "sms": 132, "results": [
      {"m": 64, "n": 2112, "k": 7168, "candidates": [{"config": "64x64", "us": 10.0}]}]})");
  const struct {
    std::vector<std::string> args;
    std::string says;
  } cases[] = {
      {{"score"}, "files"},
      {{"score", (dir.path() / "missing.json").string()}, "missing.json"},
      {{"score", not_json.string()}, "not JSON"},
      {{"score", wrong.string()}, "sms"},
      {{"score", bad_config.string()}, "\"64x64\" is not a configuration name"},
      {{"score", wrong.string(), "--max-regret", "-1"}, "--max-regret"},
  };
  for (const auto& c : cases) {
    const Run r = kiln_cli(dir, c.args);
    INFO("stderr: " << r.err);
    CHECK(r.exit_code == 2);
    CHECK_THAT(r.err, Contains(c.says));
  }
}

TEST_CASE("the heuristic stays within 5% of the fastest on the stored tune timings",
          "[unit][cli]") {
  // data/tune: every candidate timed on 74 shapes on an H200 and 33 on an H100 (kiln tune -v,
  // docs/PERFORMANCE.md). A change of the heuristic that picks worse there fails here.
  const fs::path data = fs::path(__FILE__).parent_path().parent_path().parent_path() / "data" /
                        "tune";
  std::vector<std::string> args = {"score", "--max-regret", "5", "--json"};
  for (const auto& entry : fs::directory_iterator(data))
    if (entry.path().extension() == ".json") args.push_back(entry.path().string());
  REQUIRE(args.size() >= 6);
  kiln::test::TempDir dir("kiln-score-test");
  const json j = kiln::test::success_json(kiln_cli(dir, args));
  CHECK(j.at("scored").get<int>() >= 100);
  CHECK(j.at("heuristic_not_timed").get<int>() == 0);
  CHECK(j.at("worst_slowdown").get<double>() <= 1.05);
  CHECK(j.at("mean_slowdown").get<double>() <= 1.01);
}
