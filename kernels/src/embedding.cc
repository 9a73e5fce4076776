// Embedding lookup and its scatter-add backward.
#include "wct_embedding.h"

#include <algorithm>
#include <cstring>

#include "dispatch.h"

wct_i64 wct_embedding_check(const int32_t* ids, wct_i64 N, wct_i64 V) {
  for (int64_t n = 0; n < N; n++) {
    if (ids[n] < 0 || ids[n] >= V) return n;
  }
  return -1;
}

void wct_embedding_forward(const float* table, const int32_t* ids, float* out, wct_i64 N, wct_i64 C) {
#pragma omp parallel for schedule(static) if (N * C >= WCT_PAR_MIN)
  for (int64_t n = 0; n < N; n++) std::memcpy(out + n * C, table + int64_t(ids[n]) * C, size_t(C) * sizeof(float));
}

WCT_INLINE static void add_row_body(float* dst, const float* src, int64_t n) {
  for (int64_t j = 0; j < n; j++) dst[j] += src[j];
}
WCT_MULTIVERSION(void, add_row, (float* dst, const float* src, int64_t n), (dst, src, n))

void wct_embedding_backward(const float* dy, const int32_t* ids, float* dTable, wct_i64 N, wct_i64 C) {
  // Repeated ids would race if rows were split, so threads split the columns instead.
  const int64_t tile = 64, tiles = (C + tile - 1) / tile;
#pragma omp parallel for schedule(static) if (N * C >= WCT_PAR_MIN)
  for (int64_t t = 0; t < tiles; t++) {
    const int64_t c0 = t * tile, w = std::min(tile, C - c0);
    for (int64_t n = 0; n < N; n++) add_row(dTable + int64_t(ids[n]) * C + c0, dy + n * C + c0, w);
  }
}
