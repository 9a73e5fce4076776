/**
 * Matrix products on the tape.
 *   linear(x, W, b): x [..., K], W [N, K] (HF/PyTorch layout), b [N] -> y [..., N] = x W^T + b
 *   matmul(a, b):    a [..., M, K], b [..., K, N] or [K, N] (broadcast over the batch) -> [..., M, N]
 */
import { loadNative } from '../../native/addon.js';
import { gemmDims, type GemmDims } from '../../native/types.js';
import { kernelsFor, kernelsOn } from '../../tensor/device.js';
import { Tensor, allocLike, shapeStr, type Storage } from '../../tensor/tensor.js';
import { record } from '../tape.js';
import { allocOutput } from '../alloc.js';

export type MatmulPrecision = 'fp32' | 'bf16';
let precision: MatmulPrecision = 'fp32';

/**
 * The precision of the dense products of linear / matmul on fp32 host data: 'bf16' rounds both operands to
 * bf16 and accumulates in fp32 (oneDNN), 'fp32' is plain sgemm. Float64 (gradient checks) and the GPU
 * (f32 WGSL GEMM) are never affected. Returns the previous setting.
 */
export function setMatmulPrecision(p: MatmulPrecision): MatmulPrecision {
  const before = precision;
  precision = p;
  return before;
}

function gemmInto(a: Storage, b: Storage, c: Storage, d: Partial<GemmDims> & Pick<GemmDims, 'm' | 'n' | 'k'>): void {
  const dims = gemmDims(d.m, d.n, d.k, d);
  if (precision === 'bf16' && a instanceof Float32Array)
    loadNative().gemmBf16(a, b as Float32Array, c as Float32Array, dims);
  else kernelsFor(a).gemm(a, b, c, dims);
}

/** y + b with b [N] broadcast over the rows of y [M, N] (a new array). */
export function addBias(y: Storage, b: Storage, m: number, n: number): Storage {
  const out = allocOutput(y, m * n);
  kernelsFor(y).binary('add', y, b, out, { shape: [m, n], stridesA: [n, 1], stridesB: [0, 1] });
  return out;
}

/** Column sums of g [M, N] -> [N] (the bias gradient). */
export function columnSums(g: Storage, m: number, n: number): Storage {
  const out = allocLike(g, n);
  kernelsFor(g).sumTo(g, out, { shape: [m, n], stridesA: [0, 1], stridesB: [0, 1] });
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
  kernelsOn('linear', x, w, b);
  // Adding the bias after the product rounds as sgemm's beta = 1 does: round(f32 accumulator + b).
  const xw = allocOutput(x.storage, m * n);
  gemmInto(x.storage, w.storage, xw, { m, n, k, transB: true });
  const y = b === null ? xw : addBias(xw, b.storage, m, n);
  const inputs = b === null ? [x, w] : [x, w, b];
  return record(new Tensor(y, [...x.shape.slice(0, -1), n]), 'linear', inputs, (g) => {
    let dx: Storage | null = null;
    let dw: Storage | null = null;
    if (x.requiresGrad) {
      dx = allocOutput(g, m * k); // dX = dY W
      gemmInto(g, w.storage, dx, { m, n: k, k: n });
    }
    if (w.requiresGrad) {
      dw = allocOutput(g, n * k); // dW = dY^T X
      gemmInto(g, x.storage, dw, { m: n, n: k, k: m, transA: true });
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
  kernelsOn('matmul', a, b);
  const c = allocOutput(a.storage, batch * m * n);
  gemmInto(a.storage, b.storage, c, { batch, m, n, k, strideA: m * k, strideB, strideC: m * n });
  return record(new Tensor(c, [...batchShape, m, n]), 'matmul', [a, b], (g) => {
    let da: Storage | null = null;
    let db: Storage | null = null;
    if (a.requiresGrad) {
      da = allocOutput(g, a.size); // dA = dC B^T
      gemmInto(g, b.storage, da, { batch, m, n: k, k: n, transB: true, strideA: m * n, strideB, strideC: m * k });
    }
    if (b.requiresGrad) {
      // dB = A^T dC, summed over the batch when B was broadcast
      db = allocOutput(g, b.size);
      if (bBatched)
        gemmInto(a.storage, g, db, {
          batch,
          m: k,
          n,
          k: m,
          transA: true,
          strideA: m * k,
          strideB: m * n,
          strideC: k * n,
        });
      else gemmInto(a.storage, g, db, { m: k, n, k: batch * m, transA: true });
    }
    return [da, db];
  });
}
