// Runtime::Impl: compiled kernels on disk and in memory, and kernels loaded per device.
#pragma once
#include <cuda.h>

#include <atomic>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "cache/store.hpp"
#include "gemm/config.hpp"
#include "gemm/tuning_db.hpp"
#include "kernel_table.hpp"
#include "kiln/runtime.hpp"

namespace kiln {

struct CompiledKernel {
  gemm::KernelSpec spec;
  cache::Key key;
  cache::Entry entry;        // cubin + manifest (+ dir when on disk)
  cache::Outcome outcome;
};

struct LoadedKernel {
  gemm::KernelSpec spec;
  CUlibrary library = nullptr;
  CUkernel kernel = nullptr;
  int threads = 0;
  int smem_bytes = 0;
  std::atomic<uint64_t> configured_devices{0};  // bit d: device d is configured
  int max_clusters[64] = {};  // per device: clusters of this kernel that fit at once
};

// cuLaunchKernelEx's configuration for `clusters` clusters of a loaded kernel (block size,
// shared memory and cluster size from its spec), with programmatic stream serialization if
// asked. Not copyable: config points at attrs. attrs[0] holds the cluster size, which a
// launch passes only for clusters (the occupancy query always: numAttrs = 1).
struct KernelLaunch {
  CUlaunchAttribute attrs[2]{};
  CUlaunchConfig config{};
  KernelLaunch(const LoadedKernel& kernel, int clusters, CUstream stream,
               bool programmatic = false) {
    const unsigned size = static_cast<unsigned>(kernel.spec.config.cluster_size());
    attrs[0].id = CU_LAUNCH_ATTRIBUTE_CLUSTER_DIMENSION;
    attrs[0].value.clusterDim.x = size;
    attrs[0].value.clusterDim.y = attrs[0].value.clusterDim.z = 1;
    config.attrs = attrs;
    config.numAttrs = size > 1 ? 1 : 0;
    if (programmatic) {
      // Without a cluster the PDL attribute takes slot 0 (not for the occupancy query).
      CUlaunchAttribute& pdl = attrs[config.numAttrs++];
      pdl.id = CU_LAUNCH_ATTRIBUTE_PROGRAMMATIC_STREAM_SERIALIZATION;
      pdl.value.programmaticStreamSerializationAllowed = 1;
    }
    config.gridDimX = static_cast<unsigned>(clusters) * size;
    config.gridDimY = config.gridDimZ = 1;
    config.blockDimX = static_cast<unsigned>(kernel.threads);
    config.blockDimY = config.blockDimZ = 1;
    config.sharedMemBytes = static_cast<unsigned>(kernel.smem_bytes);
    config.hStream = stream;
  }
  KernelLaunch(const KernelLaunch&) = delete;
  KernelLaunch& operator=(const KernelLaunch&) = delete;
};

// The context's device and its SM count, cached per thread for the hot path.
struct DeviceInfo {
  CUdevice device = 0;
  int num_sms = 0;
  uint64_t name_hash = 0;  // gemm::device_hash of the device name (tuning database key)
  std::string name;
};

struct ConfigChoice {
  gemm::Config config;
  bool tuned = false;  // from the tuning database, else the heuristic
};

// What a config choice depends on: the problem, the device and the runtime (its tuning
// database). Key of the per-thread memo in Runtime::Impl::choose_config.
struct ChoiceKey {
  uint64_t runtime = 0, device = 0;  // Runtime::Impl id, DeviceInfo::name_hash
  int sms = 0;
  gemm::Kind kind = gemm::Kind::kDense;
  int m = 0, n = 0, k = 0;
  bool operator==(const ChoiceKey& o) const {
    return runtime == o.runtime && device == o.device && sms == o.sms && kind == o.kind &&
           m == o.m && n == o.n && k == o.k;
  }
  uint64_t hash() const;
};

class Runtime::Impl {
 public:
  explicit Impl(RuntimeOptions options);
  ~Impl();

  // The cache key of a kernel: schema, kiln version, kernel-header digest, source, NVRTC
  // version, options, arch.
  static cache::Key kernel_key(const gemm::KernelSpec& spec, const std::string& source);

  // From the disk cache, else NVRTC (and then stored). Needs no GPU.
  CompiledKernel compile(const gemm::KernelSpec& spec);

  // The loaded kernel for spec, or null: the hot path (no lock, no allocation).
  LoadedKernel* find(const gemm::KernelSpec& spec) const { return loaded_.find(spec); }
  // The loaded kernel for spec; compiles/loads on a miss unless `stream` is capturing.
  // Thread-safe; a hit takes no lock and touches no files.
  LoadedKernel& kernel(const gemm::KernelSpec& spec, CUstream stream);
  // Once per device: sets the kernel's dynamic shared memory limit and measures how many of
  // its clusters fit on the device at once (the persistent grid size).
  void configure(LoadedKernel& kernel, CUdevice device);

  // The current context's device. Throws if there is no current context.
  const DeviceInfo& current_device();

  // The tuning database's config for the problem, else the heuristic's; each thread keeps
  // its recent choices.
  ConfigChoice choose_config(gemm::Kind kind, int m, int n, int k, const DeviceInfo& device);
  const gemm::TuningDb& tuning_db();
  std::filesystem::path tuning_db_path() const;

  RuntimeStats stats() const;
  void count_launch();
  const cache::Store* store() const { return store_ ? &*store_ : nullptr; }
  bool programmatic_launch() const { return options_.programmatic_launch; }

 private:
  std::optional<cache::Store> store_;
  RuntimeOptions options_;
  std::once_flag tuning_once_;
  gemm::TuningDb tuning_db_;
  KernelTable<LoadedKernel> loaded_;
  std::mutex load_mutex_;  // serializes compile + load of new kernels in this process
  std::atomic<uint64_t> compiled_{0}, disk_hits_{0}, kernels_loaded_{0};
  // Launches, counted on one of several cache lines chosen per thread, so that threads
  // calling at once do not all write one line.
  struct alignas(64) LaunchCount {
    std::atomic<uint64_t> value{0};
  };
  LaunchCount launches_[16];
  // Tells this runtime's memoized config choices from another's (choose_config).
  const uint64_t id_;
};

}  // namespace kiln
