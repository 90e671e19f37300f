// Shared pieces of the [gpu] tests: device detection, random FP8 problems, and an FP64
// reference GEMM that runs on the GPU (a CPU reference of the largest shapes takes minutes).
#pragma once
#include <catch2/catch.hpp>

#include <memory>
#include <random>
#include <string>
#include <vector>

#include "driver/device_buffer.hpp"
#include "kiln/gemm.hpp"

namespace kiln::test {

// True if a Hopper GPU is present; otherwise prints why the test is skipped.
bool have_hopper_gpu();

// Skips the enclosing test case (with a message) when there is no Hopper GPU.
#define KILN_REQUIRE_GPU()                          \
  do {                                              \
    if (!::kiln::test::have_hopper_gpu()) return;  \
  } while (0)

// The primary context of device 0, retained for the whole test process.
void make_context_current();

struct Fp8Problem {
  int m = 0, n = 0, k = 0;
  int64_t lda = 0, ldb = 0, ldd = 0, ld_sa = 0, ld_sb = 0;
  ScaleLayout sa_layout = ScaleLayout::kRowMajor;
  driver::DeviceBuffer a, b, sa, sb, d;

  // Fresh random data (from a random seed) and a poisoned D (every element NaN).
  static std::unique_ptr<Fp8Problem> make(int m, int n, int k,
                                          ScaleLayout layout = ScaleLayout::kRowMajor,
                                          int64_t lda = 0, int64_t ldd = 0, int64_t ld_sb = 0);
  GemmFp8Args args() const;
  void poison_d();
  std::vector<uint16_t> download_d() const;  // [m, ldd] BF16 bits
};

// D_ref[m, n] in FP64 from the same FP8 values and scales, computed on the GPU.
std::vector<double> reference(const Fp8Problem& p);

// The same for raw device pointers (a group of a grouped GEMM): A rows lda apart, SA
// element (r, kb) at sa[r * sa_stride_m + kb * sa_stride_k], SB [ceil(n/128), ld_sb].
std::vector<double> reference(CUdeviceptr a, CUdeviceptr b, CUdeviceptr sa, CUdeviceptr sb, int m,
                              int n, int k, int64_t lda, int64_t ldb, int64_t sa_stride_m,
                              int64_t sa_stride_k, int64_t ld_sb);

// Relative L2 error of BF16 rows [row0, row0 + rows) of d (ldd apart) against ref [rows, n];
// counts NaN (unwritten) elements in *unwritten.
double rel_l2_rows(const std::vector<uint16_t>& d, int64_t ldd, int64_t row0, int rows, int n,
                   const std::vector<double>& ref, size_t* unwritten);

// Random device data helpers.
std::mt19937_64& test_rng();

struct Comparison {
  double rel_l2 = 0;     // ||D - ref|| / ||ref|| over the m x n block
  size_t unwritten = 0;  // elements still NaN (poison) in the m x n block
  size_t outside_touched = 0;  // padding columns n..ldd-1 that changed
};
Comparison compare(const Fp8Problem& p, const std::vector<uint16_t>& d,
                   const std::vector<double>& ref);

}  // namespace kiln::test
