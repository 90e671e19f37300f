// TMA descriptors (CUtensorMap) for the GEMM operands.
#pragma once
#include <cuda.h>

#include <cstdint>

namespace kiln::gemm {

// A 2D row-major tensor [outer, inner] with rows row_stride_bytes apart, loaded or stored in
// boxes of box_outer x box_inner elements. Out-of-bounds loads read zeros; stores are clipped.
// Each thread keeps its recent descriptors in 16 slots (TmaKey, RecentTable); a call whose
// every argument matches one of them makes no driver call.
CUtensorMap make_tma_2d(const void* base, CUtensorMapDataType dtype, uint64_t inner,
                        uint64_t outer, uint64_t row_stride_bytes, uint32_t box_inner,
                        uint32_t box_outer, CUtensorMapSwizzle swizzle);

// Every argument of make_tma_2d: a descriptor is a function of these alone.
struct TmaKey {
  const void* base = nullptr;
  uint64_t inner = 0, outer = 0, row_stride_bytes = 0;
  uint32_t box_inner = 0, box_outer = 0;
  CUtensorMapDataType dtype{};
  CUtensorMapSwizzle swizzle{};
  bool operator==(const TmaKey& o) const;
  uint64_t hash() const;
};

}  // namespace kiln::gemm
