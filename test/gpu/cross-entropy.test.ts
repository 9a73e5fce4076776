/**
 * The fused WGSL cross-entropy (src/gpu/cross-entropy.ts) against the reference (src/native/ref.ts, f64
 * inside a row): odd rows and vocab sizes, real vocab sizes (32000, 50272), ignored rows, large logits,
 * a row scale, and the reference's message for a bad target.
 */
import { describe, expect, it } from 'vitest';
import { crossEntropyBackward, crossEntropyForward } from '../../src/gpu/cross-entropy.js';
import type { CrossEntropyDims } from '../../src/native/types.js';
import { expectClose, rand32, randInts, ref, type Tol } from '../kernels/helpers.js';
import { down, up, useGpu } from './helpers.js';

const SIZES = [1, 3, 7, 127, 129, 1023];

/**
 * lse and losses (|logits| <= 8, so lse <= ~19): the f32 sum of exps (<= 196 serial adds per invocation at
 * V = 50272, then a tree; exp within a few ulp) is ~1e-6 relative off, which is lse's absolute error; plus
 * the f32 rounding of lse itself (ulp(16) = 2e-6).
 */
const CE_FORWARD_TOL: Tol = { rtol: 2e-7, atol: 4e-6 };
/**
 * dlogits: exp(logit - lse) with the difference rounded to f32 (|d| <= ~27: half an ulp is 1e-6 absolute in
 * the exponent, so 1e-6 relative in p) and exp's error (measured on llvmpipe: <= 1.1e-6 relative over [-20, 20],
 * <= 2.9e-7 in [-2, 0]), scaled by rowScale. At the target, p - 1 cancels when p is near 1: exp's error there
 * is ~2.9e-7 absolute (p <= 1), which is the atol.
 */
const CE_BACKWARD_TOL = (rowScale: number): Tol => ({ rtol: 3e-6, atol: 4e-7 * Math.abs(rowScale) });

const gpu = useGpu();

async function check(d: CrossEntropyDims, targets: Int32Array, seed: number, spread = 8): Promise<void> {
  const { ctx } = gpu();
  const logits = rand32(d.rows * d.vocab, seed, -spread, spread);
  const lossRef = new Float32Array(d.rows);
  const lseRef = new Float32Array(d.rows);
  ref.crossEntropyForward(logits, targets, lossRef, lseRef, d);
  const gl = up(ctx, logits);
  const losses = up(ctx, rand32(d.rows, seed + 1)); // overwritten, ignored rows included
  const lse = ctx.zeros(d.rows);
  crossEntropyForward(gl, targets, losses, lse, d);
  const label = `rows=${d.rows} V=${d.vocab}`;
  expectClose(await down(lse), lseRef, CE_FORWARD_TOL, `lse ${label}`);
  expectClose(await down(losses), lossRef, CE_FORWARD_TOL, `losses ${label}`);

  const rowScale = -1 / 3;
  const dRef = new Float32Array(d.rows * d.vocab);
  ref.crossEntropyBackward(logits, targets, lseRef, rowScale, dRef, d);
  const dl = up(ctx, rand32(d.rows * d.vocab, seed + 2)); // overwritten
  crossEntropyBackward(gl, targets, up(ctx, lseRef), rowScale, dl, d);
  expectClose(await down(dl), dRef, CE_BACKWARD_TOL(rowScale), `dlogits ${label}`);
}

/** Targets in [0, vocab) with every third row set to ignoreIndex. */
function targetsOf(rows: number, vocab: number, ignoreIndex: number, seed: number): Int32Array {
  const t = randInts(rows, seed, vocab);
  for (let i = 2; i < rows; i += 3) t[i] = ignoreIndex;
  return t;
}

describe('gpu cross-entropy forward and backward', () => {
  it('odd rows and vocab sizes, ignored rows', async () => {
    for (const rows of [1, 3, 7, 129]) {
      for (const vocab of SIZES)
        await check({ rows, vocab, ignoreIndex: -100 }, targetsOf(rows, vocab, -100, rows), vocab);
    }
  });

  it('vocab sizes of real models (32000, 50272)', async () => {
    for (const vocab of [32000, 50272])
      await check({ rows: 3, vocab, ignoreIndex: -100 }, targetsOf(3, vocab, -100, 1), 2);
  });

  it('an ignoreIndex inside the vocab range, and all rows ignored', async () => {
    await check({ rows: 7, vocab: 127, ignoreIndex: 0 }, targetsOf(7, 127, 0, 3), 4);
    await check({ rows: 3, vocab: 7, ignoreIndex: -1 }, Int32Array.from([-1, -1, -1]), 5);
  });

  it('large logits stay finite (max subtracted)', async () => {
    await check({ rows: 3, vocab: 129, ignoreIndex: -100 }, targetsOf(3, 129, -100, 6), 6, 80);
  });

  it("refuses bad targets with the reference's message", () => {
    const { ctx } = gpu();
    const d = { rows: 3, vocab: 5, ignoreIndex: -100 };
    const targets = Int32Array.from([0, 5, 1]);
    const msg = 'target 5 at row 1 is out of range [0, 5) and is not ignoreIndex -100';
    expect(() =>
      ref.crossEntropyForward(new Float32Array(15), targets, new Float32Array(3), new Float32Array(3), d),
    ).toThrow(msg);
    expect(() => crossEntropyForward(ctx.zeros(15), targets, ctx.zeros(3), ctx.zeros(3), d)).toThrow(
      `crossEntropyForward: ${msg}`,
    );
    expect(() => crossEntropyBackward(ctx.zeros(15), targets, ctx.zeros(3), 1, ctx.zeros(15), d)).toThrow(
      `crossEntropyBackward: ${msg}`,
    );
    expect(() => crossEntropyForward(ctx.zeros(14), Int32Array.from([0, 1, 2]), ctx.zeros(3), ctx.zeros(3), d)).toThrow(
      'crossEntropyForward: logits has 14 elements, needs at least 15',
    );
  });
});
