// Maintenance of a cache root for `kiln cache`: listing, verifying, pruning, and moving
// entries between machines as tarballs. No CUDA dependency.
//
// Everything here touches only v<schema>/, quarantine/ and tmp/ under the root, and changes
// an entry only by rename() (out of v<schema>/ before deleting, in through Store::publish),
// so concurrent readers and writers see every entry whole or not at all.
#pragma once
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "cache/manifest.hpp"

namespace kiln::cache {

struct EntryInfo {
  std::string key;  // the directory's name (not necessarily a valid key)
  std::filesystem::path dir;
  bool readable = false;     // manifest.json parsed and is for this key
  std::string problem;       // why not, when !readable
  Manifest manifest;         // when readable
  uint64_t cubin_bytes = 0;  // size of kernel.cubin on disk
  uint64_t bytes = 0;        // every file of the entry (what --max-size counts)
  int64_t created_unix = 0;  // the manifest's, else the directory's mtime
};

// The entries under <root>/v<schema>/: readable ones by kernel name then key, then the
// unreadable ones by key. Nothing is hashed. A missing root is an empty cache; one that
// cannot be read throws std::runtime_error.
std::vector<EntryInfo> list_entries(const std::filesystem::path& root);

struct Problem {
  std::string key;  // or a path, for something that is not an entry
  std::string reason;
};

struct VerifyReport {
  size_t ok = 0;
  std::vector<Problem> quarantined;  // failed verification, moved to quarantine/
  std::vector<Problem> left;         // bad or unreadable but still in place
};

// Store::lookup of every entry, which rehashes it and quarantines it if bad.
VerifyReport verify_entries(const std::filesystem::path& root);

struct PruneOptions {
  std::optional<int64_t> older_than_s;  // remove entries created longer ago than this
  std::optional<uint64_t> max_bytes;    // then the oldest until the rest fit
  bool dry_run = false;
};

struct Removed {
  std::string key;
  std::string kernel;  // empty if the manifest was unreadable
  uint64_t bytes = 0;
  std::string reason;  // "age" or "size"
};

struct PruneReport {
  std::vector<Removed> removed;
  uint64_t removed_bytes = 0;
  size_t kept = 0;
  uint64_t kept_bytes = 0;
  size_t quarantine_removed = 0;  // everything in quarantine/
  uint64_t quarantine_bytes = 0;
  size_t tmp_removed = 0;  // tmp/ leftovers older than an hour
  uint64_t tmp_bytes = 0;
  std::vector<std::string> errors;
};

// Each removed entry is renamed into tmp/ under its key's lock, then deleted.
PruneReport prune(const std::filesystem::path& root, const PruneOptions& options);

struct ExportReport {
  std::vector<std::string> keys;  // written to the archive
  std::vector<Problem> skipped;   // failed verification
};

// Writes the verified entries to archive (.tar, or gzip'ed if it ends in .gz or .tgz) with
// the system tar; the archive appears only when complete. Throws std::runtime_error.
ExportReport export_bundle(const std::filesystem::path& root, const std::filesystem::path& archive);

struct ImportReport {
  std::string refused;  // non-empty: the archive was refused whole and nothing extracted
  std::vector<std::string> imported;
  std::vector<std::string> present;  // a good entry for the key was already there: kept
  std::vector<Problem> rejected;
};

// Extracts archive into tmp/ under root, verifies each entry there and publishes the good
// ones. Archives with absolute or '..' member names, or members other than files and
// directories, are refused. Throws std::runtime_error if the archive cannot be read.
ImportReport import_bundle(const std::filesystem::path& root, const std::filesystem::path& archive);

// "30m" -> 1800; units s, m, h, d, w; nullopt for anything else.
std::optional<int64_t> parse_duration(std::string_view text);
// "500M" -> 500 << 20; a number of bytes with an optional K, M, G or T (powers of 1024),
// optionally followed by B or iB; nullopt for anything else.
std::optional<uint64_t> parse_size(std::string_view text);
std::string format_age(int64_t seconds);   // "45s", "5m", "3h", "2d"
std::string format_bytes(uint64_t bytes);  // "812B", "16.3K", "1.2G"

}  // namespace kiln::cache
