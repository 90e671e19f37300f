#include <fmt/format.h>

#include <chrono>
#include <ctime>
#include <iterator>

#include "driver/cuda_driver.hpp"
#include "jit/kernel_headers.hpp"
#include "jit/nvrtc_compiler.hpp"
#include "kiln/error.hpp"
#include "kiln/version.hpp"
#include "log.hpp"
#include "recent_table.hpp"
#include "runtime_impl.hpp"

namespace kiln {

const char* to_string(ErrorCode code) {
  switch (code) {
    case ErrorCode::kInvalidArgument: return "invalid argument";
    case ErrorCode::kUnsupported: return "unsupported";
    case ErrorCode::kCompileFailed: return "compile failed";
    case ErrorCode::kCudaError: return "CUDA error";
    case ErrorCode::kNoDevice: return "no device";
    case ErrorCode::kNotWarmedUp: return "not warmed up";
    case ErrorCode::kInternal: return "internal error";
  }
  return "unknown";
}

namespace {
std::atomic<uint64_t> next_runtime_id{1};
}  // namespace

Runtime::Impl::Impl(RuntimeOptions options) : options_(options), id_(next_runtime_id++) {
  if (const char* pdl = std::getenv("KILN_PDL")) {
    const std::string value = pdl;
    if (value == "0" || value == "1")
      options_.programmatic_launch = value == "1";
    else
      log().warn("KILN_PDL={} is ignored: set it to 0 (off) or 1 (on)", value);
  }
  if (options.disk_cache)
    store_.emplace(options.cache_dir.empty() ? cache::default_cache_dir()
                                             : std::filesystem::path(options.cache_dir));
}

Runtime::Impl::~Impl() {
  // Libraries are unloaded only while the driver is still usable; at process exit it may
  // already be torn down, and the OS reclaims everything anyway.
  if (!driver::available()) return;
  for (const auto& kernel : loaded_.all())
    if (kernel->library) driver::get().cuLibraryUnload(kernel->library);
}

cache::Key Runtime::Impl::kernel_key(const gemm::KernelSpec& spec, const std::string& source) {
  cache::KeyBuilder key;
  key.add(int64_t{cache::kSchemaVersion})
      .add(KILN_VERSION_STRING)
      .add(jit::kernel_headers().digest)
      .add(source)
      .add(gemm::name_expression(spec))
      .add(jit::nvrtc_version());
  for (const auto& option : jit::compile_options()) key.add(option);
  key.add(gemm::arch_name(spec.arch));
  return key.finish();
}

CompiledKernel Runtime::Impl::compile(const gemm::KernelSpec& spec) {
  const std::string source = gemm::kernel_source(spec);
  CompiledKernel result{spec, kernel_key(spec, source), {}, cache::Outcome::kCompiled};
  auto build = [&]() -> cache::Built {
    jit::CompileRequest request{source, gemm::name_expression(spec), gemm::arch_name(spec.arch),
                                gemm::describe(spec)};
    jit::CompileResult compiled = jit::compile(request);
    compiled_.fetch_add(1, std::memory_order_relaxed);
    if (compiled.spill_bytes > 0)
      throw Error(ErrorCode::kCompileFailed,
                  fmt::format("{} spills {} bytes to local memory; kiln rejects spilling "
                              "kernels (choose another configuration)",
                              gemm::describe(spec), compiled.spill_bytes),
                  compiled.log);
    log().debug("compiled {} in {:.0f} ms ({} registers)", gemm::describe(spec),
                compiled.compile_ms, compiled.registers);
    cache::Built built;
    built.cubin = std::move(compiled.cubin);
    cache::Manifest& m = built.manifest;
    m.kernel = gemm::describe(spec);
    m.lowered_name = compiled.lowered_name;
    m.arch = gemm::arch_name(spec.arch);
    m.config = gemm::config_json(spec);
    m.kiln_version = KILN_VERSION_STRING;
    m.nvrtc_version = jit::nvrtc_version();
    m.registers = compiled.registers;
    m.spill_bytes = compiled.spill_bytes;
    m.stack_bytes = compiled.stack_bytes;
    m.static_smem_bytes = compiled.static_smem_bytes;
    m.dynamic_smem_bytes = gemm::shared_memory_bytes(spec.config);
    m.compile_ms = compiled.compile_ms;
    m.created_unix = static_cast<int64_t>(std::time(nullptr));
    return built;
  };
  if (store_) {
    result.entry = store_->get_or_build(result.key, build, &result.outcome);
  } else {
    cache::Built built = build();
    built.manifest.key = result.key.hex();
    built.manifest.cubin_size = built.cubin.size();
    result.entry = {std::move(built.manifest), std::move(built.cubin), {}};
    result.outcome = cache::Outcome::kCompiledNotStored;
  }
  if (result.outcome == cache::Outcome::kDiskHit) {
    disk_hits_.fetch_add(1, std::memory_order_relaxed);
    log().debug("loaded {} from the disk cache ({})", gemm::describe(spec), result.key.hex());
  }
  return result;
}

LoadedKernel& Runtime::Impl::kernel(const gemm::KernelSpec& spec, CUstream stream) {
  if (LoadedKernel* loaded = find(spec)) return *loaded;
  const auto& cu = driver::get();
  CUstreamCaptureStatus capture = CU_STREAM_CAPTURE_STATUS_NONE;
  KILN_CU(cu.cuStreamIsCapturing(stream, &capture));
  if (capture != CU_STREAM_CAPTURE_STATUS_NONE)
    throw Error(ErrorCode::kNotWarmedUp,
                fmt::format("{} is not loaded and the stream is capturing a CUDA graph; call "
                            "kiln::warm_up_gemm_fp8 (or run the shape once) before capture",
                            gemm::describe(spec)));

  std::lock_guard build_lock(load_mutex_);
  if (LoadedKernel* loaded = find(spec)) return *loaded;  // another thread loaded it meanwhile
  const CompiledKernel compiled = compile(spec);
  auto loaded = std::make_unique<LoadedKernel>();
  loaded->spec = spec;
  loaded->threads = gemm::threads_per_block(spec.config);
  loaded->smem_bytes = gemm::shared_memory_bytes(spec.config);
  KILN_CU(cu.cuLibraryLoadData(&loaded->library, compiled.entry.cubin.data(), nullptr, nullptr,
                               0, nullptr, nullptr, 0));
  const CUlibrary library = loaded->library;  // unloaded again if it is not kept
  try {
    driver::check(cu.cuLibraryGetKernel(&loaded->kernel, library,
                                        compiled.entry.manifest.lowered_name.c_str()),
                  "cuLibraryGetKernel");
    LoadedKernel& added = loaded_.insert(std::move(loaded));  // under load_mutex_
    kernels_loaded_.fetch_add(1, std::memory_order_relaxed);
    return added;
  } catch (...) {
    cu.cuLibraryUnload(library);
    throw;
  }
}

void Runtime::Impl::configure(LoadedKernel& kernel, CUdevice device) {
  const uint64_t bit = uint64_t{1} << (device & 63);
  if (kernel.configured_devices.load(std::memory_order_acquire) & bit) return;
  const auto& cu = driver::get();
  KILN_CU(cu.cuKernelSetAttribute(CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
                                  kernel.smem_bytes, kernel.kernel, device));
  const int cluster = kernel.spec.config.cluster_size();
  if (cluster > 1)
    KILN_CU(cu.cuKernelSetAttribute(CU_FUNC_ATTRIBUTE_NON_PORTABLE_CLUSTER_SIZE_ALLOWED, 1,
                                    kernel.kernel, device));
  KernelLaunch one(kernel, 1, nullptr);
  one.config.numAttrs = 1;  // the occupancy query needs the cluster size, even 1
  int clusters = 0;
  KILN_CU(cu.cuOccupancyMaxActiveClusters(&clusters, reinterpret_cast<CUfunction>(kernel.kernel),
                                          &one.config));
  if (clusters <= 0)
    throw Error(ErrorCode::kUnsupported,
                fmt::format("{} cannot run on device {}: no cluster of {} CTAs fits",
                            gemm::describe(kernel.spec), device, cluster));
  kernel.max_clusters[device & 63] = clusters;
  kernel.configured_devices.fetch_or(bit, std::memory_order_acq_rel);
}

std::filesystem::path Runtime::Impl::tuning_db_path() const {
  if (!options_.tuning_db.empty()) return options_.tuning_db;
  return gemm::default_tuning_db_path(store_ ? store_->root() : cache::default_cache_dir());
}

const gemm::TuningDb& Runtime::Impl::tuning_db() {
  std::call_once(tuning_once_, [&] {
    tuning_db_ = gemm::TuningDb::load(tuning_db_path());
    if (!tuning_db_.empty())
      log().debug("tuning database {}: {} entries", tuning_db_path().string(),
                  tuning_db_.entries().size());
  });
  return tuning_db_;
}

uint64_t ChoiceKey::hash() const {
  return hash_fields({runtime, device, uint64_t(sms), uint64_t(kind), uint64_t(uint32_t(m)),
                      uint64_t(uint32_t(n)), uint64_t(uint32_t(k))});
}

ConfigChoice Runtime::Impl::choose_config(gemm::Kind kind, int m, int n, int k,
                                          const DeviceInfo& device) {
  // The heuristic scores every block shape (0.12-0.44 µs), so each thread keeps its recent
  // choices (ChoiceKey: everything the choice depends on).
  thread_local RecentTable<ChoiceKey, ConfigChoice, 64> recent;
  const ChoiceKey key{id_, device.name_hash, device.num_sms, kind, m, n, k};
  if (const ConfigChoice* known = recent.find(key)) return *known;
  const gemm::Config* tuned = tuning_db().find(device.name_hash, device.num_sms, kind, n, k, m);
  const ConfigChoice choice =
      tuned ? ConfigChoice{*tuned, true}
            : ConfigChoice{gemm::heuristic_config(m, n, k, device.num_sms, kind), false};
  recent.store(key, choice);
  return choice;
}

const DeviceInfo& Runtime::Impl::current_device() {
  thread_local CUcontext cached_context = nullptr;
  thread_local DeviceInfo cached;
  const auto& cu = driver::get();
  CUcontext context = nullptr;
  KILN_CU(cu.cuCtxGetCurrent(&context));
  if (!context)
    throw Error(ErrorCode::kNoDevice,
                "no current CUDA context on this thread; select a device first "
                "(cudaSetDevice, torch.cuda.set_device, or cuCtxSetCurrent)");
  if (context == cached_context) return cached;
  DeviceInfo info;
  KILN_CU(cu.cuCtxGetDevice(&info.device));
  int major = 0;
  KILN_CU(cu.cuDeviceGetAttribute(&major, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR,
                                  info.device));
  if (major != 9)
    throw Error(ErrorCode::kUnsupported,
                fmt::format("device {} has compute capability {}.x; kiln's kernels need "
                            "Hopper (sm_90)",
                            info.device, major));
  KILN_CU(cu.cuDeviceGetAttribute(&info.num_sms, CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT,
                                  info.device));
  char name[256] = {};
  KILN_CU(cu.cuDeviceGetName(name, sizeof(name), info.device));
  info.name = name;
  info.name_hash = gemm::device_hash(info.name);
  cached_context = context;
  cached = info;
  return cached;
}

RuntimeStats Runtime::Impl::stats() const {
  RuntimeStats s;
  s.kernels_compiled = compiled_.load();
  s.disk_hits = disk_hits_.load();
  s.kernels_loaded = kernels_loaded_.load();
  for (const LaunchCount& count : launches_) s.launches += count.value.load();
  return s;
}

void Runtime::Impl::count_launch() {
  static std::atomic<unsigned> next_thread{0};
  thread_local const unsigned line = next_thread++ % std::size(launches_);
  launches_[line].value.fetch_add(1, std::memory_order_relaxed);
}

Runtime::Runtime() : Runtime(RuntimeOptions{}) {}
Runtime::Runtime(RuntimeOptions options) : impl_(std::make_unique<Impl>(std::move(options))) {}
Runtime::~Runtime() = default;

Runtime& Runtime::instance() {
  // Never destroyed: kernels may be launched from other static destructors, and the driver
  // may be gone at exit.
  static Runtime* runtime = new Runtime();
  return *runtime;
}

RuntimeStats Runtime::stats() const { return impl_->stats(); }

std::string Runtime::cache_dir() const {
  return impl_->store() ? impl_->store()->root().string() : std::string();
}

}  // namespace kiln
