// Host time of a warm call: what enqueueing one call costs the calling thread (docs/
// PERFORMANCE.md, Latency). Several threads may call at once, each on its own stream, as the
// threads of a serving runtime do; an empty kernel's launch, timed the same way, is the
// driver's floor on this host.
#pragma once
#include <cuda.h>

#include <functional>

namespace kiln::bench {

// Returns the call a thread repeats, made once per thread for its own stream; what the
// call needs (an output buffer) lives in the returned function.
using MakeCall = std::function<std::function<void()>(CUstream stream)>;

// Microseconds per call: each of `threads` threads (the current context made current on
// each) runs 7 rounds of 200 calls back to back, the rounds of all threads starting
// together after their streams drained; the median round of each thread, averaged over the
// threads. An error on any thread is rethrown here after all have stopped.
double host_us_per_call(int threads, const MakeCall& make_call);

// The same for an empty kernel with two int parameters, compiled with NVRTC and launched
// with cuLaunchKernelEx, one thread block of 32 threads.
double empty_launch_us(int threads);

}  // namespace kiln::bench
