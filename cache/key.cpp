#include "cache/key.hpp"

#include <xxhash.h>

#include <new>

namespace kiln::cache {
namespace {

constexpr char kHexDigits[] = "0123456789abcdef";

XXH3_state_t* as_state(void* state) { return static_cast<XXH3_state_t*>(state); }

void append_hex(uint64_t word, std::string* out) {
  for (int shift = 60; shift >= 0; shift -= 4) out->push_back(kHexDigits[(word >> shift) & 0xf]);
}

// Lowercase only: the hex text names directories, so "AB…" and "ab…" must not both be valid.
int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

bool parse_word(std::string_view text, uint64_t* out) {
  uint64_t word = 0;
  for (char c : text) {
    const int v = hex_value(c);
    if (v < 0) return false;
    word = (word << 4) | static_cast<uint64_t>(v);
  }
  *out = word;
  return true;
}

}  // namespace

std::string Key::hex() const {
  std::string out;
  out.reserve(32);
  append_hex(high, &out);
  append_hex(low, &out);
  return out;
}

bool Key::parse_hex(std::string_view text, Key* out) {
  Key key;
  if (text.size() != 32 || !parse_word(text.substr(0, 16), &key.high) ||
      !parse_word(text.substr(16), &key.low)) {
    return false;
  }
  *out = key;
  return true;
}

KeyBuilder::KeyBuilder() : state_(XXH3_createState()) {
  if (state_ == nullptr) throw std::bad_alloc();
  XXH3_128bits_reset(as_state(state_));
}

KeyBuilder::~KeyBuilder() { XXH3_freeState(as_state(state_)); }

KeyBuilder& KeyBuilder::add(std::string_view field) {
  unsigned char length[8];
  const uint64_t size = field.size();
  for (int i = 0; i < 8; ++i) length[i] = static_cast<unsigned char>(size >> (8 * i));
  XXH3_128bits_update(as_state(state_), length, sizeof length);
  if (!field.empty()) XXH3_128bits_update(as_state(state_), field.data(), field.size());
  return *this;
}

KeyBuilder& KeyBuilder::add(int64_t value) { return add(std::to_string(value)); }

Key KeyBuilder::finish() const {
  const XXH128_hash_t hash = XXH3_128bits_digest(as_state(state_));
  return Key{hash.high64, hash.low64};
}

std::string hash_hex(std::string_view bytes) {
  const XXH128_hash_t hash = XXH3_128bits(bytes.data(), bytes.size());
  return Key{hash.high64, hash.low64}.hex();
}

}  // namespace kiln::cache
