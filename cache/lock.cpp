#include "cache/lock.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <system_error>

namespace kiln::cache {

FileLock::FileLock(const std::filesystem::path& path) {
  std::error_code ignored;  // a failure here shows up as a failed open() below
  std::filesystem::create_directories(path.parent_path(), ignored);

  int fd;
  do {
    fd = ::open(path.c_str(), O_CREAT | O_RDWR | O_CLOEXEC, 0666);
  } while (fd < 0 && errno == EINTR);
  if (fd < 0) return;

  while (::flock(fd, LOCK_EX) != 0) {
    if (errno != EINTR) {
      ::close(fd);
      return;
    }
  }
  fd_ = fd;
}

// Closing the descriptor releases the lock.
FileLock::~FileLock() {
  if (fd_ >= 0) ::close(fd_);
}

}  // namespace kiln::cache
