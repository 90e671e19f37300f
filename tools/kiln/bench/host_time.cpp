#include "bench/host_time.hpp"

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

#include "bench/harness.hpp"
#include "driver/cuda_driver.hpp"
#include "gemm/config.hpp"
#include "jit/nvrtc_compiler.hpp"

namespace kiln::bench {
namespace {

// The threads' rounds start together: each waits until every thread that has not dropped
// out has arrived.
class RoundStart {
 public:
  explicit RoundStart(int threads) : expected_(threads) {}
  void arrive_and_wait() {
    std::unique_lock lock(mutex_);
    const uint64_t round = round_;
    if (++arrived_ >= expected_) return next_round();
    released_.wait(lock, [&] { return round_ != round; });
  }
  // A thread that stops (an error) between rounds: the others wait for it no more.
  void drop() {
    const std::lock_guard lock(mutex_);
    --expected_;
    if (arrived_ > 0 && arrived_ >= expected_) next_round();
  }

 private:
  void next_round() {
    arrived_ = 0;
    ++round_;
    released_.notify_all();
  }
  std::mutex mutex_;
  std::condition_variable released_;
  int expected_, arrived_ = 0;
  uint64_t round_ = 0;
};

}  // namespace

double host_us_per_call(int threads, const MakeCall& make_call) {
  constexpr int kCalls = 200, kRounds = 7, kWarmUp = 10;
  const auto& cu = driver::get();
  CUcontext context = nullptr;
  KILN_CU(cu.cuCtxGetCurrent(&context));
  RoundStart round_start(threads);
  std::vector<double> medians(threads, 0.0);
  std::exception_ptr error;
  std::mutex error_mutex;
  auto body = [&](int t) {
    CUstream stream = nullptr;
    std::function<void()> call;  // released only after the stream has drained
    try {
      KILN_CU(cu.cuCtxSetCurrent(context));
      KILN_CU(cu.cuStreamCreate(&stream, CU_STREAM_NON_BLOCKING));
      call = make_call(stream);
      for (int i = 0; i < kWarmUp; ++i) call();
      std::vector<double> rounds;
      for (int r = 0; r < kRounds; ++r) {
        KILN_CU(cu.cuStreamSynchronize(stream));
        round_start.arrive_and_wait();
        const auto t0 = std::chrono::steady_clock::now();
        for (int i = 0; i < kCalls; ++i) call();
        rounds.push_back(
            std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0)
                .count() / kCalls);
      }
      KILN_CU(cu.cuStreamSynchronize(stream));
      medians[t] = median(rounds);
    } catch (...) {
      round_start.drop();
      const std::lock_guard lock(error_mutex);
      if (!error) error = std::current_exception();
    }
    if (stream) cu.cuStreamSynchronize(stream);
    call = nullptr;
    if (stream) cu.cuStreamDestroy(stream);
  };
  std::vector<std::thread> pool;
  try {
    for (int t = 0; t < threads; ++t) pool.emplace_back(body, t);
  } catch (...) {  // no thread: the started ones must not wait for the missing ones
    for (int t = int(pool.size()); t < threads; ++t) round_start.drop();
    for (auto& thread : pool) thread.join();
    throw;
  }
  for (auto& thread : pool) thread.join();
  if (error) std::rethrow_exception(error);
  double sum = 0;
  for (double m : medians) sum += m;
  return sum / threads;
}

double empty_launch_us(int threads) {
  const auto& cu = driver::get();
  const jit::CompileResult empty = jit::compile(
      {"namespace kiln { __global__ void empty_kernel(int, int) {} }", "kiln::empty_kernel",
       gemm::arch_name(gemm::KernelSpec{}.arch), "empty kernel"});
  CUlibrary library = nullptr;
  KILN_CU(cu.cuLibraryLoadData(&library, empty.cubin.data(), nullptr, nullptr, 0, nullptr,
                               nullptr, 0));
  try {
    CUkernel kernel = nullptr;
    KILN_CU(cu.cuLibraryGetKernel(&kernel, library, empty.lowered_name.c_str()));
    const double us = host_us_per_call(threads, [&](CUstream stream) {
      return std::function<void()>([kernel, stream, &cu] {
        CUlaunchConfig config{};
        config.gridDimX = config.gridDimY = config.gridDimZ = 1;
        config.blockDimX = 32, config.blockDimY = config.blockDimZ = 1;
        config.hStream = stream;
        int x = 0, y = 0;
        void* params[] = {&x, &y};
        KILN_CU(cu.cuLaunchKernelEx(&config, reinterpret_cast<CUfunction>(kernel), params,
                                    nullptr));
      });
    });
    cu.cuLibraryUnload(library);
    return us;
  } catch (...) {
    cu.cuLibraryUnload(library);
    throw;
  }
}

}  // namespace kiln::bench
