// kiln::Error: the one exception type kiln throws.
#pragma once
#include <stdexcept>
#include <string>

#include "kiln/version.hpp"

namespace kiln {

enum class ErrorCode {
  kInvalidArgument = 1,  // a bad argument; the message names it and says what to change
  kUnsupported,          // valid but not supported (yet): shape, arch, layout
  kCompileFailed,        // NVRTC rejected a kernel; detail() holds the log and options
  kCudaError,            // a CUDA driver call failed; detail() names the call
  kNoDevice,             // libcuda or a GPU is needed and missing
  kNotWarmedUp,          // a kernel would have to be compiled inside CUDA graph capture
  kInternal,
};

KILN_API const char* to_string(ErrorCode code);

class KILN_API Error : public std::runtime_error {
 public:
  Error(ErrorCode code, const std::string& message, std::string detail = {})
      : std::runtime_error(message), code_(code), detail_(std::move(detail)) {}
  ErrorCode code() const noexcept { return code_; }
  const std::string& detail() const noexcept { return detail_; }

 private:
  ErrorCode code_;
  std::string detail_;
};

}  // namespace kiln
