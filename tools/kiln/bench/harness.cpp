#include "bench/harness.hpp"

#include <algorithm>
#include <cmath>

#include "bench/cublaslt_ref.hpp"
#include "gemm/fp8_host.hpp"

namespace kiln::bench {

Timer::Timer(CUstream stream, L2Mode mode)
    : stream_(stream), mode_(mode), gate_(sizeof(uint32_t)) {
  const auto& cu = driver::get();
  CUdevice device = 0;
  int l2 = 0;
  KILN_CU(cu.cuCtxGetDevice(&device));
  KILN_CU(cu.cuDeviceGetAttribute(&l2, CU_DEVICE_ATTRIBUTE_L2_CACHE_SIZE, device));
  l2_bytes_ = static_cast<size_t>(l2);
  if (mode_ == L2Mode::kFlush) flush_ = driver::DeviceBuffer(size_t{256} << 20);
  KILN_CU(cu.cuMemsetD8(gate_.ptr(), 0, gate_.bytes()));
  KILN_CU(cu.cuStreamCreate(&gate_stream_, CU_STREAM_NON_BLOCKING));
  for (int i = 0; i < kRunsPerGate; ++i) {
    KILN_CU(cu.cuEventCreate(&start_[i], CU_EVENT_DEFAULT));
    KILN_CU(cu.cuEventCreate(&stop_[i], CU_EVENT_DEFAULT));
  }
}

Timer::~Timer() {
  const auto& cu = driver::get();
  for (int i = 0; i < kRunsPerGate; ++i) {
    if (start_[i]) cu.cuEventDestroy(start_[i]);
    if (stop_[i]) cu.cuEventDestroy(stop_[i]);
  }
  if (gate_stream_) cu.cuStreamDestroy(gate_stream_);
}

int Timer::sets(size_t bytes_per_set) const {
  if (mode_ == L2Mode::kFlush) return 1;
  const size_t want = 3 * l2_bytes_;
  const size_t per = std::max<size_t>(bytes_per_set, 1);
  return static_cast<int>(std::max<size_t>(2, (want + per - 1) / per));
}

void Timer::flush(int salt) {
  KILN_CU(driver::get().cuMemsetD8Async(flush_.ptr(), static_cast<unsigned char>(salt),
                                        flush_.bytes(), stream_));
}

void Timer::record(CUevent event) { KILN_CU(driver::get().cuEventRecord(event, stream_)); }

void Timer::close_gate() {
  ++gate_value_;
  KILN_CU(driver::get().cuStreamWaitValue32(stream_, gate_.ptr(), gate_value_,
                                            CU_STREAM_WAIT_VALUE_GEQ));
}

void Timer::open_gate() {
  KILN_CU(driver::get().cuStreamWriteValue32(gate_stream_, gate_.ptr(), gate_value_,
                                             CU_STREAM_WRITE_VALUE_DEFAULT));
}

double Timer::elapsed_us(CUevent start, CUevent stop) {
  const auto& cu = driver::get();
  KILN_CU(cu.cuEventSynchronize(stop));
  float ms = 0;
  KILN_CU(cu.cuEventElapsedTime(&ms, start, stop));
  return ms * 1e3;
}

double median(std::vector<double>& values) {
  std::nth_element(values.begin(), values.begin() + values.size() / 2, values.end());
  return values[values.size() / 2];
}

std::vector<InputSet> make_input_sets(int count, size_t a_bytes, size_t b_bytes, size_t sa_bytes,
                                      size_t sb_bytes, std::mt19937_64& rng) {
  const auto& cu = driver::get();
  std::vector<InputSet> sets(count);
  for (InputSet& s : sets) {
    s.a = driver::DeviceBuffer(a_bytes), s.b = driver::DeviceBuffer(b_bytes);
    s.sa = driver::DeviceBuffer(sa_bytes), s.sb = driver::DeviceBuffer(sb_bytes);
  }
  InputSet& first = sets.front();
  first.a.upload(gemm::random_e4m3(a_bytes, rng));
  first.b.upload(gemm::random_e4m3(b_bytes, rng));
  first.sa.upload(gemm::random_scales(sa_bytes / 4, rng));
  first.sb.upload(gemm::random_scales(sb_bytes / 4, rng));
  for (size_t i = 1; i < sets.size(); ++i)
    for (auto [dst, src] : {std::pair{&sets[i].a, &first.a}, {&sets[i].b, &first.b},
                            {&sets[i].sa, &first.sa}, {&sets[i].sb, &first.sb}})
      if (src->bytes()) KILN_CU(cu.cuMemcpyDtoDAsync(dst->ptr(), src->ptr(), src->bytes(), 0));
  KILN_CU(cu.cuCtxSynchronize());
  return sets;
}

Fp8Buffers::Fp8Buffers(int m_, int n_, int k_, const Timer& timer, std::mt19937_64& rng)
    : m(m_), n(n_), k(k_), ld_sb(CublasLtGemm::sb_leading_dim(k_)) {
  const int kb = (k + 127) / 128, nb = (n + 127) / 128;
  const size_t a_bytes = size_t(m) * k, b_bytes = size_t(n) * k;
  const size_t sa_bytes = size_t(kb) * m * 4, sb_bytes = size_t(nb) * ld_sb * 4;
  sets = make_input_sets(timer.sets(a_bytes + b_bytes + sa_bytes + sb_bytes), a_bytes, b_bytes,
                         sa_bytes, sb_bytes, rng);
  d = driver::DeviceBuffer(size_t(m) * n * 2);
}

GemmFp8Args Fp8Buffers::args(int run) const {
  const InputSet& s = sets[static_cast<size_t>(run) % sets.size()];
  GemmFp8Args args;
  args.m = m, args.n = n, args.k = k;
  args.a = s.a.get_as(), args.b = s.b.get_as(), args.d = d.get_as();
  args.sa = s.sa.get_as<float>(), args.sa_layout = ScaleLayout::kColMajor, args.ld_sa = m;
  args.sb = s.sb.get_as<float>(), args.ld_sb = ld_sb;
  return args;
}

GroupedBuffers::GroupedBuffers(GroupedLayout layout_, int groups_, int m_, int n_, int k_,
                               const Timer& timer, std::mt19937_64& rng)
    : layout(layout_), groups(groups_), m(m_), n(n_), k(k_),
      rows_per_group(layout_ == GroupedLayout::kContiguousByRow
                         ? (m_ + grouped_m_alignment() - 1) / grouped_m_alignment() *
                               grouped_m_alignment()
                         : m_) {
  const size_t rows = size_t(rows_per_group) * groups;
  const int kb = (k + 127) / 128, nb = (n + 127) / 128;
  const size_t a_bytes = rows * k, b_bytes = size_t(groups) * n * k;
  const size_t sa_bytes = rows * kb * 4, sb_bytes = size_t(groups) * nb * kb * 4;
  sets = make_input_sets(timer.sets(a_bytes + b_bytes + sa_bytes + sb_bytes), a_bytes, b_bytes,
                         sa_bytes, sb_bytes, rng);
  d = driver::DeviceBuffer(rows * n * 2);
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

GroupedGemmFp8Args GroupedBuffers::args(int run) const {
  const InputSet& s = sets[static_cast<size_t>(run) % sets.size()];
  GroupedGemmFp8Args x;
  x.layout = layout, x.num_groups = groups, x.n = n, x.k = k;
  x.m = layout == GroupedLayout::kMasked ? m : rows_per_group * groups;
  x.a = s.a.get_as(), x.b = s.b.get_as(), x.sa = s.sa.get_as<float>(), x.sb = s.sb.get_as<float>();
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
  const double us = timer.median_us(10, [&](int) {
    KILN_CU(driver::get().cuMemcpyDtoDAsync(dst.ptr(), src.ptr(), bytes, stream));
  });
  return 2.0 * bytes / us / 1e3;
}

}  // namespace kiln::bench
