// kiln bench: time kiln's FP8 GEMM against cuBLASLt in the same process on the same buffers.
// Method (see docs/PERFORMANCE.md): random inputs, warm-up, L2 flushed (256 MiB memset)
// before every timed run, CUDA events around the GEMM alone, median of --iters runs.
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>
#include <random>

#include "bench/cublaslt_ref.hpp"
#include "cli.hpp"
#include "driver/device_buffer.hpp"
#include "gemm/fp8_host.hpp"
#include "kiln/gemm.hpp"
#include "kiln/runtime.hpp"

namespace kiln::cli {
namespace {

using driver::DeviceBuffer;

struct Shape {
  int m, n, k;
};

// DeepSeek-V3 dense GEMMs (N, K) of ../shared/BENCHMARKS.md.
constexpr int kDeepSeekNK[][2] = {{2112, 7168}, {24576, 1536}, {32768, 512},
                                  {7168, 16384}, {4096, 7168},  {7168, 2048}};

struct BenchOptions {
  std::vector<int> ms = {64, 128, 4096};
  int n = 0, k = 0;
  int iters = 30;
  bool json = false, csv = false, no_reference = false;
};

class Timer {
 public:
  explicit Timer(CUstream stream) : stream_(stream), flush_(size_t{256} << 20) {
    const auto& cu = driver::get();
    KILN_CU(cu.cuEventCreate(&start_, CU_EVENT_DEFAULT));
    KILN_CU(cu.cuEventCreate(&stop_, CU_EVENT_DEFAULT));
  }
  ~Timer() {
    driver::get().cuEventDestroy(start_);
    driver::get().cuEventDestroy(stop_);
  }
  // Median microseconds of fn over iters runs, each after an L2 flush.
  template <typename F>
  double median_us(int iters, F&& fn) {
    const auto& cu = driver::get();
    for (int i = 0; i < 3; ++i) fn();
    std::vector<double> times;
    for (int i = 0; i < iters; ++i) {
      KILN_CU(cu.cuMemsetD8Async(flush_.ptr(), static_cast<unsigned char>(i), flush_.bytes(),
                                 stream_));
      KILN_CU(cu.cuEventRecord(start_, stream_));
      fn();
      KILN_CU(cu.cuEventRecord(stop_, stream_));
      KILN_CU(cu.cuEventSynchronize(stop_));
      float ms = 0;
      KILN_CU(cu.cuEventElapsedTime(&ms, start_, stop_));
      times.push_back(ms * 1e3);
    }
    std::nth_element(times.begin(), times.begin() + times.size() / 2, times.end());
    return times[times.size() / 2];
  }

 private:
  CUstream stream_;
  DeviceBuffer flush_;
  CUevent start_ = nullptr, stop_ = nullptr;
};

std::vector<uint16_t> random_bf16(size_t count, std::mt19937_64& rng) {
  std::uniform_real_distribution<float> dist(-1.f, 1.f);
  std::vector<uint16_t> out(count);
  for (auto& x : out) x = gemm::float_to_bf16(dist(rng));
  return out;
}

double rel_l2(const std::vector<uint16_t>& x, const std::vector<uint16_t>& ref) {
  double num = 0, den = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    const double a = gemm::bf16_to_float(x[i]), b = gemm::bf16_to_float(ref[i]);
    num += (a - b) * (a - b);
    den += b * b;
  }
  return std::sqrt(num / std::max(den, 1e-300));
}

int run_bench(const BenchOptions& o) {
  driver::PrimaryContext context;
  CUstream stream = nullptr;
  KILN_CU(driver::get().cuStreamCreate(&stream, CU_STREAM_NON_BLOCKING));
  char name[256] = {};
  driver::get().cuDeviceGetName(name, sizeof(name), context.device());
  Timer timer(stream);

  // Copy bandwidth of this card: 1 GiB device-to-device, bytes read + written.
  double copy_gbps = 0;
  {
    const size_t bytes = size_t{1} << 30;
    DeviceBuffer src(bytes), dst(bytes);
    const double us = timer.median_us(10, [&] {
      KILN_CU(driver::get().cuMemcpyDtoDAsync(dst.ptr(), src.ptr(), bytes, stream));
    });
    copy_gbps = 2.0 * bytes / us / 1e3;
  }
  constexpr double kPeakTflops = 1979.0;  // dense FP8 peak of H100/H200 SXM

  std::vector<Shape> shapes;
  if (o.n > 0) {
    for (int m : o.ms) shapes.push_back({m, o.n, o.k});
  } else {
    for (int m : o.ms)
      for (const auto& nk : kDeepSeekNK) shapes.push_back({m, nk[0], nk[1]});
  }

  DeviceBuffer workspace(size_t{32} << 20);
  std::mt19937_64 rng(12345);
  nlohmann::json rows = nlohmann::json::array();
  double log_ratio_sum = 0;
  int ratio_count = 0;
  if (!o.json && !o.csv)
    fmt::print("{}  copy bandwidth {:.0f} GB/s\n{:>5} {:>6} {:>6} | {:>8} {:>6} {:>6} {:>6} | "
               "{:>8} {:>6} | {:>8} {:>8} | {:>8}\n",
               name, copy_gbps, "M", "N", "K", "kiln us", "TFLOPS", "GB/s", "floor%",
               "cuBLASLt", "ratio", "tensor", "bf16", "diff");
  else if (o.csv)
    fmt::print("gpu,m,n,k,kiln_us,kiln_tflops,kiln_gbps,floor_us,blk_us,ratio,tensor_us,bf16_us,"
               "rel_diff\n");

  for (const Shape& s : shapes) {
    const int kb = (s.k + 127) / 128, nb = (s.n + 127) / 128;
    const int64_t ld_sb = bench::CublasLtGemm::sb_leading_dim(s.k);
    DeviceBuffer a(size_t(s.m) * s.k), b(size_t(s.n) * s.k);
    DeviceBuffer sa(size_t(kb) * s.m * 4), sb(size_t(nb) * ld_sb * 4);
    DeviceBuffer d(size_t(s.m) * s.n * 2), d_ref(size_t(s.m) * s.n * 2);
    a.upload(gemm::random_e4m3(size_t(s.m) * s.k, rng));
    b.upload(gemm::random_e4m3(size_t(s.n) * s.k, rng));
    sa.upload(gemm::random_scales(size_t(kb) * s.m, rng));
    sb.upload(gemm::random_scales(size_t(nb) * ld_sb, rng));

    GemmFp8Args args;
    args.m = s.m, args.n = s.n, args.k = s.k;
    args.a = a.get_as(), args.b = b.get_as(), args.d = d.get_as();
    args.sa = sa.get_as<float>(), args.sa_layout = ScaleLayout::kColMajor, args.ld_sa = s.m;
    args.sb = sb.get_as<float>(), args.ld_sb = ld_sb;
    const double kiln_us = timer.median_us(o.iters, [&] { gemm_fp8(args, stream); });

    const double flops = 2.0 * s.m * s.n * s.k;
    const double bytes = double(s.m) * s.k + double(s.n) * s.k + 4.0 * s.m * kb +
                         4.0 * nb * kb + 2.0 * s.m * s.n;
    const double floor_us = std::max(bytes / copy_gbps / 1e3, flops / kPeakTflops / 1e6);

    double blk_us = NAN, tensor_us = NAN, bf16_us = NAN, diff = NAN;
    if (!o.no_reference) {
      bench::CublasLtGemm blk(bench::RefKind::kFp8BlockScaled, s.m, s.n, s.k,
                              workspace.get_as(), workspace.bytes());
      if (blk.supported()) {
        blk_us = timer.median_us(o.iters, [&] {
          blk.run(a.get_as(), b.get_as(), sa.get_as<float>(), sb.get_as<float>(),
                  d_ref.get_as(), stream);
        });
        KILN_CU(driver::get().cuStreamSynchronize(stream));
        diff = rel_l2(d.download<uint16_t>(size_t(s.m) * s.n),
                      d_ref.download<uint16_t>(size_t(s.m) * s.n));
      }
      bench::CublasLtGemm tensor(bench::RefKind::kFp8TensorScaled, s.m, s.n, s.k,
                                 workspace.get_as(), workspace.bytes());
      if (tensor.supported())
        tensor_us = timer.median_us(o.iters, [&] {
          tensor.run(a.get_as(), b.get_as(), sa.get_as<float>(), sb.get_as<float>(),
                     d_ref.get_as(), stream);
        });
      DeviceBuffer a16(size_t(s.m) * s.k * 2), b16(size_t(s.n) * s.k * 2);
      a16.upload(random_bf16(size_t(s.m) * s.k, rng));
      b16.upload(random_bf16(size_t(s.n) * s.k, rng));
      bench::CublasLtGemm bf16(bench::RefKind::kBf16, s.m, s.n, s.k, workspace.get_as(),
                               workspace.bytes());
      if (bf16.supported())
        bf16_us = timer.median_us(o.iters, [&] {
          bf16.run(a16.get_as(), b16.get_as(), nullptr, nullptr, d_ref.get_as(), stream);
        });
    }
    const double ratio = blk_us / kiln_us;
    if (std::isfinite(ratio)) log_ratio_sum += std::log(ratio), ++ratio_count;
    const double tflops = flops / kiln_us / 1e6, gbps = bytes / kiln_us / 1e3;
    rows.push_back({{"m", s.m}, {"n", s.n}, {"k", s.k}, {"kiln_us", kiln_us},
                    {"kiln_tflops", tflops}, {"kiln_gbps", gbps}, {"floor_us", floor_us},
                    {"cublaslt_block_us", blk_us}, {"ratio_vs_cublaslt_block", ratio},
                    {"cublaslt_tensor_us", tensor_us}, {"cublas_bf16_us", bf16_us},
                    {"rel_diff_vs_cublaslt", diff}});
    if (o.csv)
      fmt::print("\"{}\",{},{},{},{:.2f},{:.1f},{:.0f},{:.2f},{:.2f},{:.3f},{:.2f},{:.2f},{:.2e}\n",
                 name, s.m, s.n, s.k, kiln_us, tflops, gbps, floor_us, blk_us, ratio, tensor_us,
                 bf16_us, diff);
    else if (!o.json)
      fmt::print("{:>5} {:>6} {:>6} | {:>8.1f} {:>6.0f} {:>6.0f} {:>6.0f} | {:>8.1f} {:>6.2f} | "
                 "{:>8.1f} {:>8.1f} | {:>8.1e}\n",
                 s.m, s.n, s.k, kiln_us, tflops, gbps, 100.0 * floor_us / kiln_us, blk_us, ratio,
                 tensor_us, bf16_us, diff);
  }
  const double geomean = ratio_count ? std::exp(log_ratio_sum / ratio_count) : NAN;
  if (o.json) {
    nlohmann::json out = {{"gpu", name}, {"copy_gbps", copy_gbps}, {"shapes", rows},
                          {"geomean_ratio_vs_cublaslt_block", geomean},
                          {"kiln_stats",
                           {{"kernels_compiled", Runtime::instance().stats().kernels_compiled},
                            {"disk_hits", Runtime::instance().stats().disk_hits}}}};
    fmt::print("{}\n", out.dump(2));
  } else if (!o.csv) {
    fmt::print("geometric mean of kiln / cuBLASLt block-scaled speed-up: {:.3f} over {} shapes\n",
               geomean, ratio_count);
  }
  driver::get().cuStreamDestroy(stream);
  return kExitOk;
}

}  // namespace

void add_bench(CLI::App& app, std::function<int()>* run) {
  auto* cmd = app.add_subcommand("bench", "Time kiln against cuBLASLt on this GPU");
  auto o = std::make_shared<BenchOptions>();
  cmd->add_option("--m", o->ms, "M values (default 64 128 4096)")->delimiter(',');
  cmd->add_option("--n", o->n, "N (default: the DeepSeek-V3 dense shapes)");
  cmd->add_option("--k", o->k, "K (with --n)");
  cmd->add_option("--iters", o->iters, "Timed runs per measurement")->check(CLI::Range(1, 10000));
  cmd->add_flag("--json", o->json, "Print JSON");
  cmd->add_flag("--csv", o->csv, "Print CSV");
  cmd->add_flag("--no-reference", o->no_reference, "Skip the cuBLASLt runs");
  cmd->callback([run, o] {
    if ((o->n > 0) != (o->k > 0)) throw CLI::ValidationError("--n/--k", "give both or neither");
    *run = [o] { return run_bench(*o); };
  });
}

}  // namespace kiln::cli
