// GEMM family.
#pragma once
#include "wct_common.h"

// C[b] = alpha * op(A[b]) @ op(B[b]) + beta * C[b], for b in [0, batch).
//   op(A): [M,K]; A[b] stored [K,M] if transA else [M,K], at A + b*strideA.
//   op(B): [K,N]; B[b] stored [N,K] if transB else [K,N], at B + b*strideB.
//   C[b]:  [M,N] at C + b*strideC. A stride of 0 broadcasts one matrix over the batch; strideC == 0
//   (or overlapping C items) runs the batch sequentially, so later items see earlier results.
// beta == 0 means C is write-only (NaNs in C are not propagated), as in BLAS.
// Calls cblas_sgemm directly on the given pointers (no copies).
void wct_gemm(const float* A, const float* B, float* C, wct_i64 batch, wct_i64 M, wct_i64 N, wct_i64 K,
              bool transA, bool transB, float alpha, float beta, wct_i64 strideA, wct_i64 strideB,
              wct_i64 strideC);

// Symmetric rank-k update of the upper triangle: C[i, j] = alpha * sum_k A[k, i] A[k, j] + beta * C[i, j] for
// i <= j, with A [K, N] and C [N, N] row-major (cblas_ssyrk, CblasUpper, CblasTrans). The strictly lower triangle
// of C is neither read nor written. beta == 0 makes the upper triangle write-only, as in BLAS.
void wct_syrk_upper(const float* A, float* C, wct_i64 N, wct_i64 K, float alpha, float beta);

// Same contract with A and B rounded to bf16 (round-to-nearest-even) and fp32 accumulation / output:
// a oneDNN matmul primitive (bf16 src/weights, f32 dst, cached by shape) where this CPU has one,
// else the emulation: bf16-round copies of A and B, then wct_gemm. Throws std::runtime_error on a
// oneDNN failure (before touching C).
void wct_gemm_bf16(const float* A, const float* B, float* C, wct_i64 batch, wct_i64 M, wct_i64 N,
                   wct_i64 K, bool transA, bool transB, float alpha, float beta, wct_i64 strideA,
                   wct_i64 strideB, wct_i64 strideC);

// True when oneDNN offers a (non-reference) bf16 matmul on this CPU; probed once.
bool wct_bf16_native(void);

// Seconds per call of cblas_sgemm(row-major, no transposes, alpha 1, beta 0) on internal [M,K]x[K,N]
// buffers, timed with std::chrono over `iters` calls after one warm-up call (the benchmark baseline).
double wct_bench_sgemm_direct(wct_i64 M, wct_i64 N, wct_i64 K, wct_i64 iters);

// out[i] = bf16_round(x[i]) (kept in float32), round-to-nearest-even, NaN stays NaN.
void wct_round_bf16(const float* x, float* out, wct_i64 n);
