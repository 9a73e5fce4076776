// Fused softmax cross-entropy. logits, dlogits: [N,V]; targets, losses, lse: [N].
#pragma once
#include "wct_common.h"

// Index of the first row whose target is neither ignoreIndex nor in [0, V), or -1 when all are valid.
wct_i64 wct_cross_entropy_check(const int32_t* targets, wct_i64 N, wct_i64 V, int32_t ignoreIndex);

// lse[n] = log(sum exp(logits[n])) (double accumulation); losses[n] = lse[n] - logits[n, t] or 0 when
// t == ignoreIndex. Targets must have passed wct_cross_entropy_check.
void wct_cross_entropy_forward(const float* logits, const int32_t* targets, float* losses, float* lse, wct_i64 N,
                               wct_i64 V, int32_t ignoreIndex);
// dlogits[n] = (exp(logits[n] - lse[n]) - onehot(t)) * rowScale; zero rows where t == ignoreIndex.
void wct_cross_entropy_backward(const float* logits, const int32_t* targets, const float* lse, float rowScale,
                                float* dlogits, wct_i64 N, wct_i64 V, int32_t ignoreIndex);
