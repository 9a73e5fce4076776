/**
 * The elementwise WGSL kernels (src/gpu/elementwise.ts) against the reference (src/native/ref.ts) on the
 * process's WebGPU device: binary ops with broadcasting, affine, the unary activations forward and backward,
 * fill, copy, accumulate, broadcastScalar, scaleBy, dropout; in-place use, aliasing refusals, released arrays.
 */
import { describe, expect, it } from 'vitest';
import { release } from '../../src/gpu/array.js';
import {
  accumulate,
  affine,
  binary,
  broadcastScalar,
  copy,
  dropout,
  fill,
  scaleBy,
  unaryBackward,
  unaryForward,
} from '../../src/gpu/elementwise.js';
import type { BinaryOp, BroadcastDims, UnaryOp } from '../../src/native/types.js';
import { broadcastLayout, denseStrides, expectClose, numel, rand32, ref, type Tol } from '../kernels/helpers.js';
import { down, up, useGpu } from './helpers.js';

const SIZES = [1, 3, 7, 127, 129, 1023];

/** add, sub, mul: one correctly rounded IEEE operation on both sides (the reference rounds its double once). */
const EXACT: Tol = { rtol: 0, atol: 0 };
/** div: WGSL allows 2.5 ulp for x / y (GLSL lowers it to x * (1 / y)); 2.5 * 2^-23 relative. */
const DIV_TOL: Tol = { rtol: 3e-7, atol: 0 };
/** affine: x * alpha then + beta, two f32 roundings (or one with fma) vs one; alpha, beta rounded to f32. */
const AFFINE_TOL: Tol = { rtol: 2e-7, atol: 2e-7 };
/**
 * Activations, |x| <= 4: WGSL's exp may be 3 + 2|x| ulp off (GLSL exp2-based lowering), and erf32 is within
 * ~1e-7 absolute of the exact erf (elementwise.ts): a few ulp relative plus 1e-7-scale absolute slack.
 */
const UNARY_TOL: Tol = { rtol: 2e-6, atol: 4e-7 };
/** fill, copy, broadcastScalar, scaleBy, accumulate, dropout: one rounding at most, the same as the reference's. */
const MOVE_TOL = EXACT;

const gpu = useGpu();

async function checkBinary(op: BinaryOp, d: BroadcastDims, nA: number, nB: number, seed: number): Promise<void> {
  const { ctx } = gpu();
  const a = rand32(nA, seed);
  // divisors kept away from 0 so relative errors stay meaningful
  const b = op === 'div' ? rand32(nB, seed + 1, 0.5, 2) : rand32(nB, seed + 1);
  const n = numel(d.shape);
  const expected = new Float32Array(n);
  ref.binary(op, a, b, expected, d);
  const out = ctx.zeros(n);
  binary(op, up(ctx, a), up(ctx, b), out, d);
  expectClose(await down(out), expected, op === 'div' ? DIV_TOL : EXACT, `${op} ${JSON.stringify(d)}`);
}

async function checkShapes(op: BinaryOp, aShape: number[], bShape: number[], outShape: number[]): Promise<void> {
  await checkBinary(
    op,
    broadcastLayout(aShape, bShape, outShape),
    Math.max(1, numel(aShape)),
    Math.max(1, numel(bShape)),
    numel(outShape),
  );
}

describe('gpu binary (broadcasting)', () => {
  for (const op of ['add', 'sub', 'mul', 'div'] as BinaryOp[]) {
    it(`${op}: same shapes, scalar, row, column, middle dims, rank 8`, async () => {
      for (const n of SIZES) await checkShapes(op, [n], [n], [n]);
      await checkShapes(op, [127, 129], [], [127, 129]); // scalar b
      await checkShapes(op, [], [7], [7]); // scalar a
      await checkShapes(op, [127, 129], [129], [127, 129]); // row
      await checkShapes(op, [129, 1], [129, 7], [129, 7]); // column
      await checkShapes(op, [3, 1, 5], [1, 4, 5], [3, 4, 5]); // both broadcast
      await checkShapes(op, [3, 7, 5], [3, 1, 5], [3, 7, 5]); // middle dim
      await checkShapes(op, [2, 3, 1, 2, 3, 1, 2, 3], [1, 3, 2, 1, 3, 2, 1, 3], [2, 3, 2, 2, 3, 2, 2, 3]);
      await checkShapes(op, [], [], []);
    });
  }

  it('reads a transposed operand', async () => {
    await checkBinary('mul', { shape: [7, 9], stridesA: [1, 7], stridesB: denseStrides([7, 9]) }, 63, 63, 5);
  });

  it('writes in place over a dense operand, refuses a broadcast one', async () => {
    const { ctx } = gpu();
    const a = rand32(129, 3);
    const b = rand32(129, 4);
    const expected = new Float32Array(129);
    const d = broadcastLayout([129], [129], [129]);
    ref.binary('add', a, b, expected, d);
    const ga = up(ctx, a);
    binary('add', ga, up(ctx, b), ga, d);
    expectClose(await down(ga), expected, EXACT, 'in place');
    const out = up(ctx, rand32(9, 5));
    const col = out.prefix(3); // a [3, 1] column read broadcast while out is written
    expect(() => binary('add', col, up(ctx, rand32(9, 6)), out, broadcastLayout([3, 1], [3, 3], [3, 3]))).toThrow(
      /binary: out may alias an input only/,
    );
  });

  it('validates lengths and rank as the reference', () => {
    const { ctx } = gpu();
    const d = broadcastLayout([4, 5], [5], [4, 5]);
    expect(() => binary('add', ctx.zeros(19), ctx.zeros(5), ctx.zeros(20), d)).toThrow(
      'binary: a has 19 elements, needs at least 20',
    );
    const shape = [1, 1, 1, 1, 1, 1, 1, 1, 2];
    const nine = { shape, stridesA: denseStrides(shape), stridesB: denseStrides(shape) };
    expect(() => binary('add', ctx.zeros(2), ctx.zeros(2), ctx.zeros(2), nine)).toThrow(/rank 9/);
  });

  it('refuses a released array, naming the kernel', () => {
    const { ctx } = gpu();
    const a = ctx.zeros(7);
    release(a);
    expect(() => binary('add', a, ctx.zeros(7), ctx.zeros(7), broadcastLayout([7], [7], [7]))).toThrow(
      /^binary: a GPU array was used after it was released/,
    );
    expect(() => copy(a, 0, ctx.zeros(7), 0, 7)).toThrow(/^copy: a GPU array was used after it was released/);
  });
});

describe('gpu affine', () => {
  it('matches the reference, in place too', async () => {
    const { ctx } = gpu();
    for (const n of SIZES) {
      const x = rand32(n, n);
      const expected = new Float32Array(n);
      ref.affine(x, expected, -1.7, 0.3);
      const out = ctx.zeros(n);
      affine(up(ctx, x), out, -1.7, 0.3);
      expectClose(await down(out), expected, AFFINE_TOL, `affine n=${n}`);
      const gx = up(ctx, x);
      affine(gx, gx, -1.7, 0.3);
      expectClose(await down(gx), expected, AFFINE_TOL, `affine in place n=${n}`);
    }
  });
});

describe('gpu unary forward and backward', () => {
  for (const op of ['relu', 'gelu', 'silu', 'exp', 'neg'] as UnaryOp[]) {
    it(`${op} on odd sizes and on a dense grid of [-4, 4] with 0`, async () => {
      const { ctx } = gpu();
      const grid = Float32Array.from({ length: 4001 }, (_, i) => -4 + i / 500);
      for (const x of [...SIZES.map((n) => rand32(n, n + 7, -4, 4)), grid]) {
        const n = x.length;
        const dy = rand32(n, n + 8);
        const yRef = new Float32Array(n);
        const dxRef = new Float32Array(n);
        ref.unaryForward(op, x, yRef);
        ref.unaryBackward(op, x, dy, dxRef);
        const gx = up(ctx, x);
        const y = ctx.zeros(n);
        const dx = ctx.zeros(n);
        unaryForward(op, gx, y);
        unaryBackward(op, gx, up(ctx, dy), dx);
        expectClose(await down(y), yRef, UNARY_TOL, `${op} forward n=${n}`);
        expectClose(await down(dx), dxRef, UNARY_TOL, `${op} backward n=${n}`);
        // in place: dx over dy, y over x
        const gdy = up(ctx, dy);
        unaryBackward(op, gx, gdy, gdy);
        expectClose(await down(gdy), dxRef, UNARY_TOL, `${op} backward in place n=${n}`);
        unaryForward(op, gx, gx);
        expectClose(await down(gx), yRef, UNARY_TOL, `${op} forward in place n=${n}`);
      }
    });
  }

  it('gelu stays finite and saturates far out', async () => {
    const { ctx } = gpu();
    const x = Float32Array.from([-30, -10, -6, 6, 10, 30]);
    const expected = new Float32Array(6);
    ref.unaryForward('gelu', x, expected);
    const y = ctx.zeros(6);
    unaryForward('gelu', up(ctx, x), y);
    expectClose(await down(y), expected, UNARY_TOL, 'gelu tails');
  });
});

describe('gpu fill, copy, accumulate, broadcastScalar', () => {
  it('fill and copy with offsets', async () => {
    const { ctx } = gpu();
    for (const n of SIZES) {
      const out = ctx.zeros(n);
      fill(out, -2.5);
      expectClose(await down(out), new Float32Array(n).fill(-2.5), MOVE_TOL, `fill n=${n}`);
      const src = rand32(n + 5, n);
      const dst0 = rand32(n + 3, n + 1);
      const expected = Float32Array.from(dst0);
      ref.copy(src, 4, expected, 2, n - 1);
      const dst = up(ctx, dst0);
      copy(up(ctx, src), 4, dst, 2, n - 1);
      expectClose(await down(dst), expected, MOVE_TOL, `copy n=${n}`);
    }
    expect(() => copy(ctx.zeros(4), 2, ctx.zeros(4), 0, 3)).toThrow('copy: src has 4 elements, needs at least 5');
  });

  it('covers more than 65535 workgroups (the grid folds into y)', async () => {
    const { ctx } = gpu();
    const n = 65535 * 256 + 300;
    const x = new Float32Array(n);
    const at = [0, 1, 65535 * 256 - 1, 65535 * 256, n - 1];
    for (const i of at) x[i] = (i % 1000) + 0.5;
    const out = ctx.zeros(n);
    affine(up(ctx, x), out, 2, 1);
    const y = await down(out);
    for (const i of at) expect(y[i], `element ${i}`).toBe(2 * ((i % 1000) + 0.5) + 1);
    expect(y[12345]).toBe(1);
  });

  it('accumulate adds into a pre-filled array', async () => {
    const { ctx } = gpu();
    for (const n of SIZES) {
      const acc0 = rand32(n, n + 2);
      const x = rand32(n, n + 3);
      const expected = Float32Array.from(acc0);
      ref.accumulate(expected, x);
      const acc = up(ctx, acc0);
      accumulate(acc, up(ctx, x));
      expectClose(await down(acc), expected, MOVE_TOL, `accumulate n=${n}`);
    }
    const same = ctx.zeros(3);
    expect(() => accumulate(same, same)).toThrow(/accumulate: the output must not share its buffer/);
  });

  it('broadcastScalar', async () => {
    const { ctx } = gpu();
    for (const n of SIZES) {
      const x = Float32Array.from([1.375, 9]);
      const expected = new Float32Array(n);
      ref.broadcastScalar(x, expected, -0.5);
      const out = up(ctx, rand32(n, n));
      broadcastScalar(up(ctx, x), out, -0.5);
      expectClose(await down(out), expected, MOVE_TOL, `broadcastScalar n=${n}`);
    }
  });

  it('scaleBy (in place, by a device scalar times alpha)', async () => {
    const { ctx } = gpu();
    for (const n of SIZES) {
      const x0 = rand32(n, n + 7);
      const s = Float32Array.of(0.25, 3);
      const expected = Float32Array.from(x0);
      ref.scaleBy(expected, s, -4);
      const x = up(ctx, x0);
      scaleBy(x, up(ctx, s), -4);
      expectClose(await down(x), expected, MOVE_TOL, `scaleBy n=${n}`);
    }
  });
});

describe('gpu dropout', () => {
  it('draws the reference mask on the device (counters that wrap 2^32 too) and applies the scale, in place too', async () => {
    const { ctx } = gpu();
    for (const [n, state] of [...SIZES.map((n) => [n, n * 7919]), [100_003, 0xfffff000]]) {
      const draw = { state, threshold: Math.ceil(0.3 * 4294967296) - 1 };
      const x = rand32(n, n + 4);
      const expected = new Float32Array(n);
      ref.dropout(x, draw, 1 / 0.7, expected);
      const out = ctx.zeros(n);
      dropout(up(ctx, x), draw, 1 / 0.7, out);
      // the same 0/1 mask (bit for bit: zeros where the reference has zeros), then one rounding of x * scale
      // either way, scale rounded to f32 on the GPU
      const got = await down(out);
      expect(got.every((v, i) => (v === 0) === (expected[i] === 0))).toBe(true);
      expectClose(got, expected, AFFINE_TOL, `dropout n=${n}`);
      const gx = up(ctx, x);
      dropout(gx, draw, 1 / 0.7, gx);
      expectClose(await down(gx), expected, AFFINE_TOL, `dropout in place n=${n}`);
    }
    expect(() => dropout(ctx.zeros(5), { state: 0, threshold: 0 }, 2, ctx.zeros(4))).toThrow(
      'dropout: out has 4 elements, needs at least 5',
    );
  });
});
