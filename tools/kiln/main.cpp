#include <cstdio>
#include <exception>

#include "cli.hpp"
#include "kiln/error.hpp"
#include "kiln/version.hpp"

int main(int argc, char** argv) {
  CLI::App app{"kiln: run-time compiled FP8 GEMMs for NVIDIA Hopper"};
  app.set_version_flag("--version", KILN_VERSION_STRING);
  app.require_subcommand(1);
  std::function<int()> run;
  kiln::cli::add_info(app, &run);
  kiln::cli::add_compile(app, &run);
  kiln::cli::add_warm(app, &run);
  kiln::cli::add_bench(app, &run);
  kiln::cli::add_cache(app, &run);
  kiln::cli::add_tune(app, &run);
  kiln::cli::add_score(app, &run);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);
    return code == 0 ? kiln::cli::kExitOk : kiln::cli::kExitUsage;
  }
  try {
    return run();
  } catch (const kiln::Error& e) {
    std::fprintf(stderr, "kiln: error: %s\n", e.what());
    if (!e.detail().empty()) std::fprintf(stderr, "%s\n", e.detail().c_str());
    return e.code() == kiln::ErrorCode::kInvalidArgument ? kiln::cli::kExitUsage
                                                         : kiln::cli::kExitFailure;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "kiln: error: %s\n", e.what());
    return kiln::cli::kExitFailure;
  }
}
