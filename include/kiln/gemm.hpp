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

// Compiles (or loads from the disk cache) and loads onto the current device every kernel
// that gemm_fp8 would use for N, K and each M in [1, max_m], so that later calls, in CUDA
// graph capture too, never compile. Needs a current CUDA context.
KILN_API void warm_up_gemm_fp8(int max_m, int n, int k);
KILN_API void warm_up_gemm_fp8(Runtime& runtime, int max_m, int n, int k);

}  // namespace kiln
