#include "progress.hpp"

#include <fmt/format.h>
#include <unistd.h>

#include <cstdio>

namespace kiln::cli {

Progress::Progress(std::string label, size_t total)
    : label_(std::move(label)),
      total_(total),
      enabled_(isatty(fileno(stderr)) != 0),
      start_(std::chrono::steady_clock::now()) {}

Progress::~Progress() {
  if (enabled_) std::fputs("\r\033[K", stderr);
}

void Progress::update(size_t done, const std::string& detail) {
  if (!enabled_ || total_ == 0) return;
  const double elapsed =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  const double eta = done ? elapsed / done * (total_ - done) : 0.0;
  constexpr int kWidth = 30;
  const int filled = static_cast<int>(kWidth * done / total_);
  fmt::print(stderr, "\r\033[K{} [{}{}] {}/{} {} ETA {:.0f}s", label_, std::string(filled, '#'),
             std::string(kWidth - filled, '.'), done, total_, detail, eta);
  std::fflush(stderr);
}

}  // namespace kiln::cli
