// `kiln cache` end to end: the built CLI (KILN_CLI_PATH) run as a child process on a
// temporary KILN_CACHE_DIR filled by `kiln compile` (NVRTC on the CPU, no GPU needed).
#include <sys/time.h>

#include <catch2/catch.hpp>
#include <ctime>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "cache/inspect.hpp"
#include "cache/manifest.hpp"
#include "support.hpp"

namespace fs = std::filesystem;
using Catch::Matchers::Contains;
using kiln::test::read_text;
using kiln::test::TempDir;
using kiln::test::write_text;
using nlohmann::json;

namespace {

struct Run {
  int status = -1;
  std::string out, err;
};

// Runs a program (no shell) with KILN_CACHE_DIR set to cache_dir when that is not empty;
// stdout and stderr go through files in scratch.
Run run_program(const std::vector<std::string>& args, const fs::path& cache_dir,
                const fs::path& scratch) {
  kiln::test::Command command;
  command.argv = args;
  kiln::test::EnvChanges changes = {{"KILN_LOG_LEVEL", std::nullopt}};
  if (!cache_dir.empty()) changes["KILN_CACHE_DIR"] = cache_dir.string();
  command.env = kiln::test::environment_with(changes);
  command.out = scratch / "stdout.txt";
  command.err = scratch / "stderr.txt";
  const kiln::test::ProcessResult p = kiln::test::run_process(command);
  Run r;
  r.status = p.exited ? p.exit_code : 128 + p.signal;  // as a shell reports it
  r.out = p.out;
  r.err = p.err;
  return r;
}

// One cache directory and the means to run `kiln` on it.
class Cache {
 public:
  explicit Cache(const TempDir& base, const std::string& name)
      : dir_(base.path() / name), scratch_(base.path() / (name + ".scratch")) {
    fs::create_directories(scratch_);
  }
  const fs::path& dir() const { return dir_; }

  Run kiln(std::vector<std::string> args) const {
    args.insert(args.begin(), KILN_CLI_PATH);
    Run r = run_program(args, dir_, scratch_);
    INFO("kiln " << args[1] << " ... -> " << r.status << "\nstdout: " << r.out
                 << "\nstderr: " << r.err);
    CHECK(r.status != 127);
    return r;
  }
  json kiln_json(std::vector<std::string> args, int expected_status = 0) const {
    args.push_back("--json");
    const Run r = kiln(args);
    INFO("stdout: " << r.out << "\nstderr: " << r.err);
    REQUIRE(r.status == expected_status);
    const json j = json::parse(r.out, nullptr, false);
    REQUIRE(!j.is_discarded());
    return j;
  }
  // Compiles the kernel for (64, n, k) into this cache; returns its key.
  std::string compile(int n, int k, const std::string& expected_outcome = "compiled") const {
    const json j =
        kiln_json({"compile", "--m", "64", "--n", std::to_string(n), "--k", std::to_string(k)});
    CHECK(j["outcome"] == expected_outcome);
    return j["key"].get<std::string>();
  }
  fs::path entry(const std::string& key) const { return dir_ / "v1" / key.substr(0, 2) / key; }

 private:
  fs::path dir_, scratch_;
};

std::set<std::string> listed_keys(const json& ls) {
  std::set<std::string> keys;
  for (const auto& e : ls["entries"]) keys.insert(e["key"].get<std::string>());
  return keys;
}

void flip_byte(const fs::path& file, size_t offset) {
  std::string bytes = read_text(file);
  REQUIRE(bytes.size() > offset);
  bytes[offset] = static_cast<char>(bytes[offset] ^ 0x5a);
  write_text(file, bytes);
}

void set_created(const fs::path& entry_dir, int64_t created_unix) {
  kiln::cache::Manifest m;
  std::string error;
  REQUIRE(kiln::cache::Manifest::from_json(read_text(entry_dir / "manifest.json"), &m, &error));
  m.created_unix = created_unix;  // not covered by any hash: the entry stays valid
  write_text(entry_dir / "manifest.json", m.to_json());
}

bool contains_file_named(const fs::path& dir, const std::string& name) {
  for (const auto& e : fs::recursive_directory_iterator(dir))
    if (e.path().filename() == name) return true;
  return false;
}

bool cli_built() {
  if (std::string(KILN_CLI_PATH).empty()) {
    WARN("kiln_cli is not built (KILN_BUILD_CLI=OFF); skipping");
    return false;
  }
  return true;
}

}  // namespace

TEST_CASE("cache path and ls show the compiled entries", "[unit][cli][cache-cli]") {
  if (!cli_built()) return;
  TempDir base;
  const Cache cache(base, "cache");

  const Run path = cache.kiln({"cache", "path"});
  CHECK(path.status == 0);
  CHECK(path.out == cache.dir().string() + "\n");
  CHECK(cache.kiln_json({"cache", "path"})["cache_dir"] == cache.dir().string());

  const json empty = cache.kiln_json({"cache", "ls"});  // no root yet: an empty cache
  CHECK(empty["count"] == 0);

  const std::string small = cache.compile(256, 256);
  const std::string large = cache.compile(512, 512);
  REQUIRE(small != large);

  const json ls = cache.kiln_json({"cache", "ls"});
  REQUIRE(ls["count"] == 2);
  REQUIRE(ls["entries"].size() == 2);
  CHECK(listed_keys(ls) == std::set<std::string>{small, large});
  for (const auto& e : ls["entries"]) {
    const bool is_small = e["key"] == small;
    CHECK(e["readable"] == true);
    CHECK(e["kind"] == "dense");
    CHECK(e["n"] == (is_small ? 256 : 512));
    CHECK(e["k"] == (is_small ? 256 : 512));
    CHECK(e["block_m"].is_number_integer());
    CHECK(e["stages"].is_number_integer());
    CHECK(e["cubin_bytes"] == fs::file_size(cache.entry(e["key"]) / "kernel.cubin"));
    CHECK(e["age_seconds"].get<int64_t>() < 600);
    CHECK_THAT(e["kernel"].get<std::string>(), Contains(is_small ? "n=256" : "n=512"));
  }
  // sorted by kernel name: "... n=256 ..." < "... n=512 ..."
  CHECK(ls["entries"][0]["key"] == small);

  const Run text = cache.kiln({"cache", "ls"});
  CHECK(text.status == 0);
  CHECK_THAT(text.out, Contains(small) && Contains(large) && Contains("2 entries"));

  write_text(cache.entry(large) / "manifest.json", "{ not json");
  const json broken = cache.kiln_json({"cache", "ls"});
  REQUIRE(broken["count"] == 2);
  CHECK(broken["unreadable"] == 1);
  CHECK(broken["entries"][1]["key"] == large);  // unreadable ones last
  CHECK(broken["entries"][1]["kernel"] == "(unreadable)");
  CHECK(broken["entries"][1]["readable"] == false);
  CHECK_THAT(cache.kiln({"cache", "ls"}).out, Contains("(unreadable)"));
}

TEST_CASE("cache verify passes a good cache and quarantines a corrupted cubin",
          "[unit][cli][cache-cli]") {
  if (!cli_built()) return;
  TempDir base;
  const Cache cache(base, "cache");
  const std::string good = cache.compile(256, 256);
  const std::string bad = cache.compile(512, 512);

  const json ok = cache.kiln_json({"cache", "verify"});
  CHECK(ok["ok"] == 2);
  CHECK(ok["quarantined"].empty());
  CHECK(cache.kiln({"cache", "verify"}).status == 0);

  flip_byte(cache.entry(bad) / "kernel.cubin", 100);
  const Run verify = cache.kiln({"cache", "verify"});
  CHECK(verify.status == 1);
  CHECK_THAT(verify.out, Contains(bad) && Contains("hashes to") && Contains("1 quarantined"));
  CHECK_FALSE(fs::exists(cache.entry(bad)));
  CHECK(fs::exists(cache.entry(good)));
  bool quarantined = false;
  for (const auto& e : fs::directory_iterator(cache.dir() / "quarantine"))
    quarantined |= e.path().filename().string().rfind(bad + ".", 0) == 0;
  CHECK(quarantined);

  const json after = cache.kiln_json({"cache", "verify"});  // the bad one is gone now
  CHECK(after["ok"] == 1);
  CHECK(after["quarantined"].empty());

  // A bad manifest is quarantined too, and --json reports the key and the reason.
  write_text(cache.entry(good) / "manifest.json", "[]");
  const json j = cache.kiln_json({"cache", "verify"}, 1);
  CHECK(j["ok"] == 0);
  REQUIRE(j["quarantined"].size() == 1);
  CHECK(j["quarantined"][0]["key"] == good);
  CHECK_THAT(j["quarantined"][0]["reason"].get<std::string>(), Contains("not an object"));
}

TEST_CASE("cache prune removes by age and size, and a dry run removes nothing",
          "[unit][cli][cache-cli]") {
  if (!cli_built()) return;
  TempDir base;
  const Cache cache(base, "cache");
  const std::string old_key = cache.compile(256, 256);
  const std::string new_key = cache.compile(512, 512);
  set_created(cache.entry(old_key), static_cast<int64_t>(std::time(nullptr)) - 3 * 86400);

  SECTION("--older-than") {
    const json fresh = cache.kiln_json({"cache", "prune", "--older-than", "7d"});
    CHECK(fresh["removed_count"] == 0);
    CHECK(fresh["kept"] == 2);
    CHECK(fs::exists(cache.entry(old_key)));

    const json dry = cache.kiln_json({"cache", "prune", "--older-than", "1d", "--dry-run"});
    CHECK(dry["dry_run"] == true);
    REQUIRE(dry["removed_count"] == 1);
    CHECK(dry["removed"][0]["key"] == old_key);
    CHECK(fs::exists(cache.entry(old_key)));

    const json pruned = cache.kiln_json({"cache", "prune", "--older-than", "1d"});
    REQUIRE(pruned["removed_count"] == 1);
    CHECK(pruned["removed"][0]["key"] == old_key);
    CHECK(pruned["removed"][0]["reason"] == "age");
    CHECK(pruned["removed_bytes"] == pruned["removed"][0]["bytes"]);
    CHECK_FALSE(fs::exists(cache.entry(old_key)));
    CHECK(fs::exists(cache.entry(new_key)));
    CHECK(listed_keys(cache.kiln_json({"cache", "ls"})) == std::set<std::string>{new_key});
    CHECK(cache.kiln_json({"cache", "verify"})["ok"] == 1);
  }

  SECTION("--max-size keeps the newest entries that fit") {
    uint64_t new_bytes = 0;
    for (const auto& e : kiln::cache::list_entries(cache.dir()))
      if (e.key == new_key) new_bytes = e.bytes;
    REQUIRE(new_bytes > 0);
    const json pruned =
        cache.kiln_json({"cache", "prune", "--max-size", std::to_string(new_bytes)});
    REQUIRE(pruned["removed_count"] == 1);
    CHECK(pruned["removed"][0]["key"] == old_key);
    CHECK(pruned["removed"][0]["reason"] == "size");
    CHECK(pruned["kept_bytes"] == new_bytes);
    CHECK(fs::exists(cache.entry(new_key)));
  }

  SECTION("--max-size 1 removes everything; --dry-run only reports") {
    const json dry = cache.kiln_json({"cache", "prune", "--max-size", "1", "--dry-run"});
    CHECK(dry["removed_count"] == 2);
    CHECK(dry["removed_bytes"].get<uint64_t>() > 0);
    CHECK(fs::exists(cache.entry(old_key)));
    CHECK(fs::exists(cache.entry(new_key)));
    CHECK_THAT(cache.kiln({"cache", "prune", "--max-size", "1", "--dry-run"}).out,
               Contains("would remove 2 entries"));

    const json pruned = cache.kiln_json({"cache", "prune", "--max-size", "1"});
    CHECK(pruned["removed_count"] == 2);
    CHECK(pruned["removed_bytes"] == dry["removed_bytes"]);
    CHECK(pruned["kept"] == 0);
    CHECK_FALSE(fs::exists(cache.entry(old_key)));
    CHECK_FALSE(fs::exists(cache.entry(new_key)));
    CHECK(cache.kiln_json({"cache", "ls"})["count"] == 0);
    CHECK(fs::is_empty(cache.dir() / "tmp"));  // renamed into tmp/, then deleted
    cache.compile(256, 256);                   // and the cache still works
  }

  SECTION("quarantine and stale tmp leftovers are cleared, fresh tmp dirs kept") {
    flip_byte(cache.entry(new_key) / "kernel.cubin", 64);
    CHECK(cache.kiln({"cache", "verify"}).status == 1);
    REQUIRE_FALSE(fs::is_empty(cache.dir() / "quarantine"));
    const fs::path stale = cache.dir() / "tmp" / "crashed.1.0",
                   fresh = cache.dir() / "tmp" / "busy.2.0";
    fs::create_directories(stale);
    fs::create_directories(fresh);
    write_text(stale / "kernel.cubin", "partial");
    const timeval two_hours_ago[2] = {{std::time(nullptr) - 7200, 0},
                                      {std::time(nullptr) - 7200, 0}};
    REQUIRE(::utimes(stale.c_str(), two_hours_ago) == 0);

    const json pruned = cache.kiln_json({"cache", "prune", "--older-than", "30d"});
    CHECK(pruned["removed_count"] == 0);
    CHECK(pruned["quarantine_removed"] == 1);
    CHECK(pruned["tmp_removed"] == 1);
    CHECK(fs::is_empty(cache.dir() / "quarantine"));
    CHECK_FALSE(fs::exists(stale));
    CHECK(fs::exists(fresh));
    CHECK(fs::exists(cache.entry(old_key)));
  }
}

TEST_CASE("cache subcommands reject bad arguments with exit 2", "[unit][cli][cache-cli]") {
  if (!cli_built()) return;
  TempDir base;
  const Cache cache(base, "cache");
  const std::string key = cache.compile(256, 256);

  Run r = cache.kiln({"cache", "prune", "--older-than", "3 days"});
  CHECK(r.status == 2);
  CHECK_THAT(r.err, Contains("--older-than") && Contains("3 days"));
  r = cache.kiln({"cache", "prune", "--older-than", "12"});  // a unit is required
  CHECK(r.status == 2);
  r = cache.kiln({"cache", "prune", "--max-size", "2Q"});
  CHECK(r.status == 2);
  CHECK_THAT(r.err, Contains("--max-size"));
  r = cache.kiln({"cache", "prune"});
  CHECK(r.status == 2);
  CHECK_THAT(r.err, Contains("--older-than or --max-size"));
  r = cache.kiln({"cache", "export", (base.path() / "bundle.zip").string()});
  CHECK(r.status == 2);
  CHECK_THAT(r.err, Contains(".tar"));
  r = cache.kiln({"cache", "import", (base.path() / "missing.tar").string()});
  CHECK(r.status == 2);
  CHECK_THAT(r.err, Contains("missing.tar"));
  CHECK(cache.kiln({"cache"}).status == 2);

  r = cache.kiln({"cache", "export", (base.path() / "no-such-dir" / "bundle.tar").string()});
  CHECK(r.status == 1);
  CHECK_THAT(r.err, Contains("no-such-dir"));
  write_text(base.path() / "junk.tar", "this is not a tar archive\n");
  r = cache.kiln({"cache", "import", (base.path() / "junk.tar").string()});
  CHECK(r.status == 1);
  CHECK_THAT(r.err, Contains("junk.tar"));

  CHECK(fs::exists(cache.entry(key)));  // none of it touched the cache
  CHECK(cache.kiln_json({"cache", "verify"})["ok"] == 1);
}

TEST_CASE("cache export and import move entries to another cache", "[unit][cli][cache-cli]") {
  if (!cli_built()) return;
  TempDir base;
  const Cache source(base, "source");
  const std::string small = source.compile(256, 256);
  const std::string large = source.compile(512, 512);
  const std::string archive = (base.path() / "bundle.tar.gz").string();

  const json exported = source.kiln_json({"cache", "export", archive});
  CHECK(exported["exported"].size() == 2);
  CHECK(exported["skipped"].empty());
  REQUIRE(fs::is_regular_file(archive));

  const Cache target(base, "target");
  const json imported = target.kiln_json({"cache", "import", archive});
  CHECK(imported["refused"].is_null());
  CHECK(imported["imported"].size() == 2);
  CHECK(imported["rejected"].empty());
  CHECK(listed_keys(target.kiln_json({"cache", "ls"})) == std::set<std::string>{small, large});
  CHECK(read_text(target.entry(small) / "kernel.cubin") ==
        read_text(source.entry(small) / "kernel.cubin"));
  CHECK(fs::is_empty(target.dir() / "tmp"));
  CHECK(target.compile(256, 256, "cached") == small);
  CHECK(target.compile(512, 512, "cached") == large);

  const json again = target.kiln_json({"cache", "import", archive});
  CHECK(again["imported"].empty());
  CHECK(again["present"].size() == 2);
}

TEST_CASE("cache import rejects a tampered entry and refuses escaping paths",
          "[unit][cli][cache-cli]") {
  if (!cli_built()) return;
  TempDir base;
  const Cache source(base, "source");
  const std::string good = source.compile(256, 256);
  const std::string tampered = source.compile(512, 512);
  const std::string plain = (base.path() / "bundle.tar").string();
  REQUIRE(source.kiln({"cache", "export", plain}).status == 0);

  // Unpack the bundle with the system tar, alter one cubin, pack it again.
  const fs::path unpacked = base.path() / "unpacked";
  fs::create_directories(unpacked);
  const fs::path scratch = base.path();
  REQUIRE(run_program({"tar", "-x", "-f", plain, "-C", unpacked.string()}, {}, scratch).status ==
          0);
  flip_byte(unpacked / "v1" / tampered.substr(0, 2) / tampered / "kernel.cubin", 200);

  SECTION("a tampered cubin is rejected, the rest imported") {
    const std::string bad_archive = (base.path() / "tampered.tar").string();
    REQUIRE(
        run_program({"tar", "-c", "-f", bad_archive, "-C", unpacked.string(), "v1"}, {}, scratch)
            .status == 0);
    const Cache target(base, "target");
    const json r = target.kiln_json({"cache", "import", bad_archive}, 1);
    CHECK(r["imported"] == json::array({good}));
    REQUIRE(r["rejected"].size() == 1);
    CHECK(r["rejected"][0]["key"] == tampered);
    CHECK_THAT(r["rejected"][0]["reason"].get<std::string>(), Contains("hashes to"));
    CHECK(listed_keys(target.kiln_json({"cache", "ls"})) == std::set<std::string>{good});
    CHECK(fs::is_empty(target.dir() / "tmp"));
    const Run text = target.kiln({"cache", "import", bad_archive});
    CHECK(text.status == 1);
    CHECK_THAT(text.out, Contains("rejected " + tampered));
  }

  SECTION("a member named ../evil makes the whole archive refused") {
    write_text(base.path() / "evil", "escaped\n");
    const std::string evil_archive = (base.path() / "evil.tar").string();
    // -P keeps the '..' that tar would otherwise strip when writing.
    REQUIRE(run_program({"tar", "-P", "-c", "-f", evil_archive, "-C", source.dir().string(), "v1",
                         "-C", unpacked.string(), "../evil"},
                        {}, scratch)
                .status == 0);
    REQUIRE_THAT(run_program({"tar", "-t", "-f", evil_archive}, {}, scratch).out,
                 Contains("../evil"));
    fs::remove(base.path() / "evil");

    const Cache target(base, "target");
    const Run text = target.kiln({"cache", "import", evil_archive});
    CHECK(text.status == 1);
    CHECK_THAT(text.err, Contains("../evil") && Contains("refusing"));
    const json r = target.kiln_json({"cache", "import", evil_archive}, 1);
    CHECK_THAT(r["refused"].get<std::string>(), Contains("../evil"));
    CHECK(r["imported"].empty());
    CHECK_FALSE(fs::exists(target.dir() / "v1"));  // nothing was extracted or published
    CHECK_FALSE(contains_file_named(base.path(), "evil"));
  }
}

TEST_CASE("cache durations and sizes parse strictly", "[unit][cli][cache-cli]") {
  using kiln::cache::parse_duration;
  using kiln::cache::parse_size;
  CHECK(parse_duration("30m") == 1800);
  CHECK(parse_duration("12h") == 12 * 3600);
  CHECK(parse_duration("7d") == 7 * 86400);
  CHECK(parse_duration("0s") == 0);
  CHECK_FALSE(parse_duration(""));
  CHECK_FALSE(parse_duration("12"));
  CHECK_FALSE(parse_duration("d"));
  CHECK_FALSE(parse_duration("-1d"));
  CHECK_FALSE(parse_duration("1.5h"));
  CHECK_FALSE(parse_duration("99999999999999999999d"));
  CHECK(parse_size("1") == 1u);
  CHECK(parse_size("500M") == 500ull << 20);
  CHECK(parse_size("2G") == 2ull << 30);
  CHECK(parse_size("4k") == 4096u);
  CHECK(parse_size("3KiB") == 3072u);
  CHECK_FALSE(parse_size("M"));
  CHECK_FALSE(parse_size("2Q"));
  CHECK_FALSE(parse_size("1 G"));
  CHECK_FALSE(parse_size("99999999999T"));
  CHECK(kiln::cache::format_age(300) == "5m");
  CHECK(kiln::cache::format_age(3 * 3600 + 5) == "3h");
  CHECK(kiln::cache::format_age(2 * 86400) == "2d");
  CHECK(kiln::cache::format_age(-10) == "0s");
}
