// Bindings of the optimizer kernels (kernels/src/adamw.cc): the fused AdamW update and the sum of squares
// of global-norm clipping. src/native/addon.ts wraps them as the Kernels `adamw` and `sumSquaresInto`.
#include "args.h"
#include "register.h"
#include "wct_optim.h"

namespace wct_napi {

namespace {

// (theta, g, m, v, lr, beta1, beta2, eps, weightDecay, c1, c2, gradScale): g, m, v at least theta's length
Value Adamw(const CallbackInfo& info) {
  Args A(info, "adamw");
  check_argc(A, info, 12);
  const int64_t n = int64_t(A.length(0, "theta"));
  float* theta = A.f32(0, "theta", n);
  const float* g = A.f32(1, "g", n);
  float* m = A.f32(2, "m", n);
  float* v = A.f32(3, "v", n);
  const wct_adamw_params p = {A.number(4, "lr"),  A.number(5, "beta1"),       A.number(6, "beta2"),
                              A.number(7, "eps"), A.number(8, "weightDecay"), A.number(9, "c1"),
                              A.number(10, "c2"), A.number(11, "gradScale")};
  wct_adamw(theta, g, m, v, n, &p);
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
  exports.Set("sumSquares", Napi::Function::New(env, SumSquares, "sumSquares"));
}

}  // namespace wct_napi
