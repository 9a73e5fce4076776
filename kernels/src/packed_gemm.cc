// Batched products with a packed weight (M > 1: prefill, evaluation, training). W_hat is never
// materialised: cache-sized fp32 panels of it are dequantized (in packed order, on every thread) and
// multiplied with cblas_sgemm (on every thread). perm only gathers x / scatters dx, and the weak columns
// are a separate small GEMM, because in packed order the weak positions dequantize to exactly 0:
//   y  = xp W_p^T + x[:, weak_idx] weak^T         (xp = x in packed order)
//   dx = scatter_perm(dy W_p) + scatter_weak(dy weak)
// The CSR outliers' codes dequantize to 0 as well: each panel gets its outliers added at their packed
// columns right after it is dequantized (packed_sparse.cc), so W_p here includes them.
#include <algorithm>
#include <vector>

#include "blas.h"
#include "dispatch.h"
#include "packed_internal.h"

// fp32 bytes per dequantized panel: half the L3 of the machine this was tuned on (32 MiB), so a panel
// stays cached while sgemm streams it. Panels must be wide: sgemm re-packs the other operand (x or dy,
// [M, K]) once per panel, which at 4 MiB (~90 rows at K = 11008) cost more than the product itself.
static constexpr int64_t PANEL_BYTES = int64_t(16) << 20;
// Up to this many input rows the batched decode GEMV runs (packed_gemv.cc, each weight row read once for all
// rows). It beats the panels well past 16: at 4096x4096 4-bit G = 128 (2-core Zen 4, shared) 18 ms against
// 80 ms at m = 32 and 69 against 95 at m = 128, so the hand-over could move up; the tests reach the panel path
// at m = 17.
static constexpr int64_t GEMV_MAX_M = 16;

// Panel extent along a dimension of `len`, when the other dimension is `other`: a multiple of 8 (column
// panels start on packed blocks, decoded a block at a time), at least 8, at most len rounded up to 8.
static int64_t panel_extent(int64_t len, int64_t other) {
  const int64_t n = std::max<int64_t>(8, PANEL_BYTES / int64_t(sizeof(float)) / std::max<int64_t>(other, 1) / 8 * 8);
  return std::min(n, (len + 7) / 8 * 8);
}

// xg [M, n_out] = x [M, K] at the weak columns.
static std::vector<float> gather_weak(const wct_packed* w, const float* x, int64_t M) {
  std::vector<float> xg(M * w->n_out);
  for (int64_t i = 0; i < M; i++) {
    for (int64_t j = 0; j < w->n_out; j++) xg[i * w->n_out + j] = x[i * w->cols + w->weak_idx[j]];
  }
  return xg;
}

void wct_packed_matmul(const wct_packed* w, const float* x, wct_i64 M, float* y) {
  const int64_t N = w->rows, K = w->cols;
  if (M <= GEMV_MAX_M) return wct_packed_gemv(w, x, M, y);
  std::vector<float> gathered(w->perm != nullptr ? M * K : 0);
  if (w->perm != nullptr) wct_packed_gather_cols(w, x, M, gathered.data());
  const float* xp = w->perm != nullptr ? gathered.data() : x;
  const int64_t NB = panel_extent(N, K);
  std::vector<float> panel(NB * K);  // [NB, K] rows n0.. of W_p
  const std::vector<int32_t> inv = wct_packed_outlier_columns(w);
  for (int64_t n0 = 0; n0 < N; n0 += NB) {
    const int64_t nb = std::min(NB, N - n0);
    wct_packed_dequant_block(w, n0, n0 + nb, 0, K, panel.data(), K);
    wct_packed_add_outliers_block(w, inv, n0, n0 + nb, 0, K, panel.data(), K);
    wct_sgemm_rm(false, true, M, nb, K, 1.0f, xp, K, panel.data(), K, 0.0f, y + n0, N);  // y[:, n0:] = xp P^T
  }
  if (w->n_out > 0) {
    const std::vector<float> xw = gather_weak(w, x, M);
    wct_sgemm_rm(false, true, M, N, w->n_out, 1.0f, xw.data(), w->n_out, w->weak, w->n_out, 1.0f, y, N);
  }
}

void wct_packed_matmul_t(const wct_packed* w, const float* dy, wct_i64 M, float* dx) {
  const int64_t N = w->rows, K = w->cols;
  std::vector<float> unpermuted(w->perm != nullptr ? M * K : 0);
  float* dxp = w->perm != nullptr ? unpermuted.data() : dx;  // [M, K] packed order
  const int64_t KB = panel_extent(K, N);
  std::vector<float> panel(N * KB);  // [N, KB] columns k0.. of W_p
  const std::vector<int32_t> inv = wct_packed_outlier_columns(w);
  for (int64_t k0 = 0; k0 < K; k0 += KB) {
    const int64_t kb = std::min(KB, K - k0);
    wct_packed_dequant_block(w, 0, N, k0, k0 + kb, panel.data(), kb);
    wct_packed_add_outliers_block(w, inv, 0, N, k0, k0 + kb, panel.data(), kb);
    wct_sgemm_rm(false, false, M, kb, N, 1.0f, dy, N, panel.data(), kb, 0.0f, dxp + k0, K);  // dxp[:, k0:] = dy P
  }
  if (w->perm != nullptr) {
#pragma omp parallel for schedule(static) if (M * K >= WCT_PAR_MIN)
    for (int64_t i = 0; i < M; i++) {
      for (int64_t k = 0; k < K; k++) dx[i * K + w->perm[k]] = dxp[i * K + k];
    }
  }
  if (w->n_out > 0) {
    std::vector<float> dxw(M * w->n_out);  // [M, n_out] = dy weak
    wct_sgemm_rm(false, false, M, w->n_out, N, 1.0f, dy, N, w->weak, w->n_out, 0.0f, dxw.data(), w->n_out);
    for (int64_t i = 0; i < M; i++) {
      for (int64_t j = 0; j < w->n_out; j++) dx[i * K + w->weak_idx[j]] += dxw[i * w->n_out + j];
    }
  }
}

void wct_packed_weak_grad(const wct_packed* w, const float* dy, const float* x, wct_i64 M, float* dweak) {
  if (w->n_out == 0) return;
  const std::vector<float> xw = gather_weak(w, x, M);
  wct_sgemm_rm(true, false, w->rows, w->n_out, M, 1.0f, dy, w->rows, xw.data(), w->n_out, 1.0f, dweak, w->n_out);
}
