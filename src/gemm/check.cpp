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

// The checks dense and grouped GEMMs share; fills in the default leading dimensions.
void check_common(int m, int n, int k, int64_t& lda, int64_t& ldb, int64_t& ldd,
                  int64_t& ld_sb) {
  if (m < 0) bad(fmt::format("m={} is negative; m is the number of rows of A and D", m));
  if (n <= 0) bad(fmt::format("n={} must be positive; n is the number of rows of B", n));
  if (k <= 0) bad(fmt::format("k={} must be positive; k is the shared (reduction) dimension", k));
  if (n % 8 != 0)
    bad(fmt::format("n={} is not a multiple of 8 (rows of BF16 D must be 16-byte multiples "
                    "for TMA); pad N to {}",
                    n, (n + 7) / 8 * 8));
  if (k % 16 != 0)
    bad(fmt::format("k={} is not a multiple of 16 (rows of FP8 A and B must be 16-byte "
                    "multiples for TMA); pad K with zeros to {}",
                    k, (k + 15) / 16 * 16));
  const int64_t k_groups = (k + 127) / 128;
  if (lda == 0) lda = k;
  if (ldb == 0) ldb = k;
  if (ldd == 0) ldd = n;
  if (lda < k || lda % 16 != 0)
    bad(fmt::format("lda={} must be >= k={} and a multiple of 16 (bytes between rows of A)",
                    lda, k));
  if (ldb < k || ldb % 16 != 0)
    bad(fmt::format("ldb={} must be >= k={} and a multiple of 16 (bytes between rows of B)",
                    ldb, k));
  if (ldd < n || ldd % 8 != 0)
    bad(fmt::format("ldd={} must be >= n={} and a multiple of 8 (elements between rows of D)",
                    ldd, n));
  if (ld_sb == 0) ld_sb = k_groups;
  if (ld_sb < k_groups)
    bad(fmt::format("ld_sb={} is smaller than ceil(k/128)={}; SB is [ceil(n/128), ld_sb]",
                    ld_sb, k_groups));
}

// SA strides for `rows` rows (per group when masked).
void resolve_sa(ScaleLayout layout, int64_t& ld_sa, int rows, int k, Problem& p) {
  const int64_t k_groups = (k + 127) / 128;
  switch (layout) {
    case ScaleLayout::kRowMajor:
      if (ld_sa == 0) ld_sa = k_groups;
      if (ld_sa < k_groups)
        bad(fmt::format("ld_sa={} is smaller than ceil(k/128)={}; with ScaleLayout::kRowMajor "
                        "SA is [m, ld_sa]",
                        ld_sa, k_groups));
      p.sa_stride_m = ld_sa, p.sa_stride_k = 1;
      break;
    case ScaleLayout::kColMajor:
      if (ld_sa == 0) ld_sa = rows;
      if (ld_sa < rows)
        bad(fmt::format("ld_sa={} is smaller than m={}; with ScaleLayout::kColMajor SA is "
                        "[ceil(k/128), ld_sa]",
                        ld_sa, rows));
      p.sa_stride_m = 1, p.sa_stride_k = ld_sa;
      break;
    default:
      bad(fmt::format("sa_layout={} is not a ScaleLayout value", static_cast<int>(layout)));
  }
}

void check_pointers(const Problem& p) {
  if (!p.a) bad("a is null; pass the FP8 E4M3 matrix A [m, k] in device memory");
  if (!p.b) bad("b is null; pass the FP8 E4M3 matrix B [n, k] in device memory");
  if (!p.sa) bad("sa is null; pass the FP32 scales of A, one per row and 128-K group");
  if (!p.sb) bad("sb is null; pass the FP32 block scales of B [ceil(n/128), ceil(k/128)]");
  if (!p.d) bad("d is null; pass the BF16 output D [m, n] in device memory");
  check_aligned(p.a, 16, "a", "TMA reads A");
  check_aligned(p.b, 16, "b", "TMA reads B");
  check_aligned(p.d, 16, "d", "D is written in 16-byte vectors");
  check_aligned(p.sa, 4, "sa", "FP32");
  check_aligned(p.sb, 4, "sb", "FP32");
}

}  // namespace

Problem check_fp8_args(const GemmFp8Args& in) {
  GemmFp8Args a = in;
  check_common(a.m, a.n, a.k, a.lda, a.ldb, a.ldd, a.ld_sb);
  Problem p;
  resolve_sa(a.sa_layout, a.ld_sa, a.m, a.k, p);
  p.kind = Kind::kDense;
  p.m = a.m, p.n = a.n, p.k = a.k, p.a_rows = a.m, p.config_m = a.m;
  p.a = a.a, p.lda = a.lda, p.b = a.b, p.ldb = a.ldb, p.sa = a.sa, p.sb = a.sb;
  p.ld_sb = a.ld_sb, p.d = a.d, p.ldd = a.ldd;
  if (a.m == 0) return p;  // nothing to compute, nothing is read
  check_pointers(p);
  if (a.m > (int64_t{1} << 30))
    throw Error(ErrorCode::kUnsupported, fmt::format("m={} is too large (at most 2^30)", a.m));
  return p;
}

Problem check_grouped_args(const GroupedGemmFp8Args& in) {
  GroupedGemmFp8Args a = in;
  switch (a.layout) {
    case GroupedLayout::kContiguousByRow:
    case GroupedLayout::kContiguousByOffset:
    case GroupedLayout::kMasked:
      break;
    default:
      bad(fmt::format("layout={} is not a GroupedLayout value", static_cast<int>(a.layout)));
  }
  if (a.num_groups < 1 || a.num_groups > 1024)
    bad(fmt::format("num_groups={} must be in 1 .. 1024", a.num_groups));
  check_common(a.m, a.n, a.k, a.lda, a.ldb, a.ldd, a.ld_sb);
  Problem p;
  const bool masked = a.layout == GroupedLayout::kMasked;
  resolve_sa(a.sa_layout, a.ld_sa, a.m, a.k, p);
  const int64_t k_groups = (a.k + 127) / 128;
  p.kind = kind_of(a.layout);
  p.m = a.m, p.n = a.n, p.k = a.k, p.num_groups = a.num_groups;
  p.a_rows = masked ? int64_t{a.m} * a.num_groups : a.m;
  p.a = a.a, p.lda = a.lda, p.b = a.b, p.ldb = a.ldb, p.sa = a.sa, p.sb = a.sb;
  p.ld_sb = a.ld_sb, p.d = a.d, p.ldd = a.ldd, p.group_info = a.group_info;
  p.sb_group_stride = (a.n + 127) / 128 * a.ld_sb;
  if (masked)
    p.sa_group_stride = a.sa_layout == ScaleLayout::kRowMajor ? int64_t{a.m} * a.ld_sa
                                                              : k_groups * a.ld_sa;
  if (a.expected_m < 0 || a.expected_m > a.m)
    bad(fmt::format("expected_m={} must be in 0 .. m={} (0: m)", a.expected_m, a.m));
  if (!masked && a.expected_m != 0)
    bad("expected_m is only for GroupedLayout::kMasked; leave it 0 for contiguous layouts");
  p.config_m = masked ? (a.expected_m ? a.expected_m : a.m) * a.num_groups : a.m;
  if (a.m == 0) return p;
  check_pointers(p);
  if (!a.group_info)
    bad(masked ? "group_info is null; pass masked_m, the int32 count of valid rows of each "
                 "group, in device memory"
               : "group_info is null; pass the int32 group of each row (or the row offsets "
                 "of each group) in device memory");
  check_aligned(a.group_info, 4, "group_info", "int32");
  if (p.a_rows > (int64_t{1} << 30))
    throw Error(ErrorCode::kUnsupported,
                fmt::format("{} rows of A are too many (at most 2^30)", p.a_rows));
  return p;
}

void check_device_pointers(const Problem& p) {
  if (p.m == 0 || !driver::available()) return;
  const auto& cu = driver::get();
  const std::pair<const void*, const char*> pointers[] = {
      {p.a, "a"}, {p.b, "b"}, {p.sa, "sa"}, {p.sb, "sb"}, {p.d, "d"}, {p.group_info, "group_info"}};
  for (const auto& [ptr, name] : pointers) {
    if (!ptr) continue;
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
