// The sparse part of a packed weight: GWQ-style outliers in CSR form (wct_packed.h), added to the dense
// kernels' results. Every kernel splits work so that each output element is written by one thread, in a
// fixed order, whatever the thread count: the results are deterministic and race-free.
//   dequantize   out[r, c] += v                               (parallel over rows)
//   decode GEMV  y[r] += Σ_p v_p x[c_p]                       (in the GEMV's row loop, per row, in double)
//   panel GEMM   the dequantized panel (0 at the outliers) gets v at its packed column before sgemm, so the
//                outliers ride in the same sgemm: y = x W_hat^T and dx = dy W_hat need no scatter of their own
//   outlier grad dv[p] += Σ_i dy[i, r_p] x[i, c_p]            (dy, x transposed in blocks of input rows; parallel
//                                                             over rows, a double sum per p)
#include <omp.h>

#include <algorithm>
#include <vector>

#include "dispatch.h"
#include "packed_internal.h"

void wct_packed_add_outliers(const wct_packed* w, float* out) {
  if (w->nnz == 0) return;
  const int64_t N = w->rows, K = w->cols;
  const int32_t* rp = w->outlier_row_ptr;
#pragma omp parallel for schedule(static) if (w->nnz >= WCT_PAR_MIN)
  for (int64_t r = 0; r < N; r++) {
    for (int64_t p = rp[r]; p < rp[r + 1]; p++) out[r * K + w->outlier_col_idx[p]] += w->outlier_values[p];
  }
}

// Σ_p v[p] x[c[p]] for p in [p0, p1): 4 double chains (each product of two floats is exact in double).
WCT_INLINE static double sparse_dot_body(const int32_t* c, const float* v, const float* x, int64_t p0, int64_t p1) {
  double a0 = 0, a1 = 0, a2 = 0, a3 = 0;
  int64_t p = p0;
  for (; p + 4 <= p1; p += 4) {
    a0 += double(v[p]) * double(x[c[p]]);
    a1 += double(v[p + 1]) * double(x[c[p + 1]]);
    a2 += double(v[p + 2]) * double(x[c[p + 2]]);
    a3 += double(v[p + 3]) * double(x[c[p + 3]]);
  }
  for (; p < p1; p++) a0 += double(v[p]) * double(x[c[p]]);
  return (a0 + a1) + (a2 + a3);
}
WCT_MULTIVERSION(double, sparse_dot, (const int32_t* c, const float* v, const float* x, int64_t p0, int64_t p1),
                 (c, v, x, p0, p1))

double wct_packed_outlier_dot(const wct_packed* w, int64_t r, const float* x) {
  if (w->nnz == 0) return 0.0;
  const int32_t* rp = w->outlier_row_ptr;
  return sparse_dot(w->outlier_col_idx, w->outlier_values, x, rp[r], rp[r + 1]);
}

std::vector<int32_t> wct_packed_outlier_columns(const wct_packed* w) {
  std::vector<int32_t> inv(w->perm != nullptr && w->nnz > 0 ? w->cols : 0);
  if (!inv.empty()) {
    for (int64_t k = 0; k < w->cols; k++) inv[w->perm[k]] = int32_t(k);
  }
  return inv;
}

void wct_packed_add_outliers_block(const wct_packed* w, const std::vector<int32_t>& inv, int64_t r0, int64_t r1,
                                   int64_t k0, int64_t k1, float* panel, int64_t ld) {
  if (w->nnz == 0) return;
  const int32_t* rp = w->outlier_row_ptr;
  const int32_t* ci = w->outlier_col_idx;
  const float* v = w->outlier_values;
  const bool permuted = !inv.empty();
#pragma omp parallel for schedule(static) if (rp[r1] - rp[r0] >= WCT_PAR_MIN)
  for (int64_t r = r0; r < r1; r++) {
    float* row = panel + (r - r0) * ld - k0;
    for (int64_t p = rp[r]; p < rp[r + 1]; p++) {
      const int64_t kp = permuted ? inv[ci[p]] : ci[p];
      if (kp >= k0 && kp < k1) row[kp] += v[p];
    }
  }
}

// 1 when c[p0..p1) is strictly ascending within [0, cols) (branch-free: sorted, the first >= 0, the last < cols).
WCT_INLINE static int columns_ok_body(const int32_t* c, int64_t p0, int64_t p1, int64_t cols) {
  if (p1 <= p0) return 1;
  int ok = (c[p0] >= 0) & (c[p1 - 1] < cols);
  for (int64_t p = p0 + 1; p < p1; p++) ok &= c[p] > c[p - 1];
  return ok;
}
WCT_MULTIVERSION(int, columns_ok, (const int32_t* c, int64_t p0, int64_t p1, int64_t cols), (c, p0, p1, cols))

wct_i64 wct_packed_check_outlier_columns(const wct_packed* w) {
  if (w->nnz == 0) return -1;
  const int32_t* rp = w->outlier_row_ptr;
  int64_t first = w->rows;
#pragma omp parallel for schedule(static) reduction(min : first) if (w->nnz >= WCT_PAR_MIN)
  for (int64_t r = 0; r < w->rows; r++) {
    if (r < first && !columns_ok(w->outlier_col_idx, rp[r], rp[r + 1], w->cols)) first = r;
  }
  return first == w->rows ? -1 : first;
}

// Σ_i a[i] b[i] over [n] in 4 double chains.
WCT_INLINE static double dot_f64_body(const float* a, const float* b, int64_t n) {
  double acc[4] = {};
  int64_t i = 0;
  for (; i + 4 <= n; i += 4)
    for (int t = 0; t < 4; t++) acc[t] += double(a[i + t]) * double(b[i + t]);
  for (; i < n; i++) acc[0] += double(a[i]) * double(b[i]);
  return (acc[0] + acc[1]) + (acc[2] + acc[3]);
}
WCT_MULTIVERSION(double, dot_f64, (const float* a, const float* b, int64_t n), (a, b, n))

// out [cols, M] = in [M, cols] transposed, in 32 x 32 tiles.
static void transpose(const float* in, int64_t M, int64_t cols, float* out) {
  constexpr int64_t T = 32;
#pragma omp parallel for schedule(static) if (M * cols >= WCT_PAR_MIN)
  for (int64_t c0 = 0; c0 < cols; c0 += T) {
    for (int64_t i0 = 0; i0 < M; i0 += T) {
      for (int64_t c = c0; c < std::min(cols, c0 + T); c++)
        for (int64_t i = i0; i < std::min(M, i0 + T); i++) out[c * M + i] = in[i * cols + c];
    }
  }
}

// Input rows per block of the outlier gradient: the transposed blocks of dy and x ([N + K] x 256 floats, 15 MiB
// at N + K = 15104) stay bounded whatever M (a training step's M is batch x sequence, thousands of rows).
static constexpr int64_t GRAD_BLOCK_M = 256;

void wct_packed_outlier_grad(const wct_packed* w, const float* dy, const float* x, wct_i64 M, float* dvalues) {
  if (w->nnz == 0 || M == 0) return;
  const int64_t N = w->rows, K = w->cols, MB = std::min<int64_t>(M, GRAD_BLOCK_M);
  const int32_t* rp = w->outlier_row_ptr;
  const int32_t* ci = w->outlier_col_idx;
  // Per block of input rows, dyT [N, mb] and xT [K, mb] (M == 1: the inputs themselves): each outlier is then one
  // contiguous dot of length mb, summed in double into acc; dvalues rounded once at the end.
  std::vector<float> dyT(MB > 1 ? N * MB : 0), xT(MB > 1 ? K * MB : 0);
  std::vector<double> acc(w->nnz, 0.0);
  for (int64_t i0 = 0; i0 < M; i0 += MB) {
    const int64_t mb = std::min(MB, M - i0);
    const float* dyt = dy + i0 * N;
    const float* xt = x + i0 * K;
    if (mb > 1) {
      transpose(dyt, mb, N, dyT.data());
      transpose(xt, mb, K, xT.data());
      dyt = dyT.data();
      xt = xT.data();
    }
    // rows in chunks of 16, dynamically (GWQ's outliers crowd into a few rows); each p summed by one thread
#pragma omp parallel for schedule(dynamic, 16) if (w->nnz * mb >= WCT_PAR_MIN)
    for (int64_t r = 0; r < N; r++) {
      for (int64_t p = rp[r]; p < rp[r + 1]; p++) acc[p] += dot_f64(dyt + r * mb, xt + int64_t(ci[p]) * mb, mb);
    }
  }
#pragma omp parallel for schedule(static) if (w->nnz >= WCT_PAR_MIN)
  for (int64_t p = 0; p < w->nnz; p++) dvalues[p] = float(double(dvalues[p]) + acc[p]);
}
