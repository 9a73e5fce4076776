/**
 * Ŵ [N, K] of a packed weight on the device, in input-column order with the weak columns added: one
 * invocation per output element, out[r, j] = whatAt(r, j) (src/gpu/packed-weight.ts), the reference's formula
 * and rounding order (s * (code - z) rounded to f32, then + weak), so it matches the reference up to a possible
 * fma contraction of the weak columns' add (see the tolerance in test/gpu/packed.test.ts).
 */
import type { GpuArray } from './array.js';
import { dispatch, flatIndexWgsl, grid } from './dispatch.js';
import { type ReadPath, variants } from './half.js';
import { decodeWgsl, type GpuPackedWeight, packedKernel, packedParams } from './packed-weight.js';

const WG = 256;

const wgsl = (scales: ReadPath, weak: ReadPath): string => /* wgsl */ `${decodeWgsl(scales, weak)}
@group(0) @binding(5) var<storage, read_write> OUT: array<f32>;
@group(0) @binding(6) var<uniform> P: Params;
${flatIndexWgsl(WG)}
@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let e = flatIndex(gid, nwg);
  if (e >= P.rows * P.cols) { return; }
  OUT[e] = whatAt(e / P.cols, e % P.cols);
}
`;

const KERNEL = variants((s, w) => packedKernel('packed dequantize', wgsl(s, w), s, w));

/** out [N, K] = Ŵ (validated by the caller). */
export function encodeDequantize(g: GpuPackedWeight, out: GpuArray): void {
  const n = g.rows * g.cols;
  dispatch(
    g.ctx,
    KERNEL(...g.reads),
    [g.qweight, g.scales, g.zeros, g.index, g.weak, out],
    packedParams(g, 0),
    grid(g.ctx, n, WG),
  );
}
