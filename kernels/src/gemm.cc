// GEMM: fp32 through cblas_sgemm on the caller's buffers; bf16 through oneDNN or its emulation.
#include "wct_gemm.h"

#include <omp.h>

#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <oneapi/dnnl/dnnl.hpp>
#include <stdexcept>
#include <string>
#include <tuple>
#include <vector>

#include "blas.h"
#include "dispatch.h"

// Batches of small products run one sgemm per thread (OpenBLAS goes single-threaded inside an OpenMP
// region); larger products (over SMALL_GEMM_MACS multiply-adds) run one after another, each sgemm
// using every thread.
static constexpr int64_t SMALL_GEMM_MACS = int64_t(1) << 22;

void wct_gemm(const float* A, const float* B, float* C, wct_i64 batch, wct_i64 M, wct_i64 N, wct_i64 K,
              bool transA, bool transB, float alpha, float beta, wct_i64 strideA, wct_i64 strideB,
              wct_i64 strideC) {
  const int64_t lda = transA ? M : K, ldb = transB ? K : N;
  const bool disjointC = strideC >= M * N;
  if (batch > 1 && disjointC && M * N * K <= SMALL_GEMM_MACS && omp_get_max_threads() > 1) {
#pragma omp parallel for schedule(static)
    for (int64_t b = 0; b < batch; b++) {
      wct_sgemm_rm(transA, transB, M, N, K, alpha, A + b * strideA, lda, B + b * strideB, ldb, beta,
                   C + b * strideC, N);
    }
    return;
  }
  for (int64_t b = 0; b < batch; b++) {
    wct_sgemm_rm(transA, transB, M, N, K, alpha, A + b * strideA, lda, B + b * strideB, ldb, beta, C + b * strideC,
                 N);
  }
}

// ---- bf16 rounding ----

WCT_INLINE static uint32_t bf16_round_bits(uint32_t u) {
  if ((u & 0x7fffffffu) > 0x7f800000u) return (u | 0x00400000u) & 0xffff0000u;  // NaN stays (quiet) NaN
  return (u + 0x7fffu + ((u >> 16) & 1u)) & 0xffff0000u;                         // nearest, ties to even
}

WCT_INLINE static void round_bf16_rows_body(const float* x, float* out, int64_t n) {
  const uint32_t* in = reinterpret_cast<const uint32_t*>(x);
  uint32_t* o = reinterpret_cast<uint32_t*>(out);
  for (int64_t i = 0; i < n; i++) o[i] = bf16_round_bits(in[i]);
}
WCT_MULTIVERSION(void, round_bf16_rows, (const float* x, float* out, int64_t n), (x, out, n))

WCT_INLINE static void to_bf16_rows_body(const float* x, uint16_t* out, int64_t n) {
  const uint32_t* in = reinterpret_cast<const uint32_t*>(x);
  for (int64_t i = 0; i < n; i++) out[i] = uint16_t(bf16_round_bits(in[i]) >> 16);
}
WCT_MULTIVERSION(void, to_bf16_rows, (const float* x, uint16_t* out, int64_t n), (x, out, n))

void wct_round_bf16(const float* x, float* out, wct_i64 n) {
  const int64_t chunk = 1 << 16;
#pragma omp parallel for schedule(static) if (n >= WCT_PAR_MIN)
  for (int64_t c = 0; c < n; c += chunk) round_bf16_rows(x + c, out + c, std::min(chunk, n - c));
}

static void to_bf16(const float* x, uint16_t* out, int64_t n) {
  const int64_t chunk = 1 << 16;
#pragma omp parallel for schedule(static) if (n >= WCT_PAR_MIN)
  for (int64_t c = 0; c < n; c += chunk) to_bf16_rows(x + c, out + c, std::min(chunk, n - c));
}

// Elements one strided operand spans over the batch.
static int64_t extent(int64_t batch, int64_t stride, int64_t size) {
  return batch <= 0 || size == 0 ? 0 : (batch - 1) * stride + size;
}

// ---- oneDNN bf16 matmul, cached by shape ----

namespace {
using dnnl::memory;

struct Bf16Prim {
  dnnl::matmul prim;
  memory::desc a, b, c;
};
using Bf16Key = std::tuple<int64_t, int64_t, int64_t, bool, bool, float, float>;

dnnl::engine& cpu_engine() {
  static dnnl::engine eng(dnnl::engine::kind::cpu, 0);
  return eng;
}

// Throws dnnl::error when oneDNN has no implementation; returns null for a reference-only one (far
// slower than the emulation, so not worth using).
std::unique_ptr<Bf16Prim> make_bf16_prim(int64_t M, int64_t N, int64_t K, bool transA, bool transB, float alpha,
                                         float beta) {
  using dt = memory::data_type;
  memory::desc a({M, K}, dt::bf16, transA ? memory::dims{1, M} : memory::dims{K, 1});
  memory::desc b({K, N}, dt::bf16, transB ? memory::dims{1, K} : memory::dims{N, 1});
  memory::desc c({M, N}, dt::f32, memory::dims{N, 1});
  dnnl::primitive_attr attr;
  if (alpha != 1.0f) attr.set_output_scales(0, {alpha});
  if (beta != 0.0f) {
    dnnl::post_ops po;
    po.append_sum(beta);
    attr.set_post_ops(po);
  }
  dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(a, b, c), attr, cpu_engine());
  if (std::string(pd.impl_info_str()).rfind("ref", 0) == 0) return nullptr;
  return std::unique_ptr<Bf16Prim>(new Bf16Prim{dnnl::matmul(pd), a, b, c});
}

// The cached primitive for a shape, or null when oneDNN cannot run it natively (then we emulate).
Bf16Prim* bf16_prim(int64_t M, int64_t N, int64_t K, bool transA, bool transB, float alpha, float beta) {
  static std::mutex mu;
  static std::map<Bf16Key, std::unique_ptr<Bf16Prim>> cache;
  std::lock_guard<std::mutex> lock(mu);
  Bf16Key key{M, N, K, transA, transB, alpha, beta};
  auto it = cache.find(key);
  if (it != cache.end()) return it->second.get();
  std::unique_ptr<Bf16Prim> p;
  try {
    p = make_bf16_prim(M, N, K, transA, transB, alpha, beta);
  } catch (const dnnl::error&) {
    p = nullptr;
  }
  return cache.emplace(key, std::move(p)).first->second.get();
}
}  // namespace

bool wct_bf16_native(void) {
  static const bool native = bf16_prim(64, 64, 64, false, false, 1.0f, 0.0f) != nullptr;
  return native;
}

void wct_gemm_bf16(const float* A, const float* B, float* C, wct_i64 batch, wct_i64 M, wct_i64 N, wct_i64 K,
                   bool transA, bool transB, float alpha, float beta, wct_i64 strideA, wct_i64 strideB,
                   wct_i64 strideC) {
  if (batch <= 0 || M == 0 || N == 0) return;
  const int64_t nA = extent(batch, strideA, M * K), nB = extent(batch, strideB, K * N);
  Bf16Prim* prim = (K > 0 && wct_bf16_native()) ? bf16_prim(M, N, K, transA, transB, alpha, beta) : nullptr;
  if (prim == nullptr) {
    std::vector<float> a(nA), b(nB);
    wct_round_bf16(A, a.data(), nA);
    wct_round_bf16(B, b.data(), nB);
    wct_gemm(a.data(), b.data(), C, batch, M, N, K, transA, transB, alpha, beta, strideA, strideB, strideC);
    return;
  }
  std::vector<uint16_t> a(nA), b(nB);
  to_bf16(A, a.data(), nA);
  to_bf16(B, b.data(), nB);
  try {
    dnnl::stream stream(cpu_engine());
    for (int64_t i = 0; i < batch; i++) {
      memory am(prim->a, cpu_engine(), a.data() + i * strideA);
      memory bm(prim->b, cpu_engine(), b.data() + i * strideB);
      memory cm(prim->c, cpu_engine(), C + i * strideC);
      prim->prim.execute(stream, {{DNNL_ARG_SRC, am}, {DNNL_ARG_WEIGHTS, bm}, {DNNL_ARG_DST, cm}});
    }
    stream.wait();
  } catch (const dnnl::error& e) {
    throw std::runtime_error(std::string("gemmBf16: oneDNN matmul failed: ") + e.what());
  }
}

double wct_bench_sgemm_direct(wct_i64 M, wct_i64 N, wct_i64 K, wct_i64 iters) {
  std::vector<float> a(M * K), b(K * N), c(M * N);
  for (size_t i = 0; i < a.size(); i++) a[i] = float(i % 17) * 0.0625f - 0.5f;
  for (size_t i = 0; i < b.size(); i++) b[i] = float(i % 13) * 0.0625f - 0.375f;
  auto call = [&] {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (blasint)M, (blasint)N, (blasint)K, 1.0f, a.data(),
                (blasint)K, b.data(), (blasint)N, 0.0f, c.data(), (blasint)N);
  };
  call();  // warm-up
  auto t0 = std::chrono::steady_clock::now();
  for (int64_t i = 0; i < iters; i++) call();
  std::chrono::duration<double> dt = std::chrono::steady_clock::now() - t0;
  return dt.count() / double(iters > 0 ? iters : 1);
}
