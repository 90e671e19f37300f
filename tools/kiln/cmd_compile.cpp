// kiln compile: compile (or find in the cache) the kernel a shape uses; needs no GPU.
#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include "cli.hpp"
#include "gemm/config.hpp"
#include "kiln/error.hpp"
#include "kiln/runtime.hpp"
#include "runtime_impl.hpp"
#include "shapes.hpp"

namespace kiln::cli {

int parse_arch(const std::string& arch) {
  if (arch == "sm_90a" || arch == "sm90a" || arch == "90a") return 90;
  throw Error(ErrorCode::kInvalidArgument,
              "--arch " + arch + " is not supported; kiln targets sm_90a (H100/H200)");
}

namespace {

const char* outcome_name(cache::Outcome outcome) {
  switch (outcome) {
    case cache::Outcome::kDiskHit: return "cached";
    case cache::Outcome::kCompiled: return "compiled";
    case cache::Outcome::kCompiledNotStored: return "compiled (not stored: cache not writable)";
  }
  return "?";
}

struct CompileOptions {
  std::string kind = "dense";
  int m = 0, n = 0, k = 0, groups = 1, sms = 132;
  std::string arch = "sm_90a";
  std::string config;  // empty: the heuristic's
  bool json = false;
};

}  // namespace

void add_compile(CLI::App& app, std::function<int()>* run) {
  auto* cmd = app.add_subcommand("compile", "Compile the kernel for one shape (no GPU needed)");
  auto o = std::make_shared<CompileOptions>();
  cmd->add_option("--kind", o->kind, "Kernel kind")
      ->check(CLI::IsMember({"dense", "grouped-contiguous", "grouped-offsets", "grouped-masked"}))
      ->capture_default_str();
  cmd->add_option("--groups", o->groups, "Groups (experts) of a grouped kind")
      ->check(CLI::Range(1, 1024));
  cmd->add_option("--m", o->m,
                  "Rows of A and D; grouped: rows per group (masked: expected rows per group)")
      ->required()->check(CLI::PositiveNumber);
  cmd->add_option("--n", o->n, "Rows of B, columns of D")->required()->check(CLI::PositiveNumber);
  cmd->add_option("--k", o->k, "Reduction dimension")->required()->check(CLI::PositiveNumber);
  cmd->add_option("--arch", o->arch, "Target architecture")->capture_default_str();
  cmd->add_option("--sms", o->sms, "SM count the configuration is chosen for (132: H100/H200 SXM)")
      ->capture_default_str()->check(CLI::Range(1, 1024));
  cmd->add_option("--config", o->config,
                  "Block config to compile instead of the heuristic's, as kiln bench names it "
                  "(e.g. 64x64x8k2g16; --sms is then not used)");
  cmd->add_flag("--json", o->json, "Print JSON");
  cmd->callback([run, o] {
    *run = [o] {
      gemm::KernelSpec spec;
      spec.arch = parse_arch(o->arch);
      spec.kind = kernel_kind(o->kind);
      spec.n = o->n, spec.k = o->k;
      if (spec.kind == gemm::Kind::kDense && o->groups != 1)
        throw Error(ErrorCode::kInvalidArgument,
                    fmt::format("--groups {} is for grouped kinds; --kind dense has one group",
                                o->groups));
      if (o->n % 8 != 0 || o->k % 16 != 0)
        throw Error(ErrorCode::kInvalidArgument,
                    fmt::format("--n {} --k {}: N must be a multiple of 8 and K of 16", o->n, o->k));
      if (o->config.empty()) {
        spec.config = gemm::heuristic_config(o->m * o->groups, o->n, o->k, o->sms, spec.kind);
      } else {
        if (!gemm::parse_config_name(o->config, &spec.config))
          throw Error(ErrorCode::kInvalidArgument,
                      fmt::format("--config {}: not a config name; write it as kiln bench "
                                  "prints it, e.g. 64x64x8k2g16",
                                  o->config));
        const std::string bad = gemm::check_config(spec.config, spec.n, spec.k, spec.kind);
        if (!bad.empty())
          throw Error(ErrorCode::kInvalidArgument,
                      fmt::format("--config {}: {} is not supported", o->config, bad));
      }
      const CompiledKernel c = Runtime::instance().impl().compile(spec);
      const cache::Manifest& m = c.entry.manifest;
      const std::string cubin =
          c.entry.dir.empty() ? std::string() : (c.entry.dir / "kernel.cubin").string();
      nlohmann::json out = {{"kernel", m.kernel}, {"key", c.key.hex()},
                            {"outcome", outcome_name(c.outcome)}, {"cubin", cubin},
                            {"lowered_name", m.lowered_name}, {"registers", m.registers},
                            {"spill_bytes", m.spill_bytes},
                            {"shared_memory_bytes", m.dynamic_smem_bytes},
                            {"compile_ms", m.compile_ms}, {"cubin_bytes", m.cubin_size},
                            {"config", nlohmann::json::parse(m.config)}};
      if (o->json) {
        fmt::print("{}\n", out.dump(2));
        return kExitOk;
      }
      fmt::print("kernel          {}\n", m.kernel);
      fmt::print("key             {}\n", c.key.hex());
      fmt::print("outcome         {}\n", outcome_name(c.outcome));
      fmt::print("cubin           {}\n", cubin.empty() ? "(memory only)" : cubin);
      fmt::print("registers       {}\n", m.registers);
      fmt::print("spills          {} bytes\n", m.spill_bytes);
      fmt::print("shared memory   {} bytes\n", m.dynamic_smem_bytes);
      fmt::print("compile time    {:.0f} ms\n", m.compile_ms);
      return kExitOk;
    };
  });
}

}  // namespace kiln::cli
