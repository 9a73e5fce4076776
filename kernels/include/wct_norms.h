// Normalisation family. x, out, dy, dx: [N,C]; w, b, dw, db: [C]; mean, rstd: [N].
// Row statistics are accumulated in double and stored as float; outputs are float.
// dw/db ACCUMULATE (+=); dx is overwritten.
#pragma once
#include "wct_common.h"

// out = x * rstd * w, rstd = 1 / sqrt(mean(x^2) + eps).
void wct_rmsnorm_forward(const float* x, const float* w, float* out, float* rstd, wct_i64 N, wct_i64 C, float eps);
// dx = rstd * (w*dy - x * rstd^2 * mean(w*dy*x)); dw += sum_rows(dy * x * rstd).
void wct_rmsnorm_backward(const float* x, const float* w, const float* rstd, const float* dy, float* dx,
                          float* dw, wct_i64 N, wct_i64 C);

// out = (x - mean) * rstd * w + b, rstd = 1 / sqrt(var + eps), biased variance (as torch).
void wct_layernorm_forward(const float* x, const float* w, const float* b, float* out, float* mean, float* rstd,
                           wct_i64 N, wct_i64 C, float eps);
// xhat = (x - mean) * rstd, g = dy * w: dx = rstd * (g - mean(g) - xhat * mean(g * xhat));
// dw += sum_rows(dy * xhat); db += sum_rows(dy).
void wct_layernorm_backward(const float* x, const float* w, const float* mean, const float* rstd, const float* dy,
                            float* dx, float* dw, float* db, wct_i64 N, wct_i64 C);
