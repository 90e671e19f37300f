#include "gemm/tma.hpp"

#include <cstring>

#include "driver/cuda_driver.hpp"

namespace kiln::gemm {
namespace {

// Everything a descriptor encodes except the base address.
struct MapKey {
  CUtensorMapDataType dtype;
  uint64_t inner, outer, row_stride_bytes;
  uint32_t box_inner, box_outer;
  CUtensorMapSwizzle swizzle;
  bool operator==(const MapKey& o) const {
    return dtype == o.dtype && inner == o.inner && outer == o.outer &&
           row_stride_bytes == o.row_stride_bytes && box_inner == o.box_inner &&
           box_outer == o.box_outer && swizzle == o.swizzle;
  }
};

}  // namespace

CUtensorMap make_tma_2d(const void* base, CUtensorMapDataType dtype, uint64_t inner,
                        uint64_t outer, uint64_t row_stride_bytes, uint32_t box_inner,
                        uint32_t box_outer, CUtensorMapSwizzle swizzle) {
  // A GEMM call encodes three descriptors; a serving loop repeats the same shapes with new
  // pointers. Re-encoding costs far more than swapping the address of a cached descriptor.
  struct Entry {
    MapKey key;
    CUtensorMap map;
  };
  constexpr int kEntries = 16;
  thread_local Entry cache[kEntries];
  thread_local int used = 0, next = 0;
  const MapKey key{dtype, inner, outer, row_stride_bytes, box_inner, box_outer, swizzle};
  const auto& cu = driver::get();
  for (int i = 0; i < used; ++i)
    if (cache[i].key == key) {
      CUtensorMap map = cache[i].map;
      KILN_CU(cu.cuTensorMapReplaceAddress(&map, const_cast<void*>(base)));
      return map;
    }
  CUtensorMap map{};
  const cuuint64_t dims[2] = {inner, outer};
  const cuuint64_t strides[1] = {row_stride_bytes};
  const cuuint32_t box[2] = {box_inner, box_outer};
  const cuuint32_t element_strides[2] = {1, 1};
  KILN_CU(cu.cuTensorMapEncodeTiled(&map, dtype, 2, const_cast<void*>(base), dims, strides, box,
                                    element_strides, CU_TENSOR_MAP_INTERLEAVE_NONE, swizzle,
                                    CU_TENSOR_MAP_L2_PROMOTION_L2_256B,
                                    CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE));
  cache[next] = {key, map};
  next = (next + 1) % kEntries;
  used = used < kEntries ? used + 1 : kEntries;
  return map;
}

}  // namespace kiln::gemm
