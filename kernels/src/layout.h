// Internal: strided-layout helpers for the broadcasting kernels (elementwise.cc).
#pragma once
#include <cstdint>

#include "wct_elementwise.h"

// A shape with up to three stride vectors (e.g. out, a, b), simplified by coalesce().
struct WctLayout {
  int rank = 0;
  int arrays = 0;
  int64_t shape[WCT_MAX_RANK];
  int64_t stride[3][WCT_MAX_RANK];
};

// Drops size-1 dims and merges dim d into d+1 wherever every array is contiguous across them, so the
// innermost dim is as long as possible. Leaves rank >= 1 (a scalar becomes shape [1]).
inline void wct_coalesce(WctLayout& L) {
  WctLayout out;
  out.arrays = L.arrays;
  for (int d = 0; d < L.rank; d++) {
    if (L.shape[d] == 1) continue;
    int r = out.rank;
    bool merge = r > 0;
    for (int a = 0; a < L.arrays && merge; a++) merge = out.stride[a][r - 1] == L.stride[a][d] * L.shape[d];
    if (merge) {
      out.shape[r - 1] *= L.shape[d];
      for (int a = 0; a < L.arrays; a++) out.stride[a][r - 1] = L.stride[a][d];
    } else {
      out.shape[r] = L.shape[d];
      for (int a = 0; a < L.arrays; a++) out.stride[a][r] = L.stride[a][d];
      out.rank = r + 1;
    }
  }
  if (out.rank == 0) {
    out.rank = 1;
    out.shape[0] = 1;
    for (int a = 0; a < L.arrays; a++) out.stride[a][0] = 0;
  }
  L = out;
}

// Offsets of the flat index `i` over dims [0, rank) of L, for each array.
inline void wct_offsets(const WctLayout& L, int rank, int64_t i, int64_t* off) {
  for (int a = 0; a < L.arrays; a++) off[a] = 0;
  for (int d = rank - 1; d >= 0; d--) {
    int64_t idx = i % L.shape[d];
    i /= L.shape[d];
    for (int a = 0; a < L.arrays; a++) off[a] += idx * L.stride[a][d];
  }
}

// Elements in dims [0, rank) of L.
inline int64_t wct_count(const WctLayout& L, int rank) {
  int64_t n = 1;
  for (int d = 0; d < rank; d++) n *= L.shape[d];
  return n;
}
