// Row-wise softmax forward / backward (also the building blocks of attention).
#include "wct_softmax.h"

#include "dispatch.h"
#include "fastmath.h"
#include "rows.h"

WCT_INLINE static void softmax_rows_body(const float* x, float* out, int64_t n) {
  if (n == 0) return;
  float mx = x[0];
#pragma omp simd reduction(max : mx)
  for (int64_t i = 1; i < n; i++) mx = x[i] > mx ? x[i] : mx;
  double s = 0.0;
#pragma omp simd reduction(+ : s)
  for (int64_t i = 0; i < n; i++) {
    const float e = wct_fast_expf(x[i] - mx);
    out[i] = e;
    s += double(e);
  }
  const float inv = float(1.0 / s);
  for (int64_t i = 0; i < n; i++) out[i] *= inv;
}
WCT_MULTIVERSION(void, softmax_rows, (const float* x, float* out, int64_t n), (x, out, n))

WCT_INLINE static void softmax_backward_rows_body(const float* y, const float* dy, float* dx, int64_t n) {
  double s = 0.0;
#pragma omp simd reduction(+ : s)
  for (int64_t i = 0; i < n; i++) s += double(dy[i]) * double(y[i]);
  const float sf = float(s);
  for (int64_t i = 0; i < n; i++) dx[i] = y[i] * (dy[i] - sf);
}
WCT_MULTIVERSION(void, softmax_backward_rows, (const float* y, const float* dy, float* dx, int64_t n),
                 (y, dy, dx, n))

void wct_softmax_row(float* row, int64_t n) { softmax_rows(row, row, n); }
void wct_softmax_backward_row(const float* y, const float* dy, float* dx, int64_t n) {
  softmax_backward_rows(y, dy, dx, n);
}

void wct_softmax_forward(const float* x, float* out, wct_i64 N, wct_i64 C) {
#pragma omp parallel for schedule(static) if (N * C >= WCT_PAR_MIN / 8)
  for (int64_t n = 0; n < N; n++) softmax_rows(x + n * C, out + n * C, C);
}

void wct_softmax_backward(const float* y, const float* dy, float* dx, wct_i64 N, wct_i64 C) {
#pragma omp parallel for schedule(static) if (N * C >= WCT_PAR_MIN)
  for (int64_t n = 0; n < N; n++) softmax_backward_rows(y + n * C, dy + n * C, dx + n * C, C);
}
