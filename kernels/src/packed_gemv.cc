// The fused decode GEMV y [M, N] = x [M, K] W_hat^T for a few inputs (decode, batched or speculative decode):
// reads each packed row from memory once for all M inputs and dequantizes in registers. Per row and input:
// y_r = Σ_g s_g (Σ_{k in g} code_k xr_k - z_g xsum_g) + Σ_j weak[r, j] xw_j, where, once per call and input,
// x is gathered into packed order (xp, zero-padded to whole blocks), xsum holds its per-group sums and
// xw = x[weak_idx]. V::R rows per pass (AVX-512 4, else 2) share every x load. xr is xp in "lane order"
// (lane_order_x): the inner loop loads one 32-bit lane of codes per vector lane (AVX-512 4-bit: 64 bytes = 128
// codes of one row) and peels code t of every lane with an and (x pre-scaled by 2^-(B*t)) and a convert, no
// shuffle, against one contiguous vector of xr; the rows two passes ahead are prefetched. Several inputs run in
// tiles of up to 4: each decoded code vector (times its group's scale) feeds one FMA per input of the tile, and
// all tiles run over a 16-row chunk before the next, so the chunk is read from DRAM once and re-read from cache.
// The row loop (packed_gemv_rows.inc) is compiled three times, for AVX-512, AVX2+FMA and portable C++, with
// the vector traits below; rows are split over the OpenMP pool in contiguous blocks, so each thread streams
// one contiguous part of qweight. One input of a 3-bit weight with one group per row runs, on AVX-512 VNNI CPUs,
// the integer walk of packed_gemv_int.cc instead (x as 24-bit block floating point, exact integer dot products).
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <utility>
#include <vector>

#include "dispatch.h"
#include "packed_gemv_int.h"
#include "packed_internal.h"

namespace {

// A row as the lane-order walk sees it: Kp = K rounded up to whole blocks (x is zero-padded to Kp, the pad
// codes are 0, so the pad adds nothing), groups of G packed columns, the last one running to Kp. Every
// group must start on a block (G % 8 == 0 or a single group; blocks_hold_groups).
struct GemvRow {
  int64_t Kp, G, groups;
  int64_t end(int64_t g) const { return g + 1 == groups ? Kp : (g + 1) * G; }
};

// Inputs per tile of the batched GEMV at most: a tile of 4 runs 4 rows per pass on AVX-512 (2 on AVX2), each x
// load feeding 4 FMAs. Tiles of 8 (2 rows per pass on AVX-512) were 1.15x slower at m = 8 than two tiles of 4,
// the second re-reading the chunk's rows from cache (4096 x 4096 4-bit, 2-core Zen 4).
static constexpr int GEMV_TILE_INPUTS = 4;

// One tile of m inputs (1, 2 or 4) over the rows a row loop is given.
struct GemvArgs {
  const wct_packed* w;
  GemvRow row;
  int m;
  const float* xr;    // [m, Kp] x in packed order, lane order within each lane block (lane_order_x), zero-padded
  const float* xsum;  // [m, ceil(K/G)] group sums of x
  const float* xw;    // [m, n_out] x[weak_idx]
  float* y;           // [m, N]
};

// A lane block: one 32-bit lane per vector lane, holding kLaneCodes<B> consecutive codes of a row in its
// low kLaneBytes<B> bytes (3-bit: 8 codes in 3 bytes; 2-, 4-, 8-bit: the 4 bytes of 16, 8, 4 codes).
template <int B>
constexpr int kLaneCodes = B == 3 ? 8 : 32 / B;
template <int B>
constexpr int kLaneBytes = B == 3 ? 3 : 4;
// Code t of a lane is decoded without a shift as the float of (lane & (2^B - 1) << B*t) = code * 2^(B*t)
// (exact: at most 8 significant bits, below 2^31), so its x is stored times 2^-(B*t) (exact: a power of
// two). Only the code in a lane's top bits (4-bit t = 7, 2-bit 15, 8-bit 3), whose masked value could
// reach 2^31, is shifted down instead and keeps x as is.
constexpr bool lane_code_shifted(int B, int t) { return (t + 1) * B == 32; }
constexpr int lane_code_exponent(int B, int t) { return lane_code_shifted(B, t) ? 0 : B * t; }

// f(std::integral_constant<int, t>) for t = 0 .. N-1, unrolled.
template <class Fn, int... T>
static inline __attribute__((always_inline)) void unroll_seq(Fn&& f, std::integer_sequence<int, T...>) {
  (f(std::integral_constant<int, T>{}), ...);
}
template <int N, class Fn>
static inline __attribute__((always_inline)) void unroll(Fn&& f) {
  unroll_seq(f, std::make_integer_sequence<int, N>{});
}

// Shift of code i within the word holding codes 0..7 of a block (B < 8).
template <int B>
constexpr int32_t code_shift(int i) {
  return int32_t(i % 8 * B);
}

}  // namespace

// ---- portable: 8 floats in an array (GCC vectorises to the baseline SSE2) ----
namespace portable {
struct V {
  struct F {
    float v[8];
  };
  struct I {
    uint32_t v[8];
  };
  static constexpr int W = 8, R = 2, ACC = 8;
  static inline F zero() { return F{}; }
  static inline F set1(float s) {
    F r;
    for (int i = 0; i < 8; i++) r.v[i] = s;
    return r;
  }
  static inline F add(F a, F b) {
    for (int i = 0; i < 8; i++) a.v[i] += b.v[i];
    return a;
  }
  static inline F mul(F a, F b) {
    for (int i = 0; i < 8; i++) a.v[i] *= b.v[i];
    return a;
  }
  static inline F fma(F a, F b, F c) {
    for (int i = 0; i < 8; i++) c.v[i] += a.v[i] * b.v[i];
    return c;
  }
  static inline float hsum(F a) {
    float s = 0.0f;
    for (int i = 0; i < 8; i++) s += a.v[i];
    return s;
  }
  static inline F load(const float* x) {
    F r;
    std::memcpy(r.v, x, sizeof r.v);
    return r;
  }
  static inline F load8(const float* x) { return load(x); }
  static inline F bytes(const uint8_t* p) {
    F r;
    for (int i = 0; i < 8; i++) r.v[i] = float(p[i]);
    return r;
  }
  template <int B>
  static inline I lanes(const uint8_t* p) {
    I r;
    for (int i = 0; i < 8; i++) {
      r.v[i] = 0;
      std::memcpy(&r.v[i], p + i * kLaneBytes<B>, kLaneBytes<B>);
    }
    return r;
  }
  template <int B, int T>
  static inline F code(I c) {
    F r;
    for (int i = 0; i < 8; i++)
      r.v[i] = float(lane_code_shifted(B, T) ? c.v[i] >> (T * B) : c.v[i] & (((1u << B) - 1) << (T * B)));
    return r;
  }
  template <int B, bool TAIL>
  static inline F codes(const uint8_t* p) {
    uint64_t u = 0;
    std::memcpy(&u, p, B);
    F r;
    for (int i = 0; i < 8; i++) r.v[i] = float((u >> (i * B)) & ((1u << B) - 1));
    return r;
  }
  template <int B, bool TAIL>
  static inline F codes8(const uint8_t* p) {
    return codes<B, TAIL>(p);
  }
};
#include "packed_gemv_rows.inc"
}  // namespace portable

// ---- AVX2 + FMA: 8 codes per step, a broadcast 32-bit word shifted per lane ----
#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c")
namespace avx2 {
struct V {
  using F = __m256;
  using I = __m256i;
  static constexpr int W = 8, R = 2, ACC = 8;
  static inline F zero() { return _mm256_setzero_ps(); }
  static inline F set1(float s) { return _mm256_set1_ps(s); }
  static inline F add(F a, F b) { return _mm256_add_ps(a, b); }
  static inline F mul(F a, F b) { return _mm256_mul_ps(a, b); }
  static inline F fma(F a, F b, F c) { return _mm256_fmadd_ps(a, b, c); }
  static inline float hsum(F a) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    return _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)));
  }
  static inline F load(const float* x) { return _mm256_loadu_ps(x); }
  static inline F load8(const float* x) { return load(x); }
  static inline F bytes(const uint8_t* p) {
    return _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p))));
  }
  // 8 lanes: 32 bytes, or for B == 3 the 24 bytes of 8 x 3 spread to the low 3 bytes of each lane.
  template <int B>
  static inline I lanes(const uint8_t* p) {
    if constexpr (B == 3) {
      const __m128i lo = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));       // bytes 0..15
      const __m128i hi = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(p + 16));  // bytes 16..23
      const __m256i b = _mm256_set_m128i(_mm_alignr_epi8(hi, lo, 12), lo);           // upper half from byte 12
      const __m256i spread = _mm256_setr_epi8(0, 1, 2, -1, 3, 4, 5, -1, 6, 7, 8, -1, 9, 10, 11, -1,  //
                                              0, 1, 2, -1, 3, 4, 5, -1, 6, 7, 8, -1, 9, 10, 11, -1);
      return _mm256_shuffle_epi8(b, spread);
    } else {
      return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
    }
  }
  template <int B, int T>
  static inline F code(I c) {
    if constexpr (lane_code_shifted(B, T)) return _mm256_cvtepi32_ps(_mm256_srli_epi32(c, T * B));
    return _mm256_cvtepi32_ps(_mm256_and_si256(c, _mm256_set1_epi32(((1 << B) - 1) << (T * B))));
  }
  // Codes 0..7 of the block at p. For B < 4 the word load reads 4 - B bytes past the block unless TAIL.
  template <int B, bool TAIL>
  static inline F codes(const uint8_t* p) {
    if constexpr (B == 8) {
      return _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p))));
    } else {
      uint32_t u = 0;
      std::memcpy(&u, p, TAIL ? B : 4);
      const __m256i shifts = _mm256_setr_epi32(code_shift<B>(0), code_shift<B>(1), code_shift<B>(2), code_shift<B>(3),
                                               code_shift<B>(4), code_shift<B>(5), code_shift<B>(6), code_shift<B>(7));
      const __m256i c = _mm256_srlv_epi32(_mm256_set1_epi32(int32_t(u)), shifts);
      return _mm256_cvtepi32_ps(_mm256_and_si256(c, _mm256_set1_epi32((1 << B) - 1)));
    }
  }
  template <int B, bool TAIL>
  static inline F codes8(const uint8_t* p) {
    return codes<B, TAIL>(p);
  }
};
#include "packed_gemv_rows.inc"
}  // namespace avx2
#pragma GCC pop_options

// ---- AVX-512 (+VBMI): 16 codes per step from a broadcast 64-bit word, two permutes ----
#pragma GCC push_options
#pragma GCC target("avx512f,avx512dq,avx512bw,avx512vl,avx512vbmi,avx2,fma,f16c")
// GCC 12's AVX-512 intrinsics trip a false -Wmaybe-uninitialized (and, in _mm512_reduce_add_ps once hsum is
// not inlined, -Wuninitialized) on their _mm*_undefined_* passthrough operand (GCC bug 105593, fixed in GCC 13).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
namespace avx512 {

// Decoding 16 codes (B < 8 bits each) from one broadcast 64-bit word in two permutes: vpmultishiftqb
// puts bits [B*i, B*i + 8) of the word into byte 0 of 32-bit lane i (code i in its low B bits), and
// vpermps, which reads only the low 4 bits of each lane, looks the float value up in `values` (the
// code modulo 2^B, so the bits above the code do not matter): no mask, no int-to-float convert.
template <int B>
struct Decode16 {
  alignas(64) uint8_t offsets[64] = {};
  alignas(64) float values[16] = {};
  constexpr Decode16() {
    for (int i = 0; i < 16; i++) {
      offsets[4 * i] = uint8_t(B * i);
      values[i] = float(i % (1 << B));
    }
  }
};
template <int B>
constexpr Decode16<B> kDecode16{};

// Lane block of 3-bit codes: bytes 3i .. 3i+2 of 48 into lane i.
struct Spread3 {
  alignas(64) uint8_t idx[64] = {};
  constexpr Spread3() {
    for (int i = 0; i < 16; i++)
      for (int j = 0; j < 4; j++) idx[4 * i + j] = uint8_t(3 * i + std::min(j, 2));
  }
};
constexpr Spread3 kSpread3{};

struct V {
  using F = __m512;
  using I = __m512i;
  static constexpr int W = 16, R = 4, ACC = 16;
  static inline F zero() { return _mm512_setzero_ps(); }
  static inline F set1(float s) { return _mm512_set1_ps(s); }
  static inline F add(F a, F b) { return _mm512_add_ps(a, b); }
  static inline F mul(F a, F b) { return _mm512_mul_ps(a, b); }
  static inline F fma(F a, F b, F c) { return _mm512_fmadd_ps(a, b, c); }
  static inline float hsum(F a) { return _mm512_reduce_add_ps(a); }
  static inline F load(const float* x) { return _mm512_loadu_ps(x); }
  static inline F load8(const float* x) { return _mm512_maskz_loadu_ps(0xff, x); }
  static inline F bytes(const uint8_t* p) {
    return _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))));
  }
  // 16 lanes: 64 bytes, or for B == 3 the 48 bytes of 16 x 3 spread over the lanes with one vpermb.
  template <int B>
  static inline I lanes(const uint8_t* p) {
    if constexpr (B == 3) {
      return _mm512_permutexvar_epi8(_mm512_load_si512(kSpread3.idx), _mm512_maskz_loadu_epi8(0xffffffffffffull, p));
    } else {
      return _mm512_loadu_si512(p);
    }
  }
  template <int B, int T>
  static inline F code(I c) {
    if constexpr (lane_code_shifted(B, T)) return _mm512_cvtepi32_ps(_mm512_srli_epi32(c, T * B));
    return _mm512_cvtepi32_ps(_mm512_and_si512(c, _mm512_set1_epi32(((1 << B) - 1) << (T * B))));
  }
  // Codes 0..15 of the two blocks at p. For B < 4 the 8-byte load reads 8 - 2B bytes past them unless TAIL.
  template <int B, bool TAIL>
  static inline F codes(const uint8_t* p) {
    if constexpr (B == 8) {
      return _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))));
    } else {
      uint64_t u = 0;
      std::memcpy(&u, p, TAIL ? 2 * B : 8);
      const Decode16<B>& d = kDecode16<B>;
      const __m512i c = _mm512_multishift_epi64_epi8(_mm512_load_si512(d.offsets), _mm512_set1_epi64(int64_t(u)));
      return _mm512_permutexvar_ps(c, _mm512_load_ps(d.values));
    }
  }
  // Codes 0..7 of one block in the low half, zeros above (the last step of a group of an odd number of blocks).
  template <int B, bool TAIL>
  static inline F codes8(const uint8_t* p) {
    return _mm512_zextps256_ps512(avx2::V::codes<B, TAIL>(p));
  }
};
#include "packed_gemv_rows.inc"
}  // namespace avx512
#pragma GCC diagnostic pop
#pragma GCC pop_options

// The AVX-512 row loop also needs VBMI (Ice Lake, Zen 4 and later); AVX-512 CPUs without it run AVX2.
static bool has_vbmi() {
  static const bool vbmi = __builtin_cpu_supports("avx512vbmi");
  return vbmi;
}
static bool use_avx512() { return wct_isa() == WCT_ISA_AVX512 && has_vbmi(); }

static void gemv_rows(const GemvArgs& a, int64_t r0, int64_t r1) {
  if (use_avx512()) return avx512::rows(a, r0, r1);
  if (wct_isa() >= WCT_ISA_AVX2) return avx2::rows(a, r0, r1);
  return portable::rows(a, r0, r1);
}

static void gemv_weak_rows(const GemvArgs& a, int64_t r0, int64_t r1) {
  if (a.w->n_out == 0) return;
  if (use_avx512()) return avx512::weak_rows(a, r0, r1);
  if (wct_isa() >= WCT_ISA_AVX2) return avx2::weak_rows(a, r0, r1);
  return portable::weak_rows(a, r0, r1);
}

// Inputs of the next tile when `left` remain: the largest power of two <= left and <= GEMV_TILE_INPUTS.
static int tile_inputs(int64_t left) {
  int m = 1;
  while (2 * m <= GEMV_TILE_INPUTS && 2 * m <= left) m *= 2;
  return m;
}

// xr [Kp] = xp [Kp] in lane order: within each group, every full lane block of BLK = W * CPL codes (W vector
// lanes of CPL codes) is stored code-major, xr[blk + t*W + i] = xp[blk + i*CPL + t], so that code t of
// all W lanes meets one contiguous vector of xr; the rest of a group (fewer than BLK codes, whole blocks)
// stays in packed order.
static void lane_order_x(const float* xp, const GemvRow& row, int B, int W, float* xr) {
  const int CPL = B == 3 ? kLaneCodes<3> : B == 2 ? kLaneCodes<2> : B == 4 ? kLaneCodes<4> : kLaneCodes<8>;
  const int64_t BLK = int64_t(W) * CPL;
  for (int64_t g = 0; g < row.groups; g++) {
    const int64_t end = row.end(g);
    int64_t k = g * row.G;
    for (; k + BLK <= end; k += BLK)
      for (int t = 0; t < CPL; t++) {
        const float scale = std::ldexp(1.0f, -lane_code_exponent(B, t));
        for (int i = 0; i < W; i++) xr[k + t * W + i] = xp[k + i * CPL + t] * scale;
      }
    for (; k < end; k++) xr[k] = xp[k];
  }
}

// The lane-order walk needs every group to start on a block.
static bool blocks_hold_groups(const wct_packed* w) {
  return w->group % WCT_PACKED_BLOCK_CODES == 0 || wct_packed_groups(w->cols, w->group) == 1;
}

// Σ_k a[k] b[k] over [n] in 8 double partial sums (independent chains the compiler vectorises; each
// product of two floats is exact in double).
WCT_INLINE static double dot_f64_body(const float* a, const float* b, int64_t n) {
  double acc[8] = {};
  int64_t k = 0;
  for (; k + 8 <= n; k += 8)
    for (int i = 0; i < 8; i++) acc[i] += double(a[k + i]) * double(b[k + i]);
  for (; k < n; k++) acc[0] += double(a[k]) * double(b[k]);
  return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}
WCT_MULTIVERSION(double, dot_f64, (const float* a, const float* b, int64_t n), (a, b, n))

// y [M, N] for a weight whose groups start inside blocks (G % 8 != 0 with several groups): each row dequantized
// once (packed order, into a per-thread buffer) and dotted with every input's xp [K] (stride ldx), plus its weak
// columns with xw [M, n_out] and its outliers with x [M, K] (input order).
static void gemv_dequantized_rows(const wct_packed* w, const float* x, int64_t M, const float* xp, int64_t ldx,
                                  const float* xw, float* y) {
  const int64_t N = w->rows, K = w->cols, n_out = w->n_out;
#pragma omp parallel if (M * N * K >= WCT_PAR_MIN)
  {
    std::vector<float> row(K);
#pragma omp for schedule(static)
    for (int64_t r = 0; r < N; r++) {
      wct_packed_dequant_row(w, r, 0, K, row.data());
      for (int64_t i = 0; i < M; i++)
        y[i * N + r] = float(dot_f64(row.data(), xp + i * ldx, K) +
                             dot_f64(w->weak + r * n_out, xw + i * n_out, n_out) +
                             wct_packed_outlier_dot(w, r, x + i * K));
    }
  }
}

// The chunk's outliers while its y is hot: y[i * N + r] += Σ_p v_p x_i[c_p] for rows [r0, r1) and M inputs (x in
// input order, cache-resident).
static void add_outliers(const wct_packed* w, const float* x, int64_t M, int64_t r0, int64_t r1, float* y) {
  const int64_t N = w->rows, K = w->cols;
  if (w->nnz > 0)
    for (int64_t i = 0; i < M; i++)
      for (int64_t r = r0; r < r1; r++)
        y[i * N + r] = float(double(y[i * N + r]) + wct_packed_outlier_dot(w, r, x + i * K));
}

// Rows per scheduling unit: small enough to balance two threads, large enough to amortise the dispatch. All tiles
// of inputs run over a chunk before the next, so its rows (32 KiB at K = 4096, 4-bit) come from DRAM once.
static constexpr int64_t GEMV_ROW_CHUNK = 16;

// y [1, N] by the integer walk (packed_gemv_int.cc) when it applies and x is fit for it (finite): x with its weak
// columns zeroed, in packed order, as limbs. False: the caller runs the floating-point walk.
static bool gemv_int(const wct_packed* w, const float* x, const GemvRow& row, const float* xw, float* y) {
  const int64_t N = w->rows, K = w->cols;
  std::vector<float> xz(x, x + K), xp(row.Kp, 0.0f);
  for (int64_t j = 0; j < w->n_out; j++) xz[w->weak_idx[j]] = 0.0f;
  if (w->perm != nullptr) wct_packed_gather_cols(w, xz.data(), 1, xp.data());
  else std::copy(xz.begin(), xz.end(), xp.begin());
  GemvIntX xi;
  if (!wct_gemv_int_x(xp.data(), row.Kp, &xi)) return false;
  const GemvArgs a{w, row, 1, nullptr, nullptr, xw, y};
  const int64_t chunks = (N + GEMV_ROW_CHUNK - 1) / GEMV_ROW_CHUNK;
#pragma omp parallel for schedule(static) if (N * K >= WCT_PAR_MIN)
  for (int64_t c = 0; c < chunks; c++) {
    const int64_t r0 = c * GEMV_ROW_CHUNK, r1 = std::min(N, (c + 1) * GEMV_ROW_CHUNK);
    wct_gemv_int_rows(w, xi, r0, r1, y);
    gemv_weak_rows(a, r0, r1);
    add_outliers(w, x, 1, r0, r1, y);
  }
  return true;
}

void wct_packed_gemv(const wct_packed* w, const float* x, int64_t M, float* y) {
  const int64_t N = w->rows, K = w->cols, G = w->group, B = w->bits, n_out = w->n_out;
  const GemvRow row{wct_packed_blocks(K) * WCT_PACKED_BLOCK_CODES, G, wct_packed_groups(K, G)};
  const int64_t Kp = row.Kp;
  std::vector<float> xw(M * n_out);
  for (int64_t i = 0; i < M; i++)
    for (int64_t j = 0; j < n_out; j++) xw[i * n_out + j] = x[i * K + w->weak_idx[j]];
  if (wct_gemv_int_applies(w, M) && gemv_int(w, x, row, xw.data(), y)) return;
  // xp [M, Kp]: x in packed order, each input zero-padded to whole blocks (x itself when there is no perm and
  // K % 8 == 0); x is read only at [0, K) of each input.
  const bool copy = w->perm != nullptr || Kp != K;
  std::vector<float> gathered(copy ? M * Kp : 0);
  for (int64_t i = 0; i < M; i++) {
    if (w->perm != nullptr) wct_packed_gather_cols(w, x + i * K, 1, gathered.data() + i * Kp);
    else if (copy) std::copy(x + i * K, x + (i + 1) * K, gathered.data() + i * Kp);
  }
  const float* xp = copy ? gathered.data() : x;
  if (!blocks_hold_groups(w)) return gemv_dequantized_rows(w, x, M, xp, Kp, xw.data(), y);
  std::vector<float> xr(M * Kp), xsum(M * row.groups);
  for (int64_t i = 0; i < M; i++) {
    const float* xi = xp + i * Kp;
    for (int64_t g = 0; g < row.groups; g++) {
      float s = 0.0f;
      for (int64_t k = g * G; k < std::min(K, (g + 1) * G); k++) s += xi[k];
      xsum[i * row.groups + g] = s;
    }
    lane_order_x(xi, row, int(B), use_avx512() ? 16 : 8, xr.data() + i * Kp);
  }
  const int64_t chunks = (N + GEMV_ROW_CHUNK - 1) / GEMV_ROW_CHUNK;
#pragma omp parallel for schedule(static) if (M * N * K >= WCT_PAR_MIN)
  for (int64_t c = 0; c < chunks; c++) {
    const int64_t r0 = c * GEMV_ROW_CHUNK, r1 = std::min(N, (c + 1) * GEMV_ROW_CHUNK);
    for (int64_t i0 = 0; i0 < M;) {
      const int m = tile_inputs(M - i0);
      const GemvArgs a{w, row, m, xr.data() + i0 * Kp, xsum.data() + i0 * row.groups, xw.data() + i0 * n_out,
                       y + i0 * N};
      gemv_rows(a, r0, r1);
      gemv_weak_rows(a, r0, r1);
      i0 += m;
    }
    add_outliers(w, x, M, r0, r1, y);
  }
}
