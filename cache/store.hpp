// The on-disk kernel cache.
//
// Layout under the root:
//   v<schema>/<key[0:2]>/<key>/kernel.cubin     the cubin
//   v<schema>/<key[0:2]>/<key>/manifest.json    Manifest
//   locks/<key>.lock                            per-key lock taken by writers
//   quarantine/<key>.<unix-time>[.<n>]          entries that failed verification, moved aside
//   tmp/                                        entries being written
// Readers take no lock: an entry appears only by rename() of a complete, fsync'ed directory.
// Writers take the per-key lock, look again, build, write into tmp/, fsync, rename.
#pragma once
#include <filesystem>
#include <functional>
#include <optional>
#include <string>

#include "cache/key.hpp"
#include "cache/manifest.hpp"

namespace kiln::cache {

inline constexpr const char* kCubinFile = "kernel.cubin";
inline constexpr const char* kManifestFile = "manifest.json";

// <root>/v<schema>: the entries of this schema live under it.
std::filesystem::path schema_dir(const std::filesystem::path& root);

// Reads <dir>/manifest.json and checks that it parses and is for key_hex. False with
// *problem set (as Store::lookup would say it) otherwise. The cubin is not read.
bool read_manifest(const std::filesystem::path& dir, const std::string& key_hex,
                   Manifest* manifest, std::string* problem);

struct Entry {
  Manifest manifest;
  std::string cubin;
  std::filesystem::path dir;  // empty when the entry lives only in memory
};

struct Built {  // what a build function returns
  Manifest manifest;  // key, cubin_size and cubin_hash are filled in by the store
  std::string cubin;
};

enum class Outcome { kDiskHit, kCompiled, kCompiledNotStored };

class Store {
 public:
  explicit Store(std::filesystem::path root);

  const std::filesystem::path& root() const { return root_; }
  std::filesystem::path entry_dir(const Key& key) const;
  // The file a writer (or a remover) of key's entry locks.
  std::filesystem::path lock_path(const std::string& key_hex) const;

  // Verified read: manifest parses, its key matches, the cubin's size and hash match.
  // A present but bad entry is moved to quarantine/ with a warning, and nullopt returned.
  std::optional<Entry> lookup(const Key& key) const { return lookup(key, nullptr); }
  // The same; when a present entry is rejected, *problem says why (for kiln cache).
  std::optional<Entry> lookup(const Key& key, std::string* problem) const;

  // lookup(); on a miss, take the key's lock, look again, then build() and publish.
  // If the cache cannot be written (read-only, full), warns once per Store and returns the
  // built entry anyway (Outcome::kCompiledNotStored). Exceptions from build() propagate.
  Entry get_or_build(const Key& key, const std::function<Built()>& build, Outcome* outcome);

  // Writes an entry atomically (tmp dir, fsync files and dir, rename). Returns false on
  // any I/O failure, leaving no partial entry behind. An existing entry is kept.
  bool publish(const Key& key, const Built& built) const;

 private:
  std::filesystem::path root_;
  mutable bool warned_unwritable_ = false;
};

// KILN_CACHE_DIR, else $XDG_CACHE_HOME/kiln, else $HOME/.cache/kiln, else ./.kiln-cache
std::filesystem::path default_cache_dir();

}  // namespace kiln::cache
