/**
 * The WGSL reductions (src/gpu/reduce.ts) against the reference (src/native/ref.ts, which sums in f64):
 * sumTo onto broadcast shapes (accumulating into a pre-filled out), sumInto and sumSquaresInto on odd sizes
 * and on one size large enough for pass 1 to loop (more than 1024 * 256 elements).
 */
import { describe, expect, it } from 'vitest';
import { sumInto, sumSquaresInto, sumTo } from '../../src/gpu/reduce.js';
import type { BroadcastDims } from '../../src/native/types.js';
import { broadcastStrides, expectClose, numel, rand32, ref, type Tol } from '../kernels/helpers.js';
import { down, up, useGpu } from './helpers.js';

const SIZES = [1, 3, 7, 127, 129, 1023];

/**
 * sumTo sums each output's r reduced values serially in f32 (|x| <= 1): the classic bound of a recursive f32
 * sum is (r - 1) u Σ|x_i| <= r^2 u with u = 2^-24; random signs make the typical error ~ sqrt(r) u r. A
 * bound of r * 2^-24 * (1 + sqrt r) absolute (plus the one rounding of the final += at 2^-23 relative).
 */
const SUM_TO_TOL = (r: number): Tol => ({ rtol: 2 ** -23, atol: r * 2 ** -24 * (1 + Math.sqrt(r)) });
/**
 * sumInto / sumSquaresInto: blockwise then tree sums in f32 vs the reference's f64: the pairwise bound
 * (serial share + log2 n) u Σ|x| is below 1e-6 Σ|x| for every size here; checked against that, not |Σx|.
 */
const SUM_ALL_TOL = (absSum: number): Tol => ({ rtol: 2 ** -23, atol: 1e-6 * absSum });

const gpu = useGpu();

function reduceLayout(input: number[], shape: number[]): BroadcastDims {
  const s = broadcastStrides(input, shape);
  return { shape, stridesA: s, stridesB: s };
}

async function checkSumTo(input: number[], shape: number[], seed: number): Promise<void> {
  const { ctx } = gpu();
  const d = reduceLayout(input, shape);
  const x = rand32(numel(shape), seed);
  const out0 = rand32(Math.max(1, numel(input)), seed + 1); // ACCUMULATES: out starts nonzero
  const expected = Float32Array.from(out0);
  ref.sumTo(x, expected, d);
  const out = up(ctx, out0);
  sumTo(up(ctx, x), out, d);
  const r = numel(shape) / Math.max(1, numel(input));
  expectClose(await down(out), expected, SUM_TO_TOL(r), `sumTo [${input}] <- [${shape}]`);
}

describe('gpu sumTo', () => {
  it('onto rows, columns, scalars and middle dims, accumulating', async () => {
    for (const n of SIZES) {
      await checkSumTo([n], [n], n); // nothing reduced
      await checkSumTo([n], [7, n], n + 1); // bias gradient: sum over rows
      await checkSumTo([n, 1], [n, 3], n + 2); // column
      await checkSumTo([], [n], n + 3); // everything onto a scalar
      await checkSumTo([1], [3, n], n + 4);
    }
    await checkSumTo([3, 1, 5], [3, 7, 5], 40); // middle dim
    await checkSumTo([1, 7, 1], [3, 7, 129], 41); // outer and inner dims reduced
    await checkSumTo([2, 1, 2, 1, 2, 1, 2, 1], [2, 3, 2, 3, 2, 3, 2, 3], 42); // rank 8, alternating
    await checkSumTo([7, 1], [2, 7, 129], 43); // leading and trailing dims reduced
  });

  it('sums a long reduction (1023 x 129 rows onto 1 x 129)', async () => {
    await checkSumTo([129], [1023, 129], 50);
  });

  it('validates lengths and refuses a layout that is not a reduction', () => {
    const { ctx } = gpu();
    expect(() => sumTo(ctx.zeros(20), ctx.zeros(4), reduceLayout([5], [4, 5]))).toThrow(
      'sumTo: out has 4 elements, needs at least 5',
    );
    const overlapping = { shape: [3, 3], stridesA: [1, 1], stridesB: [1, 1] };
    expect(() => sumTo(ctx.zeros(9), ctx.zeros(5), overlapping)).toThrow(/sumTo: the output strides/);
  });
});

async function checkSumAll(n: number, seed: number): Promise<void> {
  const { ctx } = gpu();
  const x = rand32(n, seed);
  const absSum = x.reduce((a, v) => a + Math.abs(v), 0);
  const sq = x.reduce((a, v) => a + v * v, 0);

  const expected = Float32Array.from([7, 8]);
  ref.sumInto(x, expected, -0.25);
  const out = up(ctx, [7, 8]);
  sumInto(up(ctx, x), out, -0.25);
  expectClose(await down(out), expected, SUM_ALL_TOL(0.25 * absSum), `sumInto n=${n}`);

  const expectedSq = Float32Array.from([1.5, 2]);
  ref.sumSquaresInto(x, expectedSq);
  const outSq = up(ctx, [1.5, 2]); // ACCUMULATES into out[0]; out[1] untouched
  sumSquaresInto(up(ctx, x), outSq);
  expectClose(await down(outSq), expectedSq, SUM_ALL_TOL(sq + 1.5), `sumSquaresInto n=${n}`);
}

describe('gpu sumInto and sumSquaresInto', () => {
  it('odd sizes and empty input', async () => {
    for (const n of [0, ...SIZES, 256, 257, 65537]) await checkSumAll(n, n + 100);
  });

  it('a size where each pass-1 invocation loops (300001 > 1024 * 256)', async () => {
    await checkSumAll(300001, 7);
  });

  it('is deterministic and allows out to be x', async () => {
    const { ctx } = gpu();
    const x = up(ctx, rand32(100003, 9));
    const a = ctx.zeros(1);
    const b = ctx.zeros(1);
    sumInto(x, a, 1);
    sumInto(x, b, 1);
    expect((await down(a))[0]).toBe((await down(b))[0]);
    const y = rand32(5, 10);
    const expected = Float32Array.from(y);
    ref.sumSquaresInto(Float32Array.from(y), expected);
    const gy = up(ctx, y);
    sumSquaresInto(gy, gy);
    expectClose((await down(gy)).subarray(0, 1), expected.subarray(0, 1), SUM_ALL_TOL(10), 'out = x');
  });
});
