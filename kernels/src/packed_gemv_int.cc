// The decode GEMV's integer walk: y_r = s_r (Σ_k code[r, k] x~_k - z_r Σ_k x~_k) for one input, 3-bit codes and
// one group per row (the weak columns and CSR outliers are added by packed_gemv.cc, as for the floating-point
// walk). x~ is x held as 24-bit block floating point: per block of BK = 1024 packed columns, x~_k = u_b X_k
// with u_b = 2^(E_b - 22), E_b the smallest integer with 2^E_b > max_{k in b} |x_k|, X_k = round(x_k / u_b)
// (|X_k| <= 2^22) split into three signed bytes, X_k = 2^16 L2_k + 2^8 L1_k + L0_k ("limbs", each in
// [-128, 127]). Σ_{k in b} code_k X_k is then exact integer arithmetic: vpdpbusd multiplies 4 unsigned code bytes
// by 4 signed limb bytes and adds the 4 products into a 32-bit lane, so 64 codes take three of them, one per
// limb, against 4 x (and, convert, FMA) in fp32. The 64 codes of a step (24 bytes) become 64 bytes in three ops:
// vpermb puts the 3 bytes of each 8 codes into one 64-bit lane, vpmultishiftqb moves code i of the lane to its
// byte i (bits [3i, 3i + 8)), an and keeps the code's 3 bits. Hot, one thread of a 2-core Zen 4: 15-17 GB/s
// of 3-bit codes against 10-11 for the fp32 walk (whose and + convert + FMA per 16 codes also bound its 4-bit
// rate, 13-15 GB/s); vpdpbusd and vpmultishiftqb share an execution port there, at one 512-bit op per cycle.
// Error: |x~_k - x_k| <= u_b / 2 <= 2^-22 max_b |x| per element (fp32 rounds x_k itself to 2^-24 |x_k|); each
// block's three limb sums are converted and combined in fp32 once per row (65536 S2 + 256 S1 + S0, one
// rounding), then scaled by u_b. x at the weak columns, whose codes hold z (so they add exactly 0 either
// way), is zeroed by the caller, so OWQ's outlier channels do not set the exponents. Every row's arithmetic is
// fixed, so y is the same bits whatever the thread count.
#include "packed_gemv_int.h"

#include <immintrin.h>

#include <algorithm>
#include <cmath>

#include "dispatch.h"
#include "packed_internal.h"

namespace {

constexpr int64_t STEP = 64;                   // codes per step (one vector of code bytes)
constexpr int64_t STEP_BYTES = STEP * 3 / 8;   // their 24 bytes
constexpr int64_t BLOCK_STEPS = 16;            // steps per exponent block: BK = 1024 columns
constexpr int64_t LIMB_STRIDE = 3 * STEP;      // limb bytes per step
constexpr int FRACTION_BITS = 22;              // |X_k| <= 2^22: L2 within [-65, 65]
constexpr int MIN_EXPONENT = -100;             // blocks below 2^-100 leave the call to the fp32 walk

}  // namespace

bool wct_gemv_int_applies(const wct_packed* w, int64_t M) {
  return M == 1 && w->bits == 3 && wct_packed_groups(w->cols, w->group) == 1 && wct_int8_dot();
}

#pragma GCC push_options
#pragma GCC target("avx512f,avx512dq,avx512bw,avx512vl,avx512vbmi,avx512vnni")
// GCC 12's false -Wmaybe-uninitialized on AVX-512 intrinsics' passthrough operands (see packed_gemv.cc).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
namespace {

// The low 8 bits of each lane of v as a signed value (two's complement), so that v - low_limb(v) is a multiple of
// 256.
inline __m512i low_limb(__m512i v) {
  const __m512i b7 = _mm512_set1_epi32(0x80);
  return _mm512_sub_epi32(_mm512_xor_si512(_mm512_and_si512(v, _mm512_set1_epi32(0xff)), b7), b7);
}

// Elements k .. k+15 of x~ (mask m: those below Kp) into their limbs, X = round(x / u) by the current rounding
// mode (nearest, ties to even); returns X (0 outside m).
inline __m512i store_limbs(const float* xp, int64_t k, __mmask16 m, __m512 inv, int8_t* limbs) {
  const __m512i X = _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_maskz_loadu_ps(m, xp + k), inv));
  const __m512i l0 = low_limb(X), x1 = _mm512_srai_epi32(_mm512_sub_epi32(X, l0), 8);
  const __m512i l1 = low_limb(x1), l2 = _mm512_srai_epi32(_mm512_sub_epi32(x1, l1), 8);
  int8_t* l = limbs + k / STEP * LIMB_STRIDE + k % STEP;
  _mm_storeu_si128(reinterpret_cast<__m128i*>(l), _mm512_cvtepi32_epi8(l2));
  _mm_storeu_si128(reinterpret_cast<__m128i*>(l + STEP), _mm512_cvtepi32_epi8(l1));
  _mm_storeu_si128(reinterpret_cast<__m128i*>(l + 2 * STEP), _mm512_cvtepi32_epi8(l0));
  return X;
}

// Lanes below n of 16.
inline __mmask16 first_lanes(int64_t n) { return n >= 16 ? __mmask16(0xffff) : __mmask16((1u << n) - 1); }

}  // namespace

bool wct_gemv_int_x(const float* xp, int64_t Kp, GemvIntX* out) {
  const int64_t steps = (Kp + STEP - 1) / STEP, blocks = (steps + BLOCK_STEPS - 1) / BLOCK_STEPS;
  out->steps = steps;
  out->limbs.assign(steps * LIMB_STRIDE, 0);
  out->unit.assign(blocks, 0.0f);
  out->sum = 0.0;
  const __m512 inf = _mm512_set1_ps(INFINITY);
  for (int64_t b = 0; b < blocks; b++) {
    const int64_t k0 = b * BLOCK_STEPS * STEP, k1 = std::min(Kp, k0 + BLOCK_STEPS * STEP);
    __m512 top = _mm512_setzero_ps();
    for (int64_t k = k0; k < k1; k += 16) {
      const __m512 a = _mm512_abs_ps(_mm512_maskz_loadu_ps(first_lanes(k1 - k), xp + k));
      if (_mm512_cmp_ps_mask(a, inf, _CMP_NLT_UQ) != 0) return false;  // NaN or infinity
      top = _mm512_max_ps(top, a);
    }
    const float t = _mm512_reduce_max_ps(top);
    if (t == 0.0f) continue;
    int E = 0;
    std::frexp(t, &E);  // t = f 2^E, f in [0.5, 1)
    if (E < MIN_EXPONENT) return false;
    // exact scaling: a power of two within fp32's range, and |x / u| <= 2^22 far below fp32's integer limit
    const __m512 inv = _mm512_set1_ps(std::ldexp(1.0f, FRACTION_BITS - E));
    __m512i sum = _mm512_setzero_si512();  // Σ X in 64-bit lanes
    for (int64_t k = k0; k < k1; k += 16) {
      const __m512i X = store_limbs(xp, k, first_lanes(k1 - k), inv, out->limbs.data());
      sum = _mm512_add_epi64(sum, _mm512_cvtepi32_epi64(_mm512_castsi512_si256(X)));
      sum = _mm512_add_epi64(sum, _mm512_cvtepi32_epi64(_mm512_extracti64x4_epi64(X, 1)));
    }
    const double unit = std::ldexp(1.0, E - FRACTION_BITS);
    out->unit[b] = float(unit);
    out->sum += double(_mm512_reduce_add_epi64(sum)) * unit;
  }
  return true;
}

namespace {

// The byte tables of the 3-bit unpack: spread[8j + t] = byte 3j + t of the step (t < 3; the rest repeat byte
// 3j + 2, whose bits above the codes the and drops), shift[8j + i] = 3i.
struct Unpack3 {
  alignas(64) uint8_t spread[64] = {};
  alignas(64) uint8_t shift[64] = {};
  constexpr Unpack3() {
    for (int j = 0; j < 8; j++)
      for (int t = 0; t < 8; t++) {
        spread[8 * j + t] = uint8_t(3 * j + std::min(t, 2));
        shift[8 * j + t] = uint8_t(3 * t);
      }
  }
};
constexpr Unpack3 kUnpack3{};

// acc += Σ_{j<4} c[4i + j] l[4i + j] per 32-bit lane i (u8 x s8). Through inline asm: GCC 12 wraps the
// _mm512_dpbusd_epi32 builtin in two register copies of its accumulator (2.3x slower here).
inline __m512i dpbusd(__m512i acc, __m512i c, __m512i l) {
  __asm__("vpdpbusd %2, %1, %0" : "+v"(acc) : "v"(c), "v"(l));
  return acc;
}

// Σ_k code[r, k] x~_k for R rows (q + r * rb) into sums[r]: per block, three exact integer chains per row, then
// one fp32 combination scaled by u_b into the row's float chain.
template <int R, bool TAIL>
inline void rows_sum(const uint8_t* q, int64_t rb, const GemvIntX& x, __mmask64 last, float* sums) {
  const __m512i spread = _mm512_load_si512(kUnpack3.spread), shift = _mm512_load_si512(kUnpack3.shift);
  const __m512i three_bits = _mm512_set1_epi8(7);
  const __m512 radix = _mm512_set1_ps(256.0f);
  const int64_t steps = x.steps;
  __m512 acc[R];
  for (int r = 0; r < R; r++) acc[r] = _mm512_setzero_ps();
  for (int64_t s0 = 0; s0 < steps; s0 += BLOCK_STEPS) {
    const int64_t s1 = std::min(steps, s0 + BLOCK_STEPS);
    __m512i a2[R], a1[R], a0[R];
    for (int r = 0; r < R; r++) a2[r] = a1[r] = a0[r] = _mm512_setzero_si512();
    for (int64_t st = s0; st < s1; st++) {
      const bool edge = TAIL || st + 1 == steps;
      const __mmask64 m = st + 1 == steps ? last : __mmask64((1ull << STEP_BYTES) - 1);
      const int8_t* l = x.limbs.data() + st * LIMB_STRIDE;
      const __m512i l2 = _mm512_loadu_si512(l), l1 = _mm512_loadu_si512(l + STEP);
      const __m512i l0 = _mm512_loadu_si512(l + 2 * STEP);
      for (int r = 0; r < R; r++) {
        const uint8_t* p = q + r * rb + st * STEP_BYTES;
        if (st % 2 == 0) __builtin_prefetch(p + R * GEMV_PREFETCH_PASSES * rb, 0, 2);
        const __m512i raw = edge ? _mm512_maskz_loadu_epi8(m, p)
                                 : _mm512_castsi256_si512(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
        const __m512i bytes = _mm512_permutexvar_epi8(spread, raw);
        const __m512i c = _mm512_and_si512(_mm512_multishift_epi64_epi8(shift, bytes), three_bits);
        a2[r] = dpbusd(a2[r], c, l2);
        a1[r] = dpbusd(a1[r], c, l1);
        a0[r] = dpbusd(a0[r], c, l0);
      }
    }
    // 256 S2 + S1 is exact (|S2| <= 64 * 7 * 65, |S1| <= 64 * 7 * 128 per lane); times 256 plus S0 rounds once.
    const __m512 u = _mm512_set1_ps(x.unit[s0 / BLOCK_STEPS]);
    for (int r = 0; r < R; r++) {
      const __m512 hi = _mm512_fmadd_ps(_mm512_cvtepi32_ps(a2[r]), radix, _mm512_cvtepi32_ps(a1[r]));
      acc[r] = _mm512_fmadd_ps(_mm512_fmadd_ps(hi, radix, _mm512_cvtepi32_ps(a0[r])), u, acc[r]);
    }
  }
  for (int r = 0; r < R; r++) sums[r] = _mm512_reduce_add_ps(acc[r]);
}

// Rows per pass: 4 rows share each limb load (12 integer chains, 4 float chains and 4 code vectors in registers).
constexpr int PASS_ROWS = 4;

}  // namespace

void wct_gemv_int_rows(const wct_packed* w, const GemvIntX& x, int64_t r0, int64_t r1, float* y) {
  const int64_t rb = wct_packed_row_bytes(w->cols, 3);
  const int64_t tail_bytes = rb - (x.steps - 1) * STEP_BYTES;  // of the last step, 3 .. 24
  const __mmask64 last = __mmask64((1ull << tail_bytes) - 1);
  float sums[PASS_ROWS];
  int64_t r = r0;
  const auto finish = [&](int64_t row, float sum) {
    y[row] = float(double(w->scales[row]) * (double(sum) - double(w->zeros[row]) * x.sum));
  };
  for (; r + PASS_ROWS <= r1; r += PASS_ROWS) {
    if (r + PASS_ROWS == w->rows) rows_sum<PASS_ROWS, true>(w->qweight + r * rb, rb, x, last, sums);
    else rows_sum<PASS_ROWS, false>(w->qweight + r * rb, rb, x, last, sums);
    for (int i = 0; i < PASS_ROWS; i++) finish(r + i, sums[i]);
  }
  for (; r < r1; r++) {
    if (r + 1 == w->rows) rows_sum<1, true>(w->qweight + r * rb, rb, x, last, sums);
    else rows_sum<1, false>(w->qweight + r * rb, rb, x, last, sums);
    finish(r, sums[0]);
  }
}
#pragma GCC diagnostic pop
#pragma GCC pop_options
