#include "gemm/tuning_db.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <unistd.h>

#include "log.hpp"

namespace kiln::gemm {
namespace {

constexpr int kDbVersion = 1;



uint64_t problem_hash(uint64_t device, int sms, Kind kind, int n, int k) {
  uint64_t h = device;
  for (uint64_t v : {uint64_t(sms), uint64_t(kind), uint64_t(n), uint64_t(k)})
    h = (h ^ v) * 0x100000001B3ull;
  return h;
}

bool same_problem(const TunedEntry& a, const TunedEntry& b) {
  return a.arch == b.arch && a.device == b.device && a.sms == b.sms && a.kind == b.kind &&
         a.n == b.n && a.k == b.k;
}

nlohmann::json to_json(const TunedEntry& e) {
  return {{"arch", e.arch}, {"device", e.device}, {"sms", e.sms}, {"kind", to_string(e.kind)},
          {"n", e.n}, {"k", e.k}, {"m_min", e.m_min}, {"m_max", e.m_max},
          {"m_tuned", e.m_tuned}, {"us", e.us}, {"heuristic_us", e.heuristic_us},
          {"kernels", e.kernels},
          {"config", {{"block_m", e.config.block_m}, {"block_n", e.config.block_n},
                      {"stages", e.config.stages}, {"group_m", e.config.group_m},
                      {"multicast_n", e.config.multicast_n}, {"split_k", e.config.split_k}}}};
}

TunedEntry from_json(const nlohmann::json& j) {
  TunedEntry e;
  e.arch = j.at("arch").get<std::string>();
  e.device = j.at("device").get<std::string>();
  e.sms = j.at("sms").get<int>();
  const std::string kind = j.at("kind").get<std::string>();
  if (!parse_kind(kind, &e.kind)) throw std::runtime_error("unknown kind " + kind);
  e.n = j.at("n").get<int>(), e.k = j.at("k").get<int>();
  e.m_min = j.at("m_min").get<int>(), e.m_max = j.at("m_max").get<int>();
  e.m_tuned = j.at("m_tuned").get<int>();
  e.us = j.at("us").get<double>(), e.heuristic_us = j.at("heuristic_us").get<double>();
  e.kernels = j.value("kernels", std::string());  // absent in files from before it was kept
  const auto& c = j.at("config");
  e.config = {c.at("block_m").get<int>(), c.at("block_n").get<int>(),
              c.at("stages").get<int>(),  c.at("group_m").get<int>(),
              c.at("multicast_n").get<int>(), c.at("split_k").get<int>()};
  return e;
}

}  // namespace

TuningDb TuningDb::load(const std::filesystem::path& path) {
  TuningDb db;
  std::ifstream in(path);
  if (!in) return db;
  try {
    std::stringstream text;
    text << in.rdbuf();
    const auto j = nlohmann::json::parse(text.str());
    if (j.at("version").get<int>() != kDbVersion)
      throw std::runtime_error(fmt::format("version {} (expected {})",
                                           j.at("version").get<int>(), kDbVersion));
    int index = 0;
    for (const auto& item : j.at("entries")) {
      ++index;
      TunedEntry e = from_json(item);
      const std::string problem = check_config(e.config, e.n, e.k, e.kind);
      if (!problem.empty()) {
        log().warn("tuning database {}: entry {} ({} n={} k={} m={}..{}) has an unsupported "
                   "configuration, {}; skipped (kiln tune on the shape replaces it)",
                   path.string(), index, to_string(e.kind), e.n, e.k, e.m_min,
                   e.m_max, problem);
        continue;
      }
      db.entries_.push_back(std::move(e));
    }
    db.rebuild_index();
  } catch (const std::exception& e) {
    log().warn("tuning database {} is unreadable ({}); using the heuristic", path.string(),
               e.what());
    db.entries_.clear();
  }
  return db;
}

bool TuningDb::save(const std::filesystem::path& path, std::string* error) const {
  nlohmann::json j = {{"version", kDbVersion}, {"entries", nlohmann::json::array()}};
  for (const auto& e : entries_) j["entries"].push_back(to_json(e));
  std::error_code ec;
  if (path.has_parent_path()) std::filesystem::create_directories(path.parent_path(), ec);
  const auto tmp = path.string() + fmt::format(".tmp.{}", getpid());
  {
    std::ofstream out(tmp);
    out << j.dump(1) << "\n";
    if (!out.flush()) {
      if (error) *error = "cannot write " + tmp;
      std::filesystem::remove(tmp, ec);
      return false;
    }
  }
  std::filesystem::rename(tmp, path, ec);
  if (ec) {
    if (error) *error = fmt::format("cannot rename {} to {}: {}", tmp, path.string(), ec.message());
    std::filesystem::remove(tmp, ec);
    return false;
  }
  return true;
}

uint64_t device_hash(const std::string& device_name) {
  uint64_t h = 0xCBF29CE484222325ull;  // FNV-1a
  for (unsigned char c : device_name) h = (h ^ c) * 0x100000001B3ull;
  return h;
}

void TuningDb::rebuild_index() {
  index_.clear();
  for (size_t i = 0; i < entries_.size(); ++i) {
    const TunedEntry& e = entries_[i];
    index_[problem_hash(device_hash(e.device), e.sms, e.kind, e.n, e.k)].push_back(i);
  }
}

const Config* TuningDb::find(uint64_t device, int sms, Kind kind, int n, int k, int m) const {
  if (index_.empty()) return nullptr;
  const auto it = index_.find(problem_hash(device, sms, kind, n, k));
  if (it == index_.end()) return nullptr;
  for (size_t i : it->second) {
    const TunedEntry& e = entries_[i];
    if (e.sms == sms && e.kind == kind && e.n == n && e.k == k && e.m_min <= m && m <= e.m_max)
      return &e.config;
  }
  return nullptr;
}

const TunedEntry* TuningDb::find_tuned(const std::string& device, int sms, Kind kind, int n,
                                       int k, int m_tuned) const {
  for (const auto& e : entries_)
    if (e.device == device && e.sms == sms && e.kind == kind && e.n == n && e.k == k &&
        e.m_tuned == m_tuned)
      return &e;
  return nullptr;
}

std::vector<const TunedEntry*> TuningDb::reachable(int sms, Kind kind, int n, int k,
                                                   int max_m) const {
  std::vector<const TunedEntry*> out;
  for (const auto& e : entries_)
    if (e.sms == sms && e.kind == kind && e.n == n && e.k == k && e.m_min <= max_m)
      out.push_back(&e);
  return out;
}

void TuningDb::upsert(const TunedEntry& entry) {
  auto same = [&](const TunedEntry& e) {
    return same_problem(e, entry) && e.m_tuned == entry.m_tuned;
  };
  entries_.erase(std::remove_if(entries_.begin(), entries_.end(), same), entries_.end());
  entries_.push_back(entry);
  std::vector<TunedEntry*> group;
  for (auto& e : entries_)
    if (same_problem(e, entry)) group.push_back(&e);
  std::sort(group.begin(), group.end(),
            [](const TunedEntry* a, const TunedEntry* b) { return a->m_tuned < b->m_tuned; });
  int previous = 0;
  for (TunedEntry* e : group) {
    e->m_min = previous + 1;
    e->m_max = e->m_tuned;
    previous = e->m_tuned;
  }
  rebuild_index();
}

std::filesystem::path default_tuning_db_path(const std::filesystem::path& cache_dir) {
  if (const char* env = std::getenv("KILN_TUNING_DB"); env && *env) return env;
  return cache_dir / "tuning.json";
}

}  // namespace kiln::gemm
