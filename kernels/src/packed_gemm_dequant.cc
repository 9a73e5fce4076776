// Vectorised dequantization of one panel of W_p (packed order) for the panel GEMM (packed_gemm.cc).
// A block of 8 b-bit codes (b <= 4) is one 32-bit word of b bytes: broadcast to 8 lanes, shifted right by
// (0, b, .., 7b) and masked, each lane holds its code, then float(code - z) * s as in packed_codes.cc (the
// same exact subtraction, the same single rounding: bit-identical to wct_packed_dequant_row). 8-bit codes are
// zero-extended bytes. The codes of a block that a group, span or row end cuts are decoded one at a time.
// About 0.1 ns per weight on one core against ~0.9 for the scalar loop, which made up 7-10% of a panel's time
// at m = 512. Spans must start on a block (k0 % 8 == 0); any G works (G % 8 != 0 takes the scalar row).
#include <immintrin.h>

#include <algorithm>
#include <cstring>

#include "dispatch.h"
#include "packed_gemm_internal.h"
#include "packed_internal.h"

// The block of 8 codes at p: b bytes, zero-extended (never reads past them). Three bytes as two loads: a
// 3-byte memcpy is not merged and cost 6x the rest of a block's decode.
template <int B>
WCT_INLINE static uint64_t block_word(const uint8_t* p) {
  if constexpr (B == 3) {
    uint16_t lo = 0;
    std::memcpy(&lo, p, 2);
    return uint64_t(lo) | uint64_t(p[2]) << 16;
  }
  uint64_t u = 0;
  std::memcpy(&u, p, B);
  return u;
}

// out[0..8) = s * (the 8 codes of the block at p - z).
template <int B>
WCT_TARGET_AVX2 WCT_INLINE static void dequant_block8(const uint8_t* p, __m256i zp, __m256 sc, float* out) {
  __m256i c;
  if constexpr (B == 8) {
    c = _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p)));
  } else {
    const __m256i shifts = _mm256_setr_epi32(0, B, 2 * B, 3 * B, 4 * B, 5 * B, 6 * B, 7 * B);
    const __m256i v = _mm256_srlv_epi32(_mm256_set1_epi32(int(uint32_t(block_word<B>(p)))), shifts);
    c = _mm256_and_si256(v, _mm256_set1_epi32((1 << B) - 1));
  }
  _mm256_storeu_ps(out, _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(c, zp)), sc));
}

// Packed columns [k0, k1) of the row at q (scales s, zeros z of its groups) -> out[k - k0]; G % 8 == 0 and
// k0 % 8 == 0, so only a span end that is not on a block (k1 = K with K % 8 != 0) is decoded code by code.
template <int B>
WCT_TARGET_AVX2 static void dequant_span_avx2(const uint8_t* q, const float* s, const uint8_t* z, int64_t G,
                                              int64_t k0, int64_t k1, float* out) {
  for (int64_t k = k0; k < k1;) {
    const int64_t g = k / G, end = std::min(k1, (g + 1) * G), whole = end & ~int64_t(7);
    const __m256i zp = _mm256_set1_epi32(z[g]);
    const __m256 sc = _mm256_set1_ps(s[g]);
    for (; k < whole; k += 8) dequant_block8<B>(q + k / 8 * B, zp, sc, out + (k - k0));
    for (; k < end; k++) {
      const int code = int((block_word<B>(q + k / 8 * B) >> (k % 8 * B)) & ((1u << B) - 1));
      out[k - k0] = float(code - int(z[g])) * s[g];
    }
  }
}

void wct_packed_dequant_panel_row(const wct_packed* w, int64_t r, int64_t k0, int64_t k1, float* out) {
  if (wct_isa() == WCT_ISA_PORTABLE || w->group % 8 != 0 || k0 % 8 != 0) {
    return wct_packed_dequant_row(w, r, k0, k1, out);
  }
  const int64_t groups = wct_packed_groups(w->cols, w->group);
  const uint8_t* q = w->qweight + r * wct_packed_row_bytes(w->cols, w->bits);
  const float* s = w->scales + r * groups;
  const uint8_t* z = w->zeros + r * groups;
  switch (w->bits) {
    case 2: return dequant_span_avx2<2>(q, s, z, w->group, k0, k1, out);
    case 3: return dequant_span_avx2<3>(q, s, z, w->group, k0, k1, out);
    case 4: return dequant_span_avx2<4>(q, s, z, w->group, k0, k1, out);
    default: return dequant_span_avx2<8>(q, s, z, w->group, k0, k1, out);
  }
}
