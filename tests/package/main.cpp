// Links against an installed libkiln.so through find_package(kiln): the public headers
// compile on their own, the exported symbols resolve, exceptions cross the library boundary.
// No GPU: m=0 is a no-op, and bad shapes are rejected before any driver call.
#include <kiln/kiln.h>

#include <cstdio>
#include <cstring>
#include <string>

#include <kiln/kiln.hpp>

namespace {

int failures = 0;

void expect(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "FAILED: %s\n", what);
    ++failures;
  }
}

}  // namespace

int main() {
  // C++ API: m = 0 with no pointers does nothing and needs no device.
  kiln::GemmFp8Args args;
  args.m = 0, args.n = 2112, args.k = 7168;
  try {
    kiln::gemm_fp8(args, nullptr);
  } catch (const kiln::Error& e) {
    std::fprintf(stderr, "gemm_fp8(m=0): %s\n", e.what());
    expect(false, "gemm_fp8 with m=0 is a no-op");
  }

  // A bad argument arrives as kiln::Error (its typeinfo is exported from the library).
  args.n = 100;
  bool caught = false;
  try {
    kiln::gemm_fp8(args, nullptr);
  } catch (const kiln::Error& e) {
    caught = e.code() == kiln::ErrorCode::kInvalidArgument &&
             std::string(e.what()).rfind("n=100", 0) == 0;
  }
  expect(caught, "gemm_fp8(n=100) throws kiln::Error(kInvalidArgument) naming n");

  // Grouped GEMMs through the installed library: m = 0 is a no-op; the alignment is exported.
  kiln::GroupedGemmFp8Args grouped;
  grouped.layout = kiln::GroupedLayout::kMasked;
  grouped.num_groups = 4, grouped.m = 0, grouped.n = 4096, grouped.k = 7168;
  try {
    kiln::gemm_fp8_grouped(grouped, nullptr);
  } catch (const kiln::Error& e) {
    std::fprintf(stderr, "gemm_fp8_grouped(m=0): %s\n", e.what());
    expect(false, "gemm_fp8_grouped with m=0 is a no-op");
  }
  expect(kiln::grouped_m_alignment() == 128, "grouped_m_alignment() == 128");
  kiln_grouped_gemm_fp8_args cg{};
  cg.layout = KILN_GROUPED_MASKED, cg.num_groups = 4, cg.m = 0, cg.n = 4096, cg.k = 7168;
  expect(kiln_gemm_fp8_grouped(&cg, nullptr) == KILN_OK, "kiln_gemm_fp8_grouped(m=0) == KILN_OK");
  cg.num_groups = 0;
  expect(kiln_gemm_fp8_grouped(&cg, nullptr) == KILN_ERROR_INVALID_ARGUMENT,
         "kiln_gemm_fp8_grouped(num_groups=0) is an invalid argument");

  // The C API.
  kiln_gemm_fp8_args c{};
  c.m = 0, c.n = 2112, c.k = 7168;
  expect(kiln_gemm_fp8(&c, nullptr) == KILN_OK, "kiln_gemm_fp8(m=0) == KILN_OK");
  c.k = 100;
  expect(kiln_gemm_fp8(&c, nullptr) == KILN_ERROR_INVALID_ARGUMENT,
         "kiln_gemm_fp8(k=100) == KILN_ERROR_INVALID_ARGUMENT");
  expect(std::strncmp(kiln_last_error(), "k=100", 5) == 0, "kiln_last_error() names k");

  // Versions: the header, the library and the package config agree.
  expect(std::strcmp(kiln_version(), KILN_VERSION_STRING) == 0,
         "kiln_version() == KILN_VERSION_STRING");
  expect(std::strcmp(KILN_VERSION_STRING, KILN_EXPECTED_VERSION) == 0,
         "KILN_VERSION_STRING == the package version");

  std::printf("kiln %s (header %s)\n", kiln_version(), KILN_VERSION_STRING);
  if (failures) std::fprintf(stderr, "%d check(s) failed\n", failures);
  return failures ? 1 : 0;
}
