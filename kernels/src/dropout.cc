// Dropout with a caller-drawn 0/1 byte mask.
#include "wct_dropout.h"

#include <algorithm>

#include "dispatch.h"

WCT_INLINE static void dropout_rows_body(const float* x, const uint8_t* mask, float scale, float* out, int64_t n) {
  for (int64_t i = 0; i < n; i++) out[i] = x[i] * float(mask[i]) * scale;
}
WCT_MULTIVERSION(void, dropout_rows, (const float* x, const uint8_t* mask, float scale, float* out, int64_t n),
                 (x, mask, scale, out, n))

void wct_dropout(const float* x, const uint8_t* mask, float scale, float* out, wct_i64 n) {
  const int64_t chunk = 1 << 14;
#pragma omp parallel for schedule(static) if (n >= WCT_PAR_MIN)
  for (int64_t c = 0; c < n; c += chunk) dropout_rows(x + c, mask + c, scale, out + c, std::min(chunk, n - c));
}
