// ISA detection, the thread-count controls shared by every kernel, and the build description.
#include "dispatch.h"

#include <cblas.h>
#include <dnnl.h>
#include <omp.h>

#include <cstdlib>
#include <cstring>
#include <string>

#include "wct_common.h"

// The CPU features the dispatch looks at (__builtin_cpu_supports needs literal names, hence the macro).
#define WCT_CPU_FEATURES(X)                                                                           \
  X("avx512f") X("avx512dq") X("avx512bw") X("avx512vl") X("avx512vbmi") X("avx512vnni") X("avx2") X("fma") \
      X("f16c")

static bool has(const char* feature) {
#define WCT_HAS(f) \
  if (std::strcmp(feature, f) == 0) return __builtin_cpu_supports(f);
  WCT_CPU_FEATURES(WCT_HAS)
#undef WCT_HAS
  return false;
}

static wct_isa_t detect_isa() {
  __builtin_cpu_init();
  wct_isa_t best = WCT_ISA_PORTABLE;
  if (has("avx512f") && has("avx512dq") && has("avx512bw") && has("avx512vl")) {
    best = WCT_ISA_AVX512;
  } else if (has("avx2") && has("fma") && has("f16c")) {
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

bool wct_int8_dot() {
  static const bool on = [] {
    const char* forced = std::getenv("WCT_CPU_PATH");
    const bool fp_only = forced != nullptr && std::strcmp(forced, "avx512") == 0;
    return wct_isa() == WCT_ISA_AVX512 && has("avx512vbmi") && has("avx512vnni") && !fp_only;
  }();
  return on;
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

int wct_blas_threads(void) { return openblas_get_num_threads(); }

wct_build_info wct_build(void) {
  static const std::string compiler =
#if defined(__clang__)
      std::string("clang ") + __clang_version__;
#elif defined(__GNUC__)
      std::string("gcc ") + __VERSION__;
#else
      std::string("unknown compiler");
#endif
  static const std::string openblas = [] {
    std::string s = openblas_get_config();
    while (!s.empty() && s.back() == ' ') s.pop_back();
    return s + " (core " + openblas_get_corename() + ")";
  }();
  static const std::string onednn = [] {
    const dnnl_version_t* v = dnnl_version();
    return std::to_string(v->major) + "." + std::to_string(v->minor) + "." + std::to_string(v->patch) + " (" +
           v->hash + ")";
  }();
  static const std::string openmp = std::to_string(_OPENMP);
  static const std::string features = [] {
    __builtin_cpu_init();
    std::string s;
#define WCT_LIST(f) \
  if (has(f)) s += std::string(s.empty() ? "" : " ") + f;
    WCT_CPU_FEATURES(WCT_LIST)
#undef WCT_LIST
    return s;
  }();
  return {compiler.c_str(), openblas.c_str(), onednn.c_str(), openmp.c_str(), features.c_str()};
}
