// Runtime ISA dispatch for hot loops (internal to kernels/src).
//
// A hot loop is written once as an always_inline "body" with plain C++ (vectorisable, no OpenMP) and
// WCT_MULTIVERSION stamps out three copies compiled for AVX-512, AVX2+FMA and the baseline ISA, plus a
// dispatcher of the same name that jumps to the copy picked at load (wct_isa()). OpenMP regions stay in
// the generic callers: GCC outlines a parallel region before inlining, so a region inside a target
// function would lose the target flags; callers therefore call the dispatched body per row / chunk.
#pragma once
#include <cstdint>

enum wct_isa_t { WCT_ISA_PORTABLE = 0, WCT_ISA_AVX2 = 1, WCT_ISA_AVX512 = 2 };

// The ISA in use, detected on first call (WCT_CPU_PATH=avx2|portable may lower it).
wct_isa_t wct_isa();

// Whether the integer dot-product walks (AVX-512 VNNI with VBMI's byte permutes; packed_gemv_int.cc) are in use:
// the ISA is AVX-512, the CPU has both, and WCT_CPU_PATH is not "avx512" (which keeps AVX-512 to its
// floating-point kernels, so that tests can compare the two).
bool wct_int8_dot();

#define WCT_INLINE inline __attribute__((always_inline))
#define WCT_TARGET_AVX512 __attribute__((target("avx512f,avx512dq,avx512bw,avx512vl,avx2,fma,f16c")))
#define WCT_TARGET_AVX2 __attribute__((target("avx2,fma,f16c")))

// WCT_MULTIVERSION(ret, name, (params...), (args...)) requires `name##_body` taking the same params.
#define WCT_MULTIVERSION(ret, name, params, args)                                 \
  WCT_TARGET_AVX512 static ret name##_avx512 params { return name##_body args; } \
  WCT_TARGET_AVX2 static ret name##_avx2 params { return name##_body args; }     \
  static ret name##_portable params { return name##_body args; }                 \
  static ret name params {                                                       \
    switch (wct_isa()) {                                                         \
      case WCT_ISA_AVX512: return name##_avx512 args;                            \
      case WCT_ISA_AVX2: return name##_avx2 args;                                \
      default: return name##_portable args;                                      \
    }                                                                            \
  }

// Work below this many elements runs on one thread (OpenMP fork/join costs a few microseconds).
constexpr int64_t WCT_PAR_MIN = 1 << 15;
