// wct native kernels: shared conventions.
//
// Glossary (llm.c style): B batch, T time (Tq queries, Tk keys), H query heads, Hkv key/value heads,
// D head dim, C channels (row length), N rows, V vocab, M/N/K GEMM dims.
// All buffers are dense row-major float32 owned by the caller; sizes are int64 element counts.
// Kernels never allocate in their inner loops and never throw from inside an OpenMP region:
// a kernel that can reject its input validates first and reports through its return value or a
// C++ exception thrown before any parallel work (the N-API layer turns both into JS errors).
#pragma once
#include <cstdint>

typedef int64_t wct_i64;

// One thread pool: OpenMP (libgomp), shared by our loops, OpenBLAS (openmp build) and oneDNN.
int wct_threads(void);
void wct_set_threads(int n);
// OpenBLAS's own count (openblas_get_num_threads): wct_set_threads sets it with OpenMP's.
int wct_blas_threads(void);

// "avx512" | "avx2" | "portable": the ISA of the dispatched hot loops, chosen once at load from
// __builtin_cpu_supports (the environment variable WCT_CPU_PATH may force a lower one, for tests).
const char* wct_cpu_path(void);

// What the addon was built with and what the CPU offers, for `wct --version`: the compiler (__VERSION__),
// OpenBLAS's build string (openblas_get_config, its core name appended), oneDNN's version (dnnl_version),
// OpenMP's specification date (_OPENMP, yyyymm), and the features the ISA dispatch tests, in one string each.
struct wct_build_info {
  const char* compiler;
  const char* openblas;
  const char* onednn;
  const char* openmp;
  const char* cpu_features;  // space-separated: the dispatch's features this CPU has (e.g. "avx2 fma f16c")
};
wct_build_info wct_build(void);
