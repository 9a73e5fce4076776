// AdamW (torch.optim.AdamW's update, src/train/adamw.ts) fused into one pass per parameter: decoupled weight
// decay, the m and v moments, bias correction and the update, with the clipping scale applied to the gradient
// as it is read. Every step is the reference's (src/native/ref.ts adamw): double arithmetic on the fp32
// values, rounded to fp32 where the reference stores into its Float32Array, so the result is bit-identical.
//
// Also the squared gradient norm that clipping needs: a threaded double sum whose order (8 lanes within a
// chunk, chunks in index order) depends on n alone, so it does not change with the thread count.
#include "wct_optim.h"

#include <algorithm>
#include <cmath>
#include <utility>
#include <vector>

#include "dispatch.h"

// Elements per parallel work item.
static constexpr int64_t CHUNK = 1 << 14;
// Independent accumulators of the sum of squares (vector lanes; fixed, so the sum is the same on every ISA).
static constexpr int LANES = 8;

// Exact steps of the reference: a product is rounded before it is added (no FMA contraction).
#pragma GCC push_options
#pragma GCC optimize("fp-contract=off")

WCT_INLINE static void adamw_run_body(float* theta, const float* g, float* m, float* v, int64_t n,
                                      const wct_adamw_params* p) {
  const double lr = p->lr, b1 = p->beta1, b2 = p->beta2, eps = p->eps, c1 = p->c1, c2 = p->c2;
  const double s = p->grad_scale, decay = p->lr * p->weight_decay, a1 = 1 - p->beta1, a2 = 1 - p->beta2;
  for (int64_t j = 0; j < n; j++) {
    const double gj = float(double(g[j]) * s);  // fp32, as torch's in-place clip_grad_norm_ leaves it
    const double t = double(theta[j]);
    const double th = float(t - decay * t);
    const double mj = float(b1 * double(m[j]) + a1 * gj);
    const double vj = float(b2 * double(v[j]) + a2 * gj * gj);
    m[j] = float(mj);
    v[j] = float(vj);
    theta[j] = float(th - (lr * (mj / c1)) / (std::sqrt(vj / c2) + eps));
  }
}
WCT_MULTIVERSION(void, adamw_run,
                 (float* theta, const float* g, float* m, float* v, int64_t n, const wct_adamw_params* p),
                 (theta, g, m, v, n, p))

WCT_INLINE static double sum_squares_run_body(const float* x, int64_t n) {
  double acc[LANES] = {};
  const int64_t full = n - n % LANES;
  for (int64_t i = 0; i < full; i += LANES)
    for (int k = 0; k < LANES; k++) acc[k] += double(x[i + k]) * double(x[i + k]);
  for (int64_t i = full; i < n; i++) acc[i - full] += double(x[i]) * double(x[i]);
  double s = 0.0;
  for (int k = 0; k < LANES; k++) s += acc[k];
  return s;
}
WCT_MULTIVERSION(double, sum_squares_run, (const float* x, int64_t n), (x, n))

#pragma GCC pop_options

void wct_adamw_many(const wct_adamw_tensor* tensors, wct_i64 count, const wct_adamw_params* p) {
  std::vector<std::pair<int64_t, int64_t>> work;  // (tensor, first element) of every chunk
  int64_t total = 0;
  for (int64_t i = 0; i < count; i++) {
    for (int64_t o = 0; o < tensors[i].n; o += CHUNK) work.emplace_back(i, o);
    total += tensors[i].n;
  }
  const int64_t chunks = int64_t(work.size());
#pragma omp parallel for schedule(static) if (total >= WCT_PAR_MIN)
  for (int64_t c = 0; c < chunks; c++) {
    const wct_adamw_tensor& t = tensors[work[size_t(c)].first];
    const int64_t o = work[size_t(c)].second;
    adamw_run(t.theta + o, t.g + o, t.m + o, t.v + o, std::min(CHUNK, t.n - o), p);
  }
}

void wct_adamw(float* theta, const float* g, float* m, float* v, wct_i64 n, const wct_adamw_params* p) {
  const wct_adamw_tensor t = {theta, g, m, v, n};
  wct_adamw_many(&t, 1, p);
}

double wct_sum_squares(const float* x, wct_i64 n) {
  const int64_t chunks = (n + CHUNK - 1) / CHUNK;
  if (chunks <= 1) return sum_squares_run(x, n);
  std::vector<double> part(static_cast<size_t>(chunks));
#pragma omp parallel for schedule(static) if (n >= WCT_PAR_MIN)
  for (int64_t c = 0; c < chunks; c++) {
    const int64_t o = c * CHUNK;
    part[size_t(c)] = sum_squares_run(x + o, std::min(CHUNK, n - o));
  }
  double s = 0.0;
  for (double q : part) s += q;
  return s;
}
