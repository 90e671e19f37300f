#include "gemm/check.hpp"

#include <fmt/format.h>

#include <cstdint>

#include "driver/cuda_driver.hpp"
#include "kiln/error.hpp"

namespace kiln::gemm {
namespace {

[[noreturn]] void bad(const std::string& message) {
  throw Error(ErrorCode::kInvalidArgument, message);
}

void check_aligned(const void* ptr, int bytes, const char* name, const char* why) {
  if (reinterpret_cast<uintptr_t>(ptr) % bytes != 0)
    bad(fmt::format("{}={} is not {}-byte aligned ({}); pass a pointer aligned to {} bytes",
                    name, ptr, bytes, why, bytes));
}

}  // namespace

ResolvedFp8Args check_fp8_args(const GemmFp8Args& in) {
  ResolvedFp8Args out{in, 0, 0};
  GemmFp8Args& a = out.args;
  if (a.m < 0) bad(fmt::format("m={} is negative; m is the number of rows of A and D", a.m));
  if (a.n <= 0) bad(fmt::format("n={} must be positive; n is the number of rows of B", a.n));
  if (a.k <= 0) bad(fmt::format("k={} must be positive; k is the shared (reduction) dimension", a.k));
  if (a.n % 8 != 0)
    bad(fmt::format("n={} is not a multiple of 8 (rows of BF16 D must be 16-byte multiples "
                    "for TMA); pad N to {}",
                    a.n, (a.n + 7) / 8 * 8));
  if (a.k % 16 != 0)
    bad(fmt::format("k={} is not a multiple of 16 (rows of FP8 A and B must be 16-byte "
                    "multiples for TMA); pad K with zeros to {}",
                    a.k, (a.k + 15) / 16 * 16));
  const int64_t k_groups = (a.k + 127) / 128;
  if (a.lda == 0) a.lda = a.k;
  if (a.ldb == 0) a.ldb = a.k;
  if (a.ldd == 0) a.ldd = a.n;
  if (a.lda < a.k || a.lda % 16 != 0)
    bad(fmt::format("lda={} must be >= k={} and a multiple of 16 (bytes between rows of A)",
                    a.lda, a.k));
  if (a.ldb < a.k || a.ldb % 16 != 0)
    bad(fmt::format("ldb={} must be >= k={} and a multiple of 16 (bytes between rows of B)",
                    a.ldb, a.k));
  if (a.ldd < a.n || a.ldd % 8 != 0)
    bad(fmt::format("ldd={} must be >= n={} and a multiple of 8 (elements between rows of D)",
                    a.ldd, a.n));
  if (a.ld_sb == 0) a.ld_sb = k_groups;
  if (a.ld_sb < k_groups)
    bad(fmt::format("ld_sb={} is smaller than ceil(k/128)={}; SB is [ceil(n/128), ld_sb]",
                    a.ld_sb, k_groups));
  switch (a.sa_layout) {
    case ScaleLayout::kRowMajor:
      if (a.ld_sa == 0) a.ld_sa = k_groups;
      if (a.ld_sa < k_groups)
        bad(fmt::format("ld_sa={} is smaller than ceil(k/128)={}; with ScaleLayout::kRowMajor "
                        "SA is [m, ld_sa]",
                        a.ld_sa, k_groups));
      out.sa_stride_m = a.ld_sa, out.sa_stride_k = 1;
      break;
    case ScaleLayout::kColMajor:
      if (a.ld_sa == 0) a.ld_sa = a.m;
      if (a.ld_sa < a.m)
        bad(fmt::format("ld_sa={} is smaller than m={}; with ScaleLayout::kColMajor SA is "
                        "[ceil(k/128), ld_sa]",
                        a.ld_sa, a.m));
      out.sa_stride_m = 1, out.sa_stride_k = a.ld_sa;
      break;
    default:
      bad(fmt::format("sa_layout={} is not a ScaleLayout value", static_cast<int>(a.sa_layout)));
  }
  if (a.m == 0) return out;  // nothing to compute, nothing is read
  if (!a.a) bad("a is null; pass the FP8 E4M3 matrix A [m, k] in device memory");
  if (!a.b) bad("b is null; pass the FP8 E4M3 matrix B [n, k] in device memory");
  if (!a.sa) bad("sa is null; pass the FP32 scales of A, one per row and 128-K group");
  if (!a.sb) bad("sb is null; pass the FP32 block scales of B [ceil(n/128), ceil(k/128)]");
  if (!a.d) bad("d is null; pass the BF16 output D [m, n] in device memory");
  check_aligned(a.a, 16, "a", "TMA reads A");
  check_aligned(a.b, 16, "b", "TMA reads B");
  check_aligned(a.d, 16, "d", "TMA writes D");
  check_aligned(a.sa, 4, "sa", "FP32");
  check_aligned(a.sb, 4, "sb", "FP32");
  if (a.m > (int64_t{1} << 31) / 2)
    throw Error(ErrorCode::kUnsupported, fmt::format("m={} is too large (at most 2^30)", a.m));
  return out;
}

void check_device_pointers(const GemmFp8Args& a) {
  if (a.m == 0 || !driver::available()) return;
  const auto& cu = driver::get();
  const std::pair<const void*, const char*> pointers[] = {
      {a.a, "a"}, {a.b, "b"}, {a.sa, "sa"}, {a.sb, "sb"}, {a.d, "d"}};
  for (const auto& [ptr, name] : pointers) {
    unsigned int memory_type = 0;
    const CUresult r = cu.cuPointerGetAttribute(&memory_type, CU_POINTER_ATTRIBUTE_MEMORY_TYPE,
                                                reinterpret_cast<CUdeviceptr>(ptr));
    if (r != CUDA_SUCCESS || (memory_type != CU_MEMORYTYPE_DEVICE &&
                              memory_type != CU_MEMORYTYPE_UNIFIED))
      bad(fmt::format("{}={} is not device memory (cuPointerGetAttribute: {}); allocate it with "
                      "cudaMalloc/cuMemAlloc",
                      name, ptr, r == CUDA_SUCCESS ? "host memory" : driver::error_text(r)));
  }
}

}  // namespace kiln::gemm
