// Symmetric rank-k update through cblas_ssyrk: the input Hessian's accumulation H += X^T X
// (src/quant/hessian.ts) computes only the upper triangle, half the multiply-adds of the full sgemm.
#include <cblas.h>

#include "wct_gemm.h"

void wct_syrk_upper(const float* A, float* C, wct_i64 N, wct_i64 K, float alpha, float beta) {
  if (N == 0) return;
  // Row-major A [K, N] with CblasTrans: C = alpha A^T A + beta C; CblasUpper: C[i, j] for i <= j only.
  cblas_ssyrk(CblasRowMajor, CblasUpper, CblasTrans, (blasint)N, (blasint)K, alpha, A, (blasint)N, beta, C,
              (blasint)N);
}
