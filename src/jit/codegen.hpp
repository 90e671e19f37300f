// Pieces of generated kernel source shared by the kernel families.
#pragma once
#include <string>

namespace kiln::jit {

// Defines kiln::ptx::WgmmaFp8<n>::mma: wgmma.mma_async m64n<n>k32 E4M3 x E4M3 -> F32 with
// its n/2 accumulator operands spelled out. Goes after kiln/ptx/wgmma.cuh, before the kernel.
std::string wgmma_fp8_definition(int n);

}  // namespace kiln::jit
