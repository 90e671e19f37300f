// kiln tune: on a GPU, time every candidate configuration of each shape and persist the
// fastest in the tuning database, which the runtime consults before the heuristic.
// Resumable: shapes already in the database for this device, timed with these kernels and
// stored as one of today's candidates, are skipped (unless --force), and the database is saved
// after every shape.
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>

#include "bench/harness.hpp"
#include "cli.hpp"
#include "gemm/check.hpp"
#include "gemm/config.hpp"
#include "gemm/launch.hpp"
#include "gemm/tuning_db.hpp"
#include "jit/kernel_headers.hpp"
#include "kiln/error.hpp"
#include "progress.hpp"
#include "runtime_impl.hpp"
#include "shapes.hpp"

namespace kiln::cli {
namespace {

struct TuneOptions {
  ShapeSource shapes;
  std::string db;
  double budget_s = 0;  // 0: no limit
  int top = 0;          // 0: time every candidate
  int iters = 20;
  bool force = false, json = false, verbose = false;
};

int run_tune(const TuneOptions& o) {
  const std::vector<ShapeSpec> shapes = o.shapes.load();
  driver::PrimaryContext context;
  const auto& cu = driver::get();
  CUstream stream = nullptr;
  KILN_CU(cu.cuStreamCreate(&stream, CU_STREAM_NON_BLOCKING));
  bench::Timer timer(stream, bench::L2Mode::kRotate);
  Runtime& runtime = Runtime::instance();
  Runtime::Impl& rt = runtime.impl();
  const DeviceInfo& device = rt.current_device();
  const std::filesystem::path db_path =
      o.db.empty() ? rt.tuning_db_path() : std::filesystem::path(o.db);
  gemm::TuningDb db = gemm::TuningDb::load(db_path);

  const auto start = std::chrono::steady_clock::now();
  auto elapsed = [&] {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  };
  std::mt19937_64 rng(4242);
  nlohmann::json results = nlohmann::json::array();
  // Shapes tuned with these kernels among today's candidates are skipped; the others are
  // timed again: a kernel change can change which config is fastest, and a stored config that
  // is no longer among candidate_configs was not compared with those that are.
  const std::string kernels = jit::kernel_headers().digest;
  int tuned = 0, skipped = 0, left = 0, stale = 0, stale_candidates = 0;
  Progress progress("tune", shapes.size());
  if (!o.json)
    fmt::print("{} ({} SMs), database {}\n{:>5} {:>6} {:>6} | {:>14} {:>9} | {:>14} {:>9} | "
               "{:>7} {:>5}\n",
               device.name, device.num_sms, db_path.string(), "M", "N", "K", "heuristic", "us",
               "tuned", "us", "speedup", "timed");
  for (size_t i = 0; i < shapes.size(); ++i) {
    const ShapeSpec& s = shapes[i];
    progress.update(i, fmt::format("{}x{}x{}", s.m, s.n, s.k));
    // The problem to time, dense or grouped (then all groups full: masked_m = m), and the M
    // the runtime chooses its configuration for.
    const gemm::Kind kind = kernel_kind(s.kind);
    std::optional<bench::Fp8Buffers> dense;
    std::optional<bench::GroupedBuffers> grouped;
    if (kind == gemm::Kind::kDense) dense.emplace(s.m, s.n, s.k, timer, rng);
    else grouped.emplace(gemm::layout_of(kind), s.groups, s.m, s.n, s.k, timer, rng);
    const size_t sets = dense ? dense->sets.size() : grouped->sets.size();
    std::vector<gemm::Problem> problems;  // one per input copy
    for (size_t r = 0; r < sets; ++r)
      problems.push_back(dense ? gemm::check_fp8_args(dense->args(int(r)))
                               : gemm::check_grouped_args(grouped->args(int(r))));
    const int cm = problems.front().config_m;
    const gemm::TunedEntry* before =
        db.find_tuned(device.name, device.num_sms, kind, s.n, s.k, cm);
    std::vector<gemm::Config> candidates = gemm::candidate_configs(s.n, s.k, kind);
    const bool same_kernels = before && before->kernels == kernels;
    const bool candidate =
        before && std::find(candidates.begin(), candidates.end(), before->config) !=
                      candidates.end();
    if (!o.force && same_kernels && candidate) {
      ++skipped;
      continue;
    }
    const bool retune_stale = !o.force && before && !same_kernels;
    const bool retune_candidates = !o.force && before && same_kernels;
    if (o.budget_s > 0 && elapsed() > o.budget_s) {
      left = static_cast<int>(shapes.size() - i);
      break;
    }
    const gemm::Config heuristic = gemm::heuristic_config(cm, s.n, s.k, device.num_sms, kind);
    std::sort(candidates.begin(), candidates.end(), [&](const auto& a, const auto& b) {
      return gemm::estimate_time(a, cm, s.n, s.k, device.num_sms).total_us <
             gemm::estimate_time(b, cm, s.n, s.k, device.num_sms).total_us;
    });
    if (o.top > 0 && static_cast<int>(candidates.size()) > o.top) candidates.resize(o.top);
    if (std::find(candidates.begin(), candidates.end(), heuristic) == candidates.end())
      candidates.push_back(heuristic);

    double heuristic_us = NAN, best_us = INFINITY;
    gemm::Config best = heuristic;
    int timed = 0;
    nlohmann::json candidate_times = nlohmann::json::array();  // for kiln score
    for (const gemm::Config& c : candidates) {
      gemm::KernelSpec spec;
      spec.kind = kind, spec.n = s.n, spec.k = s.k, spec.config = c;
      try {
        rt.kernel(spec, stream);  // compiles and loads; a spilling kernel throws: skipped
      } catch (const Error&) {
        continue;
      }
      const double us =
          timer.median_us(o.iters, [&](int run) {
            gemm::launch_problem(runtime, problems[size_t(run) % problems.size()], &c, stream);
          });
      ++timed;
      const std::string name = gemm::config_name(c);
      candidate_times.push_back({{"config", name}, {"us", us}});
      if (o.verbose && !o.json)
        fmt::print("      {:>5} {:>6} {:>6}   {:<14} {:>9.1f} us\n", s.m, s.n, s.k, name, us);
      if (c == heuristic) heuristic_us = us;
      if (us < best_us) best_us = us, best = c;
    }
    gemm::TunedEntry entry;
    entry.device = device.name, entry.sms = device.num_sms, entry.n = s.n, entry.k = s.k;
    entry.kind = kind, entry.m_tuned = cm, entry.config = best, entry.us = best_us;
    entry.heuristic_us = heuristic_us, entry.kernels = kernels;
    db.upsert(entry);
    std::string error;
    if (!db.save(db_path, &error))
      throw Error(ErrorCode::kInternal, "cannot save the tuning database: " + error);
    ++tuned;
    stale += retune_stale, stale_candidates += retune_candidates;
    const std::string heuristic_name = gemm::config_name(heuristic);
    const std::string best_name = gemm::config_name(best);
    results.push_back({{"kind", s.kind}, {"groups", s.groups}, {"m", s.m}, {"n", s.n},
                       {"k", s.k}, {"m_config", cm}, {"heuristic", heuristic_name},
                       {"heuristic_us", heuristic_us}, {"tuned", best_name},
                       {"tuned_us", best_us}, {"candidates_timed", timed},
                       {"candidates", candidate_times}});
    if (!o.json)
      fmt::print("{:>5} {:>6} {:>6} | {:>14} {:>9.1f} | {:>14} {:>9.1f} | {:>7.3f} {:>5}\n", s.m,
                 s.n, s.k, heuristic_name, heuristic_us, best_name, best_us,
                 heuristic_us / best_us, timed);
  }
  cu.cuStreamDestroy(stream);
  if (o.json)
    fmt::print("{}\n", nlohmann::json{{"device", device.name}, {"sms", device.num_sms},
                                      {"kernels", kernels}, {"database", db_path.string()},
                                      {"tuned", tuned}, {"skipped_already_tuned", skipped},
                                      {"retuned_other_kernels", stale},
                                      {"retuned_other_candidates", stale_candidates},
                                      {"left_by_budget", left}, {"results", results}}
                           .dump(2));
  else
    fmt::print("tuned {} ({} timed before with other kernels, {} with other candidates), "
               "already in the database {}, left for lack of budget {} ({:.0f} s)\n",
               tuned, stale, stale_candidates, skipped, left, elapsed());
  return kExitOk;
}

}  // namespace

void add_tune(CLI::App& app, std::function<int()>* run) {
  auto* cmd = app.add_subcommand("tune", "Time every candidate config per shape; save the best");
  auto o = std::make_shared<TuneOptions>();
  add_shape_options(cmd, &o->shapes);
  cmd->add_option("--db", o->db, "Tuning database (default: KILN_TUNING_DB or <cache>/tuning.json)");
  cmd->add_option("--budget", o->budget_s, "Stop starting new shapes after this many seconds")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--top", o->top, "Time only the K most promising candidates (+ the heuristic's)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--iters", o->iters, "Timed runs per candidate")->check(CLI::Range(1, 10000));
  cmd->add_flag("--force", o->force,
                "Time every shape again (without it, only shapes timed with other kernels or "
                "stored with a config that is no longer a candidate, e.g. hand-edited)");
  cmd->add_flag("--verbose,-v", o->verbose, "Print every candidate's time");
  cmd->add_flag("--json", o->json, "Print JSON");
  cmd->callback([run, o] {
    if (!o->shapes.given()) throw CLI::RequiredError("--model or --shapes");
    *run = [o] { return run_tune(*o); };
  });
}

}  // namespace kiln::cli
