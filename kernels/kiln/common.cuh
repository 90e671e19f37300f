// Types shared by kiln's device code. NVRTC compiles these headers with no include paths,
// so nothing from the host C++ library or the CUDA toolkit headers is used here.
#pragma once

namespace kiln {

using u8 = unsigned char;
using u16 = unsigned short;
using u32 = unsigned int;
using u64 = unsigned long long;
using i64 = long long;

// Layout-compatible with CUtensorMap from cuda.h (128 bytes, 64-byte aligned); passed by
// value as a __grid_constant__ kernel parameter.
struct alignas(64) TensorMap {
  u64 opaque[16];
};

// A compile-time bool as a value (std::bool_constant without the host library).
template <bool kValue>
struct Constant {
  static constexpr bool value = kValue;
};

// A compile-time int as a value.
template <int kValue>
struct IntConstant {
  static constexpr int value = kValue;
};

template <typename T>
__device__ __forceinline__ constexpr T ceil_div(T a, T b) {
  return (a + b - 1) / b;
}

__device__ __forceinline__ u32 smem_u32(const void* ptr) {
  return static_cast<u32>(__cvta_generic_to_shared(ptr));
}

}  // namespace kiln
