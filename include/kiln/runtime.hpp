// kiln::Runtime: the loaded kernels, the disk cache, and the compiler behind gemm calls.
#pragma once
#include <cstdint>
#include <memory>
#include <string>

#include "kiln/version.hpp"

namespace kiln {

struct RuntimeOptions {
  std::string cache_dir;    // empty: KILN_CACHE_DIR, $XDG_CACHE_HOME/kiln, ~/.cache/kiln
  bool disk_cache = true;   // false: compile into memory only
  std::string tuning_db;    // empty: KILN_TUNING_DB, else <cache_dir>/tuning.json
  // Programmatic dependent launch (PDL): a GEMM's launch and prologue may overlap the
  // previous kernel in the stream; it waits for that kernel's results before touching
  // memory, so stream order is kept. Where kernels run back to back (CUDA graphs, serving
  // loops) small GEMMs gained 1.1-1.6 us each on an H200; timed one at a time nothing
  // changed (docs/PERFORMANCE.md). On by default; KILN_PDL=0 (or 1) overrides this for
  // every runtime.
  bool programmatic_launch = true;
};

struct RuntimeStats {
  uint64_t kernels_compiled = 0;  // NVRTC compilations
  uint64_t disk_hits = 0;         // kernels read from the disk cache instead
  uint64_t kernels_loaded = 0;    // cubins loaded onto a device
  uint64_t launches = 0;
};

class KILN_API Runtime {
 public:
  Runtime();
  explicit Runtime(RuntimeOptions options);
  ~Runtime();
  Runtime(const Runtime&) = delete;
  Runtime& operator=(const Runtime&) = delete;

  // The process-wide runtime used by the calls that take none.
  static Runtime& instance();

  RuntimeStats stats() const;
  std::string cache_dir() const;

  class Impl;
  Impl& impl() { return *impl_; }

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace kiln
