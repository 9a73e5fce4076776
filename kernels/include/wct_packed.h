// The packed low-bit weight of a linear layer, declared once (mirrored in src/native/packed.ts; a test
// checks that the TS constants equal wct_packed_layout()). See kernels/PACKED.md for the full story.
//
// Glossary: N rows (= out_features), K cols (= in_features, any K >= 1), b bits per code, G group size
// (any G >= 1), M batch rows. A block is 8 consecutive codes of a row: exactly b bytes for every b.
//
//   qweight  u8  [N, ceil(K/8)*b]  row r is a little-endian bit stream of ceil(K/8) whole blocks; packed
//                            column k of row r sits in bits [k*b, (k+1)*b). So 4-bit: low nibble first;
//                            3-bit: 8 codes in 3 bytes; 2-bit: 4 per byte; 8-bit: 1 per byte. When K % 8
//                            != 0 the last block's codes past K (the pad) are 0; for K % 8 == 0 a row is
//                            exactly K*b/8 bytes.
//                            Contiguous along K: a decode GEMV streams each row once.
//   scales   f32 [N, ceil(K/G)] zeros u8 [N, ceil(K/G)] (integer zero points in 0..2^b-1). Group g is
//                            packed columns [g*G, min((g+1)*G, K)): the last group is shorter when G does
//                            not divide K (GPTQ's groups). G == K: per row.
//   perm     i32 [K] or null packed column k holds input column perm[k] (act-order with groups).
//   weak_idx i32 [n_out]     sorted, unique input columns kept in fp32; weak f32 [N, n_out].
//                            Their packed codes hold the group's zero point, so they dequantize to 0.
//
//   outliers (optional, GWQ-style sparse full-precision elements) in CSR form, nnz of them:
//     outlier_row_ptr i32 [N+1]  row r's outliers are p in [row_ptr[r], row_ptr[r+1]); row_ptr[0] = 0,
//                                non-decreasing, row_ptr[N] = nnz
//     outlier_col_idx i32 [nnz]  INPUT column of outlier p (not packed order), strictly ascending within a
//                                row, never a weak column
//     outlier_values  f32 [nnz]  its value (fp16 on disk)
//                            Their packed codes hold the group's zero point (the packed part is 0 there), so
//                            the CSR part is simply added. All three null (and nnz 0) when there are none.
//
//   W_hat[r, perm[k]] = scales[r, k/G] * (code[r, k] - zeros[r, k/G])  (+ weak[r, j] at weak_idx[j])
//                       (+ outlier_values[p] at outlier_col_idx[p], p in row r's CSR range)
//
// Effective bits per weight: b + (32 + 8) / G for scales and zeros (+ 32 * n_out / K for weak columns)
// (+ per outlier 48 bits on disk: a 32-bit column index and a 16-bit value; + 32 (N+1) / (N K) of row pointers).
#pragma once
#include "wct_common.h"

// Codes per block. A row is whole blocks (the last one padded) so that it is a whole number of bytes for
// every supported width and every block can be read as one word.
#define WCT_PACKED_BLOCK_CODES 8
// Supported code widths, as a bit set: (1 << b) for b in {2, 3, 4, 8}.
#define WCT_PACKED_BITS_MASK ((1u << 2) | (1u << 3) | (1u << 4) | (1u << 8))
// Bump when the byte layout changes (saved checkpoints record it). The pad only exists for K % 8 != 0,
// which version 1 readers refused, so aligned files read the same under both and version 1 covers both.
#define WCT_PACKED_LAYOUT_VERSION 1

static_assert(WCT_PACKED_BLOCK_CODES * 3 % 8 == 0, "8 three-bit codes fill whole bytes");

// A read-only view of one packed linear (the caller's buffers; nothing is copied).
typedef struct {
  wct_i64 rows, cols, group;  // N, K, G
  int bits;                   // b
  const uint8_t* qweight;     // [N, ceil(K/8)*b]
  const float* scales;        // [N, ceil(K/G)]
  const uint8_t* zeros;       // [N, ceil(K/G)]
  const int32_t* perm;        // [K] or null
  wct_i64 n_out;
  const int32_t* weak_idx;  // [n_out]
  const float* weak;        // [N, n_out]
  wct_i64 nnz;                     // outliers (0: none; the three pointers below are then null)
  const int32_t* outlier_row_ptr;  // [N+1]
  const int32_t* outlier_col_idx;  // [nnz] input columns
  const float* outlier_values;     // [nnz]
} wct_packed;

inline bool wct_packed_bits_ok(wct_i64 b) { return b >= 0 && b < 32 && ((WCT_PACKED_BITS_MASK >> b) & 1u); }
// Blocks of a row of `cols` codes, its bytes, and the groups of `group` columns along it.
inline wct_i64 wct_packed_blocks(wct_i64 cols) { return (cols + WCT_PACKED_BLOCK_CODES - 1) / WCT_PACKED_BLOCK_CODES; }
inline wct_i64 wct_packed_row_bytes(wct_i64 cols, int bits) { return wct_packed_blocks(cols) * bits; }
inline wct_i64 wct_packed_groups(wct_i64 cols, wct_i64 group) { return (cols + group - 1) / group; }

// codes u8 [N, K] (packed-column order, each < 2^b) <-> qweight u8 [N, ceil(K/8)*b] (pad codes 0).
void wct_pack_codes(const uint8_t* codes, uint8_t* qweight, wct_i64 rows, wct_i64 cols, int bits);
void wct_unpack_codes(const uint8_t* qweight, uint8_t* codes, wct_i64 rows, wct_i64 cols, int bits);

// Every kernel below includes the weak columns and the CSR outliers in W_hat.
// out f32 [N, K] = W_hat in input-column order, weak columns included.
void wct_packed_dequantize(const wct_packed* w, float* out);

// y [M, N] = x [M, K] W_hat^T. M <= 16 runs the fused decode GEMV (reads qweight once for all M rows); larger
// M dequantizes cache-sized panels of W_hat and multiplies them with cblas_sgemm.
void wct_packed_matmul(const wct_packed* w, const float* x, wct_i64 M, float* y);
// dx [M, K] = dy [M, N] W_hat (overwritten).
void wct_packed_matmul_t(const wct_packed* w, const float* dy, wct_i64 M, float* dx);
// dweak [N, n_out] += dy^T [N, M] x[:, weak_idx] [M, n_out].
void wct_packed_weak_grad(const wct_packed* w, const float* dy, const float* x, wct_i64 M, float* dweak);
// dvalues [nnz] += for each outlier p of row r at input column c: sum_i dy[i, r] x[i, c] (dy [M, N], x [M, K]).
// Each p is summed by one thread in a fixed order (double accumulation): deterministic.
void wct_packed_outlier_grad(const wct_packed* w, const float* dy, const float* x, wct_i64 M, float* dvalues);

// The first row (of N) whose outlier columns are not all in [0, K) or not strictly ascending, or -1 when every
// row's are (the row pointers must already be checked: from 0, non-decreasing). One parallel, vectorised pass,
// so that a binding can afford it on every call.
wct_i64 wct_packed_check_outlier_columns(const wct_packed* w);

// Read bandwidth probe for benchmarks: sums a `bytes`-long buffer with every thread, `iters` times after
// one warm-up pass; returns bytes read per second.
double wct_bench_read_bandwidth(wct_i64 bytes, wct_i64 iters);
