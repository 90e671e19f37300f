#include "jit/nvrtc_compiler.hpp"

#include <fmt/format.h>
#include <nvrtc.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>

#include "jit/kernel_headers.hpp"
#include "kiln/error.hpp"

namespace kiln::jit {
namespace {

struct ProgramDeleter {
  void operator()(nvrtcProgram* program) const {
    nvrtcDestroyProgram(program);
    delete program;
  }
};
using Program = std::unique_ptr<nvrtcProgram, ProgramDeleter>;

void check(nvrtcResult result, const char* call) {
  if (result != NVRTC_SUCCESS)
    throw Error(ErrorCode::kCompileFailed,
                fmt::format("NVRTC call failed: {} ({})", call, nvrtcGetErrorString(result)));
}

std::string program_log(nvrtcProgram program) {
  size_t size = 0;
  if (nvrtcGetProgramLogSize(program, &size) != NVRTC_SUCCESS || size <= 1) return {};
  std::string log(size, '\0');
  nvrtcGetProgramLog(program, log.data());
  log.resize(size - 1);
  return log;
}

}  // namespace

const std::vector<std::string>& compile_options() {
  static const std::vector<std::string> options = [] {
    std::vector<std::string> o = {
        "-std=c++17", "-default-device", "-DNDEBUG", "--ptxas-options=-v",
        // Kernels include only what kiln embeds; no system or toolkit include paths.
        "-no-source-include",
        // Without the language features kiln's kernels do not use: the front end's ~60 ms
        // per kernel 17-20 ms shorter on a 2-core machine, and byte-identical cubins for
        // every heuristic configuration (docs/PERFORMANCE.md).
        "-minimal"};
    // Source lines in the cubin for profilers (Nsight Compute's source view); part of the
    // cache key like every other option.
    if (const char* v = std::getenv("KILN_LINEINFO"); v && *v && std::string(v) != "0")
      o.push_back("-lineinfo");
    return o;
  }();
  return options;
}

std::string nvrtc_version() {
  int major = 0, minor = 0;
  nvrtcVersion(&major, &minor);
  return fmt::format("{}.{}", major, minor);
}

void parse_ptxas_log(const std::string& log, CompileResult* result) {
  // ptxas prints, per entry function (after any advisory lines, which may also say
  // "registers"):
  //   "ptxas info    : Used 168 registers, used 16 barriers, 1024 bytes smem"
  //   "    0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads"
  // Each value is the integer right before its label on the line that has the label.
  auto value = [&](const char* label, const char* anchor) -> int {
    for (size_t at = log.find(label); at != std::string::npos; at = log.find(label, at + 1)) {
      const size_t newline = log.rfind('\n', at);
      const size_t line_start = newline == std::string::npos ? 0 : newline + 1;
      if (anchor && log.substr(line_start, at - line_start).find(anchor) == std::string::npos)
        continue;
      size_t digits = at;
      while (digits > line_start && std::isdigit(static_cast<unsigned char>(log[digits - 1])))
        --digits;
      if (digits < at) return std::stoi(log.substr(digits, at - digits));
    }
    return 0;
  };
  result->registers = value(" registers", "Used ");
  result->stack_bytes = value(" bytes stack frame", nullptr);
  result->spill_bytes =
      value(" bytes spill stores", nullptr) + value(" bytes spill loads", nullptr);
  result->static_smem_bytes = value(" bytes smem", "Used ");
}

CompileResult compile(const CompileRequest& request) {
  const auto start = std::chrono::steady_clock::now();
  const KernelHeaders& headers = kernel_headers();
  std::vector<const char*> header_texts, header_names;
  for (size_t i = 0; i < headers.names.size(); ++i) {
    header_texts.push_back(headers.texts[i].data());  // NUL-terminated (KernelHeaders)
    header_names.push_back(headers.names[i].data());
  }
  Program program(new nvrtcProgram{});
  check(nvrtcCreateProgram(program.get(), request.source.c_str(), request.program_name.c_str(),
                           static_cast<int>(header_texts.size()), header_texts.data(),
                           header_names.data()),
        "nvrtcCreateProgram");
  check(nvrtcAddNameExpression(*program, request.name_expression.c_str()),
        "nvrtcAddNameExpression");

  std::vector<std::string> options = compile_options();
  options.push_back("--gpu-architecture=" + request.arch);
  std::vector<const char*> option_ptrs;
  for (const auto& option : options) option_ptrs.push_back(option.c_str());

  const nvrtcResult compiled =
      nvrtcCompileProgram(*program, static_cast<int>(option_ptrs.size()), option_ptrs.data());
  CompileResult result;
  result.log = program_log(*program);
  if (compiled != NVRTC_SUCCESS) {
    std::string detail = fmt::format("options: {}\n{}", fmt::join(options, " "), result.log);
    throw Error(ErrorCode::kCompileFailed,
                fmt::format("NVRTC failed to compile {} ({})", request.program_name,
                            nvrtcGetErrorString(compiled)),
                detail);
  }
  const char* lowered = nullptr;
  check(nvrtcGetLoweredName(*program, request.name_expression.c_str(), &lowered),
        "nvrtcGetLoweredName");
  result.lowered_name = lowered;
  size_t size = 0;
  check(nvrtcGetCUBINSize(*program, &size), "nvrtcGetCUBINSize");
  result.cubin.resize(size);
  check(nvrtcGetCUBIN(*program, result.cubin.data()), "nvrtcGetCUBIN");
  parse_ptxas_log(result.log, &result);
  result.compile_ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  return result;
}

}  // namespace kiln::jit
