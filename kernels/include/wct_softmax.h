// Softmax family. x, out, y, dy, dx: [N,C], row-wise over the last dim.
#pragma once
#include "wct_common.h"

// out = exp(x - max) / sum(exp(x - max)) (sum in double). out may alias x.
void wct_softmax_forward(const float* x, float* out, wct_i64 N, wct_i64 C);
// dx = y * (dy - sum(dy * y)) (sum in double). dx may alias dy.
void wct_softmax_backward(const float* y, const float* dy, float* dx, wct_i64 N, wct_i64 C);
