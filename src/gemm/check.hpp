// Argument checks of gemm_fp8 and gemm_fp8_grouped: each bad argument gets its own message
// saying what to change.
#pragma once
#include "gemm/config.hpp"
#include "kiln/gemm.hpp"

namespace kiln::gemm {

// Everything a launch needs, with defaults filled in and strides in elements.
struct Problem {
  Kind kind = Kind::kDense;
  int m = 0, n = 0, k = 0;  // m: rows of A/D (contiguous, dense) or rows per group (masked)
  int num_groups = 1;
  const void* a = nullptr;
  int64_t lda = 0;
  int64_t a_rows = 0;  // rows of the 2D A (and D) tensor: m, or G * m when masked
  const void* b = nullptr;
  int64_t ldb = 0;
  const float* sa = nullptr;
  int64_t sa_stride_m = 0, sa_stride_k = 0, sa_group_stride = 0;
  const float* sb = nullptr;
  int64_t ld_sb = 0, sb_group_stride = 0;
  void* d = nullptr;
  int64_t ldd = 0;
  const int* group_info = nullptr;
  int config_m = 0;  // the M the configuration is chosen for
  bool empty() const { return m == 0; }
};

// Check shapes, leading dimensions, alignment and null pointers (host-side, no driver).
// Throw Error(kInvalidArgument) or Error(kUnsupported).
Problem check_fp8_args(const GemmFp8Args& args);
Problem check_grouped_args(const GroupedGemmFp8Args& args);

// With a driver present: checks that each pointer is device-accessible memory.
void check_device_pointers(const Problem& problem);

inline constexpr int kGroupedAlignment = 128;

}  // namespace kiln::gemm
