// The kiln command-line tool: one subcommand per file.
#pragma once
#include <CLI/CLI.hpp>

#include <functional>
#include <string>

namespace kiln::cli {

// Exit codes: 0 ok, 1 failure, 2 usage.
inline constexpr int kExitOk = 0;
inline constexpr int kExitFailure = 1;
inline constexpr int kExitUsage = 2;

// Each add_* registers a subcommand and sets *run to its body (returning an exit code).
void add_info(CLI::App& app, std::function<int()>* run);
void add_compile(CLI::App& app, std::function<int()>* run);
void add_warm(CLI::App& app, std::function<int()>* run);
void add_bench(CLI::App& app, std::function<int()>* run);
void add_cache(CLI::App& app, std::function<int()>* run);
void add_tune(CLI::App& app, std::function<int()>* run);
void add_score(CLI::App& app, std::function<int()>* run);

// "sm_90a" -> 90; throws kiln::Error(kInvalidArgument) for anything else.
int parse_arch(const std::string& arch);

}  // namespace kiln::cli
