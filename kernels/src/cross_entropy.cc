// Fused softmax cross-entropy over rows of logits.
#include "wct_cross_entropy.h"

#include <cmath>

#include "dispatch.h"
#include "fastmath.h"

wct_i64 wct_cross_entropy_check(const int32_t* targets, wct_i64 N, wct_i64 V, int32_t ignoreIndex) {
  for (int64_t n = 0; n < N; n++) {
    const int32_t t = targets[n];
    if (t != ignoreIndex && (t < 0 || t >= V)) return n;
  }
  return -1;
}

WCT_INLINE static float lse_row_body(const float* x, int64_t V) {
  float mx = x[0];
#pragma omp simd reduction(max : mx)
  for (int64_t i = 1; i < V; i++) mx = x[i] > mx ? x[i] : mx;
  double s = 0.0;
#pragma omp simd reduction(+ : s)
  for (int64_t i = 0; i < V; i++) s += double(wct_fast_expf(x[i] - mx));
  return float(double(mx) + std::log(s));
}
WCT_MULTIVERSION(float, lse_row, (const float* x, int64_t V), (x, V))

WCT_INLINE static void ce_backward_row_body(const float* x, float lse, float scale, float* dx, int64_t V) {
  for (int64_t i = 0; i < V; i++) dx[i] = wct_fast_expf(x[i] - lse) * scale;
}
WCT_MULTIVERSION(void, ce_backward_row, (const float* x, float lse, float scale, float* dx, int64_t V),
                 (x, lse, scale, dx, V))

void wct_cross_entropy_forward(const float* logits, const int32_t* targets, float* losses, float* lse, wct_i64 N,
                               wct_i64 V, int32_t ignoreIndex) {
#pragma omp parallel for schedule(static) if (N * V >= WCT_PAR_MIN / 8)
  for (int64_t n = 0; n < N; n++) {
    const float* x = logits + n * V;
    lse[n] = V > 0 ? lse_row(x, V) : -INFINITY;
    losses[n] = targets[n] == ignoreIndex ? 0.0f : lse[n] - x[targets[n]];
  }
}

void wct_cross_entropy_backward(const float* logits, const int32_t* targets, const float* lse, float rowScale,
                                float* dlogits, wct_i64 N, wct_i64 V, int32_t ignoreIndex) {
#pragma omp parallel for schedule(static) if (N * V >= WCT_PAR_MIN / 8)
  for (int64_t n = 0; n < N; n++) {
    float* dx = dlogits + n * V;
    if (targets[n] == ignoreIndex) {
      for (int64_t i = 0; i < V; i++) dx[i] = 0.0f;
      continue;
    }
    ce_backward_row(logits + n * V, lse[n], rowScale, dx, V);
    dx[targets[n]] -= rowScale;
  }
}
