// gemm_fp8: check, pick the configuration, find the loaded kernel, build TMA descriptors,
// launch. A warm call does no allocation, no hashing of source and no file access.
#include "kiln/gemm.hpp"

#include <fmt/format.h>

#include "driver/cuda_driver.hpp"
#include "gemm/check.hpp"
#include "gemm/config.hpp"
#include "gemm/launch.hpp"
#include "gemm/tma.hpp"
#include "kiln/error.hpp"
#include "log.hpp"
#include "runtime_impl.hpp"

namespace kiln {
namespace {

void launch_dense(Runtime::Impl& rt, LoadedKernel& kernel, const gemm::ResolvedFp8Args& r,
                  const DeviceInfo& device, CUstream stream) {
  const GemmFp8Args& a = r.args;
  const gemm::Config& c = kernel.spec.config;
  rt.configure(kernel, device.device);
  // With multicast each CTA of a pair loads half of the A tile.
  CUtensorMap tmap_a = gemm::make_tma_2d(a.a, CU_TENSOR_MAP_DATA_TYPE_UINT8, a.k, a.m, a.lda,
                                         128, c.block_m / c.multicast_n,
                                         CU_TENSOR_MAP_SWIZZLE_128B);
  CUtensorMap tmap_b = gemm::make_tma_2d(a.b, CU_TENSOR_MAP_DATA_TYPE_UINT8, a.k, a.n, a.ldb,
                                         128, c.block_n, CU_TENSOR_MAP_SWIZZLE_128B);
  CUtensorMap tmap_d = gemm::make_tma_2d(a.d, CU_TENSOR_MAP_DATA_TYPE_BFLOAT16, a.n, a.m,
                                         a.ldd * 2, 64, 64, CU_TENSOR_MAP_SWIZZLE_128B);
  const float* sa = a.sa;
  const float* sb = a.sb;
  int m = a.m;
  void* d = a.d;
  int64_t sa_stride_m = r.sa_stride_m, sa_stride_k = r.sa_stride_k, sb_stride = a.ld_sb;
  int64_t ldd = a.ldd;
  void* params[] = {&tmap_a, &tmap_b, &tmap_d, &sa, &sb, &d, &m, &sa_stride_m, &sa_stride_k,
                    &sb_stride, &ldd};

  // Work units: one tile per CTA pair with multicast; with split-K one tile per cluster,
  // which is not persistent (the grid is every tile's cluster).
  const int m_blocks = (a.m + c.block_m - 1) / c.block_m;
  const int n_groups = ((a.n + c.block_n - 1) / c.block_n + c.multicast_n - 1) / c.multicast_n;
  const int units = m_blocks * n_groups;
  const int clusters =
      c.split_k > 1 ? units : std::min(units, kernel.max_clusters[device.device & 63]);
  CUlaunchAttribute attribute{};
  attribute.id = CU_LAUNCH_ATTRIBUTE_CLUSTER_DIMENSION;
  attribute.value.clusterDim.x = static_cast<unsigned>(c.cluster_size());
  attribute.value.clusterDim.y = attribute.value.clusterDim.z = 1;
  CUlaunchConfig config{};
  config.attrs = &attribute;
  config.numAttrs = c.cluster_size() > 1 ? 1 : 0;
  config.gridDimX = static_cast<unsigned>(clusters * c.cluster_size());
  config.gridDimY = config.gridDimZ = 1;
  config.blockDimX = static_cast<unsigned>(kernel.threads);
  config.blockDimY = config.blockDimZ = 1;
  config.sharedMemBytes = static_cast<unsigned>(kernel.smem_bytes);
  config.hStream = stream;
  KILN_CU(driver::get().cuLaunchKernelEx(&config, reinterpret_cast<CUfunction>(kernel.kernel),
                                         params, nullptr));
  rt.count_launch();
}

}  // namespace

namespace gemm {

void launch_fp8(Runtime& runtime, const GemmFp8Args& args, const Config* forced,
                CUstream stream) {
  const ResolvedFp8Args resolved = check_fp8_args(args);
  if (resolved.args.m == 0) return;
  Runtime::Impl& rt = runtime.impl();
  const DeviceInfo& device = rt.current_device();
  KernelSpec spec;
  spec.kind = Kind::kDense;
  spec.n = args.n;
  spec.k = args.k;
  bool tuned = false;
  if (forced) {
    spec.config = *forced;
  } else {
    const ConfigChoice choice = rt.choose_config(spec.kind, args.m, args.n, args.k, device);
    spec.config = choice.config;
    tuned = choice.tuned;
  }
  LoadedKernel* kernel = rt.find(spec);
  if (!kernel) {
    check_device_pointers(resolved.args);
    kernel = &rt.kernel(spec, stream);
    log().debug("m={}: {} ({})", args.m, describe(spec),
                forced ? "forced" : tuned ? "tuned" : "heuristic");
  }
  launch_dense(rt, *kernel, resolved, device, stream);
}

}  // namespace gemm

void gemm_fp8(Runtime& runtime, const GemmFp8Args& args, CUstream stream) {
  gemm::launch_fp8(runtime, args, nullptr, stream);
}

void gemm_fp8(const GemmFp8Args& args, CUstream stream) {
  gemm_fp8(Runtime::instance(), args, stream);
}

void warm_up_gemm_fp8(Runtime& runtime, int max_m, int n, int k) {
  GemmFp8Args probe;
  probe.m = 0, probe.n = n, probe.k = k;
  gemm::check_fp8_args(probe);
  if (max_m <= 0)
    throw Error(ErrorCode::kInvalidArgument,
                fmt::format("max_m={} must be positive: the largest M the calls will use", max_m));
  Runtime::Impl& rt = runtime.impl();
  const DeviceInfo& device = rt.current_device();
  std::vector<int> ms = gemm::heuristic_m_breakpoints(max_m, n, k, device.num_sms);
  for (const auto& e : rt.tuning_db().entries())  // tuned M ranges bring their own configs
    if (e.device == device.name && e.sms == device.num_sms && e.n == n && e.k == k &&
        e.m_min <= max_m)
      ms.push_back(e.m_min), ms.push_back(std::min(e.m_max, max_m));
  for (int m : ms) {
    gemm::KernelSpec spec;
    spec.n = n, spec.k = k;
    spec.config = rt.choose_config(spec.kind, m, n, k, device).config;
    rt.configure(rt.kernel(spec, nullptr), device.device);
  }
}

void warm_up_gemm_fp8(int max_m, int n, int k) {
  warm_up_gemm_fp8(Runtime::instance(), max_m, n, k);
}

}  // namespace kiln
