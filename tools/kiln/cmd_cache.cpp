// kiln cache: look after the on-disk kernel cache: path, ls, verify, prune, export, import.
// The work is in cache/inspect.cpp; this file parses arguments and prints.
#include <fmt/format.h>

#include <algorithm>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "cache/inspect.hpp"
#include "cache/logger.hpp"
#include "cache/store.hpp"
#include "cli.hpp"

namespace kiln::cli {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

struct CacheOptions {
  bool json = false;
  std::string older_than, max_size, file;
  bool dry_run = false;
  std::optional<int64_t> older_than_s;
  std::optional<uint64_t> max_bytes;
};

fs::path cache_root() {
  // Store::lookup warns about each entry it quarantines; these commands report them.
  if (std::getenv("KILN_LOG_LEVEL") == nullptr) kiln::log().set_level(spdlog::level::err);
  return cache::default_cache_dir();
}

void print_json(const json& j) { fmt::print("{}\n", j.dump(2)); }

json problems_json(const std::vector<cache::Problem>& problems) {
  json out = json::array();
  for (const auto& p : problems) out.push_back({{"key", p.key}, {"reason", p.reason}});
  return out;
}

int run_path(const CacheOptions& o) {
  const fs::path root = cache_root();
  if (o.json)
    print_json({{"cache_dir", root.string()}});
  else
    fmt::print("{}\n", root.string());
  return kExitOk;
}

int run_ls(const CacheOptions& o) {
  const fs::path root = cache_root();
  const std::vector<cache::EntryInfo> entries = cache::list_entries(root);
  const int64_t now = static_cast<int64_t>(std::time(nullptr));
  static const char* const kFields[] = {"kind", "n", "k", "block_m", "block_n", "stages"};

  json rows = json::array();
  uint64_t cubin_bytes = 0, bytes = 0;
  size_t unreadable = 0;
  for (const auto& e : entries) {
    json row = {{"key", e.key},
                {"kernel", e.readable ? e.manifest.kernel : "(unreadable)"},
                {"readable", e.readable}};
    const json config = e.readable ? json::parse(e.manifest.config, nullptr, false) : json();
    for (const char* field : kFields)
      row[field] = config.is_object() && config.contains(field) ? config[field] : json();
    row["cubin_bytes"] = e.cubin_bytes;
    row["bytes"] = e.bytes;
    row["created_unix"] = e.created_unix;
    row["age_seconds"] = std::max<int64_t>(now - e.created_unix, 0);
    row["age"] = cache::format_age(now - e.created_unix);
    if (!e.readable) row["problem"] = e.problem, ++unreadable;
    rows.push_back(std::move(row));
    cubin_bytes += e.cubin_bytes;
    bytes += e.bytes;
  }
  if (o.json) {
    print_json({{"cache_dir", root.string()},
                {"entries", rows},
                {"count", entries.size()},
                {"unreadable", unreadable},
                {"cubin_bytes", cubin_bytes},
                {"bytes", bytes}});
    return kExitOk;
  }

  auto cell = [](const json& v) {
    return v.is_null() ? std::string("-") : v.is_string() ? v.get<std::string>() : v.dump();
  };
  size_t kernel_width = 6;
  for (const auto& row : rows)
    kernel_width = std::max(kernel_width, row["kernel"].get<std::string>().size());
  if (!rows.empty())
    fmt::print("{:<32}  {:<{}}  {:<6} {:>6} {:>6} {:>4} {:>4} {:>6} {:>8} {:>5}\n", "KEY", "KERNEL",
               kernel_width, "KIND", "N", "K", "BM", "BN", "STAGES", "SIZE", "AGE");
  for (const auto& row : rows)
    fmt::print("{:<32}  {:<{}}  {:<6} {:>6} {:>6} {:>4} {:>4} {:>6} {:>8} {:>5}\n",
               row["key"].get<std::string>(), row["kernel"].get<std::string>(), kernel_width,
               cell(row["kind"]), cell(row["n"]), cell(row["k"]), cell(row["block_m"]),
               cell(row["block_n"]), cell(row["stages"]),
               cache::format_bytes(row["cubin_bytes"].get<uint64_t>()),
               row["age"].get<std::string>());
  fmt::print("{} entr{} ({} unreadable), {} of cubins, {} in all, in {}\n", entries.size(),
             entries.size() == 1 ? "y" : "ies", unreadable, cache::format_bytes(cubin_bytes),
             cache::format_bytes(bytes), root.string());
  return kExitOk;
}

int run_verify(const CacheOptions& o) {
  const fs::path root = cache_root();
  const cache::VerifyReport r = cache::verify_entries(root);
  const size_t bad = r.quarantined.size() + r.left.size();
  if (o.json) {
    print_json({{"cache_dir", root.string()},
                {"ok", r.ok},
                {"quarantined", problems_json(r.quarantined)},
                {"left", problems_json(r.left)}});
  } else {
    fmt::print("verify: {} ok, {} quarantined, {} bad but left in place\n", r.ok,
               r.quarantined.size(), r.left.size());
    for (const auto& p : r.quarantined)
      fmt::print("bad {}: {} (moved to {})\n", p.key, p.reason, (root / "quarantine").string());
    for (const auto& p : r.left) fmt::print("bad {}: {} (left in place)\n", p.key, p.reason);
  }
  return bad == 0 ? kExitOk : kExitFailure;
}

int run_prune(const CacheOptions& o) {
  const fs::path root = cache_root();
  cache::PruneOptions options;
  options.older_than_s = o.older_than_s;
  options.max_bytes = o.max_bytes;
  options.dry_run = o.dry_run;
  const cache::PruneReport r = cache::prune(root, options);
  if (o.json) {
    json removed = json::array();
    for (const auto& e : r.removed)
      removed.push_back(
          {{"key", e.key}, {"kernel", e.kernel}, {"bytes", e.bytes}, {"reason", e.reason}});
    print_json({{"cache_dir", root.string()},
                {"dry_run", o.dry_run},
                {"removed", removed},
                {"removed_count", r.removed.size()},
                {"removed_bytes", r.removed_bytes},
                {"kept", r.kept},
                {"kept_bytes", r.kept_bytes},
                {"quarantine_removed", r.quarantine_removed},
                {"quarantine_bytes", r.quarantine_bytes},
                {"tmp_removed", r.tmp_removed},
                {"tmp_bytes", r.tmp_bytes},
                {"errors", r.errors}});
  } else {
    const char* verb = o.dry_run ? "would remove" : "removed";
    for (const auto& e : r.removed)
      fmt::print("{} {} {} ({}, {})\n", verb, e.key, e.kernel.empty() ? "(unreadable)" : e.kernel,
                 cache::format_bytes(e.bytes), e.reason == "age" ? "too old" : "over --max-size");
    fmt::print(
        "prune{}: {} {} entries ({}), kept {} ({}); {} {} quarantined ({}) and {} stale "
        "tmp/ leftovers ({})\n",
        o.dry_run ? " (dry run)" : "", verb, r.removed.size(), cache::format_bytes(r.removed_bytes),
        r.kept, cache::format_bytes(r.kept_bytes), verb, r.quarantine_removed,
        cache::format_bytes(r.quarantine_bytes), r.tmp_removed, cache::format_bytes(r.tmp_bytes));
  }
  for (const auto& e : r.errors) fmt::print(stderr, "kiln: error: {}\n", e);
  return r.errors.empty() ? kExitOk : kExitFailure;
}

int run_export(const CacheOptions& o) {
  const fs::path root = cache_root();
  const cache::ExportReport r = cache::export_bundle(root, o.file);
  if (o.json) {
    print_json({{"cache_dir", root.string()},
                {"file", o.file},
                {"exported", r.keys},
                {"skipped", problems_json(r.skipped)}});
  } else {
    fmt::print("exported {} entries to {}\n", r.keys.size(), o.file);
    for (const auto& p : r.skipped) fmt::print("skipped {}: {}\n", p.key, p.reason);
  }
  return kExitOk;
}

int run_import(const CacheOptions& o) {
  const fs::path root = cache_root();
  const cache::ImportReport r = cache::import_bundle(root, o.file);
  if (o.json) {
    print_json({{"cache_dir", root.string()},
                {"file", o.file},
                {"refused", r.refused.empty() ? json() : json(r.refused)},
                {"imported", r.imported},
                {"present", r.present},
                {"rejected", problems_json(r.rejected)}});
  } else if (!r.refused.empty()) {
    fmt::print(stderr, "kiln: error: refusing to import {}: {}\n", o.file, r.refused);
  } else {
    fmt::print("import: {} imported, {} already present, {} rejected\n", r.imported.size(),
               r.present.size(), r.rejected.size());
    for (const auto& p : r.rejected) fmt::print("rejected {}: {}\n", p.key, p.reason);
  }
  return r.refused.empty() && r.rejected.empty() ? kExitOk : kExitFailure;
}

bool has_suffix(const std::string& text, const std::string& suffix) {
  return text.size() > suffix.size() &&
         text.compare(text.size() - suffix.size(), suffix.size(), suffix) == 0;
}

}  // namespace

void add_cache(CLI::App& app, std::function<int()>* run) {
  auto* cache =
      app.add_subcommand("cache", "List, verify, prune, export or import the kernel cache");
  cache->require_subcommand(1);
  auto o = std::make_shared<CacheOptions>();
  // body == nullptr: the caller installs a callback that validates first.
  auto add = [&](const char* name, const char* help, int (*body)(const CacheOptions&)) {
    auto* cmd = cache->add_subcommand(name, help);
    cmd->add_flag("--json", o->json, "Print JSON");
    if (body) cmd->callback([run, o, body] { *run = [o, body] { return body(*o); }; });
    return cmd;
  };
  add("path", "Print the cache directory", run_path);
  add("ls", "List the entries: kernel, shape, configuration, size, age", run_ls);
  add("verify", "Rehash every entry; quarantine bad ones (exit 1 if any)", run_verify);

  auto* prune = add("prune", "Remove old entries, or the oldest down to a size; clear quarantine/",
                    nullptr);
  auto* older = prune->add_option("--older-than", o->older_than,
                                  "Remove entries created longer ago than this (30m, 12h, 7d)");
  auto* max = prune->add_option("--max-size", o->max_size,
                                "Then remove the oldest until the rest fit (bytes, or 500M, 2G)");
  prune->add_flag("--dry-run", o->dry_run, "Report what would be removed; remove nothing");
  prune->callback([run, o, older, max] {
    if (!*older && !*max) throw CLI::RequiredError("--older-than or --max-size");
    if (*older) {
      o->older_than_s = cache::parse_duration(o->older_than);
      if (!o->older_than_s)
        throw CLI::ValidationError(
            "--older-than", "'" + o->older_than + "' is not a duration such as 30m, 12h or 7d");
    }
    if (*max) {
      o->max_bytes = cache::parse_size(o->max_size);
      if (!o->max_bytes)
        throw CLI::ValidationError(
            "--max-size", "'" + o->max_size + "' is not a size such as 1048576, 500M or 2G");
    }
    *run = [o] { return run_prune(*o); };
  });

  auto* exp = add("export", "Write the verified entries to a .tar or .tar.gz bundle", nullptr);
  exp->add_option("FILE", o->file, "The archive to write (.tar, .tar.gz or .tgz)")->required();
  exp->callback([run, o] {
    if (!has_suffix(o->file, ".tar") && !has_suffix(o->file, ".tar.gz") &&
        !has_suffix(o->file, ".tgz"))
      throw CLI::ValidationError("FILE", "'" + o->file + "' must end in .tar, .tar.gz or .tgz");
    *run = [o] { return run_export(*o); };
  });

  auto* imp =
      add("import", "Add the entries of a bundle that verify (exit 1 if any does not)", run_import);
  imp->add_option("FILE", o->file, "The archive to read")->required()->check(CLI::ExistingFile);
}

}  // namespace kiln::cli
