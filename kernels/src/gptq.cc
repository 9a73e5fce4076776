// GPTQ (Frantar et al., arXiv 2210.17323) as IST-DASLab/gptq's `fasterquant` runs it, in OWQ's variant
// (xvyaward/owq recon.py `GPTQ_OWQ.fasterquant`): only the first n_quant columns are quantized; the
// error updates still flow into the trailing weak columns, which come out compensated.
//
// Reference symbols: W [R, C], H [C, C], Hinv = upper Cholesky factor of H^-1, W1 / Err1 [R, count] the
// block's working copy and scaled errors, d = Hinv[i, i]. Within a block every row is independent (its
// own params and errors), so the column sweep runs row-parallel; the update of the later columns,
// W[:, i2:] -= Err1 @ Hinv[i1:i2, i2:], is one sgemm per block (in column panels, to bound the scratch).
#include <lapack.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <stdexcept>
#include <string>
#include <vector>

#include "blas.h"
#include "dispatch.h"
#include "wct_quant.h"

// Columns of the later-columns update handled per sgemm: its scratch is R * PANEL floats.
constexpr int64_t GPTQ_PANEL = 1024;

// The reference's fp32 steps: products are rounded before they are added (no FMA contraction).
#pragma GCC push_options
#pragma GCC optimize("fp-contract=off")

// One row of one block: w1 = W1[r, :count] (returns holding Q1[r, :]), err = Err1[r, :], h = &Hinv[i1, i1]
// with row stride ldh, the params of column i1 + i at scale[g * gstride], g = (i1 + i) / group (0 when
// group == 0), codes = &codes[r, i1]. Returns this row's share of the loss, sum (w - q)^2 / d^2 / 2.
// fixed = &fixed[r, i1] or null: a fixed element's code is z, its Q 0 and its error 0.
WCT_INLINE static double sweep_row_body(float* w1, float* err, int64_t count, const float* h, int64_t ldh,
                                        const float* scale, const float* zero, int64_t i1, int64_t group, float maxq,
                                        const uint8_t* fixed, uint8_t* codes) {
  double loss = 0.0;
  for (int64_t i = 0; i < count; i++) {
    const float* hi = h + i * ldh;  // Hinv1[i, :]
    const int64_t g = group > 0 ? (i1 + i) / group : 0;
    const float s = scale[g], z = zero[g];
    if (fixed != nullptr && fixed[i]) {
      err[i] = 0.0f;
      w1[i] = 0.0f;
      codes[i] = uint8_t(z);
      continue;
    }
    const float w = w1[i], d = hi[i];
    float c = nearbyintf(w / s) + z;
    c = c < 0.0f ? 0.0f : (c > maxq ? maxq : c);
    const float q = s * (c - z);
    const float dq = w - q;
    loss += double((dq * dq) / (d * d)) * 0.5;  // Losses1[:, i] = (w - q)**2 / d**2; Losses = Losses1 / 2
    const float e = dq / d;                     // err1 = (w - q) / d
    for (int64_t j = i; j < count; j++) w1[j] = w1[j] - e * hi[j];  // W1[:, i:] -= err1 Hinv1[i, i:]
    err[i] = e;
    w1[i] = q;  // column i is final: keep Q1[:, i] in its place
    codes[i] = uint8_t(c);
  }
  return loss;
}
WCT_MULTIVERSION(double, sweep_row,
                 (float* w1, float* err, int64_t count, const float* h, int64_t ldh, const float* scale,
                  const float* zero, int64_t i1, int64_t group, float maxq, const uint8_t* fixed, uint8_t* codes),
                 (w1, err, count, h, ldh, scale, zero, i1, group, maxq, fixed, codes))

// w[:n] -= t[:n] (the reference subtracts the rounded product Err1 @ Hinv)
WCT_INLINE static void sub_row_body(float* w, const float* t, int64_t n) {
  for (int64_t j = 0; j < n; j++) w[j] = w[j] - t[j];
}
WCT_MULTIVERSION(void, sub_row, (float* w, const float* t, int64_t n), (w, t, n))

#pragma GCC pop_options

// For every i > j of the row-major [C, C] matrix a: a[i, j] = a[j, i], the upper triangle mirrored into
// the lower one (swap: the two exchanged, a transpose), by tiles
// (a strided sweep over a 3072^2 matrix is cache-bound).
static void mirror_tiles(float* a, int64_t C, bool swap) {
  constexpr int64_t T = 32;
  for (int64_t i0 = 0; i0 < C; i0 += T) {
    for (int64_t j0 = 0; j0 <= i0; j0 += T) {
      const int64_t i1 = std::min(i0 + T, C), j1 = std::min(j0 + T, C);
      for (int64_t i = i0; i < i1; i++) {
        for (int64_t j = j0; j < std::min(j1, i); j++) {
          if (swap) {
            std::swap(a[j * C + i], a[i * C + j]);
          } else {
            a[i * C + j] = a[j * C + i];
          }
        }
      }
    }
  }
}

// H (symmetric, [C, C]) -> the reference's Hinv = cholesky(cholesky_inverse(cholesky(H)), upper=True),
// row-major in H's upper triangle (the strictly lower triangle is left as scratch). LAPACK is
// column-major; a symmetric matrix reads the same either way, and the uplo arguments follow torch's.
static void hinv_upper(float* H, int64_t C) {
  const lapack_int n = lapack_int(C);
  lapack_int info = 0;
  const char lower = 'L', upper = 'U';
  LAPACK_spotrf(&lower, &n, H, &n, &info);  // L, H = L L^T
  if (info > 0) {
    throw std::runtime_error("gptq: the damped Hessian is not positive definite (Cholesky failed at column " +
                             std::to_string(info) + " of " + std::to_string(C) +
                             "); check the calibration data, or raise percdamp");
  }
  if (info < 0) throw std::runtime_error("gptq: spotrf rejected argument " + std::to_string(-info));
  LAPACK_spotri(&lower, &n, H, &n, &info);  // lower triangle of H^-1 = L^-T L^-1
  if (info != 0) throw std::runtime_error("gptq: the Cholesky factor of H is singular (spotri info " +
                                          std::to_string(info) + ")");
  // The column-major lower triangle is the row-major upper one: mirror it for the upper Cholesky.
  mirror_tiles(H, C, false);
  LAPACK_spotrf(&upper, &n, H, &n, &info);  // U, H^-1 = U^T U, column-major upper triangle
  if (info != 0) {
    throw std::runtime_error("gptq: H^-1 is not positive definite in fp32 (Cholesky failed at column " +
                             std::to_string(info) + "); raise percdamp");
  }
  // The column-major upper triangle read row-major is U^T: transpose it into the row-major upper one.
  mirror_tiles(H, C, true);
}

// The params of W[:, c0:c0 + width] (row stride C) into scale/zero (stride n_groups), the fixed elements
// counted as 0 (which changes neither the range, widened to include 0, nor a search's error).
static void group_params(const float* W, const uint8_t* fixed, int64_t R, int64_t C, int64_t c0, int64_t width,
                         int64_t n_groups, const wct_gptq_dims& d, int grid, float* scale, float* zero) {
  if (fixed == nullptr) {
    wct_quant_find_params(W + c0, R, width, C, n_groups, d.maxq, d.tuning, grid, scale, zero);
    return;
  }
  std::vector<float> slice(size_t(R * width));
  for (int64_t r = 0; r < R; r++) {
    for (int64_t j = 0; j < width; j++) slice[r * width + j] = fixed[r * C + c0 + j] ? 0.0f : W[r * C + c0 + j];
  }
  wct_quant_find_params(slice.data(), R, width, width, n_groups, d.maxq, d.tuning, grid, scale, zero);
}

// Seconds since `t0`, and t0 moved to now: the stopwatch of wct_gptq_timing.
static double lap(std::chrono::steady_clock::time_point& t0) {
  const auto now = std::chrono::steady_clock::now();
  const double s = std::chrono::duration<double>(now - t0).count();
  t0 = now;
  return s;
}

double wct_gptq(float* W, float* H, const wct_gptq_dims& d, const uint8_t* fixed, uint8_t* codes, float* scale,
                float* zero, wct_gptq_timing* timing) {
  wct_gptq_timing t{};
  auto t0 = std::chrono::steady_clock::now();
  const int64_t R = d.rows, C = d.cols, nq = d.n_quant, G = d.group_size, B = d.block_size;
  const int64_t n_groups = G > 0 ? (nq + G - 1) / G : 1;
  const float maxq = float(d.maxq);
  // 1. per-row params from the columns to quantize, before dead columns are zeroed (as the reference)
  if (G == 0) group_params(W, fixed, R, C, 0, nq, 1, d, 100, scale, zero);
  t.params_s += lap(t0);
  // 2. dead inputs: H_jj = 0 -> H_jj = 1 and W[:, j] = 0 (W is written only once Hinv exists)
  std::vector<int64_t> dead;
  double diag_sum = 0.0;
  for (int64_t j = 0; j < C; j++) {
    float& hjj = H[j * C + j];
    if (hjj == 0.0f) {
      hjj = 1.0f;
      dead.push_back(j);
    }
    diag_sum += double(hjj);
  }
  // 3. damp = percdamp * mean(diag H) on the diagonal, then Hinv
  const float damp = d.percdamp * (float(diag_sum) / float(C));  // torch.mean: fp32 sum / n
  for (int64_t j = 0; j < C; j++) H[j * C + j] += damp;
  hinv_upper(H, C);
  t.hinv_s += lap(t0);
  const float* Hinv = H;
  for (int64_t r = 0; r < R; r++) {
    for (int64_t j : dead) W[r * C + j] = 0.0f;
  }
  // 4. blocks of B columns
  std::vector<float> W1(size_t(R * std::min(B, nq))), Err1(W1.size());
  std::vector<float> tmp(size_t(R * std::min(GPTQ_PANEL, C)));
  std::vector<double> row_loss(size_t(R), 0.0);
  for (int64_t i1 = 0; i1 < nq; i1 += B) {
    const int64_t i2 = std::min(i1 + B, nq), count = i2 - i1;
    for (int64_t r = 0; r < R; r++) std::copy(W + r * C + i1, W + r * C + i2, W1.data() + r * count);
    // Group params from W, which holds this block's columns as they were when the block started (the
    // reference reads W, not W1, inside the block) and the later columns as the earlier blocks left them.
    if (G > 0) {
      for (int64_t c = (i1 + G - 1) / G * G; c < i2; c += G) {
        group_params(W, fixed, R, C, c, std::min(c + G, nq) - c, n_groups, d, 40, scale + c / G, zero + c / G);
      }
    }
    t.params_s += lap(t0);
#pragma omp parallel for schedule(static) if (R * count * count >= WCT_PAR_MIN)
    for (int64_t r = 0; r < R; r++) {
      row_loss[r] += sweep_row(W1.data() + r * count, Err1.data() + r * count, count, Hinv + i1 * C + i1, C,
                               scale + r * n_groups, zero + r * n_groups, i1, G, maxq,
                               fixed == nullptr ? nullptr : fixed + r * C + i1, codes + r * nq + i1);
    }
    for (int64_t r = 0; r < R; r++) std::copy(W1.data() + r * count, W1.data() + (r + 1) * count, W + r * C + i1);
    t.sweep_s += lap(t0);
    // W[:, i2:] -= Err1 @ Hinv[i1:i2, i2:], the weak columns included
    for (int64_t p0 = i2; p0 < C; p0 += GPTQ_PANEL) {
      const int64_t np = std::min(GPTQ_PANEL, C - p0);
      wct_sgemm_rm(false, false, R, np, count, 1.0f, Err1.data(), count, Hinv + i1 * C + p0, C, 0.0f, tmp.data(), np);
#pragma omp parallel for schedule(static) if (R * np >= WCT_PAR_MIN)
      for (int64_t r = 0; r < R; r++) sub_row(W + r * C + p0, tmp.data() + r * np, np);
    }
    t.update_s += lap(t0);
  }
  double loss = 0.0;
  for (double l : row_loss) loss += l;
  if (timing != nullptr) *timing = t;
  return loss;
}
