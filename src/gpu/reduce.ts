/**
 * Reductions of the Kernels<GpuArray> contract (src/native/types.ts; oracle src/native/ref.ts), all
 * deterministic (no atomics: the same input gives the same bits run after run, which keeps the trainer's
 * CPU-vs-GPU comparison testable):
 *
 * - sumTo (out[map(i)] += x[i], the backward of broadcasting): one invocation per output element; the host
 *   splits the coalesced layout into kept dims (output stride != 0) and reduced dims (stride 0); each invocation
 *   decomposes its index over the kept dims and walks the reduced ones with an odometer, summing in f32 in
 *   row-major order, then adds the sum to out. The kept dims must map one-to-one onto out (checked on the host).
 * - sumInto (out[0] = scale Σx) and sumSquaresInto (out[0] += Σx²): two passes. Pass 1: at most 1024
 *   workgroups of 256, each owning a contiguous block of x; each invocation sums its strided share, then a tree in
 *   workgroup memory gives the block's partial. Pass 2: one workgroup reduces the partials the same way and
 *   writes out[0]. Error: f32 with at most per/256 serial adds per invocation then log2 trees, far below the
 *   serial f32 bound (see test/gpu/reduce.test.ts). An x over the binding limit (src/gpu/windows.ts) runs pass
 *   1 in chunks of blocks, each binding the window of its blocks: the same partials, so the same bits.
 *
 * `treeReduceWgsl` (a workgroup reduction returning the result to every invocation) is shared with the
 * cross-entropy kernels.
 */
import type { BroadcastDims, Kernels } from '../native/types.js';
import type { GpuArray } from './array.js';
import { bytesFor } from './array.js';
import { dispatch, f32, type GpuKernel, need, params } from './dispatch.js';
import { checkRank, coalesce, denseStrides, dimAt, padDims, product, span } from './layout.js';
import { pointwise, runPointwise, WG } from './pointwise.js';
import { chunksOf, originOf, planChunks, windowOf } from './windows.js';

/**
 * WGSL: `var<workgroup> <name>_sh` and `fn <name>(li: u32, v: f32) -> f32`, the reduction with `op` (an
 * expression of `a` and `b`, e.g. `a + b` or `max(a, b)`) of v over the workgroup of `size` invocations (a
 * power of two), returned to every invocation. Call it from uniform control flow (it has barriers).
 */
export function treeReduceWgsl(name: string, op: string, size = WG): string {
  return /* wgsl */ `
var<workgroup> ${name}_sh: array<f32, ${size}>;
fn ${name}_op(a: f32, b: f32) -> f32 { return ${op}; }
fn ${name}(li: u32, v: f32) -> f32 {
  ${name}_sh[li] = v;
  workgroupBarrier();
  for (var w = ${size / 2}u; w > 0u; w >>= 1u) {
    if (li < w) { ${name}_sh[li] = ${name}_op(${name}_sh[li], ${name}_sh[li + w]); }
    workgroupBarrier();
  }
  let r = ${name}_sh[0];
  workgroupBarrier();
  return r;
}
`;
}

const SUM_TO_FIELDS = [
  'krank: u32, rrank: u32, rcount: u32,',
  'kshape: array<vec4<u32>, 2>, kxs: array<vec4<u32>, 2>, kos: array<vec4<u32>, 2>,',
  'rshape: array<vec4<u32>, 2>, rxs: array<vec4<u32>, 2>,',
].join(' ');

const sumToKernel = pointwise({
  label: 'sumTo',
  bindings: [
    { name: 'X', access: 'read' },
    { name: 'O', access: 'read_write' },
  ],
  params: SUM_TO_FIELDS,
  body: /* wgsl */ `
  var rem = i;
  var xo = 0u;
  var oo = 0u;
  for (var d = P.krank; d > 0u; d--) {
    let s = ${dimAt('kshape', 'd - 1u')};
    let c = rem % s;
    rem = rem / s;
    xo += c * ${dimAt('kxs', 'd - 1u')};
    oo += c * ${dimAt('kos', 'd - 1u')};
  }
  var idx: array<u32, 8>;
  var acc = 0.0;
  var off = xo;
  for (var r = 0u; r < P.rcount; r++) {
    acc += X[off];
    var d = P.rrank;
    loop {
      if (d == 0u) { break; }
      d--;
      idx[d]++;
      off += ${dimAt('rxs', 'd')};
      if (idx[d] < ${dimAt('rshape', 'd')}) { break; }
      off -= ${dimAt('rxs', 'd')} * ${dimAt('rshape', 'd')};
      idx[d] = 0u;
    }
  }
  O[oo] = O[oo] + acc;`,
});

/** Throws unless the kept dims' output strides send distinct positions to distinct elements. */
function checkOneToOne(shape: number[], strides: number[]): void {
  const dims = shape.map((s, k) => ({ s, stride: strides[k] })).sort((a, b) => a.stride - b.stride);
  let extent = 1;
  for (const { s, stride } of dims) {
    if (stride < extent) {
      throw new RangeError('sumTo: the output strides send two kept positions to one element (not a reduction layout)');
    }
    extent += (s - 1) * stride;
  }
}

/**
 * out[map(i)] += x[i] for every index i of d.shape, map(i) = Σ idx[k] stridesA[k] (ACCUMULATES, as ref.ts):
 * one invocation per output element summing its reduced positions in f32.
 */
export function sumTo(x: GpuArray, out: GpuArray, d: BroadcastDims): void {
  checkRank('sumTo', d.shape.length);
  const total = product(d.shape);
  need('sumTo', 'x', x, total);
  need('sumTo', 'out', out, span(d.shape, d.stridesA));
  if (total === 0) return;
  const c = coalesce(d.shape, [d.stridesA]);
  const xs = denseStrides(c.shape);
  const kept = { shape: [] as number[], xs: [] as number[], os: [] as number[] };
  const red = { shape: [] as number[], xs: [] as number[] };
  c.shape.forEach((s, k) => {
    const os = c.strides[0][k];
    if (os === 0) {
      red.shape.push(s);
      red.xs.push(xs[k]);
    } else {
      kept.shape.push(s);
      kept.xs.push(xs[k]);
      kept.os.push(os);
    }
  });
  checkOneToOne(kept.shape, kept.os);
  const r = coalesce(red.shape, [red.xs]); // reduced dims next to each other in x (e.g. [B, T] of [B, T, C])
  runPointwise(
    out.ctx,
    sumToKernel,
    [x, out],
    product(kept.shape),
    kept.shape.length,
    r.shape.length,
    product(r.shape),
    ...padDims(kept.shape),
    ...padDims(kept.xs),
    ...padDims(kept.os),
    ...padDims(r.shape),
    ...padDims(r.strides[0]),
  );
}

/** Partial sums pass 1 writes at most (so pass 2 is one workgroup looping 4 times). */
const MAX_PARTIALS = 1024;

function partialsKernel(square: boolean): GpuKernel {
  return {
    label: square ? 'sumSquaresInto' : 'sumInto',
    code: /* wgsl */ `
struct Params { n: u32, per: u32, g0: u32, o_X: u32, }
@group(0) @binding(0) var<storage, read> X: array<f32>;
@group(0) @binding(1) var<storage, read_write> PART: array<f32>;
@group(0) @binding(2) var<uniform> P: Params;
${treeReduceWgsl('total', 'a + b')}
@compute @workgroup_size(${WG}, 1, 1)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let g = P.g0 + wg.x;
  let start = g * P.per;
  let end = min(start + P.per, P.n);
  var s = 0.0;
  for (var k = start + li; k < end; k += ${WG}u) {
    let v = X[P.o_X + k];
    s += ${square ? 'v * v' : 'v'};
  }
  let t = total(li, s);
  if (li == 0u) { PART[g] = t; }
}
`,
  };
}

function finishKernel(square: boolean): GpuKernel {
  return {
    label: square ? 'sumSquaresInto' : 'sumInto',
    code: /* wgsl */ `
struct Params { groups: u32, scale: f32, }
@group(0) @binding(0) var<storage, read> PART: array<f32>;
@group(0) @binding(1) var<storage, read_write> O: array<f32>;
@group(0) @binding(2) var<uniform> P: Params;
${treeReduceWgsl('total', 'a + b')}
@compute @workgroup_size(${WG}, 1, 1)
fn main(@builtin(local_invocation_index) li: u32) {
  var s = 0.0;
  for (var k = li; k < P.groups; k += ${WG}u) { s += PART[k]; }
  let t = total(li, s);
  if (li == 0u) { O[0] = ${square ? 'O[0] + t' : 'P.scale * t'}; }
}
`,
  };
}

const SUM = { partials: partialsKernel(false), finish: finishKernel(false) };
const SUM_SQUARES = { partials: partialsKernel(true), finish: finishKernel(true) };

/** The two passes: partial sums of blocks of x, then out[0] from them. x and out may be the same array. */
function reduceAll(x: GpuArray, out: GpuArray, kernels: typeof SUM, scale: number): void {
  const { ctx } = out;
  const n = x.length;
  // blocks of a multiple of WG elements, at most MAX_PARTIALS of them
  const per = WG * Math.max(1, Math.ceil(n / (MAX_PARTIALS * WG)));
  const groups = Math.ceil(n / per);
  const partials = ctx.acquire(bytesFor(groups), 'partials');
  try {
    // x over the binding limit: chunks of blocks, x bound where they are (the same blocks, the same sums)
    const reach = { array: x, strides: [per], width: per };
    for (const c of chunksOf([groups], planChunks(kernels.partials.label, [groups], [reach]))) {
      const w = windowOf(reach, c);
      dispatch(ctx, kernels.partials, [w, partials], params(n, per, c.lo[0], originOf(w)), [c.size[0], 1, 1]);
    }
    dispatch(ctx, kernels.finish, [partials, out], params(groups, f32(scale)), [1, 1, 1]);
  } finally {
    ctx.recycle(partials);
  }
}

/** out[0] = scale * Σ x (f32, blockwise then tree; deterministic). */
export function sumInto(x: GpuArray, out: GpuArray, scale: number): void {
  need('sumInto', 'out', out, 1);
  reduceAll(x, out, SUM, scale);
}

/** out[0] += Σ x² (the global gradient norm's building block; the same two passes). */
export function sumSquaresInto(x: GpuArray, out: GpuArray): void {
  need('sumSquaresInto', 'out', out, 1);
  reduceAll(x, out, SUM_SQUARES, 1);
}

export const reduceKernels = { sumTo, sumInto, sumSquaresInto } satisfies Partial<Kernels<GpuArray>>;
