// TMA descriptors (CUtensorMap) for the GEMM operands.
#pragma once
#include <cuda.h>

#include <cstdint>

namespace kiln::gemm {

// A 2D row-major tensor [outer, inner] with rows row_stride_bytes apart, loaded or stored in
// boxes of box_outer x box_inner elements. Out-of-bounds loads read zeros; stores are clipped.
CUtensorMap make_tma_2d(const void* base, CUtensorMapDataType dtype, uint64_t inner,
                        uint64_t outer, uint64_t row_stride_bytes, uint32_t box_inner,
                        uint32_t box_outer, CUtensorMapSwizzle swizzle);

}  // namespace kiln::gemm
