// `kiln warm` (NVRTC only, no GPU) through the built binary (KILN_CLI_PATH): shape files in
// text and JSON form, their errors with file and line, usage errors, the deepseek-v3 preset,
// --out; and `kiln tune` / `kiln bench` failing cleanly on this GPU-less machine.
#include <catch2/catch.hpp>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "support.hpp"

namespace fs = std::filesystem;
using Catch::Matchers::Contains;
using Catch::Matchers::StartsWith;
using nlohmann::json;
using Run = kiln::test::ProcessResult;

namespace {

// A temporary root holding cache/ (the KILN_CACHE_DIR of every run), shape files and outputs.
class WarmCli {
 public:
  WarmCli() : root_("kiln-warm-test") {
    REQUIRE(fs::exists(KILN_CLI_PATH));  // the kiln_cli target must be built
  }
  const fs::path& root() const { return root_.path(); }
  fs::path cache() const { return root() / "cache"; }

  fs::path write(const std::string& name, const std::string& text) const {
    const fs::path path = root() / name;
    kiln::test::write_text(path, text);  // checked by its size below
    REQUIRE(fs::file_size(path) == text.size());
    return path;
  }

  // Runs `kiln args...` with stdout and stderr captured separately in files; SIGALRM kills
  // a run still going after timeout_s (the alarm survives execve).
  Run run(const std::vector<std::string>& args, unsigned timeout_s = 300) {
    const int id = runs_++;
    kiln::test::Command command;
    command.out = root() / ("run" + std::to_string(id) + ".out");
    command.err = root() / ("run" + std::to_string(id) + ".err");
    kiln::test::EnvChanges changes = kiln::test::unset_kiln_variables();  // not kiln's own
    changes["KILN_CACHE_DIR"] = cache().string();
    command.env = kiln::test::environment_with(changes);
    command.argv = {KILN_CLI_PATH};
    command.argv.insert(command.argv.end(), args.begin(), args.end());
    command.timeout_s = timeout_s;
    const Run r = kiln::test::run_process(command);
    INFO("stdout: " << r.out << "\nstderr: " << r.err);
    REQUIRE(r.exited);  // exited, not killed by a signal
    return r;
  }

  // A warm that must succeed with --json; returns the parsed document.
  json warm_json(std::vector<std::string> args) {
    args.insert(args.begin(), "warm");
    args.push_back("--json");
    return kiln::test::success_json(run(args));
  }

 private:
  kiln::test::TempDir root_;
  int runs_ = 0;
};

// Complete entries v1/<shard>/<key>/ of a cache directory.
size_t cache_entries(const fs::path& cache) {
  size_t n = 0;
  std::error_code ec;
  if (!fs::is_directory(cache / "v1", ec)) return 0;
  for (const auto& shard : fs::directory_iterator(cache / "v1"))
    if (shard.is_directory())
      for (const auto& entry : fs::directory_iterator(shard.path()))
        n += fs::exists(entry.path() / "kernel.cubin") ? 1 : 0;
  return n;
}

std::set<std::string> keys_of(const json& warm) {
  std::set<std::string> keys;
  for (const auto& e : warm.at("entries")) keys.insert(e.at("key").get<std::string>());
  return keys;
}

// The document every successful first warm must print.
void check_first_warm(const json& j, const fs::path& cache_dir, size_t shapes) {
  INFO(j.dump(2));
  CHECK(j.at("cache_dir") == cache_dir.string());
  CHECK(j.at("shapes") == shapes);
  CHECK(j.at("kernels").get<size_t>() >= 1);
  CHECK(j.at("compiled") == j.at("kernels"));
  CHECK(j.at("cached") == 0);
  CHECK(j.at("failed") == json::array());
  CHECK(j.at("entries").size() == j.at("kernels").get<size_t>());
  for (const auto& e : j.at("entries")) {
    CHECK(e.at("cached") == false);
    CHECK_THAT(e.at("kernel").get<std::string>(), StartsWith("sm90_fp8_gemm"));
  }
  CHECK(keys_of(j).size() == j.at("entries").size());  // each kernel once
  CHECK(cache_entries(cache_dir) == j.at("kernels").get<size_t>());
}

void check_second_warm(const json& first, const json& second) {
  INFO(second.dump(2));
  CHECK(second.at("kernels") == first.at("kernels"));
  CHECK(second.at("cache_dir") == first.at("cache_dir"));
  CHECK(second.at("compiled") == 0);
  CHECK(second.at("cached") == first.at("kernels"));
  CHECK(second.at("failed") == json::array());
  for (const auto& e : second.at("entries")) CHECK(e.at("cached") == true);
  CHECK(keys_of(first) == keys_of(second));
}

const char* kTextShapes = "# small dense shapes for kiln warm\n\ndense 64 256 256\n"
                          "   # an indented comment\n"
                          "dense 4096 512 512  # comment after a shape\ndense 128 256 256 1\n";

const char* kJsonShapes = R"([
  {"kind": "dense", "m": 64, "n": 256, "k": 256},
  {"kind": "dense", "m": 4096, "n": 512, "k": 512},
  {"m": 128, "n": 256, "k": 256, "groups": 1}
])";

}  // namespace

TEST_CASE("kiln warm --shapes compiles a text shape file, then finds it cached",
          "[unit][cli][warm]") {
  WarmCli cli;
  const fs::path file = cli.write("shapes.txt", kTextShapes);
  const json first = cli.warm_json({"--shapes", file.string(), "-j", "2"});
  check_first_warm(first, cli.cache(), 3);
  CHECK(first.at("jobs") == 2);
  check_second_warm(first, cli.warm_json({"--shapes", file.string(), "-j", "2"}));
  CHECK(cache_entries(cli.cache()) == first.at("kernels").get<size_t>());

  // The text form says the same, on stdout.
  const Run text = cli.run({"warm", "--shapes", file.string()});
  CHECK(text.exit_code == 0);
  CHECK_THAT(text.out, Contains("3 shapes -> " + first.at("kernels").dump() + " kernels"));
  CHECK_THAT(text.out, Contains("compiled 0, already cached " + first.at("kernels").dump()));
}

TEST_CASE("kiln warm also compiles the tuning database's configurations for --sms",
          "[unit][cli][warm]") {
  WarmCli cli;
  const fs::path shapes = cli.write("s.txt", "dense 64 256 256\n");
  const json plain = cli.warm_json({"--shapes", shapes.string()});
  // Tuned entries: one for 132 SMs (the default --sms) from M = 1, one for 114 SMs, one for
  // M ranges above the set's largest M: only the first is added.
  auto entry = [](int sms, int m_min, int m_max, int stages) {
    return json{{"arch", "sm_90a"}, {"device", "NVIDIA H200"}, {"sms", sms},
                {"kind", "dense"}, {"n", 256}, {"k", 256}, {"m_min", m_min},
                {"m_max", m_max}, {"m_tuned", m_max}, {"us", 1.0}, {"heuristic_us", 1.0},
                {"config", {{"block_m", 128}, {"block_n", 64}, {"stages", stages},
                            {"group_m", 8}, {"multicast_n", 1}, {"split_k", 1}}}};
  };
  kiln::test::write_text(
      cli.cache() / "tuning.json",
      json{{"version", 1},
           {"entries", {entry(132, 1, 64, 3), entry(114, 1, 64, 2), entry(132, 65, 128, 4)}}}
          .dump());
  const json tuned = cli.warm_json({"--shapes", shapes.string()});
  INFO(tuned.dump(2));
  CHECK(tuned.at("kernels").get<int>() == plain.at("kernels").get<int>() + 1);
  CHECK(tuned.at("compiled") == 1);  // the heuristic's kernels are cached from the first run
  int tuned_kernels = 0;
  for (const auto& e : tuned.at("entries")) {
    const std::string kernel = e.at("kernel").get<std::string>();
    CHECK_THAT(kernel, !Contains("stages=2") && !Contains("block=128x64 stages=4"));
    tuned_kernels += kernel.find("block=128x64 stages=3") != std::string::npos;
  }
  CHECK(tuned_kernels == 1);
}

TEST_CASE("kiln warm reads the same shapes from a JSON array", "[unit][cli][warm]") {
  WarmCli text_cli, json_cli;
  const json from_text =
      text_cli.warm_json({"--shapes", text_cli.write("s.txt", kTextShapes).string()});
  const json from_json =
      json_cli.warm_json({"--shapes", json_cli.write("s.json", kJsonShapes).string()});
  check_first_warm(from_json, json_cli.cache(), 3);
  CHECK(from_json.at("kernels") == from_text.at("kernels"));
  CHECK(keys_of(from_json) == keys_of(from_text));  // keys do not depend on the cache dir
}

TEST_CASE("kiln warm rejects bad shape files, naming the file and line", "[unit][cli][warm]") {
  WarmCli cli;
  struct Case {
    const char* name;
    const char* text;   // nullptr: no such file
    const char* where;  // right after the path
    const char* says;
  };
  const Case cases[] = {
      {"3.txt", "# three fields\ndense 64 256 256\ndense 64 256\n", ":3:", "got 3 fields"},
      {"m.txt", "dense 6x4 256 256\n", ":1:", "M '6x4' is not an integer"},
      {"n.txt", "dense 64 256 256\n\ndense 64 260 256\n", ":3:", "N=260 is not a multiple of 8"},
      {"k.txt", "dense 64 256 256\n#\ndense 64 256 264\n", ":3:", "K=264 is not a multiple of 16"},
      {"kind.txt", "\n\n\n\nsparse 64 256 256\n", ":5:", "unknown kind 'sparse'"},
      {"zero.txt", "dense 64 256 256\ndense 0 256 256\n", ":2:", "must be positive"},
      {"6.txt", "dense 64 256 256 1 7\n", ":1:", "got 6 fields"},
      // Bad JSON: no line of ours, but nlohmann's message carries it.
      {"bad.json", "[\n  {\"kind\": \"dense\", \"m\": 64, \"n\": 256, \"k\": 256},\n"
                   "  {\"m\": 64 \"n\": 256, \"k\": 256}\n]\n", ": invalid JSON", "at line 3,"},
      {"n.json", R"([{"m": 64, "n": 100, "k": 256}])", ": ", "N=100 is not a multiple of 8"},
      {"missing.txt", nullptr, ": ", "cannot be read"},
  };
  for (const Case& c : cases) {
    const fs::path file = c.text ? cli.write(c.name, c.text) : cli.root() / c.name;
    const Run r = cli.run({"warm", "--shapes", file.string(), "--json"});
    INFO("file " << c.name << ":\n" << (c.text ? c.text : "") << "\nstdout: " << r.out
                 << "\nstderr: " << r.err);
    CHECK(r.exit_code == 2);
    CHECK_THAT(r.err, Contains(file.string() + c.where));
    CHECK_THAT(r.err, Contains(c.says));
    // The file is named once, not again by a nested check.
    CHECK(r.err.find(file.string()) == r.err.rfind(file.string()));
    CHECK(r.out.empty());
  }
  CHECK(cache_entries(cli.cache()) == 0);  // nothing was compiled
}

TEST_CASE("kiln warm usage errors exit with code 2", "[unit][cli][warm]") {
  WarmCli cli;
  const fs::path file = cli.write("s.txt", "dense 64 256 256\n");
  struct Case {
    std::vector<std::string> args;
    const char* says;
  };
  const Case cases[] = {
      {{"warm", "--model", "deepseek-v3", "--shapes", file.string()}, "excludes"},
      {{"warm"}, "--model or --shapes"},
      {{"warm", "--json"}, "--model or --shapes"},
      {{"warm", "--model", "llama"}, "llama"},
      {{"warm", "--shapes", file.string(), "-j", "0"}, "-j"},
      {{"warm", "--shapes", file.string(), "--sms", "0"}, "--sms"},
      {{"warm", "--shapes", file.string(), "--arch", "sm_80"}, "sm_80"},
  };
  for (const Case& c : cases) {
    const Run r = cli.run(c.args);
    INFO("expected: " << c.says << "\nstdout: " << r.out << "\nstderr: " << r.err);
    CHECK(r.exit_code == 2);
    CHECK_THAT(r.err, Contains(c.says));
  }
  CHECK(cache_entries(cli.cache()) == 0);
}

TEST_CASE("kiln warm --model deepseek-v3 compiles the preset once", "[unit][cli][warm]") {
  WarmCli cli;
  const json first = cli.warm_json({"--model", "deepseek-v3", "-j", "2"});
  CHECK(first.at("kernels").get<int>() >= 10);
  CHECK(first.at("shapes").get<int>() >= 48);  // 6 dense (N, K) x 8 M buckets, at least
  check_first_warm(first, cli.cache(), first.at("shapes").get<size_t>());
  check_second_warm(first, cli.warm_json({"--model", "deepseek-v3", "-j", "2"}));
}

TEST_CASE("kiln warm --out writes into that directory only", "[unit][cli][warm]") {
  WarmCli cli;
  const fs::path file = cli.write("s.txt", kTextShapes);
  const fs::path out = cli.root() / "bundle";
  const json first = cli.warm_json({"--shapes", file.string(), "--out", out.string()});
  check_first_warm(first, out, 3);
  CHECK(fs::is_directory(out / "v1"));
  CHECK(cache_entries(cli.cache()) == 0);  // KILN_CACHE_DIR untouched
  check_second_warm(first, cli.warm_json({"--shapes", file.string(), "--out", out.string()}));
  // The bundle is a cache: the default location still has to compile everything.
  const json plain = cli.warm_json({"--shapes", file.string()});
  CHECK(plain.at("compiled") == first.at("kernels"));
  CHECK(plain.at("cache_dir") == cli.cache().string());
}

TEST_CASE("kiln tune and bench fail cleanly without a CUDA driver", "[unit][cli][warm]") {
  WarmCli cli;
  const fs::path file = cli.write("s.txt", "dense 64 256 256\n");
  const std::vector<std::vector<std::string>> gpu_commands = {
      {"tune", "--shapes", file.string()},
      {"tune", "--model", "deepseek-v3", "--json"},
      {"bench", "--m", "64", "--n", "256", "--k", "256"},
  };
  for (const auto& args : gpu_commands) {
    const Run r = cli.run(args);  // REQUIREs a normal exit, not a signal
    INFO(args[0] << "\nstdout: " << r.out << "\nstderr: " << r.err);
    CHECK(r.exit_code == 1);
    CHECK_THAT(r.err, Contains("CUDA driver"));
    CHECK_THAT(r.err, Contains("libcuda"));
  }
  const Run usage = cli.run({"tune"});
  INFO("stderr: " << usage.err);
  CHECK(usage.exit_code == 2);
  CHECK_THAT(usage.err, Contains("--model or --shapes"));
  // A bad shape file is a usage error before any driver is needed.
  const Run bad = cli.run({"tune", "--shapes", cli.write("b.txt", "dense 64 256\n").string()});
  CHECK(bad.exit_code == 2);
  CHECK_THAT(bad.err, Contains(":1:"));
}

// BUG (tools/kiln/shapes.cpp, JSON branch of parse_shapes: item.at("m").get<int>() and the
// same for n, k, groups): nlohmann converts without checks, so 64.9 becomes 64, true becomes
// 1 and 4294967360 wraps to 64; the shape is silently changed instead of refused. The text
// form refuses all three (parse_int). Expected: exit 2 naming the file.
TEST_CASE("kiln warm refuses non-integer and out-of-range JSON numbers",
          "[unit][cli][warm]") {
  WarmCli cli;
  for (const char* m : {"64.9", "true", "4294967360"}) {
    const fs::path file =
        cli.write("m.json", std::string(R"([{"m": )") + m + R"(, "n": 256, "k": 256}])");
    const Run r = cli.run({"warm", "--shapes", file.string(), "--json"});
    INFO("m: " << m << "\nstdout: " << r.out << "\nstderr: " << r.err);
    CHECK(r.exit_code == 2);
    CHECK_THAT(r.err, Contains(file.string()));
  }
}

// Regression: M = INT32_MAX once overflowed heuristic_m_breakpoints' loop counter (kiln warm
// never ended). Shape files now refuse more than 2^30 rows (exit 2, naming the line); either
// way the run must end within 3 s.
TEST_CASE("kiln warm with M = INT32_MAX ends", "[unit][cli][warm]") {
  WarmCli cli;
  const fs::path file = cli.write("max.txt", "dense 2147483647 256 256\n");
  const Run r = cli.run({"warm", "--shapes", file.string(), "--json"}, 3);  // SIGALRM: fails
  CHECK((r.exit_code == 0 || r.exit_code == 2));
}

// Regression: M x G past INT32_MAX once wrapped to <= 0 rows and kiln warm compiled nothing,
// exiting 0. Now such a shape is refused (exit 2); if it were accepted, it must compile.
TEST_CASE("kiln warm with M x G past INT32_MAX is not silently empty",
          "[unit][cli][warm]") {
  WarmCli cli;
  const fs::path file = cli.write("g.txt", "grouped-contiguous 65536 256 256 32768\n");
  const Run r = cli.run({"warm", "--shapes", file.string(), "--json"}, 10);
  INFO("stdout: " << r.out << "\nstderr: " << r.err);
  if (r.exit_code != 2) {
    REQUIRE(r.exit_code == 0);
    CHECK(json::parse(r.out).at("kernels").get<int>() >= 1);
  }
}
