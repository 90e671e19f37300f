// A per-thread memo of recent results: a direct-mapped table of kSlots slots, each holding the
// last key that hashed there and its value. Key: equality-comparable, with `uint64_t hash()`
// over every field that the value depends on.
#pragma once
#include <cstddef>
#include <cstdint>

namespace kiln {

// Spreads every input bit over the whole word (MurmurHash3's finalizer), so that keys which
// differ in any one field land in different slots.
inline uint64_t mix64(uint64_t h) {
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdull;
  h ^= h >> 33;
  h *= 0xc4ceb9fe1a85ec53ull;
  h ^= h >> 33;
  return h;
}

// Folds one more field into a key's hash.
inline uint64_t hash_combine(uint64_t h, uint64_t field) {
  return mix64(h ^ (field + 0x9E3779B97F4A7C15ull + (h << 6) + (h >> 2)));
}

template <typename Key, typename Value, size_t kSlots>
class RecentTable {
 public:
  const Value* find(const Key& key) const {
    const Slot& slot = slots_[index(key)];
    return slot.valid && slot.key == key ? &slot.value : nullptr;
  }
  void store(const Key& key, const Value& value) { slots_[index(key)] = {true, key, value}; }

 private:
  static size_t index(const Key& key) { return size_t(mix64(key.hash()) % kSlots); }
  struct Slot {
    bool valid = false;
    Key key{};
    Value value{};
  };
  Slot slots_[kSlots];
};

}  // namespace kiln
