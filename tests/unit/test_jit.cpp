// The JIT pipeline (jit/, Runtime::Impl): ptxas log parsing, generated wgmma code, embedded
// kernel headers, cache keys, and a few real NVRTC compiles (CPU only, ~0.1-0.5 s each).
#include <catch2/catch.hpp>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "gemm/config.hpp"
#include "jit/codegen.hpp"
#include "jit/kernel_headers.hpp"
#include "jit/nvrtc_compiler.hpp"
#include "kiln/error.hpp"
#include "kiln/runtime.hpp"
#include "runtime_impl.hpp"
#include "support.hpp"

namespace fs = std::filesystem;
using namespace kiln;
using Catch::Matchers::Contains;
using Catch::Matchers::StartsWith;
using kiln::test::ScopedEnv;
using kiln::test::TempDir;

namespace {

// The small dense kernel the compile tests build: n=k=256, the config gemm_fp8 uses for m=64.
gemm::KernelSpec small_spec() {
  gemm::KernelSpec spec;
  spec.n = 256, spec.k = 256;
  spec.config = gemm::heuristic_config(64, 256, 256, 132);
  return spec;
}

jit::CompileRequest request_for(const gemm::KernelSpec& spec) {
  return {gemm::kernel_source(spec), gemm::name_expression(spec), gemm::arch_name(spec.arch),
          gemm::describe(spec)};
}

bool is_hex(const std::string& s) {
  for (char c : s)
    if (!std::isxdigit(static_cast<unsigned char>(c)) || std::isupper(static_cast<unsigned char>(c)))
      return false;
  return true;
}

}  // namespace

TEST_CASE("parse_ptxas_log reads registers, spills, stack and smem", "[unit][jit]") {
  SECTION("a typical -v log of one kernel") {
    const std::string log =
        "ptxas info    : 11 bytes gmem\n"
        "ptxas info    : Compiling entry function "
        "'_ZN4kiln13sm90_fp8_gemmILi2112ELi7168ELi64ELi64ELi8ELi8EEEvNS_9TensorMapES1_S1_PKfS3_ixxx'"
        " for 'sm_90a'\n"
        "ptxas info    : Function properties for "
        "_ZN4kiln13sm90_fp8_gemmILi2112ELi7168ELi64ELi64ELi8ELi8EEEvNS_9TensorMapES1_S1_PKfS3_ixxx\n"
        "    24 bytes stack frame, 8 bytes spill stores, 4 bytes spill loads\n"
        "ptxas info    : Used 168 registers, used 16 barriers, 1024 bytes smem, 400 bytes "
        "cmem[0]\n";
    jit::CompileResult r;
    jit::parse_ptxas_log(log, &r);
    CHECK(r.registers == 168);
    CHECK(r.spill_bytes == 12);  // stores + loads
    CHECK(r.stack_bytes == 24);
    CHECK(r.static_smem_bytes == 1024);
  }
  SECTION("a clean kernel") {
    const std::string log =
        "ptxas info    : Compiling entry function '_Z3foov' for 'sm_90a'\n"
        "ptxas info    : Function properties for _Z3foov\n"
        "    0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads\n"
        "ptxas info    : Used 98 registers, used 1 barriers\n";
    jit::CompileResult r;
    r.static_smem_bytes = 77;  // overwritten: absent means 0
    jit::parse_ptxas_log(log, &r);
    CHECK(r.registers == 98);
    CHECK(r.spill_bytes == 0);
    CHECK(r.stack_bytes == 0);
    CHECK(r.static_smem_bytes == 0);
  }
  SECTION("an empty log gives zeros") {
    jit::CompileResult r;
    r.registers = 5, r.spill_bytes = 5;
    jit::parse_ptxas_log("", &r);
    CHECK(r.registers == 0);
    CHECK(r.spill_bytes == 0);
    CHECK(r.stack_bytes == 0);
    CHECK(r.static_smem_bytes == 0);
  }
}

TEST_CASE("wgmma_fp8_definition spells out n/2 accumulators", "[unit][jit]") {
  for (int n : {8, 64, 128, 256}) {
    const int regs = n / 2;
    const std::string def = jit::wgmma_fp8_definition(n);
    INFO("n=" << n << "\n" << def);
    CHECK_THAT(def, Contains("WgmmaFp8<" + std::to_string(n) + ">::mma"));
    CHECK_THAT(def, Contains("wgmma.mma_async.sync.aligned.m64n" + std::to_string(n) +
                             "k32.f32.e4m3.e4m3"));

    // The accumulator list is exactly {%0, ..., %(n/2-1)}.
    const std::string marker = "e4m3.e4m3 {";
    const size_t open = def.find(marker);
    REQUIRE(open != std::string::npos);
    const size_t close = def.find('}', open);
    REQUIRE(close != std::string::npos);
    std::string expected;
    for (int i = 0; i < regs; ++i) expected += (i ? ", %" : "%") + std::to_string(i);
    CHECK(def.substr(open + marker.size(), close - open - marker.size()) == expected);

    // Then the descriptors and the scale-d predicate, numbered after the accumulators.
    CHECK_THAT(def, Contains("}, %" + std::to_string(regs) + ", %" + std::to_string(regs + 1) +
                             ", p, 1, 1;"));
    CHECK_THAT(def, Contains("setp.ne.b32 p, %" + std::to_string(regs + 2) + ", 0;"));
    // One read-write float constraint per accumulator, and no more.
    CHECK_THAT(def, Contains("\"+f\"(d[" + std::to_string(regs - 1) + "])"));
    CHECK_THAT(def, !Contains("d[" + std::to_string(regs) + "]"));
    size_t constraints = 0;
    for (size_t at = def.find("\"+f\""); at != std::string::npos; at = def.find("\"+f\"", at + 1))
      ++constraints;
    CHECK(constraints == size_t(regs));
  }
}

TEST_CASE("wgmma_fp8_definition rejects widths wgmma does not have", "[unit][jit]") {
  for (int n : {7, 0, -8, 4, 12, 264, 512}) {
    INFO("n=" << n);
    try {
      jit::wgmma_fp8_definition(n);
      FAIL("accepted n=" << n);
    } catch (const Error& e) {
      CHECK_THAT(std::string(e.what()), Contains("n=" + std::to_string(n)));
    }
  }
}

TEST_CASE("the embedded kernel headers", "[unit][jit]") {
  // KILN_KERNEL_DIR is read once per process; it is tested through the CLI instead.
  REQUIRE(std::getenv("KILN_KERNEL_DIR") == nullptr);
  const jit::KernelHeaders& h = jit::kernel_headers();
  CHECK(h.origin == "embedded");
  CHECK(h.digest.size() == 32);
  CHECK(is_hex(h.digest));
  REQUIRE(h.names.size() == h.texts.size());
  REQUIRE(int(h.names.size()) == jit::kNumEmbeddedHeaders);
  bool found_gemm = false;
  for (size_t i = 0; i < h.names.size(); ++i) {
    const std::string name(h.names[i]), text(h.texts[i]);
    INFO(name);
    CHECK_THAT(name, StartsWith("kiln/"));
    CHECK(fs::path(name).extension() == ".cuh");
    CHECK(fs::path(name).is_relative());
    CHECK(!text.empty());
    // NVRTC reads them as C strings; the embedded ones are the library's own, not copies.
    CHECK(h.names[i].data()[h.names[i].size()] == '\0');
    CHECK(h.texts[i].data()[h.texts[i].size()] == '\0');
    CHECK(h.texts[i].data() == jit::kEmbeddedHeaders[i].text);
    if (name == "kiln/gemm/sm90_fp8_gemm.cuh") {
      found_gemm = true;
      CHECK_THAT(text, Contains("sm90_fp8_gemm"));
    }
  }
  CHECK(found_gemm);
  for (const char* name : {"kiln/ptx/wgmma.cuh", "kiln/common.cuh"})
    CHECK(std::find(h.names.begin(), h.names.end(), name) != h.names.end());
  CHECK(std::is_sorted(h.names.begin(), h.names.end()));  // the digest is order-stable
  CHECK(&jit::kernel_headers() == &h);                      // read once
}

TEST_CASE("kernel_key depends on the source and arch only", "[unit][jit]") {
  const gemm::KernelSpec spec = small_spec();
  const std::string source = gemm::kernel_source(spec);
  const cache::Key key = Runtime::Impl::kernel_key(spec, source);
  CHECK(key.hex().size() == 32);
  CHECK(is_hex(key.hex()));
  CHECK(Runtime::Impl::kernel_key(spec, source) == key);

  SECTION("one byte of source changes it") {
    std::string changed = source;
    changed[changed.size() / 2] ^= 1;
    CHECK(Runtime::Impl::kernel_key(spec, changed) != key);
    CHECK(Runtime::Impl::kernel_key(spec, source + " ") != key);
  }
  SECTION("the arch changes it") {
    gemm::KernelSpec other = spec;
    other.arch = 100;
    CHECK(Runtime::Impl::kernel_key(other, source) != key);
  }
  SECTION("the shape changes it through the source") {
    gemm::KernelSpec other = spec;
    other.n = 264;
    CHECK(Runtime::Impl::kernel_key(other, gemm::kernel_source(other)) != key);
    other = spec;
    other.config.stages -= 1;
    CHECK(Runtime::Impl::kernel_key(other, gemm::kernel_source(other)) != key);
  }
  SECTION("not the working directory nor the cache location") {
    // A cache directory is shareable only if no path or environment leaks into keys.
    TempDir dir;
    const fs::path old_cwd = fs::current_path();
    {
      ScopedEnv cache("KILN_CACHE_DIR", (dir.path() / "cache").string());
      ScopedEnv xdg("XDG_CACHE_HOME", dir.path().string());
      ScopedEnv home("HOME", dir.path().string());
      fs::current_path(dir.path());
      const cache::Key moved = Runtime::Impl::kernel_key(spec, source);
      fs::current_path(old_cwd);
      CHECK(moved == key);
    }
    CHECK(Runtime::Impl::kernel_key(spec, source) == key);
  }
}

// group_m is a template argument, in the name expression: the key must tell apart specs that
// differ only there even with the same source text (describe(), which the source's first line
// holds, names it too, but the key must not depend on that comment).
TEST_CASE("kernel_key tells apart specs that differ only in group_m", "[unit][jit]") {
  gemm::KernelSpec a = small_spec(), b = small_spec();
  b.config.group_m = 4;
  REQUIRE(gemm::name_expression(a) != gemm::name_expression(b));
  const std::string source = gemm::kernel_source(a);
  CHECK(Runtime::Impl::kernel_key(a, source) != Runtime::Impl::kernel_key(b, source));
}

TEST_CASE("NVRTC compiles a small dense kernel", "[unit][jit][nvrtc]") {
  const gemm::KernelSpec spec = small_spec();
  const gemm::Config& c = spec.config;
  REQUIRE(c.block_m == 64);  // m=64 takes the one-warpgroup tile
  const jit::CompileResult r = jit::compile(request_for(spec));
  INFO(r.log);
  REQUIRE(r.cubin.size() > 4);
  CHECK(r.cubin.compare(0, 4, "\x7f" "ELF") == 0);
  CHECK_THAT(r.lowered_name, StartsWith("_ZN4kiln13sm90_fp8_gemm"));
  // The mangled template arguments: <256, 256, block_m, block_n, stages, group_m, ...>.
  auto mangled = [](int v) { return "Li" + std::to_string(v) + "E"; };
  CHECK_THAT(r.lowered_name, Contains("I" + mangled(0) + mangled(256) + mangled(256) + mangled(c.block_m) +
                                      mangled(c.block_n) + mangled(c.stages) +
                                      mangled(c.group_m)));
  CHECK(r.registers > 0);
  CHECK(r.registers <= 255);
  CHECK(r.spill_bytes == 0);
  CHECK_THAT(r.log, Contains(r.lowered_name));  // ptxas -v reported on this kernel
  CHECK(r.compile_ms > 0);
  CHECK(jit::nvrtc_version() == "13.0");
}

TEST_CASE("NVRTC failure is kCompileFailed with the log", "[unit][jit][nvrtc]") {
  jit::CompileRequest request = request_for(small_spec());
  request.source += "\nstatic_assert(sizeof(int) == 3, \"kiln-test-broken\");\n";
  request.program_name = "broken_test_kernel";
  try {
    jit::compile(request);
    FAIL("a broken source compiled");
  } catch (const Error& e) {
    CHECK(e.code() == ErrorCode::kCompileFailed);
    CHECK_THAT(std::string(e.what()), Contains("broken_test_kernel"));
    CHECK_THAT(e.detail(), Contains("kiln-test-broken"));         // the NVRTC log
    CHECK_THAT(e.detail(), Contains("--gpu-architecture=sm_90a"));  // and the options
  }
}

TEST_CASE("launch attributes: cluster size and programmatic launch", "[unit][jit]") {
  kiln::LoadedKernel kernel;
  kernel.threads = 384, kernel.smem_bytes = 200000;
  kernel.spec.config = {64, 64, 8, 8, 1, 3};  // split-K over clusters of 3
  {
    const kiln::KernelLaunch plain(kernel, 33, nullptr);
    REQUIRE(plain.config.numAttrs == 1);
    CHECK(plain.config.attrs[0].id == CU_LAUNCH_ATTRIBUTE_CLUSTER_DIMENSION);
    CHECK(plain.config.attrs[0].value.clusterDim.x == 3);
    CHECK(plain.config.gridDimX == 99);
    CHECK(plain.config.blockDimX == 384);
    CHECK(plain.config.sharedMemBytes == 200000);
  }
  {
    const kiln::KernelLaunch pdl(kernel, 33, nullptr, true);
    REQUIRE(pdl.config.numAttrs == 2);
    CHECK(pdl.config.attrs[0].id == CU_LAUNCH_ATTRIBUTE_CLUSTER_DIMENSION);
    CHECK(pdl.config.attrs[1].id == CU_LAUNCH_ATTRIBUTE_PROGRAMMATIC_STREAM_SERIALIZATION);
    CHECK(pdl.config.attrs[1].value.programmaticStreamSerializationAllowed == 1);
  }
  kernel.spec.config = {128, 192, 4, 8};  // no cluster
  {
    const kiln::KernelLaunch plain(kernel, 132, nullptr);
    CHECK(plain.config.numAttrs == 0);
    CHECK(plain.config.gridDimX == 132);
    const kiln::KernelLaunch pdl(kernel, 132, nullptr, true);
    REQUIRE(pdl.config.numAttrs == 1);
    CHECK(pdl.config.attrs[0].id == CU_LAUNCH_ATTRIBUTE_PROGRAMMATIC_STREAM_SERIALIZATION);
  }
  CHECK(kiln::RuntimeOptions{}.programmatic_launch);  // on by default (docs/PERFORMANCE.md)
}

TEST_CASE("KILN_PDL overrides RuntimeOptions::programmatic_launch", "[unit][jit]") {
  RuntimeOptions off;
  off.disk_cache = false, off.programmatic_launch = false;
  RuntimeOptions on;
  on.disk_cache = false;
  {
    ScopedEnv env("KILN_PDL", std::nullopt);
    CHECK(Runtime(on).impl().programmatic_launch());
    CHECK_FALSE(Runtime(off).impl().programmatic_launch());
  }
  {
    ScopedEnv env("KILN_PDL", "0");
    CHECK_FALSE(Runtime(on).impl().programmatic_launch());
  }
  {
    ScopedEnv env("KILN_PDL", "1");
    CHECK(Runtime(off).impl().programmatic_launch());
  }
  {
    ScopedEnv env("KILN_PDL", "yes");  // ignored with a warning
    CHECK(Runtime(on).impl().programmatic_launch());
    CHECK_FALSE(Runtime(off).impl().programmatic_launch());
  }
}

TEST_CASE("Runtime::Impl::compile stores, then reuses, a kernel", "[unit][jit][nvrtc]") {
  TempDir dir;
  const gemm::KernelSpec spec = small_spec();
  RuntimeOptions options;
  options.cache_dir = dir.path().string();
  Runtime runtime(options);
  CHECK(runtime.cache_dir() == dir.path().string());

  const CompiledKernel first = runtime.impl().compile(spec);
  CHECK(first.outcome == cache::Outcome::kCompiled);
  CHECK(first.key == Runtime::Impl::kernel_key(spec, gemm::kernel_source(spec)));
  REQUIRE(!first.entry.dir.empty());
  CHECK(fs::exists(first.entry.dir / "kernel.cubin"));
  CHECK(first.entry.dir.string().rfind(dir.path().string(), 0) == 0);
  const cache::Manifest& m = first.entry.manifest;
  CHECK(m.key == first.key.hex());
  CHECK(m.kernel == gemm::describe(spec));
  CHECK(m.arch == "sm_90a");
  CHECK(m.registers > 0);
  CHECK(m.spill_bytes == 0);
  CHECK(m.dynamic_smem_bytes == gemm::shared_memory_bytes(spec.config));
  CHECK(m.cubin_size == first.entry.cubin.size());
  CHECK(nlohmann::json::parse(m.config).at("block_n") == spec.config.block_n);

  const CompiledKernel second = runtime.impl().compile(spec);
  CHECK(second.outcome == cache::Outcome::kDiskHit);
  CHECK(second.entry.cubin == first.entry.cubin);
  CHECK(second.entry.manifest.lowered_name == m.lowered_name);
  const RuntimeStats stats = runtime.stats();
  CHECK(stats.kernels_compiled == 1);
  CHECK(stats.disk_hits == 1);
  CHECK(stats.kernels_loaded == 0);  // no GPU: nothing loaded
}

TEST_CASE("Runtime::Impl::compile without a disk cache", "[unit][jit][nvrtc]") {
  TempDir dir;
  ScopedEnv cache("KILN_CACHE_DIR", (dir.path() / "unused").string());
  RuntimeOptions options;
  options.disk_cache = false;
  Runtime runtime(options);
  CHECK(runtime.cache_dir().empty());
  const CompiledKernel c = runtime.impl().compile(small_spec());
  CHECK(c.outcome == cache::Outcome::kCompiledNotStored);
  CHECK(c.entry.dir.empty());
  CHECK(!c.entry.cubin.empty());
  CHECK(c.entry.manifest.key == c.key.hex());
  CHECK(c.entry.manifest.cubin_size == c.entry.cubin.size());
  CHECK(!fs::exists(dir.path() / "unused"));  // nothing written anywhere
  CHECK(runtime.stats().kernels_compiled == 1);
}
