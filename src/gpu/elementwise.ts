/**
 * Elementwise WGSL kernels of the Kernels<GpuArray> contract (src/native/types.ts; oracle src/native/ref.ts):
 * broadcasting binary ops, affine, the unary activations forward and backward, fill, copy, accumulate,
 * broadcastScalar and dropout. All are 1-D (src/gpu/pointwise.ts): one invocation per output element.
 *
 * Broadcasting: the host coalesces the BroadcastDims layout (src/gpu/layout.ts) and passes shape and both
 * stride vectors in the uniform (rank <= 8, as arrays of vec4<u32>); each invocation decomposes its flat index
 * over the shape, last dim fastest, as ref.ts's row-major walk.
 *
 * GELU is the exact erf form (torch's default). WGSL has no erf: `erfWgsl` is Norbert Juffa's single-precision
 * erff (minimax polynomials in two ranges: erf(a) = a + a p(a^2) for |a| <= 0.927734375, else
 * 1 - exp(q(|a|)) with the sign of a; published on Stack Overflow, "Is there an accurate approximation of the
 * error function?", with a stated maximum error below 1 ulp per branch). Evaluated in f32 with a correctly
 * rounded exp it is within 5.9e-8 absolute (8.7e-8 relative) of the reference erf over [-8, 8] (checked on 2M
 * points); on a GPU the exp of the outer branch (WGSL allows 3 + 2|x| ulp) adds up to ~1e-7 absolute.
 *
 * Arrays over the binding limit (src/gpu/windows.ts): the 1-D kernels split with the index (pointwise.ts's flat
 * bindings); binary splits the leading coalesced dim, each operand bound where a chunk of rows reads it. copy
 * needs no binding.
 *
 * copy is a copyBufferToBuffer (f32 offsets are always 4-byte aligned). Dropout uploads the host's mask bytes
 * as they are, 4 per u32 (little-endian, as WebGPU buffers are), and multiplies by the byte's value.
 */
import type { BinaryOp, BroadcastDims, DropoutDraw, Kernels, UnaryOp } from '../native/types.js';
import { GAMMA } from '../util/rng.js';
import { checkLive, type GpuArray } from './array.js';
import { f32, need, refuseHalf } from './dispatch.js';
import { checkRank, coalesce, dimAt, padDims, product, span } from './layout.js';
import { type Pointwise, pointwise, runPointwise } from './pointwise.js';
import { chunksOf, planChunks, type Reach, windowOf } from './windows.js';

const BINARY_EXPR: Record<BinaryOp, string> = { add: 'a + b', sub: 'a - b', mul: 'a * b', div: 'a / b' };

/** The uniform fields of a strided layout after `n`: rank, padding to 16 bytes, then shape and two strides. */
const STRIDED_FIELDS =
  'rank: u32, _p0: u32, _p1: u32, shape: array<vec4<u32>, 2>, sa: array<vec4<u32>, 2>, sb: array<vec4<u32>, 2>,';

const binaryKernels = Object.fromEntries(
  (Object.keys(BINARY_EXPR) as BinaryOp[]).map((op) => [
    op,
    pointwise({
      label: 'binary',
      bindings: [
        { name: 'A', access: 'read' },
        { name: 'B', access: 'read' },
        { name: 'O', access: 'read_write', flat: true },
      ],
      params: STRIDED_FIELDS,
      inPlace: true, // binary() admits it only where the aliased operand is read at index i
      body: /* wgsl */ `
  var rem = i;
  var oa = 0u;
  var ob = 0u;
  for (var d = P.rank; d > 0u; d--) {
    let s = ${dimAt('shape', 'd - 1u')};
    let c = rem % s;
    rem = rem / s;
    oa += c * ${dimAt('sa', 'd - 1u')};
    ob += c * ${dimAt('sb', 'd - 1u')};
  }
  let a = A[oa];
  let b = B[ob];
  O[i] = ${BINARY_EXPR[op]};`,
    }),
  ]),
) as Record<BinaryOp, Pointwise>;

/** out = a (op) b with NumPy broadcasting (BroadcastDims: output shape, per-dim input strides, 0 = broadcast). */
export function binary(op: BinaryOp, a: GpuArray, b: GpuArray, out: GpuArray, d: BroadcastDims): void {
  checkRank('binary', d.shape.length);
  need('binary', 'a', a, span(d.shape, d.stridesA));
  need('binary', 'b', b, span(d.shape, d.stridesB));
  const n = product(d.shape);
  need('binary', 'out', out, n);
  const c = coalesce(d.shape, [d.stridesA, d.stridesB]);
  const [sa, sb] = c.strides;
  if (
    (a.buffer === out.buffer && !elementAligned(c.shape, sa)) ||
    (b.buffer === out.buffer && !elementAligned(c.shape, sb))
  ) {
    throw new RangeError("binary: out may alias an input only where that input has the output's own (dense) layout");
  }
  // Over the binding limit: chunks of the leading coalesced dim, each operand bound where the chunk reads it.
  const inner = c.shape.slice(1);
  const row = product(inner);
  const reach = (array: GpuArray, s: number[]): Reach => ({
    array,
    strides: [s[0] ?? 0],
    width: span(inner, s.slice(1)),
  });
  const reaches = [reach(a, sa), reach(b, sb), { array: out, strides: [row], width: row }];
  const totals = [c.shape[0] ?? 1];
  for (const chunk of chunksOf(totals, planChunks('binary', totals, reaches))) {
    const r0 = chunk.lo[0];
    runPointwise(
      out.ctx,
      binaryKernels[op],
      [windowOf(reaches[0], chunk), windowOf(reaches[1], chunk), out],
      [r0 * row, (r0 + chunk.size[0]) * row],
      c.shape.length,
      0,
      0,
      ...padDims(c.shape),
      ...padDims(sa),
      ...padDims(sb),
    );
  }
}

/** True when a coalesced operand reads element i at output index i (so out may alias it). */
function elementAligned(shape: number[], strides: number[]): boolean {
  return shape.length === 0 || (shape.length === 1 && strides[0] === 1);
}

const affineKernel = pointwise({
  label: 'affine',
  bindings: [
    { name: 'X', access: 'read', flat: true },
    { name: 'O', access: 'read_write', flat: true },
  ],
  params: 'alpha: f32, beta: f32,',
  inPlace: true,
  body: 'O[i] = X[i] * P.alpha + P.beta;',
});

/** out[i] = x[i] * alpha + beta for i < x.length; out may be x (in place). */
export function affine(x: GpuArray, out: GpuArray, alpha: number, beta: number): void {
  need('affine', 'out', out, x.length);
  runPointwise(x.ctx, affineKernel, [x, out], x.length, f32(alpha), f32(beta));
}

/** erf in f32 (see the file's comment): Juffa's erff, fma-chained polynomials in two ranges. */
export const erfWgsl = /* wgsl */ `
fn erf32(a: f32) -> f32 {
  let t = abs(a);
  let s = a * a;
  if (t > 0.927734375) {
    var r = fma(-1.72853470e-5, t, 3.83197126e-4);
    let u = fma(-3.88396438e-3, t, 2.42546219e-2);
    r = fma(r, s, u);
    r = fma(r, t, -1.06777877e-1);
    r = fma(r, t, -6.34846687e-1);
    r = fma(r, t, -1.28717512e-1);
    r = fma(r, t, -t);
    return sign(a) * (1.0 - exp(r));
  }
  var r = -5.96761703e-4;
  r = fma(r, s, 4.99119423e-3);
  r = fma(r, s, -2.67681349e-2);
  r = fma(r, s, 1.12819925e-1);
  r = fma(r, s, -3.76125336e-1);
  r = fma(r, s, 1.28379166e-1);
  return fma(r, a, a);
}
`;

const INV_SQRT2 = 'const INV_SQRT2: f32 = 0.70710678118654752;';
const INV_SQRT_2PI = 'const INV_SQRT_2PI: f32 = 0.39894228040143268;';

/** f(x) and f'(x) per op, as WGSL expressions of `x: f32`. */
const UNARY: Record<UnaryOp, { f: string; df: string }> = {
  relu: { f: 'select(x, 0.0, x < 0.0)', df: 'select(0.0, 1.0, x > 0.0)' },
  gelu: {
    f: '0.5 * x * (1.0 + erf32(x * INV_SQRT2))',
    df: '0.5 * (1.0 + erf32(x * INV_SQRT2)) + x * INV_SQRT_2PI * exp(-0.5 * x * x)',
  },
  silu: { f: 'x / (1.0 + exp(-x))', df: 'silu_d(x)' },
  exp: { f: 'exp(x)', df: 'exp(x)' },
  neg: { f: '-x', df: '-1.0' },
};

const UNARY_PRELUDE = `${erfWgsl}
${INV_SQRT2}
${INV_SQRT_2PI}
fn silu_d(x: f32) -> f32 {
  let s = 1.0 / (1.0 + exp(-x));
  return s * (1.0 + x * (1.0 - s));
}
`;

function unaryKernels(backward: boolean): Record<UnaryOp, Pointwise> {
  const bindings = backward
    ? [
        { name: 'X', access: 'read' as const, flat: true },
        { name: 'DY', access: 'read' as const, flat: true },
        { name: 'DX', access: 'read_write' as const, flat: true },
      ]
    : [
        { name: 'X', access: 'read' as const, flat: true },
        { name: 'O', access: 'read_write' as const, flat: true },
      ];
  return Object.fromEntries(
    (Object.keys(UNARY) as UnaryOp[]).map((op) => [
      op,
      pointwise({
        label: backward ? 'unaryBackward' : 'unaryForward',
        bindings,
        prelude: UNARY_PRELUDE,
        inPlace: true,
        body: backward ? `let x = X[i]; DX[i] = DY[i] * (${UNARY[op].df});` : `let x = X[i]; O[i] = ${UNARY[op].f};`,
      }),
    ]),
  ) as Record<UnaryOp, Pointwise>;
}

const unaryForwardKernels = unaryKernels(false);
const unaryBackwardKernels = unaryKernels(true);

/** out[i] = f(x[i]) for i < x.length. */
export function unaryForward(op: UnaryOp, x: GpuArray, out: GpuArray): void {
  need('unaryForward', 'out', out, x.length);
  runPointwise(x.ctx, unaryForwardKernels[op], [x, out], x.length);
}

/** dx[i] = dy[i] * f'(x[i]) for i < x.length (x is the op's input). */
export function unaryBackward(op: UnaryOp, x: GpuArray, dy: GpuArray, dx: GpuArray): void {
  need('unaryBackward', 'dy', dy, x.length);
  need('unaryBackward', 'dx', dx, x.length);
  runPointwise(x.ctx, unaryBackwardKernels[op], [x, dy, dx], x.length);
}

const fillKernel = pointwise({
  label: 'fill',
  bindings: [{ name: 'O', access: 'read_write', flat: true }],
  params: 'value: f32,',
  body: 'O[i] = P.value;',
});

/** out[i] = value for every i < out.length. */
export function fill(out: GpuArray, value: number): void {
  runPointwise(out.ctx, fillKernel, [out], out.length, f32(value));
}

/** dst[dstOffset + i] = src[srcOffset + i] for i < n: one copyBufferToBuffer (src and dst distinct buffers). */
export function copy(src: GpuArray, srcOffset: number, dst: GpuArray, dstOffset: number, n: number): void {
  need('copy', 'src', src, srcOffset + n);
  need('copy', 'dst', dst, dstOffset + n);
  checkLive(src, 'copy');
  checkLive(dst, 'copy');
  refuseHalf('copy', src);
  refuseHalf('copy', dst);
  if (n === 0) return;
  if (src.buffer === dst.buffer) {
    throw new RangeError('copy: src and dst share a buffer (a copy within one buffer is not supported)');
  }
  const { device } = dst.ctx;
  const enc = device.createCommandEncoder({ label: 'copy' });
  enc.copyBufferToBuffer(src.buffer, srcOffset * 4, dst.buffer, dstOffset * 4, n * 4);
  device.queue.submit([enc.finish()]);
}

const accumulateKernel = pointwise({
  label: 'accumulate',
  bindings: [
    { name: 'ACC', access: 'read_write', flat: true },
    { name: 'X', access: 'read', flat: true },
  ],
  body: 'ACC[i] = ACC[i] + X[i];',
});

/** acc[i] += x[i] for i < x.length (acc and x distinct). */
export function accumulate(acc: GpuArray, x: GpuArray): void {
  need('accumulate', 'acc', acc, x.length);
  runPointwise(acc.ctx, accumulateKernel, [acc, x], x.length);
}

const broadcastScalarKernel = pointwise({
  label: 'broadcastScalar',
  bindings: [
    { name: 'X', access: 'read' },
    { name: 'O', access: 'read_write', flat: true },
  ],
  params: 'scale: f32,',
  body: 'O[i] = X[0] * P.scale;',
});

/** out[i] = scale * x[0] for every i < out.length. */
export function broadcastScalar(x: GpuArray, out: GpuArray, scale: number): void {
  need('broadcastScalar', 'x', x, 1);
  runPointwise(out.ctx, broadcastScalarKernel, [x, out], out.length, f32(scale));
}

const scaleByKernel = pointwise({
  label: 'scaleBy',
  bindings: [
    { name: 'S', access: 'read' },
    { name: 'O', access: 'read_write', flat: true },
  ],
  params: 'alpha: f32,',
  body: 'O[i] = O[i] * (P.alpha * S[0]);',
});

/** x[i] *= alpha * s[0], in place. */
export function scaleBy(x: GpuArray, s: GpuArray, alpha: number): void {
  need('scaleBy', 's', s, 1);
  runPointwise(x.ctx, scaleByKernel, [s, x], x.length, f32(alpha));
}

// The mask drawn in place: mulberry32's mix of counter state + (i + 1) GAMMA (src/util/rng.ts mix32, in u32
// arithmetic, which wraps as Math.imul does), kept iff above the threshold (the DropoutDraw contract).
const dropoutKernel = pointwise({
  label: 'dropout',
  bindings: [
    { name: 'X', access: 'read', flat: true },
    { name: 'O', access: 'read_write', flat: true },
  ],
  params: 'state: u32, threshold: u32, scale: f32,',
  inPlace: true,
  body: /* wgsl */ `
  var t = P.state + (i + 1u) * ${GAMMA}u;
  t = (t ^ (t >> 15u)) * (t | 1u);
  t = t ^ (t + (t ^ (t >> 7u)) * (t | 61u));
  t = t ^ (t >> 14u);
  O[i] = X[i] * f32(t > P.threshold) * P.scale;`,
});

/** out = x * keep * scale for i < x.length, the mask drawn on the device from `draw`. */
export function dropout(x: GpuArray, draw: DropoutDraw, scale: number, out: GpuArray): void {
  need('dropout', 'out', out, x.length);
  runPointwise(x.ctx, dropoutKernel, [x, out], x.length, draw.state >>> 0, draw.threshold >>> 0, f32(scale));
}

export const elementwiseKernels = {
  scaleBy,
  binary,
  affine,
  unaryForward,
  unaryBackward,
  fill,
  copy,
  accumulate,
  broadcastScalar,
  dropout,
} satisfies Partial<Kernels<GpuArray>>;
