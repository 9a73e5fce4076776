// N-API binding of the wct kernels. Zero-copy: every buffer argument is a TypedArray whose data pointer
// is handed straight to the kernel. Arguments are positional numbers (the TS wrapper in
// src/native/addon.ts unpacks the dims objects); every size is validated before any kernel runs, and a
// bad argument throws a TypeError / RangeError naming the function and the argument. Buffers are read
// into locals in argument order, so the first bad argument is the one reported.
#include <fcntl.h>
#include <napi.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstdint>
#include <limits>
#include <string>

#include "args.h"
#include "register.h"
#include "wct_attention.h"
#include "wct_common.h"
#include "wct_cross_entropy.h"
#include "wct_dropout.h"
#include "wct_elementwise.h"
#include "wct_embedding.h"
#include "wct_gemm.h"
#include "wct_norms.h"
#include "wct_rope.h"
#include "wct_softmax.h"

namespace {

using Napi::CallbackInfo;
using Napi::Value;
using wct_napi::Args;
using wct_napi::check_argc;
using wct_napi::span;

// ---- GEMM ----

// (a, b, c, batch, m, n, k, transA, transB, alpha, beta, strideA, strideB, strideC)
template <bool BF16>
Value Gemm(const CallbackInfo& info) {
  Args A(info, BF16 ? "gemmBf16" : "gemm");
  check_argc(A, info, 14);
  const int64_t batch = A.dim(3, "batch"), m = A.dim(4, "m"), n = A.dim(5, "n"), k = A.dim(6, "k");
  const bool tA = A.boolean(7, "transA"), tB = A.boolean(8, "transB");
  const float alpha = float(A.number(9, "alpha")), beta = float(A.number(10, "beta"));
  const int64_t sA = A.dim(11, "strideA"), sB = A.dim(12, "strideB"), sC = A.dim(13, "strideC");
  const int64_t blasMax = std::numeric_limits<int32_t>::max();
  if (m > blasMax || n > blasMax || k > blasMax) A.range_error("m, n and k must be below 2^31 (BLAS int)");
  auto extent = [&](int64_t stride, int64_t size) {
    return batch == 0 || size == 0 ? int64_t(0) : A.mul({batch - 1, stride}) + size;
  };
  const float* a = A.f32(0, "a", extent(sA, A.mul({m, k})));
  const float* b = A.f32(1, "b", extent(sB, A.mul({k, n})));
  float* c = A.f32(2, "c", extent(sC, A.mul({m, n})));
  (BF16 ? wct_gemm_bf16 : wct_gemm)(a, b, c, batch, m, n, k, tA, tB, alpha, beta, sA, sB, sC);
  return info.Env().Undefined();
}

// (a, c, n, k, alpha, beta): a [k, n], c [n, n]; the upper triangle of c = alpha a^T a + beta c
Value Syrk(const CallbackInfo& info) {
  Args A(info, "syrk");
  check_argc(A, info, 6);
  const int64_t n = A.dim(2, "n"), k = A.dim(3, "k");
  const int64_t blasMax = std::numeric_limits<int32_t>::max();
  if (n > blasMax || k > blasMax) A.range_error("n and k must be below 2^31 (BLAS int)");
  const float* a = A.f32(0, "a", A.mul({k, n}));
  float* c = A.f32(1, "c", A.mul({n, n}));
  wct_syrk_upper(a, c, n, k, float(A.number(4, "alpha")), float(A.number(5, "beta")));
  return info.Env().Undefined();
}

// ---- elementwise ----

// (op, a, b, out, shape, stridesA, stridesB)
Value Binary(const CallbackInfo& info) {
  Args A(info, "binary");
  check_argc(A, info, 7);
  const int64_t op = A.dim(0, "op");
  if (op > WCT_DIV) A.range_error("unknown op " + std::to_string(op));
  int64_t shape[WCT_MAX_RANK], sa[WCT_MAX_RANK], sb[WCT_MAX_RANK];
  const int rank = A.read_dims(4, "shape", shape);
  if (A.read_dims(5, "stridesA", sa) != rank || A.read_dims(6, "stridesB", sb) != rank) {
    A.range_error("shape, stridesA and stridesB must have the same length");
  }
  int64_t total = 1;
  for (int d = 0; d < rank; d++) total = A.mul({total, shape[d]});
  const float* a = A.f32(1, "a", span(A, rank, shape, sa));
  const float* b = A.f32(2, "b", span(A, rank, shape, sb));
  float* out = A.f32(3, "out", total);
  wct_binary(int(op), a, b, out, rank, shape, sa, sb);
  return info.Env().Undefined();
}

// (x, out, alpha, beta)
Value Affine(const CallbackInfo& info) {
  Args A(info, "affine");
  check_argc(A, info, 4);
  const int64_t n = int64_t(A.length(0, "x"));
  const float* x = A.f32(0, "x", n);
  float* out = A.f32(1, "out", n);
  wct_affine(x, out, n, float(A.number(2, "alpha")), float(A.number(3, "beta")));
  return info.Env().Undefined();
}

// (x, out, shape, stridesOut)
Value SumTo(const CallbackInfo& info) {
  Args A(info, "sumTo");
  check_argc(A, info, 4);
  int64_t shape[WCT_MAX_RANK], so[WCT_MAX_RANK];
  const int rank = A.read_dims(2, "shape", shape);
  if (A.read_dims(3, "strides", so) != rank) A.range_error("shape and strides must have the same length");
  int64_t total = 1;
  for (int d = 0; d < rank; d++) total = A.mul({total, shape[d]});
  const float* x = A.f32(0, "x", total);
  float* out = A.f32(1, "out", span(A, rank, shape, so));
  wct_sum_to(x, out, rank, shape, so);
  return info.Env().Undefined();
}

// (x) -> number
Value SumAll(const CallbackInfo& info) {
  Args A(info, "sumAll");
  check_argc(A, info, 1);
  const int64_t n = int64_t(A.length(0, "x"));
  return Napi::Number::New(info.Env(), wct_sum_all(A.f32(0, "x", n), n));
}

// (op, x, out)
Value UnaryForward(const CallbackInfo& info) {
  Args A(info, "unaryForward");
  check_argc(A, info, 3);
  const int64_t op = A.dim(0, "op");
  if (op > WCT_NEG) A.range_error("unknown op " + std::to_string(op));
  const int64_t n = int64_t(A.length(1, "x"));
  const float* x = A.f32(1, "x", n);
  wct_unary_forward(int(op), x, A.f32(2, "out", n), n);
  return info.Env().Undefined();
}

// (op, x, dy, dx)
Value UnaryBackward(const CallbackInfo& info) {
  Args A(info, "unaryBackward");
  check_argc(A, info, 4);
  const int64_t op = A.dim(0, "op");
  if (op > WCT_NEG) A.range_error("unknown op " + std::to_string(op));
  const int64_t n = int64_t(A.length(1, "x"));
  const float* x = A.f32(1, "x", n);
  const float* dy = A.f32(2, "dy", n);
  wct_unary_backward(int(op), x, dy, A.f32(3, "dx", n), n);
  return info.Env().Undefined();
}

// ---- norms ----

// (x, w, out, rstd, rows, cols, eps)
Value RmsnormForward(const CallbackInfo& info) {
  Args A(info, "rmsnormForward");
  check_argc(A, info, 7);
  const int64_t N = A.dim(4, "rows"), C = A.dim(5, "cols"), NC = A.mul({N, C});
  const float* x = A.f32(0, "x", NC);
  const float* w = A.f32(1, "w", C);
  float* out = A.f32(2, "out", NC);
  float* rstd = A.f32(3, "rstd", N);
  wct_rmsnorm_forward(x, w, out, rstd, N, C, float(A.number(6, "eps")));
  return info.Env().Undefined();
}

// (x, w, rstd, dy, dx, dw, rows, cols)
Value RmsnormBackward(const CallbackInfo& info) {
  Args A(info, "rmsnormBackward");
  check_argc(A, info, 8);
  const int64_t N = A.dim(6, "rows"), C = A.dim(7, "cols"), NC = A.mul({N, C});
  const float* x = A.f32(0, "x", NC);
  const float* w = A.f32(1, "w", C);
  const float* rstd = A.f32(2, "rstd", N);
  const float* dy = A.f32(3, "dy", NC);
  float* dx = A.f32(4, "dx", NC);
  float* dw = A.f32(5, "dw", C);
  wct_rmsnorm_backward(x, w, rstd, dy, dx, dw, N, C);
  return info.Env().Undefined();
}

// (x, w, b, out, mean, rstd, rows, cols, eps)
Value LayernormForward(const CallbackInfo& info) {
  Args A(info, "layernormForward");
  check_argc(A, info, 9);
  const int64_t N = A.dim(6, "rows"), C = A.dim(7, "cols"), NC = A.mul({N, C});
  const float* x = A.f32(0, "x", NC);
  const float* w = A.f32(1, "w", C);
  const float* b = A.f32(2, "b", C);
  float* out = A.f32(3, "out", NC);
  float* mean = A.f32(4, "mean", N);
  float* rstd = A.f32(5, "rstd", N);
  wct_layernorm_forward(x, w, b, out, mean, rstd, N, C, float(A.number(8, "eps")));
  return info.Env().Undefined();
}

// (x, w, mean, rstd, dy, dx, dw, db, rows, cols)
Value LayernormBackward(const CallbackInfo& info) {
  Args A(info, "layernormBackward");
  check_argc(A, info, 10);
  const int64_t N = A.dim(8, "rows"), C = A.dim(9, "cols"), NC = A.mul({N, C});
  const float* x = A.f32(0, "x", NC);
  const float* w = A.f32(1, "w", C);
  const float* mean = A.f32(2, "mean", N);
  const float* rstd = A.f32(3, "rstd", N);
  const float* dy = A.f32(4, "dy", NC);
  float* dx = A.f32(5, "dx", NC);
  float* dw = A.f32(6, "dw", C);
  float* db = A.f32(7, "db", C);
  wct_layernorm_backward(x, w, mean, rstd, dy, dx, dw, db, N, C);
  return info.Env().Undefined();
}

// ---- softmax, rope ----

// (x, out, rows, cols)
Value SoftmaxForward(const CallbackInfo& info) {
  Args A(info, "softmaxForward");
  check_argc(A, info, 4);
  const int64_t N = A.dim(2, "rows"), C = A.dim(3, "cols"), NC = A.mul({N, C});
  const float* x = A.f32(0, "x", NC);
  float* out = A.f32(1, "out", NC);
  wct_softmax_forward(x, out, N, C);
  return info.Env().Undefined();
}

// (y, dy, dx, rows, cols)
Value SoftmaxBackward(const CallbackInfo& info) {
  Args A(info, "softmaxBackward");
  check_argc(A, info, 5);
  const int64_t N = A.dim(3, "rows"), C = A.dim(4, "cols"), NC = A.mul({N, C});
  const float* y = A.f32(0, "y", NC);
  const float* dy = A.f32(1, "dy", NC);
  float* dx = A.f32(2, "dx", NC);
  wct_softmax_backward(y, dy, dx, N, C);
  return info.Env().Undefined();
}

// (x, out, cos, sin, batch, seq, heads, headDim, inverse)
Value Rope(const CallbackInfo& info) {
  Args A(info, "rope");
  check_argc(A, info, 9);
  const int64_t B = A.dim(4, "batch"), T = A.dim(5, "seq"), H = A.dim(6, "heads"), D = A.dim(7, "headDim");
  if (D % 2 != 0) A.range_error("headDim must be even, got " + std::to_string(D));
  const int64_t n = A.mul({B, T, H, D}), nt = A.mul({T, D / 2});
  const float* x = A.f32(0, "x", n);
  float* out = A.f32(1, "out", n);
  const float* cos = A.f32(2, "cos", nt);
  const float* sin = A.f32(3, "sin", nt);
  wct_rope(x, out, cos, sin, B, T, H, D, A.boolean(8, "inverse"));
  return info.Env().Undefined();
}

// ---- attention ----

struct AttnDims {
  int64_t B, Tq, Tk, H, Hkv, D;
  float scale;
};

AttnDims attn_dims(const Args& A, size_t i) {
  AttnDims d{A.dim(i, "batch"), A.dim(i + 1, "tq"), A.dim(i + 2, "tk"), A.dim(i + 3, "heads"),
             A.dim(i + 4, "kvHeads"), A.dim(i + 5, "headDim"), float(A.number(i + 6, "scale"))};
  if (d.Hkv == 0 ? d.H != 0 : d.H % d.Hkv != 0) {
    A.range_error("heads (" + std::to_string(d.H) + ") must be a multiple of kvHeads (" + std::to_string(d.Hkv) + ")");
  }
  const int64_t blasMax = std::numeric_limits<int32_t>::max();
  if (A.mul({d.H, d.D}) > blasMax || d.Tq > blasMax || d.Tk > blasMax) A.range_error("sizes must be below 2^31");
  return d;
}

// (q, k, v, out, probs|null, batch, tq, tk, heads, kvHeads, headDim, scale)
Value AttentionForward(const CallbackInfo& info) {
  Args A(info, "attentionForward");
  check_argc(A, info, 12);
  const AttnDims d = attn_dims(A, 5);
  const int64_t nq = A.mul({d.B, d.Tq, d.H, d.D}), nk = A.mul({d.B, d.Tk, d.Hkv, d.D});
  const float* q = A.f32(0, "q", nq);
  const float* k = A.f32(1, "k", nk);
  const float* v = A.f32(2, "v", nk);
  float* out = A.f32(3, "out", nq);
  float* probs = A.is_null(4) ? nullptr : A.f32(4, "probs", A.mul({d.B, d.H, d.Tq, d.Tk}));
  wct_attention_forward(q, k, v, out, probs, d.B, d.Tq, d.Tk, d.H, d.Hkv, d.D, d.scale);
  return info.Env().Undefined();
}

// (q, k, v, probs, dout, dq, dk, dv, batch, tq, tk, heads, kvHeads, headDim, scale)
Value AttentionBackward(const CallbackInfo& info) {
  Args A(info, "attentionBackward");
  check_argc(A, info, 15);
  const AttnDims d = attn_dims(A, 8);
  const int64_t nq = A.mul({d.B, d.Tq, d.H, d.D}), nk = A.mul({d.B, d.Tk, d.Hkv, d.D});
  const float* q = A.f32(0, "q", nq);
  const float* k = A.f32(1, "k", nk);
  const float* v = A.f32(2, "v", nk);
  const float* probs = A.f32(3, "probs", A.mul({d.B, d.H, d.Tq, d.Tk}));
  const float* dout = A.f32(4, "dout", nq);
  float* dq = A.f32(5, "dq", nq);
  float* dk = A.f32(6, "dk", nk);
  float* dv = A.f32(7, "dv", nk);
  wct_attention_backward(q, k, v, probs, dout, dq, dk, dv, d.B, d.Tq, d.Tk, d.H, d.Hkv, d.D, d.scale);
  return info.Env().Undefined();
}

// ---- cross-entropy, embedding, dropout ----

void check_targets(const Args& A, const int32_t* targets, int64_t N, int64_t V, int32_t ignore) {
  const int64_t bad = wct_cross_entropy_check(targets, N, V, ignore);
  if (bad >= 0) {
    A.range_error("target " + std::to_string(targets[bad]) + " at row " + std::to_string(bad) +
                  " is out of range [0, " + std::to_string(V) + ") and is not ignoreIndex " + std::to_string(ignore));
  }
}

// (logits, targets, losses, lse, rows, vocab, ignoreIndex)
Value CrossEntropyForward(const CallbackInfo& info) {
  Args A(info, "crossEntropyForward");
  check_argc(A, info, 7);
  const int64_t N = A.dim(4, "rows"), V = A.dim(5, "vocab");
  const int32_t ignore = A.int32(6, "ignoreIndex");
  const float* logits = A.f32(0, "logits", A.mul({N, V}));
  const int32_t* targets = A.i32(1, "targets", N);
  float* losses = A.f32(2, "losses", N);
  float* lse = A.f32(3, "lse", N);
  check_targets(A, targets, N, V, ignore);
  wct_cross_entropy_forward(logits, targets, losses, lse, N, V, ignore);
  return info.Env().Undefined();
}

// (logits, targets, lse, rowScale, dlogits, rows, vocab, ignoreIndex)
Value CrossEntropyBackward(const CallbackInfo& info) {
  Args A(info, "crossEntropyBackward");
  check_argc(A, info, 8);
  const int64_t N = A.dim(5, "rows"), V = A.dim(6, "vocab");
  const int32_t ignore = A.int32(7, "ignoreIndex");
  const float* logits = A.f32(0, "logits", A.mul({N, V}));
  const int32_t* targets = A.i32(1, "targets", N);
  const float* lse = A.f32(2, "lse", N);
  const float scale = float(A.number(3, "rowScale"));
  float* dlogits = A.f32(4, "dlogits", A.mul({N, V}));
  check_targets(A, targets, N, V, ignore);
  wct_cross_entropy_backward(logits, targets, lse, scale, dlogits, N, V, ignore);
  return info.Env().Undefined();
}

void check_ids(const Args& A, const int32_t* ids, int64_t N, int64_t V) {
  const int64_t bad = wct_embedding_check(ids, N, V);
  if (bad >= 0) {
    A.range_error("id " + std::to_string(ids[bad]) + " at position " + std::to_string(bad) +
                  " is out of range for vocab size V=" + std::to_string(V));
  }
}

// (table, ids, out, rows, dim, vocab)
Value EmbeddingForward(const CallbackInfo& info) {
  Args A(info, "embeddingForward");
  check_argc(A, info, 6);
  const int64_t N = A.dim(3, "rows"), C = A.dim(4, "dim"), V = A.dim(5, "vocab");
  const float* table = A.f32(0, "table", A.mul({V, C}));
  const int32_t* ids = A.i32(1, "ids", N);
  float* out = A.f32(2, "out", A.mul({N, C}));
  check_ids(A, ids, N, V);
  wct_embedding_forward(table, ids, out, N, C);
  return info.Env().Undefined();
}

// (dy, ids, dTable, rows, dim, vocab)
Value EmbeddingBackward(const CallbackInfo& info) {
  Args A(info, "embeddingBackward");
  check_argc(A, info, 6);
  const int64_t N = A.dim(3, "rows"), C = A.dim(4, "dim"), V = A.dim(5, "vocab");
  const float* dy = A.f32(0, "dy", A.mul({N, C}));
  const int32_t* ids = A.i32(1, "ids", N);
  float* dTable = A.f32(2, "dTable", A.mul({V, C}));
  check_ids(A, ids, N, V);
  wct_embedding_backward(dy, ids, dTable, N, C);
  return info.Env().Undefined();
}

// (x, mask, scale, out)
Value Dropout(const CallbackInfo& info) {
  Args A(info, "dropout");
  check_argc(A, info, 4);
  const int64_t n = int64_t(A.length(0, "x"));
  const float* x = A.f32(0, "x", n);
  const uint8_t* mask = A.u8(1, "mask", n);
  float* out = A.f32(3, "out", n);
  wct_dropout(x, mask, float(A.number(2, "scale")), out, n);
  return info.Env().Undefined();
}

// ---- runtime ----

Value Bf16Native(const CallbackInfo& info) { return Napi::Boolean::New(info.Env(), wct_bf16_native()); }

// (m, n, k, iters) -> seconds per call
Value BenchSgemmDirect(const CallbackInfo& info) {
  Args A(info, "benchSgemmDirect");
  check_argc(A, info, 4);
  const int64_t m = A.dim(0, "m"), n = A.dim(1, "n"), k = A.dim(2, "k"), iters = A.dim(3, "iters");
  if (m == 0 || n == 0 || k == 0 || m > 65536 || n > 65536 || k > 65536) A.range_error("m, n, k must be in [1, 65536]");
  return Napi::Number::New(info.Env(), wct_bench_sgemm_direct(m, n, k, iters));
}

Value Threads(const CallbackInfo& info) { return Napi::Number::New(info.Env(), wct_threads()); }

Value SetThreads(const CallbackInfo& info) {
  Args A(info, "setThreads");
  check_argc(A, info, 1);
  const int64_t n = A.dim(0, "n");
  if (n < 1 || n > 4096) A.range_error("n must be in [1, 4096], got " + std::to_string(n));
  wct_set_threads(int(n));
  return info.Env().Undefined();
}

Value CpuPath(const CallbackInfo& info) { return Napi::String::New(info.Env(), wct_cpu_path()); }

Value BlasThreads(const CallbackInfo& info) { return Napi::Number::New(info.Env(), wct_blas_threads()); }

// () -> { compiler, openblas, onednn, openmp, cpuFeatures } (strings; see wct_build_info)
Value BuildInfo(const CallbackInfo& info) {
  const wct_build_info b = wct_build();
  Napi::Object o = Napi::Object::New(info.Env());
  o.Set("compiler", b.compiler);
  o.Set("openblas", b.openblas);
  o.Set("onednn", b.onednn);
  o.Set("openmp", b.openmp);
  o.Set("cpuFeatures", b.cpu_features);
  return o;
}

// () -> fd: points the process's stderr (fd 2) at /dev/null and returns a duplicate of the old one for
// restoreStderr, or -1 (nothing changed) when that fails. For library chatter that has no switch: Dawn prints
// adapter warnings to stderr from C++ while an adapter is requested.
Value MuteStderr(const CallbackInfo& info) {
  std::fflush(stderr);
  const int saved = dup(2);
  const int null_fd = open("/dev/null", O_WRONLY);
  if (saved < 0 || null_fd < 0 || dup2(null_fd, 2) < 0) {
    if (saved >= 0) close(saved);
    if (null_fd >= 0) close(null_fd);
    return Napi::Number::New(info.Env(), -1);
  }
  close(null_fd);
  return Napi::Number::New(info.Env(), saved);
}

// (fd) -> undefined: makes fd (from muteStderr) the process's stderr again and closes it; -1 does nothing.
Value RestoreStderr(const CallbackInfo& info) {
  Args A(info, "restoreStderr");
  check_argc(A, info, 1);
  const double fd = A.number(0, "fd");
  if (fd >= 0 && fd <= 1 << 30 && std::floor(fd) == fd) {
    std::fflush(stderr);
    dup2(int(fd), 2);
    close(int(fd));
  }
  return info.Env().Undefined();
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  const std::pair<const char*, Value (*)(const CallbackInfo&)> fns[] = {
      {"gemm", Gemm<false>},
      {"gemmBf16", Gemm<true>},
      {"syrk", Syrk},
      {"binary", Binary},
      {"affine", Affine},
      {"sumTo", SumTo},
      {"sumAll", SumAll},
      {"unaryForward", UnaryForward},
      {"unaryBackward", UnaryBackward},
      {"rmsnormForward", RmsnormForward},
      {"rmsnormBackward", RmsnormBackward},
      {"layernormForward", LayernormForward},
      {"layernormBackward", LayernormBackward},
      {"softmaxForward", SoftmaxForward},
      {"softmaxBackward", SoftmaxBackward},
      {"rope", Rope},
      {"attentionForward", AttentionForward},
      {"attentionBackward", AttentionBackward},
      {"crossEntropyForward", CrossEntropyForward},
      {"crossEntropyBackward", CrossEntropyBackward},
      {"embeddingForward", EmbeddingForward},
      {"embeddingBackward", EmbeddingBackward},
      {"dropout", Dropout},
      {"bf16Native", Bf16Native},
      {"benchSgemmDirect", BenchSgemmDirect},
      {"threads", Threads},
      {"setThreads", SetThreads},
      {"cpuPath", CpuPath},
      {"blasThreads", BlasThreads},
      {"buildInfo", BuildInfo},
      {"muteStderr", MuteStderr},
      {"restoreStderr", RestoreStderr},
  };
  for (const auto& f : fns) exports.Set(f.first, Napi::Function::New(env, f.second, f.first));
  wct_napi::register_packed(env, exports);
  wct_napi::register_quant(env, exports);
  wct_napi::register_optim(env, exports);
  return exports;
}

}  // namespace

NODE_API_MODULE(wct_native, Init)
