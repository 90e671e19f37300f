// cuBLASLt reference GEMMs; see cublaslt_ref.hpp for the problem mapping and scale layouts.
#include "cublaslt_ref.hpp"

#include <cublasLt.h>

#include <stdexcept>
#include <utility>

namespace kiln::bench {
namespace {

constexpr int kScaleBlock = 128;

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }
int64_t round_up(int64_t a, int64_t b) { return ceil_div(a, b) * b; }

std::string status_text(cublasStatus_t status) {
  const char* name = cublasLtGetStatusName(status);
  return name ? std::string(name) : "cublasStatus_t " + std::to_string(static_cast<int>(status));
}

std::string describe(const char* call, cublasStatus_t status) {
  return std::string(call) + " failed: " + status_text(status);
}

const char* kind_name(RefKind kind) {
  switch (kind) {
    case RefKind::kFp8BlockScaled: return "fp8 block-scaled";
    case RefKind::kFp8TensorScaled: return "fp8 tensor-scaled";
    case RefKind::kBf16: return "bf16";
  }
  return "?";
}

// Scale-mode checks happen in cublasLtMatmulAlgoGetHeuristic, which refuses a block scale
// mode whose pointer is still null. The plan is built before the caller's scale buffers are
// known, so a placeholder address stands in; it is never dereferenced (run() sets the real
// pointers before every launch).
alignas(256) const float kPlaceholderScale[64] = {};

template <typename T>
cublasStatus_t set_desc(cublasLtMatmulDesc_t desc, cublasLtMatmulDescAttributes_t attr,
                        const T& value) {
  return cublasLtMatmulDescSetAttribute(desc, attr, &value, sizeof(value));
}

}  // namespace

struct CublasLtGemm::Impl {
  RefKind kind = RefKind::kBf16;
  int m = 0, n = 0, k = 0;
  void* workspace = nullptr;
  size_t workspace_bytes = 0;

  cublasLtHandle_t handle = nullptr;
  cublasLtMatmulDesc_t op = nullptr;
  cublasLtMatrixLayout_t a_layout = nullptr;  // cuBLASLt A = kiln B (K x N, ld K)
  cublasLtMatrixLayout_t b_layout = nullptr;  // cuBLASLt B = kiln A (K x M, ld K)
  cublasLtMatrixLayout_t d_layout = nullptr;  // N x M, ld N; also used for C (beta = 0)
  cublasLtMatmulAlgo_t algo = {};

  bool supported = false;
  std::string reason;

  // Records the first failure; returns true if the call succeeded.
  bool check(const char* call, cublasStatus_t status) {
    if (status == CUBLAS_STATUS_SUCCESS) return true;
    reason = describe(call, status);
    return false;
  }

  bool build();
  void release() noexcept;
};

bool CublasLtGemm::Impl::build() {
  if (m <= 0 || n <= 0 || k <= 0) {
    reason = "invalid shape M=" + std::to_string(m) + " N=" + std::to_string(n) +
             " K=" + std::to_string(k);
    return false;
  }
  if (!check("cublasLtCreate", cublasLtCreate(&handle))) return false;

  // FP32 accumulation and FP32 alpha/beta/scales for every kind.
  if (!check("cublasLtMatmulDescCreate",
             cublasLtMatmulDescCreate(&op, CUBLAS_COMPUTE_32F, CUDA_R_32F)))
    return false;
  // "TN" in column-major terms: the only FP8 form Hopper's cuBLASLt kernels take, and the
  // one that reads kiln's K-major operands in place.
  const int32_t trans_a = CUBLAS_OP_T;
  const int32_t trans_b = CUBLAS_OP_N;
  if (!check("cublasLtMatmulDescSetAttribute(TRANSA)",
             set_desc(op, CUBLASLT_MATMUL_DESC_TRANSA, trans_a)))
    return false;
  if (!check("cublasLtMatmulDescSetAttribute(TRANSB)",
             set_desc(op, CUBLASLT_MATMUL_DESC_TRANSB, trans_b)))
    return false;

  if (kind != RefKind::kBf16) {
    const bool block = kind == RefKind::kFp8BlockScaled;
    // cuBLASLt A is kiln B (128x128 blocks), cuBLASLt B is kiln A (1x128 groups). Hopper
    // accepts 1D x 1D, 1D x 2D and 2D x 1D, never 2D x 2D.
    const int32_t a_mode = block ? CUBLASLT_MATMUL_MATRIX_SCALE_BLK128x128_32F
                                 : CUBLASLT_MATMUL_MATRIX_SCALE_SCALAR_32F;
    const int32_t b_mode = block ? CUBLASLT_MATMUL_MATRIX_SCALE_VEC128_32F
                                 : CUBLASLT_MATMUL_MATRIX_SCALE_SCALAR_32F;
    if (!check("cublasLtMatmulDescSetAttribute(A_SCALE_MODE)",
               set_desc(op, CUBLASLT_MATMUL_DESC_A_SCALE_MODE, a_mode)))
      return false;
    if (!check("cublasLtMatmulDescSetAttribute(B_SCALE_MODE)",
               set_desc(op, CUBLASLT_MATMUL_DESC_B_SCALE_MODE, b_mode)))
      return false;
    // Block mode already promotes to FP32 once per 128-K block when it applies the scales,
    // and PyTorch refuses fast accumulation with it, so keep it off there. Per-tensor mode
    // uses fast accumulation, as serving stacks do.
    const int8_t fast_accum = block ? 0 : 1;
    if (!check("cublasLtMatmulDescSetAttribute(FAST_ACCUM)",
               set_desc(op, CUBLASLT_MATMUL_DESC_FAST_ACCUM, fast_accum)))
      return false;
    const void* placeholder = kPlaceholderScale;
    if (!check("cublasLtMatmulDescSetAttribute(A_SCALE_POINTER)",
               set_desc(op, CUBLASLT_MATMUL_DESC_A_SCALE_POINTER, placeholder)))
      return false;
    if (!check("cublasLtMatmulDescSetAttribute(B_SCALE_POINTER)",
               set_desc(op, CUBLASLT_MATMUL_DESC_B_SCALE_POINTER, placeholder)))
      return false;
  }

  const cudaDataType_t in_type = kind == RefKind::kBf16 ? CUDA_R_16BF : CUDA_R_8F_E4M3;
  if (!check("cublasLtMatrixLayoutCreate(A)",
             cublasLtMatrixLayoutCreate(&a_layout, in_type, k, n, k)))
    return false;
  if (!check("cublasLtMatrixLayoutCreate(B)",
             cublasLtMatrixLayoutCreate(&b_layout, in_type, k, m, k)))
    return false;
  if (!check("cublasLtMatrixLayoutCreate(D)",
             cublasLtMatrixLayoutCreate(&d_layout, CUDA_R_16BF, n, m, n)))
    return false;

  cublasLtMatmulPreference_t pref = nullptr;
  if (!check("cublasLtMatmulPreferenceCreate", cublasLtMatmulPreferenceCreate(&pref)))
    return false;
  const uint64_t max_workspace = workspace ? workspace_bytes : 0;
  cublasStatus_t status = cublasLtMatmulPreferenceSetAttribute(
      pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &max_workspace, sizeof(max_workspace));
  cublasLtMatmulHeuristicResult_t result = {};
  int returned = 0;
  bool ok = check("cublasLtMatmulPreferenceSetAttribute(MAX_WORKSPACE_BYTES)", status);
  if (ok) {
    // An unsupported combination (scale modes off Hopper, odd shapes) is reported here,
    // either as an error status or as zero results.
    status = cublasLtMatmulAlgoGetHeuristic(handle, op, a_layout, b_layout, d_layout, d_layout,
                                            pref, 1, &result, &returned);
    ok = check("cublasLtMatmulAlgoGetHeuristic", status);
  }
  cublasLtMatmulPreferenceDestroy(pref);
  if (!ok) return false;
  if (returned < 1 || result.state != CUBLAS_STATUS_SUCCESS) {
    reason = "cublasLtMatmulAlgoGetHeuristic found no algorithm";
    if (returned >= 1) reason += " (" + status_text(result.state) + ")";
    return false;
  }
  algo = result.algo;
  return true;
}

void CublasLtGemm::Impl::release() noexcept {
  // Statuses are ignored: nothing useful can be done about a failed destroy.
  if (d_layout) cublasLtMatrixLayoutDestroy(d_layout);
  if (b_layout) cublasLtMatrixLayoutDestroy(b_layout);
  if (a_layout) cublasLtMatrixLayoutDestroy(a_layout);
  if (op) cublasLtMatmulDescDestroy(op);
  if (handle) cublasLtDestroy(handle);
  d_layout = b_layout = a_layout = nullptr;
  op = nullptr;
  handle = nullptr;
}

CublasLtGemm::CublasLtGemm(RefKind kind, int m, int n, int k, void* workspace,
                           size_t workspace_bytes)
    : impl_(std::make_unique<Impl>()) {
  Impl& p = *impl_;
  p.kind = kind;
  p.m = m;
  p.n = n;
  p.k = k;
  p.workspace = workspace;
  p.workspace_bytes = workspace ? workspace_bytes : 0;
  p.supported = p.build();
  if (!p.supported) {
    p.reason = std::string(kind_name(kind)) + " M=" + std::to_string(m) + " N=" +
               std::to_string(n) + " K=" + std::to_string(k) + ": " + p.reason;
    p.release();  // an unsupported plan holds no cuBLASLt objects
  }
}

CublasLtGemm::~CublasLtGemm() {
  if (impl_) impl_->release();
}

CublasLtGemm::CublasLtGemm(CublasLtGemm&&) noexcept = default;

CublasLtGemm& CublasLtGemm::operator=(CublasLtGemm&& other) noexcept {
  if (this != &other) {
    if (impl_) impl_->release();
    impl_ = std::move(other.impl_);
  }
  return *this;
}

bool CublasLtGemm::supported() const { return impl_ && impl_->supported; }

const std::string& CublasLtGemm::reason() const {
  static const std::string kMoved = "moved-from plan";
  return impl_ ? impl_->reason : kMoved;
}

void CublasLtGemm::run(const void* a, const void* b, const float* sa, const float* sb,
                       void* d, CUstream stream) {
  if (!supported())
    throw std::runtime_error("CublasLtGemm::run on an unsupported plan: " + reason());
  Impl& p = *impl_;
  if (!a || !b || !d) throw std::runtime_error("CublasLtGemm::run: null a, b or d");

  if (p.kind != RefKind::kBf16) {
    if (!sa || !sb) throw std::runtime_error("CublasLtGemm::run: FP8 needs both sa and sb");
    // The operands swap (see the header): cuBLASLt A is kiln B, so its scale is SB.
    const void* a_scale = sb;
    const void* b_scale = sa;
    cublasStatus_t status = set_desc(p.op, CUBLASLT_MATMUL_DESC_A_SCALE_POINTER, a_scale);
    if (status != CUBLAS_STATUS_SUCCESS)
      throw std::runtime_error(describe("cublasLtMatmulDescSetAttribute(A_SCALE_POINTER)", status));
    status = set_desc(p.op, CUBLASLT_MATMUL_DESC_B_SCALE_POINTER, b_scale);
    if (status != CUBLAS_STATUS_SUCCESS)
      throw std::runtime_error(describe("cublasLtMatmulDescSetAttribute(B_SCALE_POINTER)", status));
  }

  const float alpha = 1.0f;
  const float beta = 0.0f;  // C is never read; D doubles as C so the layouts match
  const cublasStatus_t status =
      cublasLtMatmul(p.handle, p.op, &alpha, b, p.a_layout, a, p.b_layout, &beta, d,
                     p.d_layout, d, p.d_layout, &p.algo, p.workspace, p.workspace_bytes, stream);
  if (status != CUBLAS_STATUS_SUCCESS)
    throw std::runtime_error(describe("cublasLtMatmul", status) + " (" + kind_name(p.kind) +
                             " M=" + std::to_string(p.m) + " N=" + std::to_string(p.n) +
                             " K=" + std::to_string(p.k) + ")");
}

int64_t CublasLtGemm::sa_leading_dim(int m) { return m; }

int64_t CublasLtGemm::sa_elements(int m, int k) {
  return ceil_div(k, kScaleBlock) * sa_leading_dim(m);
}

int64_t CublasLtGemm::sb_leading_dim(int k) { return round_up(ceil_div(k, kScaleBlock), 4); }

int64_t CublasLtGemm::sb_elements(int n, int k) {
  return ceil_div(n, kScaleBlock) * sb_leading_dim(k);
}

std::string CublasLtGemm::scale_layout_note() {
  return "cuBLASLt FP8 block scaling (Hopper sm_90 only, cuBLAS >= 12.9) as this wrapper uses it:\n"
         "  cuBLASLt computes D^T[N,M] = B[N,K] * A[M,K]^T in TN form: its A operand is kiln B\n"
         "  (mode BLK128x128_32F), its B operand is kiln A (mode VEC128_32F).\n"
         "  SA, FP32, per 1x128 group of A: float[ceil(K/128)][M], M contiguous (ld = M);\n"
         "    scale of A[m][kb*128 .. kb*128+127] = SA[kb*M + m]  (kiln ScaleLayout::kColMajor,\n"
         "    ld_sa = M; total ceil(K/128)*M floats).\n"
         "  SB, FP32, per 128x128 block of B: float[ceil(N/128)][ld_sb], K blocks contiguous,\n"
         "    ld_sb = round_up(ceil(K/128), 4) (16-byte aligned rows);\n"
         "    scale of B[nb*128.., kb*128..] = SB[nb*ld_sb + kb]; entries kb >= ceil(K/128) are\n"
         "    padding (total ceil(N/128)*ld_sb floats).\n"
         "  Both scales multiply (dequantize): D = sum_k A*SA * B*SB. Fast accumulation is off.\n"
         "Sources: NVIDIA CUDALibrarySamples cuBLASLt/Common/helpers.h getScaleTensorSize\n"
         "  (VEC128_32F: ceil(inner/128)*outer; BLK128x128_32F: round_up(ceil(inner/128),4)*\n"
         "  ceil(outer/128), inner = K) and sample LtBlk128x128Fp8Matmul (TN, BF16 out,\n"
         "  COMPUTE_32F, VEC128 on A x BLK128x128 on B; this wrapper uses the mirrored pair, as\n"
         "  PyTorch's _scaled_mm does for row-major activations); PyTorch ScaledBlas.cpp (1x128\n"
         "  scales 'outer-dim-major', stride (1, M); 128x128 scales 'near-inner-dim-major with\n"
         "  16-byte aligned strides'; fast accumulation refused for both); TransformerEngine\n"
         "  cublaslt_gemm.cu and its FP8 blockwise docs (GEMM-ready 1D scales transposed\n"
         "  [K/128, pad4(M)], 2D scales [N/128, pad4(K/128)], no 2D x 2D, observed N % 8 and,\n"
         "  for a 1D-scaled operand, M % 8 requirements); cublasLt.h cublasLtMatmulMatrixScale_t.\n"
         "Checked on an H200 (cuBLASLt 13.1.0.3) against a CPU reference with random per-block\n"
         "  scales: correct for K = 16..7168, K % 128 != 0 included (144, 400); K = 640 shows\n"
         "  SB's ld really is padded (to 8). cuBLASLt refuses block mode (heuristic status\n"
         "  NOT_SUPPORTED) unless\n"
         "  M % 4 == 0 (M = 1, 2, 3, 5, 6 refused), N % 8 == 0 and K % 16 == 0, so SA's ld = M is\n"
         "  always also a multiple of 4 (TransformerEngine's pad4(M) is the same thing).";
}

}  // namespace kiln::bench
