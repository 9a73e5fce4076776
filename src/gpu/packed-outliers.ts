/**
 * The sparse part of a packed weight's Ŵ (GWQ-style outliers: src/native/packed.ts PackedOutliers; the device
 * layout at the top of src/gpu/packed-weight.ts), added by its own dispatch after the packed kernel of the same
 * call has written its output (queue order is program order). The packed part is exactly 0 at an outlier (its
 * code is the zero point) and no outlier is a weak column, so each kernel only adds the outliers' terms; the
 * plain reference is src/native/packed-ref.ts. Every kernel is deterministic: each output is written by one
 * invocation, which walks its terms in a fixed order with an f32 fma chain (no atomics).
 *   dequantize      one invocation per outlier p: OUT[rowOf[p], colIdx[p]] += V[p]
 *   dequantize rows one invocation per output row n: OUT[n, colIdx[p]] += V[p] for p in row ids[n]'s CSR range
 *   y               one invocation per (i, r): Y[i, r] += Σ_{p in row r} V[p] X[i, colIdx[p]]   (the GEMM's m;
 *                   the GEMV adds the same terms inside its own reduction: src/gpu/packed-gemv.ts)
 *   dx              one invocation per (i, c): DX[i, c] += Σ_{q in column c of the CSC} DY[i, rowIdx[q]] V[cscPos[q]]
 *   outlierGrad     one invocation per outlier p: DV[p] += Σ_i DY[i, rowOf[p]] X[i, colIdx[p]] (the m batch rows
 *                   in order, then one add, like weakGrad)
 * Bindings: I (the index buffer, the outliers' part at oRowPtr() ...: PARAMS_WGSL), the values V (f32), the
 * batch arrays, then the uniform P (packedParams).
 */
import type { GpuArray } from './array.js';
import { type Binding, dispatch, flatIndexWgsl, type GpuKernel, grid } from './dispatch.js';
import { type GpuPackedWeight, PARAMS_WGSL, packedParams } from './packed-weight.js';

const WG = 64;

/** A kernel over I and V (bindings 0, 1), `decls` its other bindings, `body` run for flat index e. */
const kernel = (label: string, decls: string, body: string): GpuKernel => ({
  label,
  code: /* wgsl */ `
${PARAMS_WGSL}
@group(0) @binding(0) var<storage, read> I: array<i32>;
@group(0) @binding(1) var<storage, read> V: array<f32>;
${decls}
${flatIndexWgsl(WG)}
@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let e = flatIndex(gid, nwg);
${body}
}
`,
});

const DEQUANT = kernel(
  'packed outliers dequantize',
  `@group(0) @binding(2) var<storage, read_write> OUT: array<f32>;
@group(0) @binding(3) var<uniform> P: Params;`,
  `  if (e >= P.nnz) { return; }
  let o = u32(I[oRowOf() + e]) * P.cols + u32(I[oColIdx() + e]);
  OUT[o] = OUT[o] + V[e];`,
);

const DEQUANT_ROWS = kernel(
  'packed outliers dequantize rows',
  `@group(0) @binding(2) var<storage, read_write> OUT: array<f32>;
@group(0) @binding(3) var<storage, read> IDS: array<i32>;
@group(0) @binding(4) var<uniform> P: Params;`,
  `  if (e >= P.m) { return; }
  let r = u32(IDS[e]);
  let p1 = u32(I[oRowPtr() + r + 1u]);
  for (var p = u32(I[oRowPtr() + r]); p < p1; p++) {
    let o = e * P.cols + u32(I[oColIdx() + p]);
    OUT[o] = OUT[o] + V[p];
  }`,
);

const Y = kernel(
  'packed outliers y',
  `@group(0) @binding(2) var<storage, read> X: array<f32>;
@group(0) @binding(3) var<storage, read_write> Y: array<f32>;
@group(0) @binding(4) var<uniform> P: Params;`,
  `  if (e >= P.m * P.rows) { return; }
  let i = e / P.rows;
  let r = e % P.rows;
  let p1 = u32(I[oRowPtr() + r + 1u]);
  var s = Y[e];
  for (var p = u32(I[oRowPtr() + r]); p < p1; p++) { s = fma(V[p], X[i * P.cols + u32(I[oColIdx() + p])], s); }
  Y[e] = s;`,
);

const DX = kernel(
  'packed outliers dx',
  `@group(0) @binding(2) var<storage, read> DY: array<f32>;
@group(0) @binding(3) var<storage, read_write> DX: array<f32>;
@group(0) @binding(4) var<uniform> P: Params;`,
  `  if (e >= P.m * P.cols) { return; }
  let i = e / P.cols;
  let c = e % P.cols;
  let q1 = u32(I[oColPtr() + c + 1u]);
  var s = DX[e];
  for (var q = u32(I[oColPtr() + c]); q < q1; q++) {
    s = fma(DY[i * P.rows + u32(I[oRowIdx() + q])], V[u32(I[oCscPos() + q])], s);
  }
  DX[e] = s;`,
);

/** dvalues does not read V: bindings I, DY, X, DV. */
const GRAD: GpuKernel = {
  label: 'packed outlierGrad',
  code: /* wgsl */ `
${PARAMS_WGSL}
@group(0) @binding(0) var<storage, read> I: array<i32>;
@group(0) @binding(1) var<storage, read> DY: array<f32>;
@group(0) @binding(2) var<storage, read> X: array<f32>;
@group(0) @binding(3) var<storage, read_write> DV: array<f32>;
@group(0) @binding(4) var<uniform> P: Params;
${flatIndexWgsl(WG)}
@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let e = flatIndex(gid, nwg);
  if (e >= P.nnz) { return; }
  let r = u32(I[oRowOf() + e]);
  let j = u32(I[oColIdx() + e]);
  var s = 0.0;
  for (var i = 0u; i < P.m; i++) { s = fma(DY[i * P.rows + r], X[i * P.cols + j], s); }
  DV[e] = DV[e] + s;
}
`,
};

/** The values of a weight with outliers (the caller checked nnz > 0 and their length). */
const valuesOf = (g: GpuPackedWeight): GpuArray => g.outlierValues!;

/** out [N, K] += the outliers (after encodeDequantize; nnz > 0). */
export function encodeOutlierDequantize(g: GpuPackedWeight, out: GpuArray): void {
  dispatch(g.ctx, DEQUANT, [g.index, valuesOf(g), out], packedParams(g, g.rows), grid(g.ctx, g.nnz, WG));
}

/** out [ids.length, K] += the outliers of rows ids, uploaded as i32 in `ids` (nnz > 0). */
export function encodeOutlierDequantizeRows(g: GpuPackedWeight, ids: GPUBuffer, count: number, out: GpuArray): void {
  dispatch(g.ctx, DEQUANT_ROWS, [g.index, valuesOf(g), out, ids], packedParams(g, count), grid(g.ctx, count, WG));
}

/** y [m, N] += x [m, K] (the outliers)ᵀ (after the packed GEMM; nnz > 0). */
export function encodeOutlierY(g: GpuPackedWeight, x: Binding, m: number, y: Binding): void {
  dispatch(g.ctx, Y, [g.index, valuesOf(g), x, y], packedParams(g, m), grid(g.ctx, m * g.rows, WG));
}

/** dx [m, K] += dy [m, N] (the outliers) (after the packed GEMM-T; nnz > 0). */
export function encodeOutlierDx(g: GpuPackedWeight, dy: Binding, m: number, dx: Binding): void {
  dispatch(g.ctx, DX, [g.index, valuesOf(g), dy, dx], packedParams(g, m), grid(g.ctx, m * g.cols, WG));
}

/** dvalues [nnz] += Σ_i dy[i, row_p] x[i, colIdx[p]] (nnz > 0). */
export function encodeOutlierGrad(g: GpuPackedWeight, dy: Binding, x: Binding, m: number, dvalues: GpuArray): void {
  dispatch(g.ctx, GRAD, [g.index, dy, x, dvalues], packedParams(g, m), grid(g.ctx, g.nnz, WG));
}
