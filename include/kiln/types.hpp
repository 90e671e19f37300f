// Small value types of the public API.
#pragma once
#include <cstdint>

#include "kiln/version.hpp"

// The driver API's stream handle, declared as cuda.h declares it, so that this header does
// not need cuda.h. A CUstream is the same object as a cudaStream_t.
typedef struct CUstream_st* CUstream;

namespace kiln {

// Memory layout of SA, the per-(row, 128-K group) scales of A.
enum class ScaleLayout {
  // SA[m * ld_sa + kb]: one row of ceil(K/128) scales per row of A; ld_sa >= ceil(K/128).
  // What per-token-group quantization kernels write by default.
  kRowMajor,
  // SA[kb * ld_sa + m]: M contiguous for each K group; ld_sa >= M ("column-major" or
  // "MN-major" scales, DeepGEMM's layout).
  kColMajor,
};

}  // namespace kiln
