// The loaded kernels by spec, for the warm path: a lookup takes no lock and writes no shared
// memory, so threads that call at once do not contend. (With a shared lock every lookup wrote
// the lock's cache line: a lookup plus the launch count, then one shared counter, took 33 ns
// on one thread and 2.1 µs each on 16; docs/PERFORMANCE.md.) Insert-only: a kernel stays
// until the table is destroyed. Inserts are serialized by the caller; lookups may run
// alongside them.
#pragma once
#include <atomic>
#include <cstddef>
#include <memory>
#include <vector>

#include "gemm/config.hpp"

namespace kiln {

template <typename Kernel>  // has a `gemm::KernelSpec spec`
class KernelTable {
 public:
  KernelTable() { publish(std::make_unique<Slots>(64)); }

  Kernel* find(const gemm::KernelSpec& spec) const {
    const Slots* slots = current_.load(std::memory_order_acquire);
    for (size_t i = gemm::KernelSpecHash{}(spec) & slots->mask;; i = (i + 1) & slots->mask) {
      Kernel* kernel = slots->at[i].load(std::memory_order_acquire);
      if (!kernel || kernel->spec == spec) return kernel;
    }
  }

  // The caller holds the lock that serializes inserts, and `kernel->spec` is not in the table.
  // If it throws (allocation), the table is as it was and the kernel is destroyed.
  Kernel& insert(std::unique_ptr<Kernel> kernel) {
    // Every allocation first: the table stays at most half full, so a probe always ends at
    // an empty slot.
    if (owned_.size() == owned_.capacity()) owned_.reserve(2 * owned_.size() + 16);
    const size_t capacity = tables_.back()->mask + 1;
    std::unique_ptr<Slots> bigger;
    if (2 * (owned_.size() + 1) > capacity) {
      bigger = std::make_unique<Slots>(2 * capacity);
      tables_.reserve(tables_.size() + 1);
    }
    Kernel& added = *kernel;
    owned_.push_back(std::move(kernel));
    if (bigger) publish(std::move(bigger));
    else place(*tables_.back(), &added);
    return added;
  }

  const std::vector<std::unique_ptr<Kernel>>& all() const { return owned_; }

 private:
  struct Slots {
    explicit Slots(size_t capacity)
        : mask(capacity - 1), at(std::make_unique<std::atomic<Kernel*>[]>(capacity)) {}
    size_t mask;
    std::unique_ptr<std::atomic<Kernel*>[]> at;
  };
  static void place(Slots& slots, Kernel* kernel) {
    size_t i = gemm::KernelSpecHash{}(kernel->spec) & slots.mask;
    while (slots.at[i].load(std::memory_order_relaxed)) i = (i + 1) & slots.mask;
    slots.at[i].store(kernel, std::memory_order_release);
  }
  // A larger table, filled with every kernel, then published whole; the old ones stay
  // allocated (a lookup may still be reading one), together at most the size of the newest.
  void publish(std::unique_ptr<Slots> slots) {
    for (const auto& kernel : owned_) place(*slots, kernel.get());
    const Slots* published = slots.get();
    tables_.push_back(std::move(slots));  // kept before anyone can read it
    current_.store(published, std::memory_order_release);
  }

  std::atomic<const Slots*> current_{nullptr};
  std::vector<std::unique_ptr<Slots>> tables_;
  std::vector<std::unique_ptr<Kernel>> owned_;
};

}  // namespace kiln
