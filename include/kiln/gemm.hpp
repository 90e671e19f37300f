// FP8 GEMM with DeepSeek-V3 fine-grained scaling.
#pragma once
#include <cstdint>

#include "kiln/types.hpp"

namespace kiln {

class Runtime;

// D[M,N] (BF16) = A[M,K] * B[N,K]^T with A, B in FP8 E4M3, both K-major (row-major), and
//   D[m,n] = sum_kb SA(m, kb) * SB[n/128][kb] * sum_{k in group kb} A[m,k] * B[n,k]
// where kb = k / 128 indexes groups of 128 along K.
//
// Supported: any M >= 0; N a multiple of 8 (16-byte rows of D); K a multiple of 16
// (16-byte rows of A and B); pointers to device memory, A, B and D 16-byte aligned; leading
// dimensions (in elements) multiples of 16 for A and B and of 8 for D. SA and SB are FP32
// and 4-byte aligned. SB is [ceil(N/128), ld_sb] row-major, ld_sb >= ceil(K/128) (a weight's
// block scales as checkpoints store them; cuBLASLt pads ld_sb to a multiple of 4). SA is
// either layout of ScaleLayout; kColMajor is a little cheaper to read.
struct GemmFp8Args {
  int m = 0;
  int n = 0;
  int k = 0;
  const void* a = nullptr;  // E4M3 [m, lda], lda >= k (0: lda = k)
  int64_t lda = 0;
  const void* b = nullptr;  // E4M3 [n, ldb], ldb >= k (0: ldb = k)
  int64_t ldb = 0;
  const float* sa = nullptr;
  ScaleLayout sa_layout = ScaleLayout::kRowMajor;
  int64_t ld_sa = 0;  // 0: ceil(k/128) for kRowMajor, m for kColMajor
  const float* sb = nullptr;
  int64_t ld_sb = 0;  // 0: ceil(k/128)
  void* d = nullptr;  // BF16 [m, ldd], ldd >= n (0: ldd = n)
  int64_t ldd = 0;
};

// Launches on `stream` (asynchronous). The first call for a new (N, K, configuration)
// compiles the kernel or loads it from the disk cache; later calls only launch. Inside CUDA
// graph capture a kernel that is not loaded yet is an error (ErrorCode::kNotWarmedUp):
// call warm_up_gemm_fp8 first. Throws kiln::Error. Thread-safe.
KILN_API void gemm_fp8(const GemmFp8Args& args, CUstream stream);
KILN_API void gemm_fp8(Runtime& runtime, const GemmFp8Args& args, CUstream stream);

// Grouped FP8 GEMM for Mixture-of-Experts: one GEMM per group (expert) with the same N and K,
// in one persistent launch. B is [G, n, ldb] (E4M3) and SB [G, ceil(n/128), ld_sb].
enum class GroupedLayout {
  // Prefill / training: A [m, lda] holds every group's rows back to back; group_info[m] is
  // each row's group, -1 for padding rows (whose D rows are left untouched). Each group's
  // first row is a multiple of grouped_m_alignment().
  kContiguousByRow,
  // The same A, described by group_info[G + 1]: group g is rows [info[g], info[g + 1])
  // (prefix sums of the rows per group; any counts, no padding or alignment needed).
  kContiguousByOffset,
  // Decode under CUDA graphs: A [G, m, lda] and D [G, m, ldd] with m = the rows reserved
  // per group; group_info[G] (device memory, "masked_m") says how many rows of each group
  // are valid; the rest are left untouched. The launch does not depend on group_info, so
  // the call can be captured once and replayed with new counts.
  kMasked,
};

struct GroupedGemmFp8Args {
  GroupedLayout layout = GroupedLayout::kContiguousByRow;
  int num_groups = 0;  // G, 1 .. 1024
  int m = 0;           // contiguous: rows of A and D; masked: rows reserved per group
  int n = 0;
  int k = 0;
  const void* a = nullptr;  // E4M3, contiguous [m, lda], masked [G, m, lda]
  int64_t lda = 0;
  const void* b = nullptr;  // E4M3 [G, n, ldb]
  int64_t ldb = 0;
  // Contiguous: as GemmFp8Args over the m rows. Masked: per group, kRowMajor
  // [G, m, ld_sa] (ld_sa >= ceil(k/128)) or kColMajor [G, ceil(k/128), ld_sa] (ld_sa >= m).
  const float* sa = nullptr;
  ScaleLayout sa_layout = ScaleLayout::kRowMajor;
  int64_t ld_sa = 0;
  const float* sb = nullptr;  // [G, ceil(n/128), ld_sb]
  int64_t ld_sb = 0;
  void* d = nullptr;  // BF16, contiguous [m, ldd], masked [G, m, ldd]
  int64_t ldd = 0;
  const int* group_info = nullptr;  // device int32, see GroupedLayout
  int expected_m = 0;  // masked: typical valid rows per group, picks the configuration (0: m)
};

// Row alignment of each group's start in the kContiguousByRow layout.
KILN_API int grouped_m_alignment();

KILN_API void gemm_fp8_grouped(const GroupedGemmFp8Args& args, CUstream stream);
KILN_API void gemm_fp8_grouped(Runtime& runtime, const GroupedGemmFp8Args& args,
                               CUstream stream);

// Compiles and loads the kernels gemm_fp8_grouped uses for this layout, n, k and every M up
// to max_m (contiguous: total rows; masked: expected_m), so later calls never compile.
KILN_API void warm_up_gemm_fp8_grouped(GroupedLayout layout, int max_m, int n, int k);

// Compiles (or loads from the disk cache) and loads onto the current device every kernel
// that gemm_fp8 would use for N, K and each M in [1, max_m], so that later calls, in CUDA
// graph capture too, never compile. Needs a current CUDA context.
KILN_API void warm_up_gemm_fp8(int max_m, int n, int k);
KILN_API void warm_up_gemm_fp8(Runtime& runtime, int max_m, int n, int k);

}  // namespace kiln
