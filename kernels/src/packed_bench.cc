// Memory read bandwidth probe: the ceiling a packed decode GEMV is measured against (bench/packed.ts).
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <vector>

#include "dispatch.h"
#include "wct_packed.h"

// Sum of n 64-bit words (integer adds vectorise without reassociation concerns).
WCT_INLINE static uint64_t sum_words_body(const uint64_t* p, int64_t n) {
  uint64_t s = 0;
  for (int64_t i = 0; i < n; i++) s += p[i];
  return s;
}
WCT_MULTIVERSION(uint64_t, sum_words, (const uint64_t* p, int64_t n), (p, n))

// One pass over the buffer, split in contiguous parts over the pool (as the GEMV splits rows).
static uint64_t read_pass(const std::vector<uint64_t>& buf) {
  const int64_t n = int64_t(buf.size()), chunk = int64_t(1) << 16;
  uint64_t total = 0;
#pragma omp parallel for schedule(static) reduction(+ : total)
  for (int64_t c = 0; c < n; c += chunk) total += sum_words(buf.data() + c, std::min(chunk, n - c));
  return total;
}

double wct_bench_read_bandwidth(wct_i64 bytes, wct_i64 iters) {
  std::vector<uint64_t> buf(std::max<int64_t>(bytes / 8, 1));
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < int64_t(buf.size()); i++) buf[i] = uint64_t(i);  // first touch by the reading thread
  volatile uint64_t sink = read_pass(buf);  // warm-up
  const auto t0 = std::chrono::steady_clock::now();
  for (int64_t i = 0; i < iters; i++) sink = sink + read_pass(buf);
  const std::chrono::duration<double> dt = std::chrono::steady_clock::now() - t0;
  return double(buf.size() * 8) * double(std::max<int64_t>(iters, 1)) / dt.count();
}
