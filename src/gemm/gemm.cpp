// gemm_fp8 and gemm_fp8_grouped: check, pick the configuration, find the loaded kernel,
// build TMA descriptors, launch. A warm call does no allocation, no hashing of source and no
// file access.
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

void launch(Runtime::Impl& rt, LoadedKernel& kernel, const gemm::Problem& p,
            const DeviceInfo& device, CUstream stream) {
  const gemm::Config& c = kernel.spec.config;
  rt.configure(kernel, device.device);
  // With multicast each CTA of a pair loads half of the A tile. A dense GEMM with fewer rows
  // than a tile loads only its rows (rounded up to 8, the swizzle's period): the rest of the
  // tile's rows in shared memory are left as they are and only feed output rows that are
  // never stored. (Loading a whole 64-row box for M = 16 made 64 x 64 tiles ~25% slower.)
  int a_load_rows = c.block_m / c.multicast_n;
  if (p.kind == gemm::Kind::kDense && c.multicast_n == 1 && p.m < c.block_m)
    a_load_rows = (p.m + 7) / 8 * 8;
  CUtensorMap tmap_a = gemm::make_tma_2d(p.a, CU_TENSOR_MAP_DATA_TYPE_UINT8, p.k, p.a_rows,
                                         p.lda, 128, a_load_rows, CU_TENSOR_MAP_SWIZZLE_128B);
  CUtensorMap tmap_b = gemm::make_tma_2d(p.b, CU_TENSOR_MAP_DATA_TYPE_UINT8, p.k,
                                         uint64_t(p.n) * p.num_groups, p.ldb, 128, c.block_n,
                                         CU_TENSOR_MAP_SWIZZLE_128B);
  // The output box matches the kernel's staging (bf16_tma_store.cuh): 64-column slabs with
  // the 128-byte swizzle, or for widths not a multiple of 64 the tile's width unswizzled.
  const bool slabbed = c.block_n % 64 == 0;
  CUtensorMap tmap_d = gemm::make_tma_2d(
      p.d, CU_TENSOR_MAP_DATA_TYPE_BFLOAT16, p.n, p.a_rows, p.ldd * 2, slabbed ? 64 : c.block_n,
      64, slabbed ? CU_TENSOR_MAP_SWIZZLE_128B : CU_TENSOR_MAP_SWIZZLE_NONE);
  const float* sa = p.sa;
  const float* sb = p.sb;
  void* d = p.d;
  int m = p.m, num_groups = p.num_groups, group_rows = p.m;
  int64_t sa_stride_m = p.sa_stride_m, sa_stride_k = p.sa_stride_k, sb_stride = p.ld_sb;
  int64_t ldd = p.ldd, sa_group_stride = p.sa_group_stride, sb_group_stride = p.sb_group_stride;
  const int* group_info = p.group_info;
  void* params[] = {&tmap_a,     &tmap_b,      &tmap_d,          &sa,
                    &sb,         &d,           &m,               &sa_stride_m,
                    &sa_stride_k, &sb_stride,  &ldd,             &group_info,
                    &num_groups, &group_rows,  &sa_group_stride, &sb_group_stride,
                    &a_load_rows};

  // Work units: a tile per CTA (pair with multicast). Split-K is one tile per cluster and
  // not persistent. Grouped-by-offset and masked kernels find their tiles on the device, so
  // their grid is the whole machine: the launch never depends on device data.
  int clusters = kernel.max_clusters[device.device & 63];
  if (p.kind == gemm::Kind::kDense || p.kind == gemm::Kind::kGroupedByRow) {
    const int m_blocks = (p.m + c.block_m - 1) / c.block_m;
    const int n_groups = ((p.n + c.block_n - 1) / c.block_n + c.multicast_n - 1) / c.multicast_n;
    const int units = m_blocks * n_groups;
    clusters = c.split_k > 1 ? units : std::min(units, clusters);
  }
  const KernelLaunch launch_config(kernel, clusters, stream, rt.programmatic_launch());
  KILN_CU(driver::get().cuLaunchKernelEx(&launch_config.config,
                                         reinterpret_cast<CUfunction>(kernel.kernel), params,
                                         nullptr));
  rt.count_launch();
}

}  // namespace

namespace gemm {

void launch_problem(Runtime& runtime, const Problem& p, const Config* forced, CUstream stream) {
  if (p.empty()) return;
  Runtime::Impl& rt = runtime.impl();
  const DeviceInfo& device = rt.current_device();
  KernelSpec spec;
  spec.kind = p.kind;
  spec.n = p.n;
  spec.k = p.k;
  bool tuned = false;
  if (forced) {
    spec.config = *forced;
  } else {
    const ConfigChoice choice = rt.choose_config(spec.kind, p.config_m, p.n, p.k, device);
    spec.config = choice.config;
    tuned = choice.tuned;
  }
  LoadedKernel* kernel = rt.find(spec);
  if (!kernel) {
    check_device_pointers(p);
    kernel = &rt.kernel(spec, stream);
    log().debug("m={}: {} ({})", p.config_m, describe(spec),
                forced ? "forced" : tuned ? "tuned" : "heuristic");
  }
  launch(rt, *kernel, p, device, stream);
}

void launch_fp8(Runtime& runtime, const GemmFp8Args& args, const Config* forced,
                CUstream stream) {
  launch_problem(runtime, check_fp8_args(args), forced, stream);
}

void launch_fp8_grouped(Runtime& runtime, const GroupedGemmFp8Args& args, const Config* forced,
                        CUstream stream) {
  launch_problem(runtime, check_grouped_args(args), forced, stream);
}

void warm_up(Runtime& runtime, Kind kind, int max_m, int n, int k) {
  Runtime::Impl& rt = runtime.impl();
  const DeviceInfo& device = rt.current_device();
  std::vector<int> ms = heuristic_m_breakpoints(max_m, n, k, device.num_sms, kind);
  // tuned M ranges bring their own configs
  for (const TunedEntry* e : rt.tuning_db().reachable(device.num_sms, kind, n, k, max_m))
    if (e->device == device.name) ms.push_back(e->m_min), ms.push_back(std::min(e->m_max, max_m));
  for (int m : ms) {
    KernelSpec spec;
    spec.kind = kind, spec.n = n, spec.k = k;
    spec.config = rt.choose_config(kind, m, n, k, device).config;
    rt.configure(rt.kernel(spec, nullptr), device.device);
  }
}

}  // namespace gemm

void gemm_fp8(Runtime& runtime, const GemmFp8Args& args, CUstream stream) {
  gemm::launch_fp8(runtime, args, nullptr, stream);
}

void gemm_fp8(const GemmFp8Args& args, CUstream stream) {
  gemm_fp8(Runtime::instance(), args, stream);
}

void gemm_fp8_grouped(Runtime& runtime, const GroupedGemmFp8Args& args, CUstream stream) {
  gemm::launch_fp8_grouped(runtime, args, nullptr, stream);
}

void gemm_fp8_grouped(const GroupedGemmFp8Args& args, CUstream stream) {
  gemm_fp8_grouped(Runtime::instance(), args, stream);
}

int grouped_m_alignment() { return gemm::kGroupedAlignment; }

namespace {

void check_warm_up(int max_m, int n, int k) {
  GemmFp8Args probe;
  probe.m = 0, probe.n = n, probe.k = k;
  gemm::check_fp8_args(probe);
  if (max_m <= 0)
    throw Error(ErrorCode::kInvalidArgument,
                fmt::format("max_m={} must be positive: the largest M the calls will use", max_m));
}

}  // namespace

void warm_up_gemm_fp8(Runtime& runtime, int max_m, int n, int k) {
  check_warm_up(max_m, n, k);
  gemm::warm_up(runtime, gemm::Kind::kDense, max_m, n, k);
}

void warm_up_gemm_fp8(int max_m, int n, int k) {
  warm_up_gemm_fp8(Runtime::instance(), max_m, n, k);
}

void warm_up_gemm_fp8_grouped(GroupedLayout layout, int max_m, int n, int k) {
  check_warm_up(max_m, n, k);
  gemm::warm_up(Runtime::instance(), gemm::kind_of(layout), max_m, n, k);
}

}  // namespace kiln
