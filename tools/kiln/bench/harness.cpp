#include "bench/harness.hpp"

#include <algorithm>
#include <cmath>

#include "bench/cublaslt_ref.hpp"
#include "gemm/fp8_host.hpp"

namespace kiln::bench {

Timer::Timer(CUstream stream) : stream_(stream), flush_(size_t{256} << 20) {
  KILN_CU(driver::get().cuEventCreate(&start_, CU_EVENT_DEFAULT));
  KILN_CU(driver::get().cuEventCreate(&stop_, CU_EVENT_DEFAULT));
}

Timer::~Timer() {
  driver::get().cuEventDestroy(start_);
  driver::get().cuEventDestroy(stop_);
}

void Timer::flush(int salt) {
  KILN_CU(driver::get().cuMemsetD8Async(flush_.ptr(), static_cast<unsigned char>(salt),
                                        flush_.bytes(), stream_));
}

void Timer::start() { KILN_CU(driver::get().cuEventRecord(start_, stream_)); }

double Timer::stop_us() {
  const auto& cu = driver::get();
  KILN_CU(cu.cuEventRecord(stop_, stream_));
  KILN_CU(cu.cuEventSynchronize(stop_));
  float ms = 0;
  KILN_CU(cu.cuEventElapsedTime(&ms, start_, stop_));
  return ms * 1e3;
}

double Timer::median(std::vector<double>& values) {
  std::nth_element(values.begin(), values.begin() + values.size() / 2, values.end());
  return values[values.size() / 2];
}

Fp8Buffers::Fp8Buffers(int m_, int n_, int k_, std::mt19937_64& rng)
    : m(m_), n(n_), k(k_), ld_sb(CublasLtGemm::sb_leading_dim(k_)) {
  const int kb = (k + 127) / 128, nb = (n + 127) / 128;
  a = driver::DeviceBuffer(size_t(m) * k);
  b = driver::DeviceBuffer(size_t(n) * k);
  sa = driver::DeviceBuffer(size_t(kb) * m * 4);
  sb = driver::DeviceBuffer(size_t(nb) * ld_sb * 4);
  d = driver::DeviceBuffer(size_t(m) * n * 2);
  a.upload(gemm::random_e4m3(size_t(m) * k, rng));
  b.upload(gemm::random_e4m3(size_t(n) * k, rng));
  sa.upload(gemm::random_scales(size_t(kb) * m, rng));
  sb.upload(gemm::random_scales(size_t(nb) * ld_sb, rng));
}

GemmFp8Args Fp8Buffers::args() const {
  GemmFp8Args args;
  args.m = m, args.n = n, args.k = k;
  args.a = a.get_as(), args.b = b.get_as(), args.d = d.get_as();
  args.sa = sa.get_as<float>(), args.sa_layout = ScaleLayout::kColMajor, args.ld_sa = m;
  args.sb = sb.get_as<float>(), args.ld_sb = ld_sb;
  return args;
}

GroupedBuffers::GroupedBuffers(GroupedLayout layout_, int groups_, int m_, int n_, int k_,
                               std::mt19937_64& rng)
    : layout(layout_), groups(groups_), m(m_), n(n_), k(k_),
      rows_per_group(layout_ == GroupedLayout::kContiguousByRow
                         ? (m_ + grouped_m_alignment() - 1) / grouped_m_alignment() *
                               grouped_m_alignment()
                         : m_) {
  const size_t rows = size_t(rows_per_group) * groups;
  const int kb = (k + 127) / 128, nb = (n + 127) / 128;
  a = driver::DeviceBuffer(rows * k);
  b = driver::DeviceBuffer(size_t(groups) * n * k);
  sa = driver::DeviceBuffer(rows * kb * 4);
  sb = driver::DeviceBuffer(size_t(groups) * nb * kb * 4);
  d = driver::DeviceBuffer(rows * n * 2);
  a.upload(gemm::random_e4m3(rows * k, rng));
  b.upload(gemm::random_e4m3(size_t(groups) * n * k, rng));
  sa.upload(gemm::random_scales(rows * kb, rng));
  sb.upload(gemm::random_scales(size_t(groups) * nb * kb, rng));
  std::vector<int> group_info;
  if (layout == GroupedLayout::kMasked) {
    group_info.assign(groups, m);
  } else if (layout == GroupedLayout::kContiguousByRow) {
    group_info.assign(rows, -1);
    for (int g = 0; g < groups; ++g)
      std::fill(group_info.begin() + size_t(g) * rows_per_group,
                group_info.begin() + size_t(g) * rows_per_group + m, g);
  } else {
    for (int g = 0; g <= groups; ++g) group_info.push_back(g * m);
  }
  info = driver::DeviceBuffer(group_info.size() * 4);
  info.upload(group_info);
}

GroupedGemmFp8Args GroupedBuffers::args() const {
  GroupedGemmFp8Args x;
  x.layout = layout, x.num_groups = groups, x.n = n, x.k = k;
  x.m = layout == GroupedLayout::kMasked ? m : rows_per_group * groups;
  x.a = a.get_as(), x.b = b.get_as(), x.sa = sa.get_as<float>(), x.sb = sb.get_as<float>();
  x.d = d.get_as(), x.group_info = info.get_as<int>();
  return x;
}

std::vector<uint16_t> random_bf16(size_t count, std::mt19937_64& rng) {
  std::uniform_real_distribution<float> dist(-1.f, 1.f);
  std::vector<uint16_t> out(count);
  for (auto& x : out) x = gemm::float_to_bf16(dist(rng));
  return out;
}

double rel_l2_bf16(const std::vector<uint16_t>& x, const std::vector<uint16_t>& ref) {
  double num = 0, den = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    const double a = gemm::bf16_to_float(x[i]), b = gemm::bf16_to_float(ref[i]);
    num += (a - b) * (a - b);
    den += b * b;
  }
  return std::sqrt(num / std::max(den, 1e-300));
}

double copy_bandwidth_gbps(Timer& timer, CUstream stream) {
  const size_t bytes = size_t{1} << 30;
  driver::DeviceBuffer src(bytes), dst(bytes);
  const double us = timer.median_us(10, [&] {
    KILN_CU(driver::get().cuMemcpyDtoDAsync(dst.ptr(), src.ptr(), bytes, stream));
  });
  return 2.0 * bytes / us / 1e3;
}

}  // namespace kiln::bench
