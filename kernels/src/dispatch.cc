// ISA detection and the thread-count controls shared by every kernel.
#include "dispatch.h"

#include <cblas.h>
#include <omp.h>

#include <cstdlib>
#include <cstring>

#include "wct_common.h"

static wct_isa_t detect_isa() {
  __builtin_cpu_init();
  wct_isa_t best = WCT_ISA_PORTABLE;
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
      __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl")) {
    best = WCT_ISA_AVX512;
  } else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c")) {
    best = WCT_ISA_AVX2;
  }
  // A forced path can only lower the ISA (never select one the CPU lacks).
  const char* forced = std::getenv("WCT_CPU_PATH");
  if (forced != nullptr) {
    if (std::strcmp(forced, "portable") == 0) best = WCT_ISA_PORTABLE;
    if (std::strcmp(forced, "avx2") == 0 && best > WCT_ISA_AVX2) best = WCT_ISA_AVX2;
  }
  return best;
}

wct_isa_t wct_isa() {
  static const wct_isa_t isa = detect_isa();
  return isa;
}

const char* wct_cpu_path(void) {
  switch (wct_isa()) {
    case WCT_ISA_AVX512: return "avx512";
    case WCT_ISA_AVX2: return "avx2";
    default: return "portable";
  }
}

int wct_threads(void) { return omp_get_max_threads(); }

void wct_set_threads(int n) {
  if (n < 1) n = 1;
  omp_set_num_threads(n);
  openblas_set_num_threads(n);
}
