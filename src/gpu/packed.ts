/**
 * The packed low-bit weight kernels on the GPU: PackedKernels<GpuArray, GpuPackedWeight> (the contract of
 * src/native/packed.ts; oracle src/native/packed-ref.ts). The device copy of the weight and the shared decode
 * WGSL are in packed-weight.ts; one file per kernel family:
 *   dequantizeInto  packed-dequant.ts   one invocation per element of Ŵ
 *   dequantizeRows  packed-dequant.ts   the same for rows ids of Ŵ (a packed embedding's lookup)
 *   packedMatmul    packed-gemv.ts      M <= GEMV_MAX_M: workgroup per 4 rows, invocations split K, u32 code words
 *                   packed-gemm.ts      larger M: 64x64 tiles with Ŵ dequantized into workgroup memory
 *   packedMatmulT   packed-gemm.ts      the same tiling, dx = dy Ŵ (overwrites)
 *   weakGrad        packed-weak-grad.ts one invocation per dweak element, accumulates, deterministic
 * Every call checks lengths like the native addon (need(): at least m * K, m * N, N * nOut elements), refuses a
 * released weight or array, and an output that is also an input. The weak columns are read from `w.weak` at
 * every call.
 *
 * Batch arrays over the binding limit (x, y, dy, dx of many rows against a large vocabulary; src/gpu/windows.ts
 * inRowBlocks): the call runs per block of batch rows, each block's arrays bound as arrays of their own. The
 * weight's own arrays must fit a binding (packedToGpu checks: a 7B lm_head's codes are 64 MiB at 4 bits).
 */
import { checkRowIds, type PackedKernels } from '../native/packed.js';
import type { GpuArray } from './array.js';
import { need } from './dispatch.js';
import { encodeDequantize, encodeDequantizeRows } from './packed-dequant.js';
import { encodePackedGemm, encodePackedGemmT } from './packed-gemm.js';
import { encodePackedGemv, GEMV_MAX_M } from './packed-gemv.js';
import type { GpuPackedWeight } from './packed-weight.js';
import { encodeWeakGrad } from './packed-weak-grad.js';
import { inRowBlocks } from './windows.js';

export { GEMV_MAX_M } from './packed-gemv.js';
export { GpuPackedWeight, packedToGpu, releasePacked, thawWeak } from './packed-weight.js';

function checkWeight(kernel: string, w: GpuPackedWeight): void {
  if (w.released) throw new Error(`${kernel}: the packed weight was released (releasePacked)`);
  need(kernel, 'weak', w.weak, w.rows * w.nOut);
}

function checkM(kernel: string, m: number): void {
  if (!Number.isInteger(m) || m < 0) throw new RangeError(`${kernel}: m must be a non-negative integer, got ${m}`);
}

/** A read_write binding may not alias a read one in the same dispatch. */
function checkDistinct(kernel: string, out: GpuArray, ...ins: GpuArray[]): void {
  if (ins.some((a) => a.buffer === out.buffer)) {
    throw new Error(`${kernel}: the output shares its buffer with an input (pass a separate array)`);
  }
}

export const packedGpu: PackedKernels<GpuArray, GpuPackedWeight> = {
  name: 'webgpu',

  dequantizeInto(w, out) {
    checkWeight('dequantize', w);
    need('dequantize', 'out', out, w.rows * w.cols);
    checkDistinct('dequantize', out, w.weak, w.scales);
    encodeDequantize(w, out);
  },

  dequantizeRows(w, ids, out) {
    checkWeight('dequantizeRows', w);
    need('dequantizeRows', 'out', out, ids.length * w.cols);
    checkDistinct('dequantizeRows', out, w.weak, w.scales);
    checkRowIds(ids, w.rows);
    encodeDequantizeRows(w, ids, out);
  },

  packedMatmul(w, x, m, y) {
    checkWeight('packedMatmul', w);
    checkM('packedMatmul', m);
    need('packedMatmul', 'x', x, m * w.cols);
    need('packedMatmul', 'y', y, m * w.rows);
    checkDistinct('packedMatmul', y, x, w.weak, w.scales);
    if (m === 0 || w.rows === 0) return;
    const rows = [
      { array: x, rowElems: w.cols },
      { array: y, rowElems: w.rows },
    ];
    inRowBlocks('packedMatmul', m, rows, (_, mc, bind) => {
      if (mc <= GEMV_MAX_M) encodePackedGemv(w, bind(x), mc, bind(y));
      else encodePackedGemm(w, bind(x), mc, bind(y));
    });
  },

  packedMatmulT(w, dy, m, dx) {
    checkWeight('packedMatmulT', w);
    checkM('packedMatmulT', m);
    need('packedMatmulT', 'dy', dy, m * w.rows);
    need('packedMatmulT', 'dx', dx, m * w.cols);
    checkDistinct('packedMatmulT', dx, dy, w.weak, w.scales);
    if (m === 0) return;
    const rows = [
      { array: dy, rowElems: w.rows },
      { array: dx, rowElems: w.cols },
    ];
    inRowBlocks('packedMatmulT', m, rows, (_, mc, bind) => encodePackedGemmT(w, bind(dy), mc, bind(dx)));
  },

  weakGrad(w, dy, x, m, dweak) {
    checkWeight('weakGrad', w);
    checkM('weakGrad', m);
    need('weakGrad', 'dy', dy, m * w.rows);
    need('weakGrad', 'x', x, m * w.cols);
    need('weakGrad', 'dweak', dweak, w.rows * w.nOut);
    checkDistinct('weakGrad', dweak, dy, x);
    if (m === 0 || w.rows * w.nOut === 0) return;
    const rows = [
      { array: dy, rowElems: w.rows },
      { array: x, rowElems: w.cols },
    ];
    // split batch rows add their partial sums to dweak block by block (deterministic; another rounding order)
    inRowBlocks('weakGrad', m, rows, (_, mc, bind) => encodeWeakGrad(w, bind(dy), bind(x), mc, dweak));
  },

  outlierGrad() {
    // packedToGpu refuses weights with outliers until the WGSL sparse kernels land
  },
};
