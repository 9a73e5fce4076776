// Elementwise kernels: broadcasting binary ops, affine, sumTo / sumAll, activations (fwd + bwd).
#include "wct_elementwise.h"

#include <algorithm>

#include "dispatch.h"
#include "fastmath.h"
#include "layout.h"

// Parallel work is cut into chunks of this many elements along the innermost dim (smaller for the
// transcendental activations, which cost ~10x more per element).
static constexpr int64_t CHUNK = 1 << 14;
static constexpr int64_t UNARY_CHUNK = 1 << 11;

// ---- binary ----

template <int OP>
WCT_INLINE static float apply_binary(float x, float y) {
  if (OP == WCT_ADD) return x + y;
  if (OP == WCT_SUB) return x - y;
  if (OP == WCT_MUL) return x * y;
  return x / y;
}

// One run of n outputs; ia / ib are the inputs' element strides along the run (0 = broadcast).
template <int OP>
WCT_INLINE static void binary_run(const float* a, int64_t ia, const float* b, int64_t ib, float* out, int64_t n) {
  if (ia == 1 && ib == 1) {
    for (int64_t i = 0; i < n; i++) out[i] = apply_binary<OP>(a[i], b[i]);
  } else if (ia == 1 && ib == 0) {
    const float y = b[0];
    for (int64_t i = 0; i < n; i++) out[i] = apply_binary<OP>(a[i], y);
  } else if (ia == 0 && ib == 1) {
    const float x = a[0];
    for (int64_t i = 0; i < n; i++) out[i] = apply_binary<OP>(x, b[i]);
  } else {
    for (int64_t i = 0; i < n; i++) out[i] = apply_binary<OP>(a[i * ia], b[i * ib]);
  }
}

WCT_INLINE static void binary_rows_body(int op, const float* a, int64_t ia, const float* b, int64_t ib, float* out,
                                        int64_t n) {
  switch (op) {
    case WCT_ADD: binary_run<WCT_ADD>(a, ia, b, ib, out, n); break;
    case WCT_SUB: binary_run<WCT_SUB>(a, ia, b, ib, out, n); break;
    case WCT_MUL: binary_run<WCT_MUL>(a, ia, b, ib, out, n); break;
    default: binary_run<WCT_DIV>(a, ia, b, ib, out, n); break;
  }
}
WCT_MULTIVERSION(void, binary_rows,
                 (int op, const float* a, int64_t ia, const float* b, int64_t ib, float* out, int64_t n),
                 (op, a, ia, b, ib, out, n))

void wct_binary(int op, const float* a, const float* b, float* out, int rank, const wct_i64* shape,
                const wct_i64* stridesA, const wct_i64* stridesB) {
  WctLayout L;
  L.rank = rank;
  L.arrays = 3;
  int64_t dense = 1;
  for (int d = rank - 1; d >= 0; d--) {
    L.shape[d] = shape[d];
    L.stride[0][d] = dense;
    L.stride[1][d] = stridesA[d];
    L.stride[2][d] = stridesB[d];
    dense *= shape[d];
  }
  if (dense == 0) return;
  wct_coalesce(L);
  const int inner = L.rank - 1;
  const int64_t n = L.shape[inner], rows = wct_count(L, inner);
  const int64_t chunks = (n + CHUNK - 1) / CHUNK;
  const int64_t ia = L.stride[1][inner], ib = L.stride[2][inner];
#pragma omp parallel for schedule(static) if (dense >= WCT_PAR_MIN)
  for (int64_t t = 0; t < rows * chunks; t++) {
    const int64_t row = t / chunks, c0 = (t % chunks) * CHUNK;
    int64_t off[3];
    wct_offsets(L, inner, row, off);
    binary_rows(op, a + off[1] + c0 * ia, ia, b + off[2] + c0 * ib, ib, out + off[0] + c0, std::min(CHUNK, n - c0));
  }
}

// ---- affine ----

WCT_INLINE static void affine_rows_body(const float* x, float* out, int64_t n, float alpha, float beta) {
  for (int64_t i = 0; i < n; i++) out[i] = x[i] * alpha + beta;
}
WCT_MULTIVERSION(void, affine_rows, (const float* x, float* out, int64_t n, float alpha, float beta),
                 (x, out, n, alpha, beta))

void wct_affine(const float* x, float* out, wct_i64 n, float alpha, float beta) {
#pragma omp parallel for schedule(static) if (n >= WCT_PAR_MIN)
  for (int64_t c = 0; c < n; c += CHUNK) affine_rows(x + c, out + c, std::min(CHUNK, n - c), alpha, beta);
}

// ---- reductions ----

WCT_INLINE static double sum_rows_body(const float* x, int64_t n) {
  double s = 0.0;
#pragma omp simd reduction(+ : s)
  for (int64_t i = 0; i < n; i++) s += double(x[i]);
  return s;
}
WCT_MULTIVERSION(double, sum_rows, (const float* x, int64_t n), (x, n))

// acc[j] += x[j], j < n.
WCT_INLINE static void accumulate_rows_body(double* acc, const float* x, int64_t n) {
  for (int64_t j = 0; j < n; j++) acc[j] += double(x[j]);
}
WCT_MULTIVERSION(void, accumulate_rows, (double* acc, const float* x, int64_t n), (acc, x, n))

double wct_sum_all(const float* x, wct_i64 n) {
  double s = 0.0;
#pragma omp parallel for schedule(static) reduction(+ : s) if (n >= WCT_PAR_MIN)
  for (int64_t c = 0; c < n; c += CHUNK) s += sum_rows(x + c, std::min(CHUNK, n - c));
  return s;
}

// Dims of `from` (excluding its innermost) whose out stride is nonzero (keep = true) or zero.
static WctLayout pick_dims(const WctLayout& from, bool keep) {
  WctLayout L;
  L.arrays = 2;
  for (int d = 0; d < from.rank - 1; d++) {
    if ((from.stride[1][d] != 0) != keep) continue;
    L.shape[L.rank] = from.shape[d];
    L.stride[0][L.rank] = from.stride[0][d];
    L.stride[1][L.rank] = from.stride[1][d];
    L.rank++;
  }
  return L;
}

// Output positions are split between threads (each sums its own positions over the reduced dims), so
// there are no races and the result does not depend on the thread count.
void wct_sum_to(const float* x, float* out, int rank, const wct_i64* shape, const wct_i64* stridesOut) {
  static constexpr int64_t TILE = 256;
  WctLayout L;
  L.rank = rank;
  L.arrays = 2;  // 0: x (dense), 1: out
  int64_t total = 1;
  for (int d = rank - 1; d >= 0; d--) {
    L.shape[d] = shape[d];
    L.stride[0][d] = total;
    L.stride[1][d] = stridesOut[d];
    total *= shape[d];
  }
  if (total == 0) return;
  wct_coalesce(L);
  const int inner = L.rank - 1;
  const int64_t n = L.shape[inner], so = L.stride[1][inner];
  const WctLayout kept = pick_dims(L, true), reduced = pick_dims(L, false);
  const int64_t nKept = wct_count(kept, kept.rank), nReduced = wct_count(reduced, reduced.rank);
  if (so != 0) {
    // Innermost dim kept: each task owns a tile of up to TILE output columns.
    const int64_t tiles = (n + TILE - 1) / TILE;
#pragma omp parallel for schedule(static) if (total >= WCT_PAR_MIN)
    for (int64_t t = 0; t < nKept * tiles; t++) {
      const int64_t c0 = (t % tiles) * TILE, w = std::min(TILE, n - c0);
      int64_t k[2], r[2];
      wct_offsets(kept, kept.rank, t / tiles, k);
      double acc[TILE] = {0.0};
      for (int64_t i = 0; i < nReduced; i++) {
        wct_offsets(reduced, reduced.rank, i, r);
        accumulate_rows(acc, x + k[0] + r[0] + c0, w);
      }
      for (int64_t j = 0; j < w; j++) out[k[1] + (c0 + j) * so] += float(acc[j]);
    }
  } else {
    // Innermost dim reduced: each task owns one output element and sums contiguous runs.
#pragma omp parallel for schedule(static) if (total >= WCT_PAR_MIN)
    for (int64_t t = 0; t < nKept; t++) {
      int64_t k[2], r[2];
      wct_offsets(kept, kept.rank, t, k);
      double s = 0.0;
      for (int64_t i = 0; i < nReduced; i++) {
        wct_offsets(reduced, reduced.rank, i, r);
        s += sum_rows(x + k[0] + r[0], n);
      }
      out[k[1]] += float(s);
    }
  }
}

// ---- activations ----

static constexpr float INV_SQRT_2PI = 0.39894228040143268f;

// gelu(x) = x Phi(x) (the exact erf form, torch's default), gelu'(x) = Phi(x) + x phi(x);
// silu(x) = x s(x), silu'(x) = s (1 + x (1 - s)). Transcendentals come from fastmath.h (~1-2 ulp).
WCT_INLINE static void unary_forward_rows_body(int op, const float* x, float* out, int64_t n) {
  switch (op) {
    case WCT_RELU:
      for (int64_t i = 0; i < n; i++) out[i] = x[i] < 0.0f ? 0.0f : x[i];
      break;
    case WCT_GELU:
      for (int64_t i = 0; i < n; i++) out[i] = 0.5f * x[i] * wct_two_phi(x[i]);
      break;
    case WCT_SILU:
      for (int64_t i = 0; i < n; i++) out[i] = x[i] / (1.0f + wct_fast_expf(-x[i]));
      break;
    case WCT_EXP:
      for (int64_t i = 0; i < n; i++) out[i] = wct_fast_expf(x[i]);
      break;
    default:
      for (int64_t i = 0; i < n; i++) out[i] = -x[i];
      break;
  }
}
WCT_MULTIVERSION(void, unary_forward_rows, (int op, const float* x, float* out, int64_t n), (op, x, out, n))

WCT_INLINE static void unary_backward_rows_body(int op, const float* x, const float* dy, float* dx, int64_t n) {
  switch (op) {
    case WCT_RELU:
      for (int64_t i = 0; i < n; i++) dx[i] = x[i] > 0.0f ? dy[i] : 0.0f;
      break;
    case WCT_GELU:
      for (int64_t i = 0; i < n; i++) {
        const float pdf = INV_SQRT_2PI * wct_fast_expf(-0.5f * x[i] * x[i]);
        dx[i] = dy[i] * (0.5f * wct_two_phi(x[i]) + x[i] * pdf);
      }
      break;
    case WCT_SILU:
      for (int64_t i = 0; i < n; i++) {
        const float s = 1.0f / (1.0f + wct_fast_expf(-x[i]));
        dx[i] = dy[i] * s * (1.0f + x[i] * (1.0f - s));
      }
      break;
    case WCT_EXP:
      for (int64_t i = 0; i < n; i++) dx[i] = dy[i] * wct_fast_expf(x[i]);
      break;
    default:
      for (int64_t i = 0; i < n; i++) dx[i] = -dy[i];
      break;
  }
}
WCT_MULTIVERSION(void, unary_backward_rows, (int op, const float* x, const float* dy, float* dx, int64_t n),
                 (op, x, dy, dx, n))

void wct_unary_forward(int op, const float* x, float* out, wct_i64 n) {
#pragma omp parallel for schedule(static) if (n >= WCT_PAR_MIN / 8)
  for (int64_t c = 0; c < n; c += UNARY_CHUNK) unary_forward_rows(op, x + c, out + c, std::min(UNARY_CHUNK, n - c));
}

void wct_unary_backward(int op, const float* x, const float* dy, float* dx, wct_i64 n) {
#pragma omp parallel for schedule(static) if (n >= WCT_PAR_MIN / 8)
  for (int64_t c = 0; c < n; c += UNARY_CHUNK) {
    unary_backward_rows(op, x + c, dy + c, dx + c, std::min(UNARY_CHUNK, n - c));
  }
}
