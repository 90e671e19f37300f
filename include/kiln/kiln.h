/* kiln C API: status codes instead of exceptions. kiln_last_error() gives the message of
   the last failure on the calling thread. */
#ifndef KILN_KILN_H
#define KILN_KILN_H
#include <stdint.h>

#include "kiln/version.hpp"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct CUstream_st* CUstream;

typedef enum {
  KILN_OK = 0,
  KILN_ERROR_INVALID_ARGUMENT = 1,
  KILN_ERROR_UNSUPPORTED = 2,
  KILN_ERROR_COMPILE_FAILED = 3,
  KILN_ERROR_CUDA = 4,
  KILN_ERROR_NO_DEVICE = 5,
  KILN_ERROR_NOT_WARMED_UP = 6,
  KILN_ERROR_INTERNAL = 7
} kiln_status;

typedef enum { KILN_SCALE_ROW_MAJOR = 0, KILN_SCALE_COL_MAJOR = 1 } kiln_scale_layout;

/* Same meaning as kiln::GemmFp8Args (kiln/gemm.hpp). */
typedef struct {
  int m, n, k;
  const void* a;
  int64_t lda;
  const void* b;
  int64_t ldb;
  const float* sa;
  kiln_scale_layout sa_layout;
  int64_t ld_sa;
  const float* sb;
  int64_t ld_sb;
  void* d;
  int64_t ldd;
} kiln_gemm_fp8_args;

KILN_API kiln_status kiln_gemm_fp8(const kiln_gemm_fp8_args* args, CUstream stream);

/* Same meaning as kiln::GroupedLayout and kiln::GroupedGemmFp8Args (kiln/gemm.hpp). */
typedef enum {
  KILN_GROUPED_CONTIGUOUS_BY_ROW = 0,
  KILN_GROUPED_CONTIGUOUS_BY_OFFSET = 1,
  KILN_GROUPED_MASKED = 2
} kiln_grouped_layout;

typedef struct {
  kiln_grouped_layout layout;
  int num_groups, m, n, k;
  const void* a;
  int64_t lda;
  const void* b;
  int64_t ldb;
  const float* sa;
  kiln_scale_layout sa_layout;
  int64_t ld_sa;
  const float* sb;
  int64_t ld_sb;
  void* d;
  int64_t ldd;
  const int* group_info;
  int expected_m;
} kiln_grouped_gemm_fp8_args;

KILN_API kiln_status kiln_gemm_fp8_grouped(const kiln_grouped_gemm_fp8_args* args,
                                           CUstream stream);
KILN_API kiln_status kiln_warm_up_gemm_fp8_grouped(kiln_grouped_layout layout, int max_m, int n,
                                                   int k);
KILN_API int kiln_grouped_m_alignment(void);
KILN_API kiln_status kiln_warm_up_gemm_fp8(int max_m, int n, int k);
KILN_API const char* kiln_last_error(void);
KILN_API const char* kiln_version(void);

#ifdef __cplusplus
}
#endif
#endif
