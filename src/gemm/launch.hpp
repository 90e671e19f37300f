// The launch path behind gemm_fp8, with an optional forced configuration (for kiln tune).
#pragma once
#include "gemm/config.hpp"
#include "kiln/gemm.hpp"
#include "kiln/runtime.hpp"

namespace kiln::gemm {

// forced == nullptr: the tuning database's config, else the heuristic's.
void launch_fp8(Runtime& runtime, const GemmFp8Args& args, const Config* forced,
                CUstream stream);

}  // namespace kiln::gemm
