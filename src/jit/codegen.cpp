#include "jit/codegen.hpp"

#include <fmt/format.h>

#include "kiln/error.hpp"

namespace kiln::jit {

std::string wgmma_fp8_definition(int n) {
  if (n < 8 || n > 256 || n % 8 != 0)
    throw Error(ErrorCode::kInternal, fmt::format("wgmma FP8 has no n={} (8..256, step 8)", n));
  const int regs = n / 2;
  std::string operands, constraints;
  for (int i = 0; i < regs; ++i) {
    operands += fmt::format("{}%{}", i ? ", " : "", i);
    constraints += fmt::format("{}\"+f\"(d[{}])", i ? ", " : "", i);
  }
  return fmt::format(
      "namespace kiln::ptx {{\n"
      "template <>\n"
      "__device__ __forceinline__ void WgmmaFp8<{n}>::mma(u64 desc_a, u64 desc_b, float* d,\n"
      "                                                  bool scale_d) {{\n"
      "  asm volatile(\n"
      "      \"{{\\n.reg .pred p;\\nsetp.ne.b32 p, %{scale}, 0;\\n\"\n"
      "      \"wgmma.mma_async.sync.aligned.m64n{n}k32.f32.e4m3.e4m3 {{{ops}}}, %{da}, %{db}, p, "
      "1, 1;\\n}}\\n\"\n"
      "      : {cons}\n"
      "      : \"l\"(desc_a), \"l\"(desc_b), \"r\"(int(scale_d)));\n"
      "}}\n"
      "}}  // namespace kiln::ptx\n",
      fmt::arg("n", n), fmt::arg("scale", regs + 2), fmt::arg("ops", operands),
      fmt::arg("da", regs), fmt::arg("db", regs + 1), fmt::arg("cons", constraints));
}

}  // namespace kiln::jit
