// kiln score: how close the heuristic's picks come to the fastest measured configuration,
// from the output of `kiln tune --json` (every candidate's time per shape). It needs no GPU:
// after changing the heuristic's model (src/gemm/config.cpp), score it against stored
// timings (data/tune/) before timing anything again.
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "cli.hpp"
#include "gemm/config.hpp"
#include "kiln/error.hpp"
#include "shapes.hpp"

namespace kiln::cli {
namespace {

struct ScoreOptions {
  std::vector<std::string> files;
  double max_regret_pct = 0;  // 0: no limit
  bool json = false, verbose = false;
};

struct Scored {
  std::string device, kind;
  int sms = 0, m = 0, n = 0, k = 0;
  std::string pick, best;
  double pick_us = NAN, best_us = NAN;  // pick_us NaN: the pick was not timed
  int stale = 0;  // timings of configurations the current kernels no longer support
  double regret() const { return pick_us / best_us; }
};

nlohmann::json read_json(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw Error(ErrorCode::kInvalidArgument, fmt::format("{}: cannot be read", path));
  try {
    return nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    throw Error(ErrorCode::kInvalidArgument,
                fmt::format("{}: not JSON ({}); give the output of kiln tune --json", path,
                            e.what()));
  }
}

// One file's shapes that carry candidate times; throws naming the file and the field.
std::vector<Scored> score_file(const std::string& path) {
  const nlohmann::json doc = read_json(path);
  std::vector<Scored> out;
  try {
    const std::string device = doc.at("device").get<std::string>();
    const int sms = doc.at("sms").get<int>();
    for (const auto& r : doc.at("results")) {
      if (!r.contains("candidates") || r.at("candidates").empty()) continue;
      Scored s;
      s.device = device, s.sms = sms;
      s.kind = r.value("kind", std::string("dense"));
      s.m = r.at("m").get<int>(), s.n = r.at("n").get<int>(), s.k = r.at("k").get<int>();
      const int m_config = r.value("m_config", s.m);
      const gemm::Kind kind = kernel_kind(s.kind);
      const gemm::Config pick = gemm::heuristic_config(m_config, s.n, s.k, sms, kind);
      s.pick = gemm::config_name(pick);
      double bandless_us = NAN;  // the pick's block shape timed before the bands, if at all
      for (const auto& c : r.at("candidates")) {
        if (c.at("us").is_null()) continue;
        const std::string name = c.at("config").get<std::string>();
        gemm::Config config;
        if (!gemm::parse_config_name(name, &config))
          throw Error(ErrorCode::kInvalidArgument,
                      fmt::format("{}: shape {} x {} x {}: \"{}\" is not a configuration name "
                                  "(block_m x block_n x stages, then m2, kN or gN)",
                                  path, s.m, s.n, s.k, name));
        const double us = c.at("us").get<double>();
        if (!(us > 0)) continue;
        // A configuration the kernels no longer support (e.g. a split that no longer fits
        // next to its receive buffers) is out of the heuristic's reach: not a "best".
        if (!gemm::check_config(config, s.n, s.k, kind).empty()) {
          ++s.stale;
          continue;
        }
        if (std::isnan(s.best_us) || us < s.best_us) s.best_us = us, s.best = name;
        // The band height (group_m, band_rows) is not what is scored: timings stored before
        // it was chosen per K (names without a g suffix: 8) count for the pick's block shape
        // where the pick itself was not timed.
        if (config == pick) s.pick_us = us;
        config.group_m = pick.group_m;
        if (config == pick) bandless_us = us;
      }
      if (std::isnan(s.pick_us)) s.pick_us = bandless_us;
      if (!std::isnan(s.best_us)) out.push_back(s);
    }
  } catch (const nlohmann::json::exception& e) {
    throw Error(ErrorCode::kInvalidArgument,
                fmt::format("{}: not the output of kiln tune --json ({})", path, e.what()));
  }
  return out;
}

int run_score(const ScoreOptions& o) {
  std::vector<Scored> all;
  for (const std::string& f : o.files) {
    std::vector<Scored> s = score_file(f);
    all.insert(all.end(), s.begin(), s.end());
  }
  double log_sum = 0;
  int scored = 0, untimed = 0, stale = 0;
  const Scored* worst = nullptr;
  for (const Scored& s : all) {
    stale += s.stale;
    if (std::isnan(s.pick_us)) {
      ++untimed;
      continue;
    }
    ++scored;
    log_sum += std::log(s.regret());
    if (!worst || s.regret() > worst->regret()) worst = &s;
  }
  const double mean = scored ? std::exp(log_sum / scored) : 1.0;
  const bool over = o.max_regret_pct > 0 && worst &&
                    (worst->regret() - 1) * 100 > o.max_regret_pct;

  if (o.json) {
    nlohmann::json rows = nlohmann::json::array();
    for (const Scored& s : all)
      rows.push_back({{"device", s.device}, {"sms", s.sms}, {"kind", s.kind}, {"m", s.m},
                      {"n", s.n}, {"k", s.k}, {"heuristic", s.pick},
                      {"heuristic_us", s.pick_us}, {"best", s.best}, {"best_us", s.best_us}});
    fmt::print("{}\n", nlohmann::json{{"shapes", rows},
                                      {"scored", scored},
                                      {"heuristic_not_timed", untimed},
                                      {"stale_timings", stale},
                                      {"mean_slowdown", mean},
                                      {"worst_slowdown", worst ? worst->regret() : 1.0}}
                           .dump(2));
    return over ? kExitFailure : kExitOk;
  }
  auto label = [](const Scored& s) { return fmt::format("{} ({} SMs)", s.device, s.sms); };
  size_t width = 6;
  for (const Scored& s : all) width = std::max(width, label(s).size());
  fmt::print("{:<{}} {:>5} {:>6} {:>6} | {:>14} {:>8} | {:>14} {:>8} | {}\n", "device", width,
             "M", "N", "K", "heuristic", "us", "best", "us", "slower by");
  for (const Scored& s : all) {
    const bool untimed_pick = std::isnan(s.pick_us);
    if (!o.verbose && !untimed_pick && s.regret() < 1.01) continue;
    fmt::print("{:<{}} {:>5} {:>6} {:>6} | {:>14} {:>8} | {:>14} {:>8.1f} | {}\n", label(s),
               width, s.m, s.n, s.k, s.pick,
               untimed_pick ? std::string("-") : fmt::format("{:.1f}", s.pick_us), s.best,
               s.best_us,
               untimed_pick ? std::string("not timed")
                            : fmt::format("{:.1f}%", (s.regret() - 1) * 100));
  }
  fmt::print("{} shapes scored from {} file(s){}: the heuristic's pick is {:.2f}% slower than "
             "the fastest timed on average (geometric), at most {:.1f}%{}\n",
             scored, o.files.size(),
             untimed ? fmt::format(" ({} more whose pick was not timed)", untimed) : "",
             (mean - 1) * 100, worst ? (worst->regret() - 1) * 100 : 0.0,
             worst ? fmt::format(" ({} x {} x {} on {})", worst->m, worst->n, worst->k,
                                 worst->device)
                   : "");
  if (stale)
    fmt::print("({} timings of configurations the current kernels no longer support were left "
               "out)\n",
               stale);
  if (over)
    fmt::print(stderr, "kiln: the worst pick is over --max-regret {}%\n", o.max_regret_pct);
  return over ? kExitFailure : kExitOk;
}

}  // namespace

void add_score(CLI::App& app, std::function<int()>* run) {
  auto o = std::make_shared<ScoreOptions>();
  CLI::App* cmd = app.add_subcommand(
      "score", "Score the heuristic against stored kiln tune --json timings (no GPU needed)");
  cmd->add_option("files", o->files, "Outputs of kiln tune --json (every candidate's time)")
      ->required()
      ->check(CLI::ExistingFile);
  cmd->add_option("--max-regret", o->max_regret_pct,
                  "Exit 1 if any pick is more than this many % slower than the fastest")
      ->check(CLI::NonNegativeNumber);
  cmd->add_flag("--json", o->json, "Print JSON");
  cmd->add_flag("-v,--verbose", o->verbose,
                "List every shape (default: only picks more than 1% slower, or not timed)");
  cmd->callback([run, o] { *run = [o] { return run_score(*o); }; });
}

}  // namespace kiln::cli
