// Optimizer kernels: the fused AdamW update and the sum of squares behind global-norm gradient clipping.
#pragma once
#include "wct_common.h"

// One AdamW step's scalars (src/native/types.ts AdamWStepParams), as the JS numbers (doubles) they are.
struct wct_adamw_params {
  double lr, beta1, beta2, eps, weight_decay, c1, c2, grad_scale;
};

// theta, m, v [n] updated in place from g [n] read as float(g * grad_scale): the reference's float
// operations (src/native/ref.ts adamw) in the same order, so the result is bit-identical to it.
void wct_adamw(float* theta, const float* g, float* m, float* v, wct_i64 n, const wct_adamw_params* p);

// One parameter of a multi-tensor step: theta, m, v [n] and its gradient g [n].
struct wct_adamw_tensor {
  float* theta;
  const float* g;
  float* m;
  float* v;
  wct_i64 n;
};

// wct_adamw on each of the count tensors, in one parallel region shared out by chunks across all of them
// (one fork for a whole model's parameters, however many and however small).
void wct_adamw_many(const wct_adamw_tensor* tensors, wct_i64 count, const wct_adamw_params* p);

// Sum of x[i]^2 in double, in an order fixed by n alone (never by the thread count).
double wct_sum_squares(const float* x, wct_i64 n);
