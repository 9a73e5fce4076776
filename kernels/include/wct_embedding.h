// Embedding lookup. table, dTable: [V,C]; ids: [N]; out, dy: [N,C].
#pragma once
#include "wct_common.h"

// Index of the first id outside [0, V), or -1 when all are valid.
wct_i64 wct_embedding_check(const int32_t* ids, wct_i64 N, wct_i64 V);
// out[n, :] = table[ids[n], :]; ids must have passed wct_embedding_check.
void wct_embedding_forward(const float* table, const int32_t* ids, float* out, wct_i64 N, wct_i64 C);
// dTable[ids[n], :] += dy[n, :] (scatter-add, race-free: threads split the C columns).
void wct_embedding_backward(const float* dy, const int32_t* ids, float* dTable, wct_i64 N, wct_i64 C);
