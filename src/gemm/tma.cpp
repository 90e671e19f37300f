#include "gemm/tma.hpp"

#include <cstddef>

#include "driver/cuda_driver.hpp"

namespace kiln::gemm {
namespace {

// Every argument of make_tma_2d: a descriptor is a function of these alone.
struct TmaKey {
  const void* base;
  uint64_t inner, outer, row_stride_bytes;
  uint32_t box_inner, box_outer;
  CUtensorMapDataType dtype;
  CUtensorMapSwizzle swizzle;
  bool operator==(const TmaKey& o) const {
    return base == o.base && inner == o.inner && outer == o.outer &&
           row_stride_bytes == o.row_stride_bytes && box_inner == o.box_inner &&
           box_outer == o.box_outer && dtype == o.dtype && swizzle == o.swizzle;
  }
  // One of 16 slots: the top bits of a mixed hash, so that keys differing in any one
  // argument spread over the slots.
  size_t slot() const {
    uint64_t h = reinterpret_cast<uintptr_t>(base) ^ (inner << 17) ^ (outer << 31) ^
                 (row_stride_bytes << 7) ^ (uint64_t(box_inner) << 45) ^
                 (uint64_t(box_outer) << 53) ^ uint64_t(dtype) ^ (uint64_t(swizzle) << 4);
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    return size_t(h >> 60);
  }
};

CUtensorMap encode(const TmaKey& k) {
  CUtensorMap map{};
  const cuuint64_t dims[2] = {k.inner, k.outer};
  const cuuint64_t strides[1] = {k.row_stride_bytes};
  const cuuint32_t box[2] = {k.box_inner, k.box_outer};
  const cuuint32_t element_strides[2] = {1, 1};
  KILN_CU(driver::get().cuTensorMapEncodeTiled(
      &map, k.dtype, 2, const_cast<void*>(k.base), dims, strides, box, element_strides,
      CU_TENSOR_MAP_INTERLEAVE_NONE, k.swizzle, CU_TENSOR_MAP_L2_PROMOTION_L2_256B,
      CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE));
  return map;
}

}  // namespace

CUtensorMap make_tma_2d(const void* base, CUtensorMapDataType dtype, uint64_t inner,
                        uint64_t outer, uint64_t row_stride_bytes, uint32_t box_inner,
                        uint32_t box_outer, CUtensorMapSwizzle swizzle) {
  // A GEMM encodes three descriptors (~0.07 µs each), and a serving loop passes the same
  // buffers again and again: each thread keeps its recent descriptors in a direct-mapped
  // table keyed by every argument, and a hit makes no driver call.
  struct Slot {
    bool valid = false;
    TmaKey key{};
    CUtensorMap map{};
  };
  thread_local Slot recent[16];  // TmaKey::slot
  const TmaKey key{base, inner, outer, row_stride_bytes, box_inner, box_outer, dtype, swizzle};
  Slot& slot = recent[key.slot()];
  if (slot.valid && slot.key == key) return slot.map;
  const CUtensorMap map = encode(key);  // throws before anything is kept
  slot = {true, key, map};
  return map;
}

}  // namespace kiln::gemm
