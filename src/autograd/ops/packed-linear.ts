/**
 * The linear layer over a packed low-bit weight (src/native/packed.ts), the op Weak Column Tuning trains:
 *   packedLinear(x, w, weak, bias): x [..., K], Ŵ [N, K] (packed + weak columns), b [N] -> y [..., N] = x Ŵᵀ + b
 * `weak` is the tensor [N, nOut] over w.weak (its data IS w.weak), so the weak columns can be a trainable
 * parameter while the packed part stays frozen. Backward returns exactly dX = dY Ŵ, dWeak = dYᵀ X[:, weakIdx]
 * and dBias. Float32 runs on the native kernels; Float64 (gradient checks, with a float64 copy of the
 * weight's scales and weak) on the reference.
 */
import { kernelsFor } from '../../native/addon.js';
import { packedNative, type PackedKernels, type PackedWeight } from '../../native/packed.js';
import { packedReference } from '../../native/packed-ref.js';
import type { FloatArray } from '../../native/types.js';
import { Tensor, allocLike } from '../../tensor/tensor.js';
import { record } from '../tape.js';

function packedKernelsFor(x: FloatArray): PackedKernels<FloatArray> {
  return (x instanceof Float64Array ? packedReference : packedNative) as PackedKernels<FloatArray>;
}

function checkArgs(x: Tensor, w: PackedWeight<FloatArray>, weak: Tensor | null, bias: Tensor | null): void {
  const [n, k, nOut] = [w.rows, w.cols, w.weakIdx.length];
  if (x.shape[x.shape.length - 1] !== k)
    throw new RangeError(`packedLinear: input ${x} does not match packed weight [${n}, ${k}]`);
  if (
    weak !== null &&
    (weak.data !== w.weak || weak.shape.length !== 2 || weak.shape[0] !== n || weak.shape[1] !== nOut)
  ) {
    throw new RangeError(
      `packedLinear: weak ${weak} must be the [${n}, ${nOut}] tensor over the packed weight's weak buffer`,
    );
  }
  if (bias !== null && (bias.shape.length !== 1 || bias.shape[0] !== n))
    throw new RangeError(`packedLinear: bias ${bias} does not match [${n}]`);
}

export function packedLinear(x: Tensor, w: PackedWeight<FloatArray>, weak: Tensor | null, bias: Tensor | null): Tensor {
  checkArgs(x, w, weak, bias);
  const [n, k, nOut] = [w.rows, w.cols, w.weakIdx.length];
  const m = x.size / k;
  const kernels = packedKernelsFor(x.data);
  const y = allocLike(x.data, m * n);
  kernels.packedMatmul(w, x.data, m, y);
  if (bias !== null) for (let i = 0; i < m; i++) for (let r = 0; r < n; r++) y[i * n + r] += bias.data[r];
  const inputs = [x, weak, bias].filter((t): t is Tensor => t !== null);
  return record(new Tensor(y, [...x.shape.slice(0, -1), n]), 'packedLinear', inputs, (g) => {
    let dx: FloatArray | null = null;
    if (x.requiresGrad) {
      dx = allocLike(g, m * k); // dX = dY Ŵ
      kernels.packedMatmulT(w, g, m, dx);
    }
    const grads = [dx];
    if (weak !== null) {
      const dWeak = weak.requiresGrad ? allocLike(g, n * nOut) : null; // dWeak = dYᵀ X[:, weakIdx]
      if (dWeak !== null) kernels.weakGrad(w, g, x.data, m, dWeak);
      grads.push(dWeak);
    }
    if (bias !== null) {
      const dBias = bias.requiresGrad ? allocLike(g, n) : null; // column sums of dY
      if (dBias !== null) kernelsFor(g).sumTo(g, dBias, { shape: [m, n], stridesA: [0, 1], stridesB: [0, 1] });
      grads.push(dBias);
    }
    return grads;
  });
}
