// Internal to the panel GEMM (packed_gemm*.cc).
#pragma once
#include <cstdint>

#include "wct_packed.h"

// out [k1-k0] = s * (code - z) for packed columns [k0, k1) of row r, as wct_packed_dequant_row (bit-identical)
// but vectorised where the ISA and the group size allow (packed_gemm_dequant.cc). On the calling thread.
void wct_packed_dequant_panel_row(const wct_packed* w, int64_t r, int64_t k0, int64_t k1, float* out);
