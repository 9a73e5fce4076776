// Packed layout <-> codes, and dequantization (see wct_packed.h for the layout).
// Every 8 consecutive codes of a row are one little-endian word of exactly `bits` bytes (block j of a row
// starts at byte j * bits), and a row is whole blocks, so the loops here step over blocks and decode the
// codes of a block that a group, span or row end cuts one at a time from the same word.
#include <omp.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "dispatch.h"
#include "packed_internal.h"

// The 8-code block at p as a 64-bit word (reads exactly B bytes).
template <int B>
WCT_INLINE static uint64_t load_block(const uint8_t* p) {
  uint64_t u = 0;
  std::memcpy(&u, p, B);  // little-endian host (x86-64)
  return u;
}

// Code k of the row at q (any k below the row's blocks * 8).
template <int B>
WCT_INLINE static int code_at(const uint8_t* q, int64_t k) {
  return int((load_block<B>(q + k / 8 * B) >> (k % 8 * B)) & ((1u << B) - 1));
}

// One row: codes [cols] -> q [blocks * B], the pad codes of a partial last block 0.
template <int B>
static void pack_row(const uint8_t* codes, uint8_t* q, int64_t cols) {
  for (int64_t j = 0; j < wct_packed_blocks(cols); j++) {
    const int n = int(std::min<int64_t>(8, cols - 8 * j));
    uint64_t u = 0;
    for (int i = 0; i < n; i++) u |= uint64_t(codes[8 * j + i] & ((1u << B) - 1)) << (i * B);
    std::memcpy(q + j * B, &u, B);
  }
}

template <int B>
static void unpack_row(const uint8_t* q, uint8_t* codes, int64_t cols) {
  for (int64_t j = 0; j < wct_packed_blocks(cols); j++) {
    const int n = int(std::min<int64_t>(8, cols - 8 * j));
    const uint64_t u = load_block<B>(q + j * B);
    for (int i = 0; i < n; i++) codes[8 * j + i] = uint8_t((u >> (i * B)) & ((1u << B) - 1));
  }
}

// Runs f<B>() for the runtime width `bits` (one of 2, 3, 4, 8; checked by the caller).
template <class F>
WCT_INLINE static void with_bits(int bits, F&& f) {
  switch (bits) {
    case 2: return f(std::integral_constant<int, 2>());
    case 3: return f(std::integral_constant<int, 3>());
    case 4: return f(std::integral_constant<int, 4>());
    default: return f(std::integral_constant<int, 8>());
  }
}

void wct_pack_codes(const uint8_t* codes, uint8_t* qweight, wct_i64 rows, wct_i64 cols, int bits) {
  const int64_t rb = wct_packed_row_bytes(cols, bits);
  with_bits(bits, [&](auto b) {
    for (int64_t r = 0; r < rows; r++) pack_row<decltype(b)::value>(codes + r * cols, qweight + r * rb, cols);
  });
}

void wct_unpack_codes(const uint8_t* qweight, uint8_t* codes, wct_i64 rows, wct_i64 cols, int bits) {
  const int64_t rb = wct_packed_row_bytes(cols, bits);
  with_bits(bits, [&](auto b) {
    for (int64_t r = 0; r < rows; r++) unpack_row<decltype(b)::value>(qweight + r * rb, codes + r * cols, cols);
  });
}

// ---- dequantize ----

// out[k - k0] = sc * (code_k - zp) for k in [a, b): whole blocks (a, b multiples of 8), or one code at a time.
// float(code - z) is exact, so each value is rounded once.
template <int B>
WCT_INLINE static void dequant_blocks(const uint8_t* q, float sc, int zp, int64_t a, int64_t b, int64_t k0, float* out) {
  for (int64_t k = a; k < b; k += 8) {
    const uint64_t u = load_block<B>(q + k / 8 * B);
    for (int i = 0; i < 8; i++) out[k - k0 + i] = float(int((u >> (i * B)) & ((1u << B) - 1)) - zp) * sc;
  }
}
template <int B>
WCT_INLINE static void dequant_codes(const uint8_t* q, float sc, int zp, int64_t a, int64_t b, int64_t k0, float* out) {
  for (int64_t k = a; k < b; k++) out[k - k0] = float(code_at<B>(q, k) - zp) * sc;
}

// out[k - k0] = s_g * (code_k - z_g) for packed columns [k0, k1) of one row (k1 <= K); group by group, so
// the scale and zero point are read once per group; a group's whole blocks at once, the codes before its
// first whole block and after its last (G % 8 != 0, K % 8 != 0, span ends) one at a time. The common case,
// a group of whole blocks, takes the block loop alone (the split costs 2-4% at G <= 128).
template <int B>
WCT_INLINE static void dequant_span_t(const uint8_t* q, const float* s, const uint8_t* z, int64_t G, int64_t k0,
                                      int64_t k1, float* out) {
  for (int64_t k = k0; k < k1;) {
    const int64_t g = k / G, end = std::min(k1, (g + 1) * G);
    const float sc = s[g];
    const int zp = z[g];
    if (((k | end) & 7) == 0) {
      dequant_blocks<B>(q, sc, zp, k, end, k0, out);
    } else {
      const int64_t a = std::min(end, (k + 7) & ~int64_t(7)), b = std::max(a, end & ~int64_t(7));
      dequant_codes<B>(q, sc, zp, k, a, k0, out);
      dequant_blocks<B>(q, sc, zp, a, b, k0, out);
      dequant_codes<B>(q, sc, zp, b, end, k0, out);
    }
    k = end;
  }
}

// (a switch, not with_bits: a lambda would be compiled outside the caller's target ISA)
WCT_INLINE static void dequant_span_body(const uint8_t* q, const float* s, const uint8_t* z, int64_t G, int bits,
                                         int64_t k0, int64_t k1, float* out) {
  switch (bits) {
    case 2: return dequant_span_t<2>(q, s, z, G, k0, k1, out);
    case 3: return dequant_span_t<3>(q, s, z, G, k0, k1, out);
    case 4: return dequant_span_t<4>(q, s, z, G, k0, k1, out);
    default: return dequant_span_t<8>(q, s, z, G, k0, k1, out);
  }
}
WCT_MULTIVERSION(void, dequant_span,
                 (const uint8_t* q, const float* s, const uint8_t* z, int64_t G, int bits, int64_t k0, int64_t k1,
                  float* out),
                 (q, s, z, G, bits, k0, k1, out))

void wct_packed_dequant_row(const wct_packed* w, int64_t r, int64_t k0, int64_t k1, float* out) {
  const int64_t groups = wct_packed_groups(w->cols, w->group);
  dequant_span(w->qweight + r * wct_packed_row_bytes(w->cols, w->bits), w->scales + r * groups, w->zeros + r * groups,
               w->group, w->bits, k0, k1, out);
}

void wct_packed_dequant_block(const wct_packed* w, int64_t r0, int64_t r1, int64_t k0, int64_t k1, float* out,
                              int64_t ld) {
#pragma omp parallel for schedule(static) if ((r1 - r0) * (k1 - k0) >= WCT_PAR_MIN)
  for (int64_t r = r0; r < r1; r++) wct_packed_dequant_row(w, r, k0, k1, out + (r - r0) * ld);
}

void wct_packed_gather_cols(const wct_packed* w, const float* x, int64_t M, float* xp) {
  const int64_t K = w->cols;
#pragma omp parallel for schedule(static) if (M * K >= WCT_PAR_MIN)
  for (int64_t i = 0; i < M; i++) {
    for (int64_t k = 0; k < K; k++) xp[i * K + k] = x[i * K + w->perm[k]];
  }
}

// Adds the weak columns: out[r, weak_idx[j]] += weak[r, j] (out [N, K], input order).
static void add_weak_columns(const wct_packed* w, float* out) {
  for (int64_t r = 0; r < w->rows; r++) {
    for (int64_t j = 0; j < w->n_out; j++) out[r * w->cols + w->weak_idx[j]] += w->weak[r * w->n_out + j];
  }
}

void wct_packed_dequantize(const wct_packed* w, float* out) {
  const int64_t N = w->rows, K = w->cols;
  if (w->perm == nullptr) {
    wct_packed_dequant_block(w, 0, N, 0, K, out, K);
  } else {
#pragma omp parallel if (N * K >= WCT_PAR_MIN)
    {
      std::vector<float> row(K);  // one packed-order row per thread
#pragma omp for schedule(static)
      for (int64_t r = 0; r < N; r++) {
        wct_packed_dequant_row(w, r, 0, K, row.data());
        for (int64_t k = 0; k < K; k++) out[r * K + w->perm[k]] = row[k];
      }
    }
  }
  add_weak_columns(w, out);
  wct_packed_add_outliers(w, out);
}
