// Quantizer parameters per row (min-max; OWQ's tuned clipping search "mse") and fake quantization, with
// the fp32 arithmetic of owq/quant.py (`Quantizer.find_params`, `quantize`) under PyTorch.
//
// The "mse" search scores grid * (maxq + 1) candidates (s, z) per row by mean |x - q(x)|^2.4 (the 2.4
// norm of OWQ's lp_loss, raised to the fp32 exponent 2.4f as torch's pow does) and keeps the first of
// least score. Scoring every candidate on every element costs grid * (maxq + 1) * C powers per row (4e9
// for a 768x3072 layer at 4 bits). Instead, with the row sorted, a candidate's elements split into a
// clamped-low prefix (error x - s*(0 - z)), an unclamped middle (error x - s*round(x/s), the same for
// every zero point of one scale) and a clamped-high suffix (error x - s*(maxq - z)). A candidate's
// clamped tails are bounded below by two powers (the innermost clamped errors times their counts), then
// summed from the outside in, by chunks; it is dropped as soon as that exceeds the best score by a margin
// rounding cannot close (it could never be chosen). The middle's powers are computed once per scale,
// only if some zero point survives. Scales go from the widest down and zero points from the centred one
// outwards, so good scores come early and most candidates end after two powers; once a scale's middle is
// known, its block sums tighten the bound of the remaining zero points. A kept candidate's
// score is always summed in the same fixed order, so the choice does not depend on what was pruned;
// ties keep the first candidate in the reference's (i, zp) order.
// Inputs are assumed finite (a NaN row gets unspecified params, never an out-of-bounds access).
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "dispatch.h"
#include "wct_quant.h"

// ---- |e|^2.4f (no reference rounding to mirror here: contraction allowed) ----

// fp32(|e|^2.4f) computed in double to ~1e-12 relative, so the fp32 result is the correctly rounded one
// except within ~1e-12 of a rounding boundary (the TS reference's fround(Math.pow) agrees to the bit
// almost always; torch's vectorised powf is within 1 ulp). |e| = 2^E m, m in [sqrt(1/2), sqrt 2):
// log m = 2 atanh((m-1)/(m+1)) (series to f^15, f^2 <= 0.0295), then exp by 2^n e^r, |r| <= ln2/2
// (Taylor to r^10). Bit manipulation only on 64-bit lanes, so it vectorises under AVX2.
WCT_INLINE static float lp24(float e) {
  const double P = double(2.4f);
  const double a = std::fabs(double(e));  // floats, subnormals included, are normal doubles
  uint64_t b;
  std::memcpy(&b, &a, 8);
  const uint64_t mb = (b & 0x000FFFFFFFFFFFFFull) | 0x3FF0000000000000ull;
  double m;
  std::memcpy(&m, &mb, 8);
  const bool big = m > 1.4142135623730951;
  m = big ? m * 0.5 : m;
  const uint64_t eb = ((b >> 52) + (big ? 1u : 0u)) | 0x4330000000000000ull;
  double E;
  std::memcpy(&E, &eb, 8);
  E -= 4503599627370496.0 + 1023.0;  // the unbiased exponent, exactly
  const double f = (m - 1.0) / (m + 1.0), f2 = f * f;
  double s = 1.0 / 15;
  s = s * f2 + 1.0 / 13;
  s = s * f2 + 1.0 / 11;
  s = s * f2 + 1.0 / 9;
  s = s * f2 + 1.0 / 7;
  s = s * f2 + 1.0 / 5;
  s = s * f2 + 1.0 / 3;
  s = s * f2 + 1.0;
  double y = P * (E * 0.69314718055994531 + 2.0 * f * s);
  y = y < -700.0 ? -700.0 : y;  // |e| = 0 (handled below) and nothing else reaches this
  const double magic = 6755399441055744.0;  // 1.5 * 2^52: adding it rounds to an integer held in the low bits
  const double kd = y * 1.4426950408889634 + magic;
  const double n = kd - magic;
  const double r = (y - n * 0.69314718036912382) - n * 1.9082149292705877e-10;
  double p = 1.0 / 3628800;
  p = p * r + 1.0 / 362880;
  p = p * r + 1.0 / 40320;
  p = p * r + 1.0 / 5040;
  p = p * r + 1.0 / 720;
  p = p * r + 1.0 / 120;
  p = p * r + 1.0 / 24;
  p = p * r + 1.0 / 6;
  p = p * r + 0.5;
  p = p * r + 1.0;
  p = p * r + 1.0;
  uint64_t kb;
  std::memcpy(&kb, &kd, 8);
  const uint64_t sb = (kb + 1023u) << 52;  // 2^n: the low bits of kd hold n
  double scale;
  std::memcpy(&scale, &sb, 8);
  const float v = float(p * scale);
  return a == 0.0 ? 0.0f : v;
}

// out[k] = fp32(|e[k]|^2.4f)
WCT_INLINE static void lp24_store_body(const float* e, float* out, int64_t n) {
#pragma omp simd
  for (int64_t k = 0; k < n; k++) out[k] = lp24(e[k]);
}
WCT_MULTIVERSION(void, lp24_store, (const float* e, float* out, int64_t n), (e, out, n))

// sum_k fp32(|x[k] - q|^2.4f), in double: the error of elements all clamped to the one level q
WCT_INLINE static double lp24_clamped_sum_body(const float* x, int64_t n, float q) {
  double s = 0.0;
#pragma omp simd reduction(+ : s)
  for (int64_t k = 0; k < n; k++) s += double(lp24(x[k] - q));
  return s;
}
WCT_MULTIVERSION(double, lp24_clamped_sum, (const float* x, int64_t n, float q), (x, n, q))

// One power, for the lower bounds of the search (FMA allowed: only a bound, with a margin).
WCT_INLINE static float lp24_one_body(float e) { return lp24(e); }
WCT_MULTIVERSION(float, lp24_one, (float e), (e))

// ---- exact fp32 steps of the reference: a product is rounded before it is added (no FMA) ----
#pragma GCC push_options
#pragma GCC optimize("fp-contract=off")

// xr[k] = round(x[k] / s): the reference's x_round
WCT_INLINE static void round_div_body(const float* x, int64_t n, float s, float* xr) {
  for (int64_t k = 0; k < n; k++) xr[k] = nearbyintf(x[k] / s);
}
WCT_MULTIVERSION(void, round_div, (const float* x, int64_t n, float s, float* xr), (x, n, s, xr))

// e[k] = x[k] - s * xr[k]: the error of an element the clamp leaves alone
WCT_INLINE static void unclamped_errors_body(const float* x, const float* xr, int64_t n, float s, float* e) {
  for (int64_t k = 0; k < n; k++) e[k] = x[k] - s * xr[k];
}
WCT_MULTIVERSION(void, unclamped_errors, (const float* x, const float* xr, int64_t n, float s, float* e),
                 (x, xr, n, s, e))

WCT_INLINE static void fake_row_body(const float* x, int64_t n, float s, float z, float maxq, float* out,
                                     uint8_t* codes) {
  for (int64_t k = 0; k < n; k++) {
    float c = nearbyintf(x[k] / s) + z;
    c = c < 0.0f ? 0.0f : (c > maxq ? maxq : c);
    out[k] = s * (c - z);
    if (codes != nullptr) codes[k] = uint8_t(c);
  }
}
WCT_MULTIVERSION(void, fake_row, (const float* x, int64_t n, float s, float z, float maxq, float* out, uint8_t* codes),
                 (x, n, s, z, maxq, out, codes))

static void row_extremes(const float* x, int64_t n, float* xmin, float* xmax) {
  float lo = 0.0f, hi = 0.0f;
  for (int64_t k = 0; k < n; k++) {
    lo = x[k] < lo ? x[k] : lo;
    hi = x[k] > hi ? x[k] : hi;
  }
  *xmin = lo;
  *xmax = hi;
}

static void minmax_row(const float* x, int64_t n, int maxq, float* scale, float* zero) {
  float xmin, xmax;
  row_extremes(x, n, &xmin, &xmax);
  if (xmin == 0.0f && xmax == 0.0f) {
    xmin = -1.0f;
    xmax = 1.0f;
  }
  const float s = (xmax - xmin) / float(maxq);
  *scale = s;
  *zero = nearbyintf(-xmin / s) + 0.0f;  // + 0: -0 (xmin = 0) reads as 0
}

// Per-thread buffers of the search: xs the sorted row, xr its x_round for one scale, e / p the unclamped
// errors and their powers, blk the sums of p by blocks of MSE_CHUNK from a (bounds only), pos the first
// index of each x_round.
struct MseScratch {
  float* xs;
  float* xr;
  float* e;
  float* p;
  double* blk;
  int64_t* pos;
};

// sum p[lo, hi) in double, one fixed order
WCT_INLINE static double sum_range_body(const float* p, int64_t lo, int64_t hi) {
  double s = 0.0;
#pragma omp simd reduction(+ : s)
  for (int64_t k = lo; k < hi; k++) s += double(p[k]);
  return s;
}
WCT_MULTIVERSION(double, sum_range, (const float* p, int64_t lo, int64_t hi), (p, lo, hi))

// First k in [lo, hi) with pred(k) (pred monotone false..true), else hi.
template <class Pred>
static int64_t first_true(int64_t lo, int64_t hi, Pred pred) {
  while (lo < hi) {
    const int64_t mid = lo + (hi - lo) / 2;
    if (pred(mid)) {
      hi = mid;
    } else {
      lo = mid + 1;
    }
  }
  return lo;
}

// Chunk of the clamped tails: small enough that a hopeless candidate stops early.
constexpr int64_t MSE_CHUNK = 32;

static void mse_row(const float* x, int64_t n, int maxq, int grid, const MseScratch& ws, float* scale, float* zero) {
  float xmin, xmax;
  row_extremes(x, n, &xmin, &xmax);
  float* xs = ws.xs;
  const float* xr = ws.xr;
  std::copy(x, x + n, xs);
  // NaNs last: a strict weak order even then (std::sort with NaN and operator< is undefined behaviour)
  std::sort(xs, xs + n, [](float u, float v) { return u < v || (u == u && v != v); });
  const float fmaxq = float(maxq), eps = 1e-8f, nf = float(n);
  const float xrange = xmax - xmin;
  const float step = xrange / float(grid);
  float best_score = 1e10f, best_min = xmin, best_max = xmax;
  int64_t best_idx = -1;  // -1: the initial (xmin, xmax), which only a strictly smaller score replaces
  for (int i = grid; i >= 1; i--) {
    const float tmp_max = step * float(i);  // xrange / num * i
    const float s = std::max(tmp_max / fmaxq, eps);
    // Elements outside [a, b) are clamped for every zero point (round(x/s) < -maxq or > maxq).
    auto xr_at = [&](int64_t k) { return nearbyintf(xs[k] / s); };  // x_round, non-decreasing in k
    const int64_t a = first_true(0, n, [&](int64_t k) { return xr_at(k) >= -fmaxq; });
    const int64_t b = first_true(a, n, [&](int64_t k) { return xr_at(k) > fmaxq; });
    round_div(xs + a, b - a, s, ws.xr + a);
    // pos[v + maxq] = first k in [a, b] with x_round >= v, for v = -maxq .. maxq + 1
    for (int64_t v = -maxq, k = a; v <= maxq + 1; v++) {
      k = first_true(k, b, [&](int64_t j) { return xr[j] >= float(v); });
      ws.pos[v + maxq] = k;
    }
    bool mid_ready = false;
    // Zero points from the one centring the window on the row outwards: a good score early prunes more.
    const float zc = nearbyintf(-(xmin + xmax) * 0.5f / s + fmaxq * 0.5f);
    const int z0 = int(zc > 0.0f ? (zc > fmaxq ? fmaxq : zc) : 0.0f);
    for (int t = 0; t <= 2 * maxq; t++) {
      const int zp = t % 2 == 0 ? z0 - t / 2 : z0 + (t + 1) / 2;
      if (zp < 0 || zp > maxq) continue;
      const float zd = float(zp) * s;  // zp * delta
      const float new_min = 0.0f - zd, new_max = tmp_max - zd;
      float z = 0.0f - nearbyintf(new_min / s);  // minq - round(new_min / delta)
      z = z > 0.0f ? (z > fmaxq ? fmaxq : z) : 0.0f;  // clamp; NaN (infinite input) -> 0, a safe index
      // Clamped low: round(x/s) + z < 0, i.e. [0, lo); clamped high: round(x/s) + z > maxq, i.e. [hi, n).
      const int64_t lo = ws.pos[maxq - int(z)], hi = ws.pos[2 * maxq + 1 - int(z)];
      const float q_lo = s * (0.0f - z), q_hi = s * (fmaxq - z);
      // A partial sum above this cannot round to a score <= best_score (the margin covers the two fp32
      // roundings of the mean and the double sums), so a candidate past it is dropped unfinished.
      const double bound = double(best_score) * double(n) * (1.0 + 4e-6);
      // Lower bounds: the middle's sum once this scale's powers exist, and every clamped-low error is at
      // least the innermost one (the row is sorted), likewise high (less 1e-6 for the powers' rounding).
      double mid_floor = 0.0;  // the blocks of MSE_CHUNK powers inside [lo, hi)
      if (mid_ready) {
        for (int64_t blk = (lo - a + MSE_CHUNK - 1) / MSE_CHUNK; a + (blk + 1) * MSE_CHUNK <= hi; blk++) {
          mid_floor += ws.blk[blk];
        }
        mid_floor *= 1.0 - 1e-9;
      }
      double floor_sum = 0.0;
      if (lo > 0) floor_sum += double(lo) * double(lp24_one(xs[lo - 1] - q_lo));
      if (hi < n) floor_sum += double(n - hi) * double(lp24_one(xs[hi] - q_hi));
      bool pruned = mid_floor + floor_sum * (1.0 - 1e-6) > bound;
      double tails = 0.0;
      for (int64_t k0 = 0; k0 < lo && !pruned; k0 += MSE_CHUNK) {
        tails += lp24_clamped_sum(xs + k0, std::min(MSE_CHUNK, lo - k0), q_lo);
        pruned = mid_floor + tails > bound;
      }
      for (int64_t k1 = n; k1 > hi && !pruned; k1 -= MSE_CHUNK) {
        const int64_t k0 = std::max(hi, k1 - MSE_CHUNK);
        tails += lp24_clamped_sum(xs + k0, k1 - k0, q_hi);
        pruned = mid_floor + tails > bound;
      }
      if (pruned) continue;
      if (!mid_ready) {  // the unclamped errors of this scale, shared by its zero points
        unclamped_errors(xs + a, xr + a, b - a, s, ws.e + a);
        lp24_store(ws.e + a, ws.p + a, b - a);
        for (int64_t blk = 0; a + (blk + 1) * MSE_CHUNK <= b; blk++) {
          ws.blk[blk] = sum_range(ws.p, a + blk * MSE_CHUNK, a + (blk + 1) * MSE_CHUNK);
        }
        mid_ready = true;
      }
      const float score = float(sum_range(ws.p, lo, hi) + tails) / nf;  // the mean: fp32 sum / numel
      const int64_t idx = int64_t(i - 1) * (maxq + 1) + zp;
      if (score < best_score || (score == best_score && best_idx >= 0 && idx < best_idx)) {
        best_score = score;
        best_idx = idx;
        best_min = new_min;
        best_max = new_max;
      }
    }
  }
  const float min_neg = std::min(best_min, 0.0f), max_pos = std::max(best_max, 0.0f);
  const float s = std::max((max_pos - min_neg) / fmaxq, eps);
  float z = 0.0f - nearbyintf(min_neg / s);
  z = z < 0.0f ? 0.0f : (z > fmaxq ? fmaxq : z);
  *scale = s;
  *zero = z + 0.0f;
}

#pragma GCC pop_options

void wct_quant_find_params(const float* w, wct_i64 rows, wct_i64 cols, wct_i64 ld, wct_i64 ldp, int maxq,
                           int tuning, int grid, float* scale, float* zero) {
  if (tuning != WCT_TUNING_MSE) {
#pragma omp parallel for schedule(static) if (rows * cols >= WCT_PAR_MIN)
    for (int64_t r = 0; r < rows; r++) minmax_row(w + r * ld, cols, maxq, scale + r * ldp, zero + r * ldp);
    return;
  }
  // Scratch for every thread, allocated before the parallel region (nothing throws inside it).
  const int threads = rows * cols * grid >= WCT_PAR_MIN ? omp_get_max_threads() : 1;
  std::vector<float> fbuf(size_t(threads) * 4 * size_t(cols));
  std::vector<double> dbuf(size_t(threads) * size_t(cols + 1));
  std::vector<int64_t> pbuf(size_t(threads) * size_t(2 * maxq + 2));
#pragma omp parallel num_threads(threads)
  {
    const size_t t = size_t(omp_get_thread_num());
    float* base = fbuf.data() + t * 4 * size_t(cols);
    const MseScratch ws{base, base + cols, base + 2 * cols, base + 3 * cols, dbuf.data() + t * size_t(cols + 1),
                        pbuf.data() + t * size_t(2 * maxq + 2)};
#pragma omp for schedule(dynamic, 1)
    for (int64_t r = 0; r < rows; r++) mse_row(w + r * ld, cols, maxq, grid, ws, scale + r * ldp, zero + r * ldp);
  }
}

void wct_quant_fake(const float* w, wct_i64 rows, wct_i64 cols, const float* scale, const float* zero, int maxq,
                    float* out, uint8_t* codes) {
#pragma omp parallel for schedule(static) if (rows * cols >= WCT_PAR_MIN)
  for (int64_t r = 0; r < rows; r++) {
    fake_row(w + r * cols, cols, scale[r], zero[r], float(maxq), out + r * cols,
             codes != nullptr ? codes + r * cols : nullptr);
  }
}
