// Binding families defined outside addon.cc; each adds its functions to the module's exports.
#pragma once

#include <napi.h>

namespace wct_napi {

// packed.cc: the packed low-bit weight format (pack/unpack, fused GEMV/GEMM, transposed product, weak grads).
void register_packed(Napi::Env env, Napi::Object exports);
// quant.cc: quantizer inner loops (min-max / clipping-search parameters, GPTQ column sweep).
void register_quant(Napi::Env env, Napi::Object exports);
// optim.cc: the optimizer kernels (fused AdamW, the sum of squares of gradient clipping).
void register_optim(Napi::Env env, Napi::Object exports);

}  // namespace wct_napi
