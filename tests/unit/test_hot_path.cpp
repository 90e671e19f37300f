// The warm call's shared state and memos: the loaded-kernel table read without a lock, the
// per-thread memos of config choices and TMA descriptors (RecentTable and their keys), and
// the launch count kept on several cache lines.
#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "gemm/config.hpp"
#include "gemm/tma.hpp"
#include "gemm/tuning_db.hpp"
#include "kernel_table.hpp"
#include "recent_table.hpp"
#include "runtime_impl.hpp"
#include "support.hpp"

using namespace kiln;

namespace {

struct FakeKernel {
  gemm::KernelSpec spec;
  int id = 0;
};

// Distinct specs: N, K and the block shape vary.
gemm::KernelSpec spec_number(int i) {
  gemm::KernelSpec s;
  s.n = 128 * (1 + i % 37);
  s.k = 128 * (1 + i / 37);
  s.config.block_n = i % 2 ? 128 : 64;
  return s;
}

DeviceInfo h200() {
  DeviceInfo d;
  d.num_sms = 132;
  d.name = "NVIDIA H200";
  d.name_hash = gemm::device_hash(d.name);
  return d;
}

}  // namespace

TEST_CASE("the kernel table finds every kernel it holds, across growth", "[unit][runtime]") {
  KernelTable<FakeKernel> table;
  constexpr int kCount = 700;  // grows from 64 slots several times
  for (int i = 0; i < kCount; ++i) {
    REQUIRE(table.find(spec_number(i)) == nullptr);
    FakeKernel& added = table.insert(std::make_unique<FakeKernel>(FakeKernel{spec_number(i), i}));
    CHECK(added.id == i);
    if (i % 50 == 0 || i == kCount - 1)
      for (int j = 0; j <= i; ++j) {
        const FakeKernel* found = table.find(spec_number(j));
        REQUIRE(found != nullptr);
        CHECK(found->id == j);
      }
  }
  CHECK(table.find(spec_number(kCount)) == nullptr);
  CHECK(table.all().size() == size_t(kCount));
}

TEST_CASE("kernel table lookups run while kernels are inserted", "[unit][runtime]") {
  KernelTable<FakeKernel> table;
  std::mutex insert_lock;
  constexpr int kCount = 3000;
  std::atomic<int> inserted{0};
  std::atomic<int> wrong{0}, missing{0};
  std::vector<std::thread> readers;
  for (int r = 0; r < 2; ++r)
    readers.emplace_back([&, r] {
      int round = 0;
      while (inserted.load() < kCount || round < 2) {
        const int known = inserted.load();  // all of these must be found
        for (int i = r; i < kCount; i += 7) {
          const FakeKernel* found = table.find(spec_number(i));
          if (found && (found->id != i || !(found->spec == spec_number(i)))) ++wrong;
          if (!found && i < known) ++missing;
        }
        if (inserted.load() >= kCount) ++round;
      }
    });
  for (int i = 0; i < kCount; ++i) {
    const std::lock_guard lock(insert_lock);
    table.insert(std::make_unique<FakeKernel>(FakeKernel{spec_number(i), i}));
    inserted.store(i + 1);
  }
  for (auto& t : readers) t.join();
  CHECK(wrong.load() == 0);
  CHECK(missing.load() == 0);
}

TEST_CASE("config choices are memoized per problem, runtime and device", "[unit][runtime]") {
  test::TempDir dir;
  const DeviceInfo device = h200();
  RuntimeOptions plain;
  plain.disk_cache = false;
  plain.tuning_db = (dir.path() / "none.json").string();  // no file: no tuned entries
  Runtime::Impl a(plain);

  // Every answer is the heuristic's, asked twice, over more problems than the memo has slots.
  const int ms[] = {1, 16, 64, 128, 192, 256, 512, 1024, 1536, 2048, 4096, 8192};
  const int nks[][2] = {{2112, 7168}, {24576, 1536}, {32768, 512}, {7168, 16384},
                        {4096, 7168}, {7168, 2048}};
  for (int pass = 0; pass < 2; ++pass)
    for (const auto& nk : nks)
      for (int m : ms) {
        const ConfigChoice c = a.choose_config(gemm::Kind::kDense, m, nk[0], nk[1], device);
        INFO("pass " << pass << ": " << m << " x " << nk[0] << " x " << nk[1]);
        CHECK(c.config == gemm::heuristic_config(m, nk[0], nk[1], device.num_sms));
        CHECK_FALSE(c.tuned);
      }
  // Many M values of one (N, K) share the memo's slots; the heuristic's choice changes with M.
  for (int pass = 0; pass < 2; ++pass)
    for (int m = 1; m <= 2048; m += 13) {
      INFO("pass " << pass << ": " << m << " x 7168 x 2048");
      CHECK(a.choose_config(gemm::Kind::kDense, m, 7168, 2048, device).config ==
            gemm::heuristic_config(m, 7168, 2048, device.num_sms));
    }
  // Where the SM count changes the choice, each device gets its own.
  DeviceInfo fewer_sms = device;
  fewer_sms.num_sms = 120;
  REQUIRE_FALSE(gemm::heuristic_config(4096, 7168, 16384, 120) ==
                gemm::heuristic_config(4096, 7168, 16384, 132));
  for (int pass = 0; pass < 2; ++pass) {
    CHECK(a.choose_config(gemm::Kind::kDense, 4096, 7168, 16384, fewer_sms).config ==
          gemm::heuristic_config(4096, 7168, 16384, 120));
    CHECK(a.choose_config(gemm::Kind::kDense, 4096, 7168, 16384, device).config ==
          gemm::heuristic_config(4096, 7168, 16384, 132));
  }

  // A second runtime with a tuning database: its entry wins on the same thread, where the
  // first runtime's choice for the same problem is still memoized.
  gemm::TunedEntry entry;
  entry.device = device.name, entry.sms = device.num_sms, entry.n = 7168, entry.k = 16384;
  entry.m_min = 2048, entry.m_max = 8192, entry.m_tuned = 4096;
  entry.config = gemm::Config{128, 128, 5, 8, 1, 1};
  REQUIRE_FALSE(entry.config == gemm::heuristic_config(4096, 7168, 16384, 132));
  gemm::TuningDb db;
  db.upsert(entry);
  std::string error;
  REQUIRE(db.save(dir.path() / "tuning.json", &error));
  RuntimeOptions tuned_options = plain;
  tuned_options.tuning_db = (dir.path() / "tuning.json").string();
  Runtime::Impl b(tuned_options);
  const ConfigChoice tuned = b.choose_config(gemm::Kind::kDense, 4096, 7168, 16384, device);
  CHECK(tuned.tuned);
  CHECK(tuned.config == entry.config);
  CHECK_FALSE(a.choose_config(gemm::Kind::kDense, 4096, 7168, 16384, device).tuned);
  CHECK(b.choose_config(gemm::Kind::kDense, 4096, 7168, 16384, device).tuned);
}

TEST_CASE("launches counted from several threads add up", "[unit][runtime]") {
  RuntimeOptions options;
  options.disk_cache = false;
  Runtime::Impl rt(options);
  std::vector<std::thread> threads;
  for (int t = 0; t < 6; ++t)
    threads.emplace_back([&] {
      for (int i = 0; i < 1000; ++i) rt.count_launch();
    });
  for (auto& t : threads) t.join();
  CHECK(rt.stats().launches == 6000);
}

// One set of two slots holds every key: a key that differs in any one field must miss, or a
// memo would hand one problem's answer to another. And each field must move a key to other
// sets (else keys that differ in it would keep evicting one another).
template <typename Key>
void check_fields(const Key& first, const std::vector<std::vector<Key>>& variants) {
  for (size_t field = 0; field < variants.size(); ++field) {
    INFO("field " << field);
    const Key& other = variants[field][0];
    RecentTable<Key, int, 2> memo;
    memo.store(first, 7);
    REQUIRE(memo.find(first) != nullptr);
    CHECK(*memo.find(first) == 7);
    CHECK(memo.find(other) == nullptr);
    memo.store(other, 8);
    CHECK(*memo.find(first) == 7);
    CHECK(*memo.find(other) == 8);
    std::vector<size_t> sets;
    for (const Key& k : variants[field]) sets.push_back(RecentTable<Key, int, 64>::set_of(k));
    CHECK(std::count(sets.begin(), sets.end(), sets[0]) < int(sets.size()));
  }
}

TEST_CASE("memo keys tell apart every field the memoized value depends on", "[unit][runtime]") {
  SECTION("config choices") {
    const ChoiceKey first{1, 0xabc, 132, gemm::Kind::kDense, 4096, 7168, 16384};
    std::vector<std::vector<ChoiceKey>> variants(7);
    for (int i = 1; i <= 16; ++i) {
      ChoiceKey k = first;
      k.runtime = 1 + i, variants[0].push_back(k), k = first;
      k.device = 0xabc + i, variants[1].push_back(k), k = first;
      k.sms = 132 - i, variants[2].push_back(k), k = first;
      if (i <= 3) k.kind = gemm::Kind(i), variants[3].push_back(k), k = first;
      k.m = 4096 - i, variants[4].push_back(k), k = first;
      k.n = 7168 - 16 * i, variants[5].push_back(k), k = first;
      k.k = 16384 - 16 * i, variants[6].push_back(k);
    }
    check_fields(first, variants);
  }
  SECTION("TMA descriptors") {
    static char buffer[1024];
    const gemm::TmaKey first{buffer,      7168, 4096, 7168, 128, 128, CU_TENSOR_MAP_DATA_TYPE_UINT8,
                             CU_TENSOR_MAP_SWIZZLE_128B};
    std::vector<std::vector<gemm::TmaKey>> variants(8);
    for (int i = 1; i <= 16; ++i) {
      gemm::TmaKey k = first;
      k.base = buffer + 16 * i, variants[0].push_back(k), k = first;
      k.inner = 7168 - 16 * i, variants[1].push_back(k), k = first;
      k.outer = 4096 - i, variants[2].push_back(k), k = first;
      k.row_stride_bytes = 7168 + 16 * i, variants[3].push_back(k), k = first;
      k.box_inner = 128 - 8 * i, variants[4].push_back(k), k = first;
      k.box_outer = 128 - 4 * i, variants[5].push_back(k), k = first;
      k.dtype = CUtensorMapDataType(i % 13), variants[6].push_back(k), k = first;
      if (i <= 3) k.swizzle = CUtensorMapSwizzle(i - 1), variants[7].push_back(k);
    }
    check_fields(first, variants);
  }
}

TEST_CASE("a memo set keeps the key used last and replaces the other", "[unit][runtime]") {
  const ChoiceKey a{1, 1, 132, gemm::Kind::kDense, 64, 2112, 7168};
  ChoiceKey b = a, c = a;
  b.m = 128, c.m = 256;
  RecentTable<ChoiceKey, int, 2> memo;  // one set: all three share it
  memo.store(a, 1);
  memo.store(b, 2);
  CHECK(*memo.find(a) == 1);  // a is now the one used last
  memo.store(c, 3);           // replaces b
  CHECK(memo.find(b) == nullptr);
  CHECK(*memo.find(a) == 1);
  CHECK(*memo.find(c) == 3);
}
