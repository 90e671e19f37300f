#include "gemm/tma.hpp"

#include "driver/cuda_driver.hpp"
#include "recent_table.hpp"

namespace kiln::gemm {

bool TmaKey::operator==(const TmaKey& o) const {
  return base == o.base && inner == o.inner && outer == o.outer &&
         row_stride_bytes == o.row_stride_bytes && box_inner == o.box_inner &&
         box_outer == o.box_outer && dtype == o.dtype && swizzle == o.swizzle;
}

uint64_t TmaKey::hash() const {
  return hash_fields({reinterpret_cast<uintptr_t>(base), inner, outer, row_stride_bytes,
                      box_inner, box_outer, uint64_t(dtype), uint64_t(swizzle)});
}

CUtensorMap make_tma_2d(const void* base, CUtensorMapDataType dtype, uint64_t inner,
                        uint64_t outer, uint64_t row_stride_bytes, uint32_t box_inner,
                        uint32_t box_outer, CUtensorMapSwizzle swizzle) {
  // A GEMM encodes three descriptors (~0.07 µs each on an H200's host), and a serving loop
  // passes the same activation buffers again and again (a model's weights differ per layer,
  // so B's descriptor is encoded anew there).
  thread_local RecentTable<TmaKey, CUtensorMap, 16> recent;
  const TmaKey key{base, inner, outer, row_stride_bytes, box_inner, box_outer, dtype, swizzle};
  if (const CUtensorMap* known = recent.find(key)) return *known;
  CUtensorMap map{};
  const cuuint64_t dims[2] = {inner, outer};
  const cuuint64_t strides[1] = {row_stride_bytes};
  const cuuint32_t box[2] = {box_inner, box_outer};
  const cuuint32_t element_strides[2] = {1, 1};
  KILN_CU(driver::get().cuTensorMapEncodeTiled(
      &map, dtype, 2, const_cast<void*>(base), dims, strides, box, element_strides,
      CU_TENSOR_MAP_INTERLEAVE_NONE, swizzle, CU_TENSOR_MAP_L2_PROMOTION_L2_256B,
      CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE));
  recent.store(key, map);  // only an encode that succeeded
  return map;
}

}  // namespace kiln::gemm
