// Unit tests of the on-disk kernel cache (cache/): keys, manifests, locks, the store.
#include <fcntl.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>
#include <sys/file.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "cache/key.hpp"
#include "cache/lock.hpp"
#include "cache/manifest.hpp"
#include "cache/store.hpp"
#include "support.hpp"

namespace fs = std::filesystem;
using namespace kiln::cache;
using kiln::test::read_text;
using kiln::test::ScopedEnv;
using kiln::test::TempDir;
using kiln::test::write_text;
using namespace std::chrono_literals;

namespace {

// Sends the "kiln" logger's output to a string for the lifetime of the object.
class CapturedLog {
 public:
  CapturedLog() : sink_(std::make_shared<spdlog::sinks::ostream_sink_mt>(text_)) {
    logger_ = spdlog::get("kiln");
    if (logger_ == nullptr) {
      logger_ = std::make_shared<spdlog::logger>("kiln", sink_);
      spdlog::register_logger(logger_);
      created_ = true;
    } else {
      logger_->sinks().push_back(sink_);
    }
    old_level_ = logger_->level();
    logger_->set_level(spdlog::level::debug);
  }
  ~CapturedLog() {
    logger_->set_level(old_level_);
    if (created_) {
      spdlog::drop("kiln");
    } else {
      auto& sinks = logger_->sinks();
      sinks.erase(std::remove(sinks.begin(), sinks.end(), sink_), sinks.end());
    }
  }
  CapturedLog(const CapturedLog&) = delete;
  CapturedLog& operator=(const CapturedLog&) = delete;

  std::string text() const { return text_.str(); }
  int count(const std::string& needle) const {
    const std::string all = text();
    int n = 0;
    for (size_t at = all.find(needle); at != std::string::npos; at = all.find(needle, at + 1)) ++n;
    return n;
  }

 private:
  std::ostringstream text_;
  std::shared_ptr<spdlog::sinks::ostream_sink_mt> sink_;
  std::shared_ptr<spdlog::logger> logger_;
  spdlog::level::level_enum old_level_ = spdlog::level::info;
  bool created_ = false;
};

std::vector<fs::path> list_dir(const fs::path& dir) {
  std::vector<fs::path> names;
  std::error_code ec;
  for (auto it = fs::directory_iterator(dir, ec); !ec && it != fs::end(it); it.increment(ec)) {
    names.push_back(it->path().filename());
  }
  std::sort(names.begin(), names.end());
  return names;
}

bool starts_with(const std::string& text, const std::string& prefix) {
  return text.compare(0, prefix.size(), prefix) == 0;
}

Key test_key(std::string_view source = "__global__ void k() {}") {
  return KeyBuilder().add(int64_t{kSchemaVersion}).add("0.1.0").add(source).add("sm_90a").finish();
}

Built make_built(std::string cubin) {
  Built built;
  built.manifest.kernel = "test kernel n=128 k=256";
  built.manifest.lowered_name = "_Z6kernelILi128EEvv";
  built.manifest.arch = "sm_90a";
  built.manifest.registers = 168;
  built.manifest.created_unix = 1700000000;
  built.cubin = std::move(cubin);
  return built;
}

// A cubin with bytes that text handling would mangle.
std::string binary_cubin() {
  std::string cubin = "\x7f" "ELF";
  for (int i = 0; i < 1000; ++i) cubin.push_back(static_cast<char>(i * 7));
  cubin.push_back('\0');
  return cubin;
}

bool can_create_file_in(const fs::path& dir) {
  const fs::path probe = dir / "probe";
  const int fd = ::open(probe.c_str(), O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0644);
  if (fd < 0) return false;
  ::close(fd);
  fs::remove(probe);
  return true;
}

// A cache root that cannot be written. chmod 0555 is enough for a normal user, but root
// ignores permission bits; then the root is a regular file, under which nothing can be made.
fs::path unwritable_root(const fs::path& base) {
  const fs::path dir = base / "read-only";
  fs::create_directory(dir);
  fs::permissions(dir, fs::perms::owner_read | fs::perms::owner_exec | fs::perms::group_read |
                           fs::perms::group_exec | fs::perms::others_read |
                           fs::perms::others_exec);
  if (!can_create_file_in(dir)) return dir;
  fs::permissions(dir, fs::perms::owner_all, fs::perm_options::add);
  const fs::path file = base / "not-a-directory";
  write_text(file, "");
  REQUIRE_FALSE(can_create_file_in(file));
  return file;
}

void append_line(const fs::path& path, const std::string& line) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) throw std::runtime_error("cannot open " + path.string());
  const std::string text = line + "\n";
  const bool ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
  ::close(fd);
  if (!ok) throw std::runtime_error("cannot append to " + path.string());
}

int count_lines(const fs::path& path) {
  const std::string text = read_text(path);
  return static_cast<int>(std::count(text.begin(), text.end(), '\n'));
}

}  // namespace

// ---- keys ------------------------------------------------------------------------------

TEST_CASE("key: same fields give the same key, in a fixed format", "[cache]") {
  auto make = [] {
    return KeyBuilder()
        .add(int64_t{1})
        .add("0.1.0")
        .add("9f2c4e1a")
        .add("extern \"C\" __global__ void k() {}")
        .add("12.8")
        .add("-arch=sm_90a --std=c++17")
        .add("sm_90a")
        .finish();
  };
  const Key key = make();
  CHECK(key == make());
  // Computed once with one-shot XXH3_128bits over the length-prefixed buffer. If this
  // changes, every cache on disk goes stale: bump kSchemaVersion.
  CHECK(key.hex() == "031e439ebe0458d1d0881e3310ff820e");

  CHECK(KeyBuilder().add(int64_t{-42}).finish() == KeyBuilder().add("-42").finish());
  CHECK(KeyBuilder().finish() != KeyBuilder().add("").finish());

  CHECK(hash_hex("") == "99aa06d3014798d86001c324468d497f");
  CHECK(hash_hex("cubin") == "28a51c2d93b9bea0737b77e564124e0b");
}

TEST_CASE("key: changing any one field changes the key", "[cache]") {
  const std::vector<std::string> fields = {"1",    "0.1.0", "headers-digest", "source",
                                           "12.8", "-O3",   "sm_90a"};
  auto key_of = [](const std::vector<std::string>& list) {
    KeyBuilder builder;
    for (const auto& field : list) builder.add(field);
    return builder.finish().hex();
  };
  std::set<std::string> keys = {key_of(fields)};
  for (size_t i = 0; i < fields.size(); ++i) {
    auto changed = fields;
    changed[i] += "x";
    keys.insert(key_of(changed));
    changed[i] = "";
    keys.insert(key_of(changed));
  }
  CHECK(keys.size() == 1 + 2 * fields.size());

  auto fewer = fields;
  fewer.pop_back();
  CHECK(key_of(fewer) != key_of(fields));
  auto swapped = fields;
  std::swap(swapped[0], swapped[1]);
  CHECK(key_of(swapped) != key_of(fields));
}

TEST_CASE("key: field boundaries are part of the key", "[cache]") {
  CHECK(KeyBuilder().add("ab").add("c").finish() != KeyBuilder().add("a").add("bc").finish());
  CHECK(KeyBuilder().add("abc").finish() != KeyBuilder().add("ab").add("c").finish());
  CHECK(KeyBuilder().add("").add("a").finish() != KeyBuilder().add("a").add("").finish());
  CHECK(KeyBuilder().add(int64_t{12}).add(int64_t{3}).finish() !=
        KeyBuilder().add(int64_t{1}).add(int64_t{23}).finish());
}

TEST_CASE("key: hex round trip", "[cache]") {
  const std::vector<Key> keys = {Key{0, 0}, Key{~0ull, 1}, Key{0x0123456789abcdefull, 0xfedcba9876543210ull},
                                 test_key()};
  for (const Key& key : keys) {
    const std::string hex = key.hex();
    CHECK(hex.size() == 32);
    CHECK(hex.find_first_not_of("0123456789abcdef") == std::string::npos);
    Key parsed;
    REQUIRE(Key::parse_hex(hex, &parsed));
    CHECK(parsed == key);
  }
  CHECK(Key{0x0123456789abcdefull, 0xfedcba9876543210ull}.hex() ==
        "0123456789abcdeffedcba9876543210");
}

TEST_CASE("key: parse_hex rejects bad strings", "[cache]") {
  const std::string good = "0123456789abcdeffedcba9876543210";
  const std::vector<std::string> bad = {
      "",
      good.substr(1),
      good + "0",
      "0123456789ABCDEFFEDCBA9876543210",
      "0123456789abcdefgedcba9876543210",
      "0x23456789abcdeffedcba9876543210",
      " 123456789abcdeffedcba9876543210",
      std::string("0123456789abcdef\0edcba9876543210", 32),
  };
  for (const std::string& text : bad) {
    Key key{7, 9};
    CHECK_FALSE(Key::parse_hex(text, &key));
    CHECK(key == Key{7, 9});  // untouched on failure
  }
}

// ---- manifests -------------------------------------------------------------------------

TEST_CASE("manifest: every field survives a round trip", "[cache]") {
  Manifest m;
  m.key = test_key().hex();
  m.kernel = "sm90_fp8_gemm n=2112 k=7168 bm=64 \"quoted\" \xc3\xa9";
  m.lowered_name = "_Z9fp8_gemmILi64ELi128EEvPKhS1_";
  m.arch = "sm_90a";
  m.config = R"({"kind":"dense","n":2112,"k":7168,"block_m":64})";
  m.kiln_version = "0.1.0";
  m.nvrtc_version = "12.8";
  m.registers = 168;
  m.spill_bytes = 3;
  m.stack_bytes = 16;
  m.static_smem_bytes = 1024;
  m.dynamic_smem_bytes = 232448;
  m.compile_ms = 1234.5678;
  m.cubin_size = (1ull << 40) + 3;
  m.cubin_hash = hash_hex("cubin");
  m.created_unix = 1735689600;

  Manifest back;
  std::string error;
  REQUIRE(Manifest::from_json(m.to_json(), &back, &error));
  CHECK(error.empty());
  CHECK(back.schema == kSchemaVersion);
  CHECK(back.key == m.key);
  CHECK(back.kernel == m.kernel);
  CHECK(back.lowered_name == m.lowered_name);
  CHECK(back.arch == m.arch);
  CHECK(back.config == m.config);
  CHECK(back.kiln_version == m.kiln_version);
  CHECK(back.nvrtc_version == m.nvrtc_version);
  CHECK(back.registers == m.registers);
  CHECK(back.spill_bytes == m.spill_bytes);
  CHECK(back.stack_bytes == m.stack_bytes);
  CHECK(back.static_smem_bytes == m.static_smem_bytes);
  CHECK(back.dynamic_smem_bytes == m.dynamic_smem_bytes);
  CHECK(back.compile_ms == m.compile_ms);
  CHECK(back.cubin_size == m.cubin_size);
  CHECK(back.cubin_hash == m.cubin_hash);
  CHECK(back.created_unix == m.created_unix);
  CHECK(back.to_json() == m.to_json());
}

TEST_CASE("manifest: malformed text is rejected with a reason", "[cache]") {
  Manifest good;
  good.key = test_key().hex();
  good.cubin_hash = hash_hex("x");
  const nlohmann::json valid = nlohmann::json::parse(good.to_json());
  auto edited = [&](auto edit) {
    nlohmann::json copy = valid;
    edit(copy);
    return copy.dump();
  };

  struct Case {
    const char* what;
    std::string text;
    const char* reason;  // expected in the message
  };
  const std::vector<Case> cases = {
      {"garbage", "{ this is not json", "not valid JSON"},
      {"empty", "", "not valid JSON"},
      {"not an object", "[1, 2, 3]", "array"},
      {"missing field", edited([](auto& j) { j.erase("registers"); }), "\"registers\""},
      {"missing key", edited([](auto& j) { j.erase("key"); }), "\"key\""},
      {"string for int", edited([](auto& j) { j["registers"] = "168"; }), "\"registers\""},
      {"int for string", edited([](auto& j) { j["cubin_hash"] = 5; }), "\"cubin_hash\""},
      {"float for int", edited([](auto& j) { j["cubin_size"] = 1.5; }), "\"cubin_size\""},
      {"null", edited([](auto& j) { j["compile_ms"] = nullptr; }), "\"compile_ms\""},
      {"negative size", edited([](auto& j) { j["cubin_size"] = -1; }), "\"cubin_size\""},
      {"int overflow", edited([](auto& j) { j["registers"] = 1ll << 40; }), "\"registers\""},
      {"other schema", edited([](auto& j) { j["schema"] = kSchemaVersion + 1; }), "schema"},
  };
  for (const Case& c : cases) {
    INFO(c.what);
    Manifest out;
    out.kernel = "untouched";
    std::string error;
    bool ok = true;
    CHECK_NOTHROW(ok = Manifest::from_json(c.text, &out, &error));
    CHECK_FALSE(ok);
    CHECK_THAT(error, Catch::Contains(c.reason));
    CHECK(out.kernel == "untouched");
  }

  Manifest out;
  CHECK(Manifest::from_json(valid.dump(), &out, nullptr));
  CHECK_FALSE(Manifest::from_json("nope", &out, nullptr));  // a null error pointer is allowed
}

// ---- locks -----------------------------------------------------------------------------

TEST_CASE("lock: FileLock excludes other holders and fails softly", "[cache]") {
  TempDir tmp;
  const fs::path path = tmp.path() / "locks" / "nested" / "k.lock";
  auto try_lock_elsewhere = [&] {  // through another open file description, never blocking
    const int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
    REQUIRE(fd >= 0);
    const bool got = ::flock(fd, LOCK_EX | LOCK_NB) == 0;
    ::close(fd);
    return got;
  };
  {
    FileLock lock(path);
    REQUIRE(lock.held());
    CHECK(fs::is_regular_file(path));
    CHECK_FALSE(try_lock_elsewhere());
  }
  CHECK(try_lock_elsewhere());

  const fs::path file = tmp.path() / "plain-file";
  write_text(file, "");
  FileLock impossible(file / "k.lock");
  CHECK_FALSE(impossible.held());
}

// ---- the store -------------------------------------------------------------------------

TEST_CASE("store: publish then lookup returns the same entry", "[cache]") {
  TempDir tmp;
  const fs::path root = tmp.path() / "cache";
  Store store(root);
  const Key key = test_key();
  CHECK_FALSE(store.lookup(key));

  const Built built = make_built(binary_cubin());
  REQUIRE(store.publish(key, built));

  const std::string hex = key.hex();
  const fs::path dir = root / ("v" + std::to_string(kSchemaVersion)) / hex.substr(0, 2) / hex;
  CHECK(store.entry_dir(key) == dir);
  CHECK(list_dir(dir) == std::vector<fs::path>{"kernel.cubin", "manifest.json"});
  CHECK(read_text(dir / "kernel.cubin") == built.cubin);
  CHECK(list_dir(root / "tmp").empty());
  CHECK(fs::is_directory(root / "tmp"));
  CHECK_FALSE(fs::exists(root / "quarantine"));

  const auto entry = store.lookup(key);
  REQUIRE(entry);
  CHECK(entry->cubin == built.cubin);
  CHECK(entry->dir == dir);
  Manifest expected = built.manifest;
  expected.key = hex;
  expected.cubin_size = built.cubin.size();
  expected.cubin_hash = hash_hex(built.cubin);
  CHECK(entry->manifest.to_json() == expected.to_json());

  Manifest on_disk;
  std::string error;
  REQUIRE(Manifest::from_json(read_text(dir / "manifest.json"), &on_disk, &error));
  CHECK(on_disk.to_json() == expected.to_json());
  CHECK_FALSE(store.lookup(test_key("another kernel")));
}

TEST_CASE("store: publishing over an existing entry keeps the first", "[cache]") {
  TempDir tmp;
  Store store(tmp.path() / "cache");
  const Key key = test_key();
  REQUIRE(store.publish(key, make_built("first cubin")));
  CHECK(store.publish(key, make_built("second cubin")));

  const auto entry = store.lookup(key);
  REQUIRE(entry);
  CHECK(entry->cubin == "first cubin");
  CHECK(entry->manifest.cubin_hash == hash_hex("first cubin"));
  CHECK(list_dir(tmp.path() / "cache" / "tmp").empty());
}

TEST_CASE("store: a failed publish leaves nothing behind", "[cache]") {
  TempDir tmp;
  const fs::path root = tmp.path() / "cache";
  Store store(root);
  const Key key = test_key();
  // a regular file where the entry's parent directory should go makes the last step fail
  const fs::path blocker = store.entry_dir(key).parent_path();
  fs::create_directories(blocker.parent_path());
  write_text(blocker, "in the way");

  bool published = true;
  CHECK_NOTHROW(published = store.publish(key, make_built("cubin")));
  CHECK_FALSE(published);
  CHECK(fs::is_directory(root / "tmp"));
  CHECK(list_dir(root / "tmp").empty());
  CHECK(read_text(blocker) == "in the way");
  CHECK_FALSE(store.lookup(key));
}

TEST_CASE("store: a bad entry is quarantined, then rebuilt once", "[cache]") {
  TempDir tmp;
  const fs::path root = tmp.path() / "cache";
  Store store(root);
  const Key key = test_key();
  const Built built = make_built(binary_cubin());
  REQUIRE(store.publish(key, built));
  const fs::path dir = store.entry_dir(key);
  const fs::path cubin = dir / "kernel.cubin";
  const fs::path manifest = dir / "manifest.json";
  auto edit_manifest = [&](auto edit) {
    nlohmann::json j = nlohmann::json::parse(read_text(manifest));
    edit(j);
    write_text(manifest, j.dump());
  };

  std::string reason;  // expected in the warning
  SECTION("truncated cubin") {
    fs::resize_file(cubin, built.cubin.size() / 2);
    reason = "kernel.cubin has 502 bytes, manifest.json says 1005";
  }
  SECTION("cubin with one byte changed") {
    std::string bytes = read_text(cubin);
    bytes[100] ^= 1;
    write_text(cubin, bytes);
    reason = "hashes to";
  }
  SECTION("missing cubin") {
    fs::remove(cubin);
    reason = "cannot read kernel.cubin";
  }
  SECTION("garbage manifest") {
    write_text(manifest, "{ garbage \x01\x02");
    reason = "not valid JSON";
  }
  SECTION("empty manifest") {
    write_text(manifest, "");
    reason = "not valid JSON";
  }
  SECTION("missing manifest") {
    fs::remove(manifest);
    reason = "cannot read manifest.json";
  }
  SECTION("manifest for another key") {
    edit_manifest([](auto& j) { j["key"] = test_key("another kernel").hex(); });
    reason = "is for key " + test_key("another kernel").hex();
  }
  SECTION("manifest of another schema") {
    edit_manifest([](auto& j) { j["schema"] = kSchemaVersion + 1; });
    reason = "schema";
  }
  SECTION("manifest with a wrong hash") {
    edit_manifest([](auto& j) { j["cubin_hash"] = hash_hex("something else"); });
    reason = "hashes to";
  }

  CapturedLog log;
  CHECK_FALSE(store.lookup(key));
  CHECK_FALSE(fs::exists(dir));
  const auto moved = list_dir(root / "quarantine");
  REQUIRE(moved.size() == 1);
  CHECK(starts_with(moved[0].string(), key.hex() + "."));
  CHECK(log.count("moved it to") == 1);
  CHECK(log.count(reason) == 1);

  int builds = 0;
  Outcome outcome = Outcome::kDiskHit;
  const Entry rebuilt = store.get_or_build(
      key,
      [&] {
        ++builds;
        return built;
      },
      &outcome);
  CHECK(builds == 1);
  CHECK(outcome == Outcome::kCompiled);
  CHECK(rebuilt.cubin == built.cubin);
  CHECK(rebuilt.dir == dir);

  const auto again = store.lookup(key);
  REQUIRE(again);
  CHECK(again->cubin == built.cubin);
  store.get_or_build(
      key,
      [&] {
        ++builds;
        return built;
      },
      &outcome);
  CHECK(outcome == Outcome::kDiskHit);
  CHECK(builds == 1);
  CHECK(log.count("moved it to") == 1);
}

TEST_CASE("store: repeated quarantines of one key get distinct names", "[cache]") {
  TempDir tmp;
  const fs::path root = tmp.path() / "cache";
  Store store(root);
  const Key key = test_key();
  CapturedLog log;
  for (int i = 0; i < 3; ++i) {
    REQUIRE(store.publish(key, make_built("cubin " + std::to_string(i))));
    fs::resize_file(store.entry_dir(key) / "kernel.cubin", 1);
    CHECK_FALSE(store.lookup(key));
  }
  const auto moved = list_dir(root / "quarantine");
  REQUIRE(moved.size() == 3);
  for (const auto& name : moved) {
    CHECK(starts_with(name.string(), key.hex() + "."));
    CHECK(fs::is_regular_file(root / "quarantine" / name / "manifest.json"));
  }
  CHECK(log.count("moved it to") == 3);
}

TEST_CASE("store: a cache that cannot be written still returns the built kernel", "[cache]") {
  TempDir tmp;
  const fs::path root = unwritable_root(tmp.path());
  CapturedLog log;
  Store store(root);
  const Key key = test_key();
  const Built built = make_built(binary_cubin());

  int builds = 0;
  auto build = [&] {
    ++builds;
    return built;
  };
  Outcome outcome = Outcome::kDiskHit;
  Entry entry;
  REQUIRE_NOTHROW(entry = store.get_or_build(key, build, &outcome));
  CHECK(outcome == Outcome::kCompiledNotStored);
  CHECK(builds == 1);
  CHECK(entry.cubin == built.cubin);
  CHECK(entry.dir.empty());
  CHECK(entry.manifest.key == key.hex());
  CHECK(entry.manifest.cubin_size == built.cubin.size());
  CHECK(entry.manifest.cubin_hash == hash_hex(built.cubin));
  CHECK(entry.manifest.lowered_name == built.manifest.lowered_name);

  REQUIRE_NOTHROW(entry = store.get_or_build(test_key("second kernel"), build, &outcome));
  CHECK(outcome == Outcome::kCompiledNotStored);
  CHECK(builds == 2);
  CHECK(log.count("kernel cache at " + root.string() + " is not writable (") == 1);
  CHECK(log.count("kernels are kept in memory only") == 1);

  bool published = true;
  CHECK_NOTHROW(published = store.publish(key, built));
  CHECK_FALSE(published);
  CHECK_FALSE(store.lookup(key));
  if (fs::is_directory(root)) CHECK(list_dir(root).empty());
}

TEST_CASE("store: a copied cache root still hits", "[cache]") {
  TempDir tmp;
  const fs::path original = tmp.path() / "original";
  const fs::path copy = tmp.path() / "elsewhere" / "copy";
  const Key key = test_key();
  const Built built = make_built(binary_cubin());
  REQUIRE(Store(original).publish(key, built));

  fs::create_directories(copy.parent_path());
  fs::copy(original, copy, fs::copy_options::recursive);
  fs::remove_all(original);

  Store moved(copy);
  Outcome outcome = Outcome::kCompiled;
  const Entry entry = moved.get_or_build(
      key, []() -> Built { throw std::logic_error("must not build"); }, &outcome);
  CHECK(outcome == Outcome::kDiskHit);
  CHECK(entry.cubin == built.cubin);
  CHECK(entry.dir == moved.entry_dir(key));
  CHECK(starts_with(entry.dir.string(), copy.string()));
}

TEST_CASE("store: an exception from build propagates and releases the lock", "[cache]") {
  TempDir tmp;
  const fs::path root = tmp.path() / "cache";
  Store store(root);
  const Key key = test_key();
  Outcome outcome;
  CHECK_THROWS_WITH(store.get_or_build(
                        key, []() -> Built { throw std::runtime_error("nvrtc failed"); },
                        &outcome),
                    "nvrtc failed");
  CHECK_FALSE(store.lookup(key));

  const fs::path lock = root / "locks" / (key.hex() + ".lock");
  const int fd = ::open(lock.c_str(), O_RDWR | O_CLOEXEC);
  REQUIRE(fd >= 0);
  CHECK(::flock(fd, LOCK_EX | LOCK_NB) == 0);
  ::close(fd);

  const Entry entry = store.get_or_build(key, [] { return make_built("ok"); }, &outcome);
  CHECK(outcome == Outcome::kCompiled);
  CHECK(entry.cubin == "ok");
  CHECK(list_dir(root / "tmp").empty());
}

TEST_CASE("default_cache_dir: KILN_CACHE_DIR, then XDG_CACHE_HOME, then HOME", "[cache]") {
  {
    ScopedEnv kiln("KILN_CACHE_DIR", "/srv/kiln-cache");
    ScopedEnv xdg("XDG_CACHE_HOME", "/xdg");
    ScopedEnv home("HOME", "/home/user");
    CHECK(default_cache_dir() == fs::path("/srv/kiln-cache"));
  }
  {
    ScopedEnv kiln("KILN_CACHE_DIR", "");
    ScopedEnv xdg("XDG_CACHE_HOME", "/xdg");
    ScopedEnv home("HOME", "/home/user");
    CHECK(default_cache_dir() == fs::path("/xdg/kiln"));
  }
  {
    ScopedEnv kiln("KILN_CACHE_DIR", std::nullopt);
    ScopedEnv xdg("XDG_CACHE_HOME", std::nullopt);
    ScopedEnv home("HOME", "/home/user");
    CHECK(default_cache_dir() == fs::path("/home/user/.cache/kiln"));
  }
  {
    ScopedEnv kiln("KILN_CACHE_DIR", std::nullopt);
    ScopedEnv xdg("XDG_CACHE_HOME", "relative/ignored");
    ScopedEnv home("HOME", std::nullopt);
    CHECK(default_cache_dir() == fs::path("./.kiln-cache"));
  }
}

// ---- concurrency -----------------------------------------------------------------------

namespace {

// Runs in a forked child: no Catch2 assertions here, the exit code says how it went.
int build_in_child(const fs::path& root, const Key& key, const fs::path& counter,
                   const fs::path& out) noexcept {
  try {
    Store store(root);
    Outcome outcome;
    const Entry entry = store.get_or_build(
        key,
        [&] {
          std::this_thread::sleep_for(300ms);
          append_line(counter, std::to_string(::getpid()));
          return make_built("cubin built by pid " + std::to_string(::getpid()));
        },
        &outcome);
    write_text(out.string() + ".cubin", entry.cubin);
    write_text(out.string() + ".outcome", std::to_string(static_cast<int>(outcome)));
    return 0;
  } catch (...) {
    return 1;
  }
}

}  // namespace

TEST_CASE("concurrency: two processes build a kernel once", "[cache]") {
  TempDir tmp;
  const fs::path root = tmp.path() / "cache";
  const fs::path counter = tmp.path() / "builds.txt";
  const Key key = test_key("shared by two processes");

  std::vector<pid_t> children;
  for (int i = 0; i < 2; ++i) {
    const pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) ::_exit(build_in_child(root, key, counter, tmp.path() / std::to_string(i)));
    children.push_back(pid);
  }
  for (const pid_t pid : children) {
    int status = 0;
    REQUIRE(::waitpid(pid, &status, 0) == pid);
    CHECK(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);
  }

  CHECK(count_lines(counter) == 1);
  const std::string cubin0 = read_text(tmp.path() / "0.cubin");
  CHECK(starts_with(cubin0, "cubin built by pid "));
  CHECK(read_text(tmp.path() / "1.cubin") == cubin0);
  const std::multiset<std::string> outcomes = {read_text(tmp.path() / "0.outcome"),
                                               read_text(tmp.path() / "1.outcome")};
  CHECK(outcomes == std::multiset<std::string>{
                        std::to_string(static_cast<int>(Outcome::kDiskHit)),
                        std::to_string(static_cast<int>(Outcome::kCompiled))});
  const auto entry = Store(root).lookup(key);
  REQUIRE(entry);
  CHECK(entry->cubin == cubin0);
}

TEST_CASE("concurrency: many threads build a kernel once", "[cache]") {
  TempDir tmp;
  Store store(tmp.path() / "cache");
  const Key key = test_key("shared by threads");
  constexpr int kThreads = 8;

  std::atomic<int> builds{0};
  std::vector<Entry> entries(kThreads);
  std::vector<Outcome> outcomes(kThreads, Outcome::kCompiledNotStored);
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&, i] {
      entries[i] = store.get_or_build(
          key,
          [&] {
            ++builds;
            std::this_thread::sleep_for(100ms);
            return make_built("cubin built by thread " + std::to_string(i));
          },
          &outcomes[i]);
    });
  }
  for (auto& thread : threads) thread.join();

  CHECK(builds == 1);
  CHECK(std::count(outcomes.begin(), outcomes.end(), Outcome::kCompiled) == 1);
  CHECK(std::count(outcomes.begin(), outcomes.end(), Outcome::kDiskHit) == kThreads - 1);
  for (const Entry& entry : entries) {
    CHECK(starts_with(entry.cubin, "cubin built by thread "));
    CHECK(entry.cubin == entries[0].cubin);
  }
}
