// cuBLASLt reference GEMMs for the benchmark: the same problem kiln solves, run by cuBLASLt
// in the same process, so that kiln's timings have a vendor baseline next to them.
//
// Problem (kiln's row-major "NT" convention): D[M,N] = A[M,K] * B[N,K]^T, A and B K-major and
// contiguous, D BF16 row-major and contiguous. Everything lives on the device.
//
// cuBLASLt is column-major and FP8 on Hopper only takes the "TN" form (opA = T, opB = N), so
// the wrapper computes the transposed product D^T[N,M] = B[N,K] * A[M,K]^T:
//   cuBLASLt A operand = kiln B, stored K x N column-major (ld = K), opA = T
//   cuBLASLt B operand = kiln A, stored K x M column-major (ld = K), opB = N
//   cuBLASLt D         = kiln D, stored N x M column-major (ld = N), i.e. row-major [M,N]
// The operands keep kiln's memory layout; only the names swap.
//
// Block-scaled scale layouts (FP32, see scale_layout_note() for the sources):
//   SA (1 x 128 groups of kiln A, cuBLASLt mode VEC128_32F on its B operand):
//     float SA[ceil(K/128)][M], M contiguous: the scale of A[m, kb*128 .. kb*128+127] is
//     SA[kb * M + m]. This is kiln::ScaleLayout::kColMajor with ld_sa = M (not the row-major
//     layout per-token-group quantizers write by default).
//   SB (128 x 128 blocks of kiln B, cuBLASLt mode BLK128x128_32F on its A operand):
//     float SB[ceil(N/128)][ld_sb], ld_sb = round_up(ceil(K/128), 4), K blocks contiguous:
//     the scale of B[nb*128 .., kb*128 ..] is SB[nb * ld_sb + kb]; the padding entries
//     (kb >= ceil(K/128)) are never read.
//
// Restrictions measured on an H200 with cuBLASLt 13.1 (the heuristic answers NOT_SUPPORTED,
// so supported() is false): block mode needs M % 4 == 0 (M = 1 is refused), N % 8 == 0 and
// K % 16 == 0; K need not be a multiple of 128. Tensor-scaled FP8 and BF16 took every shape
// tried, M = 1 included.
//
// A CUDA context must be current on the calling thread when a plan is built and when it runs.
// Link against cublasLt only (cuBLASLt brings its own runtime; nothing here calls cudart).
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

// The driver API's stream handle, declared as cuda.h declares it (a cudaStream_t is the same
// object), so that this header needs neither cuda.h nor cublasLt.h.
typedef struct CUstream_st* CUstream;

namespace kiln::bench {

enum class RefKind {
  kFp8BlockScaled,   // E4M3 x E4M3, SA per 1x128 of A, SB per 128x128 of B (DeepSeek recipe)
  kFp8TensorScaled,  // E4M3 x E4M3, one FP32 scale per tensor, fast accumulation on
  kBf16,             // BF16 x BF16, FP32 accumulation
};

// One matmul plan for a given (kind, M, N, K); reuse it for repeated timed calls.
class CublasLtGemm {
 public:
  // workspace: device memory the caller owns (cuBLASLt recommends 32 MiB on Hopper); it must
  // outlive the plan and must not be used by two runs in flight at once. nullptr / 0 allowed
  // (fewer algorithms). Never throws for an unsupported problem: supported() says.
  CublasLtGemm(RefKind kind, int m, int n, int k, void* workspace, size_t workspace_bytes);
  ~CublasLtGemm();
  CublasLtGemm(CublasLtGemm&&) noexcept;
  CublasLtGemm& operator=(CublasLtGemm&&) noexcept;
  CublasLtGemm(const CublasLtGemm&) = delete;
  CublasLtGemm& operator=(const CublasLtGemm&) = delete;

  // false if cuBLASLt rejected the problem (e.g. no algorithm for M=1); reason() says why.
  bool supported() const;
  const std::string& reason() const;

  // Enqueues D = A * B^T on stream; throws std::runtime_error on any cuBLASLt failure.
  // kFp8BlockScaled: a, b FP8 E4M3; sa, sb FP32 scales in the layouts described above.
  // kFp8TensorScaled: sa, sb each point to ONE float on the device (the dequantization
  //   factors: D = (sa * sb) * A * B^T).
  // kBf16: a, b are BF16 [M,K] and [N,K] row-major; sa, sb are ignored.
  // Pointers should be 256-byte aligned (cuBLASLt's default assumption when it picks the
  // algorithm; cuMemAlloc gives that).
  void run(const void* a, const void* b, const float* sa, const float* sb, void* d,
           CUstream stream);

  // Exact layout cuBLASLt wants for sa/sb in block mode, with the sources it comes from.
  static std::string scale_layout_note();

  // Block-mode scale geometry, in floats, so callers can allocate and fill SA/SB.
  static int64_t sa_leading_dim(int m);       // M
  static int64_t sa_elements(int m, int k);   // ceil(K/128) * M
  static int64_t sb_leading_dim(int k);       // round_up(ceil(K/128), 4)
  static int64_t sb_elements(int n, int k);   // ceil(N/128) * sb_leading_dim(K)

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace kiln::bench
