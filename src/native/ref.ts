/**
 * The reference kernels: plain loops over Float32Array | Float64Array, one straightforward formula per
 * kernel. They are the oracle of the native kernels in tests and the float64 engine of gradient checks,
 * so every backward here is the exact derivative of the forward next to it.
 *
 * Arithmetic is done in JS doubles and rounded when stored, so a Float64Array runs in float64 and a
 * Float32Array gets float32 outputs. Saved statistics (rstd, mean, lse) are read back from their
 * arrays before use, so the Float32 outputs use the same rounded statistics the backward will see,
 * as the native kernels do. Buffer sizes and ids are validated with the same messages as the addon.
 */
import type {
  AdamWStepParams,
  AttentionDims,
  BinaryOp,
  BroadcastDims,
  CrossEntropyDims,
  DropoutDraw,
  EmbeddingDims,
  FloatArray,
  GemmDims,
  Kernels,
  NormDims,
  RopeDims,
  RowDims,
  SyrkDims,
  UnaryOp,
} from './types.js';
import { eachAdamwTensor } from './types.js';
import { counterOf, mix32 } from '../util/rng.js';

type Indexable = FloatArray | Int32Array | Uint8Array;

/** Throws the addon's RangeError when `arr` holds fewer than `n` elements. */
function need(fn: string, name: string, arr: Indexable, n: number): void {
  if (arr.length < n) throw new RangeError(`${fn}: ${name} has ${arr.length} elements, needs at least ${n}`);
}

/** Elements a strided operand spans: 0 when empty, else 1 + sum((shape[d] - 1) * stride[d]). */
function span(shape: readonly number[], strides: readonly number[]): number {
  if (shape.some((s) => s === 0)) return 0;
  return 1 + shape.reduce((acc, s, d) => acc + (s - 1) * strides[d], 0);
}

function product(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** Calls f(flatIndex, offA, offB) for every index of `shape` in row-major order. */
function forEachIndex(
  shape: readonly number[],
  sa: readonly number[],
  sb: readonly number[],
  f: (i: number, offA: number, offB: number) => void,
): void {
  const total = product(shape);
  const idx = new Array<number>(shape.length).fill(0);
  let offA = 0;
  let offB = 0;
  for (let i = 0; i < total; i++) {
    f(i, offA, offB);
    for (let d = shape.length - 1; d >= 0; d--) {
      idx[d]++;
      offA += sa[d];
      offB += sb[d];
      if (idx[d] < shape[d]) break;
      offA -= sa[d] * shape[d];
      offB -= sb[d] * shape[d];
      idx[d] = 0;
    }
  }
}

/** erf to about 1e-16: the all-positive series erf(x) = 2/sqrt(pi) e^(-x^2) sum 2^n x^(2n+1) / (2n+1)!!
 *  below |x| = 3, and Laplace's continued fraction for erfc above. */
export function erf(x: number): number {
  if (Number.isNaN(x)) return NaN;
  const ax = Math.abs(x);
  if (ax >= 6) return Math.sign(x); // erfc(6) < 3e-17
  if (ax < 3) {
    let term = ax;
    let sum = ax;
    for (let n = 1; term > 1e-17 * sum; n++) {
      term *= (2 * ax * ax) / (2 * n + 1);
      sum += term;
    }
    return ((Math.sign(x) * 2) / Math.sqrt(Math.PI)) * Math.exp(-ax * ax) * sum;
  }
  // erfc(x) = e^(-x^2) / sqrt(pi) / (x + (1/2) / (x + (2/2) / (x + (3/2) / (x + ...)))), evaluated bottom-up.
  let f = ax;
  for (let k = 80; k >= 1; k--) f = ax + k / 2 / f;
  const erfc = Math.exp(-ax * ax) / Math.sqrt(Math.PI) / f;
  return Math.sign(x) * (1 - erfc);
}

const INV_SQRT2 = Math.SQRT1_2;
const INV_SQRT_2PI = 1 / Math.sqrt(2 * Math.PI);

function unaryF(op: UnaryOp, x: number): number {
  switch (op) {
    case 'relu':
      return x < 0 ? 0 : x;
    case 'gelu':
      return 0.5 * x * (1 + erf(x * INV_SQRT2));
    case 'silu':
      return x / (1 + Math.exp(-x));
    case 'exp':
      return Math.exp(x);
    case 'neg':
      return -x;
  }
}

function unaryDf(op: UnaryOp, x: number): number {
  switch (op) {
    case 'relu':
      return x > 0 ? 1 : 0;
    case 'gelu': // d/dx [x Phi(x)] = Phi(x) + x phi(x)
      return 0.5 * (1 + erf(x * INV_SQRT2)) + x * INV_SQRT_2PI * Math.exp(-0.5 * x * x);
    case 'silu': {
      const s = 1 / (1 + Math.exp(-x));
      return s * (1 + x * (1 - s));
    }
    case 'exp':
      return Math.exp(x);
    case 'neg':
      return -1;
  }
}

function binaryF(op: BinaryOp, x: number, y: number): number {
  switch (op) {
    case 'add':
      return x + y;
    case 'sub':
      return x - y;
    case 'mul':
      return x * y;
    case 'div':
      return x / y;
  }
}

/** Keys visible to query row i: j < visible(i), clamped to [0, tk]. */
function visibleKeys(i: number, tq: number, tk: number): number {
  return Math.min(tk, Math.max(0, i + (tk - tq) + 1));
}

/** Throws the addon's RangeError for the first id outside [0, vocab) (shared with the GPU kernels). */
export function checkIds(fn: string, ids: Int32Array, rows: number, vocab: number): void {
  for (let i = 0; i < rows; i++) {
    if (ids[i] < 0 || ids[i] >= vocab)
      throw new RangeError(`${fn}: id ${ids[i]} at position ${i} is out of range for vocab size V=${vocab}`);
  }
}

/** Throws the addon's RangeError for the first target outside [0, vocab) that is not ignoreIndex. */
export function checkTargets(fn: string, targets: Int32Array, d: CrossEntropyDims): void {
  for (let i = 0; i < d.rows; i++) {
    const t = targets[i];
    if (t !== d.ignoreIndex && (t < 0 || t >= d.vocab)) {
      throw new RangeError(
        `${fn}: target ${t} at row ${i} is out of range [0, ${d.vocab}) and is not ignoreIndex ${d.ignoreIndex}`,
      );
    }
  }
}

export const referenceKernels: Kernels = {
  name: 'reference',

  gemm(a, b, c, d: GemmDims) {
    const { batch, m, n, k, transA, transB, alpha, beta } = d;
    const extent = (stride: number, size: number) => (batch === 0 || size === 0 ? 0 : (batch - 1) * stride + size);
    need('gemm', 'a', a, extent(d.strideA, m * k));
    need('gemm', 'b', b, extent(d.strideB, k * n));
    need('gemm', 'c', c, extent(d.strideC, m * n));
    for (let bi = 0; bi < batch; bi++) {
      const oa = bi * d.strideA;
      const ob = bi * d.strideB;
      const oc = bi * d.strideC;
      for (let i = 0; i < m; i++) {
        for (let j = 0; j < n; j++) {
          let s = 0;
          for (let p = 0; p < k; p++) {
            const av = transA ? a[oa + p * m + i] : a[oa + i * k + p];
            const bv = transB ? b[ob + j * k + p] : b[ob + p * n + j];
            s += av * bv;
          }
          const ci = oc + i * n + j;
          c[ci] = beta === 0 ? alpha * s : alpha * s + beta * c[ci]; // beta 0: C is write-only, as BLAS
        }
      }
    }
  },

  syrk(a, c, d: SyrkDims) {
    const { n, k, alpha, beta } = d;
    need('syrk', 'a', a, k * n);
    need('syrk', 'c', c, n * n);
    for (let i = 0; i < n; i++) {
      for (let j = i; j < n; j++) {
        let s = 0;
        for (let p = 0; p < k; p++) s += a[p * n + i] * a[p * n + j];
        c[i * n + j] = beta === 0 ? alpha * s : alpha * s + beta * c[i * n + j]; // beta 0: write-only, as BLAS
      }
    }
  },

  binary(op, a, b, out, d: BroadcastDims) {
    need('binary', 'a', a, span(d.shape, d.stridesA));
    need('binary', 'b', b, span(d.shape, d.stridesB));
    need('binary', 'out', out, product(d.shape));
    forEachIndex(d.shape, d.stridesA, d.stridesB, (i, ia, ib) => {
      out[i] = binaryF(op, a[ia], b[ib]);
    });
  },

  affine(x, out, alpha, beta) {
    need('affine', 'out', out, x.length);
    for (let i = 0; i < x.length; i++) out[i] = x[i] * alpha + beta;
  },

  sumTo(x, out, d: BroadcastDims) {
    need('sumTo', 'x', x, product(d.shape));
    need('sumTo', 'out', out, span(d.shape, d.stridesA));
    const acc = new Float64Array(out.length);
    forEachIndex(d.shape, d.stridesA, d.stridesA, (i, io) => {
      acc[io] += x[i];
    });
    for (let j = 0; j < out.length; j++) out[j] += acc[j];
  },

  sumInto(x, out, scale) {
    need('sumInto', 'out', out, 1);
    let s = 0;
    for (let i = 0; i < x.length; i++) s += x[i];
    out[0] = s * scale;
  },

  sumSquaresInto(x, out) {
    need('sumSquaresInto', 'out', out, 1);
    let s = 0;
    for (let i = 0; i < x.length; i++) s += x[i] * x[i];
    out[0] += s;
  },

  broadcastScalar(x, out, scale) {
    need('broadcastScalar', 'x', x, 1);
    out.fill(x[0] * scale);
  },

  fill(out, value) {
    out.fill(value);
  },

  copy(src, srcOffset, dst, dstOffset, n) {
    need('copy', 'src', src, srcOffset + n);
    need('copy', 'dst', dst, dstOffset + n);
    dst.set(src.subarray(srcOffset, srcOffset + n), dstOffset);
  },

  scaleBy(x, s, alpha) {
    need('scaleBy', 's', s, 1);
    const f = alpha * s[0];
    for (let i = 0; i < x.length; i++) x[i] *= f;
  },

  accumulate(acc, x) {
    need('accumulate', 'acc', acc, x.length);
    for (let i = 0; i < x.length; i++) acc[i] += x[i];
  },

  adamw(theta, g, m, v, p: AdamWStepParams) {
    for (const [name, arr] of [
      ['g', g],
      ['m', m],
      ['v', v],
    ] as const)
      need('adamw', name, arr, theta.length);
    const { lr, beta1, beta2, eps, weightDecay, c1, c2, gradScale } = p;
    for (let j = 0; j < theta.length; j++) {
      // A clipped gradient is rounded to the parameter's precision first, as torch's in-place clip_grad_norm_.
      const gj = gradScale === 1 ? g[j] : Math.fround(g[j] * gradScale);
      theta[j] -= lr * weightDecay * theta[j];
      m[j] = beta1 * m[j] + (1 - beta1) * gj;
      v[j] = beta2 * v[j] + (1 - beta2) * gj * gj;
      theta[j] -= (lr * (m[j] / c1)) / (Math.sqrt(v[j] / c2) + eps);
    }
  },

  adamwMany(thetas, gs, ms, vs, p) {
    eachAdamwTensor('adamwMany', thetas, gs, ms, vs, (theta, g, m, v) => referenceKernels.adamw(theta, g, m, v, p));
  },

  unaryForward(op, x, out) {
    need('unaryForward', 'out', out, x.length);
    for (let i = 0; i < x.length; i++) out[i] = unaryF(op, x[i]);
  },

  unaryBackward(op, x, dy, dx) {
    need('unaryBackward', 'dy', dy, x.length);
    need('unaryBackward', 'dx', dx, x.length);
    for (let i = 0; i < x.length; i++) dx[i] = dy[i] * unaryDf(op, x[i]);
  },

  rmsnormForward(x, w, out, rstd, d: NormDims) {
    const { rows, cols: C, eps } = d;
    need('rmsnormForward', 'x', x, rows * C);
    need('rmsnormForward', 'w', w, C);
    need('rmsnormForward', 'out', out, rows * C);
    need('rmsnormForward', 'rstd', rstd, rows);
    for (let n = 0; n < rows; n++) {
      const o = n * C;
      let ss = 0;
      for (let i = 0; i < C; i++) ss += x[o + i] * x[o + i];
      rstd[n] = 1 / Math.sqrt(ss / C + eps);
      const r = rstd[n];
      for (let i = 0; i < C; i++) out[o + i] = x[o + i] * r * w[i];
    }
  },

  rmsnormBackward(x, w, rstd, dy, dx, dw, d: NormDims) {
    const { rows, cols: C } = d;
    for (const [name, arr, len] of [
      ['x', x, rows * C],
      ['w', w, C],
      ['rstd', rstd, rows],
      ['dy', dy, rows * C],
      ['dx', dx, rows * C],
      ['dw', dw, C],
    ] as const) {
      need('rmsnormBackward', name, arr, len);
    }
    // y_i = x_i r w_i with r = (mean(x^2) + eps)^(-1/2), dr/dx_i = -r^3 x_i / C
    for (let n = 0; n < rows; n++) {
      const o = n * C;
      const r = rstd[n];
      let s = 0;
      for (let i = 0; i < C; i++) s += dy[o + i] * w[i] * x[o + i];
      const k = (r * r * r * s) / C;
      for (let i = 0; i < C; i++) {
        dx[o + i] = r * w[i] * dy[o + i] - x[o + i] * k;
        dw[i] += dy[o + i] * x[o + i] * r;
      }
    }
  },

  layernormForward(x, w, b, out, mean, rstd, d: NormDims) {
    const { rows, cols: C, eps } = d;
    for (const [name, arr, len] of [
      ['x', x, rows * C],
      ['w', w, C],
      ['b', b, C],
      ['out', out, rows * C],
      ['mean', mean, rows],
      ['rstd', rstd, rows],
    ] as const) {
      need('layernormForward', name, arr, len);
    }
    for (let n = 0; n < rows; n++) {
      const o = n * C;
      let s = 0;
      for (let i = 0; i < C; i++) s += x[o + i];
      const mu = s / C;
      let v = 0;
      for (let i = 0; i < C; i++) v += (x[o + i] - mu) * (x[o + i] - mu);
      mean[n] = mu;
      rstd[n] = 1 / Math.sqrt(v / C + eps);
      const m = mean[n];
      const r = rstd[n];
      for (let i = 0; i < C; i++) out[o + i] = (x[o + i] - m) * r * w[i] + b[i];
    }
  },

  layernormBackward(x, w, mean, rstd, dy, dx, dw, db, d: NormDims) {
    const { rows, cols: C } = d;
    for (const [name, arr, len] of [
      ['x', x, rows * C],
      ['w', w, C],
      ['mean', mean, rows],
      ['rstd', rstd, rows],
      ['dy', dy, rows * C],
      ['dx', dx, rows * C],
      ['dw', dw, C],
      ['db', db, C],
    ] as const) {
      need('layernormBackward', name, arr, len);
    }
    // xhat = (x - mean) r, g = dy w: dx = r (g - mean(g) - xhat mean(g xhat))
    for (let n = 0; n < rows; n++) {
      const o = n * C;
      const m = mean[n];
      const r = rstd[n];
      let sg = 0;
      let sgx = 0;
      for (let i = 0; i < C; i++) {
        const g = dy[o + i] * w[i];
        sg += g;
        sgx += g * (x[o + i] - m) * r;
      }
      for (let i = 0; i < C; i++) {
        const xhat = (x[o + i] - m) * r;
        dx[o + i] = r * (dy[o + i] * w[i] - sg / C - (xhat * sgx) / C);
        dw[i] += dy[o + i] * xhat;
        db[i] += dy[o + i];
      }
    }
  },

  softmaxForward(x, out, d: RowDims) {
    const { rows, cols: C } = d;
    need('softmaxForward', 'x', x, rows * C);
    need('softmaxForward', 'out', out, rows * C);
    for (let n = 0; n < rows; n++) softmaxRow(x, out, n * C, C);
  },

  softmaxBackward(y, dy, dx, d: RowDims) {
    const { rows, cols: C } = d;
    need('softmaxBackward', 'y', y, rows * C);
    need('softmaxBackward', 'dy', dy, rows * C);
    need('softmaxBackward', 'dx', dx, rows * C);
    for (let n = 0; n < rows; n++) {
      const o = n * C;
      let s = 0;
      for (let i = 0; i < C; i++) s += dy[o + i] * y[o + i];
      for (let i = 0; i < C; i++) dx[o + i] = y[o + i] * (dy[o + i] - s);
    }
  },

  rope(x, out, cos, sin, d: RopeDims, inverse) {
    const { batch, seq, heads, headDim: D } = d;
    if (D % 2 !== 0) throw new RangeError(`rope: headDim must be even, got ${D}`);
    const h = D / 2;
    need('rope', 'x', x, batch * seq * heads * D);
    need('rope', 'out', out, batch * seq * heads * D);
    need('rope', 'cos', cos, seq * h);
    need('rope', 'sin', sin, seq * h);
    const sign = inverse ? -1 : 1; // the inverse rotates by -angle: the transpose, i.e. the backward
    for (let b = 0; b < batch; b++) {
      for (let t = 0; t < seq; t++) {
        for (let hd = 0; hd < heads; hd++) {
          const o = ((b * seq + t) * heads + hd) * D;
          for (let i = 0; i < h; i++) {
            const c = cos[t * h + i];
            const s = sign * sin[t * h + i];
            const x1 = x[o + i];
            const x2 = x[o + i + h];
            out[o + i] = x1 * c - x2 * s;
            out[o + i + h] = x2 * c + x1 * s;
          }
        }
      }
    }
  },

  attentionForward(q, k, v, out, probs, d: AttentionDims) {
    const { batch: B, tq, tk, heads: H, kvHeads: Hkv, headDim: D, scale } = d;
    checkAttention('attentionForward', d);
    need('attentionForward', 'q', q, B * tq * H * D);
    need('attentionForward', 'k', k, B * tk * Hkv * D);
    need('attentionForward', 'v', v, B * tk * Hkv * D);
    need('attentionForward', 'out', out, B * tq * H * D);
    if (probs !== null) need('attentionForward', 'probs', probs, B * H * tq * tk);
    const group = H / Hkv;
    const p = probs ?? new Float64Array(B * H * tq * tk);
    for (let b = 0; b < B; b++) {
      for (let h = 0; h < H; h++) {
        const kvh = Math.floor(h / group);
        for (let i = 0; i < tq; i++) {
          const qo = ((b * tq + i) * H + h) * D;
          const po = ((b * H + h) * tq + i) * tk;
          const nVis = visibleKeys(i, tq, tk);
          for (let j = 0; j < tk; j++) {
            let s = 0;
            if (j < nVis) {
              const ko = ((b * tk + j) * Hkv + kvh) * D;
              for (let e = 0; e < D; e++) s += q[qo + e] * k[ko + e];
            }
            p[po + j] = scale * s;
          }
          softmaxRow(p, p, po, nVis);
          for (let j = nVis; j < tk; j++) p[po + j] = 0;
          for (let e = 0; e < D; e++) {
            let s = 0;
            for (let j = 0; j < nVis; j++) s += p[po + j] * v[((b * tk + j) * Hkv + kvh) * D + e];
            out[qo + e] = s;
          }
        }
      }
    }
  },

  attentionBackward(q, k, v, probs, dout, dq, dk, dv, d: AttentionDims) {
    const { batch: B, tq, tk, heads: H, kvHeads: Hkv, headDim: D, scale } = d;
    checkAttention('attentionBackward', d);
    for (const [name, arr, len] of [
      ['q', q, B * tq * H * D],
      ['k', k, B * tk * Hkv * D],
      ['v', v, B * tk * Hkv * D],
      ['probs', probs, B * H * tq * tk],
      ['dout', dout, B * tq * H * D],
      ['dq', dq, B * tq * H * D],
      ['dk', dk, B * tk * Hkv * D],
      ['dv', dv, B * tk * Hkv * D],
    ] as const) {
      need('attentionBackward', name, arr, len);
    }
    const group = H / Hkv;
    dq.fill(0, 0, B * tq * H * D);
    dk.fill(0, 0, B * tk * Hkv * D);
    dv.fill(0, 0, B * tk * Hkv * D);
    const dS = new Float64Array(tk);
    for (let b = 0; b < B; b++) {
      for (let h = 0; h < H; h++) {
        const kvh = Math.floor(h / group);
        for (let i = 0; i < tq; i++) {
          const qo = ((b * tq + i) * H + h) * D;
          const po = ((b * H + h) * tq + i) * tk;
          // dP_j = <dout_i, v_j>, dv_j += P_ij dout_i; dS = P (dP - sum_j P_ij dP_j)
          let rowDot = 0;
          for (let j = 0; j < tk; j++) {
            const vo = ((b * tk + j) * Hkv + kvh) * D;
            let dp = 0;
            for (let e = 0; e < D; e++) {
              dp += dout[qo + e] * v[vo + e];
              dv[vo + e] += probs[po + j] * dout[qo + e];
            }
            dS[j] = dp;
            rowDot += dp * probs[po + j];
          }
          for (let j = 0; j < tk; j++) dS[j] = probs[po + j] * (dS[j] - rowDot);
          // scores = scale q_i . k_j: dq_i += scale dS_j k_j, dk_j += scale dS_j q_i
          for (let j = 0; j < tk; j++) {
            const ko = ((b * tk + j) * Hkv + kvh) * D;
            for (let e = 0; e < D; e++) {
              dq[qo + e] += scale * dS[j] * k[ko + e];
              dk[ko + e] += scale * dS[j] * q[qo + e];
            }
          }
        }
      }
    }
  },

  crossEntropyForward(logits, targets, losses, lse, d: CrossEntropyDims) {
    const { rows, vocab: V, ignoreIndex } = d;
    need('crossEntropyForward', 'logits', logits, rows * V);
    need('crossEntropyForward', 'targets', targets, rows);
    need('crossEntropyForward', 'losses', losses, rows);
    need('crossEntropyForward', 'lse', lse, rows);
    checkTargets('crossEntropyForward', targets, d);
    for (let n = 0; n < rows; n++) {
      const o = n * V;
      let mx = -Infinity;
      for (let i = 0; i < V; i++) mx = Math.max(mx, logits[o + i]);
      let s = 0;
      for (let i = 0; i < V; i++) s += Math.exp(logits[o + i] - mx);
      lse[n] = mx + Math.log(s);
      losses[n] = targets[n] === ignoreIndex ? 0 : lse[n] - logits[o + targets[n]];
    }
  },

  crossEntropyBackward(logits, targets, lse, rowScale, dlogits, d: CrossEntropyDims) {
    const { rows, vocab: V, ignoreIndex } = d;
    need('crossEntropyBackward', 'logits', logits, rows * V);
    need('crossEntropyBackward', 'targets', targets, rows);
    need('crossEntropyBackward', 'lse', lse, rows);
    need('crossEntropyBackward', 'dlogits', dlogits, rows * V);
    checkTargets('crossEntropyBackward', targets, d);
    for (let n = 0; n < rows; n++) {
      const o = n * V;
      const t = targets[n];
      for (let i = 0; i < V; i++) {
        dlogits[o + i] = t === ignoreIndex ? 0 : (Math.exp(logits[o + i] - lse[n]) - (i === t ? 1 : 0)) * rowScale;
      }
    }
  },

  embeddingForward(table, ids, out, d: EmbeddingDims) {
    const { rows, dim: C, vocab: V } = d;
    need('embeddingForward', 'table', table, V * C);
    need('embeddingForward', 'ids', ids, rows);
    need('embeddingForward', 'out', out, rows * C);
    checkIds('embeddingForward', ids, rows, V);
    for (let n = 0; n < rows; n++) {
      for (let i = 0; i < C; i++) out[n * C + i] = table[ids[n] * C + i];
    }
  },

  embeddingBackward(dy, ids, dTable, d: EmbeddingDims) {
    const { rows, dim: C, vocab: V } = d;
    need('embeddingBackward', 'dy', dy, rows * C);
    need('embeddingBackward', 'ids', ids, rows);
    need('embeddingBackward', 'dTable', dTable, V * C);
    checkIds('embeddingBackward', ids, rows, V);
    for (let n = 0; n < rows; n++) {
      for (let i = 0; i < C; i++) dTable[ids[n] * C + i] += dy[n * C + i];
    }
  },

  dropout(x, draw, scale, out) {
    need('dropout', 'out', out, x.length);
    const mask = dropoutMask(draw, x.length);
    for (let i = 0; i < x.length; i++) out[i] = x[i] * mask[i] * scale;
  },
};

/** The 0/1 keep bytes of the first n elements under `draw` (the DropoutDraw contract). */
export function dropoutMask(draw: DropoutDraw, n: number): Uint8Array {
  const mask = new Uint8Array(n);
  for (let i = 0; i < n; i++) mask[i] = mix32(counterOf(draw.state, i)) > draw.threshold ? 1 : 0;
  return mask;
}

/** out[o, o + n) = softmax(x[o, o + n)); n = 0 is a no-op. out may be x. */
function softmaxRow(x: FloatArray, out: FloatArray, o: number, n: number): void {
  let mx = -Infinity;
  for (let i = 0; i < n; i++) mx = Math.max(mx, x[o + i]);
  let s = 0;
  for (let i = 0; i < n; i++) {
    const e = Math.exp(x[o + i] - mx);
    out[o + i] = e;
    s += e;
  }
  for (let i = 0; i < n; i++) out[o + i] = out[o + i] / s;
}

function checkAttention(fn: string, d: AttentionDims): void {
  if (d.kvHeads === 0 ? d.heads !== 0 : d.heads % d.kvHeads !== 0) {
    throw new RangeError(`${fn}: heads (${d.heads}) must be a multiple of kvHeads (${d.kvHeads})`);
  }
}
