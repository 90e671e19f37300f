#include "cache/logger.hpp"

#include <spdlog/sinks/stdout_color_sinks.h>

#include <cstdlib>

namespace kiln {

spdlog::logger& log() {
  static std::shared_ptr<spdlog::logger> logger = [] {
    if (auto existing = spdlog::get("kiln")) return existing;
    auto created = spdlog::stderr_color_mt("kiln");
    created->set_pattern("[kiln %^%l%$] %v");
    const char* level = std::getenv("KILN_LOG_LEVEL");
    created->set_level(level ? spdlog::level::from_str(level) : spdlog::level::warn);
    return created;
  }();
  return *logger;
}

}  // namespace kiln
