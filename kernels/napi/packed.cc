// N-API binding of the packed low-bit weight kernels (kernels/include/wct_packed.h). A packed weight
// crosses as thirteen positional arguments (rows, cols, bits, groupSize, qweight, scales, zeros, perm,
// weakIdx, weak, outlierRowPtr, outlierColIdx, outlierValues; the last three all null when there are no
// outliers; the TS wrapper in src/native/packed.ts unpacks the PackedWeight). Everything a kernel indexes
// with is checked here (sizes, perm and weakIdx ranges, weakIdx order, the CSR row pointers and the outlier
// columns' range and order within a row), so a bad call throws a TypeError / RangeError and never reads or
// writes out of bounds. The semantic checks that cost a pass over the codes (zero points in range, weak and
// outlier positions at their zero point, outliers off the weak columns) are validatePacked's, in TS.
#include <napi.h>

#include <string>

#include "args.h"
#include "register.h"
#include "wct_packed.h"

namespace wct_napi {
namespace {

using Napi::CallbackInfo;
using Napi::Value;

// bits at position i: one of the supported widths.
int read_bits(const Args& A, size_t i) {
  const int64_t bits = A.dim(i, "bits");
  if (!wct_packed_bits_ok(bits)) A.range_error("bits must be 2, 3, 4 or 8, got " + std::to_string(bits));
  return int(bits);
}

// cols at position i: at least 1.
int64_t read_cols(const Args& A, size_t i) {
  const int64_t cols = A.dim(i, "cols");
  if (cols < 1) A.range_error("cols must be at least 1, got " + std::to_string(cols));
  return cols;
}

// Indices in [0, cols); strictly increasing when `sorted`.
void check_indices(const Args& A, const char* name, const int32_t* idx, int64_t n, int64_t cols, bool sorted) {
  for (int64_t j = 0; j < n; j++) {
    if (idx[j] < 0 || idx[j] >= cols) {
      A.range_error(std::string(name) + "[" + std::to_string(j) + "] = " + std::to_string(idx[j]) + " is outside [0, " +
                    std::to_string(cols) + ")");
    }
    if (sorted && j > 0 && idx[j] <= idx[j - 1]) {
      A.range_error(std::string(name) + " must be sorted ascending without repeats (at " + std::to_string(j) + ")");
    }
  }
}

// The CSR outliers at arguments i0 .. i0+2 (rowPtr, colIdx, values; all null for none) into w: N+1 row
// pointers from 0, non-decreasing; nnz = rowPtr[N]; colIdx (at least nnz) in [0, cols), strictly ascending
// within each row; values at least nnz.
void read_outliers(const Args& A, size_t i0, wct_packed& w) {
  const bool none = A.is_null(i0);
  if (none != A.is_null(i0 + 1) || none != A.is_null(i0 + 2))
    A.type_error("outlierRowPtr, outlierColIdx and outlierValues must be all null or all arrays");
  if (none) return;
  const int32_t* rp = A.i32(i0, "outlierRowPtr", A.mul({w.rows, 1}) + 1);
  if (rp[0] != 0) A.range_error("outlierRowPtr[0] = " + std::to_string(rp[0]) + ", expected 0");
  for (int64_t r = 0; r < w.rows; r++) {
    if (rp[r + 1] < rp[r]) {
      A.range_error("outlierRowPtr decreases at row " + std::to_string(r) + " (" + std::to_string(rp[r]) + " then " +
                    std::to_string(rp[r + 1]) + ")");
    }
  }
  w.nnz = rp[w.rows];
  const int32_t* ci = A.i32(i0 + 1, "outlierColIdx", w.nnz);
  w.outlier_values = A.f32(i0 + 2, "outlierValues", w.nnz);
  w.outlier_row_ptr = rp;
  w.outlier_col_idx = ci;
  // one fast pass on every call; the message from the faulty row
  const int64_t bad = wct_packed_check_outlier_columns(&w);
  if (bad >= 0) {
    const int64_t r = bad;
    for (int64_t p = rp[r]; p < rp[r + 1]; p++) {
      if (ci[p] < 0 || ci[p] >= w.cols) {
        A.range_error("outlierColIdx[" + std::to_string(p) + "] = " + std::to_string(ci[p]) + " (row " +
                      std::to_string(r) + ") is outside [0, " + std::to_string(w.cols) + ")");
      }
      if (p > rp[r] && ci[p] <= ci[p - 1]) {
        A.range_error("outlierColIdx must be sorted ascending without repeats within a row (at " + std::to_string(p) +
                      ", row " + std::to_string(r) + ")");
      }
    }
    A.range_error("outlierColIdx is malformed in row " + std::to_string(r));  // (not reached)
  }
}

// The packed weight at arguments i0 .. i0+12.
wct_packed read_packed(const Args& A, size_t i0) {
  wct_packed w{};
  w.rows = A.dim(i0, "rows");
  w.cols = read_cols(A, i0 + 1);
  w.bits = read_bits(A, i0 + 2);
  w.group = A.dim(i0 + 3, "groupSize");
  if (w.group < 1) A.range_error("groupSize must be at least 1, got " + std::to_string(w.group));
  const int64_t groups = A.mul({w.rows, wct_packed_groups(w.cols, w.group)});
  w.qweight = A.u8(i0 + 4, "qweight", A.mul({w.rows, wct_packed_row_bytes(w.cols, w.bits)}));
  w.scales = A.f32(i0 + 5, "scales", groups);
  w.zeros = A.u8(i0 + 6, "zeros", groups);
  if (!A.is_null(i0 + 7)) {
    w.perm = A.i32(i0 + 7, "perm", w.cols);
    check_indices(A, "perm", w.perm, w.cols, w.cols, false);
  }
  w.n_out = int64_t(A.length(i0 + 8, "weakIdx"));
  w.weak_idx = A.i32(i0 + 8, "weakIdx", w.n_out);
  check_indices(A, "weakIdx", w.weak_idx, w.n_out, w.cols, true);
  w.weak = A.f32(i0 + 9, "weak", A.mul({w.rows, w.n_out}));
  read_outliers(A, i0 + 10, w);
  return w;
}

constexpr size_t PACKED_ARGS = 13;

// A Uint8Array the kernel writes (Args hands out byte arrays as const: elsewhere they are only read).
uint8_t* u8_out(const Args& A, size_t i, const char* name, int64_t need) { return const_cast<uint8_t*>(A.u8(i, name, need)); }

Value PackedLayout(const CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  Napi::Array bits = Napi::Array::New(env);
  for (uint32_t b = 0, n = 0; b < 32; b++) {
    if (wct_packed_bits_ok(b)) bits.Set(n++, Napi::Number::New(env, b));
  }
  o.Set("blockCodes", Napi::Number::New(env, WCT_PACKED_BLOCK_CODES));
  o.Set("bits", bits);
  o.Set("version", Napi::Number::New(env, WCT_PACKED_LAYOUT_VERSION));
  return o;
}

// (codes, qweight, rows, cols, bits)
Value PackCodes(const CallbackInfo& info) {
  Args A(info, "packCodes");
  check_argc(A, info, 5);
  const int64_t rows = A.dim(2, "rows"), cols = A.dim(3, "cols");
  const int bits = read_bits(A, 4);
  const int64_t n = A.mul({rows, cols});
  const uint8_t* codes = A.u8(0, "codes", n);
  uint8_t* q = u8_out(A, 1, "qweight", A.mul({rows, wct_packed_row_bytes(cols, bits)}));
  for (int64_t i = 0; i < n; i++) {
    if (codes[i] >> bits) {
      A.range_error("codes[" + std::to_string(i) + "] = " + std::to_string(codes[i]) + " needs more than " +
                    std::to_string(bits) + " bits");
    }
  }
  wct_pack_codes(codes, q, rows, cols, bits);
  return info.Env().Undefined();
}

// (qweight, codes, rows, cols, bits)
Value UnpackCodes(const CallbackInfo& info) {
  Args A(info, "unpackCodes");
  check_argc(A, info, 5);
  const int64_t rows = A.dim(2, "rows"), cols = A.dim(3, "cols");
  const int bits = read_bits(A, 4);
  const uint8_t* q = A.u8(0, "qweight", A.mul({rows, wct_packed_row_bytes(cols, bits)}));
  uint8_t* codes = u8_out(A, 1, "codes", A.mul({rows, cols}));
  wct_unpack_codes(q, codes, rows, cols, bits);
  return info.Env().Undefined();
}

// (packed..., out)
Value PackedDequantize(const CallbackInfo& info) {
  Args A(info, "dequantize");
  check_argc(A, info, PACKED_ARGS + 1);
  const wct_packed w = read_packed(A, 0);
  wct_packed_dequantize(&w, A.f32(PACKED_ARGS, "out", A.mul({w.rows, w.cols})));
  return info.Env().Undefined();
}

// (packed..., x, m, y): y [m, rows] = x [m, cols] W_hat^T
Value PackedMatmul(const CallbackInfo& info) {
  Args A(info, "packedMatmul");
  check_argc(A, info, PACKED_ARGS + 3);
  const wct_packed w = read_packed(A, 0);
  const int64_t m = A.dim(PACKED_ARGS + 1, "m");
  const float* x = A.f32(PACKED_ARGS, "x", A.mul({m, w.cols}));
  float* y = A.f32(PACKED_ARGS + 2, "y", A.mul({m, w.rows}));
  wct_packed_matmul(&w, x, m, y);
  return info.Env().Undefined();
}

// (packed..., dy, m, dx): dx [m, cols] = dy [m, rows] W_hat
Value PackedMatmulT(const CallbackInfo& info) {
  Args A(info, "packedMatmulT");
  check_argc(A, info, PACKED_ARGS + 3);
  const wct_packed w = read_packed(A, 0);
  const int64_t m = A.dim(PACKED_ARGS + 1, "m");
  const float* dy = A.f32(PACKED_ARGS, "dy", A.mul({m, w.rows}));
  float* dx = A.f32(PACKED_ARGS + 2, "dx", A.mul({m, w.cols}));
  wct_packed_matmul_t(&w, dy, m, dx);
  return info.Env().Undefined();
}

// (packed..., dy, x, m, dweak): dweak [rows, nOut] += dy^T x[:, weakIdx]
Value PackedWeakGrad(const CallbackInfo& info) {
  Args A(info, "weakGrad");
  check_argc(A, info, PACKED_ARGS + 4);
  const wct_packed w = read_packed(A, 0);
  const int64_t m = A.dim(PACKED_ARGS + 2, "m");
  const float* dy = A.f32(PACKED_ARGS, "dy", A.mul({m, w.rows}));
  const float* x = A.f32(PACKED_ARGS + 1, "x", A.mul({m, w.cols}));
  float* dweak = A.f32(PACKED_ARGS + 3, "dweak", A.mul({w.rows, w.n_out}));
  wct_packed_weak_grad(&w, dy, x, m, dweak);
  return info.Env().Undefined();
}

// (packed..., dy, x, m, dvalues): dvalues [nnz] += sum_i dy[i, row_p] x[i, colIdx[p]]
Value PackedOutlierGrad(const CallbackInfo& info) {
  Args A(info, "outlierGrad");
  check_argc(A, info, PACKED_ARGS + 4);
  const wct_packed w = read_packed(A, 0);
  const int64_t m = A.dim(PACKED_ARGS + 2, "m");
  const float* dy = A.f32(PACKED_ARGS, "dy", A.mul({m, w.rows}));
  const float* x = A.f32(PACKED_ARGS + 1, "x", A.mul({m, w.cols}));
  float* dvalues = A.f32(PACKED_ARGS + 3, "dvalues", w.nnz);
  wct_packed_outlier_grad(&w, dy, x, m, dvalues);
  return info.Env().Undefined();
}

// (bytes, iters) -> bytes per second
Value BenchReadBandwidth(const CallbackInfo& info) {
  Args A(info, "benchReadBandwidth");
  check_argc(A, info, 2);
  const int64_t bytes = A.dim(0, "bytes"), iters = A.dim(1, "iters");
  if (bytes < 8 || bytes > (int64_t(1) << 36) || iters < 1) A.range_error("bytes must be in [8, 2^36] and iters >= 1");
  return Napi::Number::New(info.Env(), wct_bench_read_bandwidth(bytes, iters));
}

}  // namespace

void register_packed(Napi::Env env, Napi::Object exports) {
  const std::pair<const char*, Value (*)(const CallbackInfo&)> fns[] = {
      {"packedLayout", PackedLayout},
      {"packCodes", PackCodes},
      {"unpackCodes", UnpackCodes},
      {"packedDequantize", PackedDequantize},
      {"packedMatmul", PackedMatmul},
      {"packedMatmulT", PackedMatmulT},
      {"packedWeakGrad", PackedWeakGrad},
      {"packedOutlierGrad", PackedOutlierGrad},
      {"benchReadBandwidth", BenchReadBandwidth},
  };
  for (const auto& f : fns) exports.Set(f.first, Napi::Function::New(env, f.second, f.first));
}

}  // namespace wct_napi
