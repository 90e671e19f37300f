// Argument checks of gemm_fp8: each bad argument gets its own message saying what to change.
#pragma once
#include "kiln/gemm.hpp"

namespace kiln::gemm {

// GemmFp8Args with defaults filled in (leading dimensions).
struct ResolvedFp8Args {
  GemmFp8Args args;
  int64_t sa_stride_m = 0;  // elements between scales of consecutive rows
  int64_t sa_stride_k = 0;  // elements between scales of consecutive K groups
};

// Checks shapes, leading dimensions, alignment and null pointers (host-side, no driver).
// Throws Error(kInvalidArgument) or Error(kUnsupported).
ResolvedFp8Args check_fp8_args(const GemmFp8Args& args);

// With a driver present: checks that each pointer is device-accessible memory.
void check_device_pointers(const GemmFp8Args& args);

}  // namespace kiln::gemm
