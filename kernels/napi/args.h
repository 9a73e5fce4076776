// Argument checking shared by the N-API bindings (addon.cc, packed.cc, quant.cc): every binding reads
// its arguments through Args, so bad calls become TypeError/RangeError naming the kernel and argument.
#pragma once

#include <napi.h>

#include <cmath>
#include <cstdint>
#include <string>

#include "wct_common.h"
#include "wct_elementwise.h"

namespace wct_napi {

using Napi::CallbackInfo;
using Napi::Value;

// Argument reader for one call: fn is the kernel name used in error messages.
class Args {
 public:
  Args(const CallbackInfo& info, const char* fn) : info_(info), env_(info.Env()), fn_(fn) {}

  [[noreturn]] void type_error(const std::string& msg) const { throw Napi::TypeError::New(env_, fn_ + (": " + msg)); }
  [[noreturn]] void range_error(const std::string& msg) const {
    throw Napi::RangeError::New(env_, fn_ + (": " + msg));
  }

  // A non-negative integer (a dim, a count or a stride).
  int64_t dim(size_t i, const char* name) const {
    const double x = number(i, name);
    if (!(x >= 0 && x <= 9007199254740991.0 && std::floor(x) == x)) {
      range_error(std::string(name) + " must be a non-negative integer, got " + num_str(x));
    }
    return int64_t(x);
  }

  int32_t int32(size_t i, const char* name) const {
    const double x = number(i, name);
    if (!(std::floor(x) == x && x >= -2147483648.0 && x <= 2147483647.0)) {
      range_error(std::string(name) + " must be a 32-bit integer, got " + num_str(x));
    }
    return int32_t(x);
  }

  double number(size_t i, const char* name) const {
    if (!info_[i].IsNumber()) type_error(std::string(name) + " must be a number, got " + describe(info_[i]));
    return info_[i].As<Napi::Number>().DoubleValue();
  }

  bool boolean(size_t i, const char* name) const {
    if (!info_[i].IsBoolean()) type_error(std::string(name) + " must be a boolean, got " + describe(info_[i]));
    return info_[i].As<Napi::Boolean>().Value();
  }

  // A Float32Array holding at least `need` elements.
  float* f32(size_t i, const char* name, int64_t need) const {
    return typed<float>(i, name, need, napi_float32_array, "Float32Array");
  }
  const int32_t* i32(size_t i, const char* name, int64_t need) const {
    return typed<int32_t>(i, name, need, napi_int32_array, "Int32Array");
  }
  const uint8_t* u8(size_t i, const char* name, int64_t need) const {
    return typed<uint8_t>(i, name, need, napi_uint8_array, "Uint8Array");
  }
  // A JS array of `count` elements (count < 0: any length); returns it.
  Napi::Array list(size_t i, const char* name, int64_t count) const {
    if (!info_[i].IsArray()) type_error(std::string(name) + " must be an array, got " + describe(info_[i]));
    Napi::Array a = info_[i].As<Napi::Array>();
    if (count >= 0 && int64_t(a.Length()) != count) {
      range_error(std::string(name) + " has " + std::to_string(a.Length()) + " entries, expected " +
                  std::to_string(count));
    }
    return a;
  }
  // Entry k of the array `list` (argument `name`), a Float32Array holding at least `need` elements.
  float* f32_entry(const Napi::Array& list, uint32_t k, const char* name, int64_t need) const {
    return typed<float>(list.Get(k), std::string(name) + "[" + std::to_string(k) + "]", need, napi_float32_array,
                        "Float32Array");
  }
  // The element count of entry k of `list`, which must be a typed array.
  int64_t entry_length(const Napi::Array& list, uint32_t k, const char* name) const {
    Value v = list.Get(k);
    if (!v.IsTypedArray()) {
      type_error(std::string(name) + "[" + std::to_string(k) + "] must be a typed array, got " + describe(v));
    }
    return int64_t(v.As<Napi::TypedArray>().ElementLength());
  }
  bool is_null(size_t i) const { return info_[i].IsNull() || info_[i].IsUndefined(); }
  size_t length(size_t i, const char* name) const {
    if (!info_[i].IsTypedArray()) type_error(std::string(name) + " must be a typed array, got " + describe(info_[i]));
    return info_[i].As<Napi::TypedArray>().ElementLength();
  }

  // A JS array of non-negative integers (shape / strides), at most WCT_MAX_RANK long.
  int read_dims(size_t i, const char* name, int64_t* out) const {
    if (!info_[i].IsArray()) type_error(std::string(name) + " must be an array of integers, got " + describe(info_[i]));
    Napi::Array a = info_[i].As<Napi::Array>();
    if (a.Length() > WCT_MAX_RANK) {
      range_error(std::string(name) + " has rank " + std::to_string(a.Length()) + ", the maximum is " +
                  std::to_string(WCT_MAX_RANK));
    }
    for (uint32_t d = 0; d < a.Length(); d++) {
      Value v = a.Get(d);
      const double x = v.IsNumber() ? v.As<Napi::Number>().DoubleValue() : -1.0;
      if (!(x >= 0 && x <= 9007199254740991.0 && std::floor(x) == x)) {
        range_error(std::string(name) + "[" + std::to_string(d) + "] must be a non-negative integer");
      }
      out[d] = int64_t(x);
    }
    return int(a.Length());
  }

  // Product of sizes, with overflow reported as a RangeError.
  int64_t mul(std::initializer_list<int64_t> xs) const {
    int64_t p = 1;
    for (int64_t x : xs) {
      if (__builtin_mul_overflow(p, x, &p) || p > (int64_t(1) << 53)) range_error("sizes overflow");
    }
    return p;
  }

  Napi::Env env() const { return env_; }

 private:
  template <class T>
  T* typed(size_t i, const char* name, int64_t need, napi_typedarray_type type, const char* type_name) const {
    return typed<T>(info_[i], name, need, type, type_name);
  }
  template <class T>
  T* typed(Value v, const std::string& name, int64_t need, napi_typedarray_type type, const char* type_name) const {
    if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != type) {
      type_error(name + " must be a " + type_name + ", got " + describe(v));
    }
    Napi::TypedArrayOf<T> a = v.As<Napi::TypedArrayOf<T>>();
    if (int64_t(a.ElementLength()) < need) {
      range_error(name + " has " + std::to_string(a.ElementLength()) + " elements, needs at least " +
                  std::to_string(need));
    }
    return a.Data();
  }

  static std::string num_str(double x) {
    std::string s = std::to_string(x);
    return s;
  }

  static std::string describe(const Value& v) {
    if (v.IsUndefined()) return "undefined";
    if (v.IsNull()) return "null";
    if (v.IsTypedArray()) {
      switch (v.As<Napi::TypedArray>().TypedArrayType()) {
        case napi_float32_array: return "Float32Array";
        case napi_float64_array: return "Float64Array";
        case napi_int32_array: return "Int32Array";
        case napi_uint8_array: return "Uint8Array";
        default: return "another typed array";
      }
    }
    if (v.IsArray()) return "Array";
    if (v.IsNumber()) return "number";
    if (v.IsBoolean()) return "boolean";
    if (v.IsString()) return "string";
    return "object";
  }

  const CallbackInfo& info_;
  Napi::Env env_;
  std::string fn_;
};

// Elements a strided operand spans: 0 when empty, else 1 + sum((shape[d] - 1) * stride[d]).
inline int64_t span(const Args& A, int rank, const int64_t* shape, const int64_t* stride) {
  int64_t last = 0;
  for (int d = 0; d < rank; d++) {
    if (shape[d] == 0) return 0;
    last += A.mul({shape[d] - 1, stride[d]});
  }
  return last + 1;
}

inline void check_argc(const Args& A, const CallbackInfo& info, size_t n) {
  if (info.Length() < n) {
    A.type_error("expected " + std::to_string(n) + " arguments, got " + std::to_string(info.Length()));
  }
}

}  // namespace wct_napi
