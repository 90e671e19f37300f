// What bench and tune share: an L2-flushing event timer and random FP8 problems on the GPU.
#pragma once
#include <cstdint>
#include <random>
#include <vector>

#include "driver/device_buffer.hpp"
#include "kiln/gemm.hpp"

namespace kiln::bench {

class Timer {
 public:
  explicit Timer(CUstream stream);
  ~Timer();
  Timer(const Timer&) = delete;
  Timer& operator=(const Timer&) = delete;

  // Median microseconds of fn over iters runs (after 3 warm-up runs), each preceded by a
  // 256 MiB memset that flushes L2; CUDA events around fn alone.
  template <typename F>
  double median_us(int iters, F&& fn) {
    for (int i = 0; i < 3; ++i) fn();
    std::vector<double> times;
    for (int i = 0; i < iters; ++i) {
      flush(i);
      start();
      fn();
      times.push_back(stop_us());
    }
    return median(times);
  }

 private:
  void flush(int salt);
  void start();
  double stop_us();
  static double median(std::vector<double>& values);
  CUstream stream_;
  driver::DeviceBuffer flush_;
  CUevent start_ = nullptr, stop_ = nullptr;
};

// A dense FP8 problem with random E4M3 data and random positive scales. SA is column-major
// (ld = M) and SB padded to a multiple of 4 K groups, the layouts cuBLASLt's block-scaled
// mode needs, so the same buffers serve kiln and cuBLASLt.
struct Fp8Buffers {
  Fp8Buffers(int m, int n, int k, std::mt19937_64& rng);
  GemmFp8Args args() const;
  int m, n, k;
  int64_t ld_sb;
  driver::DeviceBuffer a, b, sa, sb, d;
};

// A grouped problem: G groups of m rows each (contiguous: back to back, every group's start
// aligned; masked: m rows reserved and all valid), B [G, n, k], random data.
struct GroupedBuffers {
  GroupedBuffers(GroupedLayout layout, int groups, int m, int n, int k, std::mt19937_64& rng);
  GroupedGemmFp8Args args() const;
  GroupedLayout layout;
  int groups, m, n, k;
  int rows_per_group;  // m, or contiguous by row: m rounded up to grouped_m_alignment()
  driver::DeviceBuffer a, b, sa, sb, d, info;
};

std::vector<uint16_t> random_bf16(size_t count, std::mt19937_64& rng);
double rel_l2_bf16(const std::vector<uint16_t>& x, const std::vector<uint16_t>& ref);

// Device-to-device copy bandwidth (bytes read + written per second), in GB/s.
double copy_bandwidth_gbps(Timer& timer, CUstream stream);

}  // namespace kiln::bench
