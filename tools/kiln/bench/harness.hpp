// What bench and tune share: an event timer that starts every run with a cold L2, and random
// FP8 problems on the GPU.
#pragma once
#include <algorithm>
#include <cstdint>
#include <random>
#include <vector>

#include "driver/device_buffer.hpp"
#include "kiln/gemm.hpp"

namespace kiln::bench {

// How a run starts without the previous runs' data in L2.
enum class L2Mode {
  kRotate,  // each run reads its own copy of the inputs; all copies together are >= 3x L2
  kFlush,   // one copy; a 256 MiB memset before each run (its dirty lines are written back
            // to memory during the timed run, which slows memory-bound kernels)
};

// The median of values (reordered in place; not empty).
double median(std::vector<double>& values);

class Timer {
 public:
  Timer(CUstream stream, L2Mode mode);
  ~Timer();
  Timer(const Timer&) = delete;
  Timer& operator=(const Timer&) = delete;

  // How many copies of a problem whose inputs take bytes_per_set to rotate through: at least
  // 2, and together at least 3x the L2 size (1 when flushing).
  int sets(size_t bytes_per_set) const;

  // Median microseconds of fn(run) over iters runs, after 3 warm-up runs; fn(run) should use
  // input copy run % sets. CUDA events around each run alone. The runs are queued behind a
  // gate (the stream waits on a memory value) and released together, so that the GPU never
  // waits for the host between runs and the events time the kernel, not the launch.
  template <typename F>
  double median_us(int iters, F&& fn) {
    for (int i = 0; i < 3; ++i) fn(i);
    std::vector<double> times;
    for (int first = 0; first < iters; first += kRunsPerGate) {
      const int runs = std::min(kRunsPerGate, iters - first);
      behind_gate([&] {
        for (int i = 0; i < runs; ++i) {
          if (mode_ == L2Mode::kFlush) flush(first + i);
          record(start_[i]);
          fn(first + i);
          record(stop_[i]);
        }
      });
      for (int i = 0; i < runs; ++i) times.push_back(elapsed_us(start_[i], stop_[i]));
    }
    return median(times);
  }

  // Microseconds per run of fn(run) run back to back, as a serving loop or a CUDA graph runs
  // kernels: kRunsPerGate runs between one pair of events (median over the rounds that make
  // up iters runs, at least 3). Rotate mode only: each run still reads its own input copy.
  template <typename F>
  double chain_us(int iters, F&& fn) {
    for (int i = 0; i < 3; ++i) fn(i);
    std::vector<double> times;
    for (int first = 0; first < std::max(iters, 3 * kRunsPerGate); first += kRunsPerGate) {
      behind_gate([&] {
        record(start_[0]);
        for (int i = 0; i < kRunsPerGate; ++i) fn(first + i);
        record(stop_[0]);
      });
      times.push_back(elapsed_us(start_[0], stop_[0]) / kRunsPerGate);
    }
    return median(times);
  }

 private:
  // Queues enqueue()'s work behind the closed gate, then releases it all at once (also when
  // enqueue throws: the stream is never left waiting).
  template <typename F>
  void behind_gate(F&& enqueue) {
    close_gate();
    try {
      enqueue();
    } catch (...) {
      open_gate();
      throw;
    }
    open_gate();
  }
  // Few enough that the queued work never fills the driver's command queue, which would
  // block the host behind the closed gate.
  static constexpr int kRunsPerGate = 16;
  void flush(int salt);
  void record(CUevent event);
  void close_gate();
  void open_gate();
  double elapsed_us(CUevent start, CUevent stop);
  CUstream stream_;
  CUstream gate_stream_ = nullptr;
  L2Mode mode_;
  size_t l2_bytes_ = 0;
  driver::DeviceBuffer flush_, gate_;
  uint32_t gate_value_ = 0;
  CUevent start_[kRunsPerGate] = {}, stop_[kRunsPerGate] = {};
};

// Copies of a problem's inputs for Timer's rotation: the first holds random data, the others
// are copied from it on the GPU.
struct InputSet {
  driver::DeviceBuffer a, b, sa, sb;
};
std::vector<InputSet> make_input_sets(int count, size_t a_bytes, size_t b_bytes, size_t sa_bytes,
                                      size_t sb_bytes, std::mt19937_64& rng);

// A dense FP8 problem with random E4M3 data and random positive scales, in `sets` copies
// (args(run) uses copy run % sets). SA is column-major (ld = M) and SB padded to a multiple of
// 4 K groups, the layouts cuBLASLt's block-scaled mode needs, so the same buffers serve kiln
// and cuBLASLt. All copies write the one D.
struct Fp8Buffers {
  Fp8Buffers(int m, int n, int k, const Timer& timer, std::mt19937_64& rng);
  GemmFp8Args args(int run = 0) const;
  int m, n, k;
  int64_t ld_sb;
  std::vector<InputSet> sets;
  driver::DeviceBuffer d;
};

// A grouped problem: G groups of m rows each (contiguous: back to back, every group's start
// aligned; masked: m rows reserved and all valid), B [G, n, k], random data.
struct GroupedBuffers {
  GroupedBuffers(GroupedLayout layout, int groups, int m, int n, int k, const Timer& timer,
                 std::mt19937_64& rng);
  GroupedGemmFp8Args args(int run = 0) const;
  GroupedLayout layout;
  int groups, m, n, k;
  int rows_per_group;  // m, or contiguous by row: m rounded up to grouped_m_alignment()
  std::vector<InputSet> sets;
  driver::DeviceBuffer d, info;
};

std::vector<uint16_t> random_bf16(size_t count, std::mt19937_64& rng);
double rel_l2_bf16(const std::vector<uint16_t>& x, const std::vector<uint16_t>& ref);

// Device-to-device copy bandwidth (bytes read + written per second), in GB/s.
double copy_bandwidth_gbps(Timer& timer, CUstream stream);

}  // namespace kiln::bench
