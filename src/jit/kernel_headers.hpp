// The kernel headers NVRTC compiles: embedded into the library at build time, or read from
// KILN_KERNEL_DIR (a kernels/ folder) when set, for kernel development without rebuilding.
#pragma once
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace kiln::jit {

struct EmbeddedHeader {
  const char* name;  // e.g. "kiln/ptx/wgmma.cuh"
  const char* text;
};
extern const EmbeddedHeader kEmbeddedHeaders[];
extern const int kNumEmbeddedHeaders;

struct KernelHeaders {
  // Each view ends where a NUL follows (NVRTC takes them as C strings): the embedded headers
  // in place, not copied (copying their ~68 KB into new heap memory took ~70 us of a
  // process's first call), or the strings in `owned`.
  std::vector<std::string_view> names;
  std::vector<std::string_view> texts;
  std::string digest;  // XXH3-128 hex over every (name, text), part of each cache key
  std::string origin;  // "embedded" or the KILN_KERNEL_DIR path
  std::vector<std::pair<std::string, std::string>> owned;  // KILN_KERNEL_DIR: (name, text)
};

// Read once per process.
const KernelHeaders& kernel_headers();

}  // namespace kiln::jit
