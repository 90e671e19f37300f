#include "cache/store.hpp"

#include "cache/logger.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <mutex>
#include <system_error>
#include <unordered_map>

#include "cache/lock.hpp"

namespace kiln::cache {
namespace fs = std::filesystem;
namespace {

bool fail(std::string* why, std::string text) {
  *why = std::move(text);
  return false;
}

std::string describe(const char* what, const fs::path& path, int err) {
  return fmt::format("{} {}: {}", what, path.string(), std::system_category().message(err));
}

class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() { close(); }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }
  bool ok() const { return fd_ >= 0; }
  int close() {
    const int rc = fd_ >= 0 ? ::close(fd_) : 0;
    fd_ = -1;
    return rc;
  }

 private:
  int fd_;
};

int open_file(const fs::path& path, int flags, mode_t mode = 0) {
  int fd;
  do {
    fd = ::open(path.c_str(), flags | O_CLOEXEC, mode);
  } while (fd < 0 && errno == EINTR);
  return fd;
}

// Returns 0, or the errno of the failure.
int read_file(const fs::path& path, std::string* out) {
  Fd fd(open_file(path, O_RDONLY));
  if (!fd.ok()) return errno;
  struct stat st;
  if (::fstat(fd.get(), &st) != 0) return errno;
  if (!S_ISREG(st.st_mode)) return EISDIR;
  std::string data(static_cast<size_t>(st.st_size), '\0');
  size_t done = 0;
  while (done < data.size()) {
    const ssize_t n = ::read(fd.get(), data.data() + done, data.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return errno;
    if (n == 0) break;
    done += static_cast<size_t>(n);
  }
  data.resize(done);
  *out = std::move(data);
  return 0;
}

bool write_file_synced(const fs::path& path, std::string_view data, std::string* why) {
  Fd fd(open_file(path, O_WRONLY | O_CREAT | O_EXCL, 0644));
  if (!fd.ok()) return fail(why, describe("cannot create", path, errno));
  size_t done = 0;
  while (done < data.size()) {
    const ssize_t n = ::write(fd.get(), data.data() + done, data.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return fail(why, describe("cannot write", path, errno));
    done += static_cast<size_t>(n);
  }
  if (::fsync(fd.get()) != 0) return fail(why, describe("cannot fsync", path, errno));
  if (fd.close() != 0) return fail(why, describe("cannot close", path, errno));
  return true;
}

bool fsync_dir(const fs::path& path, std::string* why) {
  Fd fd(open_file(path, O_RDONLY | O_DIRECTORY));
  if (!fd.ok()) return fail(why, describe("cannot open", path, errno));
  // Some file systems cannot fsync a directory at all; that is not a failure to write.
  if (::fsync(fd.get()) != 0 && errno != EINVAL && errno != ENOTSUP) {
    return fail(why, describe("cannot fsync", path, errno));
  }
  return true;
}

// mkdir() rather than mkdtemp(): the entry keeps this directory, and it must get the
// umask's permissions (mkdtemp's 0700 would hide a shared cache from the other users).
bool make_temp_dir(const fs::path& parent, const std::string& prefix, fs::path* out,
                   std::string* why) {
  static std::atomic<uint64_t> counter{0};
  for (int attempt = 0; attempt < 100; ++attempt) {
    fs::path candidate = parent / fmt::format("{}.{}.{}", prefix, ::getpid(), counter++);
    if (::mkdir(candidate.c_str(), 0777) == 0) {
      *out = std::move(candidate);
      return true;
    }
    if (errno != EEXIST) return fail(why, describe("cannot create", candidate, errno));
  }
  *why = fmt::format("cannot create a unique directory in {}", parent.string());
  return false;
}

Manifest sealed_manifest(const Key& key, const Built& built) {
  Manifest m = built.manifest;
  m.schema = kSchemaVersion;
  m.key = key.hex();
  m.cubin_size = built.cubin.size();
  m.cubin_hash = hash_hex(built.cubin);
  if (m.created_unix == 0) m.created_unix = static_cast<int64_t>(std::time(nullptr));
  return m;
}

// Writes the entry into a fresh directory under tmp/ and renames it into place, so that
// readers see either nothing or a complete entry. False (with *why) if nothing was stored.
bool write_entry(const fs::path& root, const fs::path& final_dir, const Manifest& manifest,
                 std::string_view cubin, std::string* why) {
  std::error_code ec;
  const fs::path tmp_root = root / "tmp";
  fs::create_directories(tmp_root, ec);
  if (ec) return fail(why, describe("cannot create", tmp_root, ec.value()));
  fs::path tmp;
  if (!make_temp_dir(tmp_root, manifest.key, &tmp, why)) return false;

  const fs::path parent = final_dir.parent_path();
  const bool written = write_file_synced(tmp / kCubinFile, cubin, why) &&
                       write_file_synced(tmp / kManifestFile, manifest.to_json(), why) &&
                       fsync_dir(tmp, why);
  if (!written) {
    fs::remove_all(tmp, ec);
    return false;
  }
  fs::create_directories(parent, ec);
  if (ec) {
    const int err = ec.value();
    fs::remove_all(tmp, ec);
    return fail(why, describe("cannot create", parent, err));
  }
  if (std::rename(tmp.c_str(), final_dir.c_str()) == 0) {
    std::string ignored;  // the entry is in place; only its durability across a crash is at stake
    fsync_dir(parent, &ignored);
    return true;
  }
  const int err = errno;
  fs::remove_all(tmp, ec);
  if (err == EEXIST || err == ENOTEMPTY) return true;  // another writer won: keep theirs
  return fail(why, describe("cannot rename into", final_dir, err));
}

enum class Check { kGood, kBad, kUnreadable };

// A missing file is a broken entry; any other read error may be passing, so the entry is
// left alone.
Check read_failure(const char* file, int err, std::string* problem) {
  *problem = fmt::format("cannot read {}: {}", file, std::system_category().message(err));
  return err == ENOENT || err == ENOTDIR || err == EISDIR ? Check::kBad : Check::kUnreadable;
}

Check check_manifest(const fs::path& dir, const std::string& key_hex, Manifest* manifest,
                     std::string* problem) {
  std::string text;
  if (const int err = read_file(dir / kManifestFile, &text)) {
    return read_failure(kManifestFile, err, problem);
  }
  std::string error;
  if (!Manifest::from_json(text, manifest, &error)) {
    *problem = fmt::format("{}: {}", kManifestFile, error);
    return Check::kBad;
  }
  if (manifest->key != key_hex) {
    *problem = fmt::format("{} is for key {}", kManifestFile, manifest->key);
    return Check::kBad;
  }
  return Check::kGood;
}

Check read_entry(const fs::path& dir, const Key& key, Entry* entry, std::string* problem) {
  if (const Check c = check_manifest(dir, key.hex(), &entry->manifest, problem); c != Check::kGood)
    return c;
  const Manifest& m = entry->manifest;
  if (const int err = read_file(dir / kCubinFile, &entry->cubin)) {
    return read_failure(kCubinFile, err, problem);
  }
  if (entry->cubin.size() != m.cubin_size) {
    *problem = fmt::format("{} has {} bytes, {} says {}", kCubinFile, entry->cubin.size(),
                           kManifestFile, m.cubin_size);
    return Check::kBad;
  }
  if (const std::string hash = hash_hex(entry->cubin); hash != m.cubin_hash) {
    *problem = fmt::format("{} hashes to {}, {} says {}", kCubinFile, hash, kManifestFile,
                           m.cubin_hash);
    return Check::kBad;
  }
  entry->dir = dir;
  return Check::kGood;
}

// Moves a bad entry out of the way (kept for a post-mortem) so that it gets rebuilt.
void quarantine(const fs::path& root, const Key& key, const fs::path& dir,
                const std::string& problem) {
  const fs::path quarantine_dir = root / "quarantine";
  std::error_code ec;
  fs::create_directories(quarantine_dir, ec);
  int err = ec.value();
  const std::string base = fmt::format("{}.{}", key.hex(), std::time(nullptr));
  for (int n = 0; n < 1000 && err == 0; ++n) {
    const fs::path target = quarantine_dir / (n == 0 ? base : fmt::format("{}.{}", base, n));
    if (fs::exists(target, ec)) continue;  // rename() would replace an empty directory
    if (std::rename(dir.c_str(), target.c_str()) == 0) {
      kiln::log().warn("kernel cache entry {} is bad ({}); moved it to {} and rebuilding",
                     dir.string(), problem, target.string());
      return;
    }
    if (errno == ENOENT) return;  // another process moved it first
    if (errno != EEXIST && errno != ENOTEMPTY) err = errno;
  }
  kiln::log().warn("kernel cache entry {} is bad ({}) and cannot be moved aside ({}); ignoring it",
                 dir.string(), problem, std::system_category().message(err));
}

// Threads of one process must queue here too: on NFS, flock() is emulated with fcntl()
// locks, which belong to the whole process and so do not order its threads.
class ProcessKeyLock {
 public:
  explicit ProcessKeyLock(std::string name) : name_(std::move(name)) {
    {
      std::lock_guard<std::mutex> guard(table_mutex());
      slot_ = &table()[name_];
      ++slot_->users;
    }
    slot_->mutex.lock();
  }
  ~ProcessKeyLock() {
    slot_->mutex.unlock();
    std::lock_guard<std::mutex> guard(table_mutex());
    if (--slot_->users == 0) table().erase(name_);
  }
  ProcessKeyLock(const ProcessKeyLock&) = delete;
  ProcessKeyLock& operator=(const ProcessKeyLock&) = delete;

 private:
  struct Slot {
    std::mutex mutex;
    int users = 0;
  };
  static std::mutex& table_mutex() {
    static std::mutex mutex;
    return mutex;
  }
  static std::unordered_map<std::string, Slot>& table() {
    static std::unordered_map<std::string, Slot> slots;
    return slots;
  }

  std::string name_;
  Slot* slot_ = nullptr;
};

std::mutex& warn_mutex() {
  static std::mutex mutex;
  return mutex;
}

}  // namespace

fs::path schema_dir(const fs::path& root) { return root / fmt::format("v{}", kSchemaVersion); }

bool read_manifest(const fs::path& dir, const std::string& key_hex, Manifest* manifest,
                   std::string* problem) {
  return check_manifest(dir, key_hex, manifest, problem) == Check::kGood;
}

Store::Store(fs::path root) : root_(std::move(root)) {}

fs::path Store::entry_dir(const Key& key) const {
  const std::string hex = key.hex();
  return schema_dir(root_) / hex.substr(0, 2) / hex;
}

fs::path Store::lock_path(const std::string& key_hex) const {
  return root_ / "locks" / (key_hex + ".lock");
}

std::optional<Entry> Store::lookup(const Key& key, std::string* why) const {
  const fs::path dir = entry_dir(key);
  std::error_code ec;
  if (!fs::exists(dir, ec)) return std::nullopt;
  Entry entry;
  std::string problem;
  const Check check = read_entry(dir, key, &entry, &problem);
  if (why && check != Check::kGood) *why = problem;
  switch (check) {
    case Check::kGood:
      return entry;
    case Check::kBad:
      quarantine(root_, key, dir, problem);
      return std::nullopt;
    case Check::kUnreadable:
      kiln::log().warn("kernel cache entry {} is unreadable ({}); rebuilding it", dir.string(),
                     problem);
      return std::nullopt;
  }
  return std::nullopt;
}

bool Store::publish(const Key& key, const Built& built) const {
  std::string why;
  if (write_entry(root_, entry_dir(key), sealed_manifest(key, built), built.cubin, &why)) {
    return true;
  }
  kiln::log().debug("kernel cache: cannot store {}: {}", key.hex(), why);
  return false;
}

Entry Store::get_or_build(const Key& key, const std::function<Built()>& build,
                          Outcome* outcome) {
  auto done = [outcome](Outcome o) {
    if (outcome != nullptr) *outcome = o;
  };
  if (auto hit = lookup(key)) {
    done(Outcome::kDiskHit);
    return std::move(*hit);
  }

  const fs::path lock_file = lock_path(key.hex());
  ProcessKeyLock process_lock(lock_file.string());
  FileLock file_lock(lock_file);  // not held if the cache is read-only: build anyway
  if (auto hit = lookup(key)) {  // published while we waited for the lock
    done(Outcome::kDiskHit);
    return std::move(*hit);
  }

  Built built = build();
  Entry entry;
  entry.manifest = sealed_manifest(key, built);
  entry.cubin = std::move(built.cubin);
  std::string why;
  if (write_entry(root_, entry_dir(key), entry.manifest, entry.cubin, &why)) {
    entry.dir = entry_dir(key);
    done(Outcome::kCompiled);
    return entry;
  }

  bool first_warning;
  {
    std::lock_guard<std::mutex> guard(warn_mutex());
    first_warning = !warned_unwritable_;
    warned_unwritable_ = true;
  }
  if (first_warning) {
    kiln::log().warn("kernel cache at {} is not writable ({}); kernels are kept in memory only",
                   root_.string(), why);
  }
  done(Outcome::kCompiledNotStored);
  return entry;
}

fs::path default_cache_dir() {
  auto env = [](const char* name) -> std::string {
    const char* value = std::getenv(name);
    return value != nullptr ? value : "";
  };
  if (std::string dir = env("KILN_CACHE_DIR"); !dir.empty()) return dir;
  // The XDG spec says to ignore a relative XDG_CACHE_HOME.
  if (fs::path xdg = env("XDG_CACHE_HOME"); xdg.is_absolute()) return xdg / "kiln";
  if (std::string home = env("HOME"); !home.empty()) return fs::path(home) / ".cache" / "kiln";
  return fs::path(".") / ".kiln-cache";
}

}  // namespace kiln::cache
