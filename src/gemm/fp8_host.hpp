// BF16 conversion and random FP8 E4M3 test data on the host. For tests, benchmarks
// and references; never on the launch path.
#pragma once
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

namespace kiln::gemm {

inline float bf16_to_float(uint16_t v) {
  const uint32_t bits = static_cast<uint32_t>(v) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

inline uint16_t float_to_bf16(float f) {  // round to nearest even
  uint32_t bits;
  std::memcpy(&bits, &f, 4);
  bits += 0x7FFF + ((bits >> 16) & 1);
  return static_cast<uint16_t>(bits >> 16);
}

// Random E4M3 values of magnitude 2^-3 .. 2^1 (random sign, exponent and mantissa): no
// zeros, NaNs or subnormals, so every element matters.
inline std::vector<uint8_t> random_e4m3(size_t count, std::mt19937_64& rng) {
  std::vector<uint8_t> out(count);
  for (size_t i = 0; i < count; i += 8) {
    uint64_t bits = rng();
    for (size_t j = i; j < std::min(count, i + 8); ++j, bits >>= 8) {
      const uint8_t b = static_cast<uint8_t>(bits);
      const uint8_t exponent = 4 + ((b >> 3) & 3);  // 2^-3 .. 2^0 times 1.m
      out[j] = static_cast<uint8_t>((b & 0x80) | (exponent << 3) | (b & 7));
    }
  }
  return out;
}

// Random positive scales in [lo, hi).
inline std::vector<float> random_scales(size_t count, std::mt19937_64& rng, float lo = 0.25f,
                                        float hi = 2.0f) {
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> out(count);
  for (auto& x : out) x = dist(rng);
  return out;
}

}  // namespace kiln::gemm
