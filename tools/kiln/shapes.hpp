// Shape sets for warm, tune and bench: a file (one "kind M N K [G]" per line, '#' comments,
// or a JSON array of {"kind", "m", "n", "k", "groups"}) or a built-in model preset.
#pragma once
#include <CLI/CLI.hpp>

#include <string>
#include <vector>

#include "gemm/config.hpp"

namespace kiln::cli {

// kind: dense | grouped-contiguous | grouped-offsets | grouped-masked. For grouped kinds M
// is the rows per group (masked: the expected rows per group) and G the number of groups.
struct ShapeSpec {
  std::string kind = "dense";
  int m = 0, n = 0, k = 0;
  int groups = 1;
};

// The kernel kind of a shape's kind name; throws kiln::Error for an unknown name.
gemm::Kind kernel_kind(const std::string& kind);
// The M a shape's configuration is chosen for (rows of A in all groups).
inline int config_m(const ShapeSpec& s) { return s.m * s.groups; }

// Throws kiln::Error(kInvalidArgument) naming the file, line number and problem.
std::vector<ShapeSpec> parse_shapes(const std::string& text, const std::string& origin);
std::vector<ShapeSpec> load_shapes_file(const std::string& path);

// Every GEMM of the model at each M a server meets (1 .. 8192). Known: "deepseek-v3".
std::vector<ShapeSpec> model_shapes(const std::string& model);
std::vector<std::string> known_models();

// The shape set of warm, tune and bench: --model NAME or --shapes FILE (not both).
struct ShapeSource {
  std::string model, file;
  bool given() const { return !model.empty() || !file.empty(); }
  std::vector<ShapeSpec> load() const {
    return file.empty() ? model_shapes(model) : load_shapes_file(file);
  }
};
void add_shape_options(CLI::App* cmd, ShapeSource* source);

}  // namespace kiln::cli
