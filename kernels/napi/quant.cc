#include "register.h"

namespace wct_napi {

void register_quant(Napi::Env env, Napi::Object exports) {}

}  // namespace wct_napi
