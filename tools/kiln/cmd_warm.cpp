// kiln warm: compile a whole shape set into the cache with parallel NVRTC workers; no GPU
// needed. For each (kind, N, K) it compiles every configuration the heuristic picks for
// M = 1 .. the largest M listed, so a server meets no compile at any batch size.
#include <fmt/format.h>

#include <atomic>
#include <chrono>
#include <map>
#include <tuple>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>

#include "cli.hpp"
#include "gemm/config.hpp"
#include "kiln/error.hpp"
#include "progress.hpp"
#include "runtime_impl.hpp"
#include "shapes.hpp"

namespace kiln::cli {
namespace {

struct WarmOptions {
  ShapeSource shapes;
  std::string out_dir, arch = "sm_90a";
  int jobs = 0, sms = 132;
  bool json = false;
};

int run_warm(const WarmOptions& o) {
  const int arch = parse_arch(o.arch);
  const std::vector<ShapeSpec> shapes = o.shapes.load();
  std::map<std::tuple<gemm::Kind, int, int>, int> max_m;  // (kind, n, k) -> largest M
  for (const auto& s : shapes) {
    int& top = max_m[{kernel_kind(s.kind), s.n, s.k}];
    top = std::max(top, config_m(s));
  }
  std::unique_ptr<Runtime> own;
  Runtime* runtime = &Runtime::instance();
  if (!o.out_dir.empty()) {
    own = std::make_unique<Runtime>(RuntimeOptions{o.out_dir, true, ""});
    runtime = own.get();
  }

  // Every configuration the heuristic picks for M up to the largest in the set, and, like
  // warm_up_gemm_fp8, the tuning database's configurations for GPUs with --sms SMs whose
  // M ranges start at or below it (no GPU here to name the device).
  std::vector<gemm::KernelSpec> specs;
  auto add = [&](gemm::Kind kind, int n, int k, const gemm::Config& config) {
    gemm::KernelSpec spec;
    spec.kind = kind, spec.arch = arch, spec.n = n, spec.k = k, spec.config = config;
    if (std::find(specs.begin(), specs.end(), spec) == specs.end()) specs.push_back(spec);
  };
  const gemm::TuningDb& db = runtime->impl().tuning_db();
  for (const auto& [key, m_max] : max_m) {
    const auto [kind, n, k] = key;
    for (int m : gemm::heuristic_m_breakpoints(m_max, n, k, o.sms, kind))
      add(kind, n, k, gemm::heuristic_config(m, n, k, o.sms, kind));
    for (const gemm::TunedEntry* e : db.reachable(o.sms, kind, n, k, m_max))
      if (e->arch == o.arch) add(kind, n, k, e->config);
  }
  const int jobs = o.jobs > 0 ? o.jobs : std::max(1u, std::thread::hardware_concurrency());
  const auto start = std::chrono::steady_clock::now();
  std::atomic<size_t> next{0}, done{0}, compiled{0}, reused{0};
  std::mutex mutex;
  std::vector<std::string> failures;
  nlohmann::json kernels = nlohmann::json::array();
  Progress progress("warm", specs.size());
  auto worker = [&] {
    for (size_t i; (i = next.fetch_add(1)) < specs.size();) {
      try {
        const CompiledKernel c = runtime->impl().compile(specs[i]);
        (c.outcome == cache::Outcome::kDiskHit ? reused : compiled).fetch_add(1);
        std::lock_guard lock(mutex);
        kernels.push_back({{"kernel", c.entry.manifest.kernel}, {"key", c.key.hex()},
                           {"cached", c.outcome == cache::Outcome::kDiskHit},
                           {"compile_ms", c.entry.manifest.compile_ms}});
      } catch (const Error& e) {
        std::lock_guard lock(mutex);
        failures.push_back(fmt::format("{}: {}", gemm::describe(specs[i]), e.what()));
      }
      const size_t d = done.fetch_add(1) + 1;
      std::lock_guard lock(mutex);
      progress.update(d, fmt::format("compiled {} cached {} failed {}", compiled.load(),
                                     reused.load(), failures.size()));
    }
  };
  std::vector<std::thread> threads;
  for (int t = 0; t < std::min<int>(jobs, static_cast<int>(specs.size())); ++t)
    threads.emplace_back(worker);
  for (auto& t : threads) t.join();
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

  if (o.json) {
    fmt::print("{}\n", nlohmann::json{{"cache_dir", runtime->cache_dir()},
                                      {"shapes", shapes.size()},
                                      {"kernels", specs.size()},
                                      {"compiled", compiled.load()},
                                      {"cached", reused.load()},
                                      {"failed", failures},
                                      {"seconds", seconds},
                                      {"jobs", jobs},
                                      {"entries", kernels}}
                           .dump(2));
  } else {
    fmt::print("warm: {} shapes -> {} kernels for {} ({} SMs) in {}\n", shapes.size(),
               specs.size(), o.arch, o.sms, runtime->cache_dir());
    fmt::print("      compiled {}, already cached {}, failed {}, {:.1f} s with {} workers\n",
               compiled.load(), reused.load(), failures.size(), seconds, jobs);
    for (const auto& f : failures) fmt::print(stderr, "failed: {}\n", f);
  }
  return failures.empty() ? kExitOk : kExitFailure;
}

}  // namespace

void add_warm(CLI::App& app, std::function<int()>* run) {
  auto* cmd = app.add_subcommand("warm", "Compile a model's or a file's shape set into the cache");
  auto o = std::make_shared<WarmOptions>();
  add_shape_options(cmd, &o->shapes);
  cmd->add_option("--arch", o->arch, "Target architecture")->capture_default_str();
  cmd->add_option("--jobs,-j", o->jobs, "Parallel NVRTC workers (default: all cores)")
      ->check(CLI::Range(1, 256));
  cmd->add_option("--sms", o->sms, "SM count of the target GPU (132: H100/H200 SXM)")
      ->capture_default_str()->check(CLI::Range(1, 1024));
  cmd->add_option("--out", o->out_dir, "Write into this cache directory (a bundle) instead");
  cmd->add_flag("--json", o->json, "Print JSON");
  cmd->callback([run, o] {
    if (!o->shapes.given()) throw CLI::RequiredError("--model or --shapes");
    *run = [o] { return run_warm(*o); };
  });
}

}  // namespace kiln::cli
