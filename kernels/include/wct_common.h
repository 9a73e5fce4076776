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

// "avx512" | "avx2" | "portable": the ISA of the dispatched hot loops, chosen once at load from
// __builtin_cpu_supports (the environment variable WCT_CPU_PATH may force a lower one, for tests).
const char* wct_cpu_path(void);
