// Causal grouped-query attention.
// q, out, dout, dq: [B,Tq,H,D]; k, v, dk, dv: [B,Tk,Hkv,D]; probs: [B,H,Tq,Tk].
// Query i attends key j iff j <= i + (Tk - Tq) (causal with a KV-cache offset); query head h reads kv
// head h / (H / Hkv). Requires H % Hkv == 0.
#pragma once
#include "wct_common.h"

// S = scale * Q K^T (cblas_sgemm per (b,h)), masked softmax row-wise, out = P V.
// probs may be null (then a per-thread scratch row block is used); masked entries of probs are 0;
// a query row with no visible key gets all-zero probs and output.
void wct_attention_forward(const float* q, const float* k, const float* v, float* out, float* probs, wct_i64 B,
                           wct_i64 Tq, wct_i64 Tk, wct_i64 H, wct_i64 Hkv, wct_i64 D, float scale);

// From saved probs P: dP = dO V^T, dS = P * (dP - rowsum(dP * P)), dq = scale dS K, dk = scale dS^T Q,
// dv = P^T dO. dq, dk, dv are OVERWRITTEN; dk/dv sum over the H/Hkv query heads sharing a kv head.
void wct_attention_backward(const float* q, const float* k, const float* v, const float* probs, const float* dout,
                            float* dq, float* dk, float* dv, wct_i64 B, wct_i64 Tq, wct_i64 Tk, wct_i64 H,
                            wct_i64 Hkv, wct_i64 D, float scale);
