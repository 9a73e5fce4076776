// RMSNorm and LayerNorm, forward and backward. Statistics in double, stored as float.
#include "wct_norms.h"

#include <algorithm>
#include <cmath>

#include "dispatch.h"
#include "rows.h"

// ---- RMSNorm ----

WCT_INLINE static float rms_forward_row_body(const float* x, const float* w, float* out, int64_t C, float eps) {
  double ss = 0.0;
#pragma omp simd reduction(+ : ss)
  for (int64_t i = 0; i < C; i++) ss += double(x[i]) * double(x[i]);
  const float r = float(1.0 / std::sqrt(ss / double(C) + double(eps)));
  for (int64_t i = 0; i < C; i++) out[i] = (x[i] * r) * w[i];  // torch order: (x * rstd) * w
  return r;
}
WCT_MULTIVERSION(float, rms_forward_row, (const float* x, const float* w, float* out, int64_t C, float eps),
                 (x, w, out, C, eps))

WCT_INLINE static void rms_backward_row_body(const float* x, const float* w, float r, const float* dy, float* dx,
                                         int64_t C) {
  double s = 0.0;
#pragma omp simd reduction(+ : s)
  for (int64_t i = 0; i < C; i++) s += double(dy[i] * w[i]) * double(x[i]);
  const float k = float(double(r) * double(r) * double(r) * s / double(C));
  for (int64_t i = 0; i < C; i++) dx[i] = r * (w[i] * dy[i]) - x[i] * k;
}
WCT_MULTIVERSION(void, rms_backward_row,
                 (const float* x, const float* w, float r, const float* dy, float* dx, int64_t C),
                 (x, w, r, dy, dx, C))

// acc[j] += dy[j] * x[j] * r
WCT_INLINE static void rms_dw_row_body(double* acc, const float* dy, const float* x, float r, int64_t n) {
  for (int64_t j = 0; j < n; j++) acc[j] += double(dy[j] * x[j] * r);
}
WCT_MULTIVERSION(void, rms_dw_row, (double* acc, const float* dy, const float* x, float r, int64_t n),
                 (acc, dy, x, r, n))

void wct_rmsnorm_forward(const float* x, const float* w, float* out, float* rstd, wct_i64 N, wct_i64 C, float eps) {
#pragma omp parallel for schedule(static) if (N * C >= WCT_PAR_MIN)
  for (int64_t n = 0; n < N; n++) rstd[n] = rms_forward_row(x + n * C, w, out + n * C, C, eps);
}

void wct_rmsnorm_backward(const float* x, const float* w, const float* rstd, const float* dy, float* dx, float* dw,
                          wct_i64 N, wct_i64 C) {
  const int64_t tiles = (C + WCT_COL_TILE - 1) / WCT_COL_TILE;
#pragma omp parallel if (N * C >= WCT_PAR_MIN)
  {
#pragma omp for schedule(static)
    for (int64_t t = 0; t < tiles; t++) {
      const int64_t c0 = t * WCT_COL_TILE, w0 = std::min(WCT_COL_TILE, C - c0);
      double acc[WCT_COL_TILE] = {0.0};
      for (int64_t n = 0; n < N; n++) rms_dw_row(acc, dy + n * C + c0, x + n * C + c0, rstd[n], w0);
      for (int64_t j = 0; j < w0; j++) dw[c0 + j] += float(acc[j]);
    }
#pragma omp for schedule(static)
    for (int64_t n = 0; n < N; n++) rms_backward_row(x + n * C, w, rstd[n], dy + n * C, dx + n * C, C);
  }
}

// ---- LayerNorm ----

// Returns {mean, rstd}; variance is the biased two-pass estimate.
WCT_INLINE static void ln_forward_row_body(const float* x, const float* w, const float* b, float* out, int64_t C,
                                       float eps, float* mean_out, float* rstd_out) {
  double s = 0.0;
#pragma omp simd reduction(+ : s)
  for (int64_t i = 0; i < C; i++) s += double(x[i]);
  const double mean = s / double(C);
  double v = 0.0;
#pragma omp simd reduction(+ : v)
  for (int64_t i = 0; i < C; i++) v += (double(x[i]) - mean) * (double(x[i]) - mean);
  const float m = float(mean), r = float(1.0 / std::sqrt(v / double(C) + double(eps)));
  for (int64_t i = 0; i < C; i++) out[i] = (x[i] - m) * r * w[i] + b[i];
  *mean_out = m;
  *rstd_out = r;
}
WCT_MULTIVERSION(void, ln_forward_row,
                 (const float* x, const float* w, const float* b, float* out, int64_t C, float eps, float* m,
                  float* r),
                 (x, w, b, out, C, eps, m, r))

WCT_INLINE static void ln_backward_row_body(const float* x, const float* w, float m, float r, const float* dy, float* dx,
                                        int64_t C) {
  double sg = 0.0, sgx = 0.0;
#pragma omp simd reduction(+ : sg, sgx)
  for (int64_t i = 0; i < C; i++) {
    const float g = dy[i] * w[i], xhat = (x[i] - m) * r;
    sg += double(g);
    sgx += double(g) * double(xhat);
  }
  const float mg = float(sg / double(C)), mgx = float(sgx / double(C));
  for (int64_t i = 0; i < C; i++) {
    const float xhat = (x[i] - m) * r;
    dx[i] = r * (dy[i] * w[i] - mg - xhat * mgx);
  }
}
WCT_MULTIVERSION(void, ln_backward_row,
                 (const float* x, const float* w, float m, float r, const float* dy, float* dx, int64_t C),
                 (x, w, m, r, dy, dx, C))

// accW[j] += dy[j] * xhat[j]; accB[j] += dy[j]
WCT_INLINE static void ln_dwdb_row_body(double* accW, double* accB, const float* dy, const float* x, float m, float r,
                                    int64_t n) {
  for (int64_t j = 0; j < n; j++) {
    accW[j] += double(dy[j] * ((x[j] - m) * r));
    accB[j] += double(dy[j]);
  }
}
WCT_MULTIVERSION(void, ln_dwdb_row,
                 (double* accW, double* accB, const float* dy, const float* x, float m, float r, int64_t n),
                 (accW, accB, dy, x, m, r, n))

void wct_layernorm_forward(const float* x, const float* w, const float* b, float* out, float* mean, float* rstd,
                           wct_i64 N, wct_i64 C, float eps) {
#pragma omp parallel for schedule(static) if (N * C >= WCT_PAR_MIN)
  for (int64_t n = 0; n < N; n++) ln_forward_row(x + n * C, w, b, out + n * C, C, eps, mean + n, rstd + n);
}

void wct_layernorm_backward(const float* x, const float* w, const float* mean, const float* rstd, const float* dy,
                            float* dx, float* dw, float* db, wct_i64 N, wct_i64 C) {
  const int64_t tiles = (C + WCT_COL_TILE - 1) / WCT_COL_TILE;
#pragma omp parallel if (N * C >= WCT_PAR_MIN)
  {
#pragma omp for schedule(static)
    for (int64_t t = 0; t < tiles; t++) {
      const int64_t c0 = t * WCT_COL_TILE, w0 = std::min(WCT_COL_TILE, C - c0);
      double accW[WCT_COL_TILE] = {0.0}, accB[WCT_COL_TILE] = {0.0};
      for (int64_t n = 0; n < N; n++) ln_dwdb_row(accW, accB, dy + n * C + c0, x + n * C + c0, mean[n], rstd[n], w0);
      for (int64_t j = 0; j < w0; j++) {
        dw[c0 + j] += float(accW[j]);
        db[c0 + j] += float(accB[j]);
      }
    }
#pragma omp for schedule(static)
    for (int64_t n = 0; n < N; n++) ln_backward_row(x + n * C, w, mean[n], rstd[n], dy + n * C, dx + n * C, C);
  }
}
