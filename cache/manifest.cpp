#include "cache/manifest.hpp"

#include <fmt/format.h>

#include <limits>
#include <nlohmann/json.hpp>
#include <type_traits>

namespace kiln::cache {
namespace {

using nlohmann::json;

// Reads fields out of a parsed manifest; the first problem is kept in error_.
class FieldReader {
 public:
  explicit FieldReader(const json& object) : object_(object) {}

  const std::string& error() const { return error_; }

  void read(const char* name, std::string* out) {
    const json* value = find(name);
    if (value == nullptr) return;
    if (!value->is_string()) return wrong_type(name, "a string", *value);
    *out = value->get<std::string>();
  }

  void read(const char* name, double* out) {
    const json* value = find(name);
    if (value == nullptr) return;
    if (!value->is_number()) return wrong_type(name, "a number", *value);
    *out = value->get<double>();
  }

  template <typename Int>
  void read(const char* name, Int* out) {
    static_assert(std::is_integral_v<Int>);
    const json* value = find(name);
    if (value == nullptr) return;
    if (!value->is_number_integer()) return wrong_type(name, "an integer", *value);
    using Limits = std::numeric_limits<Int>;
    if (value->is_number_unsigned()) {
      const uint64_t v = value->get<uint64_t>();
      if (v > static_cast<uint64_t>(Limits::max())) return out_of_range(name, *value);
      *out = static_cast<Int>(v);
    } else {
      const int64_t v = value->get<int64_t>();
      if constexpr (std::is_unsigned_v<Int>) {
        if (v < 0) return out_of_range(name, *value);
      } else {
        if (v < static_cast<int64_t>(Limits::min()) || v > static_cast<int64_t>(Limits::max())) {
          return out_of_range(name, *value);
        }
      }
      *out = static_cast<Int>(v);
    }
  }

 private:
  const json* find(const char* name) {
    if (!error_.empty()) return nullptr;
    const auto it = object_.find(name);
    if (it == object_.end()) {
      error_ = fmt::format("manifest has no field \"{}\"", name);
      return nullptr;
    }
    return &*it;
  }

  void wrong_type(const char* name, const char* expected, const json& value) {
    error_ = fmt::format("manifest field \"{}\" must be {}, not {}", name, expected,
                         value.type_name());
  }

  void out_of_range(const char* name, const json& value) {
    error_ = fmt::format("manifest field \"{}\" is out of range: {}", name, value.dump());
  }

  const json& object_;
  std::string error_;
};

}  // namespace

std::string Manifest::to_json() const {
  const json object = {
      {"schema", schema},
      {"key", key},
      {"kernel", kernel},
      {"lowered_name", lowered_name},
      {"arch", arch},
      {"config", config},
      {"kiln_version", kiln_version},
      {"nvrtc_version", nvrtc_version},
      {"registers", registers},
      {"spill_bytes", spill_bytes},
      {"stack_bytes", stack_bytes},
      {"static_smem_bytes", static_smem_bytes},
      {"dynamic_smem_bytes", dynamic_smem_bytes},
      {"compile_ms", compile_ms},
      {"cubin_size", cubin_size},
      {"cubin_hash", cubin_hash},
      {"created_unix", created_unix},
  };
  // replace: a stray non-UTF-8 byte in a name must not make writing the entry throw
  return object.dump(2, ' ', false, json::error_handler_t::replace) + "\n";
}

bool Manifest::from_json(const std::string& text, Manifest* out, std::string* error) {
  auto fail = [error](std::string message) {
    if (error != nullptr) *error = std::move(message);
    return false;
  };
  const json object = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (object.is_discarded()) return fail("manifest is not valid JSON");
  if (!object.is_object()) return fail(fmt::format("manifest is a JSON {}, not an object",
                                                   object.type_name()));

  Manifest m;
  FieldReader reader(object);
  reader.read("schema", &m.schema);
  if (reader.error().empty() && m.schema != kSchemaVersion) {
    return fail(fmt::format("manifest schema is {}, expected {}", m.schema, kSchemaVersion));
  }
  reader.read("key", &m.key);
  reader.read("kernel", &m.kernel);
  reader.read("lowered_name", &m.lowered_name);
  reader.read("arch", &m.arch);
  reader.read("config", &m.config);
  reader.read("kiln_version", &m.kiln_version);
  reader.read("nvrtc_version", &m.nvrtc_version);
  reader.read("registers", &m.registers);
  reader.read("spill_bytes", &m.spill_bytes);
  reader.read("stack_bytes", &m.stack_bytes);
  reader.read("static_smem_bytes", &m.static_smem_bytes);
  reader.read("dynamic_smem_bytes", &m.dynamic_smem_bytes);
  reader.read("compile_ms", &m.compile_ms);
  reader.read("cubin_size", &m.cubin_size);
  reader.read("cubin_hash", &m.cubin_hash);
  reader.read("created_unix", &m.created_unix);
  if (!reader.error().empty()) return fail(reader.error());
  *out = std::move(m);
  return true;
}

}  // namespace kiln::cache
