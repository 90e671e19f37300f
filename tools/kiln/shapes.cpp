#include "shapes.hpp"

#include <fmt/format.h>

#include <climits>
#include <cstdint>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "kiln/error.hpp"

namespace kiln::cli {
namespace {

[[noreturn]] void bad(const std::string& origin, int line, const std::string& what) {
  throw Error(ErrorCode::kInvalidArgument,
              line > 0 ? fmt::format("{}:{}: {}", origin, line, what)
                       : fmt::format("{}: {}", origin, what));
}

void check_shape(const ShapeSpec& s, const std::string& origin, int line) {
  try {
    kernel_kind(s.kind);
  } catch (const Error& e) {
    bad(origin, line, e.what());
  }
  if (s.kind == "dense" && s.groups != 1)
    bad(origin, line, fmt::format("G={}: a dense shape has one group", s.groups));
  if (s.m <= 0 || s.n <= 0 || s.k <= 0 || s.groups <= 0)
    bad(origin, line, fmt::format("M={} N={} K={} G={}: all must be positive", s.m, s.n, s.k,
                                  s.groups));
  if (int64_t{s.m} * s.groups > (int64_t{1} << 30))
    bad(origin, line, fmt::format("M={} x G={} rows are too many (at most 2^30)", s.m, s.groups));
  if (s.n % 8 != 0) bad(origin, line, fmt::format("N={} is not a multiple of 8", s.n));
  if (s.k % 16 != 0) bad(origin, line, fmt::format("K={} is not a multiple of 16", s.k));
}

int parse_int(const std::string& word, const char* name, const std::string& origin, int line) {
  size_t used = 0;
  long value = 0;
  try {
    value = std::stol(word, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used != word.size() || value < INT32_MIN || value > INT32_MAX)
    bad(origin, line, fmt::format("{} '{}' is not an integer", name, word));
  return static_cast<int>(value);
}

}  // namespace

std::vector<ShapeSpec> parse_shapes(const std::string& text, const std::string& origin) {
  std::vector<ShapeSpec> shapes;
  const size_t first = text.find_first_not_of(" \t\r\n");
  if (first != std::string::npos && text[first] == '[') {
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(text);
    } catch (const nlohmann::json::exception& e) {
      bad(origin, 0, fmt::format("invalid JSON: {}", e.what()));
    }
    int index = 0;
    for (const auto& item : j) {
      const std::string where = fmt::format("{}: entry {}", origin, ++index);
      if (!item.is_object()) bad(where, 0, "not an object");
      // Integers only: 64.9, true or 2^32 + 64 are refused, not converted.
      auto integer = [&](const char* name, int fallback, bool required) {
        if (!item.contains(name)) {
          if (required) bad(where, 0, fmt::format("\"{}\" is missing", name));
          return fallback;
        }
        const auto& v = item.at(name);
        if (!v.is_number_integer() || v.get<int64_t>() < INT32_MIN || v.get<int64_t>() > INT32_MAX)
          bad(where, 0, fmt::format("\"{}\" = {} is not a 32-bit integer", name, v.dump()));
        return static_cast<int>(v.get<int64_t>());
      };
      if (item.contains("kind") && !item.at("kind").is_string())
        bad(where, 0, "\"kind\" is not a string");
      ShapeSpec s;
      s.kind = item.value("kind", std::string("dense"));
      s.m = integer("m", 0, true);
      s.n = integer("n", 0, true);
      s.k = integer("k", 0, true);
      s.groups = integer("groups", 1, false);
      check_shape(s, where, 0);
      shapes.push_back(s);
    }
    return shapes;
  }
  std::istringstream lines(text);
  std::string line;
  for (int number = 1; std::getline(lines, line); ++number) {
    if (const size_t hash = line.find('#'); hash != std::string::npos) line.resize(hash);
    std::istringstream words(line);
    std::vector<std::string> w;
    for (std::string word; words >> word;) w.push_back(word);
    if (w.empty()) continue;
    if (w.size() < 4 || w.size() > 5)
      bad(origin, number, fmt::format("expected 'kind M N K [G]', got {} fields", w.size()));
    ShapeSpec s;
    s.kind = w[0];
    s.m = parse_int(w[1], "M", origin, number);
    s.n = parse_int(w[2], "N", origin, number);
    s.k = parse_int(w[3], "K", origin, number);
    if (w.size() == 5) s.groups = parse_int(w[4], "G", origin, number);
    check_shape(s, origin, number);
    shapes.push_back(s);
  }
  return shapes;
}

std::vector<ShapeSpec> load_shapes_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) bad(path, 0, "cannot be read (no such file or no permission)");
  std::ostringstream text;
  text << in.rdbuf();
  return parse_shapes(text.str(), path);
}

gemm::Kind kernel_kind(const std::string& kind) {
  gemm::Kind parsed;
  if (gemm::parse_kind(kind, &parsed)) return parsed;
  throw Error(ErrorCode::kInvalidArgument,
              fmt::format("unknown kind '{}' (known: dense, grouped-contiguous, "
                          "grouped-offsets, grouped-masked)",
                          kind));
}

std::vector<std::string> known_models() { return {"deepseek-v3"}; }

void add_shape_options(CLI::App* cmd, ShapeSource* source) {
  auto* model = cmd->add_option("--model", source->model, "Built-in shape set (deepseek-v3)")
                    ->check(CLI::IsMember(known_models()));
  auto* file = cmd->add_option("--shapes", source->file,
                               "Shape file: 'kind M N K [G]' per line, or a JSON array");
  model->excludes(file);
}

std::vector<ShapeSpec> model_shapes(const std::string& model) {
  if (model != "deepseek-v3")
    throw Error(ErrorCode::kInvalidArgument,
                fmt::format("unknown model '{}'; known: deepseek-v3", model));
  // DeepSeek-V3/R1 dense GEMMs (N, K), at the M buckets a server meets.
  const int nk[][2] = {{2112, 7168}, {24576, 1536}, {32768, 512},
                       {7168, 16384}, {4096, 7168},  {7168, 2048}};
  std::vector<ShapeSpec> shapes;
  for (const auto& s : nk)
    for (int m : {1, 16, 64, 128, 256, 1024, 4096, 8192})
      shapes.push_back({"dense", m, s[0], s[1], 1});
  // MoE experts (sharded): contiguous for prefill and training, masked for decode.
  const int contiguous[][4] = {{4, 8192, 4096, 7168}, {4, 8192, 7168, 2048},
                               {8, 4096, 4096, 7168}, {8, 4096, 7168, 2048}};
  for (const auto& g : contiguous) shapes.push_back({"grouped-contiguous", g[1], g[2], g[3], g[0]});
  const int masked[][4] = {{1, 1024, 4096, 7168}, {2, 512, 4096, 7168}, {4, 256, 4096, 7168},
                           {4, 256, 7168, 2048},  {16, 256, 4096, 7168}};
  for (const auto& g : masked) shapes.push_back({"grouped-masked", g[1], g[2], g[3], g[0]});
  return shapes;
}

}  // namespace kiln::cli
