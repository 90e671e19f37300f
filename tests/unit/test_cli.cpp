// The `kiln` command-line tool, run as a separate process (KILN_CLI_PATH) with a fresh
// KILN_CACHE_DIR per test: versions, compile + disk cache across processes, recovery from
// damaged entries, usage errors, and KILN_KERNEL_DIR (read once per process, so only
// testable here).
#include <catch2/catch.hpp>

#include <cstring>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "kiln/version.hpp"
#include "support.hpp"

namespace fs = std::filesystem;
using Catch::Matchers::Contains;
using Catch::Matchers::StartsWith;
using kiln::test::EnvChanges;
using kiln::test::read_text;
using kiln::test::TempDir;
using kiln::test::write_text;
using nlohmann::json;
using Result = kiln::test::ProcessResult;

namespace {

const char* cli_path() { return KILN_CLI_PATH; }

// The repository's kernels/ folder, found from this file's path (CMake passes it absolute).
fs::path source_kernels_dir() {
  return fs::path(__FILE__).parent_path().parent_path().parent_path() / "kernels";
}

// One test's sandbox: a temporary root holding cache/ and the outputs of each run.
class Cli {
 public:
  Cli() : root_("kiln-cli-test"), cache_(root_.path() / "cache") {
    REQUIRE(std::strlen(cli_path()) > 0);  // the kiln_cli target must be built
    REQUIRE(fs::exists(cli_path()));
  }

  const fs::path& cache() const { return cache_; }
  const fs::path& root() const { return root_.path(); }

  // Starts `kiln args...`; stdout and stderr go to files (no pipe can fill up).
  pid_t start(const std::vector<std::string>& args, const EnvChanges& extra = {}) {
    const int id = runs_++;
    kiln::test::Command command;
    command.out = root() / ("run" + std::to_string(id) + ".out");
    command.err = root() / ("run" + std::to_string(id) + ".err");

    EnvChanges changes = {{"KILN_CACHE_DIR", cache_.string()},
                          {"KILN_KERNEL_DIR", std::nullopt},
                          {"KILN_LOG_LEVEL", std::nullopt}};
    for (const auto& [name, value] : extra) changes[name] = value;
    command.env = kiln::test::environment_with(changes);

    command.argv = {cli_path()};
    command.argv.insert(command.argv.end(), args.begin(), args.end());
    const pid_t pid = kiln::test::start_process(command);
    outputs_[pid] = {command.out, command.err};
    return pid;
  }

  Result finish(pid_t pid) {
    const Result r =
        kiln::test::finish_process(pid, outputs_.at(pid).first, outputs_.at(pid).second);
    REQUIRE(r.exited);  // no crash, no signal
    return r;
  }

  Result run(const std::vector<std::string>& args, const EnvChanges& extra = {}) {
    return finish(start(args, extra));
  }

  // Runs a command that must succeed with JSON on stdout.
  json run_json(const std::vector<std::string>& args, const EnvChanges& extra = {}) {
    return kiln::test::success_json(run(args, extra));
  }

 private:
  TempDir root_;
  fs::path cache_;
  int runs_ = 0;
  std::map<pid_t, std::pair<fs::path, fs::path>> outputs_;
};

const std::vector<std::string> kCompile64 = {"compile", "--m", "64", "--n", "2112",
                                             "--k", "7168", "--json"};

bool is_under(const fs::path& path, const fs::path& dir) {
  const std::string p = fs::weakly_canonical(path).string();
  const std::string d = fs::weakly_canonical(dir).string() + "/";
  return p.rfind(d, 0) == 0;
}

size_t count_entries(const fs::path& dir) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return 0;
  size_t n = 0;
  for (auto it = fs::directory_iterator(dir, ec); !ec && it != fs::directory_iterator();
       it.increment(ec))
    ++n;
  return n;
}


// Number of complete entries v1/<2 hex>/<key>/ in a cache.
size_t count_cache_entries(const fs::path& cache) {
  size_t n = 0;
  std::error_code ec;
  if (!fs::is_directory(cache / "v1", ec)) return 0;
  for (const auto& shard : fs::directory_iterator(cache / "v1")) n += count_entries(shard.path());
  return n;
}

}  // namespace

TEST_CASE("kiln --version prints the version", "[unit][cli]") {
  Cli cli;
  const Result r = cli.run({"--version"});
  CHECK(r.exit_code == 0);
  CHECK(r.out == std::string(KILN_VERSION_STRING) + "\n");
}

TEST_CASE("kiln info --json describes this machine", "[unit][cli]") {
  Cli cli;
  const json info = cli.run_json({"info", "--json"});
  INFO(info.dump(2));
  CHECK(info.at("kiln_version") == KILN_VERSION_STRING);
  CHECK_THAT(info.at("nvrtc_version").get<std::string>(), StartsWith("1"));
  CHECK(info.at("cache_dir") == cli.cache().string());
  const std::string digest = info.at("kernel_digest").get<std::string>();
  CHECK(digest.size() == 32);
  CHECK(digest.find_first_not_of("0123456789abcdef") == std::string::npos);
  CHECK(info.at("kernel_source") == "embedded");
  CHECK(info.at("gpus") == json::array());     // no GPU on this machine
  CHECK(info.at("driver_cuda_version").is_null());  // and no libcuda

  // The plain-text form says the same.
  const Result text = cli.run({"info"});
  CHECK(text.exit_code == 0);
  CHECK_THAT(text.out, Contains(digest));
  CHECK_THAT(text.out, Contains(cli.cache().string()));
  CHECK_THAT(text.out, Contains("GPU             none"));
  CHECK(!fs::exists(cli.cache()));  // info writes nothing
}

TEST_CASE("kiln compile builds once, then loads from disk in a new process", "[unit][cli]") {
  Cli cli;
  const json first = cli.run_json(kCompile64);
  INFO(first.dump(2));
  CHECK(first.at("outcome") == "compiled");
  CHECK(first.at("registers").get<int>() > 0);
  CHECK(first.at("spill_bytes") == 0);
  CHECK_THAT(first.at("lowered_name").get<std::string>(), StartsWith("_ZN4kiln13sm90_fp8_gemm"));
  CHECK_THAT(first.at("kernel").get<std::string>(), Contains("n=2112 k=7168"));
  CHECK(first.at("config").at("n") == 2112);
  CHECK(first.at("config").at("k") == 7168);
  CHECK(first.at("config").at("block_m") == 64);  // m=64 takes the one-warpgroup tile
  const std::string key = first.at("key").get<std::string>();
  CHECK(key.size() == 32);
  const fs::path cubin = first.at("cubin").get<std::string>();
  REQUIRE(fs::exists(cubin));
  CHECK(is_under(cubin, cli.cache()));
  CHECK(cubin.parent_path().filename() == key);
  CHECK(fs::file_size(cubin) == first.at("cubin_bytes").get<uint64_t>());
  CHECK(fs::exists(cubin.parent_path() / "manifest.json"));
  CHECK(count_cache_entries(cli.cache()) == 1);

  const json second = cli.run_json(kCompile64);
  CHECK(second.at("outcome") == "cached");
  CHECK(second.at("key") == key);
  CHECK(second.at("cubin") == first.at("cubin"));
  CHECK(second.at("lowered_name") == first.at("lowered_name"));
  CHECK(second.at("registers") == first.at("registers"));
  CHECK(count_cache_entries(cli.cache()) == 1);

  // The text form, a third process.
  const Result text = cli.run({"compile", "--m", "64", "--n", "2112", "--k", "7168"});
  CHECK(text.exit_code == 0);
  CHECK_THAT(text.out, Contains("outcome         cached"));
  CHECK_THAT(text.out, Contains(key));

  // Another M in the same bucket is the same kernel; another bucket is another kernel.
  CHECK(cli.run_json({"compile", "--m", "33", "--n", "2112", "--k", "7168", "--json"})
            .at("outcome") == "cached");
  const json wide =
      cli.run_json({"compile", "--m", "4096", "--n", "2112", "--k", "7168", "--json"});
  CHECK(wide.at("outcome") == "compiled");
  CHECK(wide.at("key") != key);
  CHECK(wide.at("config").at("block_m") == 128);
  CHECK(count_cache_entries(cli.cache()) == 2);
}

TEST_CASE("kiln compile --config compiles that config instead of the heuristic's", "[unit][cli]") {
  Cli cli;
  const json j = cli.run_json({"compile", "--m", "64", "--n", "2112", "--k", "7168", "--config",
                               "64x128x4k2g16", "--json"});
  CHECK(j.at("outcome") == "compiled");
  CHECK(j.at("spill_bytes") == 0);
  const json& c = j.at("config");
  CHECK(c.at("block_m") == 64);
  CHECK(c.at("block_n") == 128);
  CHECK(c.at("stages") == 4);
  CHECK(c.at("split_k") == 2);
  CHECK(c.at("group_m") == 16);
  // Not the heuristic's kernel for this shape.
  CHECK(cli.run_json(kCompile64).at("key") != j.at("key"));
}

TEST_CASE("kiln compile keys do not depend on the cache location", "[unit][cli]") {
  Cli a, b;  // two unrelated cache directories
  const json ja = a.run_json(kCompile64);
  const json jb = b.run_json(kCompile64);
  CHECK(ja.at("outcome") == "compiled");
  CHECK(jb.at("outcome") == "compiled");
  CHECK(ja.at("key") == jb.at("key"));
  CHECK(ja.at("cubin") != jb.at("cubin"));
}

TEST_CASE("two kiln compile processes racing on an empty cache build once", "[unit][cli]") {
  Cli cli;
  for (const char* n : {"2112", "4096"}) {
    const std::vector<std::string> args = {"compile", "--m", "64", "--n", n, "--k", "7168",
                                           "--json"};
    const pid_t p1 = cli.start(args);
    const pid_t p2 = cli.start(args);
    const Result r1 = cli.finish(p1), r2 = cli.finish(p2);
    INFO("n=" << n << "\n1: " << r1.out << r1.err << "\n2: " << r2.out << r2.err);
    REQUIRE(r1.exit_code == 0);
    REQUIRE(r2.exit_code == 0);
    const json j1 = json::parse(r1.out), j2 = json::parse(r2.out);
    const std::multiset<std::string> outcomes = {j1.at("outcome").get<std::string>(),
                                                 j2.at("outcome").get<std::string>()};
    CHECK(outcomes == std::multiset<std::string>{"cached", "compiled"});
    CHECK(j1.at("key") == j2.at("key"));
    CHECK(j1.at("cubin") == j2.at("cubin"));
    CHECK(r1.err.empty());  // no warnings: nothing was quarantined or unwritable
    CHECK(r2.err.empty());
  }
  CHECK(count_cache_entries(cli.cache()) == 2);
  CHECK(count_entries(cli.cache() / "tmp") == 0);  // no leftovers of the losing writer
  CHECK(count_entries(cli.cache() / "quarantine") == 0);
}

TEST_CASE("a damaged cache entry is quarantined and rebuilt", "[unit][cli]") {
  Cli cli;
  const json first = cli.run_json(kCompile64);
  REQUIRE(first.at("outcome") == "compiled");
  const fs::path cubin = first.at("cubin").get<std::string>();
  const fs::path manifest = cubin.parent_path() / "manifest.json";
  const std::string good_cubin = read_text(cubin);

  SECTION("truncated kernel.cubin") {
    fs::resize_file(cubin, fs::file_size(cubin) / 2);
  }
  SECTION("empty kernel.cubin") {
    fs::resize_file(cubin, 0);
  }
  SECTION("one flipped byte in kernel.cubin") {
    std::string bad = good_cubin;
    bad[bad.size() / 2] ^= 0x40;
    REQUIRE(write_text(cubin, bad));
  }
  SECTION("garbage manifest.json") {
    REQUIRE(write_text(manifest, "\x01 this is not json {{{"));
  }
  SECTION("manifest.json of another key") {
    json m = json::parse(read_text(manifest));
    m["key"] = std::string(32, '0');
    REQUIRE(write_text(manifest, m.dump()));
  }

  const Result again = cli.run(kCompile64);
  INFO(again.out << again.err);
  REQUIRE(again.exit_code == 0);
  const json rebuilt = json::parse(again.out);  // the quarantine warning went to stderr
  CHECK(rebuilt.at("outcome") == "compiled");
  CHECK(rebuilt.at("key") == first.at("key"));
  CHECK(rebuilt.at("cubin") == first.at("cubin"));
  CHECK_THAT(again.out + again.err, Contains("moved it to " + (cli.cache() / "quarantine").string()));
  CHECK(count_entries(cli.cache() / "quarantine") == 1);
  CHECK(read_text(cubin) == good_cubin);  // NVRTC is deterministic
  // The quarantined entry is the damaged one, kept for a post-mortem.
  const fs::path moved = fs::directory_iterator(cli.cache() / "quarantine")->path();
  CHECK_THAT(moved.filename().string(), StartsWith(first.at("key").get<std::string>() + "."));
  CHECK(fs::exists(moved / "kernel.cubin"));

  // And the rebuilt entry is good.
  CHECK(cli.run_json(kCompile64).at("outcome") == "cached");
  CHECK(count_entries(cli.cache() / "quarantine") == 1);
}

TEST_CASE("cache warnings go to stderr, never into --json output", "[unit][cli]") {
  Cli cli;
  const json first = cli.run_json(kCompile64);
  fs::resize_file(first.at("cubin").get<std::string>(), 16);
  const Result again = cli.run(kCompile64);
  REQUIRE(again.exit_code == 0);
  CHECK_NOTHROW(json::parse(again.out));
  CHECK_THAT(again.err, Contains("quarantine"));
}

TEST_CASE("kiln usage errors exit with code 2", "[unit][cli]") {
  Cli cli;
  struct Case {
    std::vector<std::string> args;
    const char* says;  // on stderr
  };
  const Case cases[] = {
      {{}, "subcommand"},
      {{"frobnicate"}, "subcommand"},
      {{"compile", "--m", "64", "--k", "7168"}, "--n"},
      {{"compile", "--m", "64", "--n", "2112"}, "--k"},
      {{"compile", "--n", "2112", "--k", "7168"}, "--m"},
      {{"compile", "--m", "0", "--n", "2112", "--k", "7168"}, "--m"},
      {{"compile", "--m", "-5", "--n", "2112", "--k", "7168"}, "--m"},
      {{"compile", "--m", "64", "--n", "2112", "--k", "7168", "--kind", "moe"}, "--kind"},
      {{"compile", "--m", "64", "--n", "2112", "--k", "7168", "--sms", "0"}, "--sms"},
      {{"compile", "--m", "64", "--n", "2112", "--k", "7168", "--bogus"}, "--bogus"},
      // Shape rules of gemm_fp8, named in the message.
      {{"compile", "--m", "1", "--n", "100", "--k", "7168"}, "N must be a multiple of 8"},
      {{"compile", "--m", "1", "--n", "2112", "--k", "7160"}, "K of 16"},
      // A named config: a name kiln bench prints, and one the kernels support.
      {{"compile", "--m", "64", "--n", "2112", "--k", "7168", "--config", "64x64"},
       "--config 64x64"},
      {{"compile", "--m", "64", "--n", "2112", "--k", "7168", "--config", "64x96x4"}, "block_n 96"},
      {{"compile", "--m", "64", "--n", "2112", "--k", "7168", "--config", "64x256x3"},
       "needs block_m 128"},
      {{"compile", "--m", "64", "--n", "2112", "--k", "7168", "--config", "64x64x99"}, "stages 99"},
      // A shape set brings its own shapes: --m/--n/--k would be ignored.
      {{"bench", "--model", "deepseek-v3", "--m", "64"}, "excludes"},
      {{"bench", "--l2", "warm"}, "--l2"},
      {{"bench", "--chain", "--l2", "flush"}, "--chain"},  // a flush would sit between runs
      {{"bench", "--host-threads", "0"}, "--host-threads"},
      {{"bench", "--host-threads", "65"}, "--host-threads"},
  };
  for (const Case& c : cases) {
    std::string joined;
    for (const auto& a : c.args) joined += a + " ";
    const Result r = cli.run(c.args);
    INFO("kiln " << joined << "\nstdout: " << r.out << "\nstderr: " << r.err);
    CHECK(r.exit_code == 2);
    CHECK(!r.err.empty());
    CHECK_THAT(r.err, Contains(c.says));
  }
  const Result n100 = cli.run({"compile", "--m", "1", "--n", "100", "--k", "7168"});
  CHECK_THAT(n100.err, Contains("--n 100"));

  // An unsupported arch is refused before anything is compiled (its exit code: see below).
  const Result arch = cli.run({"compile", "--arch", "sm_80", "--m", "64", "--n", "2112", "--k",
                               "7168"});
  CHECK(arch.exit_code != 0);
  CHECK_THAT(arch.err, Contains("sm_80"));
  CHECK_THAT(arch.err, Contains("sm_90a"));
  CHECK(count_cache_entries(cli.cache()) == 0);  // none of the above compiled anything
}

TEST_CASE("kiln compile --arch sm_80 is a usage error", "[unit][cli]") {
  Cli cli;
  const Result r = cli.run({"compile", "--arch", "sm_80", "--m", "64", "--n", "2112", "--k",
                            "7168"});
  CHECK(r.exit_code == 2);
}

TEST_CASE("KILN_KERNEL_DIR replaces the embedded kernel headers", "[unit][cli]") {
  const fs::path source = source_kernels_dir();
  REQUIRE(fs::is_regular_file(source / "kiln" / "gemm" / "sm90_fp8_gemm.cuh"));
  Cli cli;
  const json embedded_info = cli.run_json({"info", "--json"});
  const json embedded = cli.run_json(kCompile64);
  REQUIRE(embedded.at("outcome") == "compiled");

  const fs::path copy = cli.root() / "kernels-copy";
  fs::copy(source, copy, fs::copy_options::recursive);

  SECTION("an unmodified copy has the embedded digest") {
    // Same names and texts: switching between the two does not invalidate the cache.
    const EnvChanges env = {{"KILN_KERNEL_DIR", copy.string()}};
    const json info = cli.run_json({"info", "--json"}, env);
    CHECK(info.at("kernel_source") == copy.string());
    CHECK(info.at("kernel_digest") == embedded_info.at("kernel_digest"));
    const json compiled = cli.run_json(kCompile64, env);
    CHECK(compiled.at("key") == embedded.at("key"));
    CHECK(compiled.at("outcome") == "cached");
  }
  SECTION("one added comment changes the digest and the key") {
    const fs::path gemm = copy / "kiln" / "gemm" / "sm90_fp8_gemm.cuh";
    REQUIRE(write_text(
        gemm, read_text(gemm) + "\n// kiln test: a comment changes nothing but the key\n"));
    const EnvChanges env = {{"KILN_KERNEL_DIR", copy.string()}};
    const json info = cli.run_json({"info", "--json"}, env);
    INFO(info.dump(2));
    CHECK(info.at("kernel_source") == copy.string());
    CHECK(info.at("kernel_digest") != embedded_info.at("kernel_digest"));
    CHECK(info.at("kernel_digest").get<std::string>().size() == 32);

    const json compiled = cli.run_json(kCompile64, env);
    CHECK(compiled.at("outcome") == "compiled");
    CHECK(compiled.at("key") != embedded.at("key"));
    CHECK(compiled.at("spill_bytes") == 0);
    CHECK(count_cache_entries(cli.cache()) == 2);
    // The embedded headers' entry is still there for processes without KILN_KERNEL_DIR.
    CHECK(cli.run_json(kCompile64).at("outcome") == "cached");
  }
}

TEST_CASE("KILN_KERNEL_DIR without kiln/ fails clearly", "[unit][cli]") {
  Cli cli;
  const fs::path empty = cli.root() / "not-kernels";
  fs::create_directories(empty / "other");
  const EnvChanges env = {{"KILN_KERNEL_DIR", empty.string()}};
  for (const std::vector<std::string>& args :
       {std::vector<std::string>{"info", "--json"}, kCompile64}) {
    const Result r = cli.run(args, env);
    INFO(args[0] << "\nstdout: " << r.out << "\nstderr: " << r.err);
    CHECK(r.exit_code != 0);
    CHECK_THAT(r.err, Contains("KILN_KERNEL_DIR=" + empty.string()));
    CHECK_THAT(r.err, Contains("no kiln/ subfolder"));
  }
  // And a path that does not exist at all.
  const Result missing =
      cli.run({"info", "--json"}, {{"KILN_KERNEL_DIR", (cli.root() / "nowhere").string()}});
  CHECK(missing.exit_code != 0);
  CHECK_THAT(missing.err, Contains("KILN_KERNEL_DIR"));
  CHECK(count_cache_entries(cli.cache()) == 0);
}
