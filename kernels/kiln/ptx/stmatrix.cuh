// stmatrix: a warp stores 8x8 matrices of 16-bit values from the MMA fragment layout.
#pragma once
#include "kiln/common.cuh"

namespace kiln::ptx {

// Four 8x8 b16 matrices: register i of lane t holds row t / 4, columns 2 (t % 4) and
// 2 (t % 4) + 1 of matrix i; lanes 8i..8i+7 give the shared-memory addresses of matrix i's
// rows (16 bytes each, 16-byte aligned).
__device__ __forceinline__ void stmatrix_x4(u32 row_addr, u32 m0, u32 m1, u32 m2, u32 m3) {
  asm volatile("stmatrix.sync.aligned.m8n8.x4.shared.b16 [%0], {%1, %2, %3, %4};" ::"r"(row_addr),
               "r"(m0), "r"(m1), "r"(m2), "r"(m3)
               : "memory");
}

}  // namespace kiln::ptx
