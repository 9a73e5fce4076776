/**
 * RMSNorm and LayerNorm forward/backward in WGSL, the NormDims contract of src/native/types.ts (oracle:
 * src/native/ref.ts): out = x * rstd * w (RMS) or (x - mean) * rstd * w + b (LayerNorm, biased variance as
 * torch, two passes: mean, then the centred sum of squares); rstd (and mean) saved per row.
 *
 * Forward and the dx half of the backward: one workgroup per row of 32..256 lanes by the row length
 * (src/gpu/rows.ts rowWidth), each invocation folding the columns lid, lid + width, ... and a tree reduction for
 * the row statistics. dw and db ACCUMULATE (+=): a second kernel, one invocation per column walking the rows in order, so the sum over rows is deterministic
 * (no float atomics) and the column reads of neighbouring invocations are contiguous. All arithmetic is f32
 * (the reference's is f64; see the tolerances of test/gpu/norm.test.ts).
 */
import type { Kernels, NormDims } from '../native/types.js';
import type { GpuArray } from './array.js';
import { dispatch, f32, flatIndexWgsl, type GpuKernel, grid, need, params } from './dispatch.js';
import { bindingsWgsl, distinct, rowGrid, rowKernel, rowWidth } from './rows.js';

const PARAMS = 'struct Params { rows: u32, cols: u32, eps: f32, _pad: u32 }';
const COL_WG = 64;

/** A column kernel: `body` runs with `c` (column) in scope and walks the rows itself. */
function colKernel(label: string, names: string[], body: string): GpuKernel {
  const code = /* wgsl */ `
${PARAMS}
${bindingsWgsl(names)}
${flatIndexWgsl(COL_WG)}
@compute @workgroup_size(${COL_WG}, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let c = flatIndex(gid, nwg);
  if (c >= P.cols) { return; }
  ${body}
}
`;
  return { label, code };
}

const RMS_FORWARD = rowKernel(
  'rmsnormForward',
  PARAMS,
  ['X', 'W', 'Out!', 'Rstd!'],
  /* wgsl */ `
  var ss = 0.0;
  for (var i = lid; i < P.cols; i += ROW_WG) { let v = X[o + i]; ss = fma(v, v, ss); }
  let r = 1.0 / sqrt(reduceSum(lid, ss) / C + P.eps);
  if (lid == 0u) { Rstd[n] = r; }
  for (var i = lid; i < P.cols; i += ROW_WG) { Out[o + i] = X[o + i] * r * W[i]; }`,
);

// dx = r w dy - x r^3 <dy w, x> / C
const RMS_BACKWARD_DX = rowKernel(
  'rmsnormBackward',
  PARAMS,
  ['X', 'W', 'Rstd', 'Dy', 'Dx!'],
  /* wgsl */ `
  let r = Rstd[n];
  var s = 0.0;
  for (var i = lid; i < P.cols; i += ROW_WG) { s = fma(Dy[o + i] * W[i], X[o + i], s); }
  let k = r * r * r * reduceSum(lid, s) / C;
  for (var i = lid; i < P.cols; i += ROW_WG) { Dx[o + i] = r * W[i] * Dy[o + i] - X[o + i] * k; }`,
);

const RMS_BACKWARD_DW = colKernel(
  'rmsnormBackward dw',
  ['X', 'Rstd', 'Dy', 'Dw!'],
  /* wgsl */ `
  var acc = 0.0;
  for (var n = 0u; n < P.rows; n++) { let i = n * P.cols + c; acc = fma(Dy[i] * X[i], Rstd[n], acc); }
  Dw[c] = Dw[c] + acc;`,
);

const LN_FORWARD = rowKernel(
  'layernormForward',
  PARAMS,
  ['X', 'W', 'B', 'Out!', 'Mean!', 'Rstd!'],
  /* wgsl */ `
  var s = 0.0;
  for (var i = lid; i < P.cols; i += ROW_WG) { s += X[o + i]; }
  let mu = reduceSum(lid, s) / C;
  var v = 0.0;
  for (var i = lid; i < P.cols; i += ROW_WG) { let t = X[o + i] - mu; v = fma(t, t, v); }
  let r = 1.0 / sqrt(reduceSum(lid, v) / C + P.eps);
  if (lid == 0u) { Mean[n] = mu; Rstd[n] = r; }
  for (var i = lid; i < P.cols; i += ROW_WG) { Out[o + i] = (X[o + i] - mu) * r * W[i] + B[i]; }`,
);

// xhat = (x - mean) r, g = dy w: dx = r (g - mean(g) - xhat mean(g xhat))
const LN_BACKWARD_DX = rowKernel(
  'layernormBackward',
  PARAMS,
  ['X', 'W', 'Mean', 'Rstd', 'Dy', 'Dx!'],
  /* wgsl */ `
  let m = Mean[n];
  let r = Rstd[n];
  var sg = 0.0;
  var sgx = 0.0;
  for (var i = lid; i < P.cols; i += ROW_WG) {
    let g = Dy[o + i] * W[i];
    sg += g;
    sgx = fma(g, (X[o + i] - m) * r, sgx);
  }
  let mg = reduceSum(lid, sg) / C;
  let mgx = reduceSum(lid, sgx) / C;
  for (var i = lid; i < P.cols; i += ROW_WG) {
    let xhat = (X[o + i] - m) * r;
    Dx[o + i] = r * (Dy[o + i] * W[i] - mg - xhat * mgx);
  }`,
);

const LN_BACKWARD_DWDB = colKernel(
  'layernormBackward dw db',
  ['X', 'Mean', 'Rstd', 'Dy', 'Dw!', 'Db!'],
  /* wgsl */ `
  var aw = 0.0;
  var ab = 0.0;
  for (var n = 0u; n < P.rows; n++) {
    let i = n * P.cols + c;
    aw = fma(Dy[i], (X[i] - Mean[n]) * Rstd[n], aw);
    ab += Dy[i];
  }
  Dw[c] = Dw[c] + aw;
  Db[c] = Db[c] + ab;`,
);

function normParams(d: NormDims): ArrayBuffer {
  return params(d.rows, d.cols, f32(d.eps));
}

/** Length checks as the addon's, then no written array aliasing another (written: the names in `out`). */
function check(kernel: string, arrays: [string, GpuArray, number][], out: string[]): void {
  for (const [name, arr, len] of arrays) need(kernel, name, arr, len);
  const pick = (keep: boolean) => Object.fromEntries(arrays.filter(([n]) => out.includes(n) === keep));
  distinct(kernel, pick(true), pick(false));
}

/** out = x / sqrt(mean(x^2) + eps) * w; rstd[N] saved. */
export function rmsnormForward(x: GpuArray, w: GpuArray, out: GpuArray, rstd: GpuArray, d: NormDims): void {
  const { rows, cols } = d;
  check(
    'rmsnormForward',
    [
      ['x', x, rows * cols],
      ['w', w, cols],
      ['out', out, rows * cols],
      ['rstd', rstd, rows],
    ],
    ['out', 'rstd'],
  );
  dispatch(x.ctx, RMS_FORWARD(rowWidth(cols)), [x, w, out, rstd], normParams(d), rowGrid(x.ctx, rows));
}

/** dx overwritten, dw += Σ_rows dy x rstd. */
export function rmsnormBackward(
  x: GpuArray,
  w: GpuArray,
  rstd: GpuArray,
  dy: GpuArray,
  dx: GpuArray,
  dw: GpuArray,
  d: NormDims,
): void {
  const { rows, cols } = d;
  check(
    'rmsnormBackward',
    [
      ['x', x, rows * cols],
      ['w', w, cols],
      ['rstd', rstd, rows],
      ['dy', dy, rows * cols],
      ['dx', dx, rows * cols],
      ['dw', dw, cols],
    ],
    ['dx', 'dw'],
  );
  const p = normParams(d);
  dispatch(x.ctx, RMS_BACKWARD_DX(rowWidth(cols)), [x, w, rstd, dy, dx], p, rowGrid(x.ctx, rows));
  if (rows > 0) dispatch(x.ctx, RMS_BACKWARD_DW, [x, rstd, dy, dw], p, grid(x.ctx, cols, COL_WG));
}

/** out = (x - mean) * rstd * w + b; mean[N], rstd[N] saved. */
export function layernormForward(
  x: GpuArray,
  w: GpuArray,
  b: GpuArray,
  out: GpuArray,
  mean: GpuArray,
  rstd: GpuArray,
  d: NormDims,
): void {
  const { rows, cols } = d;
  check(
    'layernormForward',
    [
      ['x', x, rows * cols],
      ['w', w, cols],
      ['b', b, cols],
      ['out', out, rows * cols],
      ['mean', mean, rows],
      ['rstd', rstd, rows],
    ],
    ['out', 'mean', 'rstd'],
  );
  dispatch(x.ctx, LN_FORWARD(rowWidth(cols)), [x, w, b, out, mean, rstd], normParams(d), rowGrid(x.ctx, rows));
}

/** dx overwritten; dw += Σ_rows dy xhat, db += Σ_rows dy. */
export function layernormBackward(
  x: GpuArray,
  w: GpuArray,
  mean: GpuArray,
  rstd: GpuArray,
  dy: GpuArray,
  dx: GpuArray,
  dw: GpuArray,
  db: GpuArray,
  d: NormDims,
): void {
  const { rows, cols } = d;
  check(
    'layernormBackward',
    [
      ['x', x, rows * cols],
      ['w', w, cols],
      ['mean', mean, rows],
      ['rstd', rstd, rows],
      ['dy', dy, rows * cols],
      ['dx', dx, rows * cols],
      ['dw', dw, cols],
      ['db', db, cols],
    ],
    ['dx', 'dw', 'db'],
  );
  const p = normParams(d);
  dispatch(x.ctx, LN_BACKWARD_DX(rowWidth(cols)), [x, w, mean, rstd, dy, dx], p, rowGrid(x.ctx, rows));
  if (rows > 0) dispatch(x.ctx, LN_BACKWARD_DWDB, [x, mean, rstd, dy, dw, db], p, grid(x.ctx, cols, COL_WG));
}

export const normKernels = {
  rmsnormForward,
  rmsnormBackward,
  layernormForward,
  layernormBackward,
} satisfies Pick<Kernels<GpuArray>, 'rmsnormForward' | 'rmsnormBackward' | 'layernormForward' | 'layernormBackward'>;
