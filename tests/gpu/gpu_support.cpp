#include "gpu_support.hpp"

#include <cmath>

#include "gemm/fp8_host.hpp"
#include "jit/nvrtc_compiler.hpp"

namespace kiln::test {
namespace {

// One thread per output; 16x16 outputs per block; A and B tiles decoded into shared memory.
// Products of E4M3 values and FP32 scales are exact in FP64.
const char* kReferenceSource = R"(
__device__ float e4m3_to_float(unsigned char v) {
  const int e = (v >> 3) & 15, mant = v & 7;
  float mag = e == 0 ? mant * 0.001953125f : (1.0f + mant * 0.125f) * exp2f(float(e - 7));
  return (v & 0x80) ? -mag : mag;
}
extern "C" __global__ void reference_fp8_gemm(
    const unsigned char* a, const unsigned char* b, const float* sa, const float* sb, double* d,
    int m, int n, int k, long long lda, long long ldb, long long sa_stride_m,
    long long sa_stride_k, long long ld_sb) {
  __shared__ float ta[16][129], tb[16][129];
  const int tx = threadIdx.x, ty = threadIdx.y;
  const int row = blockIdx.y * 16 + ty, col = blockIdx.x * 16 + tx;
  const int tid = ty * 16 + tx;
  double total = 0.0;
  for (int kb = 0; kb * 128 < k; ++kb) {
    for (int i = tid; i < 16 * 128; i += 256) {
      const int r = i / 128, c = i % 128, kk = kb * 128 + c;
      const int ar = blockIdx.y * 16 + r, br = blockIdx.x * 16 + r;
      ta[r][c] = (ar < m && kk < k) ? e4m3_to_float(a[ar * lda + kk]) : 0.f;
      tb[r][c] = (br < n && kk < k) ? e4m3_to_float(b[br * ldb + kk]) : 0.f;
    }
    __syncthreads();
    double partial = 0.0;
    for (int c = 0; c < 128; ++c) partial += double(ta[ty][c]) * double(tb[tx][c]);
    if (row < m && col < n)
      total += partial * double(sa[row * sa_stride_m + kb * sa_stride_k]) *
               double(sb[(col / 128) * ld_sb + kb]);
    __syncthreads();
  }
  if (row < m && col < n) d[(long long)row * n + col] = total;
}
)";

CUfunction reference_kernel() {
  static CUfunction function = [] {
    jit::CompileRequest request{kReferenceSource, "reference_fp8_gemm", "sm_90a",
                                "reference_fp8_gemm.cu"};
    static const std::string cubin = jit::compile(request).cubin;
    CUlibrary library = nullptr;
    KILN_CU(driver::get().cuLibraryLoadData(&library, cubin.data(), nullptr, nullptr, 0,
                                            nullptr, nullptr, 0));
    CUkernel kernel = nullptr;
    KILN_CU(driver::get().cuLibraryGetKernel(&kernel, library, "reference_fp8_gemm"));
    return reinterpret_cast<CUfunction>(kernel);
  }();
  return function;
}

std::mt19937_64& rng() {
  static std::mt19937_64 engine(std::random_device{}());
  return engine;
}

}  // namespace

std::mt19937_64& test_rng() { return rng(); }

bool have_hopper_gpu() {
  if (driver::device_count() == 0) {
    WARN("skipped: no CUDA device (no driver or no GPU); run the [gpu] tests on a Hopper GPU");
    return false;
  }
  CUdevice dev = 0;
  int major = 0;
  KILN_CU(driver::get().cuDeviceGet(&dev, 0));
  KILN_CU(driver::get().cuDeviceGetAttribute(&major, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, dev));
  if (major != 9) {
    WARN("skipped: device 0 is sm_" << major << "x, not Hopper (sm_90)");
    return false;
  }
  make_context_current();
  return true;
}

void make_context_current() {
  static driver::PrimaryContext context(0);
  KILN_CU(driver::get().cuCtxSetCurrent(context.context()));
}

std::unique_ptr<Fp8Problem> Fp8Problem::make(int m, int n, int k, ScaleLayout layout,
                                             int64_t lda, int64_t ldd, int64_t ld_sb) {
  auto p = std::make_unique<Fp8Problem>();
  p->m = m, p->n = n, p->k = k, p->sa_layout = layout;
  const int kb = (k + 127) / 128, nb = (n + 127) / 128;
  p->lda = lda ? lda : k, p->ldb = k, p->ldd = ldd ? ldd : n;
  p->ld_sb = ld_sb ? ld_sb : kb;
  p->ld_sa = layout == ScaleLayout::kRowMajor ? kb : m;
  const size_t a_elems = size_t(m) * p->lda, sa_elems = size_t(m) * kb;
  p->a = driver::DeviceBuffer(std::max<size_t>(a_elems, 16));
  p->b = driver::DeviceBuffer(size_t(n) * k);
  p->sa = driver::DeviceBuffer(std::max<size_t>(sa_elems, 1) * 4);
  p->sb = driver::DeviceBuffer(size_t(nb) * p->ld_sb * 4);
  p->d = driver::DeviceBuffer(std::max<size_t>(size_t(m) * p->ldd, 8) * 2);
  if (a_elems) p->a.upload(gemm::random_e4m3(a_elems, rng()));
  p->b.upload(gemm::random_e4m3(size_t(n) * k, rng()));
  if (sa_elems) p->sa.upload(gemm::random_scales(sa_elems, rng()));
  p->sb.upload(gemm::random_scales(size_t(nb) * p->ld_sb, rng()));
  p->poison_d();
  return p;
}

GemmFp8Args Fp8Problem::args() const {
  GemmFp8Args args;
  args.m = m, args.n = n, args.k = k;
  args.a = a.get_as(), args.lda = lda, args.b = b.get_as(), args.ldb = ldb;
  args.sa = sa.get_as<float>(), args.sa_layout = sa_layout, args.ld_sa = ld_sa;
  args.sb = sb.get_as<float>(), args.ld_sb = ld_sb;
  args.d = d.get_as(), args.ldd = ldd;
  return args;
}

void Fp8Problem::poison_d() {
  KILN_CU(driver::get().cuMemsetD8(d.ptr(), 0xFF, d.bytes()));  // BF16 0xFFFF is NaN
}

std::vector<uint16_t> Fp8Problem::download_d() const {
  KILN_CU(driver::get().cuCtxSynchronize());
  return d.download<uint16_t>(size_t(m) * ldd);
}

std::vector<double> reference(CUdeviceptr a, CUdeviceptr b, CUdeviceptr sa, CUdeviceptr sb, int m,
                              int n, int k, int64_t lda_, int64_t ldb_, int64_t sa_stride_m_,
                              int64_t sa_stride_k_, int64_t ld_sb_) {
  if (m == 0) return {};
  driver::DeviceBuffer out(size_t(m) * n * 8);
  CUdeviceptr d = out.ptr();
  long long lda = lda_, ldb = ldb_, ld_sb = ld_sb_;
  long long sa_stride_m = sa_stride_m_, sa_stride_k = sa_stride_k_;
  void* params[] = {&a, &b, &sa, &sb, &d, &m, &n, &k, &lda, &ldb, &sa_stride_m, &sa_stride_k,
                    &ld_sb};
  KILN_CU(driver::get().cuLaunchKernel(reference_kernel(), (n + 15) / 16, (m + 15) / 16, 1, 16,
                                       16, 1, 0, nullptr, params, nullptr));
  KILN_CU(driver::get().cuCtxSynchronize());
  return out.download<double>(size_t(m) * n);
}

std::vector<double> reference(const Fp8Problem& p) {
  if (p.m == 0) return {};
  const bool row_major = p.sa_layout == ScaleLayout::kRowMajor;
  return reference(p.a.ptr(), p.b.ptr(), p.sa.ptr(), p.sb.ptr(), p.m, p.n, p.k, p.lda, p.ldb,
                   row_major ? p.ld_sa : 1, row_major ? 1 : p.ld_sa, p.ld_sb);
}

double rel_l2_rows(const std::vector<uint16_t>& d, int64_t ldd, int64_t row0, int rows, int n,
                   const std::vector<double>& ref, size_t* unwritten) {
  double num = 0, den = 0;
  for (int i = 0; i < rows; ++i)
    for (int j = 0; j < n; ++j) {
      const float x = gemm::bf16_to_float(d[size_t(row0 + i) * ldd + j]);
      if (std::isnan(x)) {
        ++*unwritten;
        continue;
      }
      const double r = ref[size_t(i) * n + j];
      num += (x - r) * (x - r);
      den += r * r;
    }
  return den > 0 ? std::sqrt(num / den) : (num > 0 ? INFINITY : 0.0);
}

Comparison compare(const Fp8Problem& p, const std::vector<uint16_t>& d,
                   const std::vector<double>& ref) {
  Comparison c;
  double num = 0, den = 0;
  for (int i = 0; i < p.m; ++i) {
    for (int j = 0; j < p.n; ++j) {
      const float x = gemm::bf16_to_float(d[size_t(i) * p.ldd + j]);
      if (std::isnan(x)) {
        ++c.unwritten;
        continue;
      }
      const double r = ref[size_t(i) * p.n + j];
      num += (x - r) * (x - r);
      den += r * r;
    }
    for (int64_t j = p.n; j < p.ldd; ++j)
      if (d[size_t(i) * p.ldd + j] != 0xFFFF) ++c.outside_touched;
  }
  c.rel_l2 = den > 0 ? std::sqrt(num / den) : (num > 0 ? INFINITY : 0.0);
  return c;
}

}  // namespace kiln::test
