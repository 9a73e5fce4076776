/**
 * dweak [N, nOut] += dyᵀ X[:, weakIdx], the weak columns' gradient in Weak Column Tuning: one invocation per
 * output (r, t) walks the m batch rows in order with an f32 fma chain, then adds the sum to dweak once (as the
 * reference adds its row sum), so the result is deterministic: no atomics, no order that depends on scheduling.
 */
import type { GpuArray } from './array.js';
import { type Binding, dispatch, flatIndexWgsl, type GpuKernel, grid } from './dispatch.js';
import { type GpuPackedWeight, PARAMS_WGSL, packedParams } from './packed-weight.js';

const WG = 64;

const KERNEL: GpuKernel = {
  label: 'packed weakGrad',
  code: /* wgsl */ `
${PARAMS_WGSL}
@group(0) @binding(0) var<storage, read> I: array<i32>;
@group(0) @binding(1) var<storage, read> DY: array<f32>;
@group(0) @binding(2) var<storage, read> X: array<f32>;
@group(0) @binding(3) var<storage, read_write> DW: array<f32>;
@group(0) @binding(4) var<uniform> P: Params;
${flatIndexWgsl(WG)}
@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let e = flatIndex(gid, nwg);
  if (e >= P.rows * P.nOut) { return; }
  let r = e / P.nOut;
  let j = u32(I[3u * P.cols + e % P.nOut]);
  var s = 0.0;
  for (var i = 0u; i < P.m; i++) { s = fma(DY[i * P.rows + r], X[i * P.cols + j], s); }
  DW[e] = DW[e] + s;
}
`,
};

/** dweak += dyᵀ X[:, weakIdx] (validated by the caller). */
export function encodeWeakGrad(g: GpuPackedWeight, dy: Binding, x: Binding, m: number, dweak: GpuArray): void {
  const n = g.rows * g.nOut;
  dispatch(g.ctx, KERNEL, [g.index, dy, x, dweak], packedParams(g, m), grid(g.ctx, n, WG));
}
