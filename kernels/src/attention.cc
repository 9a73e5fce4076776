// Causal grouped-query attention with a KV-cache offset: cblas_sgemm per (b, head) inside OpenMP.
#include "wct_attention.h"

#include <omp.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "blas.h"
#include "rows.h"

// Keys visible to query row i: j < visible(i) (clamped to [0, Tk]).
static inline int64_t visible(int64_t i, int64_t Tq, int64_t Tk) {
  return std::min(Tk, std::max<int64_t>(0, i + (Tk - Tq) + 1));
}

// Runs body(task, scratch) for task in [0, tasks). With enough tasks (at least half the threads) they
// run in parallel, one single-threaded sgemm per thread (OpenBLAS goes serial inside an OpenMP
// region); otherwise one after another so that each sgemm gets every thread. scratch is a per-thread
// buffer of `scratch` floats, allocated once per call.
template <class F>
static void for_tasks(int64_t tasks, int64_t scratch, F body) {
  const int threads = int(std::min<int64_t>(omp_get_max_threads(), tasks));
  const bool par = threads > 1 && 2 * tasks >= omp_get_max_threads();
  std::vector<float> buf(size_t(scratch) * size_t(par ? threads : 1));
  if (!par) {
    for (int64_t t = 0; t < tasks; t++) body(t, buf.data());
    return;
  }
#pragma omp parallel num_threads(threads)
  {
    float* mine = buf.data() + size_t(scratch) * size_t(omp_get_thread_num());
#pragma omp for schedule(dynamic, 1)
    for (int64_t t = 0; t < tasks; t++) body(t, mine);
  }
}

void wct_attention_forward(const float* q, const float* k, const float* v, float* out, float* probs, wct_i64 B,
                           wct_i64 Tq, wct_i64 Tk, wct_i64 H, wct_i64 Hkv, wct_i64 D, float scale) {
  if (B == 0 || Tq == 0 || H == 0) return;
  const int64_t group = H / Hkv, ldq = H * D, ldk = Hkv * D;
  for_tasks(B * H, probs ? 0 : Tq * Tk, [&](int64_t task, float* scratch) {
    const int64_t b = task / H, h = task % H, kvh = h / group;
    const float* Q = q + b * Tq * ldq + h * D;
    const float* K = k + b * Tk * ldk + kvh * D;
    const float* V = v + b * Tk * ldk + kvh * D;
    float* O = out + b * Tq * ldq + h * D;
    float* P = probs ? probs + task * Tq * Tk : scratch;
    wct_sgemm_rm(false, true, Tq, Tk, D, scale, Q, ldq, K, ldk, 0.0f, P, Tk);  // S = scale Q K^T
    for (int64_t i = 0; i < Tq; i++) {
      const int64_t n = visible(i, Tq, Tk);
      float* row = P + i * Tk;
      wct_softmax_row(row, n);
      std::memset(row + n, 0, size_t(Tk - n) * sizeof(float));
    }
    wct_sgemm_rm(false, false, Tq, D, Tk, 1.0f, P, Tk, V, ldk, 0.0f, O, ldq);  // O = P V
  });
}

void wct_attention_backward(const float* q, const float* k, const float* v, const float* probs, const float* dout,
                            float* dq, float* dk, float* dv, wct_i64 B, wct_i64 Tq, wct_i64 Tk, wct_i64 H,
                            wct_i64 Hkv, wct_i64 D, float scale) {
  if (B == 0 || H == 0) return;
  const int64_t group = H / Hkv, ldq = H * D, ldk = Hkv * D;
  // One task per (b, kv head): it owns dk/dv of that head and sums over its query heads in turn.
  for_tasks(B * Hkv, Tq * Tk, [&](int64_t task, float* dS) {
    const int64_t b = task / Hkv, kvh = task % Hkv;
    const float* K = k + b * Tk * ldk + kvh * D;
    const float* V = v + b * Tk * ldk + kvh * D;
    float* dK = dk + b * Tk * ldk + kvh * D;
    float* dV = dv + b * Tk * ldk + kvh * D;
    if (Tq == 0) {  // nothing attends: zero gradients
      for (int64_t j = 0; j < Tk; j++) {
        std::memset(dK + j * ldk, 0, size_t(D) * sizeof(float));
        std::memset(dV + j * ldk, 0, size_t(D) * sizeof(float));
      }
      return;
    }
    for (int64_t g = 0; g < group; g++) {
      const int64_t h = kvh * group + g;
      const float beta = g == 0 ? 0.0f : 1.0f;  // first head overwrites dk/dv, the rest accumulate
      const float* P = probs + (b * H + h) * Tq * Tk;
      const float* Q = q + b * Tq * ldq + h * D;
      const float* dO = dout + b * Tq * ldq + h * D;
      float* dQ = dq + b * Tq * ldq + h * D;
      wct_sgemm_rm(true, false, Tk, D, Tq, 1.0f, P, Tk, dO, ldq, beta, dV, ldk);   // dV (+)= P^T dO
      wct_sgemm_rm(false, true, Tq, Tk, D, 1.0f, dO, ldq, V, ldk, 0.0f, dS, Tk);  // dP = dO V^T
      for (int64_t i = 0; i < Tq; i++) {  // dS = P * (dP - rowsum(dP * P)); masked P = 0 gives dS = 0
        wct_softmax_backward_row(P + i * Tk, dS + i * Tk, dS + i * Tk, Tk);
      }
      wct_sgemm_rm(false, false, Tq, D, Tk, scale, dS, Tk, K, ldk, 0.0f, dQ, ldq);  // dQ = scale dS K
      wct_sgemm_rm(true, false, Tk, D, Tq, scale, dS, Tk, Q, ldq, beta, dK, ldk);   // dK (+)= scale dS^T Q
    }
  });
}
