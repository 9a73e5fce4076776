// Internal to the packed kernels (packed_*.cc): helpers shared by the GEMV, the panel GEMM and dequantize.
// "Packed order" is the column order of qweight; input order is the order of x (they differ by perm).
#pragma once
#include <cstdint>
#include <vector>

#include "wct_packed.h"

// out [r1-r0, k1-k0] (row stride ld) = s * (code - z) for rows [r0, r1), packed columns [k0, k1) (any
// 0 <= k0 < k1 <= K). Weak positions come out 0 (their codes are the zero point); perm and weak are not
// applied. Runs on every thread.
void wct_packed_dequant_block(const wct_packed* w, int64_t r0, int64_t r1, int64_t k0, int64_t k1, float* out,
                              int64_t ld);
// out [k1-k0] = the same for row r alone, on the calling thread.
void wct_packed_dequant_row(const wct_packed* w, int64_t r, int64_t k0, int64_t k1, float* out);

// Passes ahead of the current one that the decode GEMV's row loops prefetch (into L2; a pass reads several rows
// side by side, 4 on AVX-512). Those are short streams (2 KiB per row at K = 4096, 4-bit) that the hardware
// prefetchers barely learn before they end; asking for the pass after next keeps DRAM busy. Measured on Zen 4
// (2 threads, 4-bit, one 100 MiB call): K = 4096 11-15 GB/s without, 21-28 with 2 passes (1 pass: 19-24;
// 4 passes: no better), against ~30 GB/s of read bandwidth.
constexpr int GEMV_PREFETCH_PASSES = 2;

// y [M, N] = x [M, K] W_hat^T for a few inputs (M <= 16): the fused decode GEMV (packed_gemv.cc), which reads
// each packed row from memory once for all M inputs.
void wct_packed_gemv(const wct_packed* w, const float* x, int64_t M, float* y);

// xp [M, K] = x [M, K] with columns in packed order: xp[:, k] = x[:, perm[k]] (perm must be set).
void wct_packed_gather_cols(const wct_packed* w, const float* x, int64_t M, float* xp);

// ---- the CSR outliers (packed_sparse.cc); every function is a no-op when w->nnz == 0 ----

// out [N, K] (input order) += the outliers.
void wct_packed_add_outliers(const wct_packed* w, float* out);
// Σ_p values[p] x[col_idx[p]] over row r's outliers (x [K], input order), summed in double.
double wct_packed_outlier_dot(const wct_packed* w, int64_t r, const float* x);
// packed column of each input column (the inverse of perm; empty when perm is null or there are no outliers).
std::vector<int32_t> wct_packed_outlier_columns(const wct_packed* w);
// A dequantized panel (packed order, as wct_packed_dequant_block writes it: 0 at the outliers) += the outliers
// of rows [r0, r1) at packed columns [k0, k1); panel[(r - r0) * ld + (kp - k0)]. inv from
// wct_packed_outlier_columns. Runs on every thread, one row per thread at a time (no two threads write one row).
void wct_packed_add_outliers_block(const wct_packed* w, const std::vector<int32_t>& inv, int64_t r0, int64_t r1,
                                   int64_t k0, int64_t k1, float* panel, int64_t ld);
