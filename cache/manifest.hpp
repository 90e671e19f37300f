// manifest.json of one cache entry: what was built, from what, and how it came out.
#pragma once
#include <cstdint>
#include <string>

#include "cache/key.hpp"

namespace kiln::cache {

struct Manifest {
  int schema = kSchemaVersion;
  std::string key;            // Key::hex() of the entry
  std::string kernel;         // human-readable name, e.g. "sm90_fp8_gemm n=2112 k=7168 bm=64 ..."
  std::string lowered_name;   // mangled name of the instantiation (from NVRTC name expressions)
  std::string arch;           // "sm_90a"
  std::string config;         // JSON text of the kernel configuration (kind, shape, block sizes)
  std::string kiln_version;
  std::string nvrtc_version;
  int registers = 0;
  int spill_bytes = 0;        // spill stores + spill loads reported by ptxas
  int stack_bytes = 0;
  int static_smem_bytes = 0;
  int dynamic_smem_bytes = 0;
  double compile_ms = 0.0;
  uint64_t cubin_size = 0;
  std::string cubin_hash;     // hash_hex(cubin)
  int64_t created_unix = 0;

  std::string to_json() const;
  // Parses and checks that every required field is present with the right type.
  // Returns false (and says why in *error) on anything malformed.
  static bool from_json(const std::string& text, Manifest* out, std::string* error);
};

}  // namespace kiln::cache
