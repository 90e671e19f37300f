// Argument checks of gemm_fp8 (gemm/check.cpp) and of the C API: each bad argument gets its
// own kiln::Error whose message starts with the argument's name. No GPU is needed: every
// check runs before the driver is touched, and the pointers are fake (never dereferenced).
#include <catch2/catch.hpp>

#include <cstdint>
#include <functional>
#include <string>

#include "gemm/check.hpp"
#include "kiln/error.hpp"
#include "kiln/gemm.hpp"
#include "kiln/kiln.h"

using kiln::ErrorCode;
using kiln::GemmFp8Args;
using kiln::ScaleLayout;
using Catch::Matchers::Contains;
using Catch::Matchers::StartsWith;

namespace {

// Fake device addresses: non-null, 256-byte aligned, distinct.
template <typename T = void>
T* fake_ptr(uintptr_t slot) {
  return reinterpret_cast<T*>(uintptr_t{0x7f0000000000} + slot * 0x100000);
}

// A fully valid call for m=64, n=2112, k=7168 (a DeepSeek-V3 shape), default strides.
GemmFp8Args valid_args() {
  GemmFp8Args a;
  a.m = 64, a.n = 2112, a.k = 7168;
  a.a = fake_ptr(1);
  a.b = fake_ptr(2);
  a.sa = fake_ptr<const float>(3);
  a.sb = fake_ptr<const float>(4);
  a.d = fake_ptr(5);
  return a;
}

struct Failure {
  ErrorCode code;
  std::string message;
};

// Runs check_fp8_args, requiring that it throws kiln::Error.
Failure check_failure(const GemmFp8Args& args) {
  try {
    kiln::gemm::check_fp8_args(args);
  } catch (const kiln::Error& e) {
    return {e.code(), e.what()};
  }
  FAIL("check_fp8_args accepted the arguments");
  return {};
}

// The public entry point must give the same error as the check alone (it checks first).
void require_rejected(const GemmFp8Args& args, const std::string& prefix,
                      ErrorCode code = ErrorCode::kInvalidArgument) {
  const Failure f = check_failure(args);
  INFO("message: " << f.message);
  CHECK(f.code == code);
  CHECK_THAT(f.message, StartsWith(prefix));
  try {
    kiln::gemm_fp8(args, nullptr);
    FAIL("gemm_fp8 accepted the arguments");
  } catch (const kiln::Error& e) {
    CHECK(e.code() == code);
    CHECK(std::string(e.what()) == f.message);
  }
}

kiln_gemm_fp8_args to_c(const GemmFp8Args& a) {
  kiln_gemm_fp8_args c{};
  c.m = a.m, c.n = a.n, c.k = a.k;
  c.a = a.a, c.lda = a.lda, c.b = a.b, c.ldb = a.ldb;
  c.sa = a.sa, c.sa_layout = static_cast<kiln_scale_layout>(a.sa_layout), c.ld_sa = a.ld_sa;
  c.sb = a.sb, c.ld_sb = a.ld_sb, c.d = a.d, c.ldd = a.ldd;
  return c;
}

}  // namespace

TEST_CASE("the baseline arguments pass the checks", "[unit][args]") {
  // Every rejection test below changes one field of these; they must be valid on their own.
  REQUIRE_NOTHROW(kiln::gemm::check_fp8_args(valid_args()));
  GemmFp8Args col = valid_args();
  col.sa_layout = ScaleLayout::kColMajor;
  REQUIRE_NOTHROW(kiln::gemm::check_fp8_args(col));
}

TEST_CASE("bad shapes are rejected, each naming its argument", "[unit][args]") {
  GemmFp8Args a = valid_args();
  SECTION("negative m") {
    a.m = -1;
    require_rejected(a, "m=-1 ");
  }
  SECTION("n = 0") {
    a.n = 0;
    require_rejected(a, "n=0 ");
  }
  SECTION("negative n") {
    a.n = -8;
    require_rejected(a, "n=-8 ");
  }
  SECTION("k = 0") {
    a.k = 0;
    require_rejected(a, "k=0 ");
  }
  SECTION("negative k") {
    a.k = -16;
    require_rejected(a, "k=-16 ");
  }
  SECTION("n not a multiple of 8") {
    a.n = 2116;
    require_rejected(a, "n=2116 ");
    CHECK_THAT(check_failure(a).message, Contains("pad N to 2120"));
  }
  SECTION("k not a multiple of 16") {
    a.k = 7160;
    require_rejected(a, "k=7160 ");
    CHECK_THAT(check_failure(a).message, Contains("7168"));
  }
  SECTION("m beyond 2^30 is unsupported, not invalid") {
    a.m = (1 << 30) + 1;
    require_rejected(a, "m=1073741825 ", ErrorCode::kUnsupported);
  }
}

TEST_CASE("bad leading dimensions are rejected, each naming its argument", "[unit][args]") {
  GemmFp8Args a = valid_args();
  SECTION("lda < k") {
    a.lda = 7152;
    require_rejected(a, "lda=7152 ");
  }
  SECTION("lda not a multiple of 16") {
    a.lda = 7176;
    require_rejected(a, "lda=7176 ");
  }
  SECTION("ldb < k") {
    a.ldb = 16;
    require_rejected(a, "ldb=16 ");
  }
  SECTION("ldb not a multiple of 16") {
    a.ldb = 7170;
    require_rejected(a, "ldb=7170 ");
  }
  SECTION("ldd < n") {
    a.ldd = 2104;
    require_rejected(a, "ldd=2104 ");
  }
  SECTION("ldd not a multiple of 8") {
    a.ldd = 2116;
    require_rejected(a, "ldd=2116 ");
  }
  SECTION("ld_sb < ceil(k/128)") {
    a.ld_sb = 55;  // k=7168 has 56 groups
    require_rejected(a, "ld_sb=55 ");
    CHECK_THAT(check_failure(a).message, Contains("ceil(k/128)=56"));
  }
  SECTION("row-major ld_sa < ceil(k/128)") {
    a.sa_layout = ScaleLayout::kRowMajor;
    a.ld_sa = 55;
    require_rejected(a, "ld_sa=55 ");
    CHECK_THAT(check_failure(a).message, Contains("kRowMajor"));
  }
  SECTION("column-major ld_sa < m") {
    a.sa_layout = ScaleLayout::kColMajor;
    a.ld_sa = 63;  // m=64; 63 >= 56 groups, so only the column-major rule can reject it
    require_rejected(a, "ld_sa=63 ");
    CHECK_THAT(check_failure(a).message, Contains("kColMajor"));
  }
  SECTION("sa_layout that is not a ScaleLayout") {
    a.sa_layout = static_cast<ScaleLayout>(7);
    require_rejected(a, "sa_layout=7 ");
  }
}

TEST_CASE("null pointers are rejected, each naming its argument", "[unit][args]") {
  GemmFp8Args a = valid_args();
  SECTION("a") {
    a.a = nullptr;
    require_rejected(a, "a is null");
  }
  SECTION("b") {
    a.b = nullptr;
    require_rejected(a, "b is null");
  }
  SECTION("sa") {
    a.sa = nullptr;
    require_rejected(a, "sa is null");
  }
  SECTION("sb") {
    a.sb = nullptr;
    require_rejected(a, "sb is null");
  }
  SECTION("d") {
    a.d = nullptr;
    require_rejected(a, "d is null");
  }
}

TEST_CASE("misaligned pointers are rejected, each naming its argument", "[unit][args]") {
  GemmFp8Args a = valid_args();
  auto shift = [](const void* p, int bytes) {
    return reinterpret_cast<const char*>(p) + bytes;
  };
  SECTION("a off by 8 bytes") {
    a.a = shift(a.a, 8);
    require_rejected(a, "a=");
    CHECK_THAT(check_failure(a).message, Contains("16-byte aligned"));
  }
  SECTION("b off by 1 byte") {
    a.b = shift(a.b, 1);
    require_rejected(a, "b=");
    CHECK_THAT(check_failure(a).message, Contains("16-byte aligned"));
  }
  SECTION("d off by 2 bytes (one BF16)") {
    a.d = const_cast<char*>(shift(a.d, 2));
    require_rejected(a, "d=");
    CHECK_THAT(check_failure(a).message, Contains("16-byte aligned"));
  }
  SECTION("sa off by 2 bytes") {
    a.sa = reinterpret_cast<const float*>(shift(a.sa, 2));
    require_rejected(a, "sa=");
    CHECK_THAT(check_failure(a).message, Contains("4-byte aligned"));
  }
  SECTION("sb off by 1 byte") {
    a.sb = reinterpret_cast<const float*>(shift(a.sb, 1));
    require_rejected(a, "sb=");
    CHECK_THAT(check_failure(a).message, Contains("4-byte aligned"));
  }
  SECTION("scales need only 4-byte alignment") {
    a.sa = reinterpret_cast<const float*>(shift(a.sa, 4));
    a.sb = reinterpret_cast<const float*>(shift(a.sb, 12));
    REQUIRE_NOTHROW(kiln::gemm::check_fp8_args(a));
  }
}

TEST_CASE("m = 0 is a no-op that reads no pointer", "[unit][args]") {
  GemmFp8Args a;
  a.m = 0, a.n = 128, a.k = 128;  // every pointer null
  const kiln::gemm::Problem r = kiln::gemm::check_fp8_args(a);
  CHECK(r.m == 0);
  // No GPU here: returning normally proves that m=0 never reaches the driver.
  REQUIRE_NOTHROW(kiln::gemm_fp8(a, nullptr));
  a.sa_layout = ScaleLayout::kColMajor;
  REQUIRE_NOTHROW(kiln::gemm_fp8(a, nullptr));

  // The shape is still checked when m = 0.
  a.n = 100;
  require_rejected(a, "n=100 ");
}

TEST_CASE("a fully valid call gets as far as needing a GPU", "[unit][args]") {
  // This machine has no libcuda: the first thing after the checks is the device query.
  for (ScaleLayout layout : {ScaleLayout::kRowMajor, ScaleLayout::kColMajor}) {
    GemmFp8Args a = valid_args();
    a.sa_layout = layout;
    try {
      kiln::gemm_fp8(a, nullptr);
      FAIL("gemm_fp8 returned without a GPU");
    } catch (const kiln::Error& e) {
      INFO(e.what());
      CHECK(e.code() == ErrorCode::kNoDevice);
    }
  }
}

TEST_CASE("defaults of leading dimensions and scale strides are resolved", "[unit][args]") {
  SECTION("zeros become the packed sizes, row-major scales") {
    GemmFp8Args a = valid_args();  // m=64 n=2112 k=7168, all ld* = 0
    const auto r = kiln::gemm::check_fp8_args(a);
    CHECK(r.lda == 7168);
    CHECK(r.ldb == 7168);
    CHECK(r.ldd == 2112);
    CHECK(r.ld_sb == 56);
    CHECK(r.sa_stride_m == 56);
    CHECK(r.sa_stride_k == 1);
  }
  SECTION("column-major scales default to ld_sa = m") {
    GemmFp8Args a = valid_args();
    a.sa_layout = ScaleLayout::kColMajor;
    const auto r = kiln::gemm::check_fp8_args(a);
    CHECK(r.sa_stride_m == 1);
    CHECK(r.sa_stride_k == 64);
  }
  SECTION("ceil(k/128) rounds up") {
    GemmFp8Args a = valid_args();
    a.k = 208;  // 2 groups: 128 + 80
    const auto r = kiln::gemm::check_fp8_args(a);
    CHECK(r.sa_stride_m == 2);
    CHECK(r.ld_sb == 2);
    CHECK(r.lda == 208);
  }
  SECTION("explicit leading dimensions are kept") {
    GemmFp8Args a = valid_args();
    a.lda = 7200, a.ldb = 8192, a.ldd = 2176, a.ld_sb = 60;
    a.sa_layout = ScaleLayout::kColMajor, a.ld_sa = 128;
    const auto r = kiln::gemm::check_fp8_args(a);
    CHECK(r.lda == 7200);
    CHECK(r.ldb == 8192);
    CHECK(r.ldd == 2176);
    CHECK(r.ld_sb == 60);
    CHECK(r.sa_stride_m == 1);
    CHECK(r.sa_stride_k == 128);
    a.sa_layout = ScaleLayout::kRowMajor, a.ld_sa = 64;
    const auto row = kiln::gemm::check_fp8_args(a);
    CHECK(row.sa_stride_m == 64);
    CHECK(row.sa_stride_k == 1);
  }
  SECTION("the input is not modified") {
    const GemmFp8Args a = valid_args();
    const auto r = kiln::gemm::check_fp8_args(a);
    CHECK(a.lda == 0);
    CHECK(r.a == a.a);
    CHECK(r.d == a.d);
  }
}

TEST_CASE("the C API returns status codes and names the bad argument", "[unit][args][c_api]") {
  SECTION("null args") {
    CHECK(kiln_gemm_fp8(nullptr, nullptr) == KILN_ERROR_INVALID_ARGUMENT);
    CHECK_THAT(std::string(kiln_last_error()), Contains("args is null"));
  }
  SECTION("each bad argument") {
    struct Case {
      const char* prefix;
      std::function<void(kiln_gemm_fp8_args&)> spoil;
    };
    const Case cases[] = {
        {"m=-4 ", [](kiln_gemm_fp8_args& c) { c.m = -4; }},
        {"n=12 ", [](kiln_gemm_fp8_args& c) { c.n = 12; }},
        {"k=24 ", [](kiln_gemm_fp8_args& c) { c.k = 24; }},
        {"lda=8 ", [](kiln_gemm_fp8_args& c) { c.lda = 8; }},
        {"ldb=7100 ", [](kiln_gemm_fp8_args& c) { c.ldb = 7100; }},
        {"ldd=2113 ", [](kiln_gemm_fp8_args& c) { c.ldd = 2113; }},
        {"ld_sb=1 ", [](kiln_gemm_fp8_args& c) { c.ld_sb = 1; }},
        {"ld_sa=3 ", [](kiln_gemm_fp8_args& c) { c.ld_sa = 3; }},
        {"sa_layout=5 ", [](kiln_gemm_fp8_args& c) { c.sa_layout = kiln_scale_layout(5); }},
        {"a is null", [](kiln_gemm_fp8_args& c) { c.a = nullptr; }},
        {"b is null", [](kiln_gemm_fp8_args& c) { c.b = nullptr; }},
        {"sa is null", [](kiln_gemm_fp8_args& c) { c.sa = nullptr; }},
        {"sb is null", [](kiln_gemm_fp8_args& c) { c.sb = nullptr; }},
        {"d is null", [](kiln_gemm_fp8_args& c) { c.d = nullptr; }},
        {"d=", [](kiln_gemm_fp8_args& c) { c.d = static_cast<char*>(c.d) + 4; }},
    };
    for (const Case& test : cases) {
      kiln_gemm_fp8_args c = to_c(valid_args());
      test.spoil(c);
      INFO("expected prefix: " << test.prefix);
      CHECK(kiln_gemm_fp8(&c, nullptr) == KILN_ERROR_INVALID_ARGUMENT);
      CHECK_THAT(std::string(kiln_last_error()), StartsWith(test.prefix));
    }
  }
  SECTION("column-major layout crosses the C boundary") {
    // ld_sa = 63 passes as row-major (>= 56 groups) and fails only as column-major (< m).
    kiln_gemm_fp8_args c = to_c(valid_args());
    c.ld_sa = 63;
    c.sa_layout = KILN_SCALE_COL_MAJOR;
    CHECK(kiln_gemm_fp8(&c, nullptr) == KILN_ERROR_INVALID_ARGUMENT);
    CHECK_THAT(std::string(kiln_last_error()), StartsWith("ld_sa=63 "));
    CHECK_THAT(std::string(kiln_last_error()), Contains("kColMajor"));
  }
  SECTION("too large m is unsupported") {
    kiln_gemm_fp8_args c = to_c(valid_args());
    c.m = (1 << 30) + 1;
    CHECK(kiln_gemm_fp8(&c, nullptr) == KILN_ERROR_UNSUPPORTED);
  }
  SECTION("m = 0 is a no-op") {
    kiln_gemm_fp8_args c{};
    c.m = 0, c.n = 64, c.k = 64;
    CHECK(kiln_gemm_fp8(&c, nullptr) == KILN_OK);
  }
  SECTION("a valid call needs a device") {
    kiln_gemm_fp8_args c = to_c(valid_args());
    CHECK(kiln_gemm_fp8(&c, nullptr) == KILN_ERROR_NO_DEVICE);
    CHECK_THAT(std::string(kiln_last_error()), Contains("CUDA"));
  }
  SECTION("warm-up checks its arguments before needing a device") {
    CHECK(kiln_warm_up_gemm_fp8(128, 100, 7168) == KILN_ERROR_INVALID_ARGUMENT);
    CHECK_THAT(std::string(kiln_last_error()), StartsWith("n=100 "));
    CHECK(kiln_warm_up_gemm_fp8(0, 2112, 7168) == KILN_ERROR_INVALID_ARGUMENT);
    CHECK_THAT(std::string(kiln_last_error()), StartsWith("max_m=0 "));
    CHECK(kiln_warm_up_gemm_fp8(128, 2112, 7168) == KILN_ERROR_NO_DEVICE);
  }
  SECTION("the version") {
    CHECK(std::string(kiln_version()) == KILN_VERSION_STRING);
  }
}
