// The kernel headers NVRTC compiles: embedded into the library at build time, or read from
// KILN_KERNEL_DIR (a kernels/ folder) when set, for kernel development without rebuilding.
#pragma once
#include <string>
#include <vector>

namespace kiln::jit {

struct EmbeddedHeader {
  const char* name;  // e.g. "kiln/ptx/wgmma.cuh"
  const char* text;
};
extern const EmbeddedHeader kEmbeddedHeaders[];
extern const int kNumEmbeddedHeaders;

struct KernelHeaders {
  std::vector<std::string> names;
  std::vector<std::string> texts;
  std::string digest;  // XXH3-128 hex over every (name, text), part of each cache key
  std::string origin;  // "embedded" or the KILN_KERNEL_DIR path
};

// Read once per process.
const KernelHeaders& kernel_headers();

}  // namespace kiln::jit
