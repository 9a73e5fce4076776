/**
 * The linear layer over a packed low-bit weight (src/native/packed.ts), the op Weak Column Tuning trains:
 *   packedLinear(x, w, weak, bias, outliers): x [..., K], Ŵ [N, K] (packed + weak columns + sparse outliers),
 *   b [N] -> y [..., N] = x Ŵᵀ + b
 * `weak` is the tensor [N, nOut] over w.weak (its storage IS w.weak), and `outliers` the tensor [nnz] over the
 * values of the weight's CSR outliers (w.outliers.values on the host, w.outlierValues on the GPU), so either can
 * be a trainable parameter while the packed part and the outlier positions stay frozen. Backward returns exactly
 * dX = dY Ŵ (outliers included, through packedMatmulT), dWeak = dYᵀ X[:, weakIdx], dValues[p] = Σ_i dY[i, row_p]
 * X[i, colIdx[p]] and dBias. Float32 runs on the native kernels, a weight on the GPU (src/gpu/packed.ts) on WGSL
 * ones; Float64 (gradient checks, with a float64 copy of the weight's scales, weak and outlier values) on the
 * reference.
 */
import { GpuArray } from '../../gpu/array.js';
import { gpuPackedKernels } from '../../gpu/kernels.js';
import { packedNative, type PackedKernels } from '../../native/packed.js';
import { packedReference } from '../../native/packed-ref.js';
import { kernelsOn } from '../../tensor/device.js';
import { Tensor, allocLike, type Storage } from '../../tensor/tensor.js';
import { record } from '../tape.js';
import { addBias, columnSums } from './linalg.js';

/**
 * What the op needs of a packed weight on any device: its shape, its weak columns' storage and, when it has
 * outliers, their values' storage (a host weight's `outliers.values`, a device copy's `outlierValues`).
 */
export interface PackedOperand {
  rows: number;
  cols: number;
  weakIdx: Int32Array;
  weak: Storage;
  outliers?: { values: Storage };
  outlierValues?: Storage | null;
}

/** The storage of w's outlier values, or null when it has none. */
export function outlierValuesOf(w: PackedOperand): Storage | null {
  return w.outlierValues ?? w.outliers?.values ?? null;
}

function packedKernelsFor(x: Storage): PackedKernels<Storage, PackedOperand> {
  const k = x instanceof GpuArray ? gpuPackedKernels : x instanceof Float64Array ? packedReference : packedNative;
  return k as unknown as PackedKernels<Storage, PackedOperand>;
}

function checkArgs(x: Tensor, w: PackedOperand, weak: Tensor | null, bias: Tensor | null, outliers: Tensor | null) {
  const [n, k, nOut] = [w.rows, w.cols, w.weakIdx.length];
  if (x.shape[x.shape.length - 1] !== k)
    throw new RangeError(`packedLinear: input ${x} does not match packed weight [${n}, ${k}]`);
  if (
    weak !== null &&
    (weak.storage !== w.weak || weak.shape.length !== 2 || weak.shape[0] !== n || weak.shape[1] !== nOut)
  ) {
    throw new RangeError(
      `packedLinear: weak ${weak} must be the [${n}, ${nOut}] tensor over the packed weight's weak buffer`,
    );
  }
  if (outliers !== null) {
    const values = outlierValuesOf(w);
    if (values === null || outliers.storage !== values || outliers.shape.length !== 1)
      throw new RangeError(
        `packedLinear: outliers ${outliers} must be the [nnz] tensor over the packed weight's outlier values`,
      );
  }
  if (bias !== null && (bias.shape.length !== 1 || bias.shape[0] !== n))
    throw new RangeError(`packedLinear: bias ${bias} does not match [${n}]`);
  if (x.storage instanceof GpuArray !== w.weak instanceof GpuArray)
    throw new TypeError(`packedLinear: input ${x} and the packed weight are on different devices`);
}

export function packedLinear(
  x: Tensor,
  w: PackedOperand,
  weak: Tensor | null,
  bias: Tensor | null,
  outliers: Tensor | null = null,
): Tensor {
  checkArgs(x, w, weak, bias, outliers);
  kernelsOn('packedLinear', x, weak, bias, outliers);
  const [n, k, nOut] = [w.rows, w.cols, w.weakIdx.length];
  const m = x.size / k;
  const kernels = packedKernelsFor(x.storage);
  const xw = allocLike(x.storage, m * n);
  kernels.packedMatmul(w, x.storage, m, xw);
  const y = bias === null ? xw : addBias(xw, bias.storage, m, n);
  const inputs = [x, weak, bias, outliers].filter((t): t is Tensor => t !== null);
  return record(new Tensor(y, [...x.shape.slice(0, -1), n]), 'packedLinear', inputs, (g) => {
    let dx: Storage | null = null;
    if (x.requiresGrad) {
      dx = allocLike(g, m * k); // dX = dY Ŵ (the outliers included)
      kernels.packedMatmulT(w, g, m, dx);
    }
    const grads = [dx];
    if (weak !== null) {
      const dWeak = weak.requiresGrad ? allocLike(g, n * nOut) : null; // dWeak = dYᵀ X[:, weakIdx]
      if (dWeak !== null) kernels.weakGrad(w, g, x.storage, m, dWeak);
      grads.push(dWeak);
    }
    if (bias !== null) grads.push(bias.requiresGrad ? columnSums(g, m, n) : null);
    if (outliers !== null) {
      const dValues = outliers.requiresGrad ? allocLike(g, outliers.size) : null; // dValues[p] = Σ_i dY[i, row_p] X[i, colIdx[p]]
      if (dValues !== null && outliers.size > 0) kernels.outlierGrad(w, g, x.storage, m, dValues);
      grads.push(dValues);
    }
    return grads;
  });
}
