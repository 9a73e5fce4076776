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
 *   outlierGrad     packed-outliers.ts  one invocation per outlier, accumulates, deterministic
 * A weight with sparse outliers (nnz > 0): the GEMV adds them in its own reduction; dequantizeInto/Rows, the GEMM
 * and the GEMM-T add them by a second dispatch (packed-outliers.ts: per outlier, per output row, per (m, row),
 * per (m, column) over the CSC built at upload). The values are read from `w.outlierValues` at every call.
 * Every call checks lengths like the native addon (need(): at least m * K, m * N, N * nOut elements), refuses a
 * released weight or array, and an output that is also an input. The weak columns are read from `w.weak` at
 * every call (and the outliers' values from `w.outlierValues`: at least nnz f32 elements).
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
import { encodeOutlierDx, encodeOutlierGrad, encodeOutlierY } from './packed-outliers.js';
import type { GpuPackedWeight } from './packed-weight.js';
import { encodeWeakGrad } from './packed-weak-grad.js';
import { inRowBlocks } from './windows.js';

export { GEMV_MAX_M } from './packed-gemv.js';
export { GpuPackedWeight, packedToGpu, releasePacked, thawWeak } from './packed-weight.js';

function checkWeight(kernel: string, w: GpuPackedWeight): void {
  if (w.released) throw new Error(`${kernel}: the packed weight was released (releasePacked)`);
  need(kernel, 'weak', w.weak, w.rows * w.nOut);
  if (w.nnz > 0) {
    if (w.outlierValues === null) throw new Error(`${kernel}: the weight has ${w.nnz} outliers but no outlierValues`);
    need(kernel, 'outlierValues', w.outlierValues, w.nnz);
  }
}

/** The weight's arrays an output must not share a buffer with. */
function weightArrays(w: GpuPackedWeight): GpuArray[] {
  return w.outlierValues === null ? [w.weak, w.scales] : [w.weak, w.scales, w.outlierValues];
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
    checkDistinct('dequantize', out, ...weightArrays(w));
    encodeDequantize(w, out);
  },

  dequantizeRows(w, ids, out) {
    checkWeight('dequantizeRows', w);
    need('dequantizeRows', 'out', out, ids.length * w.cols);
    checkDistinct('dequantizeRows', out, ...weightArrays(w));
    checkRowIds(ids, w.rows);
    encodeDequantizeRows(w, ids, out);
  },

  packedMatmul(w, x, m, y) {
    checkWeight('packedMatmul', w);
    checkM('packedMatmul', m);
    need('packedMatmul', 'x', x, m * w.cols);
    need('packedMatmul', 'y', y, m * w.rows);
    checkDistinct('packedMatmul', y, x, ...weightArrays(w));
    if (m === 0 || w.rows === 0) return;
    const rows = [
      { array: x, rowElems: w.cols },
      { array: y, rowElems: w.rows },
    ];
    inRowBlocks('packedMatmul', m, rows, (_, mc, bind) => {
      if (mc <= GEMV_MAX_M) encodePackedGemv(w, bind(x), mc, bind(y));
      else {
        encodePackedGemm(w, bind(x), mc, bind(y));
        if (w.nnz > 0) encodeOutlierY(w, bind(x), mc, bind(y));
      }
    });
  },

  packedMatmulT(w, dy, m, dx) {
    checkWeight('packedMatmulT', w);
    checkM('packedMatmulT', m);
    need('packedMatmulT', 'dy', dy, m * w.rows);
    need('packedMatmulT', 'dx', dx, m * w.cols);
    checkDistinct('packedMatmulT', dx, dy, ...weightArrays(w));
    if (m === 0) return;
    const rows = [
      { array: dy, rowElems: w.rows },
      { array: dx, rowElems: w.cols },
    ];
    inRowBlocks('packedMatmulT', m, rows, (_, mc, bind) => {
      encodePackedGemmT(w, bind(dy), mc, bind(dx));
      if (w.nnz > 0) encodeOutlierDx(w, bind(dy), mc, bind(dx));
    });
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

  outlierGrad(w, dy, x, m, dvalues) {
    checkWeight('outlierGrad', w);
    checkM('outlierGrad', m);
    need('outlierGrad', 'dy', dy, m * w.rows);
    need('outlierGrad', 'x', x, m * w.cols);
    need('outlierGrad', 'dvalues', dvalues, w.nnz);
    checkDistinct('outlierGrad', dvalues, dy, x);
    if (m === 0 || w.nnz === 0) return;
    const rows = [
      { array: dy, rowElems: w.rows },
      { array: x, rowElems: w.cols },
    ];
    // as weakGrad: split batch rows add their partial sums to dvalues block by block
    inRowBlocks('outlierGrad', m, rows, (_, mc, bind) => encodeOutlierGrad(w, bind(dy), bind(x), mc, dvalues));
  },
};
