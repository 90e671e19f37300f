// A one-line progress bar on stderr (only when stderr is a terminal): counts and ETA.
#pragma once
#include <chrono>
#include <string>

namespace kiln::cli {

class Progress {
 public:
  Progress(std::string label, size_t total);
  ~Progress();
  void update(size_t done, const std::string& detail = {});

 private:
  std::string label_;
  size_t total_;
  bool enabled_;
  std::chrono::steady_clock::time_point start_;
};

}  // namespace kiln::cli
