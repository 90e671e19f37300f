// TMA descriptors (gemm/tma.cpp): each thread keeps recent ones in 16 slots, and every answer
// must be the descriptor a fresh encode gives. Each family below varies one argument over
// more values than there are slots, so members share slots and replace one another. (That
// the key tells every argument apart is checked without a GPU: test_hot_path.cpp.)
#include <cstring>
#include <exception>
#include <thread>
#include <vector>

#include "gemm/tma.hpp"
#include "gpu_support.hpp"

using namespace kiln;

namespace {

struct TmaArgs {
  uint64_t base;  // only encoded, never dereferenced
  uint64_t inner, outer, stride;
  uint32_t box_inner, box_outer;
  int dtype, swizzle;
};

CUtensorMap encode(const TmaArgs& a) {
  return gemm::make_tma_2d(reinterpret_cast<const void*>(a.base), CUtensorMapDataType(a.dtype),
                           a.inner, a.outer, a.stride, a.box_inner, a.box_outer,
                           CUtensorMapSwizzle(a.swizzle));
}

// On a new thread, whose table is empty: the driver's encoding.
CUtensorMap fresh(const TmaArgs& a) {
  CUtensorMap map{};
  std::exception_ptr error;
  std::thread([&] {
    try {
      test::make_context_current();
      map = encode(a);
    } catch (...) {
      error = std::current_exception();
    }
  }).join();
  if (error) std::rethrow_exception(error);
  return map;
}

bool same(const CUtensorMap& x, const CUtensorMap& y) {
  return std::memcmp(&x, &y, sizeof(CUtensorMap)) == 0;
}

}  // namespace

TEST_CASE("TMA descriptors kept per thread match fresh encodes", "[gpu]") {
  KILN_REQUIRE_GPU();
  test::make_context_current();
  const uint64_t kBase = 0x7f1200000000;
  // UINT8, 128-byte swizzle (dtype 0, swizzle 3)
  const TmaArgs first{kBase, 7168, 4096, 7168, 128, 128, 0, 3};
  std::vector<std::vector<TmaArgs>> families(8);
  for (int i = 0; i < 40; ++i) {
    TmaArgs a = first;
    a.base = kBase + 4096 * uint64_t(i), families[0].push_back(a), a = first;
    a.inner = 1024 + 128 * uint64_t(i), families[1].push_back(a), a = first;
    a.outer = 64 + 8 * uint64_t(i), families[2].push_back(a), a = first;
    a.stride = 7168 + 16 * uint64_t(i), families[3].push_back(a), a = first;
    if (i < 8) a.box_inner = 16 + 16 * i, families[4].push_back(a), a = first;
    if (i < 32) a.box_outer = 8 * (i + 1), families[5].push_back(a);
  }
  for (uint64_t outer : {4096, 2048, 1024, 512, 256})
    for (int dtype = 0; dtype <= 12; ++dtype)  // UINT8 .. TFLOAT32_FTZ, 16-128 bytes a box row
      families[6].push_back({kBase, 7168, outer, 7168 * 8, 16, 128, dtype, 3});
  for (int i = 0; i < 12; ++i)
    for (int swizzle = 0; swizzle <= 3; ++swizzle)  // none, 32, 64 and 128 bytes
      families[7].push_back({kBase, 7168, 4096 - 64 * uint64_t(i), 7168, 32, 128, 0, swizzle});

  for (size_t f = 0; f < families.size(); ++f) {
    std::vector<CUtensorMap> expected;
    for (const TmaArgs& a : families[f]) expected.push_back(fresh(a));
    for (int pass = 0; pass < 2; ++pass)
      for (size_t i = 0; i < families[f].size(); ++i) {
        INFO("family " << f << ", pass " << pass << ", member " << i);
        CHECK(same(encode(families[f][i]), expected[i]));
        CHECK_FALSE(same(expected[i], expected[(i + 1) % expected.size()]));
      }
  }
}
