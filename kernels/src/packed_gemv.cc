// The fused decode GEMV y [N] = W_hat x [K]: reads each packed row once and dequantizes in registers.
// Per row: y_r = Σ_g s_g (Σ_{k in g} code_k xp_k - z_g xsum_g) + Σ_j weak[r, j] x[weak_idx[j]], where
// xp is x gathered into packed order once per call and xsum its per-group sums, so the inner loop is one
// integer-to-float convert and one FMA per code. The row loop (packed_gemv_rows.inc) is compiled three
// times, for AVX-512, AVX2+FMA and portable C++, with the vector traits below; rows are split over the
// OpenMP pool in contiguous blocks, so each thread streams one contiguous part of qweight.
#include <immintrin.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "dispatch.h"
#include "packed_internal.h"

namespace {

struct GemvArgs {
  const wct_packed* w;
  const float* xp;    // [K] x in packed order
  const float* xsum;  // [K/G] group sums of xp
  const float* x;     // [K] x in input order (weak columns)
  float* y;           // [N]
};

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
  static constexpr int W = 8;
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
  static constexpr int W = 8;
  static inline F zero() { return _mm256_setzero_ps(); }
  static inline F set1(float s) { return _mm256_set1_ps(s); }
  static inline F add(F a, F b) { return _mm256_add_ps(a, b); }
  static inline F fma(F a, F b, F c) { return _mm256_fmadd_ps(a, b, c); }
  static inline float hsum(F a) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    return _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)));
  }
  static inline F load(const float* x) { return _mm256_loadu_ps(x); }
  static inline F load8(const float* x) { return load(x); }
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
// GCC 12's AVX-512 intrinsics trip a false -Wmaybe-uninitialized on their _mm512_undefined_* passthrough
// operand (GCC bug 105593, fixed in GCC 13).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
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

struct V {
  using F = __m512;
  static constexpr int W = 16;
  static inline F zero() { return _mm512_setzero_ps(); }
  static inline F set1(float s) { return _mm512_set1_ps(s); }
  static inline F add(F a, F b) { return _mm512_add_ps(a, b); }
  static inline F fma(F a, F b, F c) { return _mm512_fmadd_ps(a, b, c); }
  static inline float hsum(F a) { return _mm512_reduce_add_ps(a); }
  static inline F load(const float* x) { return _mm512_loadu_ps(x); }
  static inline F load8(const float* x) { return _mm512_maskz_loadu_ps(0xff, x); }
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
  // Codes 0..7 of one block in the low half, zeros above (the last step of a group when G % 16 == 8).
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

static void gemv_rows(const GemvArgs& a, int64_t r0, int64_t r1) {
  switch (wct_isa()) {
    case WCT_ISA_AVX512:
      if (has_vbmi()) return avx512::rows(a, r0, r1);
      return avx2::rows(a, r0, r1);
    case WCT_ISA_AVX2: return avx2::rows(a, r0, r1);
    default: return portable::rows(a, r0, r1);
  }
}

// Rows per scheduling unit: small enough to balance two threads, large enough to amortise the dispatch.
static constexpr int64_t GEMV_ROW_CHUNK = 16;

void wct_packed_gemv(const wct_packed* w, const float* x, float* y) {
  const int64_t N = w->rows, K = w->cols, G = w->group;
  std::vector<float> gathered(w->perm != nullptr ? K : 0), xsum(K / G);
  if (w->perm != nullptr) wct_packed_gather_cols(w, x, 1, gathered.data());
  const float* xp = w->perm != nullptr ? gathered.data() : x;
  for (int64_t g = 0; g < K / G; g++) {
    float s = 0.0f;
    for (int64_t k = g * G; k < (g + 1) * G; k++) s += xp[k];
    xsum[g] = s;
  }
  const GemvArgs a{w, xp, xsum.data(), x, y};
  const int64_t chunks = (N + GEMV_ROW_CHUNK - 1) / GEMV_ROW_CHUNK;
#pragma omp parallel for schedule(static) if (N * K >= WCT_PAR_MIN)
  for (int64_t c = 0; c < chunks; c++) gemv_rows(a, c * GEMV_ROW_CHUNK, std::min(N, (c + 1) * GEMV_ROW_CHUNK));
}
