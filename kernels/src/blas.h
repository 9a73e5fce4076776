// Internal: a guarded row-major cblas_sgemm shared by gemm.cc and attention.cc.
#pragma once
#include <cblas.h>

#include <cstdint>

// C[M,N] (ldc) = alpha * op(A) op(B) + beta * C. Handles the degenerate sizes BLAS rejects: nothing to do
// when M or N is 0; C = beta * C when K is 0 (beta == 0 writes zeros, never reads C).
inline void wct_sgemm_rm(bool transA, bool transB, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
                         int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  if (M == 0 || N == 0) return;
  if (K == 0) {
    for (int64_t i = 0; i < M; i++) {
      float* row = C + i * ldc;
      for (int64_t j = 0; j < N; j++) row[j] = beta == 0.0f ? 0.0f : beta * row[j];
    }
    return;
  }
  cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans, (blasint)M,
              (blasint)N, (blasint)K, alpha, A, (blasint)lda, B, (blasint)ldb, beta, C, (blasint)ldc);
}
