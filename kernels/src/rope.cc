// Rotary position embedding, HF rotate-half layout, forward and transposed (inverse) rotation.
#include "wct_rope.h"

#include "dispatch.h"

// One head vector of D = 2h: pairs (i, i + h) rotated by angle with cos c[i], sin s[i]; sign = +1 for the
// forward rotation, -1 for its transpose. Both inputs of a pair are read before either output is written.
WCT_INLINE static void rope_head_body(const float* x, float* out, const float* c, const float* s, int64_t h, float sign) {
  for (int64_t i = 0; i < h; i++) {
    const float x1 = x[i], x2 = x[i + h], si = sign * s[i];
    out[i] = x1 * c[i] - x2 * si;
    out[i + h] = x2 * c[i] + x1 * si;
  }
}
WCT_MULTIVERSION(void, rope_head, (const float* x, float* out, const float* c, const float* s, int64_t h, float sign),
                 (x, out, c, s, h, sign))

void wct_rope(const float* x, float* out, const float* cos, const float* sin, wct_i64 B, wct_i64 T, wct_i64 H,
              wct_i64 D, bool inverse) {
  const int64_t h = D / 2;
  const float sign = inverse ? -1.0f : 1.0f;
#pragma omp parallel for schedule(static) if (B * T * H * D >= WCT_PAR_MIN)
  for (int64_t bt = 0; bt < B * T; bt++) {
    const int64_t t = bt % T;
    for (int64_t hd = 0; hd < H; hd++) {
      const int64_t off = (bt * H + hd) * D;
      rope_head(x + off, out + off, cos + t * h, sin + t * h, h, sign);
    }
  }
}
