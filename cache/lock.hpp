// An exclusive advisory file lock (flock) held for the lifetime of the object. The kernel
// releases it when the holder dies, so a crashed compiler never blocks the others for good.
#pragma once
#include <filesystem>

namespace kiln::cache {

class FileLock {
 public:
  // Blocks until the lock is held. Creates the file (and parents) if missing.
  // If the file cannot be created (read-only directory), held() is false and nothing blocks.
  explicit FileLock(const std::filesystem::path& path);
  ~FileLock();
  FileLock(const FileLock&) = delete;
  FileLock& operator=(const FileLock&) = delete;
  bool held() const { return fd_ >= 0; }

 private:
  int fd_ = -1;
};

}  // namespace kiln::cache
