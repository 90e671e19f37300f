#include "cache/inspect.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <poll.h>
#include <spawn.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <functional>
#include <limits>
#include <stdexcept>
#include <system_error>

#include "cache/key.hpp"
#include "cache/lock.hpp"
#include "cache/store.hpp"

extern char** environ;

namespace kiln::cache {
namespace fs = std::filesystem;
namespace {

constexpr int64_t kStaleTmpSeconds = 3600;

std::string error_text(int err) { return std::system_category().message(err); }

[[noreturn]] void fail(const std::string& message) { throw std::runtime_error(message); }

int64_t mtime_unix(const fs::path& path) {
  struct stat st;
  return ::lstat(path.c_str(), &st) == 0 ? static_cast<int64_t>(st.st_mtime) : 0;
}

// Apparent size of the regular files under path (or of path itself); symlinks not followed.
uint64_t tree_bytes(const fs::path& path) {
  std::error_code ec;
  if (fs::is_regular_file(fs::symlink_status(path, ec))) {
    const uintmax_t size = fs::file_size(path, ec);
    return ec ? 0 : size;
  }
  uint64_t total = 0;
  for (auto it = fs::recursive_directory_iterator(path, ec); !ec && it != fs::end(it);
       it.increment(ec)) {
    std::error_code size_ec;
    if (it->is_regular_file(size_ec) && !it->is_symlink(size_ec)) {
      const uintmax_t size = it->file_size(size_ec);
      if (!size_ec) total += size;
    }
  }
  return total;
}

struct EntryDir {
  std::string name;  // the entry's directory name
  fs::path path;
  bool valid_name = false;  // a key, under the prefix directory Store::entry_dir gives it
  Key key;
};

// d's entry as store.lookup() verifies it (quarantining a bad one); else nullopt, with what
// is wrong in *problem.
std::optional<Entry> verified_entry(const Store& store, const EntryDir& d, Problem* problem) {
  if (!d.valid_name) {
    *problem = {(d.path.parent_path().filename() / d.name).string(),
                "not a cache entry: the directory's name is not its key"};
    return std::nullopt;
  }
  std::string reason;
  std::optional<Entry> entry = store.lookup(d.key, &reason);
  // An empty reason: the entry changed between lookup()'s two reads.
  if (!entry) *problem = {d.name, reason.empty() ? "failed verification" : reason};
  return entry;
}

// The entry directories under <root>/v<schema>/<prefix>/. A missing root or schema
// directory is an empty cache; any other failure to read it throws.
std::vector<EntryDir> scan_entry_dirs(const fs::path& root) {
  const fs::path top = schema_dir(root);
  std::vector<EntryDir> out;
  std::error_code ec;
  const fs::file_status status = fs::status(top, ec);
  if (status.type() == fs::file_type::not_found) {
    // Still tell "no cache yet" from "cannot see the root".
    const fs::file_status root_status = fs::status(root, ec);
    if (root_status.type() == fs::file_type::not_found || fs::is_directory(root_status)) return out;
    fail(fmt::format("cache root {} is not a readable directory", root.string()));
  }
  if (ec) fail(fmt::format("cannot read cache root {}: {}", root.string(), ec.message()));
  if (!fs::is_directory(status)) fail(fmt::format("{} is not a directory", top.string()));
  fs::directory_iterator prefixes(top, ec);
  if (ec) fail(fmt::format("cannot read {}: {}", top.string(), ec.message()));
  for (; prefixes != fs::end(prefixes); prefixes.increment(ec)) {
    if (ec) fail(fmt::format("cannot read {}: {}", top.string(), ec.message()));
    if (!prefixes->is_directory(ec) || prefixes->is_symlink(ec)) continue;
    const std::string prefix = prefixes->path().filename().string();
    fs::directory_iterator entries(prefixes->path(), ec);
    if (ec) fail(fmt::format("cannot read {}: {}", prefixes->path().string(), ec.message()));
    for (; entries != fs::end(entries); entries.increment(ec)) {
      if (ec) fail(fmt::format("cannot read {}: {}", prefixes->path().string(), ec.message()));
      if (!entries->is_directory(ec) || entries->is_symlink(ec)) continue;
      EntryDir e;
      e.path = entries->path();
      e.name = e.path.filename().string();
      e.valid_name = Key::parse_hex(e.name, &e.key) && e.name.compare(0, 2, prefix) == 0;
      out.push_back(std::move(e));
    }
  }
  std::sort(out.begin(), out.end(),
            [](const EntryDir& a, const EntryDir& b) { return a.path < b.path; });
  return out;
}

// mkdir() of "<parent>/<prefix>.<pid>.<n>" for the first n that is free.
fs::path make_unique_dir(const fs::path& parent, const std::string& prefix) {
  static std::atomic<uint64_t> counter{0};
  for (int attempt = 0; attempt < 1000; ++attempt) {
    fs::path candidate = parent / fmt::format("{}.{}.{}", prefix, ::getpid(), counter++);
    if (::mkdir(candidate.c_str(), 0700) == 0) return candidate;
    if (errno != EEXIST)
      fail(fmt::format("cannot create {}: {}", candidate.string(), error_text(errno)));
  }
  fail(fmt::format("cannot create a unique directory in {}", parent.string()));
}

// Deletes a scratch directory on scope exit, even one an archive made read-only.
class ScratchDir {
 public:
  explicit ScratchDir(fs::path path) : path_(std::move(path)) {}
  ~ScratchDir() {
    std::error_code ec;
    for (auto it = fs::recursive_directory_iterator(path_, ec); !ec && it != fs::end(it);
         it.increment(ec)) {
      std::error_code perm_ec;
      if (it->is_directory(perm_ec) && !it->is_symlink(perm_ec))
        fs::permissions(it->path(), fs::perms::owner_all, fs::perm_options::add, perm_ec);
    }
    fs::remove_all(path_, ec);
  }
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

struct ProcessResult {
  int status = -1;  // exit code, or 128 + signal
  std::string out, err;
};

// Runs a program found in PATH with these arguments: no shell, so no quoting to get wrong.
// TAR_OPTIONS is dropped from its environment, since it could turn off tar's own checks.
ProcessResult run_process(const std::vector<std::string>& args) {
  std::vector<char*> argv;
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  std::vector<char*> envp;
  for (char** e = environ; *e != nullptr; ++e)
    if (std::strncmp(*e, "TAR_OPTIONS=", 12) != 0) envp.push_back(*e);
  envp.push_back(nullptr);

  int out_pipe[2], err_pipe[2];
  if (::pipe2(out_pipe, O_CLOEXEC) != 0) fail(fmt::format("pipe: {}", error_text(errno)));
  if (::pipe2(err_pipe, O_CLOEXEC) != 0) {
    const int err = errno;
    ::close(out_pipe[0]), ::close(out_pipe[1]);
    fail(fmt::format("pipe: {}", error_text(err)));
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&actions, out_pipe[1], 1);
  posix_spawn_file_actions_adddup2(&actions, err_pipe[1], 2);
  pid_t pid = -1;
  const int spawned = ::posix_spawnp(&pid, argv[0], &actions, nullptr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  ::close(out_pipe[1]);
  ::close(err_pipe[1]);
  if (spawned != 0) {
    ::close(out_pipe[0]), ::close(err_pipe[0]);
    fail(fmt::format("cannot run {}: {}", args[0], error_text(spawned)));
  }

  ProcessResult result;
  pollfd fds[2] = {{out_pipe[0], POLLIN, 0}, {err_pipe[0], POLLIN, 0}};
  std::string* sinks[2] = {&result.out, &result.err};
  int open_fds = 2;
  while (open_fds > 0) {
    if (::poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || fds[i].revents == 0) continue;
      char buffer[1 << 14];
      const ssize_t n = ::read(fds[i].fd, buffer, sizeof buffer);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        ::close(fds[i].fd);
        fds[i].fd = -1;
        --open_fds;
      } else {
        sinks[i]->append(buffer, static_cast<size_t>(n));
      }
    }
  }
  for (auto& fd : fds)
    if (fd.fd >= 0) ::close(fd.fd);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  result.status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return result;
}

std::string trimmed(std::string text) {
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  return text;
}

std::vector<std::string> lines(const std::string& text) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    if (end > start) out.push_back(text.substr(start, end - start));
    start = end + 1;
  }
  return out;
}

bool escapes(const std::string& name) {
  if (!name.empty() && name[0] == '/') return true;
  size_t start = 0;
  while (start <= name.size()) {
    size_t end = name.find('/', start);
    if (end == std::string::npos) end = name.size();
    if (name.compare(start, end - start, "..") == 0 && end - start == 2) return true;
    start = end + 1;
  }
  return false;
}

// Why the archive must not be extracted at all, or empty. `tar -t` prints member names
// as stored (leading '/' and '..' included, which extraction would only partly defuse).
std::string refusal(const fs::path& archive) {
  const ProcessResult names = run_process({"tar", "--force-local", "-t", "-f", archive.string()});
  if (names.status != 0)
    fail(fmt::format("cannot list {}: {}", archive.string(), trimmed(names.err)));
  for (const auto& name : lines(names.out))
    if (escapes(name)) return fmt::format("member '{}' is an absolute path or contains '..'", name);
  // Links could point anywhere; an entry is only ever files in directories.
  const ProcessResult verbose =
      run_process({"tar", "--force-local", "-t", "-v", "-f", archive.string()});
  if (verbose.status != 0)
    fail(fmt::format("cannot list {}: {}", archive.string(), trimmed(verbose.err)));
  for (const auto& line : lines(verbose.out))
    if (line[0] != '-' && line[0] != 'd')
      return fmt::format("member is not a plain file or directory: {}", line);
  return {};
}

// Renames the entry into tmp/ under its key's lock, then deletes it. False if it was
// already gone; throws (with the reason) if it could not be taken out of the cache.
bool remove_entry(const fs::path& root, const EntryInfo& entry, std::vector<std::string>* errors) {
  FileLock lock(Store(root).lock_path(entry.key));
  std::error_code ec;
  fs::create_directories(root / "tmp", ec);
  if (ec) fail(fmt::format("cannot create {}: {}", (root / "tmp").string(), ec.message()));
  const fs::path target = make_unique_dir(root / "tmp", "prune." + entry.key);
  // rename() onto an empty directory replaces it; the placeholder only reserved the name.
  if (std::rename(entry.dir.c_str(), target.c_str()) != 0) {
    const int err = errno;
    ::rmdir(target.c_str());
    if (err == ENOENT) return false;
    fail(fmt::format("cannot move {} out of the cache: {}", entry.dir.string(), error_text(err)));
  }
  fs::remove_all(target, ec);
  if (ec)
    errors->push_back(fmt::format("removed {} from the cache, but cannot delete {}: {}", entry.key,
                                  target.string(), ec.message()));
  return true;
}

// Deletes the children of dir that doomed(path) picks and counts them; a dry run only counts.
void clear_children(const fs::path& dir, bool dry_run,
                    const std::function<bool(const fs::path&)>& doomed, size_t* count,
                    uint64_t* bytes, std::vector<std::string>* errors) {
  std::error_code ec;
  fs::directory_iterator it(dir, ec);
  if (ec) {
    if (ec != std::errc::no_such_file_or_directory)
      errors->push_back(fmt::format("cannot read {}: {}", dir.string(), ec.message()));
    return;
  }
  for (; it != fs::end(it); it.increment(ec)) {
    if (ec) {
      errors->push_back(fmt::format("cannot read {}: {}", dir.string(), ec.message()));
      return;
    }
    const fs::path path = it->path();
    if (!doomed(path)) continue;
    const uint64_t size = tree_bytes(path);
    std::error_code remove_ec;
    if (!dry_run) fs::remove_all(path, remove_ec);
    if (remove_ec) {
      errors->push_back(fmt::format("cannot delete {}: {}", path.string(), remove_ec.message()));
      continue;
    }
    ++*count;
    *bytes += size;
  }
}

}  // namespace

std::vector<EntryInfo> list_entries(const fs::path& root) {
  std::vector<EntryInfo> out;
  for (const EntryDir& d : scan_entry_dirs(root)) {
    EntryInfo e;
    e.key = d.name;
    e.dir = d.path;
    e.bytes = tree_bytes(d.path);
    e.cubin_bytes = tree_bytes(d.path / kCubinFile);
    if (!d.valid_name)
      e.problem = "the directory's name is not its key";
    else
      e.readable = read_manifest(d.path, d.name, &e.manifest, &e.problem);
    e.created_unix = e.readable ? e.manifest.created_unix : mtime_unix(d.path);
    out.push_back(std::move(e));
  }
  std::sort(out.begin(), out.end(), [](const EntryInfo& a, const EntryInfo& b) {
    if (a.readable != b.readable) return a.readable;
    if (a.readable && a.manifest.kernel != b.manifest.kernel)
      return a.manifest.kernel < b.manifest.kernel;
    return a.key < b.key;
  });
  return out;
}

VerifyReport verify_entries(const fs::path& root) {
  VerifyReport report;
  const Store store(root);
  for (const EntryDir& d : scan_entry_dirs(root)) {
    Problem problem;
    if (verified_entry(store, d, &problem)) {
      ++report.ok;
      continue;
    }
    std::error_code ec;
    (fs::exists(d.path, ec) ? report.left : report.quarantined).push_back(problem);
  }
  return report;
}

PruneReport prune(const fs::path& root, const PruneOptions& options) {
  PruneReport report;
  const int64_t now = static_cast<int64_t>(std::time(nullptr));
  std::vector<EntryInfo> entries = list_entries(root);
  std::sort(entries.begin(), entries.end(), [](const EntryInfo& a, const EntryInfo& b) {
    return a.created_unix != b.created_unix ? a.created_unix < b.created_unix : a.key < b.key;
  });

  std::vector<std::pair<const EntryInfo*, const char*>> doomed;
  std::vector<const EntryInfo*> kept;
  for (const EntryInfo& e : entries) {
    if (options.older_than_s && now - e.created_unix > *options.older_than_s)
      doomed.emplace_back(&e, "age");
    else
      kept.push_back(&e);
  }
  uint64_t kept_bytes = 0;
  for (const EntryInfo* e : kept) kept_bytes += e->bytes;
  if (options.max_bytes) {
    size_t first_kept = 0;  // kept is oldest first
    while (first_kept < kept.size() && kept_bytes > *options.max_bytes) {
      kept_bytes -= kept[first_kept]->bytes;
      doomed.emplace_back(kept[first_kept++], "size");
    }
    kept.erase(kept.begin(), kept.begin() + static_cast<std::ptrdiff_t>(first_kept));
  }

  for (const auto& [entry, reason] : doomed) {
    if (!options.dry_run) {
      try {
        if (!remove_entry(root, *entry, &report.errors)) continue;
      } catch (const std::exception& e) {
        report.errors.push_back(e.what());
        kept.push_back(entry);
        continue;
      }
    }
    report.removed.push_back({entry->key, entry->manifest.kernel, entry->bytes, reason});
    report.removed_bytes += entry->bytes;
  }
  report.kept = kept.size();
  for (const EntryInfo* e : kept) report.kept_bytes += e->bytes;

  clear_children(
      root / "quarantine", options.dry_run, [](const fs::path&) { return true; },
      &report.quarantine_removed, &report.quarantine_bytes, &report.errors);
  // Writers' and importers' directories are young; only a crash leaves an old one behind.
  clear_children(
      root / "tmp", options.dry_run,
      [now](const fs::path& p) { return now - mtime_unix(p) > kStaleTmpSeconds; },
      &report.tmp_removed, &report.tmp_bytes, &report.errors);
  return report;
}

ExportReport export_bundle(const fs::path& root, const fs::path& archive) {
  ExportReport report;
  const fs::path target = fs::absolute(archive);
  std::error_code ec;
  if (!fs::is_directory(target.parent_path(), ec))
    fail(fmt::format("cannot write {}: {} is not a directory", archive.string(),
                     target.parent_path().string()));

  std::string pattern = (fs::temp_directory_path() / "kiln-export-XXXXXX").string();
  if (::mkdtemp(pattern.data()) == nullptr)
    fail(fmt::format("cannot create a directory in {}: {}", fs::temp_directory_path().string(),
                     error_text(errno)));
  const ScratchDir staging(pattern);

  // Entries are copied out of what lookup() verified, so a concurrent prune or a corruption
  // after the check cannot put a bad or half entry into the archive.
  const Store store(root);
  const Store staged(staging.path());
  fs::create_directories(schema_dir(staging.path()));
  for (const EntryDir& d : scan_entry_dirs(root)) {
    Problem problem;
    std::optional<Entry> entry = verified_entry(store, d, &problem);
    if (!entry) {
      report.skipped.push_back(problem);
      continue;
    }
    if (!staged.publish(d.key, Built{entry->manifest, std::move(entry->cubin)}))
      fail(fmt::format("cannot write {} into {}", d.name, staging.path().string()));
    report.keys.push_back(d.name);
  }

  const std::string name = target.filename().string();
  auto ends_with = [&name](std::string_view suffix) {
    return name.size() >= suffix.size() &&
           name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0;
  };
  const fs::path partial = target.parent_path() / fmt::format(".{}.partial.{}", name, ::getpid());
  std::vector<std::string> args = {"tar", "--force-local", "-c"};
  if (ends_with(".gz") || ends_with(".tgz")) args.push_back("-z");
  args.insert(args.end(), {"-f", partial.string(), "-C", staging.path().string(),
                           schema_dir(staging.path()).filename().string()});
  const ProcessResult tar = run_process(args);
  if (tar.status != 0) {
    fs::remove(partial, ec);
    fail(fmt::format("tar cannot write {}: {}", archive.string(), trimmed(tar.err)));
  }
  if (std::rename(partial.c_str(), target.c_str()) != 0) {
    const int err = errno;
    fs::remove(partial, ec);
    fail(fmt::format("cannot write {}: {}", archive.string(), error_text(err)));
  }
  return report;
}

ImportReport import_bundle(const fs::path& root, const fs::path& archive) {
  ImportReport report;
  const fs::path source = fs::absolute(archive);
  report.refused = refusal(source);
  if (!report.refused.empty()) return report;

  std::error_code ec;
  fs::create_directories(root / "tmp", ec);
  if (ec) fail(fmt::format("cannot create {}: {}", (root / "tmp").string(), ec.message()));
  const ScratchDir staging(make_unique_dir(root / "tmp", "import"));
  const ProcessResult tar =
      run_process({"tar", "--force-local", "-x", "-f", source.string(), "-C",
                   staging.path().string(), "--no-same-owner", "--no-same-permissions"});
  if (tar.status != 0)
    fail(fmt::format("cannot extract {}: {}", archive.string(), trimmed(tar.err)));

  const fs::path schema = schema_dir(staging.path()).filename();
  for (fs::directory_iterator it(staging.path(), ec); !ec && it != fs::end(it); it.increment(ec))
    if (it->path().filename() != schema)
      report.rejected.push_back(
          {it->path().filename().string(), fmt::format("not part of a {} cache", schema.string())});

  const Store extracted(staging.path());
  const Store store(root);
  for (const EntryDir& d : scan_entry_dirs(staging.path())) {
    Problem problem;
    std::optional<Entry> entry = verified_entry(extracted, d, &problem);
    if (!entry) {
      report.rejected.push_back(problem);
      continue;
    }
    if (store.lookup(d.key)) {  // a bad local copy is quarantined by this and replaced below
      report.present.push_back(d.name);
      continue;
    }
    if (store.publish(d.key, Built{entry->manifest, std::move(entry->cubin)}))
      report.imported.push_back(d.name);
    else
      report.rejected.push_back({d.name, fmt::format("cannot write it into {}", root.string())});
  }
  return report;
}

std::optional<int64_t> parse_duration(std::string_view text) {
  size_t digits = 0;
  int64_t value = 0;
  for (; digits < text.size() && text[digits] >= '0' && text[digits] <= '9'; ++digits) {
    if (value > std::numeric_limits<int64_t>::max() / 10 - 9) return std::nullopt;
    value = value * 10 + (text[digits] - '0');
  }
  if (digits == 0 || digits + 1 != text.size()) return std::nullopt;
  int64_t unit;
  switch (text.back()) {
    case 's':
      unit = 1;
      break;
    case 'm':
      unit = 60;
      break;
    case 'h':
      unit = 3600;
      break;
    case 'd':
      unit = 86400;
      break;
    case 'w':
      unit = 7 * 86400;
      break;
    default:
      return std::nullopt;
  }
  if (value > std::numeric_limits<int64_t>::max() / unit) return std::nullopt;
  return value * unit;
}

std::optional<uint64_t> parse_size(std::string_view text) {
  size_t digits = 0;
  uint64_t value = 0;
  for (; digits < text.size() && text[digits] >= '0' && text[digits] <= '9'; ++digits) {
    if (value > std::numeric_limits<uint64_t>::max() / 10 - 9) return std::nullopt;
    value = value * 10 + static_cast<uint64_t>(text[digits] - '0');
  }
  if (digits == 0) return std::nullopt;
  std::string unit;
  for (char c : text.substr(digits)) unit.push_back(static_cast<char>(std::toupper(c)));
  int shift = 0;
  if (!unit.empty() && std::string_view("KMGT").find(unit[0]) != std::string_view::npos) {
    shift = 10 * (1 + static_cast<int>(std::string_view("KMGT").find(unit[0])));
    unit.erase(0, 1);
    if (unit == "IB") unit = "B";
  }
  if (!unit.empty() && unit != "B") return std::nullopt;
  if (shift > 0 && value > (std::numeric_limits<uint64_t>::max() >> shift)) return std::nullopt;
  return value << shift;
}

std::string format_age(int64_t seconds) {
  seconds = std::max<int64_t>(seconds, 0);  // a clock set back makes entries from the future
  if (seconds < 60) return fmt::format("{}s", seconds);
  if (seconds < 3600) return fmt::format("{}m", seconds / 60);
  if (seconds < 86400) return fmt::format("{}h", seconds / 3600);
  return fmt::format("{}d", seconds / 86400);
}

std::string format_bytes(uint64_t bytes) {
  if (bytes < 1024) return fmt::format("{}B", bytes);
  const char* units = "KMGT";
  double value = static_cast<double>(bytes) / 1024;
  int unit = 0;
  while (value >= 1024 && unit < 3) value /= 1024, ++unit;
  return fmt::format("{:.1f}{}", value, units[unit]);
}

}  // namespace kiln::cache
