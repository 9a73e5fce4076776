/**
 * Row-wise softmax over the last dim in WGSL, the RowDims contract of src/native/types.ts (oracle:
 * src/native/ref.ts): y = exp(x - max) / Σ exp(x - max); backward dx = y (dy - Σ dy y).
 *
 * One workgroup per row of 32..256 invocations by the row length (src/gpu/rows.ts rowWidth): a max
 * reduction, a sum reduction of the exponentials (recomputed in the write pass rather than stored), both
 * fixed-order trees, so results are deterministic. f32 throughout; see test/gpu/softmax.test.ts for the tolerance.
 */
import type { Kernels, RowDims } from '../native/types.js';
import type { GpuArray } from './array.js';
import { dispatch, need, params } from './dispatch.js';
import { distinct, rowGrid, rowKernel, rowWidth } from './rows.js';

const PARAMS = 'struct Params { rows: u32, cols: u32, _pad0: u32, _pad1: u32 }';

const FORWARD = rowKernel(
  'softmaxForward',
  PARAMS,
  ['X', 'Y!'],
  /* wgsl */ `
  var mx = -3.402823466e38;
  for (var i = lid; i < P.cols; i += ROW_WG) { mx = max(mx, X[o + i]); }
  let m = reduceMax(lid, mx);
  var s = 0.0;
  for (var i = lid; i < P.cols; i += ROW_WG) { s += exp(X[o + i] - m); }
  let inv = 1.0 / reduceSum(lid, s);
  for (var i = lid; i < P.cols; i += ROW_WG) { Y[o + i] = exp(X[o + i] - m) * inv; }`,
);

const BACKWARD = rowKernel(
  'softmaxBackward',
  PARAMS,
  ['Y', 'Dy', 'Dx!'],
  /* wgsl */ `
  var s = 0.0;
  for (var i = lid; i < P.cols; i += ROW_WG) { s = fma(Dy[o + i], Y[o + i], s); }
  let t = reduceSum(lid, s);
  for (var i = lid; i < P.cols; i += ROW_WG) { Dx[o + i] = Y[o + i] * (Dy[o + i] - t); }`,
);

/** out = softmax(x) row by row. */
export function softmaxForward(x: GpuArray, out: GpuArray, d: RowDims): void {
  const { rows, cols } = d;
  need('softmaxForward', 'x', x, rows * cols);
  need('softmaxForward', 'out', out, rows * cols);
  distinct('softmaxForward', { out }, { x });
  if (cols === 0) return;
  dispatch(x.ctx, FORWARD(rowWidth(cols)), [x, out], params(rows, cols), rowGrid(x.ctx, rows));
}

/** dx = y (dy - Σ dy y), overwritten. */
export function softmaxBackward(y: GpuArray, dy: GpuArray, dx: GpuArray, d: RowDims): void {
  const { rows, cols } = d;
  need('softmaxBackward', 'y', y, rows * cols);
  need('softmaxBackward', 'dy', dy, rows * cols);
  need('softmaxBackward', 'dx', dx, rows * cols);
  distinct('softmaxBackward', { dx }, { y, dy });
  if (cols === 0) return;
  dispatch(y.ctx, BACKWARD(rowWidth(cols)), [y, dy, dx], params(rows, cols), rowGrid(y.ctx, rows));
}

export const softmaxKernels = { softmaxForward, softmaxBackward } satisfies Pick<
  Kernels<GpuArray>,
  'softmaxForward' | 'softmaxBackward'
>;
