#include "jit/kernel_headers.hpp"

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "cache/key.hpp"
#include "kiln/error.hpp"

namespace kiln::jit {
namespace {

KernelHeaders load() {
  KernelHeaders headers;
  const char* dir = std::getenv("KILN_KERNEL_DIR");
  if (dir && *dir) {
    namespace fs = std::filesystem;
    const fs::path root(dir);
    std::error_code ec;
    if (!fs::is_directory(root / "kiln", ec))
      throw Error(ErrorCode::kInvalidArgument,
                  "KILN_KERNEL_DIR=" + root.string() +
                      " has no kiln/ subfolder; point it at the repository's kernels/ folder");
    std::vector<fs::path> files;
    for (const auto& entry : fs::recursive_directory_iterator(root / "kiln"))
      if (entry.is_regular_file() && entry.path().extension() == ".cuh")
        files.push_back(entry.path());
    std::sort(files.begin(), files.end());
    for (const auto& file : files) {
      std::ifstream in(file, std::ios::binary);
      std::ostringstream text;
      text << in.rdbuf();
      headers.owned.emplace_back(fs::relative(file, root).generic_string(), text.str());
    }
    // The views once `owned` no longer grows (moving the vector later keeps its elements).
    for (const auto& [name, text] : headers.owned) {
      headers.names.emplace_back(name);
      headers.texts.emplace_back(text);
    }
    headers.origin = root.string();
  } else {
    for (int i = 0; i < kNumEmbeddedHeaders; ++i) {
      headers.names.emplace_back(kEmbeddedHeaders[i].name);
      headers.texts.emplace_back(kEmbeddedHeaders[i].text);
    }
    headers.origin = "embedded";
  }
  cache::KeyBuilder digest;
  for (size_t i = 0; i < headers.names.size(); ++i) digest.add(headers.names[i]).add(headers.texts[i]);
  headers.digest = digest.finish().hex();
  return headers;
}

}  // namespace

const KernelHeaders& kernel_headers() {
  static const KernelHeaders headers = load();
  return headers;
}

}  // namespace kiln::jit
