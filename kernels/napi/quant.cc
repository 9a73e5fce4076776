// Bindings of the quantizer cores (kernels/src/quant_params.cc, kernels/src/gptq.cc). The TS side
// (src/quant/quantizer.ts, src/quant/gptq.ts) validates the options and names them in its errors; these
// checks guard the buffers and sizes again, so a raw call can never read or write out of bounds.
#include <string>

#include "args.h"
#include "register.h"
#include "wct_quant.h"

namespace wct_napi {

namespace {

int read_maxq(const Args& A, size_t i) {
  const int32_t bits = A.int32(i, "bits");
  if (bits != 2 && bits != 3 && bits != 4 && bits != 8) {
    A.range_error("bits must be 2, 3, 4 or 8, got " + std::to_string(bits));
  }
  return (1 << bits) - 1;
}

int read_tuning(const Args& A, size_t i) {
  const int32_t t = A.int32(i, "tuning");
  if (t != WCT_TUNING_MINMAX && t != WCT_TUNING_MSE) A.range_error("tuning must be 0 (minmax) or 1 (mse)");
  return t;
}

// (w, rows, cols, ld, bits, tuning, grid, scale, zero): scale, zero [rows]
Value QuantFindParams(const CallbackInfo& info) {
  Args A(info, "quantFindParams");
  check_argc(A, info, 9);
  const int64_t rows = A.dim(1, "rows"), cols = A.dim(2, "cols"), ld = A.dim(3, "ld");
  const int maxq = read_maxq(A, 4), tuning = read_tuning(A, 5);
  const int32_t grid = A.int32(6, "grid");
  if (cols < 1) A.range_error("cols must be at least 1");
  if (ld < cols) A.range_error("ld must be at least cols");
  if (grid < 1 || grid > 100000) A.range_error("grid must be in [1, 100000], got " + std::to_string(grid));
  const float* w = A.f32(0, "w", rows == 0 ? 0 : A.mul({rows - 1, ld}) + cols);
  float* scale = A.f32(7, "scale", rows);
  float* zero = A.f32(8, "zero", rows);
  wct_quant_find_params(w, rows, cols, ld, 1, maxq, tuning, grid, scale, zero);
  return info.Env().Undefined();
}

// (w, rows, cols, scale, zero, bits, out, codes | null): w, out, codes [rows, cols]; scale, zero [rows]
Value QuantFake(const CallbackInfo& info) {
  Args A(info, "quantFake");
  check_argc(A, info, 8);
  const int64_t rows = A.dim(1, "rows"), cols = A.dim(2, "cols"), n = A.mul({rows, cols});
  const float* w = A.f32(0, "w", n);
  const float* scale = A.f32(3, "scale", rows);
  const float* zero = A.f32(4, "zero", rows);
  const int maxq = read_maxq(A, 5);
  float* out = A.f32(6, "out", n);
  uint8_t* codes = A.is_null(7) ? nullptr : const_cast<uint8_t*>(A.u8(7, "codes", n));
  wct_quant_fake(w, rows, cols, scale, zero, maxq, out, codes);
  return info.Env().Undefined();
}

// (w, h, rows, cols, nQuant, bits, tuning, groupSize, blockSize, percdamp, codes, scale, zero, fixed)
//   -> { loss, paramsS, hinvS, sweepS, updateS } (wct_gptq's loss and its wct_gptq_timing)
// w [rows, cols] (overwritten), h [cols, cols] (destroyed), codes [rows, nQuant], scale/zero [rows, nGroups],
// fixed u8 [rows, cols] or null (elements kept out of the quantization)
Value Gptq(const CallbackInfo& info) {
  Args A(info, "gptq");
  check_argc(A, info, 14);
  wct_gptq_dims d{};
  d.rows = A.dim(2, "rows");
  d.cols = A.dim(3, "cols");
  d.n_quant = A.dim(4, "nQuant");
  d.maxq = read_maxq(A, 5);
  d.tuning = read_tuning(A, 6);
  d.group_size = A.dim(7, "groupSize");
  d.block_size = A.dim(8, "blockSize");
  const double percdamp = A.number(9, "percdamp");
  if (d.n_quant < 1 || d.n_quant > d.cols) A.range_error("nQuant must be in [1, cols]");
  if (d.block_size < 1) A.range_error("blockSize must be at least 1");
  if (d.cols > 2147483647) A.range_error("cols must be below 2^31 (LAPACK int)");
  if (!(percdamp >= 0.0 && percdamp < 1e6)) A.range_error("percdamp must be a finite number >= 0");
  d.percdamp = float(percdamp);
  const int64_t n_groups = d.group_size > 0 ? (d.n_quant + d.group_size - 1) / d.group_size : 1;
  float* w = A.f32(0, "w", A.mul({d.rows, d.cols}));
  float* h = A.f32(1, "h", A.mul({d.cols, d.cols}));
  uint8_t* codes = const_cast<uint8_t*>(A.u8(10, "codes", A.mul({d.rows, d.n_quant})));
  float* scale = A.f32(11, "scale", A.mul({d.rows, n_groups}));
  float* zero = A.f32(12, "zero", A.mul({d.rows, n_groups}));
  const uint8_t* fixed = A.is_null(13) ? nullptr : A.u8(13, "fixed", A.mul({d.rows, d.cols}));
  wct_gptq_timing t{};
  const double loss = wct_gptq(w, h, d, fixed, codes, scale, zero, &t);
  Napi::Object out = Napi::Object::New(info.Env());
  out.Set("loss", loss);
  out.Set("paramsS", t.params_s);
  out.Set("hinvS", t.hinv_s);
  out.Set("sweepS", t.sweep_s);
  out.Set("updateS", t.update_s);
  return out;
}

}  // namespace

void register_quant(Napi::Env env, Napi::Object exports) {
  exports.Set("quantFindParams", Napi::Function::New(env, QuantFindParams, "quantFindParams"));
  exports.Set("quantFake", Napi::Function::New(env, QuantFake, "quantFake"));
  exports.Set("gptq", Napi::Function::New(env, Gptq, "gptq"));
}

}  // namespace wct_napi
