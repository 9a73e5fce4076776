/**
 * Rotate-half RoPE in WGSL, the RopeDims contract of src/native/types.ts (oracle: src/native/ref.ts): for
 * each (b, t, head) and pair i < D/2, out[i] = x[i] c - x[i + D/2] s and out[i + D/2] = x[i + D/2] c + x[i] s,
 * with c, s = cos, sin[t, i] (GpuArrays of [T, D/2]); inverse negates s (the transposed rotation: the
 * backward). One invocation per pair over a flat 2-D grid: elementwise, exact up to the f32 rounding of the
 * two products and their sum.
 */
import type { Kernels, RopeDims } from '../native/types.js';
import type { GpuArray } from './array.js';
import { dispatch, f32, flatIndexWgsl, type GpuKernel, grid, need, params } from './dispatch.js';
import { bindingsWgsl, distinct } from './rows.js';

const WG = 64;

const KERNEL: GpuKernel = {
  label: 'rope',
  code: /* wgsl */ `
struct Params { pairs: u32, seq: u32, heads: u32, half: u32, sign: f32, _pad0: u32, _pad1: u32, _pad2: u32 }
${bindingsWgsl(['X', 'Cos', 'Sin', 'Out!'])}
${flatIndexWgsl(WG)}
@compute @workgroup_size(${WG}, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let idx = flatIndex(gid, nwg);
  if (idx >= P.pairs) { return; }
  let i = idx % P.half;
  let row = idx / P.half; // (b * seq + t) * heads + head
  let t = (row / P.heads) % P.seq;
  let o = row * 2u * P.half;
  let c = Cos[t * P.half + i];
  let s = P.sign * Sin[t * P.half + i];
  let x1 = X[o + i];
  let x2 = X[o + i + P.half];
  Out[o + i] = x1 * c - x2 * s;
  Out[o + i + P.half] = x2 * c + x1 * s;
}
`,
};

/** out = rope(x) (inverse: the transposed rotation). */
export function rope(x: GpuArray, out: GpuArray, cos: GpuArray, sin: GpuArray, d: RopeDims, inverse: boolean): void {
  const { batch, seq, heads, headDim: D } = d;
  if (D % 2 !== 0) throw new RangeError(`rope: headDim must be even, got ${D}`);
  const half = D / 2;
  need('rope', 'x', x, batch * seq * heads * D);
  need('rope', 'out', out, batch * seq * heads * D);
  need('rope', 'cos', cos, seq * half);
  need('rope', 'sin', sin, seq * half);
  distinct('rope', { out }, { x, cos, sin });
  const pairs = batch * seq * heads * half;
  if (pairs === 0) return;
  const p = params(pairs, seq, heads, half, f32(inverse ? -1 : 1));
  dispatch(x.ctx, KERNEL, [x, cos, sin, out], p, grid(x.ctx, pairs, WG));
}

export const ropeKernels = { rope } satisfies Pick<Kernels<GpuArray>, 'rope'>;
