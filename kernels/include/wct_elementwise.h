// Elementwise family: broadcasting binary ops, scalar affine, reductions, activations.
#pragma once
#include "wct_common.h"

enum wct_binary_op { WCT_ADD = 0, WCT_SUB = 1, WCT_MUL = 2, WCT_DIV = 3 };
enum wct_unary_op { WCT_RELU = 0, WCT_GELU = 1, WCT_SILU = 2, WCT_EXP = 3, WCT_NEG = 4 };

#define WCT_MAX_RANK 8

// out (dense, `shape`, rank <= 8) = a op b, where a/b are read at sum(idx[d] * strides{A,B}[d])
// (stride 0 on broadcast dims). out may alias a or b when that input is dense with the out shape.
void wct_binary(int op, const float* a, const float* b, float* out, int rank, const wct_i64* shape,
                const wct_i64* stridesA, const wct_i64* stridesB);

// out[i] = x[i] * alpha + beta, i < n; out may alias x.
void wct_affine(const float* x, float* out, wct_i64 n, float alpha, float beta);

// x is dense with `shape`; out[sum(idx[d] * stridesOut[d])] += x[idx] (the adjoint of broadcasting:
// stridesOut are out's dense strides with 0 on the reduced dims, so distinct kept indices never share an
// out element; threads split the out elements). Sums are accumulated in double, then added to out.
void wct_sum_to(const float* x, float* out, int rank, const wct_i64* shape, const wct_i64* stridesOut);

// sum(x[0..n)), accumulated in double.
double wct_sum_all(const float* x, wct_i64 n);

// out[i] = f(x[i]); gelu is the exact erf form 0.5 x (1 + erf(x / sqrt 2)) (torch's default, not the
// tanh approximation), evaluated through erfc(|x| / sqrt 2) so the negative tail keeps its relative
// accuracy; exp / erfc are vectorised float approximations of ~1-2 ulp.
void wct_unary_forward(int op, const float* x, float* out, wct_i64 n);
// dx[i] = dy[i] * f'(x[i]), x being the forward input; relu'(0) = 0.
void wct_unary_backward(int op, const float* x, const float* dy, float* dx, wct_i64 n);
