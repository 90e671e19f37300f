// The C API: exceptions stop here and become status codes.
#include "kiln/kiln.h"

#include <string>

#include "kiln/error.hpp"
#include "kiln/gemm.hpp"

namespace {

thread_local std::string last_error;

kiln_status to_status(kiln::ErrorCode code) {
  switch (code) {
    case kiln::ErrorCode::kInvalidArgument: return KILN_ERROR_INVALID_ARGUMENT;
    case kiln::ErrorCode::kUnsupported: return KILN_ERROR_UNSUPPORTED;
    case kiln::ErrorCode::kCompileFailed: return KILN_ERROR_COMPILE_FAILED;
    case kiln::ErrorCode::kCudaError: return KILN_ERROR_CUDA;
    case kiln::ErrorCode::kNoDevice: return KILN_ERROR_NO_DEVICE;
    case kiln::ErrorCode::kNotWarmedUp: return KILN_ERROR_NOT_WARMED_UP;
    case kiln::ErrorCode::kInternal: return KILN_ERROR_INTERNAL;
  }
  return KILN_ERROR_INTERNAL;
}

template <typename F>
kiln_status guarded(F&& body) {
  try {
    body();
    return KILN_OK;
  } catch (const kiln::Error& e) {
    last_error = e.detail().empty() ? e.what() : std::string(e.what()) + "\n" + e.detail();
    return to_status(e.code());
  } catch (const std::exception& e) {
    last_error = e.what();
    return KILN_ERROR_INTERNAL;
  } catch (...) {
    last_error = "unknown exception";
    return KILN_ERROR_INTERNAL;
  }
}

}  // namespace

extern "C" {

kiln_status kiln_gemm_fp8(const kiln_gemm_fp8_args* args, CUstream stream) {
  return guarded([&] {
    if (!args) throw kiln::Error(kiln::ErrorCode::kInvalidArgument, "args is null");
    kiln::GemmFp8Args a;
    a.m = args->m, a.n = args->n, a.k = args->k;
    a.a = args->a, a.lda = args->lda, a.b = args->b, a.ldb = args->ldb;
    a.sa = args->sa, a.ld_sa = args->ld_sa, a.sb = args->sb, a.ld_sb = args->ld_sb, a.d = args->d, a.ldd = args->ldd;
    a.sa_layout = static_cast<kiln::ScaleLayout>(args->sa_layout);
    kiln::gemm_fp8(a, stream);
  });
}

namespace {

kiln::GroupedLayout to_layout(kiln_grouped_layout layout) {
  switch (layout) {
    case KILN_GROUPED_CONTIGUOUS_BY_ROW: return kiln::GroupedLayout::kContiguousByRow;
    case KILN_GROUPED_CONTIGUOUS_BY_OFFSET: return kiln::GroupedLayout::kContiguousByOffset;
    case KILN_GROUPED_MASKED: return kiln::GroupedLayout::kMasked;
  }
  throw kiln::Error(kiln::ErrorCode::kInvalidArgument,
                    "layout=" + std::to_string(static_cast<int>(layout)) +
                        " is not a kiln_grouped_layout value");
}

}  // namespace

kiln_status kiln_gemm_fp8_grouped(const kiln_grouped_gemm_fp8_args* args, CUstream stream) {
  return guarded([&] {
    if (!args) throw kiln::Error(kiln::ErrorCode::kInvalidArgument, "args is null");
    kiln::GroupedGemmFp8Args a;
    a.layout = to_layout(args->layout);
    a.num_groups = args->num_groups, a.m = args->m, a.n = args->n, a.k = args->k;
    a.a = args->a, a.lda = args->lda, a.b = args->b, a.ldb = args->ldb;
    a.sa = args->sa, a.sa_layout = static_cast<kiln::ScaleLayout>(args->sa_layout);
    a.ld_sa = args->ld_sa, a.sb = args->sb, a.ld_sb = args->ld_sb, a.d = args->d;
    a.ldd = args->ldd, a.group_info = args->group_info, a.expected_m = args->expected_m;
    kiln::gemm_fp8_grouped(a, stream);
  });
}

kiln_status kiln_warm_up_gemm_fp8_grouped(kiln_grouped_layout layout, int max_m, int n, int k) {
  return guarded([&] { kiln::warm_up_gemm_fp8_grouped(to_layout(layout), max_m, n, k); });
}

int kiln_grouped_m_alignment(void) { return kiln::grouped_m_alignment(); }

kiln_status kiln_warm_up_gemm_fp8(int max_m, int n, int k) {
  return guarded([&] { kiln::warm_up_gemm_fp8(max_m, n, k); });
}

const char* kiln_last_error(void) { return last_error.c_str(); }

const char* kiln_version(void) { return KILN_VERSION_STRING; }

}  // extern "C"
