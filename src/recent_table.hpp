// A per-thread memo of recent results: kSlots slots in sets of two. A key may sit in either
// slot of its set (key.hash() % sets); a new key replaces the one of the two used less
// recently. Key: equality-comparable, with `uint64_t hash()` over every field the value
// depends on. Key and Value are trivially destructible, so a thread_local table costs a
// thread nothing at start or exit.
#pragma once
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <type_traits>

namespace kiln {

// Spreads every input bit over the whole word (MurmurHash3's finalizer), so that keys which
// differ in any one field land in different sets.
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

// A key's hash over all its fields, in order (a key's `hash()`).
inline uint64_t hash_fields(std::initializer_list<uint64_t> fields) {
  uint64_t h = 0;
  for (uint64_t field : fields) h = hash_combine(h, field);
  return h;
}

template <typename Key, typename Value, size_t kSlots>
class RecentTable {
  static_assert(kSlots % 2 == 0, "slots come in sets of two");
  static_assert(std::is_trivially_destructible_v<Key> && std::is_trivially_destructible_v<Value>,
                "a thread_local table must need no cleanup at thread exit");

 public:
  static constexpr size_t kSets = kSlots / 2;
  static size_t set_of(const Key& key) { return size_t(key.hash() % kSets); }

  const Value* find(const Key& key) {
    Set& set = sets_[set_of(key)];
    for (int way = 0; way < 2; ++way)
      if (set.slot[way].valid && set.slot[way].key == key) {
        set.newer = uint8_t(way);
        return &set.slot[way].value;
      }
    return nullptr;
  }
  void store(const Key& key, const Value& value) {
    Set& set = sets_[set_of(key)];
    const int way = 1 - set.newer;
    set.slot[way] = {true, key, value};
    set.newer = uint8_t(way);
  }

 private:
  struct Slot {
    bool valid = false;
    Key key{};
    Value value{};
  };
  struct Set {
    Slot slot[2];
    uint8_t newer = 1;  // the way found or stored last; a store takes the other
  };
  Set sets_[kSets];
};

}  // namespace kiln
