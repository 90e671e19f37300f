// The warm call's shared state and memos: the loaded-kernel table read without a lock, the
// per-thread memos of config choices and TMA descriptors (RecentTable and their keys), and
// the launch count kept on several cache lines.
#include <catch2/catch.hpp>

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
  const int ms[] = {1, 64, 128, 256, 512, 1024, 2048, 4096, 8192};
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

// With one slot every key shares it: a key that differs in any one field must miss, or a
// memo would hand one problem's answer to another.
TEST_CASE("memo keys tell apart every field the memoized value depends on", "[unit][runtime]") {
  SECTION("config choices") {
    const ChoiceKey first{1, 0xabc, 132, gemm::Kind::kDense, 4096, 7168, 16384};
    std::vector<ChoiceKey> others(7, first);
    others[0].runtime = 2, others[1].device = 0xabd, others[2].sms = 78;
    others[3].kind = gemm::Kind::kGroupedMasked, others[4].m = 4095, others[5].n = 2112;
    others[6].k = 7168;
    for (size_t i = 0; i < others.size(); ++i) {
      RecentTable<ChoiceKey, int, 1> memo;
      memo.store(first, 7);
      INFO("field " << i);
      REQUIRE(memo.find(first) != nullptr);
      CHECK(*memo.find(first) == 7);
      CHECK(memo.find(others[i]) == nullptr);
      memo.store(others[i], 8);
      CHECK(memo.find(first) == nullptr);
      CHECK(*memo.find(others[i]) == 8);
    }
  }
  SECTION("TMA descriptors") {
    static char buffer[64];
    const gemm::TmaKey first{buffer,      7168, 4096, 7168, 128, 128, CU_TENSOR_MAP_DATA_TYPE_UINT8,
                             CU_TENSOR_MAP_SWIZZLE_128B};
    std::vector<gemm::TmaKey> others(8, first);
    others[0].base = buffer + 16, others[1].inner = 7152, others[2].outer = 4095;
    others[3].row_stride_bytes = 7184, others[4].box_inner = 64, others[5].box_outer = 64;
    others[6].dtype = CU_TENSOR_MAP_DATA_TYPE_BFLOAT16;
    others[7].swizzle = CU_TENSOR_MAP_SWIZZLE_NONE;
    for (size_t i = 0; i < others.size(); ++i) {
      RecentTable<gemm::TmaKey, int, 1> memo;
      memo.store(first, 7);
      INFO("field " << i);
      CHECK(memo.find(first) != nullptr);
      CHECK(memo.find(others[i]) == nullptr);
    }
  }
}
