// Quantizer cores: the asymmetric integer grid, its parameter search (min-max and OWQ's tuned clipping)
// and GPTQ's column sweep, with the arithmetic of the reference code (IST-DASLab/gptq, xvyaward/owq) as
// PyTorch runs it: every step in fp32, round half to even (nearbyintf in the default rounding mode), and
// no fused multiply-adds where the reference rounds a product before adding it.
//
// Glossary: R rows (output features), C columns (input features), W [R, C] row-major with row stride ld,
// maxq = 2^bits - 1, code = clamp(round(w / s) + z, 0, maxq), q = s * (code - z).
#pragma once
#include <cstdint>

#include "wct_common.h"

// Parameter search per row: min-max (grid ignored) or OWQ's "mse" clipping search over `grid`
// candidates of |x - q(x)|^2.4 (grid 100 for per-row params, 40 for groups in the reference).
enum wct_quant_tuning { WCT_TUNING_MINMAX = 0, WCT_TUNING_MSE = 1 };

// scale[r * ldp], zero[r * ldp] = the parameters of w[r * ld + 0 .. cols) for r < rows. cols >= 1,
// ld >= cols, finite inputs. zero is integer-valued in [0, maxq] (min-max: round(-xmin / s) lies there).
void wct_quant_find_params(const float* w, wct_i64 rows, wct_i64 cols, wct_i64 ld, wct_i64 ldp, int maxq,
                           int tuning, int grid, float* scale, float* zero);

// out[r, c] = q(w[r, c]) with row r's (scale[r], zero[r]); codes (may be null) = the integer codes.
// w, out, codes: [rows, cols] dense.
void wct_quant_fake(const float* w, wct_i64 rows, wct_i64 cols, const float* scale, const float* zero, int maxq,
                    float* out, uint8_t* codes);

struct wct_gptq_dims {
  wct_i64 rows;        // R
  wct_i64 cols;        // C: W is [R, C], H is [C, C]
  wct_i64 n_quant;     // the first n_quant columns are quantized; the rest (OWQ's weak columns) only compensated
  wct_i64 group_size;  // 0: one (scale, zero) per row from W[:, :n_quant]; else per group of columns
  wct_i64 block_size;  // the lazy-batch block (128 in the reference)
  int maxq;
  int tuning;       // wct_quant_tuning
  float percdamp;   // damping = percdamp * mean(diag H), 0.01 in the reference
};

// Where one wct_gptq call spent its time, in seconds (std::chrono::steady_clock): params = the per-row or
// per-group (scale, zero) searches (with the copies of each block into its scratch); hinv = damping and Hinv
// (the two Cholesky factorizations and the inverse); sweep = the row-parallel column sweeps inside the blocks;
// update = the later columns' sgemm updates.
struct wct_gptq_timing {
  double params_s;
  double hinv_s;
  double sweep_s;
  double update_s;
};

// GPTQ (IST-DASLab/gptq fasterquant as OWQ runs it) on W [R, C] and H [C, C], both already permuted.
// On return W[:, :n_quant] holds Q (dequantized), W[:, n_quant:] the error-compensated weak columns;
// codes [R, n_quant]; scale, zero [R, n_groups] (n_groups = 1 or ceil(n_quant / group_size)). H is used as
// workspace (destroyed). Returns the reference's loss sum((w - q)^2 / d^2) / 2.
// Throws std::runtime_error, before W is written, when the damped H is not positive definite.
// fixed (null: none) u8 [R, C]: elements kept out of the quantization (GWQ-style outliers): they count as 0 in
// every group's (or row's) parameters, get the zero point as code and 0 in Q, and their error is 0 (nothing is
// propagated from them); the caller stores their values apart. timing (null: not wanted) receives the split of
// the call's time; timing changes no result.
double wct_gptq(float* W, float* H, const wct_gptq_dims& d, const uint8_t* fixed, uint8_t* codes, float* scale,
                float* zero, wct_gptq_timing* timing);
