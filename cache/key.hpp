// Cache keys: XXH3-128 over a length-prefixed list of fields.
// Each field is hashed as its 8-byte little-endian length followed by its bytes, so that
// ("ab","c") and ("a","bc") give different keys.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>

namespace kiln::cache {

// Bump when the layout of an entry or the meaning of a key field changes.
inline constexpr int kSchemaVersion = 1;

struct Key {
  uint64_t high = 0;
  uint64_t low = 0;
  std::string hex() const;  // 32 lowercase hex digits, high word first
  static bool parse_hex(std::string_view text, Key* out);
  friend bool operator==(const Key& a, const Key& b) { return a.high == b.high && a.low == b.low; }
  friend bool operator!=(const Key& a, const Key& b) { return !(a == b); }
};

class KeyBuilder {
 public:
  KeyBuilder();
  ~KeyBuilder();
  KeyBuilder(const KeyBuilder&) = delete;
  KeyBuilder& operator=(const KeyBuilder&) = delete;
  KeyBuilder& add(std::string_view field);
  KeyBuilder& add(int64_t value);  // hashed as its decimal text
  Key finish() const;

 private:
  void* state_;  // XXH3_state_t
};

// XXH3-128 of a byte string, as 32 hex digits (cubin hashes in manifests).
std::string hash_hex(std::string_view bytes);

}  // namespace kiln::cache
