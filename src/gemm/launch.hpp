// The launch path behind gemm_fp8 and gemm_fp8_grouped, with an optional forced
// configuration (for kiln tune and the tests of every candidate).
#pragma once
#include "gemm/check.hpp"
#include "gemm/config.hpp"
#include "kiln/gemm.hpp"
#include "kiln/runtime.hpp"

namespace kiln::gemm {

// forced == nullptr: the tuning database's config, else the heuristic's.
void launch_problem(Runtime& runtime, const Problem& problem, const Config* forced,
                    CUstream stream);
void launch_fp8(Runtime& runtime, const GemmFp8Args& args, const Config* forced,
                CUstream stream);
void launch_fp8_grouped(Runtime& runtime, const GroupedGemmFp8Args& args, const Config* forced,
                        CUstream stream);

// Compiles and loads the kernels of `kind` for every M in [1, max_m].
void warm_up(Runtime& runtime, Kind kind, int max_m, int n, int k);

}  // namespace kiln::gemm
