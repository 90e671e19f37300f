// The tuning database written by `kiln tune` and read by the runtime before the heuristic.
// A JSON file (KILN_TUNING_DB, default <cache dir>/tuning.json) of entries keyed by
// arch, device name, SM count, kind, N, K and an M range [m_min, m_max].
#pragma once
#include <filesystem>
#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

#include "gemm/config.hpp"

namespace kiln::gemm {

struct TunedEntry {
  std::string arch = "sm_90a";
  std::string device;  // e.g. "NVIDIA H200"
  int sms = 0;
  Kind kind = Kind::kDense;
  int n = 0, k = 0;
  int m_min = 1, m_max = 1;  // the entry applies to m_min <= M <= m_max
  int m_tuned = 1;           // the M that was timed
  Config config;
  double us = 0;            // time of the chosen config at m_tuned
  double heuristic_us = 0;  // time of the heuristic's config at m_tuned
  // The kernel-source digest of the kiln that timed it (jit::kernel_headers().digest; empty in
  // files written before it was recorded). Entries timed with other kernels still apply, but
  // kiln tune times them again: a kernel change can change which config is fastest.
  std::string kernels;
};

class TuningDb {
 public:
  // A missing file is an empty database; an unreadable or malformed one is too, with a
  // warning (a bad database must never stop a GEMM).
  static TuningDb load(const std::filesystem::path& path);
  // Atomic (temp file + rename). Returns false and says why in *error on failure.
  bool save(const std::filesystem::path& path, std::string* error) const;

  // The tuned config for this problem, or null. device_hash is device_hash(device name);
  // this is on the per-call path, so it is one hash lookup and a scan of a few M ranges.
  const Config* find(uint64_t device_hash, int sms, Kind kind, int n, int k, int m) const;
  bool empty() const { return entries_.empty(); }
  const TunedEntry* find_tuned(const std::string& device, int sms, Kind kind, int n, int k,
                               int m_tuned) const;
  // Adds or replaces the entry for (arch, device, sms, kind, n, k, m_tuned), then recomputes
  // the M ranges of that (device, kind, n, k): entry i covers (m_tuned[i-1], m_tuned[i]].
  void upsert(const TunedEntry& entry);
  const std::vector<TunedEntry>& entries() const { return entries_; }
  // The entries of any device with `sms` SMs for (kind, n, k) whose M range starts at or below
  // max_m: the tuned configs that calls with M <= max_m may use (warm-up compiles them).
  std::vector<const TunedEntry*> reachable(int sms, Kind kind, int n, int k, int max_m) const;

 private:
  void rebuild_index();
  std::vector<TunedEntry> entries_;
  std::unordered_map<uint64_t, std::vector<size_t>> index_;  // problem hash -> entries
};

uint64_t device_hash(const std::string& device_name);

// KILN_TUNING_DB, else <cache_dir>/tuning.json.
std::filesystem::path default_tuning_db_path(const std::filesystem::path& cache_dir);

}  // namespace kiln::gemm
