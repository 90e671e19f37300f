// kiln bench: time kiln's FP8 GEMM against cuBLASLt in the same process on the same buffers
// (method: bench/harness.hpp and docs/PERFORMANCE.md).
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <random>

#include "bench/cublaslt_ref.hpp"
#include "bench/harness.hpp"
#include "bench/host_time.hpp"
#include "cli.hpp"
#include "gemm/check.hpp"
#include "gemm/config.hpp"
#include "kiln/gemm.hpp"
#include "kiln/runtime.hpp"
#include "progress.hpp"
#include "runtime_impl.hpp"
#include "shapes.hpp"

namespace kiln::cli {
namespace {

using driver::DeviceBuffer;

struct BenchOptions {
  std::vector<int> ms = {64, 128, 4096};
  int n = 0, k = 0;
  ShapeSource shapes;
  int iters = 30;
  std::string l2 = "rotate";
  bool json = false, csv = false, no_reference = false, chain = false;
  int host_threads = 1;
};

// The 18 dense shapes of the benchmark: M in {64, 128, 4096} x DeepSeek-V3's (N, K).
std::vector<ShapeSpec> standard_shapes(const std::vector<int>& ms) {
  std::vector<ShapeSpec> shapes;
  const auto model = model_shapes("deepseek-v3");
  for (int m : ms)
    for (const auto& s : model)
      if (s.kind == "dense" && s.m == model.front().m) shapes.push_back({s.kind, m, s.n, s.k, 1});
  return shapes;
}

int run_bench(const BenchOptions& o) {
  std::vector<ShapeSpec> shapes;
  if (o.shapes.given()) shapes = o.shapes.load();
  else if (o.n > 0)
    for (int m : o.ms) shapes.push_back({"dense", m, o.n, o.k, 1});
  else shapes = standard_shapes(o.ms);

  driver::PrimaryContext context;
  const auto& cu = driver::get();
  CUstream stream = nullptr;
  KILN_CU(cu.cuStreamCreate(&stream, CU_STREAM_NON_BLOCKING));
  bench::Timer timer(stream, o.l2 == "flush" ? bench::L2Mode::kFlush : bench::L2Mode::kRotate);
  Runtime::Impl& rt = Runtime::instance().impl();
  const DeviceInfo& device = rt.current_device();
  const double copy_gbps = bench::copy_bandwidth_gbps(timer, stream);
  // Events around each run (docs/PERFORMANCE.md), or around 16 runs back to back (--chain).
  auto time_us = [&](auto&& fn) {
    return o.chain ? timer.chain_us(o.iters, fn) : timer.median_us(o.iters, fn);
  };
  constexpr double kPeakTflops = 1979.0;  // dense FP8 peak of H100/H200 SXM

  std::mt19937_64 rng(12345);
  // Latency of kiln itself, on the first dense shape, before anything else runs: the first
  // call in this process (disk cache load or compile, plus load onto the GPU), then the host
  // time of a warm call (enqueue only, many calls back to back from --host-threads threads;
  // the kernel is ~10 us) and of an empty kernel's launch, the driver's floor
  // (bench/host_time.hpp).
  double first_call_ms = NAN, host_us = NAN, empty_launch_us = NAN;
  std::string first_call_source;
  for (const ShapeSpec& s : shapes) {
    if (s.kind != "dense") continue;
    bench::Fp8Buffers buf(s.m, s.n, s.k, timer, rng);
    const GemmFp8Args args = buf.args();
    const RuntimeStats before = Runtime::instance().stats();
    auto t0 = std::chrono::steady_clock::now();
    gemm_fp8(args, stream);
    KILN_CU(cu.cuStreamSynchronize(stream));
    first_call_ms =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    const RuntimeStats after = Runtime::instance().stats();
    first_call_source = after.kernels_compiled > before.kernels_compiled ? "compiled"
                        : after.disk_hits > before.disk_hits           ? "from the disk cache"
                                                                       : "already loaded";
    // Every thread writes its own D; the inputs are shared.
    host_us = bench::host_us_per_call(o.host_threads, [&](CUstream thread_stream) {
      auto d = std::make_shared<DeviceBuffer>(size_t(s.m) * s.n * 2);
      GemmFp8Args thread_args = args;
      thread_args.d = d->get_as<void>();
      return std::function<void()>(
          [thread_args, d, thread_stream] { gemm_fp8(thread_args, thread_stream); });
    });
    empty_launch_us = bench::empty_launch_us(o.host_threads);
    if (!o.json && !o.csv)
      fmt::print("first call in this process ({}x{}x{}): {:.2f} ms ({}); host time per warm "
                 "call: {:.2f} us ({} thread{}, each its own stream; an empty kernel's launch: "
                 "{:.2f} us)\n",
                 s.m, s.n, s.k, first_call_ms, first_call_source, host_us, o.host_threads,
                 o.host_threads == 1 ? "" : "s", empty_launch_us);
    break;
  }

  DeviceBuffer workspace(size_t{32} << 20);
  nlohmann::json rows = nlohmann::json::array();
  double log_ratio_sum = 0;
  int ratio_count = 0;
  if (o.csv)
    fmt::print("gpu,m,n,k,config,source,kiln_us,kiln_tflops,kiln_gbps,floor_us,blk_us,ratio,"
               "tensor_us,bf16_us,rel_diff\n");
  else if (!o.json)
    fmt::print("{}, copy bandwidth {:.0f} GB/s, {} SMs{}\n{:>5} {:>6} {:>6} {:>12} | {:>8} {:>6} "
               "{:>6} {:>6} | {:>8} {:>6} | {:>8} {:>8} | {:>7}\n",
               device.name, copy_gbps, device.num_sms,
               fmt::format("{}, programmatic launch {}",
                           o.chain ? ", runs back to back (--chain)" : "",
                           rt.programmatic_launch() ? "on" : "off"),
               "M", "N", "K", "config", "kiln us",
               "TFLOPS", "GB/s", "floor%", "cuBLASLt", "ratio", "tensor", "bf16", "diff");

  std::vector<ShapeSpec> grouped;
  Progress progress("bench", shapes.size());
  size_t done = 0;
  for (const ShapeSpec& s : shapes) {
    progress.update(done++, fmt::format("{}x{}x{}", s.m, s.n, s.k));
    if (s.kind != "dense") {
      grouped.push_back(s);
      continue;
    }
    bench::Fp8Buffers buf(s.m, s.n, s.k, timer, rng);
    DeviceBuffer d_ref(size_t(s.m) * s.n * 2);
    const ConfigChoice choice = rt.choose_config(gemm::Kind::kDense, s.m, s.n, s.k, device);
    const std::string config = gemm::config_name(choice.config) + (choice.tuned ? "*" : "");
    const double kiln_us =
        time_us([&](int run) { gemm_fp8(buf.args(run), stream); });

    const int kb = (s.k + 127) / 128, nb = (s.n + 127) / 128;
    const double flops = 2.0 * s.m * s.n * s.k;
    const double bytes = double(s.m) * s.k + double(s.n) * s.k + 4.0 * s.m * kb +
                         4.0 * nb * kb + 2.0 * s.m * s.n;
    const double floor_us = std::max(bytes / copy_gbps / 1e3, flops / kPeakTflops / 1e6);

    double blk_us = NAN, tensor_us = NAN, bf16_us = NAN, diff = NAN;
    if (!o.no_reference) {
      bench::CublasLtGemm blk(bench::RefKind::kFp8BlockScaled, s.m, s.n, s.k,
                              workspace.get_as(), workspace.bytes());
      if (blk.supported()) {
        blk_us = time_us([&](int run) {
          const GemmFp8Args x = buf.args(run);
          blk.run(x.a, x.b, x.sa, x.sb, d_ref.get_as(), stream);
        });
        KILN_CU(cu.cuStreamSynchronize(stream));
        diff = bench::rel_l2_bf16(buf.d.download<uint16_t>(size_t(s.m) * s.n),
                                  d_ref.download<uint16_t>(size_t(s.m) * s.n));
      }
      bench::CublasLtGemm tensor(bench::RefKind::kFp8TensorScaled, s.m, s.n, s.k,
                                 workspace.get_as(), workspace.bytes());
      if (tensor.supported())
        tensor_us = time_us([&](int run) {
          const GemmFp8Args x = buf.args(run);
          tensor.run(x.a, x.b, x.sa, x.sb, d_ref.get_as(), stream);
        });
      // BF16 inputs rotate like the FP8 ones (scales unused).
      const size_t a16_bytes = size_t(s.m) * s.k * 2, b16_bytes = size_t(s.n) * s.k * 2;
      const std::vector<bench::InputSet> sets16 = bench::make_input_sets(
          timer.sets(a16_bytes + b16_bytes), a16_bytes, b16_bytes, 0, 0, rng);
      bench::CublasLtGemm bf16(bench::RefKind::kBf16, s.m, s.n, s.k, workspace.get_as(),
                               workspace.bytes());
      if (bf16.supported())
        bf16_us = time_us([&](int run) {
          const bench::InputSet& x = sets16[size_t(run) % sets16.size()];
          bf16.run(x.a.get_as(), x.b.get_as(), nullptr, nullptr, d_ref.get_as(), stream);
        });
    }
    const double ratio = blk_us / kiln_us;
    if (std::isfinite(ratio)) log_ratio_sum += std::log(ratio), ++ratio_count;
    const double tflops = flops / kiln_us / 1e6, gbps = bytes / kiln_us / 1e3;
    rows.push_back({{"m", s.m}, {"n", s.n}, {"k", s.k}, {"config", config},
                    {"tuned", choice.tuned}, {"kiln_us", kiln_us}, {"kiln_tflops", tflops},
                    {"kiln_gbps", gbps}, {"floor_us", floor_us}, {"cublaslt_block_us", blk_us},
                    {"ratio_vs_cublaslt_block", ratio}, {"cublaslt_tensor_us", tensor_us},
                    {"cublas_bf16_us", bf16_us}, {"rel_diff_vs_cublaslt", diff}});
    if (o.csv)
      fmt::print("\"{}\",{},{},{},{},{},{:.2f},{:.1f},{:.0f},{:.2f},{:.2f},{:.3f},{:.2f},{:.2f},"
                 "{:.2e}\n",
                 device.name, s.m, s.n, s.k, config, choice.tuned ? "tuned" : "heuristic",
                 kiln_us, tflops, gbps, floor_us, blk_us, ratio, tensor_us, bf16_us, diff);
    else if (!o.json)
      fmt::print("{:>5} {:>6} {:>6} {:>12} | {:>8.1f} {:>6.0f} {:>6.0f} {:>6.0f} | {:>8.1f} "
                 "{:>6.2f} | {:>8.1f} {:>8.1f} | {:>7.1e}\n",
                 s.m, s.n, s.k, config, kiln_us, tflops, gbps, 100.0 * floor_us / kiln_us,
                 blk_us, ratio, tensor_us, bf16_us, diff);
  }
  const double geomean = ratio_count ? std::exp(log_ratio_sum / ratio_count) : NAN;

  // Grouped shapes: kiln grouped against kiln dense at the same total M (no cuBLASLt
  // grouped block-scaled GEMM exists to compare with).
  nlohmann::json grouped_rows = nlohmann::json::array();
  if (!grouped.empty() && !o.json && !o.csv)
    fmt::print("{:>20} {:>3} {:>5} {:>6} {:>6} {:>9} | {:>8} {:>6} | {:>10} {:>8} | {:>9} {:>7}\n",
               "kind", "G", "M", "N", "K", "config", "kiln us", "TFLOPS", "dense us", "vs dense",
               "contig us", "vs cont");
  for (const ShapeSpec& s : grouped) {
    const gemm::Kind kind = kernel_kind(s.kind);
    const GroupedLayout layout = gemm::layout_of(kind);
    bench::GroupedBuffers buf(layout, s.groups, s.m, s.n, s.k, timer, rng);
    const GroupedGemmFp8Args args = buf.args();
    // The M the runtime chooses for (contiguous groups are padded to the alignment).
    const int chosen_for = gemm::check_grouped_args(args).config_m;
    const ConfigChoice choice = rt.choose_config(kind, chosen_for, s.n, s.k, device);
    const std::string config = gemm::config_name(choice.config) + (choice.tuned ? "*" : "");
    const double us =
        time_us([&](int run) { gemm_fp8_grouped(buf.args(run), stream); });
    bench::Fp8Buffers dense(config_m(s), s.n, s.k, timer, rng);
    const double dense_us =
        time_us([&](int run) { gemm_fp8(dense.args(run), stream); });
    // Masked: also the contiguous layout with the same groups and rows (the target compares
    // the two).
    double contiguous_us = NAN;
    if (layout == GroupedLayout::kMasked) {
      bench::GroupedBuffers contiguous(GroupedLayout::kContiguousByRow, s.groups, s.m, s.n, s.k,
                                       timer, rng);
      contiguous_us = timer.median_us(
          o.iters, [&](int run) { gemm_fp8_grouped(contiguous.args(run), stream); });
    }
    const double tflops = 2.0 * config_m(s) * s.n * s.k / us / 1e6;
    grouped_rows.push_back({{"kind", s.kind}, {"groups", s.groups}, {"m", s.m}, {"n", s.n},
                            {"k", s.k}, {"config", config}, {"kiln_us", us},
                            {"kiln_tflops", tflops}, {"dense_same_total_m_us", dense_us},
                            {"ratio_vs_dense", dense_us / us},
                            {"contiguous_same_groups_us", contiguous_us},
                            {"ratio_vs_contiguous", contiguous_us / us}});
    if (o.csv)
      fmt::print("\"{}\",{}:{}x{},{},{},{},{},{:.2f},{:.1f},,,,,,,\n", device.name, s.kind,
                 s.groups, s.m, s.n, s.k, config, choice.tuned ? "tuned" : "heuristic", us, tflops);
    else if (!o.json)
      fmt::print("{:>20} {:>3} {:>5} {:>6} {:>6} {:>9} | {:>8.1f} {:>6.0f} | {:>10.1f} {:>8.3f} | "
                 "{:>9.1f} {:>7.3f}\n",
                 s.kind, s.groups, s.m, s.n, s.k, config, us, tflops, dense_us, dense_us / us,
                 contiguous_us, contiguous_us / us);
  }
  const RuntimeStats stats = Runtime::instance().stats();
  if (o.json) {
    fmt::print("{}\n",
               nlohmann::json{{"gpu", device.name}, {"sms", device.num_sms},
                              {"copy_gbps", copy_gbps}, {"chain", o.chain},
                              {"programmatic_launch", rt.programmatic_launch()},
                              {"shapes", rows},
                              {"grouped", grouped_rows},
                              {"first_call_ms", first_call_ms},
                              {"first_call_source", first_call_source},
                              {"host_us_per_warm_call", host_us},
                              {"host_threads", o.host_threads},
                              {"empty_launch_us", empty_launch_us},
                              {"geomean_ratio_vs_cublaslt_block", geomean},
                              {"kernels_compiled", stats.kernels_compiled},
                              {"disk_hits", stats.disk_hits}}
                   .dump(2));
  } else if (!o.csv) {
    fmt::print("geometric mean speed-up over cuBLASLt block-scaled: {:.3f} ({} shapes); "
               "config * = from the tuning database; kernels compiled {}, from disk {}\n",
               geomean, ratio_count, stats.kernels_compiled, stats.disk_hits);
  }
  cu.cuStreamDestroy(stream);
  return kExitOk;
}

}  // namespace

void add_bench(CLI::App& app, std::function<int()>* run) {
  auto* cmd = app.add_subcommand("bench", "Time kiln against cuBLASLt on this GPU");
  auto o = std::make_shared<BenchOptions>();
  auto* m = cmd->add_option("--m", o->ms, "M values (default 64,128,4096)")->delimiter(',');
  auto* n = cmd->add_option("--n", o->n, "N (default: DeepSeek-V3's dense (N, K))")
                ->check(CLI::PositiveNumber);
  auto* k = cmd->add_option("--k", o->k, "K (with --n)")->check(CLI::PositiveNumber);
  add_shape_options(cmd, &o->shapes);
  for (auto* shape_option : {m, n, k})  // a shape set brings its own M, N and K
    shape_option->excludes("--model")->excludes("--shapes");
  cmd->add_option("--iters", o->iters, "Timed runs per measurement")->check(CLI::Range(1, 10000));
  cmd->add_flag("--json", o->json, "Print JSON");
  cmd->add_flag("--csv", o->csv, "Print CSV");
  cmd->add_flag("--no-reference", o->no_reference, "Skip the cuBLASLt runs");
  cmd->add_option("--l2", o->l2,
                  "How each timed run starts with a cold L2: rotate (own input copy per run, "
                  "default) or flush (256 MiB memset before each run)")
      ->check(CLI::IsMember({"rotate", "flush"}));
  cmd->add_option("--host-threads", o->host_threads,
                  "Threads that call kiln at once, each on its own stream, when the host time "
                  "per warm call is measured (default 1)")
      ->check(CLI::Range(1, 64));
  cmd->add_flag("--chain", o->chain,
                "Time runs back to back, 16 between two events (as a serving loop runs them; "
                "kiln's launches then overlap, unless KILN_PDL=0), instead of one run each");
  cmd->callback([run, o] {
    if ((o->n > 0) != (o->k > 0)) throw CLI::ValidationError("--n/--k", "give both or neither");
    if (o->chain && o->l2 == "flush")
      throw CLI::ValidationError("--chain", "needs --l2 rotate (a flush would sit between runs)");
    *run = [o] { return run_bench(*o); };
  });
}

}  // namespace kiln::cli
