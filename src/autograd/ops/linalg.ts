/**
 * Matrix products on the tape.
 *   linear(x, W, b): x [..., K], W [N, K] (HF/PyTorch layout), b [N] -> y [..., N] = x W^T + b
 *   matmul(a, b):    a [..., M, K], b [..., K, N] or [K, N] (broadcast over the batch) -> [..., M, N]
 */
import { kernelsFor, loadNative } from '../../native/addon.js';
import { gemmDims, type FloatArray, type GemmDims } from '../../native/types.js';
import { Tensor, allocLike, shapeStr } from '../../tensor/tensor.js';
import { record } from '../tape.js';

export type MatmulPrecision = 'fp32' | 'bf16';
let precision: MatmulPrecision = 'fp32';

/**
 * The precision of the dense products of linear / matmul on fp32 data: 'bf16' rounds both operands to
 * bf16 and accumulates in fp32 (oneDNN), 'fp32' is plain sgemm. Float64 (gradient checks) is never
 * affected. Returns the previous setting.
 */
export function setMatmulPrecision(p: MatmulPrecision): MatmulPrecision {
  const before = precision;
  precision = p;
  return before;
}

function gemmInto(
  a: FloatArray,
  b: FloatArray,
  c: FloatArray,
  d: Partial<GemmDims> & Pick<GemmDims, 'm' | 'n' | 'k'>,
): void {
  const dims = gemmDims(d.m, d.n, d.k, d);
  if (precision === 'bf16' && a instanceof Float32Array)
    loadNative().gemmBf16(a, b as Float32Array, c as Float32Array, dims);
  else kernelsFor(a).gemm(a, b, c, dims);
}

/** Column sums of g [M, N] -> [N] (the bias gradient). */
function columnSums(g: FloatArray, m: number, n: number): FloatArray {
  const out = allocLike(g, n);
  for (let i = 0; i < m; i++) {
    const row = i * n;
    for (let j = 0; j < n; j++) out[j] += g[row + j];
  }
  return out;
}

export function linear(x: Tensor, w: Tensor, b: Tensor | null = null): Tensor {
  const [n, k] = w.shape;
  if (w.shape.length !== 2 || x.shape[x.shape.length - 1] !== k) {
    throw new RangeError(`linear: input ${x} does not match weight ${w}`);
  }
  if (b !== null && (b.shape.length !== 1 || b.shape[0] !== n))
    throw new RangeError(`linear: bias ${b} does not match weight ${w}`);
  const m = x.size / k;
  const y = allocLike(x.data, m * n);
  if (b !== null) for (let i = 0; i < m; i++) y.set(b.data, i * n);
  gemmInto(x.data, w.data, y, { m, n, k, transB: true, beta: b === null ? 0 : 1 });
  const inputs = b === null ? [x, w] : [x, w, b];
  return record(new Tensor(y, [...x.shape.slice(0, -1), n]), 'linear', inputs, (g) => {
    let dx: FloatArray | null = null;
    let dw: FloatArray | null = null;
    if (x.requiresGrad) {
      dx = allocLike(g, m * k); // dX = dY W
      gemmInto(g, w.data, dx, { m, n: k, k: n });
    }
    if (w.requiresGrad) {
      dw = allocLike(g, n * k); // dW = dY^T X
      gemmInto(g, x.data, dw, { m: n, n: k, k: m, transA: true });
    }
    const grads = [dx, dw];
    if (b !== null) grads.push(b.requiresGrad ? columnSums(g, m, n) : null);
    return grads;
  });
}

export function matmul(a: Tensor, b: Tensor): Tensor {
  const ra = a.shape.length;
  const rb = b.shape.length;
  if (ra < 2 || rb < 2) throw new RangeError(`matmul: needs rank >= 2, got ${a} and ${b}`);
  const [m, k] = a.shape.slice(-2);
  const [kb, n] = b.shape.slice(-2);
  const batchShape = a.shape.slice(0, -2);
  const batch = a.size / (m * k);
  const bBatched = rb > 2;
  if (k !== kb || (bBatched && shapeStr(b.shape.slice(0, -2)) !== shapeStr(batchShape))) {
    throw new RangeError(`matmul: shapes ${shapeStr(a.shape)} and ${shapeStr(b.shape)} do not multiply`);
  }
  const strideB = bBatched ? k * n : 0;
  const c = allocLike(a.data, batch * m * n);
  gemmInto(a.data, b.data, c, { batch, m, n, k, strideA: m * k, strideB, strideC: m * n });
  return record(new Tensor(c, [...batchShape, m, n]), 'matmul', [a, b], (g) => {
    let da: FloatArray | null = null;
    let db: FloatArray | null = null;
    if (a.requiresGrad) {
      da = allocLike(g, a.size); // dA = dC B^T
      gemmInto(g, b.data, da, { batch, m, n: k, k: n, transB: true, strideA: m * n, strideB, strideC: m * k });
    }
    if (b.requiresGrad) {
      // dB = A^T dC, summed over the batch when B was broadcast
      db = allocLike(g, b.size);
      if (bBatched)
        gemmInto(a.data, g, db, { batch, m: k, n, k: m, transA: true, strideA: m * k, strideB: m * n, strideC: k * n });
      else gemmInto(a.data, g, db, { m: k, n, k: batch * m, transA: true });
    }
    return [da, db];
  });
}
