// Argument checks of gemm_fp8_grouped: each bad argument gets its own error naming it.
#include <catch2/catch.hpp>

#include "driver/cuda_driver.hpp"
#include "gemm/check.hpp"
#include "kiln/error.hpp"
#include "kiln/gemm.hpp"
#include "kiln/kiln.h"

using Catch::Matchers::Contains;
using kiln::GroupedLayout;

namespace {

// Plausible 256-byte aligned device addresses; nothing is dereferenced by the checks.
const void* fake(uintptr_t i) { return reinterpret_cast<const void*>(0x7f0000000000ull + i * 0x100000); }

kiln::GroupedGemmFp8Args valid(GroupedLayout layout) {
  kiln::GroupedGemmFp8Args a;
  a.layout = layout, a.num_groups = 8, a.m = 4096, a.n = 4096, a.k = 7168;
  a.a = fake(1), a.b = fake(2), a.sa = static_cast<const float*>(fake(3));
  a.sb = static_cast<const float*>(fake(4)), a.d = const_cast<void*>(fake(5));
  a.group_info = static_cast<const int*>(fake(6));
  return a;
}

void require_rejected(const kiln::GroupedGemmFp8Args& a, const std::string& names) {
  try {
    kiln::gemm::check_grouped_args(a);
    FAIL("accepted; expected an error naming " << names);
  } catch (const kiln::Error& e) {
    CHECK(e.code() == kiln::ErrorCode::kInvalidArgument);
    CHECK_THAT(e.what(), Contains(names));
  }
}

}  // namespace

TEST_CASE("valid grouped arguments pass, with the layout's strides", "[unit][args][grouped]") {
  const auto masked = kiln::gemm::check_grouped_args(valid(GroupedLayout::kMasked));
  CHECK(masked.kind == kiln::gemm::Kind::kGroupedMasked);
  CHECK(masked.a_rows == 8 * 4096);                 // A is [G, m, k]
  CHECK(masked.sa_group_stride == 4096 * 56);       // row-major SA [G, m, 56]
  CHECK(masked.sb_group_stride == 32 * 56);         // SB [G, 32, 56]
  CHECK(masked.config_m == 8 * 4096);               // expected_m 0 means m
  auto x = valid(GroupedLayout::kMasked);
  x.expected_m = 64;
  CHECK(kiln::gemm::check_grouped_args(x).config_m == 8 * 64);
  x.sa_layout = kiln::ScaleLayout::kColMajor;
  CHECK(kiln::gemm::check_grouped_args(x).sa_group_stride == 56 * 4096);  // [G, 56, m]

  const auto by_row = kiln::gemm::check_grouped_args(valid(GroupedLayout::kContiguousByRow));
  CHECK(by_row.kind == kiln::gemm::Kind::kGroupedByRow);
  CHECK(by_row.a_rows == 4096);
  CHECK(by_row.sa_group_stride == 0);  // SA rows are absolute
  CHECK(kiln::gemm::check_grouped_args(valid(GroupedLayout::kContiguousByOffset)).kind ==
        kiln::gemm::Kind::kGroupedByOffset);
  CHECK(kiln::grouped_m_alignment() == 128);
}

TEST_CASE("each bad grouped argument is named", "[unit][args][grouped]") {
  for (auto layout : {GroupedLayout::kContiguousByRow, GroupedLayout::kContiguousByOffset,
                      GroupedLayout::kMasked}) {
    auto a = valid(layout);
    a.num_groups = 0;
    require_rejected(a, "num_groups=0");
    a = valid(layout), a.num_groups = 1025;
    require_rejected(a, "num_groups=1025");
    a = valid(layout), a.group_info = nullptr;
    require_rejected(a, "group_info is null");
    a = valid(layout), a.group_info = reinterpret_cast<const int*>(0x7f0000000002ull);
    require_rejected(a, "group_info=");
    a = valid(layout), a.n = 100;
    require_rejected(a, "n=100");
    a = valid(layout), a.k = 7000;
    require_rejected(a, "k=7000");
    a = valid(layout), a.b = nullptr;
    require_rejected(a, "b is null");
    a = valid(layout), a.ld_sb = 3;
    require_rejected(a, "ld_sb=3");
    a = valid(layout), a.expected_m = -1;
    require_rejected(a, "expected_m=-1");
  }
  auto a = valid(GroupedLayout::kMasked);
  a.expected_m = 5000;  // more than the rows reserved per group
  require_rejected(a, "expected_m=5000");
  a = valid(GroupedLayout::kContiguousByRow);
  a.expected_m = 64;  // only meaningful for the masked layout
  require_rejected(a, "expected_m");
  a = valid(GroupedLayout::kMasked);
  a.layout = static_cast<GroupedLayout>(7);
  require_rejected(a, "layout=7");
}

TEST_CASE("m = 0 grouped is a no-op that reads nothing", "[unit][args][grouped]") {
  kiln::GroupedGemmFp8Args a;
  a.layout = GroupedLayout::kMasked, a.num_groups = 4, a.m = 0, a.n = 256, a.k = 256;
  CHECK(kiln::gemm::check_grouped_args(a).empty());
  CHECK_NOTHROW(kiln::gemm_fp8_grouped(a, nullptr));
}

TEST_CASE("the C API takes grouped GEMMs, with status codes", "[unit][args][grouped]") {
  const auto cpp = valid(GroupedLayout::kMasked);
  kiln_grouped_gemm_fp8_args c{};
  c.layout = KILN_GROUPED_MASKED, c.num_groups = cpp.num_groups, c.m = cpp.m, c.n = cpp.n;
  c.k = cpp.k, c.a = cpp.a, c.b = cpp.b, c.sa = cpp.sa, c.sb = cpp.sb, c.d = cpp.d;
  c.group_info = cpp.group_info;
  CHECK(kiln_grouped_m_alignment() == 128);

  auto bad = c;
  bad.num_groups = 0;
  CHECK(kiln_gemm_fp8_grouped(&bad, nullptr) == KILN_ERROR_INVALID_ARGUMENT);
  CHECK_THAT(kiln_last_error(), Contains("num_groups=0"));
  bad = c, bad.layout = static_cast<kiln_grouped_layout>(9);
  CHECK(kiln_gemm_fp8_grouped(&bad, nullptr) == KILN_ERROR_INVALID_ARGUMENT);
  CHECK_THAT(kiln_last_error(), Contains("layout=9"));
  bad = c, bad.group_info = nullptr;
  CHECK(kiln_gemm_fp8_grouped(&bad, nullptr) == KILN_ERROR_INVALID_ARGUMENT);
  CHECK_THAT(kiln_last_error(), Contains("group_info is null"));
  CHECK(kiln_gemm_fp8_grouped(nullptr, nullptr) == KILN_ERROR_INVALID_ARGUMENT);
  CHECK_THAT(kiln_last_error(), Contains("args is null"));
  CHECK(kiln_warm_up_gemm_fp8_grouped(KILN_GROUPED_MASKED, 0, 4096, 7168) ==
        KILN_ERROR_INVALID_ARGUMENT);
  CHECK_THAT(kiln_last_error(), Contains("max_m=0"));

  auto empty = c;
  empty.m = 0;  // nothing to do: no device needed
  CHECK(kiln_gemm_fp8_grouped(&empty, nullptr) == KILN_OK);
  // Valid arguments on a machine without a GPU fail cleanly, not with a crash.
  if (!kiln::driver::available())
    CHECK(kiln_gemm_fp8_grouped(&c, nullptr) == KILN_ERROR_NO_DEVICE);
}
