// The packed low-bit weight of a linear layer, declared once (mirrored in src/native/packed.ts; a test
// checks that the TS constants equal wct_packed_layout()). See kernels/PACKED.md for the full story.
//
// Glossary: N rows (= out_features), K cols (= in_features), b bits per code, G group size, M batch rows.
//
//   qweight  u8  [N, K*b/8]  row r is a little-endian bit stream; packed column k of row r sits in bits
//                            [k*b, (k+1)*b). So 4-bit: low nibble first; 3-bit: 8 codes in 3 bytes;
//                            2-bit: 4 per byte; 8-bit: 1 per byte. Contiguous along K: a decode GEMV
//                            streams each row once.
//   scales   f32 [N, K/G]    zeros u8 [N, K/G] (integer zero points in 0..2^b-1). G == K: per row;
//                            G is a multiple of 8 dividing K.
//   perm     i32 [K] or null packed column k holds input column perm[k] (act-order with groups).
//   weak_idx i32 [n_out]     sorted, unique input columns kept in fp32; weak f32 [N, n_out].
//                            Their packed codes hold the group's zero point, so they dequantize to 0.
//
//   W_hat[r, perm[k]] = scales[r, k/G] * (code[r, k] - zeros[r, k/G])  (+ weak[r, j] at weak_idx[j])
//
// Effective bits per weight: b + (32 + 8) / G for scales and zeros (+ 32 * n_out / K for weak columns).
#pragma once
#include "wct_common.h"

// K must be a multiple of WCT_PACKED_COL_ALIGN so that every row is a whole number of bytes (8 codes of
// b bits are exactly b bytes) for every supported width.
#define WCT_PACKED_COL_ALIGN 8
// Supported code widths, as a bit set: (1 << b) for b in {2, 3, 4, 8}.
#define WCT_PACKED_BITS_MASK ((1u << 2) | (1u << 3) | (1u << 4) | (1u << 8))
// Bump when the byte layout changes (saved checkpoints record it).
#define WCT_PACKED_LAYOUT_VERSION 1

static_assert(WCT_PACKED_COL_ALIGN * 3 % 8 == 0, "8 three-bit codes fill whole bytes");

// A read-only view of one packed linear (the caller's buffers; nothing is copied).
typedef struct {
  wct_i64 rows, cols, group;  // N, K, G
  int bits;                   // b
  const uint8_t* qweight;     // [N, K*b/8]
  const float* scales;        // [N, K/G]
  const uint8_t* zeros;       // [N, K/G]
  const int32_t* perm;        // [K] or null
  wct_i64 n_out;
  const int32_t* weak_idx;  // [n_out]
  const float* weak;        // [N, n_out]
} wct_packed;

inline bool wct_packed_bits_ok(wct_i64 b) { return b >= 0 && b < 32 && ((WCT_PACKED_BITS_MASK >> b) & 1u); }
inline wct_i64 wct_packed_row_bytes(wct_i64 cols, int bits) { return cols / 8 * bits; }

// codes u8 [N, K] (packed-column order, each < 2^b) <-> qweight u8 [N, K*b/8].
void wct_pack_codes(const uint8_t* codes, uint8_t* qweight, wct_i64 rows, wct_i64 cols, int bits);
void wct_unpack_codes(const uint8_t* qweight, uint8_t* codes, wct_i64 rows, wct_i64 cols, int bits);

// out f32 [N, K] = W_hat in input-column order, weak columns included.
void wct_packed_dequantize(const wct_packed* w, float* out);

// y [M, N] = x [M, K] W_hat^T. M == 1 runs the fused decode GEMV (reads qweight once); larger M
// dequantizes cache-sized panels of W_hat and multiplies them with cblas_sgemm.
void wct_packed_matmul(const wct_packed* w, const float* x, wct_i64 M, float* y);
// dx [M, K] = dy [M, N] W_hat (overwritten).
void wct_packed_matmul_t(const wct_packed* w, const float* dy, wct_i64 M, float* dx);
// dweak [N, n_out] += dy^T [N, M] x[:, weak_idx] [M, n_out].
void wct_packed_weak_grad(const wct_packed* w, const float* dy, const float* x, wct_i64 M, float* dweak);

// Read bandwidth probe for benchmarks: sums a `bytes`-long buffer with every thread, `iters` times after
// one warm-up pass; returns bytes read per second.
double wct_bench_read_bandwidth(wct_i64 bytes, wct_i64 iters);
