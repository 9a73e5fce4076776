// Dropout with a caller-drawn mask. x, out: [n]; mask: [n] bytes, 0 or 1.
#pragma once
#include "wct_common.h"

// out = x * mask * scale (also the backward, applied to dy). out may alias x.
void wct_dropout(const float* x, const uint8_t* mask, float scale, float* out, wct_i64 n);
