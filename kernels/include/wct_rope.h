// Rotary position embedding (HF rotate-half layout).
#pragma once
#include "wct_common.h"

// x, out: [B,T,H,D]; cos, sin: [T,D/2]; D even. With h = D/2, for each pair i < h at time t:
//   forward:  out[i] = x[i] cos - x[i+h] sin,  out[i+h] = x[i+h] cos + x[i] sin
//   inverse:  out[i] = x[i] cos + x[i+h] sin,  out[i+h] = x[i+h] cos - x[i] sin  (the transpose: backward)
// out may alias x.
void wct_rope(const float* x, float* out, const float* cos, const float* sin, wct_i64 B, wct_i64 T, wct_i64 H,
              wct_i64 D, bool inverse);
