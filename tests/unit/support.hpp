// Shared pieces of the unit tests: temporary directories, environment overrides, whole-file
// reads and writes, and child processes (the built `kiln` CLI run end to end).
#pragma once
#include <sys/types.h>

#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

namespace kiln::test {

// A fresh directory under the system temporary directory, removed with all it holds at the
// end of the scope (read-only subdirectories a test left behind included).
class TempDir {
 public:
  explicit TempDir(const std::string& prefix = "kiln-test");
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

// Sets (or, with nullopt, unsets) an environment variable until the end of the scope.
class ScopedEnv {
 public:
  ScopedEnv(std::string name, const std::optional<std::string>& value);
  ~ScopedEnv();
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;

 private:
  std::string name_;
  std::optional<std::string> old_;
};

// The file's bytes as they are; empty when it cannot be read.
std::string read_text(const std::filesystem::path& path);

// Replaces the file's contents; false when the stream failed. It asserts nothing itself, since
// forked children (where Catch2 must not report) use it too.
bool write_text(const std::filesystem::path& path, const std::string& text);

// Environment changes on top of this process's: a value sets, nullopt unsets.
using EnvChanges = std::map<std::string, std::optional<std::string>>;

// This process's environment with the changes applied, as NAME=value entries for a child.
std::vector<std::string> environment_with(const EnvChanges& changes);

// Changes that unset every KILN_* variable of this process, so that a child sees none of the
// caller's kiln settings.
EnvChanges unset_kiln_variables();

// A program to run as a child process, without a shell.
struct Command {
  std::vector<std::string> argv;   // argv[0] is searched in PATH when it has no slash
  std::vector<std::string> env;    // the child's whole environment (see environment_with)
  std::filesystem::path out, err;  // files for stdout and stderr: no pipe can fill up
  unsigned timeout_s = 0;          // SIGALRM after this many seconds (it survives exec); 0: none
};

// How a child ended and what it wrote.
struct ProcessResult {
  bool exited = false;  // ended through exit, not killed by a signal
  int exit_code = -1;   // when exited
  int signal = 0;       // when not
  std::string out, err;
};

// Starts the command and returns at once; finish_process collects it.
pid_t start_process(const Command& command);

// Waits for pid to end, then reads the files its stdout and stderr went to.
ProcessResult finish_process(pid_t pid, const std::filesystem::path& out,
                             const std::filesystem::path& err);

// start_process and finish_process in one.
ProcessResult run_process(const Command& command);

// The JSON document on stdout of a run that must have succeeded (exit code 0).
nlohmann::json success_json(const ProcessResult& r);

}  // namespace kiln::test
