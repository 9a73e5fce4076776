// Bindings of the optimizer kernels (kernels/src/adamw.cc): the fused AdamW update (one tensor, or a list of
// them in one call) and the sum of squares of global-norm clipping. src/native/addon.ts wraps them as the
// Kernels `adamw`, `adamwMany` and `sumSquaresInto`.
#include <vector>

#include "args.h"
#include "register.h"
#include "wct_optim.h"

namespace wct_napi {

namespace {

// Arguments 4..11: lr, beta1, beta2, eps, weightDecay, c1, c2, gradScale.
wct_adamw_params read_params(const Args& A) {
  return {A.number(4, "lr"),          A.number(5, "beta1"), A.number(6, "beta2"),  A.number(7, "eps"),
          A.number(8, "weightDecay"), A.number(9, "c1"),    A.number(10, "c2"),    A.number(11, "gradScale")};
}

// (theta, g, m, v, lr, beta1, beta2, eps, weightDecay, c1, c2, gradScale): g, m, v at least theta's length
Value Adamw(const CallbackInfo& info) {
  Args A(info, "adamw");
  check_argc(A, info, 12);
  const int64_t n = int64_t(A.length(0, "theta"));
  float* theta = A.f32(0, "theta", n);
  const float* g = A.f32(1, "g", n);
  float* m = A.f32(2, "m", n);
  float* v = A.f32(3, "v", n);
  const wct_adamw_params p = read_params(A);
  wct_adamw(theta, g, m, v, n, &p);
  return info.Env().Undefined();
}

// (thetas, gs, ms, vs, lr, beta1, beta2, eps, weightDecay, c1, c2, gradScale): four arrays of Float32Arrays of
// one length; gs[i], ms[i], vs[i] at least thetas[i]'s length
Value AdamwMany(const CallbackInfo& info) {
  Args A(info, "adamwMany");
  check_argc(A, info, 12);
  const Napi::Array thetas = A.list(0, "thetas", -1);
  const int64_t count = int64_t(thetas.Length());
  const Napi::Array gs = A.list(1, "gs", count), ms = A.list(2, "ms", count), vs = A.list(3, "vs", count);
  std::vector<wct_adamw_tensor> tensors(static_cast<size_t>(count));
  for (uint32_t k = 0; k < uint32_t(count); k++) {
    const int64_t n = A.entry_length(thetas, k, "thetas");
    tensors[k] = {A.f32_entry(thetas, k, "thetas", n), A.f32_entry(gs, k, "gs", n), A.f32_entry(ms, k, "ms", n),
                  A.f32_entry(vs, k, "vs", n), n};
  }
  const wct_adamw_params p = read_params(A);
  wct_adamw_many(tensors.data(), count, &p);
  return info.Env().Undefined();
}

// (x) -> sum of x[i]^2 (a double, in an order independent of the thread count)
Value SumSquares(const CallbackInfo& info) {
  Args A(info, "sumSquares");
  check_argc(A, info, 1);
  const int64_t n = int64_t(A.length(0, "x"));
  return Napi::Number::New(info.Env(), wct_sum_squares(A.f32(0, "x", n), n));
}

}  // namespace

void register_optim(Napi::Env env, Napi::Object exports) {
  exports.Set("adamw", Napi::Function::New(env, Adamw, "adamw"));
  exports.Set("adamwMany", Napi::Function::New(env, AdamwMany, "adamwMany"));
  exports.Set("sumSquares", Napi::Function::New(env, SumSquares, "sumSquares"));
}

}  // namespace wct_napi
