/**
 * Ŵ [N, K] of a packed weight on the device, in input-column order with the weak columns added: one
 * invocation per output element, out[r, j] = whatAt(r, j) (src/gpu/packed-weight.ts), the reference's formula
 * and rounding order (s * (code - z) rounded to f32, then + weak), so it matches the reference up to a possible
 * fma contraction of the weak columns' add (see the tolerance in test/gpu/packed.test.ts). The rows variant
 * (a packed embedding's lookup) decodes rows ids[n] only: out[n, j] = whatAt(ids[n], j), ids uploaded as i32.
 * A weight's sparse outliers are then added by a second dispatch (src/gpu/packed-outliers.ts; exact: the
 * packed part is 0 there).
 */
import type { GpuArray } from './array.js';
import { dispatch, flatIndexWgsl, grid } from './dispatch.js';
import { type ReadPath, variants } from './half.js';
import { encodeOutlierDequantize, encodeOutlierDequantizeRows } from './packed-outliers.js';
import { decodeWgsl, type GpuPackedWeight, packedKernel, packedParams } from './packed-weight.js';

const WG = 256;

/** The WGSL of both variants: `rowsDecl` declares what picks row r of output row n (P.m rows of output). */
const wgsl = (
  scales: ReadPath,
  weak: ReadPath,
  rowsDecl: string,
  rowOf: string,
): string => /* wgsl */ `${decodeWgsl(scales, weak)}
@group(0) @binding(5) var<storage, read_write> OUT: array<f32>;
${rowsDecl}
${flatIndexWgsl(WG)}
@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let e = flatIndex(gid, nwg);
  if (e >= P.m * P.cols) { return; }
  let n = e / P.cols;
  OUT[e] = whatAt(${rowOf}, e % P.cols);
}
`;

const ALL = variants((s, w) =>
  packedKernel('packed dequantize', wgsl(s, w, '@group(0) @binding(6) var<uniform> P: Params;', 'n'), s, w),
);
const ROWS = variants((s, w) =>
  packedKernel(
    'packed dequantize rows',
    wgsl(
      s,
      w,
      '@group(0) @binding(6) var<storage, read> IDS: array<i32>;\n@group(0) @binding(7) var<uniform> P: Params;',
      'u32(IDS[n])',
    ),
    s,
    w,
  ),
);

/** out [N, K] = Ŵ, outliers included (validated by the caller). */
export function encodeDequantize(g: GpuPackedWeight, out: GpuArray): void {
  const bindings = [g.qweight, g.scales, g.zeros, g.index, g.weak, out];
  dispatch(g.ctx, ALL(...g.reads), bindings, packedParams(g, g.rows), grid(g.ctx, g.rows * g.cols, WG));
  if (g.nnz > 0) encodeOutlierDequantize(g, out);
}

/** out [ids.length, K] = rows `ids` of Ŵ (validated by the caller, ids in [0, N) included). */
export function encodeDequantizeRows(g: GpuPackedWeight, ids: Int32Array, out: GpuArray): void {
  if (ids.length === 0) return;
  const buf = g.ctx.uploadRaw(ids, 'packed rows ids');
  try {
    const bindings = [g.qweight, g.scales, g.zeros, g.index, g.weak, out, buf];
    dispatch(g.ctx, ROWS(...g.reads), bindings, packedParams(g, ids.length), grid(g.ctx, ids.length * g.cols, WG));
    if (g.nnz > 0) encodeOutlierDequantizeRows(g, buf, ids.length, out);
  } finally {
    g.ctx.recycle(buf);
  }
}
