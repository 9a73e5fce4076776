// The decode GEMV's integer walk (packed_gemv_int.cc): one input, 3-bit codes, one group per row, on CPUs with
// AVX-512 VNNI and VBMI (wct_int8_dot). Internal to packed_gemv.cc, which adds the weak columns and outliers.
#pragma once
#include <cstdint>
#include <vector>

#include "wct_packed.h"

// x in packed order as 24-bit block floating point (see packed_gemv_int.cc): per step of 64 packed columns the
// three limb vectors [L2 | L1 | L0] (64 signed bytes each), the unit u_b of each block, and Σ_k x~_k.
struct GemvIntX {
  std::vector<int8_t> limbs;  // [steps, 3, 64]
  std::vector<float> unit;    // [blocks]
  double sum = 0.0;           // Σ_k x~_k
  int64_t steps = 0;
};

// Whether the integer walk runs y = x W_hat^T for M inputs of w.
bool wct_gemv_int_applies(const wct_packed* w, int64_t M);

// out = xp [Kp] (packed order, zero-padded to whole blocks, 0 at the weak columns) in limbs. False, leaving the
// call to the floating-point walk, when xp holds a NaN or an infinity (which that walk propagates) or a block's
// largest |x| is nonzero but below 2^-100 (whose scaling by 2^(22 - E) would not be exact in fp32).
bool wct_gemv_int_x(const float* xp, int64_t Kp, GemvIntX* out);

// y[r] = s_r (Σ_k code[r, k] x~_k - z_r Σ_k x~_k) for rows [r0, r1), on the calling thread.
void wct_gemv_int_rows(const wct_packed* w, const GemvIntX& x, int64_t r0, int64_t r1, float* y);
