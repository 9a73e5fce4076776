// Batched products with a packed weight (M > 16: prefill, evaluation, training). W_hat is never
// materialised: the product walks it in cache-sized panels, [rows of the output chunk, a slice of the
// contraction], each dequantized in packed order (rows split over the threads, vectorised:
// packed_gemm_dequant.cc) into one 4 MiB buffer that stays in L2/L3 while a cblas_sgemm on every thread
// consumes it, accumulating into the chunk of y (or dx):
//   y [:, n0:n1]  (+)= xp[:, k0:k1] P^T        P = W_p[n0:n1, k0:k1]      (xp = x in packed order)
//   dxp[:, k0:k1] (+)= dy[:, n0:n1] P          then dx = scatter_perm(dxp)
// Output chunks are wide (up to CHUNK_MAX) because every sgemm call packs all of its x (or dy) slice again,
// which costs about 1/(2 width) of the product: at 192 rows it took 12-20% more than one sgemm, at 1536 none.
// The contraction is sliced instead (each slice of x is packed once per chunk); the chunk's rows of y are
// re-read per slice, as OpenBLAS re-reads C per K block (GEMM_Q) anyway.
// The weak columns and the CSR outliers ride in the same panels: their packed codes dequantize to exactly 0,
// so each panel row gets weak[r, j] at the packed column of weak_idx[j] and its outliers (packed_sparse.cc)
// right after it is dequantized; no GEMM or scatter of their own.
// Deterministic: the panels depend on the shape alone and each element of a panel is written by one thread,
// so every call gives the same bits at a given thread count; y also across thread counts (measured: 1, 2, 3),
// dx not (OpenBLAS's threaded dy P rounds differently per thread count, as it did before these panels).
#include <omp.h>

#include <algorithm>
#include <utility>
#include <vector>

#include "blas.h"
#include "dispatch.h"
#include "packed_gemm_internal.h"
#include "packed_internal.h"

// fp32 bytes of one dequantized panel: 4 MiB (2 MiB of L2 per core on the 2-core Xeon measured; most of a
// 32 MiB L3 on a Zen 4), small enough to stay cached while sgemm packs it, large enough for wide chunks.
static constexpr int64_t PANEL_BYTES = int64_t(4) << 20;
// Output chunk width, at most (a wider output is cut into equal chunks); so slices are at least 512 deep, and
// the chunk's rows of y that each slice re-reads cost 8 bytes per 1024 flops.
static constexpr int64_t CHUNK_MAX = 2048;
// Up to this many input rows the batched decode GEMV runs (packed_gemv.cc, each weight row read once for all
// rows). It beats the panels well past 16: at 4096x4096 4-bit G = 128 (2-core Zen 4, shared) 18 ms against
// 80 ms at m = 32 and 69 against 95 at m = 128, so the hand-over could move up; the tests reach the panel path
// at m = 17.
static constexpr int64_t GEMV_MAX_M = 16;

static int64_t round_up8(int64_t n) { return (n + 7) / 8 * 8; }

// The calling thread's panel buffer of at least n floats (contents unspecified): kept between calls, as a
// fresh 4 MiB allocation per call took ~0.15 ms of page faults (3% of a 768x768 product at m = 512).
static float* panel_buffer(int64_t n) {
  thread_local std::vector<float> buf;
  if (int64_t(buf.size()) < n) buf.resize(n);
  return buf.data();
}

// Chunk width along an output dimension of `len`: equal chunks of at most CHUNK_MAX, multiples of 8 (column
// chunks of dx start on packed blocks).
static int64_t chunk_width(int64_t len) {
  const int64_t chunks = (len + CHUNK_MAX - 1) / CHUNK_MAX;
  return round_up8((len + chunks - 1) / chunks);
}

// Slice depth along a contraction of `len` for chunks of `width`: PANEL_BYTES, a multiple of 8, at most len
// rounded up to 8.
static int64_t slice_depth(int64_t len, int64_t width) {
  const int64_t d = PANEL_BYTES / int64_t(sizeof(float)) / width / 8 * 8;
  return std::min(d, round_up8(len));
}

// What a panel needs besides the codes: the weak columns as (packed column, j) sorted by column, and the
// inverse of perm (empty without perm) for the outliers.
struct panel_extras {
  std::vector<std::pair<int32_t, int32_t>> weak;
  std::vector<int32_t> inv;
};

static panel_extras extras_of(const wct_packed* w) {
  panel_extras e;
  if (w->perm != nullptr) {
    e.inv.resize(w->cols);
    for (int64_t k = 0; k < w->cols; k++) e.inv[w->perm[k]] = int32_t(k);
  }
  for (int64_t j = 0; j < w->n_out; j++) {
    const int32_t c = w->weak_idx[j];
    e.weak.emplace_back(e.inv.empty() ? c : e.inv[c], int32_t(j));
  }
  std::sort(e.weak.begin(), e.weak.end());
  return e;
}

// out [r1-r0, k1-k0] (row stride ld) = W_p rows [r0, r1), packed columns [k0, k1), weak columns and
// outliers included; rows split over the threads.
static void fill_panel(const wct_packed* w, const panel_extras& e, int64_t r0, int64_t r1, int64_t k0, int64_t k1,
                       float* out, int64_t ld) {
  const auto lo = std::lower_bound(e.weak.begin(), e.weak.end(), std::make_pair(int32_t(k0), int32_t(0)));
  const auto hi = std::lower_bound(e.weak.begin(), e.weak.end(), std::make_pair(int32_t(k1), int32_t(0)));
#pragma omp parallel for schedule(static) if ((r1 - r0) * (k1 - k0) >= WCT_PAR_MIN)
  for (int64_t r = r0; r < r1; r++) {
    float* row = out + (r - r0) * ld;
    wct_packed_dequant_panel_row(w, r, k0, k1, row);
    for (auto it = lo; it != hi; ++it) row[it->first - k0] = w->weak[r * w->n_out + it->second];
    wct_packed_add_outliers_block(w, e.inv, r, r + 1, k0, k1, row, ld);
  }
}

void wct_packed_matmul(const wct_packed* w, const float* x, wct_i64 M, float* y) {
  const int64_t N = w->rows, K = w->cols;
  if (M <= GEMV_MAX_M) return wct_packed_gemv(w, x, M, y);
  std::vector<float> gathered(w->perm != nullptr ? M * K : 0);
  if (w->perm != nullptr) wct_packed_gather_cols(w, x, M, gathered.data());
  const float* xp = w->perm != nullptr ? gathered.data() : x;
  const panel_extras e = extras_of(w);
  const int64_t NC = chunk_width(N), KB = slice_depth(K, NC);
  float* panel = panel_buffer(NC * KB);
  for (int64_t n0 = 0; n0 < N; n0 += NC) {
    const int64_t n1 = std::min(N, n0 + NC);
    for (int64_t k0 = 0; k0 < K; k0 += KB) {
      const int64_t k1 = std::min(K, k0 + KB);
      fill_panel(w, e, n0, n1, k0, k1, panel, k1 - k0);
      wct_sgemm_rm(false, true, M, n1 - n0, k1 - k0, 1.0f, xp + k0, K, panel, k1 - k0, k0 > 0 ? 1.0f : 0.0f,
                   y + n0, N);
    }
  }
}

void wct_packed_matmul_t(const wct_packed* w, const float* dy, wct_i64 M, float* dx) {
  const int64_t N = w->rows, K = w->cols;
  std::vector<float> unpermuted(w->perm != nullptr ? M * K : 0);
  float* dxp = w->perm != nullptr ? unpermuted.data() : dx;  // [M, K] packed order
  const panel_extras e = extras_of(w);
  const int64_t KC = chunk_width(K), NB = slice_depth(N, KC);
  float* panel = panel_buffer(NB * KC);
  for (int64_t k0 = 0; k0 < K; k0 += KC) {
    const int64_t k1 = std::min(K, k0 + KC);
    for (int64_t n0 = 0; n0 < N; n0 += NB) {
      const int64_t n1 = std::min(N, n0 + NB);
      fill_panel(w, e, n0, n1, k0, k1, panel, k1 - k0);
      wct_sgemm_rm(false, false, M, k1 - k0, n1 - n0, 1.0f, dy + n0, N, panel, k1 - k0, n0 > 0 ? 1.0f : 0.0f,
                   dxp + k0, K);
    }
  }
  if (w->perm != nullptr) {
#pragma omp parallel for schedule(static) if (M * K >= WCT_PAR_MIN)
    for (int64_t i = 0; i < M; i++) {
      for (int64_t k = 0; k < K; k++) dx[i * K + w->perm[k]] = dxp[i * K + k];
    }
  }
}

// xg [M, n_out] = x [M, K] at the weak columns.
static std::vector<float> gather_weak(const wct_packed* w, const float* x, int64_t M) {
  std::vector<float> xg(M * w->n_out);
  for (int64_t i = 0; i < M; i++) {
    for (int64_t j = 0; j < w->n_out; j++) xg[i * w->n_out + j] = x[i * w->cols + w->weak_idx[j]];
  }
  return xg;
}

void wct_packed_weak_grad(const wct_packed* w, const float* dy, const float* x, wct_i64 M, float* dweak) {
  if (w->n_out == 0) return;
  const std::vector<float> xw = gather_weak(w, x, M);
  wct_sgemm_rm(true, false, w->rows, w->n_out, M, 1.0f, dy, w->rows, xw.data(), w->n_out, 1.0f, dweak, w->n_out);
}
