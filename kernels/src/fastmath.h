// Internal: vectorisable expf and erfc for the hot loops (softmax, attention, cross-entropy, GELU,
// SiLU), where libm's scalar calls dominated the run time (a 50k-vocab cross-entropy row is 50k exps).
// Plain float code with selects only, so GCC vectorises it under every target of dispatch.h.
//
// expf: Cephes' single-precision scheme: x = n ln2 + r with |r| <= ln2/2, e^r by a degree-7 polynomial, then
// scaled by 2^n through the exponent bits. Max error ~2 ulp on the normal range; results below
// FLT_MIN flush to 0 (x < -87.33, including -inf); x > 88.72 gives +inf; NaN stays NaN.
#pragma once
#include <cstdint>
#include <cstring>

#include "dispatch.h"

WCT_INLINE static float wct_fast_expf(float x) {
  const float hi = 88.7228391f, lo = -87.3365448f;
  const float xc = x > hi ? hi : (x < lo ? lo : x);  // NaN passes through both comparisons
  // n = round(x / ln2) with the 1.5 * 2^23 trick (exact for |n| < 2^22), vectorises on every ISA
  const float magic = 12582912.0f;
  const float t = xc * 1.44269504088896341f + magic;
  const float n = t - magic;
  int32_t tb;
  std::memcpy(&tb, &t, sizeof tb);
  const int32_t ni = tb - 0x4b400000;  // the integer n held in t's mantissa
  float r = xc - n * 0.693359375f;     // ln2 split in two for an exact first product
  r = r - n * -2.12194440e-4f;
  const float r2 = r * r;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r2 + r + 1.0f;
  // 2^n as a float: n in [-126, 128]; n = 128 only for x near hi, handled as 2 * 2^127
  const int32_t nb = ni > 127 ? 127 : ni;
  const int32_t sb = (nb + 127) << 23;
  float scale;
  std::memcpy(&scale, &sb, sizeof scale);
  float y = p * scale * (ni > 127 ? 2.0f : 1.0f);
  y = x < lo ? 0.0f : y;
  y = x > hi ? __builtin_inff() : y;
  return y;
}

// erfc(z) for z >= 0 with relative error < 1.2e-7 (Numerical Recipes' Chebyshev fit erfcc), i.e. about
// float precision; the relative accuracy in the tail is what makes GELU exact for negative inputs.
WCT_INLINE static float wct_erfc_nonneg(float z) {
  const float t = 1.0f / (1.0f + 0.5f * z);
  float p = 0.17087277f;
  p = p * t - 0.82215223f;
  p = p * t + 1.48851587f;
  p = p * t - 1.13520398f;
  p = p * t + 0.27886807f;
  p = p * t - 0.18628806f;
  p = p * t + 0.09678418f;
  p = p * t + 0.37409196f;
  p = p * t + 1.00002368f;
  p = p * t - 1.26551223f;
  return t * wct_fast_expf(p - z * z);
}

// 1 + erf(x / sqrt 2) = 2 Phi(x), from erfc of |x| / sqrt 2 (no cancellation for x < 0).
WCT_INLINE static float wct_two_phi(float x) {
  const float c = wct_erfc_nonneg((x < 0.0f ? -x : x) * 0.70710678118654752f);
  return x < 0.0f ? c : 2.0f - c;
}
