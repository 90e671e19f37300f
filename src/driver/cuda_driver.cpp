#include "driver/cuda_driver.hpp"

#include <dlfcn.h>
#include <fmt/format.h>

#include <mutex>

#include "kiln/error.hpp"

namespace kiln::driver {
namespace {

struct Loaded {
  Driver table;
  bool ok = false;
  std::string why;
};

const Loaded& loaded() {
  static const Loaded state = [] {
    Loaded s;
    void* lib = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
      s.why = fmt::format("libcuda.so.1 could not be opened ({}); a GPU driver is needed",
                          dlerror());
      return s;
    }
// The exported symbol each name maps to in cuda.h (cuMemAlloc -> cuMemAlloc_v2, ...), so each
// pointer has exactly the ABI of the prototype kiln was compiled against. (cuGetProcAddress
// is not used: for some names, e.g. cuCtxGetDevice, it returns a newer ABI than cuda.h's.)
#define KILN_STRINGIFY(x) #x
#define KILN_SYMBOL(x) KILN_STRINGIFY(x)
#define KILN_RESOLVE(name)                                                                \
  s.table.name = reinterpret_cast<decltype(s.table.name)>(dlsym(lib, KILN_SYMBOL(name))); \
  if (!s.table.name) {                                                                    \
    s.why = fmt::format("libcuda.so.1 has no {}: the driver is older than CUDA {}.{}",    \
                        KILN_SYMBOL(name), CUDA_VERSION / 1000, CUDA_VERSION % 1000 / 10); \
    return s;                                                                             \
  }
    KILN_DRIVER_FUNCTIONS(KILN_RESOLVE)
#undef KILN_RESOLVE
    const CUresult init = s.table.cuInit(0);
    if (init != CUDA_SUCCESS) {
      const char* name = nullptr;
      s.table.cuGetErrorName(init, &name);
      s.why = fmt::format("cuInit failed: {}", name ? name : "unknown error");
      return s;
    }
    s.ok = true;
    return s;
  }();
  return state;
}

}  // namespace

bool available() { return loaded().ok; }

const Driver& get() {
  const Loaded& s = loaded();
  if (!s.ok) throw Error(ErrorCode::kNoDevice, "no usable CUDA driver: " + s.why);
  return s.table;
}

int device_count() {
  if (!available()) return 0;
  int count = 0;
  if (get().cuDeviceGetCount(&count) != CUDA_SUCCESS) return 0;
  return count;
}

std::string error_text(CUresult result) {
  if (!available()) return fmt::format("CUresult {}", static_cast<int>(result));
  const char* name = nullptr;
  const char* text = nullptr;
  get().cuGetErrorName(result, &name);
  get().cuGetErrorString(result, &text);
  return fmt::format("{} ({})", name ? name : "?", text ? text : "?");
}

void check(CUresult result, const char* call) {
  if (result == CUDA_SUCCESS) return;
  throw Error(ErrorCode::kCudaError, fmt::format("CUDA call failed: {}", error_text(result)),
              call);
}

}  // namespace kiln::driver
