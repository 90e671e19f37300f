// NVRTC: one translation unit in, one cubin out, with the resource usage ptxas reports.
#pragma once
#include <string>
#include <vector>

namespace kiln::jit {

struct CompileRequest {
  std::string source;           // the generated translation unit
  std::string name_expression;  // the kernel instantiation, e.g. "kiln::sm90_fp8_gemm<...>"
  std::string arch;             // "sm_90a"
  std::string program_name;     // shown in diagnostics
};

struct CompileResult {
  std::string cubin;
  std::string lowered_name;
  std::string log;
  int registers = 0;
  int spill_bytes = 0;  // spill stores + spill loads
  int stack_bytes = 0;
  int static_smem_bytes = 0;
  double compile_ms = 0.0;
};

// The options every kernel is compiled with (arch excluded); part of each cache key.
const std::vector<std::string>& compile_options();
std::string nvrtc_version();  // "13.0"

// Throws Error(kCompileFailed) with the log and options in detail() when NVRTC fails.
CompileResult compile(const CompileRequest& request);

// Fills registers/spills/stack/smem from a ptxas -v log. Exposed for tests.
void parse_ptxas_log(const std::string& log, CompileResult* result);

}  // namespace kiln::jit
